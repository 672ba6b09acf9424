//! The `ring-probe` mode: a hostile guest tries to map its own monitor ring.
//!
//! When dom0 enables mem_access monitoring of a PV guest, Xen (patch 0008 of
//! `hypervisor-patch`) allocates the vm_event ring as a page owned by `DOMID_XEN`
//! (`dom_xen`), with a writable type reference, never as a page of the guest. The
//! scenario passes the ring's machine frame on the command line (`ring=0x<mfn>`) and the
//! guest tries every route below to map it at the virtual address of the last page of
//! its workload buffer, printing for each
//!
//! ```text
//! TEST-GUEST PROBE <route> rc=<decimal result> mapped=<yes|no>
//! ```
//!
//! then `TEST-GUEST PROBES DONE`. `mapped=yes` means the attempt returned success AND
//! the target's L1 entry then mapped a frame that the guest read one `u64` from; every
//! such success is undone (the original L1 entry put back with `update_va_mapping`, a
//! pin unpinned, a grant unmapped) before the next route. A failed undo is not a probe
//! result but a broken guest: [`run`] returns it and the kernel crashes with a `FAIL`
//! line.
//!
//! # Routes, and the check in Xen 4.17 that refuses each
//!
//! (`xen/arch/x86/mm.c` unless said otherwise; expected results are for the default,
//! dummy XSM policy.)
//!
//! 1. `update_va_mapping`: `HYPERVISOR_update_va_mapping(va, ring_mfn << 12 | PRESENT |
//!    RW, UVMF_INVLPG)`. `__do_update_va_mapping` passes `xsm_update_va_mapping` (the
//!    page owner asked for is the caller itself), finds the L1 table through the
//!    guest's linear map, then `mod_l1_entry` → `get_page_from_l1e(nl1e, l1e_owner =
//!    guest, pg_owner = guest)`: the frame's real owner (`page_get_owner_and_reference`)
//!    is `dom_xen`, not `pg_owner`, and since `pg_owner == l1e_owner` the privileged
//!    "transfer the right to map" exception does not apply → `could_not_pin` →
//!    **`-EBUSY` (rc=-16)**. (`USER` is not needed in the new entry: for a 64-bit PV
//!    kernel `adjust_guest_l1e` adds it, and the frame check comes first anyway.)
//! 2. `mmu_update`: `HYPERVISOR_mmu_update({ ptr = machine address of that L1 entry |
//!    MMU_NORMAL_PT_UPDATE, val = the same entry }, 1, &done, DOMID_SELF)`. `do_mmu_update`
//!    resolves `get_pg_owner(DOMID_SELF)` to the guest, `xsm_mmu_update` passes (the
//!    guest is source, page-table owner and page owner), the table is a
//!    `PGT_l1_page_table` of the guest, and `mod_l1_entry` refuses the frame exactly as
//!    in 1 → **`-EBUSY` (rc=-16)**.
//! 3. `mmu_update-foreign-xen`: the same request with `foreigndom = DOMID_XEN`.
//!    `get_pg_owner(DOMID_XEN)` returns `dom_xen`, then `xsm_mmu_update(XSM_TARGET, d,
//!    pt_owner = d, pg_owner = dom_xen)` → `xsm_default_action(XSM_TARGET, d, dom_xen)`:
//!    the guest is not `dom_xen`, has no `target`, and is not the control domain →
//!    **`-EPERM` (rc=-1)**. This XSM check is the only gate on this route:
//!    `get_page_from_l1e` would accept the frame, whose real owner IS the `pg_owner`
//!    named (that is how dom0 maps the ring, `DOMID_XEN` as the foreign domain). A FLASK
//!    policy would refuse with its own errno (`-EACCES`).
//! 4. `mmuext-pin`: `HYPERVISOR_mmuext_op({ MMUEXT_PIN_L1_TABLE, mfn = ring }, 1, &done,
//!    DOMID_SELF)`. `do_mmuext_op` resolves the page owner to the guest, passes
//!    `xsm_mmuext_op`, then `get_page_from_gfn(guest, ring_mfn)` — for a non-translated
//!    PV guest `get_page(page, guest)` — fails as the owner is `dom_xen` → **`-EINVAL`
//!    (rc=-22)**. Pinning never maps anything: this route is always `mapped=no`, a
//!    success is reported as rc=0 and undone with `MMUEXT_UNPIN_TABLE`.
//! 5. `grant-map`: `GNTTABOP_map_grant_ref { host_addr = va, flags = GNTMAP_host_map,
//!    ref, dom = 0 }` for refs 0 to 7, one call each. The hypercall itself returns 0;
//!    `map_grant_ref` (`xen/common/grant_table.c`) reads dom0's grant entry, and
//!    `_set_status_v1`/`_v2` refuse it because it is not `GTF_permit_access` for this
//!    domain (dom0 granted nothing; refs 0-7 are reserved entries Linux never uses) →
//!    status **`GNTST_general_error` (rc=-1)**. Even a real grant could not name the
//!    ring: `get_paged_frame` takes the frame only if the GRANTING domain owns it. The
//!    line's rc is the hypercall's result if negative, else the op's `GNTST_*` status;
//!    over the 8 refs it is 0 if any mapping succeeded, otherwise the first ref's.
//!
//! Not covered here: `XENMEM_acquire_resource(XENMEM_resource_vm_event_ring)` on itself
//! (patch 0009 requires `xsm_vm_event_control(XSM_PRIV)`), and
//! `update_va_mapping_otherdomain` (refused by `xsm_update_va_mapping` like 3).
//!
//! The routes run in the order above. Everything is generic over
//! [`Hypervisor`](crate::hypercall::Hypervisor) and [`Env`], so it is tested on the
//! host against a fake Xen.

