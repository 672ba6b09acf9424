//! Walking the kernel's own 4-level page tables to the L1 entry that maps an address,
//! as a 64-bit PV kernel sees them.
//!
//! A PV guest's page tables hold MACHINE frame numbers (`xen.h`, `mmu_update`: "@val is
//! usually the machine frame number along with some attributes"), so each step of the
//! walk turns the next table's machine frame back into a virtual address the kernel can
//! read: pfn from the M2P (cross-checked against the P2M, [`crate::frames::resolve_pfn`]),
//! then the bootstrap mapping. The builder puts all bootstrap page tables in one run of
//! `start_info.nr_pt_frames` frames starting at `start_info.pt_base` (the L4, a virtual
//! address) and maps them read-only (xen.h, "Start-of-day memory layout", item g): reading
//! them is allowed, writing them is what `mmu_update` is for.
//!
//! Everything here is pure: the caller supplies how to read an entry and how to find a
//! table's virtual address, so the walk is tested on the host.

use x86_64::structures::paging::page_table::PageTableEntry;
use x86_64::structures::paging::PageTableFlags;
use x86_64::VirtAddr;

use crate::frames::{Mfn, PAGE_SHIFT, PAGE_SIZE};

/// The machine address bits of an entry, 12 to 51 (`PADDR_BITS` is 52 on x86_64 Xen;
/// the `x86_64` crate keeps its own mask private).
pub const PTE_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Bytes per entry.
pub const ENTRY_SIZE: u64 = core::mem::size_of::<PageTableEntry>() as u64;

/// The flags of entry `pte` (its address bits dropped).
pub const fn pte_flags(pte: u64) -> PageTableFlags {
    PageTableFlags::from_bits_truncate(pte)
}

/// Whether entry `pte` is present.
pub const fn pte_present(pte: u64) -> bool {
    pte_flags(pte).contains(PageTableFlags::PRESENT)
}

/// Whether entry `pte` forbids instruction fetches from its page (`NO_EXECUTE` needs
/// `EFER.NXE`, which Xen sets).
pub const fn pte_nx(pte: u64) -> bool {
    pte_flags(pte).contains(PageTableFlags::NO_EXECUTE)
}

/// The machine frame entry `pte` points to (meaningful when it is present).
pub const fn pte_mfn(pte: u64) -> Mfn {
    Mfn((pte & PTE_ADDR_MASK) >> PAGE_SHIFT)
}

/// A present, writable kernel L1 entry for machine frame `mfn`: `PRESENT | WRITABLE`,
/// no `USER_ACCESSIBLE` (a 64-bit PV kernel leaves it clear in the entries it writes: Xen
/// sets it, and marks the entry as a guest-kernel one, in `adjust_guest_l1e`,
/// `xen/arch/x86/pv/mm.h`, because the PV kernel itself runs in ring 3), write-back
/// caching (`WRITE_THROUGH`, `NO_CACHE`, PAT clear).
pub const fn kernel_rw_pte(mfn: Mfn) -> u64 {
    ((mfn.0 << PAGE_SHIFT) & PTE_ADDR_MASK)
        | PageTableFlags::PRESENT.bits()
        | PageTableFlags::WRITABLE.bits()
}

/// The index of `va` in its table at `level` (4 for the L4 down to 1 for the L1). Any
/// `va`: only bits 12 to 47 count (`VirtAddr::new_truncate` sign-extends bit 47).
pub fn table_index(va: u64, level: u32) -> u64 {
    let va = VirtAddr::new_truncate(va);
    u64::from(match level {
        4 => va.p4_index(),
        3 => va.p3_index(),
        2 => va.p2_index(),
        _ => va.p1_index(),
    })
}

/// Whether virtual address `virt` lies in the bootstrap page-table region:
/// `nr_pt_frames` pages from `pt_base`.
pub fn in_table_region(virt: u64, pt_base: u64, nr_pt_frames: u64) -> bool {
    let len = nr_pt_frames.saturating_mul(PAGE_SIZE as u64);
    virt >= pt_base && virt - pt_base < len
}

