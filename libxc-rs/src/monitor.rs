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

use nix::errno::Errno;
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use xen_abi::{
    xen_domctl_getdomaininfo, xen_domctl_monitor_op, xen_domctl_shadow_op, xen_domctl_vm_event_op,
    xen_domctl_vm_event_op__bindgen_ty_1,
};

use crate::abi::member;
use crate::domctl::{self, Domctl};
use crate::error::{Error, Result};
use crate::evtchn::EvtchnPort;
use crate::frame::Mfn;
use crate::ioctl::{privcmd_mmapbatch_v2, PrivcmdMmapbatchV2};
use crate::memory::{acquire_resource_frames, RESOURCE_VM_EVENT_RING};
use crate::privcmd::{Privcmd, PAGE_SIZE};
use crate::DomId;

const DOMCTL_PAUSEDOMAIN: u32 = xen_abi::XEN_DOMCTL_pausedomain;
const DOMCTL_UNPAUSEDOMAIN: u32 = xen_abi::XEN_DOMCTL_unpausedomain;
const DOMCTL_SHADOW_OP: u32 = xen_abi::XEN_DOMCTL_shadow_op;
const SHADOW_OP_OFF: u32 = xen_abi::XEN_DOMCTL_SHADOW_OP_OFF;
const SHADOW_OP_ENABLE_LOGDIRTY: u32 = xen_abi::XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY;
const SHADOW_OP_GET_ALLOCATION: u32 = xen_abi::XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION;
const VM_EVENT_ENABLE: u32 = xen_abi::XEN_VM_EVENT_ENABLE;
const VM_EVENT_DISABLE: u32 = xen_abi::XEN_VM_EVENT_DISABLE;
/// Our patch 0006.
const VM_EVENT_ATTACH: u32 = xen_abi::XEN_VM_EVENT_ATTACH;
/// `XEN_DOMCTL_VM_EVENT_OP_MONITOR`.
pub const VM_EVENT_MODE_MONITOR: u32 = xen_abi::XEN_DOMCTL_VM_EVENT_OP_MONITOR;

/// The port of a vm_event op's answer: `u.enable.port` (out), which is `u.version` too.
fn vm_event_port(op: &xen_domctl_vm_event_op) -> u32 {
    member::<u32>(&op.u)
}

/// `XEN_DOMCTL_vm_event_op` with any operation and mode (for tests of Xen's checks); returns
/// the union's first word (the port for ENABLE, the version for GET_VERSION).
pub fn vm_event_op_raw(privcmd: &Privcmd, domain: DomId, op: u32, mode: u32) -> Result<u32> {
    let name = format!("XEN_DOMCTL_vm_event_op(op {op}, mode {mode})");
    vm_event_op_mode(privcmd, domain, op, mode, &name).map(|op| vm_event_port(&op))
}

fn vm_event_op(
    privcmd: &Privcmd,
    domain: DomId,
    op: u32,
    name: &str,
) -> Result<xen_domctl_vm_event_op> {
    vm_event_op_mode(privcmd, domain, op, VM_EVENT_MODE_MONITOR, name)
}

fn vm_event_op_mode(
    privcmd: &Privcmd,
    domain: DomId,
    op: u32,
    mode: u32,
    name: &str,
) -> Result<xen_domctl_vm_event_op> {
    let payload = xen_domctl_vm_event_op {
        op,
        mode,
        u: xen_domctl_vm_event_op__bindgen_ty_1::default(),
    };
    let domctl = domctl::call(
        privcmd,
        name,
        Domctl::new(domctl::VM_EVENT_OP, domain, &payload),
    )?;
    Ok(domctl.payload())
}

/// `xc_monitor_enable`'s hypercall: creates the monitor ring (for PV, Xen allocates it and
/// switches the domain to its mem_access shadow mode). Returns Xen's end of the ring's event
/// channel. `-EBUSY` when a ring exists already; `-EOPNOTSUPP` for a domain Xen cannot
/// monitor (a 32-bit PV guest, an HVM guest without a monitor ring page), said so.
pub fn monitor_enable(privcmd: &Privcmd, domain: DomId) -> Result<EvtchnPort> {
    let op = vm_event_op(
        privcmd,
        domain,
        VM_EVENT_ENABLE,
        "XEN_DOMCTL_vm_event_op(ENABLE, MONITOR)",
    )
    .map_err(explain_enable_error)?;
    Ok(EvtchnPort(vm_event_port(&op)))
}

