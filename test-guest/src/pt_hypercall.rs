//! The `pt-hypercall` pattern: the guest writes its own L1 and L2 page tables by
//! hypercall, in each way a PV kernel has, one way per phase, and writes buffer pages
//! through the aliases those writes map.
//!
//! Why: a PV kernel cannot store into its page tables; it asks Xen (`mmu_update`,
//! `update_va_mapping`, also batched in a `multicall`). Xen's patch 0022 checks the
//! writes those hypercalls make for the guest against the frames' mem_access like the
//! guest's own stores: a listener that write-protects a page-table page must get one
//! write event per such write (flagged `MEM_ACCESS_FAULT_HYPERCALL`, with the frame and
//! the entry's offset in it), the hypercall must wait for the answer and then write,
//! and a mapping made that way must still carry its target frame's rights.
//!
//! # The tables
//!
//! The alias is `pt-write`'s ([`crate::pt_write::alias_va`]: a page of the builder's
//! padding nothing uses); the guest walks its page tables to the alias's L1 entry and to
//! the L2 entry that points to that L1 table. Before `READY` it prints
//!
//! ```text
//! TEST-GUEST PT-TABLES va=0x<alias> l1-pfn=0x<pfn> l1-mfn=0x<mfn> l1-offset=0x<entry's offset> l2-pfn=0x<pfn> l2-mfn=0x<mfn> l2-offset=0x<entry's offset>
//! ```
//!
//! ([`write_pt_tables`]) and clears the alias's L1 entry ([`prepare`]): that clearing
//! is a hypercall write to the L1 page too, so it must come before dom0 restricts the
//! page (after `READY`), or it would be the first thing reported.
//!
//! # The steps ([`Step`]), step `n` in phase `n`
//!
//! Each phase is opened by its own `READY` (the go-page handshake of
//! [`crate::patterns`]): dom0 restricts the L1 page again before phases 2 and 3 (the
//! listener relaxed it when it answered the previous step) and can hold the listener
//! while the hypercall waits. Each step prints `PT-HCALL <step> begin`, makes its
//! hypercall, reads the entry back and prints
//!
//! ```text
//! TEST-GUEST PT-HCALL <step> done entry=0x<the entry read back>
//! ```
//!
//! ([`write_pt_hcall`]), then:
//!
//! 1. `mmu_update`: `MMU_NORMAL_PT_UPDATE` of the alias's L1 entry to map page 1;
//! 2. `update_va_mapping` of the alias to map page 2;
//! 3. `multicall`: a batch of one `mmu_update` of the alias's L1 entry to map page 3;
//!
//!    each then writes its page through the alias (a `TOUCH` line) and unmaps it
//!    (`update_va_mapping` to 0 with `UVMF_INVLPG`; the page is relaxed by then);
//! 4. `mmu_update_l2`: `MMU_NORMAL_PT_UPDATE` of the L2 entry to its own value with
//!    [`L2_MARK`] set, an available bit the MMU and Xen's checks ignore (a fast-path
//!    change in `mod_l2_entry`), so the read-back tells whether the write landed; then
//!    the old value is written back the same way.
//!
//! After step 4 the alias's original entry is put back ([`finish`]).

use core::fmt;

use crate::frames::{Mfn, Pfn};
use crate::hypercall::{
    self, DomId, Hypercall, HypercallNr, Hypervisor, MmuUpdate, MulticallEntry, UVMF_INVLPG,
};
use crate::lines::{Line, Words};
use crate::pagewalk::{self, L1Slot};
use crate::patterns::Touch;
use crate::pt_write::{check, err, Alias, PtError};
use crate::text::Sink;

/// The bit step 4 sets in the L2 entry: `_PAGE_AVAIL0` (bit 9), free for the OS.
pub const L2_MARK: u64 = 1 << 9;

/// One way of writing a page table by hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `mmu_update` of the alias's L1 entry.
    MmuUpdate,
    /// `update_va_mapping` of the alias.
    UpdateVaMapping,
    /// A `multicall` holding one `mmu_update` of the alias's L1 entry.
    Multicall,
    /// `mmu_update` of the L2 entry.
    MmuUpdateL2,
}

