//! The `balloon` pattern: the guest gives some buffer pages' machine frames back to Xen
//! and gets new ones for the same pseudo-physical frames, as a balloon driver does.
//!
//! Why: mem_access on PV keys access by machine frame, and a frame the guest frees is
//! forgotten while one it gains follows the default access. A test needs a guest whose
//! pages change frames on command, telling which frames it lost and gained.
//!
//! The steps (those of Linux's balloon driver for a PV guest, `drivers/xen/balloon.c`),
//! for all pages at once where Xen takes a list:
//!
//! 1. unmap each page: `update_va_mapping(va, 0, UVMF_INVLPG)`, so the old frame has no
//!    mapping left (Xen would otherwise keep it until the last reference goes);
//! 2. `XENMEM_decrease_reservation` with the old machine frames as the extent list
//!    (order 0): a PV guest names frames by MFN (`guest_remove_page`,
//!    `xen/common/memory.c`); the P2M entries become `INVALID_P2M_ENTRY` meanwhile;
//! 3. `XENMEM_populate_physmap` with the pfns as the extent list: for a PV guest Xen
//!    allocates frames, sets their M2P entries and writes each new MFN back into the
//!    list (`populate_physmap`);
//! 4. for each page: the P2M entry (the array `start_info.mfn_list` points to, whose
//!    pages the guest published in `shared_info`, so dom0 sees the change), the M2P
//!    entry (`mmu_update` with `MMU_MACHPHYS_UPDATE`; Xen already set it, the guest
//!    states it as Linux does), the mapping (`update_va_mapping(va, new | PRESENT | RW,
//!    UVMF_INVLPG)`), then one line:
//!
//! ```text
//! TEST-GUEST BALLOON pfn=0x<pfn> old-mfn=0x<hex> new-mfn=0x<hex>
//! ```
//!
//! Xen's allocator may hand a just-freed frame back, so `new-mfn` can equal `old-mfn`;
//! it is still a frame the guest freed and gained again.

use crate::frames::{Mfn, Pfn};
use crate::hypercall::{
    self, DomId, Hypercall, HypercallNr, Hypervisor, MmuUpdate, XenError, UVMF_INVLPG,
};
use crate::pagewalk;
use crate::text::Sink;

/// `#define XENMEM_decrease_reservation 1` (`memory.h`).
pub const XENMEM_DECREASE_RESERVATION: u64 = 1;
/// `#define XENMEM_populate_physmap 6` (`memory.h`).
pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;
/// What a P2M entry holds while its pfn has no frame (Linux's `INVALID_P2M_ENTRY`).
pub const INVALID_P2M_ENTRY: u64 = u64::MAX;
/// The most pages one [`run`] exchanges.
pub const MAX_PAGES: usize = 4;

/// `struct xen_memory_reservation` (`memory.h`), 32 bytes on x86_64.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenMemoryReservation {
    /// `XEN_GUEST_HANDLE(xen_pfn_t) extent_start`: the extent list.
    pub extent_start: u64,
    /// `xen_ulong_t nr_extents`.
    pub nr_extents: u64,
    /// `unsigned int extent_order`: 0, single pages.
    pub extent_order: u32,
    /// `unsigned int mem_flags` (`XENMEMF_*`): 0.
    pub mem_flags: u32,
    /// `domid_t domid`: `DOMID_SELF`.
    pub domid: u16,
    /// The C compiler's tail padding, explicit.
    pub pad: [u16; 3],
}

impl XenMemoryReservation {
    /// Single pages of the caller, the list at `list` with `len` entries.
    fn own_pages(list: u64, len: usize) -> Self {
        Self {
            extent_start: list,
            nr_extents: len as u64,
            extent_order: 0,
            mem_flags: 0,
            domid: DomId::SELF.0,
            pad: [0; 3],
        }
    }
}

/// `HYPERVISOR_memory_op(cmd, &reservation)`; Xen's result is the extents done.
///
/// # Safety
///
/// `reservation.extent_start` must point to `nr_extents` live `u64`s that Xen may read
/// and write; for a decrease, the frames must be ones nothing Rust relies on uses.
unsafe fn memory_op<H: Hypervisor + ?Sized>(
    hv: &H,
    cmd: u64,
    reservation: &XenMemoryReservation,
) -> Result<u64, XenError> {
    let call = Hypercall::new(
        HypercallNr::MEMORY_OP,
        [cmd, core::ptr::from_ref(reservation) as u64, 0, 0, 0],
    );
    // SAFETY: `reservation` is live and Xen only reads it; its list is this fn's
    // contract.
    XenError::check(unsafe { hv.hypercall(call) })
}