/// What an `-EOPNOTSUPP` from enabling the monitor ring means, for a person.
fn explain_enable_error(error: Error) -> Error {
    if !error.is(Errno::EOPNOTSUPP) {
        return error;
    }
    Error {
        reason: "Xen cannot monitor this domain: PV mem_access covers 64-bit PV guests (32-bit \
                 ones are refused), HVM needs the domain's monitor ring page"
            .to_string(),
        ..error
    }
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

/// `XEN_VM_EVENT_ATTACH` (our patch 0006): the port of a monitor ring whose listener went
/// away without disabling it (it crashed or was killed, so its end of the event channel
/// closed), for a new listener to take it over: bind the port
/// ([`crate::evtchn::Evtchn::bind_interdomain`]), map the ring ([`RingMapping::map`]) and
/// answer the requests still on it ([`crate::ring::BackRing::new`] attaches at the shared
/// `rsp_prod`, so they are the first it takes). Changes nothing in Xen.
///
/// Errors: `EBUSY` while a listener's event channel is bound to the ring (so this also
/// tells whether a ring has a listener), `ENODEV` when there is no ring. Xen answers 0 for
/// operations on a dying domain without doing them: a port 0 is taken as `ENODEV` here.
///
/// ```no_run
/// use libxc::evtchn::Evtchn;
/// use libxc::monitor::{monitor_attach, RingMapping};
/// use libxc::privcmd::Privcmd;
/// use libxc::DomId;
///
/// let privcmd = Privcmd::open()?;
/// let domain = DomId(5);
/// let port = monitor_attach(&privcmd, domain)?;
/// let evtchn = Evtchn::open()?;
/// let local = evtchn.bind_interdomain(domain, port)?;
/// let ring = RingMapping::map(&privcmd, domain)?;
/// # let _ = (local, ring);
/// # Ok::<(), libxc::Error>(())
/// ```
pub fn monitor_attach(privcmd: &Privcmd, domain: DomId) -> Result<EvtchnPort> {
    const NAME: &str = "XEN_DOMCTL_vm_event_op(ATTACH, MONITOR)";
    let port = vm_event_port(&vm_event_op(privcmd, domain, VM_EVENT_ATTACH, NAME)?);
    if port == 0 {
        return Err(Error {
            operation: format!("{NAME} on domain {}", domain.0),
            errno: Some(Errno::ENODEV),
            reason: "Xen gave no port (the domain is dying)".into(),
        });
    }
    Ok(EvtchnPort(port))
}

const DOMCTL_GETDOMAININFO: u32 = xen_abi::XEN_DOMCTL_getdomaininfo;
const DOMINF_DYING: u32 = xen_abi::XEN_DOMINF_dying;
const DOMINF_HVM_GUEST: u32 = xen_abi::XEN_DOMINF_hvm_guest;
const DOMINF_SHUTDOWN: u32 = xen_abi::XEN_DOMINF_shutdown;

/// What `XEN_DOMCTL_getdomaininfo` says of a domain (the fields a listener needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainInfo {
    /// An HVM guest (frames are guest frames) rather than PV (machine frames).
    pub hvm: bool,
    /// Being destroyed (`XEN_DOMINF_dying`): it will never run again.
    pub dying: bool,
    /// Shut down (`XEN_DOMINF_shutdown`: powered off, crashed, ...), kept by the toolstack.
    pub shutdown: bool,
}

/// `xc_domain_getinfo` for one domain. Xen answers with the first domain whose id is at
/// least `domain`'s, so another id means `domain` does not exist: `ESRCH`, as when there
/// is no domain from that id on.
pub fn domain_info(privcmd: &Privcmd, domain: DomId) -> Result<DomainInfo> {
    let domctl = domctl::call(
        privcmd,
        "XEN_DOMCTL_getdomaininfo",
        Domctl::new(DOMCTL_GETDOMAININFO, domain, &[0u64; 0]),
    )?;
    let info: xen_domctl_getdomaininfo = domctl.payload();
    DomainInfo::decode(domain, u32::from(info.domain), info.flags)
}