use core::fmt;

use crate::frames::Mfn;
use crate::hypercall::{
    self, DomId, GnttabUnmapGrantRef, Hypervisor, MmuUpdate, MmuextOp, XenError, UVMF_INVLPG,
};
use crate::lines::{Line, Words};
use crate::pagewalk::{self, L1Slot};
use crate::text::Sink;

/// The grant references tried, in dom0's table.
pub const GRANT_REFS: core::ops::RangeInclusive<u32> = 0..=7;

/// The domain whose grants `grant-map` tries to map.
pub const GRANTING_DOMAIN: DomId = DomId::DOM0;

/// One way of trying to map the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `HYPERVISOR_update_va_mapping`.
    UpdateVaMapping,
    /// `HYPERVISOR_mmu_update`, `foreigndom = DOMID_SELF`.
    MmuUpdate,
    /// `HYPERVISOR_mmu_update`, `foreigndom = DOMID_XEN`.
    MmuUpdateForeignXen,
    /// `HYPERVISOR_mmuext_op(MMUEXT_PIN_L1_TABLE)`.
    MmuextPin,
    /// `GNTTABOP_map_grant_ref` from dom0.
    GrantMap,
}

impl Route {
    /// Every route, in the order they are tried.
    pub const ALL: [Self; 5] = [
        Self::UpdateVaMapping,
        Self::MmuUpdate,
        Self::MmuUpdateForeignXen,
        Self::MmuextPin,
        Self::GrantMap,
    ];

    /// The route's name in `PROBE` lines.
    pub const fn name(self) -> &'static str {
        match self {
            Self::UpdateVaMapping => "update_va_mapping",
            Self::MmuUpdate => "mmu_update",
            Self::MmuUpdateForeignXen => "mmu_update-foreign-xen",
            Self::MmuextPin => "mmuext-pin",
            Self::GrantMap => "grant-map",
        }
    }
}

/// What one route achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The route.
    pub route: Route,
    /// The hypercall's result: 0 or a negative errno (for `grant-map`, see the module
    /// documentation).
    pub rc: i64,
    /// Whether a frame got mapped at the target and was read through the mapping.
    pub mapped: bool,
}

impl Outcome {
    /// Writes the outcome's line (the caller adds `TEST-GUEST `): see [`Outcome`]'s
    /// `Display`.
    pub fn write(&self, out: &mut (impl Sink + ?Sized)) {
        let _ = write!(out, "{self}");
    }
}

/// `PROBE <route> rc=<rc> mapped=<yes|no>`: one route's outcome.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mapped = if self.mapped { "yes" } else { "no" };
        write!(
            f,
            "PROBE {} rc={} mapped={mapped}",
            self.route.name(),
            self.rc
        )
    }
}

impl Line<'_> for Outcome {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "PROBE")?;
        let name = words.next()?;
        let route = Route::ALL.into_iter().find(|route| route.name() == name)?;
        let rc = words.dec("rc")?;
        let mapped = match words.value("mapped")? {
            "yes" => true,
            "no" => false,
            _ => return None,
        };
        words.end()?;
        Some(Outcome { route, rc, mapped })
    }
}

/// `PROBES DONE`: every route was tried, after their [`Outcome`] lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbesDone;

impl fmt::Display for ProbesDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PROBES DONE")
    }
}

impl Line<'_> for ProbesDone {
    fn parse(body: &str) -> Option<Self> {
        Words::after(body, "PROBES DONE")?.end()?;
        Some(ProbesDone)
    }
}