/// `XENMEM_decrease_reservation` of the machine frames `mfns` (order 0, `DOMID_SELF`):
/// returns how many Xen took back.
///
/// # Safety
///
/// The frames must be the caller's and unused: no mapping of them that Rust relies on.
pub unsafe fn decrease_reservation<H: Hypervisor + ?Sized>(
    hv: &H,
    mfns: &[u64],
) -> Result<u64, XenError> {
    let reservation = XenMemoryReservation::own_pages(mfns.as_ptr() as u64, mfns.len());
    // SAFETY: the list is `mfns`, live for the call (Xen only reads it for a
    // decrease); the frames are unused (this fn's contract).
    unsafe { memory_op(hv, XENMEM_DECREASE_RESERVATION, &reservation) }
}

/// `XENMEM_populate_physmap` of the pfns in `frames` (order 0, `DOMID_SELF`): for a PV
/// guest Xen replaces each pfn in `frames` by the machine frame it allocated. Returns
/// how many it populated (the first ones).
pub fn populate_physmap<H: Hypervisor + ?Sized>(
    hv: &H,
    frames: &mut [u64],
) -> Result<u64, XenError> {
    let reservation = XenMemoryReservation::own_pages(frames.as_mut_ptr() as u64, frames.len());
    // SAFETY: the list is `frames`, live and writable for the call; populating gives
    // the guest frames without touching any mapping.
    unsafe { memory_op(hv, XENMEM_POPULATE_PHYSMAP, &reservation) }
}

/// The guest's P2M array, which [`run`] updates.
pub trait Env {
    /// Sets the P2M entry of `pfn` to `mfn` (or [`INVALID_P2M_ENTRY`]).
    fn set_p2m(&mut self, pfn: Pfn, mfn: u64);
}

/// One page's exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The page.
    pub pfn: Pfn,
    /// The frame given back.
    pub old: Mfn,
    /// The frame gained.
    pub new: Mfn,
}

/// A step of [`run`] that failed: the guest cannot go on (FAIL line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalloonError {
    /// What failed.
    pub what: &'static str,
    /// Xen's error, or `EBUSY` for a partial result.
    pub error: XenError,
}

fn err(what: &'static str) -> impl FnOnce(XenError) -> BalloonError {
    move |error| BalloonError { what, error }
}

/// Exchanges the frames of `pages` (pfn and its current machine frame, at most
/// [`MAX_PAGES`]), reporting each page once it is mapped again (see the module docs for
/// the steps).
///
/// # Safety
///
/// Each page is mapped at `pfn.to_virt()` (the bootstrap mapping), and nothing Rust
/// relies on may live in it: it is unmapped, and comes back on another frame with
/// contents of Xen's choosing.
pub unsafe fn run<H: Hypervisor + ?Sized, E: Env>(
    hv: &H,
    env: &mut E,
    pages: &[(Pfn, Mfn)],
    mut report: impl FnMut(Exchange),
) -> Result<(), BalloonError> {
    let n = pages.len();
    if n > MAX_PAGES {
        return Err(err("balloon: too many pages")(XenError::EINVAL));
    }
    for &(pfn, _) in pages {
        // SAFETY: nothing lives in the page (this fn's contract).
        unsafe { hypercall::update_va_mapping(hv, pfn.to_virt(), 0, UVMF_INVLPG) }
            .map_err(err("balloon: unmap"))?;
    }

    let mut list = [0u64; MAX_PAGES];
    for (slot, &(_, mfn)) in list.iter_mut().zip(pages) {
        *slot = mfn.0;
    }
    // SAFETY: the frames are the pages' own, unmapped just above.
    let freed = unsafe { decrease_reservation(hv, &list[..n]) }
        .map_err(err("balloon: decrease_reservation"))?;
    if freed != n as u64 {
        return Err(err("balloon: decrease_reservation partial")(
            XenError::EBUSY,
        ));
    }
    for &(pfn, _) in pages {
        env.set_p2m(pfn, INVALID_P2M_ENTRY);
    }

    for (slot, &(pfn, _)) in list.iter_mut().zip(pages) {
        *slot = pfn.0;
    }
    let populated =
        populate_physmap(hv, &mut list[..n]).map_err(err("balloon: populate_physmap"))?;
    if populated != n as u64 {
        return Err(err("balloon: populate_physmap partial")(XenError::EBUSY));
    }

    for (&new, &(pfn, old)) in list.iter().zip(pages) {
        env.set_p2m(pfn, new);
        let m2p = [MmuUpdate::machphys_update(new, pfn.0)];
        // SAFETY: an M2P update of a frame just gained for `pfn`: no page-table entry
        // changes.
        unsafe { hypercall::mmu_update(hv, &m2p, DomId::SELF) }
            .map_err(err("balloon: machphys update"))?;
        let pte = pagewalk::kernel_rw_pte(Mfn(new));
        // SAFETY: maps the new frame where the page was; nothing relies on its contents
        // (this fn's contract).
        unsafe { hypercall::update_va_mapping(hv, pfn.to_virt(), pte, UVMF_INVLPG) }
            .map_err(err("balloon: map the new frame"))?;
        report(Exchange {
            pfn,
            old,
            new: Mfn(new),
        });
    }
    Ok(())
}