impl DomainInfo {
    /// The answer's `domain` (its low 16 bits) and `flags` words, for a request about
    /// `domain`.
    fn decode(domain: DomId, id: u32, flags: u32) -> Result<DomainInfo> {
        if id & 0xffff != u32::from(domain.0) {
            return Err(Error {
                operation: format!("XEN_DOMCTL_getdomaininfo on domain {}", domain.0),
                errno: Some(Errno::ESRCH),
                reason: format!("no domain {} (the next one is {})", domain.0, id & 0xffff),
            });
        }
        Ok(DomainInfo {
            hvm: flags & DOMINF_HVM_GUEST != 0,
            dying: flags & DOMINF_DYING != 0,
            shutdown: flags & DOMINF_SHUTDOWN != 0,
        })
    }
}

/// The frame of `domain`'s shared_info page (`xc_domain_getinfo`'s `shared_info_frame`).
pub fn shared_info_frame(privcmd: &Privcmd, domain: DomId) -> Result<Mfn> {
    let domctl = domctl::call(
        privcmd,
        "XEN_DOMCTL_getdomaininfo",
        Domctl::new(DOMCTL_GETDOMAININFO, domain, &[0u64; 0]),
    )?;
    let info: xen_domctl_getdomaininfo = domctl.payload();
    if info.domain != domain.0 {
        return Err(Error {
            operation: "XEN_DOMCTL_getdomaininfo".into(),
            errno: Some(Errno::ESRCH),
            reason: format!("no domain {}", domain.0),
        });
    }
    Ok(Mfn(info.shared_info_frame))
}

/// Whether `domain` is an HVM guest (`xc_domain_getinfo`'s `hvm`): its frames are guest
/// frames; a PV domain's are machine frames.
pub fn domain_is_hvm(privcmd: &Privcmd, domain: DomId) -> Result<bool> {
    domain_info(privcmd, domain).map(|info| info.hvm)
}

const DOMCTL_SET_ACCESS_REQUIRED: u32 = xen_abi::XEN_DOMCTL_set_access_required;

/// `xc_domain_set_access_required`: whether a violation with no listener crashes the domain
/// (on) or relaxes the page to rwx (off), as `p2m_mem_access_check` decides.
pub fn set_access_required(privcmd: &Privcmd, domain: DomId, required: bool) -> Result<()> {
    let payload = xen_abi::xen_domctl_set_access_required {
        access_required: u8::from(required),
    };
    let domctl = Domctl::new(DOMCTL_SET_ACCESS_REQUIRED, domain, &payload);
    domctl::call(privcmd, "XEN_DOMCTL_set_access_required", domctl).map(drop)
}

const DOMCTL_MONITOR_OP: u32 = xen_abi::XEN_DOMCTL_monitor_op;
const MONITOR_OP_GET_CAPABILITIES: u32 = xen_abi::XEN_DOMCTL_MONITOR_OP_GET_CAPABILITIES;
/// `XEN_DOMCTL_MONITOR_EVENT_MEM_ACCESS` (added by our patch 0020): the domain raises
/// mem_access events for the rights set with `XENMEM_access_op`. A capability only.
pub const MONITOR_EVENT_MEM_ACCESS: u32 = xen_abi::XEN_DOMCTL_MONITOR_EVENT_MEM_ACCESS;

