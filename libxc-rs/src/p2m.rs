//! A PV guest's P2M (pfn -> mfn), read the way Xen's toolstack reads it for save and core
//! dumps: from the 3-level frame list the guest publishes in its `shared_info`
//! (`arch.max_pfn` and `arch.pfn_to_mfn_frame_list_list`, `xen/include/public/arch-x86/xen.h`).
//!
//! Everything read here is written by the guest, so it is untrusted: sizes are bounded, and
//! every frame is mapped as the guest's own (Xen refuses frames it does not own), so a lying
//! guest can only make the listener read the guest's own memory. Xen never relies on the
//! result: it checks every machine frame a listener names.

use crate::error::{Error, Result};
use crate::frame::{Mfn, Pfn};
use crate::monitor::ForeignMapping;
use crate::privcmd::Privcmd;
use crate::DomId;

/// `offsetof(struct shared_info, arch.max_pfn)`.
const MAX_PFN_OFFSET: usize = std::mem::offset_of!(xen_abi::shared_info, arch.max_pfn);
/// `offsetof(struct shared_info, arch.pfn_to_mfn_frame_list_list)`.
const FRAME_LIST_LIST_OFFSET: usize =
    std::mem::offset_of!(xen_abi::shared_info, arch.pfn_to_mfn_frame_list_list);
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
                 {list_list:#x})"
            )));
        }
        let p2m_pages = max_pfn.div_ceil(PER_PAGE);
        let list_pages = p2m_pages.div_ceil(PER_PAGE);
        let top = ForeignMapping::map(privcmd, domain, &[Mfn(list_list)], false)?;
        let lists: Vec<Mfn> = (0..list_pages as usize)
            .map(|index| Mfn(top.read_u64(index).unwrap_or(0)))
            .collect();
        let lists = ForeignMapping::map(privcmd, domain, &lists, false)?;
        let pages: Vec<Mfn> = (0..p2m_pages as usize)
            .map(|index| Mfn(lists.read_u64(index).unwrap_or(0)))
            .collect();
        let p2m = ForeignMapping::map(privcmd, domain, &pages, false)?;
        let mfns = (0..max_pfn as usize)
            .map(|pfn| p2m.read_u64(pfn).unwrap_or(u64::MAX))
            .collect();
        Ok(P2m { mfns })
    }

    /// A P2M from its entries (entry `pfn` is the machine frame of guest frame `pfn`), as
    /// [`P2m::read`] finds them: for tests and for P2Ms obtained another way.
    pub fn from_entries(mfns: Vec<u64>) -> P2m {
        P2m { mfns }
    }

    /// The raw entries, holes and markers included (see [`is_machine_frame`]).
    pub fn entries(&self) -> &[u64] {
        &self.mfns
    }

    /// The reverse map of this P2M.
    pub fn reverse(&self) -> ReverseP2m {
        ReverseP2m::new(&self.mfns)
    }

    /// The machine frame behind guest frame `pfn`, if the P2M has one.
    pub fn mfn(&self, pfn: Pfn) -> Option<Mfn> {
        let mfn = *self.mfns.get(usize::try_from(pfn.0).ok()?)?;
        // INVALID_P2M_ENTRY (~0) marks a hole, and Linux's markers no frame of its RAM.
        is_machine_frame(mfn).then_some(Mfn(mfn))
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

/// Bits Linux sets in a PV P2M entry that is not a frame of the guest's RAM:
/// `FOREIGN_FRAME_BIT` (1 << 63, another domain's frame mapped by grant) and
/// `IDENTITY_FRAME_BIT` (1 << 62, a 1:1 I/O hole). `INVALID_P2M_ENTRY` (~0, a hole; Xen's
/// `INVALID_MFN`) has both. No machine frame has them: x86-64 physical addresses have at
/// most 52 bits.
const NOT_RAM_BITS: u64 = 0b11 << 62;

/// Whether a P2M entry names a machine frame of the guest's RAM, rather than a hole
/// (`~0`, `INVALID_MFN`) or one of Linux's foreign / identity markers.
pub fn is_machine_frame(entry: u64) -> bool {
    entry & NOT_RAM_BITS == 0
}

/// A PV guest's reverse P2M (mfn -> pfn), built from its P2M.
///
/// Xen names a PV guest's frames by machine frame (events, access rights), while the guest
/// and the person reading a trace think in guest frames: this map translates back. Xen's
/// own M2P table would do the same, but the guest writes it too (`MMU_MACHPHYS_UPDATE`) and
/// reading it needs its mapping; the P2M is already read, and one source keeps both
/// directions consistent.
///
/// It is the guest's word, so untrusted: should two guest frames claim the same machine
/// frame, the lower pfn is kept, so the answer is deterministic. A sorted vector rather than
/// a hash map: 16 bytes a frame, built in one sort, no hashing of guest-chosen keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReverseP2m {
    /// (mfn, pfn), sorted by mfn, one entry per mfn.
    pairs: Vec<(u64, u64)>,
}

