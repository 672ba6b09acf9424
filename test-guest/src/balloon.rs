//! The `balloon` pattern: the guest gives some buffer pages' machine frames back to Xen
//! and gets new ones for the same pseudo-physical frames, as a balloon driver does.
//!
//! Why: mem_access on PV keys access by machine frame, and a frame the guest frees is
//! forgotten while one it gains follows the default access. A test needs a guest whose
//! pages change frames on command, telling which frames it lost and gained.
//!
//! The steps (those of Linux's balloon driver for a PV guest, `drivers/xen/balloon.c`,
//! except that the new frames come before the old ones go), for all pages at once where
//! Xen takes a list:
//!
//! 1. unmap each page: `update_va_mapping(va, 0, UVMF_INVLPG)`, so the old frame has no
//!    mapping left (Xen would otherwise keep it until the last reference goes);
//! 2. `XENMEM_populate_physmap` with the pfns as the extent list (order 0): for a PV
//!    guest Xen allocates frames, sets their M2P entries and writes each new MFN back
//!    into the list (`populate_physmap`, `xen/common/memory.c`). The old frames are
//!    still the guest's at that point, so every new frame differs from every old one (a
//!    frame given back first could come straight back from Xen's allocator). This
//!    needs room for 4 pages above the domain's current allocation: libxl sets
//!    `max_pages` 1 MiB (`LIBXL_MAXMEM_CONSTANT`) above the target, which the guest
//!    does not otherwise use;
//! 3. for each page: the P2M entry (the array `start_info.mfn_list` points to, whose
//!    pages the guest published in `shared_info`, so dom0 sees the change) and the M2P
//!    entry (`mmu_update` with `MMU_MACHPHYS_UPDATE`; Xen already set it, the guest
//!    states it as Linux does), so the P2M never names a frame the guest gave back;
//! 4. `XENMEM_decrease_reservation` with the old machine frames as the extent list
//!    (order 0): a PV guest names frames by MFN (`guest_remove_page`);
//! 5. for each page: the mapping (`update_va_mapping(va, new | PRESENT | RW,
//!    UVMF_INVLPG)`), then one line:
//!
//! ```text
//! TEST-GUEST BALLOON pfn=0x<pfn> old-mfn=0x<hex> new-mfn=0x<hex>
//! ```

use crate::frames::{Mfn, Pfn};
use crate::hypercall::{
    self, DomId, Hypercall, HypercallNr, Hypervisor, MmuUpdate, XenError, XenMemoryReservation,
    UVMF_INVLPG,
};
use crate::pagewalk;
use crate::text::Sink;
use xen_abi::{XENMEM_decrease_reservation, XENMEM_populate_physmap};

/// The most pages one [`run`] exchanges.
pub const MAX_PAGES: usize = 4;