/// `xc_monitor_get_capabilities`: the `XEN_DOMCTL_MONITOR_EVENT_*` bits the domain supports
/// (1 << event each). For a PV domain on our Xen: [`MONITOR_EVENT_MEM_ACCESS`].
pub fn monitor_get_capabilities(privcmd: &Privcmd, domain: DomId) -> Result<u32> {
    let request = xen_domctl_monitor_op {
        op: MONITOR_OP_GET_CAPABILITIES,
        ..xen_domctl_monitor_op::default()
    };
    let domctl = Domctl::new(DOMCTL_MONITOR_OP, domain, &request);
    let done = domctl::call(privcmd, "XEN_DOMCTL_monitor_op(GET_CAPABILITIES)", domctl)?;
    Ok(done.payload::<xen_domctl_monitor_op>().event)
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
    let payload = xen_domctl_shadow_op {
        op: SHADOW_OP_GET_ALLOCATION,
        ..xen_domctl_shadow_op::default()
    };
    let domctl = domctl::call(
        privcmd,
        "XEN_DOMCTL_shadow_op(GET_ALLOCATION)",
        Domctl::new(DOMCTL_SHADOW_OP, domain, &payload),
    )?;
    Ok(domctl.payload::<xen_domctl_shadow_op>().mb)
}

/// `xc_shadow_control(ENABLE_LOGDIRTY)`: puts the domain on shadow page tables that track
/// the frames it writes, as live migration does. The baseline of a monitored guest's
/// overhead: the same shadow paging, without mem_access.
pub fn log_dirty_enable(privcmd: &Privcmd, domain: DomId) -> Result<()> {
    shadow_op(
        privcmd,
        domain,
        SHADOW_OP_ENABLE_LOGDIRTY,
        "ENABLE_LOGDIRTY",
    )
}

/// `xc_shadow_control(OFF)`: ends log-dirty mode (and shadow paging with it).
pub fn log_dirty_disable(privcmd: &Privcmd, domain: DomId) -> Result<()> {
    shadow_op(privcmd, domain, SHADOW_OP_OFF, "OFF")
}

fn shadow_op(privcmd: &Privcmd, domain: DomId, op: u32, name: &str) -> Result<()> {
    let payload = xen_domctl_shadow_op {
        op,
        ..xen_domctl_shadow_op::default()
    };
    domctl::call(
        privcmd,
        &format!("XEN_DOMCTL_shadow_op({name})"),
        Domctl::new(DOMCTL_SHADOW_OP, domain, &payload),
    )
    .map(drop)
}

/// The monitor ring of a PV domain, mapped into this process; unmapped on drop.
pub struct RingMapping {
    mapping: ForeignMapping,
    /// The ring's machine frame (owned by `DOMID_XEN`).
    pub frame: Mfn,
}

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
        let mapping = ForeignMapping::map(privcmd, DomId::XEN, &[frame], true)?;
        // Xen hands out the frame without a reference for the caller: a ring disabled (and
        // another one enabled, for any domain) between the two calls could leave us mapping
        // a page that is no longer this domain's ring. The mapping holds the page now; if it
        // is still the ring, it stays the page we talk to.
        let now = acquire_resource_frames(
            privcmd,
            domain,
            RESOURCE_VM_EVENT_RING,
            VM_EVENT_MODE_MONITOR,
        )?;
        if now[..] != [frame] {
            return Err(Error::invalid(
                "XENMEM_acquire_resource(vm_event ring)",
                "the ring changed while it was being mapped (disabled by someone else?)",
            ));
        }
        Ok(RingMapping { mapping, frame })
    }

    /// The start of the ring page.
    pub fn as_ptr(&self) -> *mut u8 {
        self.mapping.as_ptr()
    }
}

/// Frames of another domain (or of Xen, `DOMID_XEN`) mapped into this process with
/// `IOCTL_PRIVCMD_MMAPBATCH_V2`, as `xenforeignmemory_map` does; unmapped on drop. For a PV
/// domain the frames are machine frames, and Xen checks the domain owns each one.
pub struct ForeignMapping {
    base: NonNull<u8>,
    pages: usize,
}

