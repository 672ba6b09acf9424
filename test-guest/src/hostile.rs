//! The `hostile-calls` pattern: an unprivileged guest asks Xen for the mem_access control
//! interface, which only a privileged domain may use, and reports each answer.
//!
//! After `GO` the guest reads, from the go page (`u64` words after `GO`'s): its own domain
//! id (word 1), another guest's (word 2) and one machine frame of that guest (word 3), all
//! written by dom0 before `GO`. It then makes every [`Call`] against every [`Target`], in
//! the order of [`Call::ALL`] and [`Target::ALL`], then the [`Extra`] calls, printing one
//! line each,
//!
//! ```text
//! TEST-GUEST HOSTILE <call> <target> rc=<decimal result, 0 or a negative errno>
//! TEST-GUEST HOSTILE <extra> - rc=<rc>
//! ```
//!
//! then `HOSTILE-DONE calls=<n>`, and the pattern's one touch (a write to buffer page 0):
//! the guest is still running normally.
//!
//! # What Xen 4.17 answers (dummy XSM policy; the host half holds the same table)
//!
//! - `XENMEM_access_op` (`mem_access_memop`): `rcu_lock_live_remote_domain_by_id` gives
//!   `-ESRCH` for ids the domain hash does not hold (`DOMID_SELF` included: only a few
//!   hypercalls translate it) and `-EPERM` for the caller's own id; for dom0 and the other
//!   guest `xsm_mem_access(XSM_DM_PRIV)` gives `-EPERM` (the guest is neither their device
//!   model nor the control domain). Nothing of the operation is looked at before.
//! - Domctls (`do_domctl`): the argument is copied (`-EFAULT`), its interface version checked
//!   (`-EACCES`), the domain looked up (`-ESRCH`), then `xsm_domctl(XSM_PRIV)` refuses
//!   (`-EPERM`) whatever the command. `XEN_DOMCTL_vm_event_op` with `DOMID_INVALID` skips
//!   the lookup, and the XSM check refuses it too.
//! - `XENMEM_acquire_resource` (`acquire_resource`): a PV caller passes
//!   `arch_acquire_resource_check`; the argument is copied (`-EFAULT`);
//!   `rcu_lock_remote_domain_by_id` as for access_op; `xsm_domain_resource_map(XSM_DM_PRIV)`
//!   gives `-EPERM`.

use core::fmt;

use xen_abi::{
    XENMEM_access_op, XENMEM_acquire_resource, XENMEM_resource_vm_event_ring,
    XEN_DOMCTL_monitor_op, XEN_DOMCTL_set_access_required, XEN_DOMCTL_vm_event_op,
    XEN_DOMCTL_MONITOR_OP_GET_CAPABILITIES, XEN_DOMCTL_VM_EVENT_OP_MONITOR, XEN_VM_EVENT_ATTACH,
    XEN_VM_EVENT_DISABLE, XEN_VM_EVENT_ENABLE, XEN_VM_EVENT_GET_VERSION,
};
use zerocopy::IntoBytes;

use crate::hypercall::{
    DomId, Domctl, Hypercall, HypercallNr, Hypervisor, MemAccessOp, MemAcquireResource,
};
use crate::lines::{Line, Words};
use crate::text::Sink;

/// `__HYPERVISOR_domctl` (`xen.h`).
pub const DOMCTL: HypercallNr = HypercallNr::DOMCTL;
/// `DOMID_INVALID` (`xen.h`).
pub const DOMID_INVALID: DomId = DomId::INVALID;
/// A domain id no one has.
pub const NOBODY: DomId = DomId(999);
/// An address no guest may pass: the start of Xen's own virtual range for 64-bit PV guests
/// (`__HYPERVISOR_VIRT_START`, `xen_sys`'s `i64`), which Xen's guest-copy checks refuse.
pub const XEN_ADDRESS: u64 = xen_sys::__HYPERVISOR_VIRT_START as u64;

/// A domctl `cmd` for `domain` (this interface version) whose union starts with `words`.
pub fn domctl_op(cmd: u32, domain: DomId, words: &[u32]) -> Domctl {
    let mut op = Domctl {
        cmd,
        interface_version: xen_abi::XEN_DOMCTL_INTERFACE_VERSION,
        domain: domain.0,
        ..Domctl::default()
    };
    let bytes = words.as_bytes();
    op.u.as_mut_bytes()[..bytes.len()].copy_from_slice(bytes);
    op
}

/// Who a call names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The guest itself, by its domain id.
    OwnId,
    /// The guest itself, as `DOMID_SELF`.
    DomidSelf,
    /// dom0.
    Dom0,
    /// Another guest (monitored by dom0).
    Other,
    /// [`NOBODY`].
    Nobody,
}