/// Single pages of the caller (order 0, no flags, `DOMID_SELF`), the list at `list` with
/// `len` entries.
fn own_pages(list: u64, len: usize) -> XenMemoryReservation {
    XenMemoryReservation {
        extent_start: xen_abi::__guest_handle_xen_pfn_t { p: list },
        nr_extents: len as u64,
        domid: DomId::SELF.0,
        ..XenMemoryReservation::default()
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
    let reservation = own_pages(mfns.as_ptr() as u64, mfns.len());
    // SAFETY: the list is `mfns`, live for the call (Xen only reads it for a
    // decrease); the frames are unused (this fn's contract).
    unsafe { memory_op(hv, XENMEM_decrease_reservation.into(), &reservation) }
}

/// `XENMEM_populate_physmap` of the pfns in `frames` (order 0, `DOMID_SELF`): for a PV
/// guest Xen replaces each pfn in `frames` by the machine frame it allocated. Returns
/// how many it populated (the first ones).
pub fn populate_physmap<H: Hypervisor + ?Sized>(
    hv: &H,
    frames: &mut [u64],
) -> Result<u64, XenError> {
    let reservation = own_pages(frames.as_mut_ptr() as u64, frames.len());
    // SAFETY: the list is `frames`, live and writable for the call; populating gives
    // the guest frames without touching any mapping.
    unsafe { memory_op(hv, XENMEM_populate_physmap.into(), &reservation) }
}

/// The guest's P2M array, which [`run`] updates.
pub trait Env {
    /// Sets the P2M entry of `pfn` to `mfn`.
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
    /// Xen's error, or `ENOMEM` (populate) or `EBUSY` (decrease) for a partial result.
    pub error: XenError,
}

fn err(what: &'static str) -> impl FnOnce(XenError) -> BalloonError {
    move |error| BalloonError { what, error }
}

/// Exchanges the frames of `pages` (pfn and its current machine frame, at most
/// [`MAX_PAGES`]), reporting each page once it is mapped again on its new frame (see the
/// module docs for the steps).
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
        unsafe { hypercall::update_va_mapping(hv, pfn.to_virt(), 0, UVMF_INVLPG.into()) }
            .map_err(err("balloon: unmap"))?;
    }

    let mut new = [0u64; MAX_PAGES];
    for (slot, &(pfn, _)) in new.iter_mut().zip(pages) {
        *slot = pfn.0;
    }
    let populated =
        populate_physmap(hv, &mut new[..n]).map_err(err("balloon: populate_physmap"))?;
    if populated != n as u64 {
        // Xen stops at the first frame it cannot allocate and returns the count so far:
        // no room under max_pages, or no free memory.
        return Err(err("balloon: populate_physmap short")(XenError::ENOMEM));
    }

    for (&mfn, &(pfn, _)) in new.iter().zip(pages) {
        env.set_p2m(pfn, mfn);
        let m2p = [MmuUpdate::machphys_update(mfn, pfn.0)];
        // SAFETY: an M2P update of a frame just gained for `pfn`: no page-table entry
        // changes.
        unsafe { hypercall::mmu_update(hv, &m2p, DomId::SELF) }
            .map_err(err("balloon: machphys update"))?;
    }

    let mut old = [0u64; MAX_PAGES];
    for (slot, &(_, mfn)) in old.iter_mut().zip(pages) {
        *slot = mfn.0;
    }
    // SAFETY: the frames are the pages' old ones, unmapped above and no longer in the
    // P2M.
    let freed = unsafe { decrease_reservation(hv, &old[..n]) }
        .map_err(err("balloon: decrease_reservation"))?;
    if freed != n as u64 {
        return Err(err("balloon: decrease_reservation partial")(
            XenError::EBUSY,
        ));
    }

    for (&mfn, &(pfn, old)) in new.iter().zip(pages) {
        let pte = pagewalk::kernel_rw_pte(Mfn(mfn));
        // SAFETY: maps the new frame where the page was; nothing relies on its contents
        // (this fn's contract).
        unsafe { hypercall::update_va_mapping(hv, pfn.to_virt(), pte, UVMF_INVLPG.into()) }
            .map_err(err("balloon: map the new frame"))?;
        report(Exchange {
            pfn,
            old,
            new: Mfn(mfn),
        });
    }
    Ok(())
}