impl Step {
    /// Every step, in the order (and phase, from 1) the pattern takes them.
    pub const ALL: [Self; 4] = [
        Self::MmuUpdate,
        Self::UpdateVaMapping,
        Self::Multicall,
        Self::MmuUpdateL2,
    ];

    /// The name in `PT-HCALL` lines.
    pub const fn name(self) -> &'static str {
        match self {
            Self::MmuUpdate => "mmu_update",
            Self::UpdateVaMapping => "update_va_mapping",
            Self::Multicall => "multicall",
            Self::MmuUpdateL2 => "mmu_update_l2",
        }
    }

    /// For a step that maps the alias, which of the pattern's touches (and target
    /// frames) it uses; `None` for the L2 step.
    pub const fn touch_index(self) -> Option<usize> {
        match self {
            Self::MmuUpdate => Some(0),
            Self::UpdateVaMapping => Some(1),
            Self::Multicall => Some(2),
            Self::MmuUpdateL2 => None,
        }
    }
}

/// The alias and the L2 entry that points to its L1 table.
///
/// # Invariants
///
/// As [`Alias`]'s; `l2` is the L2 entry on the way to the alias, read from the running
/// page tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tables {
    alias: Alias,
    l2: L1Slot,
}

impl Tables {
    /// The alias `alias`, whose L1 table `l2` points to.
    ///
    /// # Safety
    ///
    /// `l2` must be the L2 entry that maps the alias's L1 table (the walk to the alias
    /// read it), so that setting [`L2_MARK`] in it changes no translation.
    pub const unsafe fn new(alias: Alias, l2: L1Slot) -> Self {
        Self { alias, l2 }
    }

    /// The alias.
    pub const fn alias(&self) -> &Alias {
        &self.alias
    }

    /// The L2 entry, with its original value.
    pub const fn l2(&self) -> &L1Slot {
        &self.l2
    }

    /// The pfn of the L2 table (virtual = pseudo-physical in the bootstrap region).
    pub const fn l2_pfn(&self) -> Pfn {
        Pfn::from_virt(self.l2.entry_virt)
    }
}

/// What the pattern needs from the kernel's memory.
pub trait Env {
    /// Reads the alias's L1 entry.
    fn read_l1e(&mut self) -> u64;

    /// Reads the L2 entry.
    fn read_l2e(&mut self) -> u64;

    /// Writes `value` at byte `offset` of the alias (one volatile byte write). Called
    /// only while the alias maps a step's target frame.
    fn write_alias(&mut self, offset: usize, value: u8);
}

/// What a step reports, as it happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The step's hypercall is about to be made (print `PT-HCALL <step> begin`).
    Begin(Step),
    /// It returned success and the entry reads back as this (print `PT-HCALL <step>
    /// done`).
    Done(Step, u64),
    /// The touch was made through the alias (print `TOUCH`).
    Touched(Touch),
}

/// Clears the alias's L1 entry, before the handshake (see "The tables" above), checked
/// by reading it back.
pub fn prepare<H: Hypervisor + ?Sized, E: Env>(
    hv: &H,
    env: &mut E,
    tables: &Tables,
) -> Result<(), PtError> {
    unmap(hv, env, tables.alias(), "pt-hypercall: clear the alias")
}