impl Target {
    /// Every target, in the order they are tried.
    pub const ALL: [Self; 5] = [
        Self::OwnId,
        Self::DomidSelf,
        Self::Dom0,
        Self::Other,
        Self::Nobody,
    ];

    /// The name in `HOSTILE` lines.
    pub const fn name(self) -> &'static str {
        match self {
            Self::OwnId => "own-id",
            Self::DomidSelf => "domid-self",
            Self::Dom0 => "dom0",
            Self::Other => "other",
            Self::Nobody => "nobody",
        }
    }
}

/// One call made against each target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `XENMEM_access_op_get_access` of the default.
    GetDefault,
    /// `XENMEM_access_op_set_access` of the default to `rx`.
    SetDefault,
    /// `XENMEM_access_op_set_access` of the other guest's frame to `r`.
    SetFrame,
    /// `XENMEM_access_op_set_access_multi` of the other guest's frame to `n`.
    SetMulti,
    /// `XENMEM_access_op` op 99.
    AccessOp99,
    /// `XEN_DOMCTL_vm_event_op` ENABLE, monitor.
    VmEventEnable,
    /// `XEN_DOMCTL_vm_event_op` DISABLE, monitor.
    VmEventDisable,
    /// `XEN_DOMCTL_vm_event_op` ATTACH, monitor.
    VmEventAttach,
    /// `XEN_DOMCTL_vm_event_op` GET_VERSION.
    VmEventVersion,
    /// `XEN_DOMCTL_monitor_op` GET_CAPABILITIES.
    MonitorCapabilities,
    /// `XEN_DOMCTL_set_access_required` 0.
    SetAccessRequired,
    /// `XENMEM_acquire_resource` of the monitor ring.
    AcquireRing,
}

impl Call {
    /// Every call, in the order they are made.
    pub const ALL: [Self; 12] = [
        Self::GetDefault,
        Self::SetDefault,
        Self::SetFrame,
        Self::SetMulti,
        Self::AccessOp99,
        Self::VmEventEnable,
        Self::VmEventDisable,
        Self::VmEventAttach,
        Self::VmEventVersion,
        Self::MonitorCapabilities,
        Self::SetAccessRequired,
        Self::AcquireRing,
    ];

    /// The name in `HOSTILE` lines.
    pub const fn name(self) -> &'static str {
        match self {
            Self::GetDefault => "get-default",
            Self::SetDefault => "set-default",
            Self::SetFrame => "set-frame",
            Self::SetMulti => "set-multi",
            Self::AccessOp99 => "access-op-99",
            Self::VmEventEnable => "vm-event-enable",
            Self::VmEventDisable => "vm-event-disable",
            Self::VmEventAttach => "vm-event-attach",
            Self::VmEventVersion => "vm-event-version",
            Self::MonitorCapabilities => "monitor-capabilities",
            Self::SetAccessRequired => "set-access-required",
            Self::AcquireRing => "acquire-ring",
        }
    }
}

/// Calls that name no target, or a special one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extra {
    /// A vm_event_op domctl with interface version 0x14.
    DomctlOldVersion,
    /// A domctl whose argument is at [`XEN_ADDRESS`].
    DomctlBadPointer,
    /// `XENMEM_access_op` whose argument is at [`XEN_ADDRESS`].
    AccessOpBadPointer,
    /// `XENMEM_acquire_resource` whose argument is at [`XEN_ADDRESS`].
    AcquireBadPointer,
    /// vm_event GET_VERSION with `DOMID_INVALID`.
    VersionDomidInvalid,
    /// vm_event ENABLE with `DOMID_INVALID` (dom0's same call crashes Xen: `d` is NULL).
    EnableDomidInvalid,
}

impl Extra {
    /// Every extra call, in order.
    pub const ALL: [Self; 6] = [
        Self::DomctlOldVersion,
        Self::DomctlBadPointer,
        Self::AccessOpBadPointer,
        Self::AcquireBadPointer,
        Self::VersionDomidInvalid,
        Self::EnableDomidInvalid,
    ];

    /// The name in `HOSTILE` lines.
    pub const fn name(self) -> &'static str {
        match self {
            Self::DomctlOldVersion => "domctl-old-version",
            Self::DomctlBadPointer => "domctl-bad-pointer",
            Self::AccessOpBadPointer => "access-op-bad-pointer",
            Self::AcquireBadPointer => "acquire-bad-pointer",
            Self::VersionDomidInvalid => "vm-event-version-domid-invalid",
            Self::EnableDomidInvalid => "vm-event-enable-domid-invalid",
        }
    }
}

