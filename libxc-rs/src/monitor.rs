//! The monitor ring (`XEN_DOMCTL_vm_event_op`, mode MONITOR) and the domain controls around
//! it: what `xc_monitor_enable` / `xc_monitor_disable` and `xenforeignmemory_map_resource` do,
//! for a PV domain whose ring Xen allocates.
//!
//! The PV flow (libxenctrl's cannot work for PV: it asks for an HVM param):
//! 1. `XEN_DOMCTL_vm_event_op(ENABLE, MONITOR)`: Xen allocates the ring page (owned by
//!    `DOMID_XEN`), initialises it, binds an unbound event channel and returns its port;
//! 2. `XENMEM_acquire_resource(XENMEM_resource_vm_event_ring, MONITOR)`: the ring's machine
//!    frame;
//! 3. `IOCTL_PRIVCMD_MMAPBATCH_V2` with `DOMID_XEN`: the mapping;
//! 4. `IOCTL_EVTCHN_BIND_INTERDOMAIN` on the port (see [`crate::evtchn`]).

use std::num::NonZeroUsize;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;

use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};

use crate::domctl::{self, Domctl};
use crate::error::{Error, Result};
use crate::evtchn::EvtchnPort;
use crate::ioctl::{PrivcmdMmapbatchV2, IOCTL_PRIVCMD_MMAPBATCH_V2};
use crate::memory::{acquire_resource_frames, RESOURCE_VM_EVENT_RING};
use crate::privcmd::{Plain, Privcmd};
use crate::DomId;

/// `#define XEN_DOMCTL_pausedomain 3`
const DOMCTL_PAUSEDOMAIN: u32 = 3;
/// `#define XEN_DOMCTL_unpausedomain 4`
const DOMCTL_UNPAUSEDOMAIN: u32 = 4;
/// `#define XEN_DOMCTL_shadow_op 10`
const DOMCTL_SHADOW_OP: u32 = 10;
/// `#define XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION 30`
const SHADOW_OP_GET_ALLOCATION: u32 = 30;
/// `#define XEN_VM_EVENT_ENABLE 0`
const VM_EVENT_ENABLE: u32 = 0;
/// `#define XEN_VM_EVENT_DISABLE 1`
const VM_EVENT_DISABLE: u32 = 1;
/// `#define XEN_DOMCTL_VM_EVENT_OP_MONITOR 2`
pub const VM_EVENT_MODE_MONITOR: u32 = 2;

/// `struct xen_domctl_vm_event_op`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct VmEventOp {
    op: u32,
    mode: u32,
    /// `u.enable.port` (out) or `u.version`.
    port: u32,
}

// SAFETY: integers only.
unsafe impl Plain for VmEventOp {}

/// `struct xen_domctl_shadow_op` (the fields before the dirty-bitmap handle are enough).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct ShadowOp {
    op: u32,
    mode: u32,
    mb: u32,
    pad: u32,
    dirty_bitmap: u64,
    pages: u64,
    stats: [u32; 2],
}

// SAFETY: integers only.
unsafe impl Plain for ShadowOp {}

/// `XEN_DOMCTL_vm_event_op` with any operation and mode (for tests of Xen's checks); returns
/// the union's first word (the port for ENABLE, the version for GET_VERSION).
pub fn vm_event_op_raw(privcmd: &Privcmd, domain: DomId, op: u32, mode: u32) -> Result<u32> {
    let name = format!("XEN_DOMCTL_vm_event_op(op {op}, mode {mode})");
    vm_event_op_mode(privcmd, domain, op, mode, &name).map(|op| op.port)
}

fn vm_event_op(privcmd: &Privcmd, domain: DomId, op: u32, name: &str) -> Result<VmEventOp> {
    vm_event_op_mode(privcmd, domain, op, VM_EVENT_MODE_MONITOR, name)
}