/// Makes step `step`: for a step that maps the alias, maps `targets[i]` (the frame of
/// `touches[i]`'s buffer page, `i` its [`Step::touch_index`]), writes `touches[i]`
/// through the alias and unmaps it; for the L2 step, marks the L2 entry and puts it
/// back. `report` sees each [`Event`] right after it happened.
pub fn step<H: Hypervisor + ?Sized, E: Env>(
    hv: &H,
    env: &mut E,
    tables: &Tables,
    step: Step,
    targets: [Mfn; 3],
    touches: [Touch; 3],
    mut report: impl FnMut(Event),
) -> Result<(), PtError> {
    let alias = tables.alias();
    let Some(index) = step.touch_index() else {
        let original = tables.l2.value;
        let marked = original | L2_MARK;
        report(Event::Begin(step));
        write_entry(hv, tables.l2.machine_addr(), marked, false)?;
        let now = env.read_l2e();
        check(now == marked, "pt-hypercall: L2 entry not written")?;
        report(Event::Done(step, now));
        write_entry(hv, tables.l2.machine_addr(), original, false)?;
        return check(
            env.read_l2e() == original,
            "pt-hypercall: L2 entry not restored",
        );
    };
    let (target, touch) = (targets[index], touches[index]);
    let pte = pagewalk::kernel_rw_pte(target);
    report(Event::Begin(step));
    match step {
        Step::UpdateVaMapping => {
            // SAFETY: nothing lives at the alias (`Alias`'s invariant).
            unsafe { hypercall::update_va_mapping(hv, alias.va(), pte, u64::from(UVMF_INVLPG)) }
                .map_err(err("pt-hypercall: update_va_mapping"))?;
        }
        _ => write_entry(
            hv,
            alias.slot().machine_addr(),
            pte,
            step == Step::Multicall,
        )?,
    }
    let now = env.read_l1e();
    check(
        pagewalk::pte_present(now) && pagewalk::pte_mfn(now) == target,
        "pt-hypercall: alias not mapped",
    )?;
    report(Event::Done(step, now));
    env.write_alias(touch.offset, touch.value());
    report(Event::Touched(touch));
    unmap(hv, env, alias, "pt-hypercall: unmap the alias")
}

/// Puts the alias's original entry back, after the last step.
pub fn finish<H: Hypervisor + ?Sized, E: Env>(
    hv: &H,
    env: &mut E,
    tables: &Tables,
) -> Result<(), PtError> {
    let alias = tables.alias();
    let original = alias.slot().value;
    // SAFETY: puts back the mapping the builder made (a page nothing uses).
    unsafe { hypercall::update_va_mapping(hv, alias.va(), original, u64::from(UVMF_INVLPG)) }
        .map_err(err("pt-hypercall: restore the alias"))?;
    let now = env.read_l1e();
    check(
        pagewalk::pte_present(now) && pagewalk::pte_mfn(now) == pagewalk::pte_mfn(original),
        "pt-hypercall: restore check",
    )
}

/// `update_va_mapping` of the alias to 0 with a TLB flush of it, checked.
fn unmap<H: Hypervisor + ?Sized, E: Env>(
    hv: &H,
    env: &mut E,
    alias: &Alias,
    what: &'static str,
) -> Result<(), PtError> {
    // SAFETY: nothing lives at the alias (`Alias`'s invariant).
    unsafe { hypercall::update_va_mapping(hv, alias.va(), 0, u64::from(UVMF_INVLPG)) }
        .map_err(err(what))?;
    check(!pagewalk::pte_present(env.read_l1e()), what)
}

/// Writes `val` at machine address `entry` (an entry of the alias's L1 table or of
/// its L2 table) with one `mmu_update`, made directly or, with `batched`, as the one
/// call of a `multicall`.
fn write_entry<H: Hypervisor + ?Sized>(
    hv: &H,
    entry: u64,
    val: u64,
    batched: bool,
) -> Result<(), PtError> {
    let req = [MmuUpdate::normal_pt_update(entry, val)];
    if !batched {
        // SAFETY: the entry is the alias's L1 entry (nothing lives at the alias) or the
        // L2 entry, given its own value or that value with an ignored bit (`Tables`'s
        // invariant): no translation Rust relies on changes.
        let done = unsafe { hypercall::mmu_update(hv, &req, DomId::SELF) }
            .map_err(err("pt-hypercall: mmu_update"))?;
        return check(done == 1, "pt-hypercall: mmu_update did nothing");
    }
    let mut done: u32 = 0;
    let call = Hypercall::new(
        HypercallNr::MMU_UPDATE,
        [
            req.as_ptr() as u64,
            req.len() as u64,
            core::ptr::from_mut(&mut done) as u64,
            u64::from(DomId::SELF.0),
            0,
        ],
    );
    let mut batch = [MulticallEntry::new(call)];
    // SAFETY: the one call is an `mmu_update` of one live request Xen reads, with
    // `done` a live counter it writes, both alive until the batch returns; the entry
    // changes as above.
    unsafe { hypercall::multicall(hv, &mut batch) }.map_err(err("pt-hypercall: multicall"))?;
    batch[0]
        .check()
        .map_err(err("pt-hypercall: mmu_update in the multicall"))?;
    check(
        done == 1,
        "pt-hypercall: multicall's mmu_update did nothing",
    )
}