/// `BALLOON pfn=0x<pfn> old-mfn=0x<hex> new-mfn=0x<hex>` (after `TEST-GUEST `).
pub fn write_balloon(out: &mut (impl Sink + ?Sized), exchange: &Exchange) {
    out.put_str("BALLOON pfn=");
    out.put_hex(exchange.pfn.0);
    out.put_str(" old-mfn=");
    out.put_hex(exchange.old.0);
    out.put_str(" new-mfn=");
    out.put_hex(exchange.new.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypercall::MMU_MACHPHYS_UPDATE;
    use core::mem::offset_of;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::string::String;
    use std::vec::Vec;

    /// Offsets printed by a C program including Xen 4.17's `memory.h` (x86_64).
    #[test]
    fn reservation_layout_matches_memory_h() {
        assert_eq!(size_of::<XenMemoryReservation>(), 32);
        assert_eq!(offset_of!(XenMemoryReservation, extent_start), 0);
        assert_eq!(offset_of!(XenMemoryReservation, nr_extents), 8);
        assert_eq!(offset_of!(XenMemoryReservation, extent_order), 16);
        assert_eq!(offset_of!(XenMemoryReservation, mem_flags), 20);
        assert_eq!(offset_of!(XenMemoryReservation, domid), 24);
        assert_eq!(
            (XENMEM_DECREASE_RESERVATION, XENMEM_POPULATE_PHYSMAP),
            (1, 6)
        );
    }

    /// Xen for a PV guest: frames owned, the M2P, mappings by virtual address, a log.
    #[derive(Default)]
    struct FakeXen {
        owned: RefCell<Vec<u64>>,
        next_free: RefCell<u64>,
        m2p: RefCell<BTreeMap<u64, u64>>,
        mapped: RefCell<BTreeMap<u64, u64>>,
        log: RefCell<Vec<String>>,
        /// Populate only this many (a partial result).
        populate_limit: Option<u64>,
    }

    impl Hypervisor for FakeXen {
        unsafe fn hypercall(&self, call: Hypercall) -> i64 {
            match call.nr {
                HypercallNr::UPDATE_VA_MAPPING => {
                    let (va, pte) = (call.args[0], call.args[1]);
                    assert_eq!(call.args[2], UVMF_INVLPG);
                    self.mapped.borrow_mut().insert(va, pte);
                    self.log
                        .borrow_mut()
                        .push(format!("map {va:#x} {:#x}", pte >> 12));
                }
                HypercallNr::MEMORY_OP => {
                    // SAFETY: the wrappers pass a live reservation and list.
                    let r = unsafe { *(call.args[1] as *const XenMemoryReservation) };
                    assert_eq!((r.extent_order, r.mem_flags, r.domid), (0, 0, 0x7FF0));
                    let list = r.extent_start as *mut u64;
                    let n = r.nr_extents as usize;
                    let mut done = 0;
                    for i in 0..n {
                        // SAFETY: as above.
                        let entry = unsafe { list.add(i) };
                        if call.args[0] == XENMEM_DECREASE_RESERVATION {
                            // SAFETY: as above.
                            let mfn = unsafe { entry.read() };
                            let mut owned = self.owned.borrow_mut();
                            let at = owned.iter().position(|&m| m == mfn).expect("own frame");
                            owned.remove(at);
                            self.log.borrow_mut().push(format!("free {mfn:#x}"));
                        } else {
                            assert_eq!(call.args[0], XENMEM_POPULATE_PHYSMAP);
                            if self.populate_limit.is_some_and(|l| done >= l) {
                                break;
                            }
                            // SAFETY: as above.
                            let pfn = unsafe { entry.read() };
                            let mfn = *self.next_free.borrow();
                            *self.next_free.borrow_mut() += 1;
                            self.owned.borrow_mut().push(mfn);
                            self.m2p.borrow_mut().insert(mfn, pfn);
                            // SAFETY: as above: Xen writes the MFN back for PV.
                            unsafe { entry.write(mfn) };
                            self.log
                                .borrow_mut()
                                .push(format!("populate {pfn:#x} -> {mfn:#x}"));
                        }
                        done += 1;
                    }
                    return done as i64;
                }
                HypercallNr::MMU_UPDATE => {
                    // SAFETY: the wrapper passes one live request and its `done`.
                    let req = unsafe { *(call.args[0] as *const MmuUpdate) };
                    assert_eq!(req.ptr & 3, MMU_MACHPHYS_UPDATE);
                    let mfn = req.ptr >> 12;
                    assert!(self.owned.borrow().contains(&mfn));
                    self.m2p.borrow_mut().insert(mfn, req.val);
                    // SAFETY: as above.
                    unsafe { *(call.args[2] as *mut u32) = 1 };
                    self.log
                        .borrow_mut()
                        .push(format!("m2p {mfn:#x}={:#x}", req.val));
                }
                other => panic!("unexpected {other:?}"),
            }
            0
        }
    }

    struct P2m<'a>(&'a RefCell<Vec<String>>, BTreeMap<u64, u64>);

    impl Env for P2m<'_> {
        fn set_p2m(&mut self, pfn: Pfn, mfn: u64) {
            self.1.insert(pfn.0, mfn);
            self.0
                .borrow_mut()
                .push(format!("p2m {:#x}={mfn:#x}", pfn.0));
        }
    }

    fn pages() -> Vec<(Pfn, Mfn)> {
        (0..4)
            .map(|i| (Pfn(0x20c + i), Mfn(0x5_000c + i)))
            .collect()
    }

    fn xen() -> FakeXen {
        let xen = FakeXen::default();
        xen.owned
            .borrow_mut()
            .extend(pages().iter().map(|p| p.1 .0));
        *xen.next_free.borrow_mut() = 0x9_0000;
        xen
    }

    #[test]
    fn pages_are_unmapped_freed_populated_recorded_and_mapped() {
        let xen = xen();
        let mut p2m = P2m(&xen.log, BTreeMap::new());
        let mut seen = Vec::new();
        // SAFETY: a fake Xen: nothing is mapped.
        let result = unsafe { run(&xen, &mut p2m, &pages(), |e| seen.push(e)) };
        assert_eq!(result, Ok(()));
        let log = xen.log.borrow();
        assert_eq!(
            log[..4],
            [
                "map 0x20c000 0x0",
                "map 0x20d000 0x0",
                "map 0x20e000 0x0",
                "map 0x20f000 0x0"
            ],
            "unmapped first"
        );
        assert_eq!(
            log[4..8],
            [
                "free 0x5000c",
                "free 0x5000d",
                "free 0x5000e",
                "free 0x5000f"
            ]
        );
        assert_eq!(log[8], "p2m 0x20c=0xffffffffffffffff");
        assert_eq!(log[12], "populate 0x20c -> 0x90000");
        assert_eq!(
            log[16..20],
            [
                "p2m 0x20c=0x90000",
                "m2p 0x90000=0x20c",
                "map 0x20c000 0x90000",
                "p2m 0x20d=0x90001"
            ]
        );
        assert_eq!(log.len(), 28);
        assert_eq!(
            seen,
            (0..4)
                .map(|i| Exchange {
                    pfn: Pfn(0x20c + i),
                    old: Mfn(0x5_000c + i),
                    new: Mfn(0x9_0000 + i)
                })
                .collect::<Vec<_>>()
        );
        for i in 0..4u64 {
            assert_eq!(p2m.1[&(0x20c + i)], 0x9_0000 + i);
            assert_eq!(xen.m2p.borrow()[&(0x9_0000 + i)], 0x20c + i);
            let pte = xen.mapped.borrow()[&((0x20c + i) << 12)];
            assert_eq!(pte, pagewalk::kernel_rw_pte(Mfn(0x9_0000 + i)));
        }
        assert_eq!(
            *xen.owned.borrow(),
            [0x9_0000, 0x9_0001, 0x9_0002, 0x9_0003]
        );
    }

    #[test]
    fn a_partial_populate_is_a_failure() {
        let xen = FakeXen {
            populate_limit: Some(2),
            ..xen()
        };
        let mut p2m = P2m(&xen.log, BTreeMap::new());
        // SAFETY: a fake Xen: nothing is mapped.
        let result = unsafe { run(&xen, &mut p2m, &pages(), |_| panic!("no report")) };
        assert_eq!(
            result,
            Err(BalloonError {
                what: "balloon: populate_physmap partial",
                error: XenError::EBUSY
            })
        );
    }

    #[test]
    fn balloon_line() {
        let mut out = Vec::new();
        write_balloon(
            &mut out,
            &Exchange {
                pfn: Pfn(0x20c),
                old: Mfn(0x5_000c),
                new: Mfn(0x9_0000),
            },
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "BALLOON pfn=0x20c old-mfn=0x5000c new-mfn=0x90000"
        );
    }
}