fn vm_event_op_mode(
    privcmd: &Privcmd,
    domain: DomId,
    op: u32,
    mode: u32,
    name: &str,
) -> Result<VmEventOp> {
    let payload = VmEventOp { op, mode, port: 0 };
    let domctl = domctl::call(
        privcmd,
        name,
        Domctl::new(domctl::VM_EVENT_OP, domain, &payload),
    )?;
    Ok(domctl.payload())
}

/// `xc_monitor_enable`'s hypercall: creates the monitor ring (for PV, Xen allocates it and
/// switches the domain to its mem_access shadow mode). Returns Xen's end of the ring's event
/// channel. `-EBUSY` when a ring exists already.
pub fn monitor_enable(privcmd: &Privcmd, domain: DomId) -> Result<EvtchnPort> {
    let op = vm_event_op(
        privcmd,
        domain,
        VM_EVENT_ENABLE,
        "XEN_DOMCTL_vm_event_op(ENABLE, MONITOR)",
    )?;
    Ok(EvtchnPort(op.port))
}

/// `xc_monitor_disable`: removes the monitor ring. `-EINVAL` when there is none.
pub fn monitor_disable(privcmd: &Privcmd, domain: DomId) -> Result<()> {
    vm_event_op(
        privcmd,
        domain,
        VM_EVENT_DISABLE,
        "XEN_DOMCTL_vm_event_op(DISABLE, MONITOR)",
    )
    .map(drop)
}

/// `#define XEN_DOMCTL_getdomaininfo 5`
const DOMCTL_GETDOMAININFO: u32 = 5;
/// `#define XEN_DOMINF_hvm_guest (1U<<1)`
const DOMINF_HVM_GUEST: u32 = 1 << 1;

/// Whether `domain` is an HVM guest (`xc_domain_getinfo`'s `hvm`): its frames are guest
/// frames; a PV domain's are machine frames.
pub fn domain_is_hvm(privcmd: &Privcmd, domain: DomId) -> Result<bool> {
    let domctl = domctl::call(
        privcmd,
        "XEN_DOMCTL_getdomaininfo",
        Domctl::new(DOMCTL_GETDOMAININFO, domain, &[0u64; 0]),
    )?;
    let [id, flags]: [u32; 2] = domctl.payload();
    if id & 0xffff != u32::from(domain.0) {
        return Err(Error {
            operation: "XEN_DOMCTL_getdomaininfo".into(),
            errno: Some(3),
            reason: format!("no domain {} (the next one is {})", domain.0, id & 0xffff),
        });
    }
    Ok(flags & DOMINF_HVM_GUEST != 0)
}

/// `#define XEN_DOMCTL_set_access_required 64`
const DOMCTL_SET_ACCESS_REQUIRED: u32 = 64;

/// `xc_domain_set_access_required`: whether a violation with no listener crashes the domain
/// (on) or relaxes the page to rwx (off), as `p2m_mem_access_check` decides.
pub fn set_access_required(privcmd: &Privcmd, domain: DomId, required: bool) -> Result<()> {
    let domctl = Domctl::new(DOMCTL_SET_ACCESS_REQUIRED, domain, &u8::from(required));
    domctl::call(privcmd, "XEN_DOMCTL_set_access_required", domctl).map(drop)
}

/// `xc_domain_pause`.
pub fn domain_pause(privcmd: &Privcmd, domain: DomId) -> Result<()> {
    let domctl = Domctl::new(DOMCTL_PAUSEDOMAIN, domain, &[0u64; 0]);
    domctl::call(privcmd, "XEN_DOMCTL_pausedomain", domctl).map(drop)
}

/// `xc_domain_unpause`.
pub fn domain_unpause(privcmd: &Privcmd, domain: DomId) -> Result<()> {
    let domctl = Domctl::new(DOMCTL_UNPAUSEDOMAIN, domain, &[0u64; 0]);
    domctl::call(privcmd, "XEN_DOMCTL_unpausedomain", domctl).map(drop)
}