/// What dom0 told the guest on the go page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// The guest's own domain id.
    pub own: DomId,
    /// The other guest.
    pub other: DomId,
    /// A machine frame of the other guest.
    pub other_frame: u64,
}

impl Setup {
    /// Reads words 1 to 3 of the go page; `None` when a domain id does not fit 16 bits.
    pub fn from_go_page(words: [u64; 4]) -> Option<Self> {
        Some(Self {
            own: DomId(u16::try_from(words[1]).ok()?),
            other: DomId(u16::try_from(words[2]).ok()?),
            other_frame: words[3],
        })
    }

    fn domain(&self, target: Target) -> DomId {
        match target {
            Target::OwnId => self.own,
            Target::DomidSelf => DomId::SELF,
            Target::Dom0 => DomId::DOM0,
            Target::Other => self.other,
            Target::Nobody => NOBODY,
        }
    }
}

fn raw<H: Hypervisor + ?Sized>(hv: &H, nr: HypercallNr, args: [u64; 5]) -> i64 {
    // SAFETY: every caller passes pointers to live locals of the right type (or
    // XEN_ADDRESS, which Xen refuses to touch); Xen only reads them, or writes the OUT
    // fields of the same structure, whose locals the caller owns for the call.
    unsafe { hv.hypercall(Hypercall::new(nr, args)) }
}

fn domctl<H: Hypervisor + ?Sized>(hv: &H, mut op: Domctl) -> i64 {
    raw(
        hv,
        DOMCTL,
        [core::ptr::from_mut(&mut op) as u64, 0, 0, 0, 0],
    )
}

fn access_op<H: Hypervisor + ?Sized>(hv: &H, mut op: MemAccessOp) -> i64 {
    let op_ptr = core::ptr::from_mut(&mut op) as u64;
    raw(
        hv,
        HypercallNr::MEMORY_OP,
        [u64::from(XENMEM_access_op), op_ptr, 0, 0, 0],
    )
}

/// Makes `call` against `target`; Xen's raw result.
pub fn make<H: Hypervisor + ?Sized>(hv: &H, setup: &Setup, call: Call, target: Target) -> i64 {
    let domain = setup.domain(target);
    let access = |op: u8, pfn: u64, nr: u32, access: u8| MemAccessOp {
        op,
        access,
        domid: domain.0,
        nr,
        pfn,
        ..MemAccessOp::default()
    };
    let vm_event = |op: u32| {
        domctl_op(
            XEN_DOMCTL_vm_event_op,
            domain,
            &[op, XEN_DOMCTL_VM_EVENT_OP_MONITOR],
        )
    };
    match call {
        Call::GetDefault => access_op(hv, access(1, !0, 0, 0)),
        Call::SetDefault => access_op(hv, access(0, !0, 0, 5)),
        Call::SetFrame => access_op(hv, access(0, setup.other_frame, 1, 1)),
        Call::SetMulti => {
            let frames = [setup.other_frame];
            let accesses = [0u8];
            let mut op = access(4, 0, 1, 0);
            op.pfn_list.p = frames.as_ptr() as u64;
            op.access_list.p = accesses.as_ptr() as u64;
            access_op(hv, op)
        }
        Call::AccessOp99 => access_op(hv, access(99, 0, 0, 0)),
        Call::VmEventEnable => domctl(hv, vm_event(XEN_VM_EVENT_ENABLE)),
        Call::VmEventDisable => domctl(hv, vm_event(XEN_VM_EVENT_DISABLE)),
        Call::VmEventAttach => domctl(hv, vm_event(XEN_VM_EVENT_ATTACH)),
        Call::VmEventVersion => domctl(hv, vm_event(XEN_VM_EVENT_GET_VERSION)),
        Call::MonitorCapabilities => domctl(
            hv,
            domctl_op(
                XEN_DOMCTL_monitor_op,
                domain,
                &[XEN_DOMCTL_MONITOR_OP_GET_CAPABILITIES],
            ),
        ),
        Call::SetAccessRequired => {
            domctl(hv, domctl_op(XEN_DOMCTL_set_access_required, domain, &[0]))
        }
        Call::AcquireRing => {
            let mut frames = [0u64; 1];
            let mut request = MemAcquireResource {
                domid: domain.0,
                type_: XENMEM_resource_vm_event_ring as u16,
                id: XEN_DOMCTL_VM_EVENT_OP_MONITOR,
                nr_frames: 1,
                frame_list: xen_abi::__guest_handle_xen_pfn_t {
                    p: frames.as_mut_ptr() as u64,
                },
                ..MemAcquireResource::default()
            };
            let request_ptr = core::ptr::from_mut(&mut request) as u64;
            raw(
                hv,
                HypercallNr::MEMORY_OP,
                [u64::from(XENMEM_acquire_resource), request_ptr, 0, 0, 0],
            )
        }
    }
}