/// `BALLOON pfn=0x<pfn> old-mfn=0x<hex> new-mfn=0x<hex>` (after `TEST-GUEST `).
pub fn write_balloon(out: &mut (impl Sink + ?Sized), exchange: &Exchange) {
    let Exchange { pfn, old, new } = exchange;
    let _ = write!(
        out,
        "BALLOON pfn={:#x} old-mfn={:#x} new-mfn={:#x}",
        pfn.0, old.0, new.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_xen::{FakeXen, Script};
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::string::String;
    use std::vec::Vec;

    /// Xen for a PV guest: frames owned (at most `max_pages`), a LIFO free list (a
    /// frame given back is the next one handed out), the M2P, mappings by virtual
    /// address, a log.
    struct Model {
        owned: RefCell<Vec<u64>>,
        free: RefCell<Vec<u64>>,
        max_pages: usize,
        m2p: RefCell<BTreeMap<u64, u64>>,
        mapped: RefCell<BTreeMap<u64, u64>>,
        log: RefCell<Vec<String>>,
    }

    impl Model {
        fn log(&self, line: String) {
            self.log.borrow_mut().push(line);
        }
    }

    impl Script for Model {
        unsafe fn answer(&self, call: Hypercall) -> i64 {
            match call.nr {
                HypercallNr::UPDATE_VA_MAPPING => {
                    let (va, pte) = (call.args[0], call.args[1]);
                    assert_eq!(call.args[2], u64::from(UVMF_INVLPG));
                    self.mapped.borrow_mut().insert(va, pte);
                    self.log(format!("map {va:#x} {:#x}", pte >> 12));
                }
                HypercallNr::MEMORY_OP => {
                    // SAFETY: the wrappers pass a live reservation and list.
                    let r = unsafe { *(call.args[1] as *const XenMemoryReservation) };
                    assert_eq!((r.extent_order, r.mem_flags, r.domid), (0, 0, 0x7FF0));
                    let list = r.extent_start.p as *mut u64;
                    let mut done = 0;
                    for i in 0..r.nr_extents as usize {
                        // SAFETY: as above.
                        let entry = unsafe { list.add(i) };
                        // SAFETY: as above.
                        let value = unsafe { entry.read() };
                        if call.args[0] == u64::from(XENMEM_decrease_reservation) {
                            let mut owned = self.owned.borrow_mut();
                            let at = owned.iter().position(|&m| m == value).expect("own frame");
                            owned.remove(at);
                            self.free.borrow_mut().push(value);
                            self.log(format!("free {value:#x}"));
                        } else {
                            assert_eq!(call.args[0], u64::from(XENMEM_populate_physmap));
                            if self.owned.borrow().len() >= self.max_pages {
                                // As Xen: the count so far, not an error.
                                return done;
                            }
                            let mfn = self.free.borrow_mut().pop().expect("free frame");
                            self.owned.borrow_mut().push(mfn);
                            self.m2p.borrow_mut().insert(mfn, value);
                            // SAFETY: as above: Xen writes the MFN back for PV.
                            unsafe { entry.write(mfn) };
                            self.log(format!("populate {value:#x} -> {mfn:#x}"));
                        }
                        done += 1;
                    }
                    return done;
                }
                HypercallNr::MMU_UPDATE => {
                    // SAFETY: the wrapper passes one live request and its `done`.
                    let req = unsafe { *(call.args[0] as *const MmuUpdate) };
                    assert_eq!(req.ptr & 3, u64::from(xen_sys::MMU_MACHPHYS_UPDATE));
                    let mfn = req.ptr >> 12;
                    assert!(self.owned.borrow().contains(&mfn));
                    self.m2p.borrow_mut().insert(mfn, req.val);
                    // SAFETY: as above.
                    unsafe { *(call.args[2] as *mut u32) = 1 };
                    self.log(format!("m2p {mfn:#x}={:#x}", req.val));
                }
                other => panic!("unexpected {other:?}"),
            }
            0
        }
    }

    /// The guest's P2M; writes go to the same log as the fake Xen's.
    struct P2m<'a>(&'a Model, BTreeMap<u64, u64>);

    impl Env for P2m<'_> {
        fn set_p2m(&mut self, pfn: Pfn, mfn: u64) {
            self.1.insert(pfn.0, mfn);
            self.0.log(format!("p2m {:#x}={mfn:#x}", pfn.0));
        }
    }

    fn pages() -> Vec<(Pfn, Mfn)> {
        (0..4)
            .map(|i| (Pfn(0x20c + i), Mfn(0x5_000c + i)))
            .collect()
    }

    /// A guest owning the four pages' frames, with `headroom` pages below `max_pages`.
    fn xen(headroom: usize) -> Model {
        Model {
            owned: RefCell::new(pages().iter().map(|p| p.1 .0).collect()),
            free: RefCell::new((0..4).rev().map(|i| 0x9_0000 + i).collect()),
            max_pages: 4 + headroom,
            m2p: RefCell::default(),
            mapped: RefCell::default(),
            log: RefCell::default(),
        }
    }

    #[test]
    fn new_frames_come_before_the_old_ones_go() {
        let xen = xen(4);
        let mut p2m = P2m(&xen, BTreeMap::new());
        let mut seen = Vec::new();
        // SAFETY: a fake Xen: nothing is mapped.
        let result = unsafe { run(&FakeXen::of(&xen), &mut p2m, &pages(), |e| seen.push(e)) };
        assert_eq!(result, Ok(()));
        let log = xen.log.borrow();
        let expected: Vec<String> = [
            "map 0x20c000 0x0",
            "map 0x20d000 0x0",
            "map 0x20e000 0x0",
            "map 0x20f000 0x0",
            "populate 0x20c -> 0x90000",
            "populate 0x20d -> 0x90001",
            "populate 0x20e -> 0x90002",
            "populate 0x20f -> 0x90003",
            "p2m 0x20c=0x90000",
            "m2p 0x90000=0x20c",
            "p2m 0x20d=0x90001",
            "m2p 0x90001=0x20d",
            "p2m 0x20e=0x90002",
            "m2p 0x90002=0x20e",
            "p2m 0x20f=0x90003",
            "m2p 0x90003=0x20f",
            "free 0x5000c",
            "free 0x5000d",
            "free 0x5000e",
            "free 0x5000f",
            "map 0x20c000 0x90000",
            "map 0x20d000 0x90001",
            "map 0x20e000 0x90002",
            "map 0x20f000 0x90003",
        ]
        .map(String::from)
        .into();
        assert_eq!(*log, expected);
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
    fn frames_differ_even_when_xen_reuses_the_last_frames_freed() {
        // Xen's free list holds only what the guest gives back: with the old frames
        // still owned during the populate, the allocator cannot hand them back.
        let xen = xen(4);
        xen.free.borrow_mut().clear();
        xen.free
            .borrow_mut()
            .extend([0x7_0001, 0x7_0000, 0x6_0001, 0x6_0000]);
        let mut p2m = P2m(&xen, BTreeMap::new());
        let mut seen = Vec::new();
        // SAFETY: a fake Xen: nothing is mapped.
        let result = unsafe { run(&FakeXen::of(&xen), &mut p2m, &pages(), |e| seen.push(e)) };
        assert_eq!(result, Ok(()));
        assert!(seen.iter().all(|e| e.new != e.old));
        assert!(seen
            .iter()
            .all(|e| pages().iter().all(|&(_, old)| old != e.new)));
    }

    #[test]
    fn without_headroom_populate_fails_before_anything_is_given_back() {
        let xen = xen(0);
        let mut p2m = P2m(&xen, BTreeMap::new());
        // SAFETY: a fake Xen: nothing is mapped.
        let result = unsafe {
            run(&FakeXen::of(&xen), &mut p2m, &pages(), |_| {
                panic!("no report")
            })
        };
        assert_eq!(
            result,
            Err(BalloonError {
                what: "balloon: populate_physmap short",
                error: XenError::ENOMEM
            })
        );
        assert_eq!(xen.owned.borrow().len(), 4, "no frame given back");
        assert!(p2m.1.is_empty(), "the P2M unchanged");
    }

    #[test]
    fn a_partial_populate_is_a_failure() {
        let xen = xen(2);
        let mut p2m = P2m(&xen, BTreeMap::new());
        // SAFETY: a fake Xen: nothing is mapped.
        let result = unsafe {
            run(&FakeXen::of(&xen), &mut p2m, &pages(), |_| {
                panic!("no report")
            })
        };
        assert_eq!(
            result,
            Err(BalloonError {
                what: "balloon: populate_physmap short",
                error: XenError::ENOMEM
            })
        );
    }

    #[test]
    fn balloon_line() {
        let mut out = String::new();
        write_balloon(
            &mut out,
            &Exchange {
                pfn: Pfn(0x20c),
                old: Mfn(0x5_000c),
                new: Mfn(0x9_0000),
            },
        );
        assert_eq!(out, "BALLOON pfn=0x20c old-mfn=0x5000c new-mfn=0x90000");
    }
}