impl ReverseP2m {
    /// The reverse of the P2M whose entry `pfn` is `entries[pfn]`; holes and markers
    /// ([`is_machine_frame`]) are left out.
    pub fn new(entries: &[u64]) -> ReverseP2m {
        let mut pairs: Vec<(u64, u64)> = entries
            .iter()
            .zip(0u64..)
            .filter(|(mfn, _)| is_machine_frame(**mfn))
            .map(|(mfn, pfn)| (*mfn, pfn))
            .collect();
        // Sorting (mfn, pfn) pairs puts the lowest pfn of an mfn first; dedup keeps it.
        pairs.sort_unstable();
        pairs.dedup_by_key(|(mfn, _)| *mfn);
        ReverseP2m { pairs }
    }

    /// The guest frame whose P2M entry is `mfn`, if any.
    pub fn pfn(&self, mfn: Mfn) -> Option<Pfn> {
        self.pairs
            .binary_search_by_key(&mfn.0, |(mfn, _)| *mfn)
            .ok()
            .map(|index| Pfn(self.pairs[index].1))
    }

    /// How many machine frames the map knows.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when it knows none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_map_inverts_the_p2m_without_holes_or_markers() {
        let p2m = P2m::from_entries(vec![
            0x1234,
            u64::MAX, // a hole: INVALID_P2M_ENTRY
            0x1000,
            0x8000_0000_0000_4321, // FOREIGN_FRAME_BIT
            0x4000_0000_0000_0004, // IDENTITY_FRAME_BIT: pfn 4 is I/O
            0x2000,
        ]);
        let reverse = p2m.reverse();
        assert_eq!(reverse.len(), 3);
        assert_eq!(reverse.pfn(Mfn(0x1234)), Some(Pfn(0)));
        assert_eq!(reverse.pfn(Mfn(0x1000)), Some(Pfn(2)));
        assert_eq!(reverse.pfn(Mfn(0x2000)), Some(Pfn(5)));
        assert_eq!(reverse.pfn(Mfn(0x4321)), None);
        assert_eq!(reverse.pfn(Mfn(4)), None);
        assert_eq!(reverse.pfn(Mfn(u64::MAX)), None);
        assert_eq!(reverse.pfn(Mfn(0x1001)), None);
        for pfn in [0, 2, 5] {
            assert_eq!(reverse.pfn(p2m.mfn(Pfn(pfn)).unwrap()), Some(Pfn(pfn)));
        }
    }

    #[test]
    fn a_machine_frame_claimed_twice_maps_to_the_lowest_pfn() {
        let reverse = ReverseP2m::new(&[0x50, 0x70, 0x50, 0x60, 0x70]);
        assert_eq!(reverse.len(), 3);
        assert_eq!(reverse.pfn(Mfn(0x50)), Some(Pfn(0)));
        assert_eq!(reverse.pfn(Mfn(0x70)), Some(Pfn(1)));
        assert_eq!(reverse.pfn(Mfn(0x60)), Some(Pfn(3)));
    }

    #[test]
    fn empty_and_all_hole_p2ms_know_nothing() {
        assert!(ReverseP2m::new(&[]).is_empty());
        let reverse = ReverseP2m::new(&[u64::MAX; 8]);
        assert!(reverse.is_empty());
        assert_eq!(reverse.pfn(Mfn(0)), None);
    }
}