/// Undoing a route's unexpected success failed: the guest's mapping (or the ring
/// page's state) is not what it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UndoError {
    /// The route that succeeded.
    pub route: Route,
    /// Which step of the undo failed.
    pub what: &'static str,
    /// Its error.
    pub error: XenError,
}

/// The page the routes try to map the ring at.
///
/// # Invariants
///
/// `va` is a page-aligned virtual address that, for the life of the `Target`, nothing
/// Rust relies on lives in (no reference into the page, no value read through it that
/// must stay the same) other than through [`run`]; `slot` is the L1 entry that maps it
/// in the running page tables, with its value then.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    va: u64,
    slot: L1Slot,
}

impl Target {
    /// The page at `va`, mapped by `slot`.
    ///
    /// # Safety
    ///
    /// The type invariants: the probes may remap `va` at will (they put `slot.value`
    /// back before [`run`] returns `Ok`), and `slot` is its current L1 entry.
    pub const unsafe fn new(va: u64, slot: L1Slot) -> Self {
        Self { va, slot }
    }

    /// Its virtual address.
    pub const fn va(&self) -> u64 {
        self.va
    }

    /// The L1 entry that maps it, with its original value.
    pub const fn slot(&self) -> &L1Slot {
        &self.slot
    }
}

/// What the probes need from the running kernel besides hypercalls.
pub trait Env {
    /// Reads the first `u64` of the page mapped at the target's virtual address now.
    /// Only called while the target's L1 entry is present.
    fn read_target(&mut self) -> u64;

    /// Reads the target's L1 entry now.
    fn read_l1e(&mut self) -> u64;
}

/// Tries every route to map `ring` at `target`, in [`Route::ALL`] order, passing each
/// outcome to `report` as soon as it is known. Stops with an error only when undoing
/// an unexpected success fails (that route's outcome has been reported).
pub fn run<H: Hypervisor + ?Sized, E: Env>(
    hv: &H,
    env: &mut E,
    ring: Mfn,
    target: &Target,
    mut report: impl FnMut(&Outcome),
) -> Result<(), UndoError> {
    for route in Route::ALL {
        let (outcome, undone) = probe(hv, env, ring, target, route);
        report(&outcome);
        undone?;
    }
    Ok(())
}

/// Tries one route; returns its outcome and whether any success was undone.
fn probe<H: Hypervisor + ?Sized, E: Env>(
    hv: &H,
    env: &mut E,
    ring: Mfn,
    target: &Target,
    route: Route,
) -> (Outcome, Result<(), UndoError>) {
    let new_pte = pagewalk::kernel_rw_pte(ring);
    let refused = |error: XenError| {
        (
            Outcome {
                route,
                rc: error.code(),
                mapped: false,
            },
            Ok(()),
        )
    };
    match route {
        Route::UpdateVaMapping => {
            // SAFETY: nothing Rust relies on lives at `target.va` (type invariant).
            let rc = unsafe {
                hypercall::update_va_mapping(hv, target.va, new_pte, u64::from(UVMF_INVLPG))
            };
            match rc {
                Err(e) => refused(e),
                Ok(()) => mapped_then_restore(hv, env, ring, target, route),
            }
        }
        Route::MmuUpdate | Route::MmuUpdateForeignXen => {
            let foreigndom = if route == Route::MmuUpdate {
                DomId::SELF
            } else {
                DomId::XEN
            };
            let req = [MmuUpdate::normal_pt_update(
                target.slot.machine_addr(),
                new_pte,
            )];
            // SAFETY: the one request changes only `target.slot`, the L1 entry of
            // `target.va`, where nothing Rust relies on lives (type invariant).
            let rc = unsafe { hypercall::mmu_update(hv, &req, foreigndom) };
            match rc {
                Err(e) => refused(e),
                Ok(_) => {
                    // mmu_update flushes no TLB entry for an L1 change; a stale one
                    // would make the read below see the old page. If the flush fails
                    // the read may do so, but the entry check still decides `mapped`.
                    let flush = [MmuextOp::invlpg_local(target.va)];
                    // SAFETY: a TLB flush changes no mapping.
                    let _ = unsafe { hypercall::mmuext_op(hv, &flush, DomId::SELF) };
                    mapped_then_restore(hv, env, ring, target, route)
                }
            }
        }
        Route::MmuextPin => {
            let pin = [MmuextOp::pin_l1_table(ring.0)];
            // SAFETY: pinning changes no mapping (a frame already in use as a table
            // keeps its references); a successful pin is undone just below.
            let rc = unsafe { hypercall::mmuext_op(hv, &pin, DomId::SELF) };
            match rc {
                Err(e) => refused(e),
                Ok(_) => {
                    let unpin = [MmuextOp::unpin_table(ring.0)];
                    // SAFETY: drops only the pin just taken, whatever the frame is.
                    let undone = unsafe { hypercall::mmuext_op(hv, &unpin, DomId::SELF) }
                        .map(drop)
                        .map_err(|error| UndoError {
                            route,
                            what: "unpin",
                            error,
                        });
                    let outcome = Outcome {
                        route,
                        rc: 0,
                        mapped: false,
                    };
                    (outcome, undone)
                }
            }
        }
        Route::GrantMap => grant_map(hv, env, target),
    }
}

