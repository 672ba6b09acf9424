//! Frame numbers, and how a PV kernel turns a machine frame into a virtual address.
//!
//! Mirrors `xen/include/public/arch-x86/xen-x86_64.h` (`MACH2PHYS_VIRT_START`, the
//! read-only machine-to-phys table Xen maps into every 64-bit PV guest) and the
//! "Start-of-day memory layout" comment in `xen/include/public/xen.h`: the bootstrap
//! virtual region is a 1:1 mapping of the first pseudo-physical frames, starting at
//! the kernel's `XEN_ELFNOTE_VIRT_BASE`. Pages the builder hands over by machine
//! frame (the console ring) are found the way XTF's `mfn_to_virt` does:
//! `pfn = machine_to_phys_mapping[mfn]`, then `virt = VIRT_BASE + pfn * 4096`.
//!
//! The M2P entry of a frame is written by Xen when the frame is populated
//! (`guest_physmap_add_page`, `xen/arch/x86/mm/physmap.c`), but the guest can change
//! it: [`resolve_pfn`] cross-checks it against the builder's P2M list
//! (`start_info.mfn_list`) and falls back to searching that list.

/// Log2 of the page size.
pub const PAGE_SHIFT: u32 = 12;

/// The page size, 4 KiB.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

/// The kernel's virtual base (`XEN_ELFNOTE_VIRT_BASE`, emitted from this constant):
/// virtual address = `VIRT_BASE` + pseudo-physical address. The kernel is linked at
/// 1 MiB, so with a base of 0 the builder pads pfns 0 to 255 and loads it at pfn 256.
pub const VIRT_BASE: u64 = 0;

/// `__MACH2PHYS_VIRT_START` (`xen-x86_64.h`, from `xen_sys`, which types it `i64`).
pub const MACH2PHYS_VIRT_START: u64 = xen_sys::__MACH2PHYS_VIRT_START as u64;

/// `__MACH2PHYS_VIRT_END` (`xen-x86_64.h`, from `xen_sys`).
pub const MACH2PHYS_VIRT_END: u64 = xen_sys::__MACH2PHYS_VIRT_END as u64;

/// `#define MACH2PHYS_NR_ENTRIES  ((MACH2PHYS_VIRT_END-MACH2PHYS_VIRT_START)>>3)`.
pub const MACH2PHYS_NR_ENTRIES: u64 = (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) >> 3;

/// A machine frame number (host frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mfn(pub u64);

/// A pseudo-physical frame number (the guest's own frame numbering, its gfn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pfn(pub u64);

impl Pfn {
    /// The virtual address of this frame in the bootstrap mapping.
    pub const fn to_virt(self) -> u64 {
        VIRT_BASE + (self.0 << PAGE_SHIFT)
    }

    /// The frame holding virtual address `virt` of the bootstrap mapping.
    pub const fn from_virt(virt: u64) -> Self {
        Self((virt - VIRT_BASE) >> PAGE_SHIFT)
    }
}

/// Virtual address of the M2P entry for `mfn`, or `None` if `mfn` is past the table.
pub const fn m2p_entry_addr(mfn: Mfn) -> Option<u64> {
    if mfn.0 < MACH2PHYS_NR_ENTRIES {
        Some(MACH2PHYS_VIRT_START + mfn.0 * 8)
    } else {
        None
    }
}

/// The pseudo-physical frame of machine frame `mfn`.
///
/// `m2p` reads the M2P entry of `mfn` (`None` if it cannot); `p2m` is the builder's
/// P2M list (`start_info.mfn_list`, `nr_pages` entries, indexed by pfn). The M2P
/// answer is used when the P2M agrees with it; otherwise the P2M is searched. `None`
/// when `mfn` is not one of this domain's frames.
pub fn resolve_pfn(mfn: Mfn, m2p: impl FnOnce(Mfn) -> Option<u64>, p2m: &[u64]) -> Option<Pfn> {
    if let Some(pfn) = m2p(mfn) {
        if usize::try_from(pfn)
            .ok()
            .and_then(|i| p2m.get(i))
            .is_some_and(|&m| m == mfn.0)
        {
            return Some(Pfn(pfn));
        }
    }
    p2m.iter()
        .position(|&m| m == mfn.0)
        .map(|pfn| Pfn(pfn as u64))
}

