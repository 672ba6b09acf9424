//! The kernel's memory: the workload's buffer, `.bss` pages, the P2M list, the M2P
//! table and walks of the running page tables.

use core::cell::UnsafeCell;

use test_guest::frames::{self, Mfn, PAGE_SIZE};
use test_guest::hypercall::XenError;
use test_guest::p2m_tree::{ListPage, ENTRIES_PER_PAGE};
use test_guest::pagewalk;
use test_guest::start_info::StartInfo;
use test_guest::workload::BUFFER_BYTES;

use super::output::fail;

/// Reads the M2P entry of `mfn`.
pub(super) fn read_m2p(mfn: Mfn) -> Option<u64> {
    let entry = frames::m2p_entry_addr(mfn)? as *const u64;
    // SAFETY: Xen maps the read-only machine-to-phys table at
    // MACH2PHYS_VIRT_START in every 64-bit PV guest (xen-x86_64.h); `mfn` is a
    // frame Xen gave this domain, so its entry is inside the mapped table.
    Some(unsafe { entry.read_volatile() })
}

/// The guest's P2M list (pfn -> mfn), as the domain builder left it or as the
/// `balloon` pattern changed it.
///
/// Only the `balloon` pattern writes the list (`patterns::balloon`, through raw
/// pointers), on vCPU 0 and while no slice from here is in use: every user takes
/// a fresh slice and none keeps one across that pattern's writes.
pub(super) fn p2m(si: &StartInfo) -> Option<&'static [u64]> {
    let p2m_ptr = si.mfn_list as *const u64;
    let p2m_len = usize::try_from(si.nr_pages).ok()?;
    // SAFETY: the builder maps the P2M list (`mfn_list`, one 8-byte entry per
    // page of the domain) read-write in the bootstrap region (xen.h,
    // "Start-of-day memory layout", item c) for the life of the domain; only
    // this kernel writes it, never while the slice is in use (see above).
    Some(unsafe { core::slice::from_raw_parts(p2m_ptr, p2m_len) })
}

/// The workload's buffer: `BUFFER_PAGES` page-aligned pages.
#[repr(C, align(4096))]
pub(super) struct PageBuffer(UnsafeCell<[u8; BUFFER_BYTES]>);

// SAFETY: the buffer is only touched through raw pointers (`buffer_byte`), never
// through a reference; with two vCPUs (`multi-vcpu`) each writes its own pages.
unsafe impl Sync for PageBuffer {}

/// In its own section, which guest.ld puts at gfn `BUFFER_GFN` (`kernel_main`
/// checks).
#[link_section = ".test_buffer"]
pub(super) static BUFFER: PageBuffer = PageBuffer(UnsafeCell::new([0; BUFFER_BYTES]));

/// Address of byte `offset` of page `page` of the buffer.
pub(super) fn buffer_byte(page: usize, offset: usize) -> *mut u8 {
    BUFFER
        .0
        .get()
        .cast::<u8>()
        .wrapping_add(page * PAGE_SIZE + offset)
}

/// The L1 entry that maps `va` in the running (bootstrap) page tables; a failed
/// walk is a FAIL.
pub(super) fn l1_slot(si: &StartInfo, p2m: &[u64], va: u64) -> pagewalk::L1Slot {
    l2_and_l1_slots(si, p2m, va).1
}

/// The L2 entry and the L1 entry on the way to `va` in the running (bootstrap)
/// page tables (`pagewalk::walk_to_l2_and_l1`); a failed walk is a FAIL.
pub(super) fn l2_and_l1_slots(
    si: &StartInfo,
    p2m: &[u64],
    va: u64,
) -> (pagewalk::L1Slot, pagewalk::L1Slot) {
    let slot = pagewalk::walk_to_l2_and_l1(
        va,
        si.pt_base,
        |entry| {
            // SAFETY: the walk reads only 8-byte aligned entries inside the L4
            // page at `pt_base` or inside a table the closure below returned: pages
            // of the bootstrap page-table region, which the builder maps (read-only)
            // for the life of the domain. Volatile: Xen writes them.
            unsafe { (entry as *const u64).read_volatile() }
        },
        |mfn| {
            let virt = frames::resolve_pfn(mfn, read_m2p, p2m)?.to_virt();
            pagewalk::in_table_region(virt, si.pt_base, si.nr_pt_frames).then_some(virt)
        },
    );
    match slot {
        Ok(slot) => slot,
        Err(e) => fail(e.what(), XenError::EINVAL),
    }
}

/// A page-aligned page of `.bss`, only ever accessed through raw pointers.
#[repr(C, align(4096))]
pub(super) struct BssPage(pub(super) UnsafeCell<ListPage>);

// SAFETY: these pages are only touched through raw pointers from vCPU 0: the P2M
// tree pages once, in `publish_p2m`; the shared_info page and the go page with
// volatile accesses (Xen and dom0 write them). No events are delivered.
unsafe impl Sync for BssPage {}

impl BssPage {
    pub(super) const fn new() -> Self {
        Self(UnsafeCell::new([0; ENTRIES_PER_PAGE]))
    }

    /// The page's virtual address.
    pub(super) fn virt(&self) -> u64 {
        self.0.get() as u64
    }
}

/// The virtual page `shared_info` is mapped at, for the life of the domain (its
/// original backing frame is no longer used through this address).
pub(super) static SHARED_INFO: BssPage = BssPage::new();