/// Makes one extra call; Xen's raw result.
pub fn make_extra<H: Hypervisor + ?Sized>(hv: &H, setup: &Setup, extra: Extra) -> i64 {
    match extra {
        Extra::DomctlOldVersion => {
            let mut op = domctl_op(
                XEN_DOMCTL_vm_event_op,
                setup.other,
                &[XEN_VM_EVENT_ENABLE, 2],
            );
            op.interface_version = 0x14;
            domctl(hv, op)
        }
        Extra::DomctlBadPointer => raw(hv, DOMCTL, [XEN_ADDRESS, 0, 0, 0, 0]),
        Extra::AccessOpBadPointer => raw(
            hv,
            HypercallNr::MEMORY_OP,
            [u64::from(XENMEM_access_op), XEN_ADDRESS, 0, 0, 0],
        ),
        Extra::AcquireBadPointer => raw(
            hv,
            HypercallNr::MEMORY_OP,
            [u64::from(XENMEM_acquire_resource), XEN_ADDRESS, 0, 0, 0],
        ),
        Extra::VersionDomidInvalid => domctl(
            hv,
            domctl_op(
                XEN_DOMCTL_vm_event_op,
                DOMID_INVALID,
                &[XEN_VM_EVENT_GET_VERSION, 2],
            ),
        ),
        Extra::EnableDomidInvalid => domctl(
            hv,
            domctl_op(
                XEN_DOMCTL_vm_event_op,
                DOMID_INVALID,
                &[XEN_VM_EVENT_ENABLE, 2],
            ),
        ),
    }
}

/// `HOSTILE <call> <target> rc=<rc>`: one call of the pattern and its raw result
/// (target `-` for an extra call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hostile<'a> {
    /// The call's name.
    pub call: &'a str,
    /// The target's name.
    pub target: &'a str,
    /// Xen's result: 0 or a negative errno.
    pub rc: i64,
}

impl fmt::Display for Hostile<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HOSTILE {} {} rc={}", self.call, self.target, self.rc)
    }
}

impl<'a> Line<'a> for Hostile<'a> {
    fn parse(body: &'a str) -> Option<Self> {
        let mut words = Words::after(body, "HOSTILE")?;
        let line = Hostile {
            call: words.next()?,
            target: words.next()?,
            rc: words.dec("rc")?,
        };
        words.end()?;
        Some(line)
    }
}

/// Writes [`Hostile`].
pub fn write_line(out: &mut impl Sink, call: &str, target: &str, rc: i64) {
    let _ = write!(out, "{}", Hostile { call, target, rc });
}

/// `HOSTILE-DONE calls=<n>`: the pattern made `n` calls, one [`Hostile`] line each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostileDone {
    /// The calls made.
    pub calls: usize,
}

impl fmt::Display for HostileDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HOSTILE-DONE calls={}", self.calls)
    }
}

impl Line<'_> for HostileDone {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "HOSTILE-DONE")?;
        let calls = words.dec("calls")?;
        words.end()?;
        Some(HostileDone { calls })
    }
}