/// The L1 entry that maps an address (or, from [`walk_to_l2_and_l1`], an L2 entry: the
/// fields describe an entry of any level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L1Slot {
    /// The machine frame of the L1 table.
    pub table: Mfn,
    /// The entry's index in that table.
    pub index: u64,
    /// The entry's virtual address (read-only for a PV kernel).
    pub entry_virt: u64,
    /// The entry's value when the walk read it.
    pub value: u64,
}

impl L1Slot {
    /// The entry's machine address, as `mmu_update.ptr` wants it (before the command
    /// bits, which are 0 for `MMU_NORMAL_PT_UPDATE`).
    pub const fn machine_addr(&self) -> u64 {
        (self.table.0 << PAGE_SHIFT) + self.index * ENTRY_SIZE
    }
}

/// Why a walk stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// The entry at this level (4 to 1) is not present.
    NotPresent {
        /// The level of the table holding the entry.
        level: u32,
    },
    /// The L3 or L2 entry maps a superpage (PV kernels cannot have them).
    Superpage {
        /// The level of the table holding the entry.
        level: u32,
    },
    /// The table at this level (3 to 1) is not one the caller can read (not the
    /// domain's frame, or outside the bootstrap page tables).
    UnknownTable {
        /// The level of the table that could not be found.
        level: u32,
        /// Its machine frame.
        mfn: Mfn,
    },
}

impl WalkError {
    /// A short description for a `FAIL` line.
    pub const fn what(&self) -> &'static str {
        match self {
            Self::NotPresent { level: 4 } => "page walk: L4 entry not present",
            Self::NotPresent { level: 3 } => "page walk: L3 entry not present",
            Self::NotPresent { level: 2 } => "page walk: L2 entry not present",
            Self::NotPresent { .. } => "page walk: L1 entry not present",
            Self::Superpage { .. } => "page walk: superpage",
            Self::UnknownTable { level: 3, .. } => "page walk: L3 table not found",
            Self::UnknownTable { level: 2, .. } => "page walk: L2 table not found",
            Self::UnknownTable { .. } => "page walk: L1 table not found",
        }
    }
}

/// Walks from the L4 table at virtual address `l4_virt` to the L1 entry that maps `va`,
/// which must be present.
///
/// `read(addr)` reads the 8-byte entry at virtual address `addr`; it is only called for
/// addresses inside the L4 page or inside a page `table_virt` returned. `table_virt(mfn)`
/// is the virtual address of the table in machine frame `mfn`, or `None` if the caller
/// cannot (or must not) read it.
pub fn walk_to_l1(
    va: u64,
    l4_virt: u64,
    read: impl FnMut(u64) -> u64,
    table_virt: impl FnMut(Mfn) -> Option<u64>,
) -> Result<L1Slot, WalkError> {
    walk_to_l2_and_l1(va, l4_virt, read, table_virt).map(|(_, l1)| l1)
}