/// A run of consecutive guest frames backed by consecutive machine frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// The run's first guest frame.
    pub first_pfn: u64,
    /// The machine frame behind it.
    pub first_mfn: u64,
    /// How many frames.
    pub count: u64,
}

/// The P2M list (`p2m[pfn] = mfn`) as runs, in pfn order.
pub fn runs(p2m: &[u64]) -> impl Iterator<Item = Run> + '_ {
    let mut pfn = 0usize;
    core::iter::from_fn(move || {
        let first_mfn = *p2m.get(pfn)?;
        let first_pfn = pfn;
        pfn += 1;
        // Consecutive, without wrapping past the last machine frame number.
        while p2m.get(pfn).copied() == first_mfn.checked_add((pfn - first_pfn) as u64) {
            pfn += 1;
        }
        Some(Run {
            first_pfn: first_pfn as u64,
            first_mfn,
            count: (pfn - first_pfn) as u64,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p2m_runs_cover_every_frame_once() {
        let p2m = [10, 11, 12, 40, 41, 7, 8, 9, 10];
        let found: Vec<Run> = runs(&p2m).collect();
        assert_eq!(
            found,
            [
                Run {
                    first_pfn: 0,
                    first_mfn: 10,
                    count: 3
                },
                Run {
                    first_pfn: 3,
                    first_mfn: 40,
                    count: 2
                },
                Run {
                    first_pfn: 5,
                    first_mfn: 7,
                    count: 4
                },
            ]
        );
        assert_eq!(runs(&[]).count(), 0);
        assert_eq!(runs(&[u64::MAX, 0]).count(), 2);
    }

    #[test]
    fn m2p_constants_match_header() {
        assert_eq!(MACH2PHYS_NR_ENTRIES, 0x40_0000_0000 / 8);
        assert_eq!(m2p_entry_addr(Mfn(0)), Some(0xFFFF_8000_0000_0000));
        assert_eq!(m2p_entry_addr(Mfn(0x1234)), Some(0xFFFF_8000_0000_91A0));
        assert_eq!(
            m2p_entry_addr(Mfn(MACH2PHYS_NR_ENTRIES - 1)),
            Some(MACH2PHYS_VIRT_END - 8)
        );
        assert_eq!(m2p_entry_addr(Mfn(MACH2PHYS_NR_ENTRIES)), None);
    }

    #[test]
    fn pfn_virt_is_identity_with_base_zero() {
        assert_eq!(Pfn(0x100).to_virt(), 0x10_0000);
        assert_eq!(Pfn::from_virt(0x10_0fff), Pfn(0x100));
        assert_eq!(Pfn::from_virt(Pfn(0x2a5).to_virt()), Pfn(0x2a5));
    }

    #[test]
    fn m2p_answer_used_when_p2m_agrees() {
        let p2m = [0x500, 0x501, 0x9a0, 0x503];
        let pfn = resolve_pfn(Mfn(0x9a0), |_| Some(2), &p2m);
        assert_eq!(pfn, Some(Pfn(2)));
    }

    #[test]
    fn p2m_searched_when_m2p_is_wrong_or_unreadable() {
        let p2m = [0x500, 0x501, 0x9a0, 0x503];
        assert_eq!(resolve_pfn(Mfn(0x9a0), |_| Some(1), &p2m), Some(Pfn(2)));
        assert_eq!(resolve_pfn(Mfn(0x9a0), |_| Some(99), &p2m), Some(Pfn(2)));
        assert_eq!(resolve_pfn(Mfn(0x9a0), |_| None, &p2m), Some(Pfn(2)));
        assert_eq!(
            resolve_pfn(Mfn(0x9a0), |_| Some(u64::MAX), &p2m),
            Some(Pfn(2))
        );
    }

    #[test]
    fn foreign_frame_is_not_resolved() {
        let p2m = [0x500, 0x501];
        assert_eq!(resolve_pfn(Mfn(0x777), |_| Some(0), &p2m), None);
    }
}