/// After a route reported success: whether the target now maps `ring` (then read
/// through it), and the original entry put back.
fn mapped_then_restore<H: Hypervisor + ?Sized, E: Env>(
    hv: &H,
    env: &mut E,
    ring: Mfn,
    target: &Target,
    route: Route,
) -> (Outcome, Result<(), UndoError>) {
    let now = env.read_l1e();
    let mapped = pagewalk::pte_present(now) && pagewalk::pte_mfn(now) == ring;
    if mapped {
        env.read_target();
    }
    let outcome = Outcome {
        route,
        rc: 0,
        mapped,
    };
    (outcome, restore(hv, env, target, route))
}

/// Puts the target's original L1 entry back and checks it is there.
fn restore<H: Hypervisor + ?Sized, E: Env>(
    hv: &H,
    env: &mut E,
    target: &Target,
    route: Route,
) -> Result<(), UndoError> {
    let original = target.slot.value;
    let undo_error = |what, error| UndoError { route, what, error };
    // SAFETY: maps `target.va` back to the frame it had when the `Target` was made.
    unsafe { hypercall::update_va_mapping(hv, target.va, original, u64::from(UVMF_INVLPG)) }
        .map_err(|error| undo_error("restore update_va_mapping", error))?;
    let now = env.read_l1e();
    if pagewalk::pte_present(now) && pagewalk::pte_mfn(now) == pagewalk::pte_mfn(original) {
        Ok(())
    } else {
        Err(undo_error("restore check", XenError::EINVAL))
    }
}

/// The `grant-map` route: every ref of [`GRANT_REFS`] from [`GRANTING_DOMAIN`], one
/// call each; a success is read through, unmapped and the original entry restored
/// before the next ref.
fn grant_map<H: Hypervisor + ?Sized, E: Env>(
    hv: &H,
    env: &mut E,
    target: &Target,
) -> (Outcome, Result<(), UndoError>) {
    let route = Route::GrantMap;
    let mut first_failure = None;
    let mut succeeded = false;
    let mut mapped = false;
    for ref_ in GRANT_REFS {
        let mut op = hypercall::grant_host_map(target.va, GRANTING_DOMAIN, ref_);
        // SAFETY: a host mapping replaces the one at `target.va`, where nothing Rust
        // relies on lives (type invariant).
        let rc = match unsafe { hypercall::gnttab_map_grant_ref(hv, &mut op) } {
            Err(e) => e.code(),
            Ok(()) => i64::from(op.status),
        };
        if rc != i64::from(xen_abi::GNTST_okay) {
            first_failure.get_or_insert(rc);
            continue;
        }
        succeeded = true;
        if pagewalk::pte_present(env.read_l1e()) {
            env.read_target();
            mapped = true;
        }
        // SAFETY: nothing reads `target.va` before `restore` maps its frame back.
        let undone = unsafe { unmap_grant(hv, target.va, op.handle) }
            .map_err(|error| UndoError {
                route,
                what: "grant unmap",
                error,
            })
            .and_then(|()| restore(hv, env, target, route));
        if let Err(e) = undone {
            return (
                Outcome {
                    route,
                    rc: 0,
                    mapped,
                },
                Err(e),
            );
        }
    }
    let rc = if succeeded {
        0
    } else {
        first_failure.unwrap_or(0)
    };
    (Outcome { route, rc, mapped }, Ok(()))
}