/// As [`walk_to_l1`], and also the L2 entry on the way (the one that points to the L1
/// table), described by the same fields: `(l2, l1)`. The L2 entry's `table` is the
/// L2 table's machine frame (known from the L3 entry).
pub fn walk_to_l2_and_l1(
    va: u64,
    l4_virt: u64,
    mut read: impl FnMut(u64) -> u64,
    mut table_virt: impl FnMut(Mfn) -> Option<u64>,
) -> Result<(L1Slot, L1Slot), WalkError> {
    let mut table = l4_virt;
    let mut table_mfn = Mfn(0);
    let mut l2 = None;
    for level in [4, 3, 2] {
        let entry_virt = table + table_index(va, level) * ENTRY_SIZE;
        let entry = read(entry_virt);
        if !pte_present(entry) {
            return Err(WalkError::NotPresent { level });
        }
        if level < 4 && pte_flags(entry).contains(PageTableFlags::HUGE_PAGE) {
            return Err(WalkError::Superpage { level });
        }
        if level == 2 {
            l2 = Some(L1Slot {
                table: table_mfn,
                index: table_index(va, 2),
                entry_virt,
                value: entry,
            });
        }
        table_mfn = pte_mfn(entry);
        table = table_virt(table_mfn).ok_or(WalkError::UnknownTable {
            level: level - 1,
            mfn: table_mfn,
        })?;
    }
    let index = table_index(va, 1);
    let entry_virt = table + index * ENTRY_SIZE;
    let value = read(entry_virt);
    if !pte_present(value) {
        return Err(WalkError::NotPresent { level: 1 });
    }
    let l1 = L1Slot {
        table: table_mfn,
        index,
        entry_virt,
        value,
    };
    // The loop ran level 2 (it returns early otherwise).
    Ok((l2.unwrap_or(l1), l1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const PRESENT: u64 = PageTableFlags::PRESENT.bits();
    const RW: u64 = PageTableFlags::WRITABLE.bits();
    const USER: u64 = PageTableFlags::USER_ACCESSIBLE.bits();
    const PSE: u64 = PageTableFlags::HUGE_PAGE.bits();

    /// A fake address space: page tables at virtual pages, each a machine frame.
    struct Tables {
        entries: HashMap<u64, u64>,
        virt_of: HashMap<u64, u64>,
        reads: Vec<u64>,
    }

    impl Tables {
        /// L4 at virtual 0x40_0000 (mfn 0x900), L3 at 0x40_1000 (mfn 0x901), L2 at
        /// 0x40_2000 (mfn 0x902), L1 at 0x40_3000 (mfn 0x903); 0x20f000 maps mfn 0x7777
        /// with the flags a PV kernel entry has after Xen adjusted it.
        fn new() -> Self {
            let mut t = Self {
                entries: HashMap::new(),
                virt_of: HashMap::new(),
                reads: Vec::new(),
            };
            for (i, mfn) in (0x900..0x904).enumerate() {
                t.virt_of.insert(mfn, 0x40_0000 + 0x1000 * i as u64);
            }
            let flags = PRESENT | RW | USER | 0x60;
            t.entries.insert(0x40_0000, (0x901 << 12) | flags);
            t.entries.insert(0x40_1000, (0x902 << 12) | flags);
            t.entries.insert(0x40_2000 + 8, (0x903 << 12) | flags);
            t.entries.insert(
                0x40_3000 + 15 * 8,
                (1 << 63) | (1 << 52) | (0x7777 << 12) | flags,
            );
            t
        }

        fn walk(&mut self, va: u64) -> Result<L1Slot, WalkError> {
            let virt_of = self.virt_of.clone();
            let entries = &self.entries;
            let reads = &mut self.reads;
            walk_to_l1(
                va,
                0x40_0000,
                |addr| {
                    reads.push(addr);
                    entries.get(&addr).copied().unwrap_or(0)
                },
                |mfn| virt_of.get(&mfn.0).copied(),
            )
        }
    }

    #[test]
    fn indexes_per_level() {
        let va = 0x20f000;
        assert_eq!(
            [4, 3, 2, 1].map(|level| table_index(va, level)),
            [0, 0, 1, 15]
        );
        let va = 0x0000_7fff_ffff_f000;
        assert_eq!(
            [4, 3, 2, 1].map(|level| table_index(va, level)),
            [255, 511, 511, 511]
        );
        assert_eq!(table_index(0xFFFF_8000_0000_0000, 4), 256);
    }

    #[test]
    fn pte_helpers() {
        assert_eq!(kernel_rw_pte(Mfn(0x1_2345)), 0x1234_5003);
        assert_eq!(pte_mfn(kernel_rw_pte(Mfn(0x1_2345))), Mfn(0x1_2345));
        assert_eq!(
            pte_mfn((1 << 63) | (1 << 52) | (0xabc << 12) | 0x67),
            Mfn(0xabc)
        );
        assert_eq!(
            pte_mfn(kernel_rw_pte(Mfn(u64::MAX))),
            Mfn(0xFF_FFFF_FFFF),
            "40 frame bits"
        );
        assert!(pte_present(1) && !pte_present(2));
        assert!(pte_nx((1 << 63) | (0xabc << 12) | 3));
        assert!(
            !pte_nx(kernel_rw_pte(Mfn(u64::MAX))),
            "no NX in a kernel entry we build"
        );
    }

    #[test]
    fn walk_finds_the_l1_entry() {
        let mut t = Tables::new();
        let slot = t.walk(0x20f123).expect("mapped");
        assert_eq!(slot.table, Mfn(0x903));
        assert_eq!(slot.index, 15);
        assert_eq!(slot.entry_virt, 0x40_3000 + 15 * 8);
        assert_eq!(pte_mfn(slot.value), Mfn(0x7777));
        assert_eq!(slot.machine_addr(), 0x903_078);
        assert_eq!(
            t.reads,
            [0x40_0000, 0x40_1000, 0x40_2008, 0x40_3078],
            "one entry per level, nothing else"
        );
    }

    #[test]
    fn walk_finds_the_l2_entry_on_the_way() {
        let mut t = Tables::new();
        let virt_of = t.virt_of.clone();
        let entries = &t.entries;
        let (l2, l1) = walk_to_l2_and_l1(
            0x20f123,
            0x40_0000,
            |addr| entries.get(&addr).copied().unwrap_or(0),
            |mfn| virt_of.get(&mfn.0).copied(),
        )
        .expect("mapped");
        assert_eq!(l1, t.walk(0x20f123).unwrap());
        assert_eq!(
            l2.table,
            Mfn(0x902),
            "the L2 table's frame, from the L3 entry"
        );
        assert_eq!((l2.index, l2.entry_virt), (1, 0x40_2008));
        assert_eq!(pte_mfn(l2.value), Mfn(0x903), "it points to the L1 table");
        assert_eq!(l2.machine_addr(), 0x902_008);
    }

    #[test]
    fn walk_stops_at_missing_entries() {
        let mut t = Tables::new();
        assert_eq!(t.walk(0x20e000), Err(WalkError::NotPresent { level: 1 }));
        assert_eq!(t.walk(0x40_0000), Err(WalkError::NotPresent { level: 2 }));
        assert_eq!(t.walk(0x4000_0000), Err(WalkError::NotPresent { level: 3 }));
        assert_eq!(
            t.walk(0x80_0000_0000),
            Err(WalkError::NotPresent { level: 4 })
        );
        t.entries.insert(0x40_1000, (0x902 << 12) | RW);
        assert_eq!(t.walk(0x20f000), Err(WalkError::NotPresent { level: 3 }));
    }

    #[test]
    fn walk_refuses_superpages_and_unknown_tables() {
        let mut t = Tables::new();
        t.entries
            .insert(0x40_2000 + 8, (0x903 << 12) | PRESENT | PSE);
        assert_eq!(t.walk(0x20f000), Err(WalkError::Superpage { level: 2 }));

        let mut t = Tables::new();
        t.entries.insert(0x40_1000, (0x5555 << 12) | PRESENT | RW);
        assert_eq!(
            t.walk(0x20f000),
            Err(WalkError::UnknownTable {
                level: 2,
                mfn: Mfn(0x5555)
            })
        );
        assert_eq!(
            t.reads.len(),
            2,
            "nothing read from a table that was not found"
        );
        assert_eq!(
            WalkError::UnknownTable {
                level: 2,
                mfn: Mfn(1)
            }
            .what(),
            "page walk: L2 table not found"
        );
    }

    #[test]
    fn table_region_bounds() {
        assert!(in_table_region(0x40_0000, 0x40_0000, 4));
        assert!(in_table_region(0x40_3ff8, 0x40_0000, 4));
        assert!(!in_table_region(0x40_4000, 0x40_0000, 4));
        assert!(!in_table_region(0x3f_f000, 0x40_0000, 4));
        assert!(!in_table_region(0x40_0000, 0x40_0000, 0));
        assert!(in_table_region(u64::MAX, 0x40_0000, u64::MAX));
    }
}