impl ForeignMapping {
    /// Maps `frames` of `domain` (read-only unless `writable`).
    pub fn map(
        privcmd: &Privcmd,
        domain: DomId,
        frames: &[Mfn],
        writable: bool,
    ) -> Result<ForeignMapping> {
        let name = format!(
            "IOCTL_PRIVCMD_MMAPBATCH_V2(domain {:#x}, {} frames)",
            domain.0,
            frames.len()
        );
        let length = NonZeroUsize::new(frames.len() * PAGE_SIZE)
            .ok_or_else(|| Error::invalid(&name, "no frames"))?;
        let num = u32::try_from(frames.len()).map_err(|_| Error::invalid(&name, "too many"))?;
        let mut protection = ProtFlags::PROT_READ;
        if writable {
            protection |= ProtFlags::PROT_WRITE;
        }
        // SAFETY: a fresh shared mapping of the privcmd device, which privcmd then backs
        // with the foreign frames; nothing aliases it yet.
        let base = unsafe {
            mmap(
                None,
                length,
                protection,
                MapFlags::MAP_SHARED,
                privcmd.fd(),
                0,
            )
        }
        .map_err(|errno| Error::from_errno("mmap /dev/xen/privcmd", errno))?;
        let numbers: Vec<u64> = frames.iter().map(|frame| frame.0).collect();
        let mut errors = vec![0i32; frames.len()];
        let batch = PrivcmdMmapbatchV2 {
            num,
            dom: domain.0,
            pad: 0,
            addr: base.as_ptr() as u64,
            arr: numbers.as_ptr(),
            err: errors.as_mut_ptr(),
        };
        // SAFETY: the ioctl reads `batch` and the frame list and writes one int per frame into
        // `errors`, all alive for the call; `addr` is the privcmd mapping made above.
        let result = unsafe { privcmd_mmapbatch_v2(privcmd.fd().as_raw_fd(), &batch) };
        let failure = match result {
            Err(errno) => Some(errno),
            Ok(_) => errors
                .iter()
                .find(|&&error| error != 0)
                .map(|&error| Errno::from_raw(-error)),
        };
        if let Some(errno) = failure {
            // SAFETY: the mapping made above, not yet handed out.
            let _ = unsafe { munmap(base, length.get()) };
            return Err(Error::from_errno(name, errno));
        }
        Ok(ForeignMapping {
            base: base.cast(),
            pages: frames.len(),
        })
    }

    /// The start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Reads the `index`-th u64 of the mapping (volatile: the other domain may change it).
    pub fn read_u64(&self, index: usize) -> Option<u64> {
        if index >= self.pages * PAGE_SIZE / 8 {
            return None;
        }
        // SAFETY: in bounds (checked), 8-byte aligned (page-aligned base), mapped readable for
        // the life of `self`.
        Some(unsafe { self.base.as_ptr().cast::<u64>().add(index).read_volatile() })
    }
}

impl Drop for ForeignMapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made by `map`.
        let _ = unsafe { munmap(self.base.cast(), self.pages * PAGE_SIZE) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_refusal_says_which_guests_are_monitored() {
        let refused = Error::from_errno("enable", Errno::EOPNOTSUPP);
        let explained = explain_enable_error(refused);
        assert!(explained.is(Errno::EOPNOTSUPP));
        assert!(explained.reason.contains("32-bit"), "{}", explained.reason);

        let busy = Error::from_errno("enable", Errno::EBUSY);
        assert_eq!(explain_enable_error(busy.clone()), busy);
    }

    #[test]
    fn domain_info_reads_flags_and_refuses_the_next_domain() {
        // A PV domain, running (XEN_DOMINF_running = 1 << 5).
        let info = DomainInfo::decode(DomId(5), 5, 1 << 5).unwrap();
        assert_eq!(
            info,
            DomainInfo {
                hvm: false,
                dying: false,
                shutdown: false
            }
        );
        // Powered off (reason 0 in bits 16..) and preserved; then dying.
        assert!(
            DomainInfo::decode(DomId(5), 5, DOMINF_SHUTDOWN)
                .unwrap()
                .shutdown
        );
        assert!(DomainInfo::decode(DomId(5), 5, DOMINF_DYING).unwrap().dying);
        assert!(
            DomainInfo::decode(DomId(5), 5, DOMINF_HVM_GUEST)
                .unwrap()
                .hvm
        );
        // Xen answered about the next domain: this one is gone.
        let error = DomainInfo::decode(DomId(5), 7, 0).unwrap_err();
        assert_eq!(error.errno, Some(Errno::ESRCH));
        assert!(error.reason.contains("the next one is 7"), "{error}");
    }
}
