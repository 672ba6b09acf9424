//! A PV guest's P2M (pfn -> mfn), read the way Xen's toolstack reads it for save and core
//! dumps: from the 3-level frame list the guest publishes in its `shared_info`
//! (`arch.max_pfn` and `arch.pfn_to_mfn_frame_list_list`, `xen/include/public/arch-x86/xen.h`).
//!
//! Everything read here is written by the guest, so it is untrusted: sizes are bounded, and
//! every frame is mapped as the guest's own (Xen refuses frames it does not own), so a lying
//! guest can only make the listener read the guest's own memory. Xen never relies on the
//! result: it checks every machine frame a listener names.

use crate::error::{Error, Result};
use crate::monitor::ForeignMapping;
use crate::privcmd::Privcmd;
use crate::DomId;

/// `offsetof(struct shared_info, arch.max_pfn)` on x86_64 (gcc, Xen 4.17 headers).
const MAX_PFN_OFFSET: usize = 3088;
/// `offsetof(struct shared_info, arch.pfn_to_mfn_frame_list_list)`.
const FRAME_LIST_LIST_OFFSET: usize = 3096;
/// Entries of one list page.
const PER_PAGE: u64 = 512;
/// The largest P2M this reader accepts: 64 GiB of guest memory.
const MAX_PFNS: u64 = 1 << 24;

/// A PV guest's P2M.
pub struct P2m {
    mfns: Vec<u64>,
}

impl P2m {
    /// Reads the P2M `domain` published (its shared_info frame comes from
    /// `XEN_DOMCTL_getdomaininfo`).
    pub fn read(privcmd: &Privcmd, domain: DomId) -> Result<P2m> {
        let operation = format!("reading the P2M of domain {}", domain.0);
        let refuse = |reason: String| Error::invalid(&operation, reason);
        let shared_info = crate::monitor::shared_info_frame(privcmd, domain)?;
        let info = ForeignMapping::map(privcmd, domain, &[shared_info], false)?;
        let max_pfn = info.read_u64(MAX_PFN_OFFSET / 8).unwrap_or(0);
        let list_list = info.read_u64(FRAME_LIST_LIST_OFFSET / 8).unwrap_or(0);
        if max_pfn == 0 || max_pfn > MAX_PFNS || list_list == 0 {
            return Err(refuse(format!(
                "the guest published no usable P2M (max_pfn {max_pfn:#x}, frame list list \
                 {list_list:#x}); name its frames by machine frame (--mfn)"
            )));
        }
        let p2m_pages = max_pfn.div_ceil(PER_PAGE);
        let list_pages = p2m_pages.div_ceil(PER_PAGE);
        let top = ForeignMapping::map(privcmd, domain, &[list_list], false)?;
        let lists: Vec<u64> = (0..list_pages as usize)
            .map(|index| top.read_u64(index).unwrap_or(0))
            .collect();
        let lists = ForeignMapping::map(privcmd, domain, &lists, false)?;
        let pages: Vec<u64> = (0..p2m_pages as usize)
            .map(|index| lists.read_u64(index).unwrap_or(0))
            .collect();
        let p2m = ForeignMapping::map(privcmd, domain, &pages, false)?;
        let mfns = (0..max_pfn as usize)
            .map(|pfn| p2m.read_u64(pfn).unwrap_or(u64::MAX))
            .collect();
        Ok(P2m { mfns })
    }

    /// The machine frame behind guest frame `pfn`, if the P2M has one.
    pub fn mfn(&self, pfn: u64) -> Option<u64> {
        let mfn = *self.mfns.get(usize::try_from(pfn).ok()?)?;
        // INVALID_P2M_ENTRY (~0) marks a hole.
        (mfn != u64::MAX).then_some(mfn)
    }

    /// How many guest frames the P2M covers.
    pub fn len(&self) -> usize {
        self.mfns.len()
    }

    /// True for an empty P2M.
    pub fn is_empty(&self) -> bool {
        self.mfns.is_empty()
    }
}