/// Makes every call, one line each through `line`; returns how many.
pub fn run<H: Hypervisor + ?Sized>(
    hv: &H,
    setup: &Setup,
    mut line: impl FnMut(&str, &str, i64),
) -> usize {
    let mut count = 0;
    for call in Call::ALL {
        for target in Target::ALL {
            line(call.name(), target.name(), make(hv, setup, call, target));
            count += 1;
        }
    }
    for extra in Extra::ALL {
        line(extra.name(), "-", make_extra(hv, setup, extra));
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_xen::{FakeXen, Script};
    use core::cell::RefCell;
    use core::mem::size_of;

    /// A fake Xen that refuses every call (`-1`) and keeps, per call, the bytes of its
    /// argument structure, read as Xen would, in `seen`.
    fn recorder(seen: &RefCell<Vec<Vec<u8>>>) -> FakeXen<impl Script + '_> {
        FakeXen::new(move |call| {
            // Keep the argument structure's bytes, read as Xen would.
            let (pointer, size) = match call.nr {
                HypercallNr::DOMCTL => (call.args[0], size_of::<Domctl>()),
                _ => (call.args[1], 32),
            };
            let bytes = if pointer == XEN_ADDRESS {
                Vec::new()
            } else {
                // SAFETY: the wrappers pass live structures of at least `size` bytes.
                unsafe { core::slice::from_raw_parts(pointer as *const u8, size).to_vec() }
            };
            seen.borrow_mut().push(bytes);
            -1
        })
    }

    fn setup() -> Setup {
        Setup::from_go_page([0x4f47, 7, 6, 0x4_1a00]).unwrap()
    }

    #[test]
    fn the_go_page_gives_the_domains() {
        let s = setup();
        assert_eq!(
            (s.own, s.other, s.other_frame),
            (DomId(7), DomId(6), 0x4_1a00)
        );
        assert_eq!(Setup::from_go_page([0, 1 << 16, 6, 0]), None);
        assert_eq!(s.domain(Target::DomidSelf), DomId(0x7ff0));
        assert_eq!(s.domain(Target::Nobody), DomId(999));
    }

    #[test]
    fn every_call_reaches_xen_with_its_domain() {
        let seen = RefCell::new(Vec::new());
        let hv = recorder(&seen);
        let mut lines = Vec::new();
        let n = run(&hv, &setup(), |call, target, rc| {
            lines.push(format!("{call} {target} {rc}"));
        });
        assert_eq!(n, 12 * 5 + 6);
        assert_eq!(lines.len(), n);
        assert_eq!(lines[0], "get-default own-id -1");
        assert_eq!(lines[n - 1], "vm-event-enable-domid-invalid - -1");
        let calls: Vec<_> = hv.calls().into_iter().zip(seen.take()).collect();
        // get-default against own id: access op 1, domid 7, pfn ~0.
        let (call, bytes) = &calls[0];
        assert_eq!(call.nr, HypercallNr::MEMORY_OP);
        assert_eq!(call.args[0], u64::from(XENMEM_access_op));
        assert_eq!(bytes[0], 1);
        assert_eq!(u16::from_le_bytes([bytes[2], bytes[3]]), 7);
        assert_eq!(&bytes[8..16], &[0xff; 8]);
        // vm-event-enable against dom0 (call 5, target 2): domctl 56, version 0x15.
        let (call, bytes) = &calls[5 * 5 + 2];
        assert_eq!(call.nr, DOMCTL);
        assert_eq!(&bytes[0..4], &56u32.to_le_bytes());
        assert_eq!(&bytes[4..8], &0x15u32.to_le_bytes());
        assert_eq!(&bytes[8..10], &0u16.to_le_bytes());
        assert_eq!(&bytes[16..24], &[0, 0, 0, 0, 2, 0, 0, 0]);
        // acquire-ring against domid-self: type 4, id 2, one frame.
        let (call, bytes) = &calls[11 * 5 + 1];
        assert_eq!(call.args[0], u64::from(XENMEM_acquire_resource));
        assert_eq!(&bytes[0..8], &[0xf0, 0x7f, 4, 0, 2, 0, 0, 0]);
        // The bad pointers are passed as they are.
        let (call, _) = &calls[60 + 1];
        assert_eq!(call.args[0], XEN_ADDRESS);
        let (call, _) = &calls[60 + 3];
        assert_eq!(
            call.args,
            [u64::from(XENMEM_acquire_resource), XEN_ADDRESS, 0, 0, 0]
        );
    }

    #[test]
    fn lines_carry_negative_results() {
        let mut out = String::new();
        write_line(&mut out, "acquire-ring", "dom0", -1);
        assert_eq!(out, "HOSTILE acquire-ring dom0 rc=-1");
        let mut out = String::new();
        write_line(&mut out, "domctl-bad-pointer", "-", 0);
        assert_eq!(out, "HOSTILE domctl-bad-pointer - rc=0");
    }

    #[test]
    fn lines_read_back() {
        use crate::lines::tests::round_trip;
        round_trip(
            Hostile {
                call: "get-default",
                target: "own-id",
                rc: -1,
            },
            "HOSTILE get-default own-id rc=-1",
        );
        round_trip(
            Hostile {
                call: "domctl-old-version",
                target: "-",
                rc: 0,
            },
            "HOSTILE domctl-old-version - rc=0",
        );
        let mut out = std::string::String::new();
        write_line(&mut out, "acquire-ring", "domid-self", -3);
        assert_eq!(out, "HOSTILE acquire-ring domid-self rc=-3");
        round_trip(HostileDone { calls: 4 }, "HOSTILE-DONE calls=4");
        assert_eq!(Hostile::parse("HOSTILE-DONE calls=4"), None);
        assert_eq!(Hostile::parse("HOSTILE x y rc=oops"), None);
        assert_eq!(HostileDone::parse("HOSTILE get-default own-id rc=-1"), None);
    }
}
