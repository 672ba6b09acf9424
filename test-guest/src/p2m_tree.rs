//! Publishing the guest's P2M to the toolstack, the way Linux PV guests do it
//! (`xen_setup_mfn_list_list`, `arch/x86/xen/p2m.c`).
//!
//! Xen's toolstack (save/restore, `xc_core`) and the dom0 listener read a PV guest's
//! P2M through two fields the guest itself writes into its `shared_info` page
//! (`struct arch_shared_info`, `xen/include/public/arch-x86/xen.h`):
//!
//! - `max_pfn`: how many entries the P2M has (`start_info.nr_pages` here);
//! - `pfn_to_mfn_frame_list_list`: the machine frame of a page of MFNs of "frame
//!   list" pages, each a page of MFNs of the pages of the P2M array itself. A 3-level
//!   tree with [`ENTRIES_PER_PAGE`] (512) entries per page: up to 512 frame-list
//!   pages, so up to 512 * 512 P2M pages (2^27 pfns, 512 GiB of guest).
//!
//! The P2M array is the builder's (`start_info.mfn_list`, a page-aligned virtual
//! address in the bootstrap mapping); the MFN of each of its pages is the P2M's own
//! entry for that page's pfn ([`p2m_page_mfn`]). Everything here is pure and tested
//! on the host; the kernel supplies the pages and maps `shared_info`.

use crate::frames::{Mfn, PAGE_SHIFT, PAGE_SIZE, VIRT_BASE};
use crate::pagewalk::{self, PTE_ADDR_MASK};

/// Entries (`u64` MFNs) per page, at every level of the tree.
pub const ENTRIES_PER_PAGE: usize = PAGE_SIZE / 8;

/// Most frame-list pages one frame-list-list page can name.
pub const MAX_FRAME_LISTS: usize = ENTRIES_PER_PAGE;

/// Most P2M pages the 3-level tree can describe.
pub const MAX_P2M_PAGES: u64 = (ENTRIES_PER_PAGE * ENTRIES_PER_PAGE) as u64;

/// Byte offset of `arch.max_pfn` in `struct shared_info` (`xen_sys`'s layout).
pub const SHARED_INFO_MAX_PFN: usize = core::mem::offset_of!(xen_sys::shared_info, arch)
    + core::mem::offset_of!(xen_sys::arch_shared_info, max_pfn);

/// Byte offset of `arch.pfn_to_mfn_frame_list_list` in `struct shared_info`.
pub const SHARED_INFO_FRAME_LIST_LIST: usize = core::mem::offset_of!(xen_sys::shared_info, arch)
    + core::mem::offset_of!(xen_sys::arch_shared_info, pfn_to_mfn_frame_list_list);

/// One page of the tree: 512 MFNs.
pub type ListPage = [u64; ENTRIES_PER_PAGE];

/// Pages of a P2M array of `nr_pages` 8-byte entries starting on a page boundary.
pub const fn p2m_pages(nr_pages: u64) -> u64 {
    nr_pages.div_ceil(ENTRIES_PER_PAGE as u64)
}

/// Frame-list pages needed for `p2m_pages` P2M pages.
pub const fn frame_lists_needed(p2m_pages: u64) -> u64 {
    p2m_pages.div_ceil(ENTRIES_PER_PAGE as u64)
}

/// The machine frame of page `page` of the P2M array at virtual address `mfn_list`
/// (the bootstrap mapping: pfn = (virtual - `VIRT_BASE`) / 4096), read from the P2M
/// `p2m` itself. `None` if `mfn_list` is not page aligned or below `VIRT_BASE`, or the
/// page's pfn is outside `p2m`.
pub fn p2m_page_mfn(p2m: &[u64], mfn_list: u64, page: u64) -> Option<Mfn> {
    if mfn_list % PAGE_SIZE as u64 != 0 {
        return None;
    }
    let phys = page
        .checked_mul(PAGE_SIZE as u64)
        .and_then(|off| mfn_list.checked_add(off))?
        .checked_sub(VIRT_BASE)?;
    let pfn = phys >> PAGE_SHIFT;
    let mfn = *p2m.get(usize::try_from(pfn).ok()?)?;
    Some(Mfn(mfn))
}

/// Why the tree could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeError {
    /// More P2M pages than the frame-list pages supplied (or the tree) can hold.
    TooLarge {
        /// P2M pages to describe.
        p2m_pages: u64,
        /// Frame-list pages that would need.
        frame_lists: u64,
    },
    /// `frame_lists` and `frame_list_mfns` differ in length.
    ListMismatch,
    /// The machine frame of this P2M page is unknown.
    UnknownP2mPage {
        /// Index of the page in the P2M array.
        page: u64,
    },
}

