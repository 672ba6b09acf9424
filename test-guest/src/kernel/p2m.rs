//! Publishing the P2M in `shared_info` (every mode) and printing it (`p2m` mode).

use core::fmt::Write;
use core::sync::atomic::{fence, Ordering};

use test_guest::frames::{self, Mfn, Pfn};
use test_guest::hypercall::{self, HypercallPage, XenError, UVMF_INVLPG};
use test_guest::lines::P2mRun;
use test_guest::p2m_tree;
use test_guest::pagewalk;
use test_guest::start_info::StartInfo;

use super::memory::{l1_slot, p2m, BssPage, SHARED_INFO};
use super::output::{fail, line};

/// The frame-list page of the published P2M tree (MFNs of the P2M array's pages).
pub(super) static FRAME_LIST: BssPage = BssPage::new();

/// The frame-list-list page (MFN of [`FRAME_LIST`]); its MFN goes to shared_info.
pub(super) static FRAME_LIST_LIST: BssPage = BssPage::new();

/// Publishes the P2M as a Linux PV guest does: builds the frame-list tree in
/// [`FRAME_LIST`] and [`FRAME_LIST_LIST`], maps `shared_info` at [`SHARED_INFO`]
/// and writes `arch.max_pfn` and `arch.pfn_to_mfn_frame_list_list` there; prints
/// `P2M-PUBLISHED`. Any failure is a FAIL (crash).
pub(super) fn publish_p2m(hv: &HypercallPage, si: &StartInfo) {
    let Some(p2m) = p2m(si) else {
        fail("no P2M list", XenError::EINVAL)
    };
    let mfn_of = |page: &BssPage| {
        let pfn = usize::try_from(Pfn::from_virt(page.virt()).0).ok()?;
        p2m.get(pfn).map(|&mfn| Mfn(mfn))
    };
    let (Some(list_mfn), Some(fll_mfn)) = (mfn_of(&FRAME_LIST), mfn_of(&FRAME_LIST_LIST)) else {
        fail("P2M publish: list page not in the P2M", XenError::EINVAL)
    };
    // SAFETY: the two statics are distinct pages that nothing else references
    // (`BssPage`'s Sync contract: this runs once, on vCPU 0), so these are the only
    // references to their contents.
    let (list, fll) = unsafe { (&mut *FRAME_LIST.0.get(), &mut *FRAME_LIST_LIST.0.get()) };
    let built = p2m_tree::build_tree(
        p2m_tree::p2m_pages(si.nr_pages),
        |page| p2m_tree::p2m_page_mfn(p2m, si.mfn_list, page),
        core::slice::from_mut(list),
        &[list_mfn],
        fll,
    );
    if let Err(e) = built {
        fail(e.what(), XenError::EINVAL);
    }

    let Some(pte) = p2m_tree::shared_info_pte(si.shared_info) else {
        fail("P2M publish: shared_info address", XenError::EINVAL)
    };
    let va = SHARED_INFO.virt();
    // SAFETY: nothing Rust relies on lives in SHARED_INFO's page: it is never read
    // or referenced, only written below through raw pointers, after the remap. It is
    // never mapped back: from now on it is the shared_info page.
    if let Err(e) = unsafe { hypercall::update_va_mapping(hv, va, pte, u64::from(UVMF_INVLPG)) } {
        fail("P2M publish: map shared_info", e);
    }
    let now = l1_slot(si, p2m, va).value;
    if !pagewalk::pte_present(now) || pagewalk::pte_mfn(now) != pagewalk::pte_mfn(pte) {
        fail("P2M publish: shared_info mapping check", XenError::EINVAL);
    }
    // The tree's pages are complete in memory before it is published.
    fence(Ordering::SeqCst);
    let shared = SHARED_INFO.0.get().cast::<u8>();
    // SAFETY: `va` now maps the 4096-byte shared_info page (just checked); both
    // fields are 8-byte aligned `unsigned long`s inside it that the guest owns
    // (`struct arch_shared_info`); volatile because dom0 reads them.
    unsafe {
        shared
            .add(p2m_tree::SHARED_INFO_MAX_PFN)
            .cast::<u64>()
            .write_volatile(si.nr_pages);
        fence(Ordering::SeqCst);
        shared
            .add(p2m_tree::SHARED_INFO_FRAME_LIST_LIST)
            .cast::<u64>()
            .write_volatile(fll_mfn.0);
    }
    line(|out| {
        let _ = write!(
            out,
            "P2M-PUBLISHED max_pfn={:#x} fll={:#x}",
            si.nr_pages, fll_mfn.0
        );
    });
}

/// The `p2m` mode: the P2M as runs of consecutive machine frames.
pub(super) fn print_p2m_runs(start_info: &StartInfo) {
    let Some(p2m) = p2m(start_info) else {
        fail("no P2M list", XenError::EINVAL)
    };
    for run in frames::runs(p2m) {
        line(|out| {
            let run = P2mRun {
                pfn: run.first_pfn,
                mfn: run.first_mfn,
                count: run.count,
            };
            let _ = write!(out, "{run}");
        });
    }
}
