//! `/dev/xen/privcmd` (hypercalls) and `/dev/xen/hypercall` (memory Xen may read and write
//! during a hypercall), as libxencall uses them.

use std::fs::{File, OpenOptions};
use std::ops::{Deref, DerefMut};
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::Mutex;

use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::error::{Error, Result};
use crate::ioctl::{privcmd_hypercall, PrivcmdHypercall};

/// Hypercall numbers (`xen/include/public/xen.h`, from [`xen_abi`]).
pub mod hypercall {
    /// `__HYPERVISOR_memory_op`
    pub const MEMORY_OP: u64 = xen_abi::__HYPERVISOR_memory_op as u64;
    /// `__HYPERVISOR_xen_version`
    pub const XEN_VERSION: u64 = xen_abi::__HYPERVISOR_xen_version as u64;
    /// `__HYPERVISOR_sysctl`
    pub const SYSCTL: u64 = xen_abi::__HYPERVISOR_sysctl as u64;
    /// `__HYPERVISOR_domctl`
    pub const DOMCTL: u64 = xen_abi::__HYPERVISOR_domctl as u64;
}

/// Xen's page size on x86.
pub const PAGE_SIZE: usize = 4096;

/// An open privcmd device.
pub struct Privcmd {
    file: File,
    hypercall_buffers: File,
    /// A one-page buffer kept for the next call: mapping one costs a PV dom0 page-table
    /// hypercalls and faults (half of a listener's answer under TCG), and most calls need
    /// one page.
    spare_page: Mutex<Option<HypercallBuffer>>,
}

impl Privcmd {
    /// Opens `/dev/xen/privcmd` and `/dev/xen/hypercall`.
    pub fn open() -> Result<Privcmd> {
        let open = |path: &str| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|error| {
                    Error::from_io(
                        format!("open {path}"),
                        &error,
                        " (is this dom0 with xen-privcmd loaded?)",
                    )
                })
        };
        Ok(Privcmd {
            file: open("/dev/xen/privcmd")?,
            hypercall_buffers: open("/dev/xen/hypercall")?,
            spare_page: Mutex::new(None),
        })
    }

    /// Issues hypercall `op`; returns its non-negative result.
    ///
    /// # Safety
    ///
    /// The arguments must be what Xen expects for `op`: every pointer among them must point
    /// into a [`HypercallBuffer`] of this device, large enough for what Xen reads or writes.
    pub unsafe fn hypercall(&self, name: &str, op: u64, args: [u64; 5]) -> Result<u64> {
        let call = PrivcmdHypercall { op, arg: args };
        // SAFETY: the privcmd device and a PrivcmdHypercall alive for the call; the caller
        // vouches for the arguments Xen dereferences.
        let result = unsafe { privcmd_hypercall(self.file.as_raw_fd(), &call) }
            .map_err(|errno| Error::from_errno(name, errno))?;
        // Not negative: Linux returns a negative result as the errno.
        Ok(result as u64)
    }

    /// A zeroed buffer of `pages` pages that hypercalls may use (a one-page buffer is reused
    /// from the call before, when there is one).
    pub fn buffer(&self, pages: usize) -> Result<Buffer<'_>> {
        let one_page = pages <= 1;
        let spare = match one_page {
            true => self
                .spare_page
                .lock()
                .ok()
                .and_then(|mut spare| spare.take()),
            false => None,
        };
        let buffer = match spare {
            Some(mut buffer) => {
                buffer.zero();
                buffer
            }
            None => self.map_buffer(pages)?,
        };
        Ok(Buffer {
            buffer: Some(buffer),
            home: one_page.then_some(&self.spare_page),
        })
    }

    fn map_buffer(&self, pages: usize) -> Result<HypercallBuffer> {
        let length = std::num::NonZeroUsize::new(pages.max(1) * PAGE_SIZE).expect("not zero");
        // SAFETY: a fresh shared mapping of the hypercall-buffer device; no Rust object
        // aliases it.
        let base = unsafe {
            mmap(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &self.hypercall_buffers,
                0,
            )
        }
        .map_err(|errno| Error::from_errno("mmap /dev/xen/hypercall", errno))?;
        Ok(HypercallBuffer {
            base: base.cast(),
            length: length.get(),
        })
    }

    /// The device, for mappings of foreign frames.
    pub fn fd(&self) -> &File {
        &self.file
    }
}

/// A [`HypercallBuffer`] lent by [`Privcmd::buffer`]; a one-page one goes back to it when
/// dropped, for the next call.
pub struct Buffer<'p> {
    buffer: Option<HypercallBuffer>,
    home: Option<&'p Mutex<Option<HypercallBuffer>>>,
}

impl Deref for Buffer<'_> {
    type Target = HypercallBuffer;

    fn deref(&self) -> &HypercallBuffer {
        // Some until drop.
        self.buffer.as_ref().expect("a lent buffer")
    }
}

impl DerefMut for Buffer<'_> {
    fn deref_mut(&mut self) -> &mut HypercallBuffer {
        self.buffer.as_mut().expect("a lent buffer")
    }
}