/// `PT-TABLES va=0x<alias> l1-pfn=0x<pfn> l1-mfn=0x<mfn> l1-offset=0x<offset>
/// l2-pfn=0x<pfn> l2-mfn=0x<mfn> l2-offset=0x<offset>` (one line), printed before
/// `READY`: the alias and the two page tables the pattern writes, each with the byte
/// offset of the entry that maps the alias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtTables {
    /// The alias address.
    pub va: u64,
    /// The L1 table and its entry.
    pub l1: TableEntry,
    /// The L2 table and its entry.
    pub l2: TableEntry,
}

/// One page table of [`PtTables`] and the entry in it that maps the alias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableEntry {
    /// The table's guest frame.
    pub pfn: u64,
    /// Its machine frame.
    pub mfn: u64,
    /// The entry's byte offset in the table.
    pub offset: u64,
}

impl PtTables {
    /// The line of `tables`.
    pub fn of(tables: &Tables) -> Self {
        let alias = tables.alias();
        let entry = |pfn: Pfn, slot: &L1Slot| TableEntry {
            pfn: pfn.0,
            mfn: slot.table.0,
            offset: slot.index * pagewalk::ENTRY_SIZE,
        };
        PtTables {
            va: alias.va(),
            l1: entry(alias.l1_pfn(), alias.slot()),
            l2: entry(tables.l2_pfn(), tables.l2()),
        }
    }
}

impl fmt::Display for PtTables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PT-TABLES va={:#x}", self.va)?;
        for (level, entry) in [("l1", self.l1), ("l2", self.l2)] {
            write!(
                f,
                " {level}-pfn={:#x} {level}-mfn={:#x} {level}-offset={:#x}",
                entry.pfn, entry.mfn, entry.offset
            )?;
        }
        Ok(())
    }
}

impl Line<'_> for PtTables {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "PT-TABLES")?;
        let va = words.hex("va")?;
        let mut entry = |level: &str| -> Option<TableEntry> {
            Some(TableEntry {
                pfn: words.hex_of(level, "-pfn")?,
                mfn: words.hex_of(level, "-mfn")?,
                offset: words.hex_of(level, "-offset")?,
            })
        };
        let l1 = entry("l1")?;
        let l2 = entry("l2")?;
        words.end()?;
        Some(PtTables { va, l1, l2 })
    }
}

/// Writes the [`PtTables`] line of `tables`.
pub fn write_pt_tables(out: &mut (impl Sink + ?Sized), tables: &Tables) {
    let _ = write!(out, "{}", PtTables::of(tables));
}

/// `PT-HCALL <step> begin` before step `step`'s hypercall ([`Event::Begin`]), `PT-HCALL
/// <step> done entry=0x<value>` after it ([`Event::Done`]), `value` the entry the
/// guest read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtHcall {
    /// The step.
    pub step: Step,
    /// `None` for `begin`, the entry read back for `done`.
    pub done: Option<u64>,
}

impl fmt::Display for PtHcall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PT-HCALL {}", self.step.name())?;
        match self.done {
            None => f.write_str(" begin"),
            Some(entry) => write!(f, " done entry={entry:#x}"),
        }
    }
}

impl Line<'_> for PtHcall {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "PT-HCALL")?;
        let name = words.next()?;
        let step = Step::ALL.into_iter().find(|step| step.name() == name)?;
        let done = match words.next()? {
            "begin" => None,
            "done" => Some(words.hex("entry")?),
            _ => return None,
        };
        words.end()?;
        Some(PtHcall { step, done })
    }
}

