//! `XEN_DOMCTL_*` (`xen/include/public/domctl.h`, interface version 0x15 in Xen 4.17): the
//! envelope and the sub-operations this crate uses.

use crate::error::{Error, Result};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::privcmd::{hypercall, Privcmd};
use crate::DomId;

/// `#define XEN_DOMCTL_INTERFACE_VERSION 0x00000015`
pub const INTERFACE_VERSION: u32 = 0x15;
/// `#define XEN_DOMCTL_vm_event_op 56`
pub const VM_EVENT_OP: u32 = 56;

/// `struct xen_domctl`: command, version, domain, then a 128-byte union.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
pub struct Domctl {
    /// `uint32_t cmd`
    pub cmd: u32,
    /// `uint32_t interface_version`
    pub interface_version: u32,
    /// `domid_t domain`
    pub domain: u16,
    /// `uint16_t _pad[3]`
    pub pad: [u16; 3],
    /// The union `u`, as bytes (its largest member is `uint8_t pad[128]`).
    pub payload: [u8; 128],
}

impl Domctl {
    /// A domctl for `domain` carrying `payload` (a sub-operation's struct), zero after it.
    ///
    /// # Panics
    ///
    /// If `payload` is larger than the union (128 bytes): no sub-operation is.
    pub fn new<T: IntoBytes + Immutable + ?Sized>(cmd: u32, domain: DomId, payload: &T) -> Domctl {
        let mut domctl = Domctl {
            cmd,
            interface_version: INTERFACE_VERSION,
            domain: domain.0,
            pad: [0; 3],
            payload: [0; 128],
        };
        let bytes = payload.as_bytes();
        assert!(
            bytes.len() <= domctl.payload.len(),
            "a domctl payload of {} bytes does not fit the 128-byte union",
            bytes.len()
        );
        domctl.payload[..bytes.len()].copy_from_slice(bytes);
        domctl
    }

    /// The union read back as `T` (its first `size_of::<T>()` bytes).
    ///
    /// # Panics
    ///
    /// If `T` is larger than the union.
    pub fn payload<T: FromBytes>(&self) -> T {
        match T::read_from_prefix(&self.payload) {
            Ok((value, _)) => value,
            Err(_) => panic!(
                "a domctl payload of {} bytes does not fit the 128-byte union",
                std::mem::size_of::<T>()
            ),
        }
    }
}

/// Issues a domctl and returns the envelope as Xen left it (domctls return data in place).
pub fn call(privcmd: &Privcmd, name: &str, domctl: Domctl) -> Result<Domctl> {
    let mut buffer = privcmd.buffer(1)?;
    buffer.write(&domctl);
    // SAFETY: the one argument is a hypercall buffer holding a whole `struct xen_domctl`.
    unsafe { privcmd.hypercall(name, hypercall::DOMCTL, [buffer.address(), 0, 0, 0, 0]) }.map_err(
        |error| Error {
            operation: format!("{name} on domain {}", domctl.domain),
            ..error
        },
    )?;
    Ok(buffer.read())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_layout_matches_xen_4_17() {
        // sizeof(struct xen_domctl) and offsetof(..., u) in xen/include/public/domctl.h.
        assert_eq!(std::mem::size_of::<Domctl>(), 144);
        assert_eq!(std::mem::offset_of!(Domctl, interface_version), 4);
        assert_eq!(std::mem::offset_of!(Domctl, domain), 8);
        assert_eq!(std::mem::offset_of!(Domctl, pad), 10);
        assert_eq!(std::mem::offset_of!(Domctl, payload), 16);
    }

    #[test]
    fn payload_round_trips() {
        let domctl = Domctl::new(VM_EVENT_OP, DomId(7), &[1u32, 2, 3]);
        assert_eq!(domctl.interface_version, 0x15);
        assert_eq!(domctl.domain, 7);
        assert_eq!(domctl.payload::<[u32; 3]>(), [1, 2, 3]);
    }
}