impl TreeError {
    /// A short description for a `FAIL` line.
    pub const fn what(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "P2M publish: P2M needs more than one frame-list page",
            Self::ListMismatch => "P2M publish: frame-list pages and MFNs differ",
            Self::UnknownP2mPage { .. } => "P2M publish: P2M page frame not in the P2M",
        }
    }
}

/// Fills the tree: `frame_lists[i / 512][i % 512]` = `p2m_page_mfn(i)` for the
/// `p2m_pages` pages of the P2M array, `fll[j]` = `frame_list_mfns[j]` for every
/// frame-list page used; every other entry of the given pages is set to 0.
///
/// `frame_lists` are the frame-list pages available (at most [`MAX_FRAME_LISTS`]
/// used), `frame_list_mfns` their machine frames, in the same order. Nothing is
/// written on error.
pub fn build_tree(
    p2m_pages: u64,
    mut p2m_page_mfn: impl FnMut(u64) -> Option<Mfn>,
    frame_lists: &mut [ListPage],
    frame_list_mfns: &[Mfn],
    fll: &mut ListPage,
) -> Result<(), TreeError> {
    if frame_lists.len() != frame_list_mfns.len() {
        return Err(TreeError::ListMismatch);
    }
    let needed = frame_lists_needed(p2m_pages);
    let available = frame_lists.len().min(MAX_FRAME_LISTS) as u64;
    if p2m_pages > MAX_P2M_PAGES || needed > available {
        return Err(TreeError::TooLarge {
            p2m_pages,
            frame_lists: needed,
        });
    }
    // Every frame known before anything is written.
    if let Some(page) = (0..p2m_pages).find(|&page| p2m_page_mfn(page).is_none()) {
        return Err(TreeError::UnknownP2mPage { page });
    }
    for (j, list) in frame_lists.iter_mut().enumerate() {
        for (k, entry) in list.iter_mut().enumerate() {
            let page = (j * ENTRIES_PER_PAGE + k) as u64;
            *entry = if page < p2m_pages {
                p2m_page_mfn(page).map_or(0, |mfn| mfn.0)
            } else {
                0
            };
        }
    }
    for (j, entry) in fll.iter_mut().enumerate() {
        *entry = if (j as u64) < needed {
            frame_list_mfns[j].0
        } else {
            0
        };
    }
    Ok(())
}