/// Writes [`PtHcall`].
pub fn write_pt_hcall(out: &mut (impl Sink + ?Sized), step: Step, done: Option<u64>) {
    let _ = write!(out, "{}", PtHcall { step, done });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_xen::{self, FakeXen, Script};
    use crate::hypercall::MMU_UPDATE_PREEMPTED;
    use crate::pagewalk::kernel_rw_pte;
    use crate::patterns::{plan, Pattern};
    use std::cell::{Cell, RefCell};
    use std::string::{String, ToString};
    use std::vec::Vec;
    use x86_64::structures::paging::PageTableFlags;

    const ALIAS_VA: u64 = 0x2c_5000;
    const L1_MFN: u64 = 0x7_7001;
    const L2_MFN: u64 = 0x7_7002;
    /// The buffer's frames in the fake: page `p` is machine frame `0x42000 + p`.
    const BUFFER_MFN: u64 = 0x4_2000;
    const TARGETS: [Mfn; 3] = [
        Mfn(BUFFER_MFN + 1),
        Mfn(BUFFER_MFN + 2),
        Mfn(BUFFER_MFN + 3),
    ];
    const ORIGINAL_L1E: u64 = (0x3_32c5 << 12) | 0x67 | PageTableFlags::USER_ACCESSIBLE.bits();
    const ORIGINAL_L2E: u64 = (L1_MFN << 12) | 0x67;

    /// The alias's L1 entry and the L2 entry, written by hypercall; a log.
    struct Fake {
        l1e: Cell<u64>,
        l2e: Cell<u64>,
        log: RefCell<Vec<String>>,
    }

    impl Fake {
        fn new() -> Self {
            Self {
                l1e: Cell::new(ORIGINAL_L1E),
                l2e: Cell::new(ORIGINAL_L2E),
                log: RefCell::new(Vec::new()),
            }
        }

        fn log(&self, what: String) {
            self.log.borrow_mut().push(what);
        }

        /// Xen adds USER to a present kernel L1 entry it accepts.
        fn adjusted(val: u64) -> u64 {
            if pagewalk::pte_present(val) {
                val | PageTableFlags::USER_ACCESSIBLE.bits()
            } else {
                val
            }
        }

        /// `mmu_update` of `args`: one request to the L1 or the L2 entry.
        fn mmu_update(&self, args: &[u64], via: &str) -> i64 {
            // SAFETY: the code under test passes one live request.
            let req = unsafe { *(args[0] as *const MmuUpdate) };
            assert_eq!(args[1], 1);
            assert_eq!(args[3], u64::from(DomId::SELF.0));
            match req.ptr {
                ptr if ptr == (L1_MFN << 12) + 0xc5 * 8 => self.l1e.set(Self::adjusted(req.val)),
                ptr if ptr == (L2_MFN << 12) + 8 => self.l2e.set(req.val),
                other => panic!("mmu_update of {other:#x}"),
            }
            // SAFETY: `done` is the caller's live counter.
            unsafe { *(args[2] as *mut u32) = 1 };
            self.log(format!("{via}mmu_update {:#x}={:#x}", req.ptr, req.val));
            0
        }
    }

    /// Xen's side: the entries' writes by hypercall.
    impl Script for Fake {
        unsafe fn answer(&self, call: Hypercall) -> i64 {
            match call.nr {
                HypercallNr::UPDATE_VA_MAPPING => {
                    assert_eq!(call.args[0], ALIAS_VA);
                    assert_eq!(call.args[2], u64::from(UVMF_INVLPG));
                    self.l1e.set(Self::adjusted(call.args[1]));
                    self.log(format!("update_va_mapping {:#x}", call.args[1]));
                    0
                }
                HypercallNr::MMU_UPDATE => {
                    assert_eq!(call.args[1] as u32 & MMU_UPDATE_PREEMPTED, 0);
                    self.mmu_update(&call.args, "")
                }
                HypercallNr::MULTICALL => {
                    assert_eq!(call.args[1], 1, "a batch of one");
                    // SAFETY: the code under test passes one live, writable entry.
                    let entry = unsafe { &mut *(call.args[0] as *mut MulticallEntry) };
                    assert_eq!(entry.op, u64::from(HypercallNr::MMU_UPDATE.get()));
                    entry.result = self.mmu_update(&entry.args, "multicall ") as u64;
                    0
                }
                other => panic!("unexpected hypercall {other:?}"),
            }
        }
    }

    impl Env for &Fake {
        fn read_l1e(&mut self) -> u64 {
            self.l1e.get()
        }

        fn read_l2e(&mut self) -> u64 {
            self.l2e.get()
        }

        fn write_alias(&mut self, offset: usize, value: u8) {
            // A write stores the page index: the alias must map that page's frame.
            assert_eq!(
                pagewalk::pte_mfn(self.l1e.get()),
                Mfn(BUFFER_MFN + u64::from(value))
            );
            self.log(format!("write {offset:#x}={value}"));
        }
    }

    fn tables() -> Tables {
        let l1 = L1Slot {
            table: Mfn(L1_MFN),
            index: 0xc5,
            entry_virt: 0x21_b000 + 0xc5 * 8,
            value: ORIGINAL_L1E,
        };
        let l2 = L1Slot {
            table: Mfn(L2_MFN),
            index: 1,
            entry_virt: 0x21_a000 + 8,
            value: ORIGINAL_L2E,
        };
        // SAFETY: test tables: nothing is mapped anywhere.
        unsafe { Tables::new(Alias::new(ALIAS_VA, l1), l2) }
    }

    fn touches() -> [Touch; 3] {
        plan(Pattern::PtHypercall).touches().try_into().unwrap()
    }

    /// Runs prepare, every step and finish; the log and the events.
    fn run_all(fake: &Fake) -> (Result<(), PtError>, Vec<Event>) {
        let mut events = Vec::new();
        let tables = tables();
        let xen = FakeXen::of(fake);
        let result = prepare(&xen, &mut &*fake, &tables).and_then(|()| {
            Step::ALL.into_iter().try_for_each(|s| {
                step(&xen, &mut &*fake, &tables, s, TARGETS, touches(), |e| {
                    events.push(e)
                })
            })?;
            finish(&xen, &mut &*fake, &tables)
        });
        (result, events)
    }

    #[test]
    fn each_step_writes_its_table_by_its_hypercall_then_undoes_it() {
        let fake = Fake::new();
        let (result, events) = run_all(&fake);
        assert_eq!(result, Ok(()));
        let [pte1, pte2, pte3] = TARGETS.map(kernel_rw_pte);
        let l1 = (L1_MFN << 12) + 0xc5 * 8;
        let l2 = (L2_MFN << 12) + 8;
        let marked = ORIGINAL_L2E | L2_MARK;
        assert_eq!(
            *fake.log.borrow(),
            [
                "update_va_mapping 0x0".to_string(),
                format!("mmu_update {l1:#x}={pte1:#x}"),
                "write 0x110=1".into(),
                "update_va_mapping 0x0".into(),
                format!("update_va_mapping {pte2:#x}"),
                "write 0x220=2".into(),
                "update_va_mapping 0x0".into(),
                format!("multicall mmu_update {l1:#x}={pte3:#x}"),
                "write 0x330=3".into(),
                "update_va_mapping 0x0".into(),
                format!("mmu_update {l2:#x}={marked:#x}"),
                format!("mmu_update {l2:#x}={ORIGINAL_L2E:#x}"),
                format!("update_va_mapping {ORIGINAL_L1E:#x}"),
            ]
        );
        let [t1, t2, t3] = touches();
        let mapped = |pte| pte | PageTableFlags::USER_ACCESSIBLE.bits();
        assert_eq!(
            events,
            [
                Event::Begin(Step::MmuUpdate),
                Event::Done(Step::MmuUpdate, mapped(pte1)),
                Event::Touched(t1),
                Event::Begin(Step::UpdateVaMapping),
                Event::Done(Step::UpdateVaMapping, mapped(pte2)),
                Event::Touched(t2),
                Event::Begin(Step::Multicall),
                Event::Done(Step::Multicall, mapped(pte3)),
                Event::Touched(t3),
                Event::Begin(Step::MmuUpdateL2),
                Event::Done(Step::MmuUpdateL2, marked),
            ]
        );
        assert_eq!(
            (fake.l1e.get(), fake.l2e.get()),
            (ORIGINAL_L1E, ORIGINAL_L2E)
        );
    }

    #[test]
    fn a_write_that_did_not_land_is_a_failure_before_any_touch() {
        // Says yes to everything and writes nothing.
        let ignores = FakeXen::new(|call| {
            if call.nr == HypercallNr::MMU_UPDATE {
                // SAFETY: `done` is the caller's live counter.
                unsafe { fake_xen::write(call.args[2], 1u32) };
            }
            0
        });
        let fake = Fake::new();
        fake.l1e.set(0);
        let mut events = Vec::new();
        let result = step(
            &ignores,
            &mut &fake,
            &tables(),
            Step::MmuUpdate,
            TARGETS,
            touches(),
            |e| events.push(e),
        );
        assert_eq!(
            result,
            Err(PtError {
                what: "pt-hypercall: alias not mapped",
                error: crate::hypercall::XenError::EINVAL
            })
        );
        assert_eq!(events, [Event::Begin(Step::MmuUpdate)], "no touch");
        let result = step(
            &ignores,
            &mut &fake,
            &tables(),
            Step::MmuUpdateL2,
            TARGETS,
            touches(),
            |_| {},
        );
        assert_eq!(
            result.unwrap_err().what,
            "pt-hypercall: L2 entry not written"
        );
    }

    #[test]
    fn a_failed_call_in_the_batch_is_the_step_s_failure() {
        let fails_inside = FakeXen::new(|call| {
            assert_eq!(call.nr, HypercallNr::MULTICALL);
            // SAFETY: the code under test passes one live, writable entry.
            let entry = unsafe { &mut *(call.args[0] as *mut MulticallEntry) };
            entry.result = -1i64 as u64;
            0
        });
        let fake = Fake::new();
        let result = step(
            &fails_inside,
            &mut &fake,
            &tables(),
            Step::Multicall,
            TARGETS,
            touches(),
            |_| {},
        );
        assert_eq!(
            result.unwrap_err().what,
            "pt-hypercall: mmu_update in the multicall"
        );
    }

    #[test]
    fn steps_in_phase_order_with_their_touches() {
        let names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "mmu_update",
                "update_va_mapping",
                "multicall",
                "mmu_update_l2"
            ]
        );
        let touches = touches();
        for (phase, s) in (1..).zip(Step::ALL) {
            if let Some(index) = s.touch_index() {
                assert_eq!(touches[index].phase, phase, "{s:?}");
            } else {
                assert_eq!(phase, Pattern::PtHypercall.phases(), "the L2 step is last");
            }
        }
        assert_eq!(L2_MARK & pagewalk::PTE_ADDR_MASK, 0, "not an address bit");
    }

    #[test]
    fn lines() {
        let mut out = String::new();
        write_pt_tables(&mut out, &tables());
        assert_eq!(
            out,
            "PT-TABLES va=0x2c5000 l1-pfn=0x21b l1-mfn=0x77001 l1-offset=0x628 \
             l2-pfn=0x21a l2-mfn=0x77002 l2-offset=0x8"
        );
        let mut out = String::new();
        write_pt_hcall(&mut out, Step::Multicall, None);
        assert_eq!(out, "PT-HCALL multicall begin");
        let mut out = String::new();
        write_pt_hcall(&mut out, Step::MmuUpdateL2, Some(0x7700_1267));
        assert_eq!(out, "PT-HCALL mmu_update_l2 done entry=0x77001267");
    }

    #[test]
    fn lines_read_back() {
        use crate::lines::tests::round_trip;
        let tables = PtTables {
            va: 0x2c_5000,
            l1: TableEntry {
                pfn: 0x21b,
                mfn: 0x77001,
                offset: 0x628,
            },
            l2: TableEntry {
                pfn: 0x21a,
                mfn: 0x77002,
                offset: 0x8,
            },
        };
        assert_eq!(PtTables::of(&self::tables()), tables);
        round_trip(
            tables,
            "PT-TABLES va=0x2c5000 l1-pfn=0x21b l1-mfn=0x77001 l1-offset=0x628 \
             l2-pfn=0x21a l2-mfn=0x77002 l2-offset=0x8",
        );
        assert_eq!(
            PtTables::parse("PT-TABLES va=0x2c5000 l1-pfn=0x21b l1-mfn=0x77001 l1-offset=0x628"),
            None
        );
        round_trip(
            PtHcall {
                step: Step::Multicall,
                done: None,
            },
            "PT-HCALL multicall begin",
        );
        round_trip(
            PtHcall {
                step: Step::MmuUpdateL2,
                done: Some(0x7700_1267),
            },
            "PT-HCALL mmu_update_l2 done entry=0x77001267",
        );
        for step in Step::ALL {
            let line = PtHcall {
                step,
                done: Some(1),
            };
            assert_eq!(PtHcall::parse(&line.to_string()), Some(line));
        }
        assert_eq!(PtHcall::parse("PT-HCALL multicall done"), None);
        assert_eq!(PtHcall::parse("PT-HCALL other begin"), None);
    }
}