/// Unmaps the grant mapping `handle` at `va` (which leaves the entry cleared).
///
/// # Safety
///
/// As for [`hypercall::gnttab_unmap_grant_ref`]: nothing may access `va` until
/// something is mapped there again.
unsafe fn unmap_grant<H: Hypervisor + ?Sized>(
    hv: &H,
    va: u64,
    handle: u32,
) -> Result<(), XenError> {
    let mut op = GnttabUnmapGrantRef {
        host_addr: va,
        handle,
        ..GnttabUnmapGrantRef::default()
    };
    // SAFETY: this fn's contract.
    unsafe { hypercall::gnttab_unmap_grant_ref(hv, &mut op) }?;
    // A failed unmap's GNTST_* status stands in for the errno.
    XenError::check(i64::from(op.status)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_xen::{FakeXen, Script};
    use crate::hypercall::{GnttabMapGrantRef, Hypercall, HypercallNr};
    use crate::pagewalk::{kernel_rw_pte, pte_mfn};
    use std::cell::{Cell, RefCell};
    use std::vec::Vec;
    use x86_64::structures::paging::PageTableFlags;
    use xen_sys::{MMUEXT_INVLPG_LOCAL, MMUEXT_PIN_L1_TABLE, MMUEXT_UNPIN_TABLE};

    const VA: u64 = 0x20f000;
    const RING: Mfn = Mfn(0x4_2000);
    const OWN_MFN: u64 = 0x1_0f0f;
    /// The buffer page's entry as Xen left it (USER and the guest-kernel bit 52 added,
    /// accessed and dirty, NX).
    const ORIGINAL: u64 = (1 << 63) | (1 << 52) | (OWN_MFN << 12) | 0x67;
    /// What dom0's grant would map, should a grant succeed.
    const GRANTED_MFN: u64 = 0x9_9999;

    fn target() -> Target {
        let slot = L1Slot {
            table: Mfn(0x903),
            index: 15,
            entry_virt: 0x40_3078,
            value: ORIGINAL,
        };
        // SAFETY: the probes run against a fake Xen, which changes no real mapping.
        unsafe { Target::new(VA, slot) }
    }

    /// What the fake Xen lets through; by default what Xen 4.17 does.
    #[derive(Clone, Copy, Default)]
    struct Policy {
        uvm_maps_foreign: bool,
        mmu_self_maps_foreign: bool,
        mmu_xen_maps_foreign: bool,
        pin_foreign: bool,
        granted_ref: Option<u32>,
        /// `update_va_mapping` "succeeds" without changing the entry.
        uvm_lies: bool,
        /// Putting the original entry back fails.
        restore_fails: bool,
        /// Unmapping a grant fails (`GNTST_bad_handle`).
        unmap_fails: bool,
    }

    /// Xen's side, with one L1 entry: the target's.
    struct Model {
        policy: Policy,
        l1e: Cell<u64>,
        mmu_reqs: RefCell<Vec<(MmuUpdate, u64)>>,
        mmuext_ops: RefCell<Vec<MmuextOp>>,
        grant_maps: RefCell<Vec<GnttabMapGrantRef>>,
        grant_unmaps: RefCell<Vec<GnttabUnmapGrantRef>>,
    }

    impl Model {
        fn new(policy: Policy) -> Self {
            Self {
                policy,
                l1e: Cell::new(ORIGINAL),
                mmu_reqs: RefCell::new(Vec::new()),
                mmuext_ops: RefCell::new(Vec::new()),
                grant_maps: RefCell::new(Vec::new()),
                grant_unmaps: RefCell::new(Vec::new()),
            }
        }

        /// Xen's `adjust_guest_l1e` for a 64-bit PV kernel entry.
        fn adjusted(pte: u64) -> u64 {
            if pte & PageTableFlags::USER_ACCESSIBLE.bits() == 0 {
                pte | PageTableFlags::USER_ACCESSIBLE.bits() | (1 << 52)
            } else {
                pte
            }
        }

        fn is_own(pte: u64) -> bool {
            pte_mfn(pte) == Mfn(OWN_MFN)
        }
    }

    impl Script for Model {
        unsafe fn answer(&self, call: Hypercall) -> i64 {
            let p = self.policy;
            match call.nr {
                HypercallNr::UPDATE_VA_MAPPING => {
                    assert_eq!(call.args[0], VA);
                    assert_eq!(call.args[2], u64::from(UVMF_INVLPG));
                    let val = call.args[1];
                    if Self::is_own(val) {
                        if p.restore_fails {
                            return -16;
                        }
                    } else if !p.uvm_maps_foreign {
                        return -16;
                    } else if p.uvm_lies {
                        return 0;
                    }
                    self.l1e.set(Self::adjusted(val));
                    0
                }
                HypercallNr::MMU_UPDATE => {
                    assert_eq!(call.args[1], 1);
                    // SAFETY: the wrapper passes one live request.
                    let req = unsafe { (call.args[0] as *const MmuUpdate).read() };
                    self.mmu_reqs.borrow_mut().push((req, call.args[3]));
                    let allowed = match call.args[3] {
                        0x7FF0 => p.mmu_self_maps_foreign,
                        0x7FF2 => p.mmu_xen_maps_foreign,
                        _ => false,
                    };
                    if !allowed {
                        return if call.args[3] == 0x7FF2 { -1 } else { -16 };
                    }
                    self.l1e.set(Self::adjusted(req.val));
                    // SAFETY: the wrapper passes its live `done`.
                    unsafe { (call.args[2] as *mut u32).write(1) };
                    0
                }
                HypercallNr::MMUEXT_OP => {
                    // SAFETY: the wrapper passes one live op.
                    let op = unsafe { (call.args[0] as *const MmuextOp).read() };
                    self.mmuext_ops.borrow_mut().push(op);
                    match op.cmd() {
                        MMUEXT_PIN_L1_TABLE if !p.pin_foreign => -22,
                        _ => 0,
                    }
                }
                HypercallNr::GRANT_TABLE_OP
                    if call.args[0] == u64::from(xen_abi::GNTTABOP_map_grant_ref) =>
                {
                    let ptr = call.args[1] as *mut GnttabMapGrantRef;
                    // SAFETY: the wrapper passes one live op, which Xen writes back.
                    let mut op = unsafe { ptr.read() };
                    self.grant_maps.borrow_mut().push(op);
                    if p.granted_ref == Some(op.ref_) {
                        op.status = 0;
                        op.handle = 100 + op.ref_;
                        self.l1e
                            .set(Self::adjusted(kernel_rw_pte(Mfn(GRANTED_MFN))));
                    } else {
                        op.status = -1;
                    }
                    // SAFETY: as above.
                    unsafe { ptr.write(op) };
                    0
                }
                HypercallNr::GRANT_TABLE_OP => {
                    let ptr = call.args[1] as *mut GnttabUnmapGrantRef;
                    // SAFETY: the wrapper passes one live op, which Xen writes back.
                    let mut op = unsafe { ptr.read() };
                    self.grant_unmaps.borrow_mut().push(op);
                    if p.unmap_fails {
                        op.status = -4;
                    } else {
                        op.status = 0;
                        self.l1e.set(0);
                    }
                    // SAFETY: as above.
                    unsafe { ptr.write(op) };
                    0
                }
                other => panic!("unexpected hypercall {other:?}"),
            }
        }
    }

    /// The hypercall numbers `xen` was asked, in order.
    fn nrs(xen: &FakeXen<Model>) -> Vec<u32> {
        xen.calls().iter().map(|c| c.nr.get()).collect()
    }

    /// Reads through the fake Xen's entry; records the frame each read saw.
    struct FakeEnv<'a> {
        xen: &'a Model,
        reads: Vec<Mfn>,
    }

    impl Env for FakeEnv<'_> {
        fn read_target(&mut self) -> u64 {
            let pte = self.xen.l1e.get();
            assert!(pagewalk::pte_present(pte), "read through a missing entry");
            self.reads.push(pte_mfn(pte));
            0x5a5a
        }

        fn read_l1e(&mut self) -> u64 {
            self.xen.l1e.get()
        }
    }

    /// Runs every route against a fake Xen with `policy`.
    fn run_with(
        policy: Policy,
    ) -> (
        FakeXen<Model>,
        Vec<Outcome>,
        Vec<Mfn>,
        Result<(), UndoError>,
    ) {
        let xen = FakeXen::of(Model::new(policy));
        let mut outcomes = Vec::new();
        let (reads, result) = {
            let mut env = FakeEnv {
                xen: &xen,
                reads: Vec::new(),
            };
            let result = run(&xen, &mut env, RING, &target(), |o| outcomes.push(*o));
            (env.reads, result)
        };
        (xen, outcomes, reads, result)
    }

    fn lines(outcomes: &[Outcome]) -> Vec<String> {
        outcomes
            .iter()
            .map(|o| {
                let mut text = String::new();
                o.write(&mut text);
                text
            })
            .collect()
    }

    #[test]
    fn names_and_line_format() {
        let names = Route::ALL.map(Route::name);
        assert_eq!(
            names,
            [
                "update_va_mapping",
                "mmu_update",
                "mmu_update-foreign-xen",
                "mmuext-pin",
                "grant-map"
            ]
        );
        let outcome = Outcome {
            route: Route::MmuextPin,
            rc: -22,
            mapped: false,
        };
        assert_eq!(lines(&[outcome]), ["PROBE mmuext-pin rc=-22 mapped=no"]);
        let outcome = Outcome {
            route: Route::UpdateVaMapping,
            rc: 0,
            mapped: true,
        };
        assert_eq!(
            lines(&[outcome]),
            ["PROBE update_va_mapping rc=0 mapped=yes"]
        );
    }

    #[test]
    fn xen_refuses_every_route() {
        let (xen, outcomes, reads, result) = run_with(Policy::default());
        assert_eq!(result, Ok(()));
        assert_eq!(
            lines(&outcomes),
            [
                "PROBE update_va_mapping rc=-16 mapped=no",
                "PROBE mmu_update rc=-16 mapped=no",
                "PROBE mmu_update-foreign-xen rc=-1 mapped=no",
                "PROBE mmuext-pin rc=-22 mapped=no",
                "PROBE grant-map rc=-1 mapped=no",
            ]
        );
        assert!(reads.is_empty(), "nothing read when nothing mapped");
        assert_eq!(xen.l1e.get(), ORIGINAL, "entry untouched");
        // One call per route, 8 for the grant refs, and no undo.
        assert_eq!(nrs(&xen), [14, 1, 1, 26, 20, 20, 20, 20, 20, 20, 20, 20]);

        let new_pte =
            (RING.0 << 12) | PageTableFlags::PRESENT.bits() | PageTableFlags::WRITABLE.bits();
        assert_eq!(
            xen.calls()[0].args,
            [VA, new_pte, u64::from(UVMF_INVLPG), 0, 0]
        );
        let reqs = xen.mmu_reqs.borrow();
        let expected = MmuUpdate::normal_pt_update(0x903_078, new_pte);
        assert_eq!(*reqs, [(expected, 0x7FF0), (expected, 0x7FF2)]);
        assert_eq!(*xen.mmuext_ops.borrow(), [MmuextOp::pin_l1_table(RING.0)]);
        let maps = xen.grant_maps.borrow();
        assert_eq!(
            maps.iter().map(|m| m.ref_).collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
        for m in maps.iter() {
            assert_eq!((m.host_addr, m.dom, m.flags), (VA, 0, 2));
        }
    }

    #[test]
    fn update_va_mapping_success_is_read_and_restored() {
        let (xen, outcomes, reads, result) = run_with(Policy {
            uvm_maps_foreign: true,
            ..Policy::default()
        });
        assert_eq!(result, Ok(()));
        assert_eq!(
            lines(&outcomes)[0],
            "PROBE update_va_mapping rc=0 mapped=yes"
        );
        assert_eq!(reads, [RING], "read once, through the ring's mapping");
        assert_eq!(xen.l1e.get(), ORIGINAL);
        let calls = xen.calls();
        assert_eq!(calls[1].nr, HypercallNr::UPDATE_VA_MAPPING);
        assert_eq!(
            calls[1].args,
            [VA, ORIGINAL, u64::from(UVMF_INVLPG), 0, 0],
            "restored with the original entry"
        );
        assert_eq!(outcomes.len(), 5, "the other routes still run");
        assert!(outcomes[1..].iter().all(|o| !o.mapped));
    }

    #[test]
    fn mmu_update_success_flushes_reads_and_restores() {
        let (xen, outcomes, reads, result) = run_with(Policy {
            mmu_self_maps_foreign: true,
            ..Policy::default()
        });
        assert_eq!(result, Ok(()));
        assert_eq!(
            lines(&outcomes)[..3],
            [
                "PROBE update_va_mapping rc=-16 mapped=no",
                "PROBE mmu_update rc=0 mapped=yes",
                "PROBE mmu_update-foreign-xen rc=-1 mapped=no",
            ]
        );
        assert_eq!(reads, [RING]);
        assert_eq!(xen.l1e.get(), ORIGINAL);
        // update_va_mapping (refused), mmu_update, invlpg, restore, mmu_update (XEN)...
        assert_eq!(nrs(&xen)[..5], [14, 1, 26, 14, 1]);
        let ops = xen.mmuext_ops.borrow();
        assert_eq!((ops[0].cmd(), ops[0].arg1()), (MMUEXT_INVLPG_LOCAL, VA));
    }

    #[test]
    fn foreign_xen_success_is_reported() {
        let (xen, outcomes, reads, result) = run_with(Policy {
            mmu_xen_maps_foreign: true,
            ..Policy::default()
        });
        assert_eq!(result, Ok(()));
        let mapped: Vec<bool> = outcomes.iter().map(|o| o.mapped).collect();
        assert_eq!(mapped, [false, false, true, false, false]);
        assert_eq!(outcomes[2].rc, 0);
        assert_eq!(reads, [RING]);
        assert_eq!(xen.l1e.get(), ORIGINAL);
    }

    #[test]
    fn pin_success_is_undone_and_maps_nothing() {
        let (xen, outcomes, reads, result) = run_with(Policy {
            pin_foreign: true,
            ..Policy::default()
        });
        assert_eq!(result, Ok(()));
        assert_eq!(lines(&outcomes)[3], "PROBE mmuext-pin rc=0 mapped=no");
        assert!(reads.is_empty());
        let ops = xen.mmuext_ops.borrow();
        assert_eq!(
            ops.iter().map(|o| (o.cmd(), o.arg1())).collect::<Vec<_>>(),
            [(MMUEXT_PIN_L1_TABLE, RING.0), (MMUEXT_UNPIN_TABLE, RING.0)]
        );
    }

    #[test]
    fn grant_success_is_read_unmapped_and_restored() {
        let (xen, outcomes, reads, result) = run_with(Policy {
            granted_ref: Some(5),
            ..Policy::default()
        });
        assert_eq!(result, Ok(()));
        assert_eq!(lines(&outcomes)[4], "PROBE grant-map rc=0 mapped=yes");
        assert_eq!(reads, [Mfn(GRANTED_MFN)]);
        assert_eq!(xen.grant_maps.borrow().len(), 8, "every ref tried");
        let unmaps = xen.grant_unmaps.borrow();
        assert_eq!(unmaps.len(), 1);
        assert_eq!((unmaps[0].host_addr, unmaps[0].handle), (VA, 105));
        assert_eq!(
            xen.l1e.get(),
            ORIGINAL,
            "restored after the unmap cleared it"
        );
    }

    #[test]
    fn grant_hypercall_failure_is_the_rc() {
        let model = Model::new(Policy::default());
        let hv = FakeXen::new(|call| {
            if call.nr == HypercallNr::GRANT_TABLE_OP {
                -38
            } else {
                // SAFETY: same call, same contract.
                unsafe { model.answer(*call) }
            }
        });
        let mut env = FakeEnv {
            xen: &model,
            reads: Vec::new(),
        };
        let (outcome, undone) = probe(&hv, &mut env, RING, &target(), Route::GrantMap);
        assert_eq!(undone, Ok(()));
        assert_eq!(lines(&[outcome]), ["PROBE grant-map rc=-38 mapped=no"]);
    }

    #[test]
    fn success_without_the_mapping_is_not_mapped() {
        let (xen, outcomes, reads, result) = run_with(Policy {
            uvm_maps_foreign: true,
            uvm_lies: true,
            ..Policy::default()
        });
        assert_eq!(result, Ok(()));
        assert_eq!(
            lines(&outcomes)[0],
            "PROBE update_va_mapping rc=0 mapped=no"
        );
        assert!(reads.is_empty());
        assert_eq!(xen.l1e.get(), ORIGINAL);
    }

    #[test]
    fn failed_restore_stops_after_reporting() {
        let (xen, outcomes, reads, result) = run_with(Policy {
            uvm_maps_foreign: true,
            restore_fails: true,
            ..Policy::default()
        });
        assert_eq!(
            lines(&outcomes),
            ["PROBE update_va_mapping rc=0 mapped=yes"],
            "the success is reported before the failure"
        );
        assert_eq!(reads, [RING]);
        assert_eq!(
            result,
            Err(UndoError {
                route: Route::UpdateVaMapping,
                what: "restore update_va_mapping",
                error: XenError::EBUSY,
            })
        );
        assert_eq!(nrs(&xen), [14, 14], "no route tried after it");
    }

    #[test]
    fn failed_grant_unmap_stops_after_reporting() {
        let (xen, outcomes, reads, result) = run_with(Policy {
            granted_ref: Some(0),
            unmap_fails: true,
            ..Policy::default()
        });
        assert_eq!(
            lines(&outcomes)[4..],
            ["PROBE grant-map rc=0 mapped=yes"],
            "the other routes were refused and reported first"
        );
        assert_eq!(reads, [Mfn(GRANTED_MFN)]);
        let e = result.expect_err("undo failed");
        assert_eq!(
            (e.route, e.what, e.error.code()),
            (Route::GrantMap, "grant unmap", -4)
        );
        assert_eq!(xen.grant_maps.borrow().len(), 1, "no ref tried after it");
    }

    #[test]
    fn lines_read_back() {
        use crate::lines::tests::round_trip;
        round_trip(
            Outcome {
                route: Route::UpdateVaMapping,
                rc: -16,
                mapped: false,
            },
            "PROBE update_va_mapping rc=-16 mapped=no",
        );
        round_trip(
            Outcome {
                route: Route::GrantMap,
                rc: 0,
                mapped: true,
            },
            "PROBE grant-map rc=0 mapped=yes",
        );
        for route in Route::ALL {
            let line = Outcome {
                route,
                rc: -1,
                mapped: false,
            };
            assert_eq!(Outcome::parse(&std::format!("{line}")), Some(line));
        }
        assert_eq!(Outcome::parse("PROBE grant-map rc=0 mapped=maybe"), None);
        assert_eq!(Outcome::parse("PROBE other rc=0 mapped=no"), None);
        round_trip(ProbesDone, "PROBES DONE");
        assert_eq!(ProbesDone::parse("PROBES DONE now"), None);
    }
}