/// The L1 entry mapping the `shared_info` page at machine address `maddr`
/// (`start_info.shared_info`): `maddr | PRESENT | RW`, what Linux's
/// `set_fixmap(FIX_PARAVIRT_BOOTMAP, shared_info)` writes. `None` unless `maddr` is a
/// non-zero, page-aligned machine address an entry can hold.
pub const fn shared_info_pte(maddr: u64) -> Option<u64> {
    if maddr == 0 || maddr & !PTE_ADDR_MASK != 0 {
        return None;
    }
    Some(pagewalk::kernel_rw_pte(Mfn(maddr >> PAGE_SHIFT)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x86_64::structures::paging::PageTableFlags;

    /// A P2M for a 64 MiB guest whose array sits at pfn 0x300 (virtual 0x30_0000).
    fn p2m_64m() -> Vec<u64> {
        (0..16384u64).map(|pfn| 0x8_0000 + pfn * 3).collect()
    }

    #[test]
    fn sizes() {
        assert_eq!(ENTRIES_PER_PAGE, 512);
        assert_eq!(p2m_pages(16384), 32, "64 MiB guest");
        assert_eq!(frame_lists_needed(32), 1);
        assert_eq!(p2m_pages(0), 0);
        assert_eq!(p2m_pages(1), 1);
        assert_eq!(p2m_pages(512), 1);
        assert_eq!(p2m_pages(513), 2);
        assert_eq!(frame_lists_needed(512), 1);
        assert_eq!(frame_lists_needed(513), 2);
        assert_eq!(frame_lists_needed(MAX_P2M_PAGES), 512);
        // The offsets main.rs documents (3088 and 3096).
        assert_eq!(
            (SHARED_INFO_MAX_PFN, SHARED_INFO_FRAME_LIST_LIST),
            (3088, 3096)
        );
    }

    #[test]
    fn p2m_pages_are_found_through_the_p2m() {
        let p2m = p2m_64m();
        assert_eq!(
            p2m_page_mfn(&p2m, 0x30_0000, 0),
            Some(Mfn(0x8_0000 + 0x300 * 3))
        );
        assert_eq!(
            p2m_page_mfn(&p2m, 0x30_0000, 31),
            Some(Mfn(0x8_0000 + 0x31f * 3))
        );
        assert_eq!(p2m_page_mfn(&p2m, 0x30_0008, 0), None, "unaligned");
        assert_eq!(p2m_page_mfn(&p2m, 0x3fff_f000, 1), None, "past the P2M");
        assert_eq!(p2m_page_mfn(&p2m, 0x30_0000, u64::MAX), None, "overflow");
    }

    #[test]
    fn tree_of_a_64_mib_guest() {
        let p2m = p2m_64m();
        let pages = p2m_pages(p2m.len() as u64);
        let mut lists = [[0xdead; ENTRIES_PER_PAGE]];
        let mut fll = [0xbeef; ENTRIES_PER_PAGE];
        build_tree(
            pages,
            |i| p2m_page_mfn(&p2m, 0x30_0000, i),
            &mut lists,
            &[Mfn(0x4242)],
            &mut fll,
        )
        .expect("fits");
        for i in 0..32 {
            assert_eq!(lists[0][i], p2m[0x300 + i], "P2M page {i}");
        }
        assert!(lists[0][32..].iter().all(|&e| e == 0));
        assert_eq!(fll[0], 0x4242);
        assert!(fll[1..].iter().all(|&e| e == 0));
    }

    #[test]
    fn tree_spanning_frame_lists() {
        // 1000 P2M pages: two frame lists, the second one partly used.
        let mut lists = vec![[7; ENTRIES_PER_PAGE]; 3];
        let mut fll = [7; ENTRIES_PER_PAGE];
        let mfns = [Mfn(0xa0), Mfn(0xa1), Mfn(0xa2)];
        build_tree(1000, |i| Some(Mfn(0x1000 + i)), &mut lists, &mfns, &mut fll).unwrap();
        assert_eq!(lists[0][0], 0x1000);
        assert_eq!(lists[0][511], 0x1000 + 511);
        assert_eq!(lists[1][0], 0x1000 + 512);
        assert_eq!(lists[1][1000 - 512 - 1], 0x1000 + 999);
        assert_eq!(lists[1][1000 - 512], 0);
        assert!(lists[2].iter().all(|&e| e == 0), "unused list zeroed");
        assert_eq!(&fll[..3], &[0xa0, 0xa1, 0]);
        assert!(fll[3..].iter().all(|&e| e == 0));
    }

    #[test]
    fn full_tree_is_supported() {
        let mut lists = vec![[0; ENTRIES_PER_PAGE]; MAX_FRAME_LISTS];
        let mfns: Vec<Mfn> = (0..MAX_FRAME_LISTS as u64).map(|j| Mfn(0x10 + j)).collect();
        let mut fll = [0; ENTRIES_PER_PAGE];
        build_tree(
            MAX_P2M_PAGES,
            |i| Some(Mfn(i + 1)),
            &mut lists,
            &mfns,
            &mut fll,
        )
        .unwrap();
        assert_eq!(lists[511][511], MAX_P2M_PAGES);
        assert_eq!(fll[511], 0x10 + 511);
        assert_eq!(
            build_tree(
                MAX_P2M_PAGES + 1,
                |i| Some(Mfn(i)),
                &mut lists,
                &mfns,
                &mut fll
            ),
            Err(TreeError::TooLarge {
                p2m_pages: MAX_P2M_PAGES + 1,
                frame_lists: 513
            })
        );
    }

    #[test]
    fn errors_write_nothing() {
        let mut lists = [[5; ENTRIES_PER_PAGE]];
        let mut fll = [5; ENTRIES_PER_PAGE];
        let e = build_tree(513, |i| Some(Mfn(i)), &mut lists, &[Mfn(1)], &mut fll);
        assert_eq!(
            e,
            Err(TreeError::TooLarge {
                p2m_pages: 513,
                frame_lists: 2
            })
        );
        assert_eq!(
            e.unwrap_err().what(),
            "P2M publish: P2M needs more than one frame-list page"
        );
        let e = build_tree(
            32,
            |i| (i != 7).then_some(Mfn(i)),
            &mut lists,
            &[Mfn(1)],
            &mut fll,
        );
        assert_eq!(e, Err(TreeError::UnknownP2mPage { page: 7 }));
        let e = build_tree(1, |i| Some(Mfn(i)), &mut lists, &[], &mut fll);
        assert_eq!(e, Err(TreeError::ListMismatch));
        assert!(lists[0].iter().chain(fll.iter()).all(|&e| e == 5));
    }

    #[test]
    fn empty_p2m_gives_empty_tree() {
        let mut lists = [[5; ENTRIES_PER_PAGE]];
        let mut fll = [5; ENTRIES_PER_PAGE];
        build_tree(0, |_| None, &mut lists, &[Mfn(1)], &mut fll).unwrap();
        assert!(lists[0].iter().chain(fll.iter()).all(|&e| e == 0));
    }

    #[test]
    fn shared_info_entry() {
        assert_eq!(
            shared_info_pte(0x1_2345_6000),
            Some(0x1_2345_6000 | PageTableFlags::PRESENT.bits() | PageTableFlags::WRITABLE.bits())
        );
        assert_eq!(shared_info_pte(0x1_2345_6008), None, "unaligned");
        assert_eq!(shared_info_pte(0), None);
        assert_eq!(shared_info_pte(1 << 52), None, "beyond 52 address bits");
    }
}