impl Drop for Buffer<'_> {
    fn drop(&mut self) {
        if let (Some(buffer), Some(home)) = (self.buffer.take(), self.home) {
            if let Ok(mut spare) = home.lock() {
                // One spare is enough: a second one is unmapped.
                spare.get_or_insert(buffer);
            }
        }
    }
}

/// Memory from `/dev/xen/hypercall`: locked, so Xen can use it during a hypercall.
///
/// Values go in as their bytes (`IntoBytes`: no padding, so no uninitialised byte reaches
/// Xen) and come back from any bytes Xen wrote (`FromBytes`: every bit pattern is a value).
pub struct HypercallBuffer {
    base: NonNull<u8>,
    length: usize,
}

impl HypercallBuffer {
    /// Zeroes the whole buffer, as a fresh mapping is.
    fn zero(&mut self) {
        // SAFETY: the buffer's own `length` bytes, which only this handle writes.
        unsafe { self.base.as_ptr().write_bytes(0, self.length) }
    }

    /// Where the buffer is, for a hypercall argument.
    pub fn address(&self) -> u64 {
        self.base.as_ptr() as u64
    }

    /// Where byte `offset` of the buffer is, for a pointer inside a hypercall argument.
    pub fn address_at(&self, offset: usize) -> u64 {
        assert!(offset < self.length);
        self.address() + offset as u64
    }

    /// Copies `value` to the start of the buffer.
    pub fn write<T: IntoBytes + Immutable + ?Sized>(&mut self, value: &T) {
        self.write_at(0, value)
    }

    /// Copies `value` to byte `offset` of the buffer.
    ///
    /// # Panics
    ///
    /// If the bytes of `value` at `offset` are not all inside the buffer: callers lay
    /// out their buffers themselves, so a range outside is a bug of theirs, not a failure.
    pub fn write_at<T: IntoBytes + Immutable + ?Sized>(&mut self, offset: usize, value: &T) {
        let bytes = value.as_bytes();
        let at = self.range(offset, bytes.len());
        // SAFETY: the range is inside the buffer (`range`) and only this handle writes it;
        // `bytes` is a Rust value, not part of the mapping, so they do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), at, bytes.len()) }
    }

    /// Reads a `T` from the start of the buffer.
    pub fn read<T: FromBytes>(&self) -> T {
        self.read_at(0)
    }

    /// Reads a `T` from byte `offset` of the buffer.
    ///
    /// # Panics
    ///
    /// As [`HypercallBuffer::write_at`], if the range is not all inside the buffer.
    pub fn read_at<T: FromBytes>(&self, offset: usize) -> T {
        let at = self.range(offset, std::mem::size_of::<T>());
        // SAFETY: in bounds (`range`), read_unaligned accepts any alignment, and `T:
        // FromBytes` makes any bytes Xen wrote a valid `T`.
        unsafe { at.cast::<T>().read_unaligned() }
    }

    /// Where the `size` bytes at `offset` start; panics unless they are all inside the
    /// buffer. Checked arithmetic: an `offset` near `usize::MAX` must not wrap past the
    /// check.
    fn range(&self, offset: usize, size: usize) -> *mut u8 {
        let end = offset.checked_add(size);
        assert!(
            end.is_some_and(|end| end <= self.length),
            "hypercall buffer: {size} bytes at offset {offset} are outside its {} bytes",
            self.length
        );
        // SAFETY: offset <= end <= length: inside the mapping (or one past its end when
        // `size` is 0).
        unsafe { self.base.as_ptr().add(offset) }
    }
}

impl Drop for HypercallBuffer {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `Privcmd::buffer` with this base and length.
        let _ = unsafe { munmap(self.base.cast(), self.length) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer on anonymous memory, as `Privcmd::buffer` maps the device's (`munmap` on drop
    /// suits both).
    fn anonymous_buffer() -> HypercallBuffer {
        let length = std::num::NonZeroUsize::new(PAGE_SIZE).expect("not zero");
        // SAFETY: a fresh private anonymous mapping; nothing aliases it.
        let base = unsafe {
            nix::sys::mman::mmap_anonymous(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .expect("mmap");
        HypercallBuffer {
            base: base.cast(),
            length: length.get(),
        }
    }

    #[test]
    fn values_round_trip_up_to_the_last_byte() {
        let mut buffer = anonymous_buffer();
        buffer.write_at(PAGE_SIZE - 8, &0x1122_3344_5566_7788u64);
        buffer.write_at(3, &0xabcdu16);
        assert_eq!(buffer.read_at::<u64>(PAGE_SIZE - 8), 0x1122_3344_5566_7788);
        assert_eq!(buffer.read_at::<u16>(3), 0xabcd);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn a_range_past_the_end_panics() {
        anonymous_buffer().read_at::<u64>(PAGE_SIZE - 7);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn an_offset_that_would_wrap_panics() {
        // offset + 8 wraps to 4, which an unchecked sum would take for in bounds.
        anonymous_buffer().write_at(usize::MAX - 3, &0u64);
    }
}