/// `xc_shadow_control(GET_ALLOCATION)`: the domain's shadow pool in MiB (0 when it does not
/// run on shadows).
pub fn shadow_allocation_mib(privcmd: &Privcmd, domain: DomId) -> Result<u32> {
    let payload = ShadowOp {
        op: SHADOW_OP_GET_ALLOCATION,
        ..ShadowOp::default()
    };
    let domctl = domctl::call(
        privcmd,
        "XEN_DOMCTL_shadow_op(GET_ALLOCATION)",
        Domctl::new(DOMCTL_SHADOW_OP, domain, &payload),
    )?;
    Ok(domctl.payload::<ShadowOp>().mb)
}

/// The monitor ring of a PV domain, mapped into this process; unmapped on drop.
pub struct RingMapping {
    base: NonNull<u8>,
    /// The ring's machine frame (owned by `DOMID_XEN`).
    pub frame: u64,
}

const PAGE_SIZE: usize = 4096;

impl RingMapping {
    /// Maps the monitor ring of `domain` (which must have one).
    pub fn map(privcmd: &Privcmd, domain: DomId) -> Result<RingMapping> {
        let frames = acquire_resource_frames(
            privcmd,
            domain,
            RESOURCE_VM_EVENT_RING,
            VM_EVENT_MODE_MONITOR,
        )?;
        let [frame] = frames[..] else {
            return Err(Error::invalid(
                "XENMEM_acquire_resource(vm_event ring)",
                format!("expected one frame, Xen gave {}", frames.len()),
            ));
        };
        let length = NonZeroUsize::new(PAGE_SIZE).expect("not zero");
        // SAFETY: a fresh shared mapping of the privcmd device, which privcmd then backs
        // with the foreign frame; nothing aliases it yet.
        let base = unsafe {
            mmap(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                privcmd.fd(),
                0,
            )
        }
        .map_err(|errno| Error::from_errno("mmap /dev/xen/privcmd", errno))?;
        let mut error = 0i32;
        let mut batch = PrivcmdMmapbatchV2 {
            num: 1,
            dom: DomId::XEN.0,
            addr: base.as_ptr() as u64,
            arr: &frame,
            err: &mut error,
        };
        // SAFETY: the ioctl reads `batch`, the frame list (one u64) and writes one int of
        // errors, all alive for the call; `addr` is the privcmd mapping made above.
        let result = unsafe {
            nix::libc::ioctl(
                privcmd.fd().as_raw_fd(),
                IOCTL_PRIVCMD_MMAPBATCH_V2 as _,
                &mut batch as *mut PrivcmdMmapbatchV2,
            )
        };
        let failure = if result < 0 {
            Some(nix::errno::Errno::last())
        } else if error != 0 {
            Some(nix::errno::Errno::from_raw(-error))
        } else {
            None
        };
        if let Some(errno) = failure {
            // SAFETY: the mapping made above, not yet handed out.
            let _ = unsafe { munmap(base, PAGE_SIZE) };
            return Err(Error::from_errno(
                "IOCTL_PRIVCMD_MMAPBATCH_V2(DOMID_XEN, monitor ring)",
                errno,
            ));
        }
        Ok(RingMapping {
            base: base.cast(),
            frame,
        })
    }

    /// The start of the ring page.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }
}

impl Drop for RingMapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made by `map`, one page.
        let _ = unsafe { munmap(self.base.cast(), PAGE_SIZE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layouts_match_xen_4_17() {
        // xen/include/public/domctl.h: the union starts at offset 16 of struct xen_domctl.
        assert_eq!(size_of::<VmEventOp>(), 12);
        assert_eq!(offset_of!(VmEventOp, port), 8);
        assert_eq!(size_of::<ShadowOp>(), 40);
        assert_eq!(offset_of!(ShadowOp, mb), 8);
        assert_eq!(offset_of!(ShadowOp, dirty_bitmap), 16);
    }
}
