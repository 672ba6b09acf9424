//! The `pt-write` pattern: the guest maps a buffer page at a second ("alias") virtual
//! address by writing its own page table, in the two ways a PV kernel can, and writes
//! the page through the alias: page 6 by the emulated route, page 9 by `mmu_update`
//! ([`crate::patterns::PT_WRITE_PAGES`]).
//!
//! Why: mem_access on PV runs the guest on shadow page tables, so a guest that changes
//! its own page tables must not slip past the access checks: a write through a mapping
//! made after the listener restricted the frame must still raise its event, whichever
//! way the mapping was made.
//!
//! # The alias
//!
//! A PV kernel's L1 tables are read-only to it, and the builder's bootstrap tables map
//! exactly the bootstrap region (every slot of every L1 table present), so there is no
//! empty slot with an L1 table behind it. The alias is instead a page of that region
//! nothing uses: the builder allocates the page tables, then one boot-stack page, then
//! leaves at least 512 KiB mapped but unused (`alloc_pgtables_pv` and
//! `xc_dom_build_image` in `tools/libs/guest/`; xen.h, "Start-of-day memory layout"); the
//! alias is the page [`alias_va`] 256 KiB into that padding. [`prepare`] clears its
//! L1 entry (`update_va_mapping` to 0), so each route of [`run`] maps a non-present
//! slot and unmaps it again; [`run`] puts the original entry back at the end.
//!
//! The guest chooses the alias (and walks its page tables to the L1 entry) before the
//! go-page handshake and prints, before `READY`,
//!
//! ```text
//! TEST-GUEST PT-SLOT l1-pfn=0x<pfn of the L1 table> slot=<index> va=0x<alias> pte-va=0x<entry's address>
//! ```
//!
//! ([`write_pt_slot`]): `pte-va` is the guest-virtual address of the alias's L1 entry,
//! the address the emulated route's plain store writes to. A test can thus restrict the
//! L1 page-table page itself before it lets the pattern run. [`prepare`] (writable page
//! tables on, the alias's entry cleared and checked) also runs before `READY`: clearing
//! the entry is a write to the L1 page by hypercall, which Xen reports like the guest's
//! own store once the page is restricted (`MEM_ACCESS_FAULT_HYPERCALL`), and the
//! listener's relaxing of the page would then let the emulated route's store through
//! unreported. So after `GO`, [`run`]'s first write to the L1 page is the emulated
//! route's store.
//!
//! # The routes, each: map, `PT-WRITE` line, write through the alias, `TOUCH` line, unmap
//!
//! 1. `emulated`: a plain 8-byte store of the new entry through the kernel's own
//!    read-only mapping of the L1 table. The store faults into Xen, which emulates it
//!    (`ptwr_do_page_fault`, `xen/arch/x86/pv/ro-page-fault.c`) because the guest turned
//!    on `VMASST_TYPE_writable_pagetables` first (the builder does not). Xen does not
//!    reflect a refused emulation as an error: the fault reaches the guest, which has no
//!    trap table, and the domain crashes (Xen logs it).
//! 2. `mmu_update`: `HYPERVISOR_mmu_update` with `MMU_NORMAL_PT_UPDATE` at the entry's
//!    machine address.
//!
//! Each route maps its own target frame: the frame of its touch's buffer page.
//!
//! Unmapping writes 0 the same way, then flushes the alias from the TLB
//! (`MMUEXT_INVLPG_LOCAL`: Xen does not flush for a PV guest's own page-table writes).
//! Every change is checked by reading the entry back. Lines:
//!
//! ```text
//! TEST-GUEST PT-WRITE <emulated|mmu_update> l1-pfn=0x<pfn of the L1 table> slot=<index> va=0x<alias>
//! ```

use core::fmt;

use crate::frames::{Mfn, Pfn, PAGE_SIZE};
use crate::hypercall::{self, DomId, Hypervisor, MmuUpdate, MmuextOp, XenError, UVMF_INVLPG};
use crate::lines::{Line, Words};
use crate::pagewalk::{self, L1Slot};
use crate::patterns::Touch;
use crate::text::Sink;

/// Pages the builder allocates after the page tables: the boot stack.
pub const BOOT_STACK_PAGES: u64 = 1;

/// What the builder maps past the boot stack at least (xen.h: "at least 512kB past the
/// end of the stack").
pub const BOOT_PADDING: u64 = 512 * 1024;

/// The alias: the page 256 KiB into the padding after the boot stack, which follows
/// the `nr_pt_frames` page-table pages at virtual `pt_base`.
pub const fn alias_va(pt_base: u64, nr_pt_frames: u64) -> u64 {
    pt_base + (nr_pt_frames + BOOT_STACK_PAGES) * PAGE_SIZE as u64 + BOOT_PADDING / 2
}

/// How the page table is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A plain store that Xen emulates.
    Emulated,
    /// `HYPERVISOR_mmu_update`.
    MmuUpdate,
}

impl Route {
    /// Both, in the order [`run`] takes them.
    pub const ALL: [Self; 2] = [Self::Emulated, Self::MmuUpdate];

    /// The name in `PT-WRITE` lines.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Emulated => "emulated",
            Self::MmuUpdate => "mmu_update",
        }
    }
}

/// The alias address and the L1 entry that maps it.
///
/// # Invariants
///
/// Nothing Rust relies on lives in the page at `va` (it is remapped), and `slot` is
/// the L1 entry that maps `va`, read from the running page tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alias {
    va: u64,
    slot: L1Slot,
}

impl Alias {
    /// The alias at `va`, mapped by `slot`.
    ///
    /// # Safety
    ///
    /// Nothing Rust relies on may live in the page at `va`, for as long as the `Alias`
    /// is used; `slot` must be the L1 entry that maps `va`.
    pub const unsafe fn new(va: u64, slot: L1Slot) -> Self {
        Self { va, slot }
    }

    /// The alias's virtual address.
    pub const fn va(&self) -> u64 {
        self.va
    }

    /// The L1 entry, with its original value.
    pub const fn slot(&self) -> &L1Slot {
        &self.slot
    }

    /// The pfn of the L1 table (virtual = pseudo-physical in the bootstrap region).
    pub const fn l1_pfn(&self) -> Pfn {
        Pfn::from_virt(self.slot.entry_virt)
    }

    /// The guest-virtual address of the L1 entry (in the kernel's read-only mapping of
    /// the table): where the emulated route's plain store goes.
    pub const fn pte_va(&self) -> u64 {
        self.slot.entry_virt
    }
}

/// What [`run`] needs from the kernel's memory.
pub trait Env {
    /// Stores `val` into the alias's L1 entry with one plain 8-byte write through the
    /// kernel's (read-only) mapping of the table, for Xen to emulate.
    fn store_l1e(&mut self, val: u64);

    /// Reads the alias's L1 entry.
    fn read_l1e(&mut self) -> u64;

    /// Writes `value` at byte `offset` of the alias (one volatile byte write). Called
    /// only while the alias maps the target frame.
    fn write_alias(&mut self, offset: usize, value: u8);
}

/// What [`run`] reports, as it happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The alias now maps the target through `route` (print `PT-WRITE`).
    Mapped(Route),
    /// The touch was made through the alias (print `TOUCH`).
    Touched(Touch),
}

/// A step of [`run`] that failed: the guest cannot go on (FAIL line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtError {
    /// What failed.
    pub what: &'static str,
    /// Xen's error, or `EINVAL` for a check of the guest's own.
    pub error: XenError,
}

pub(crate) fn err(what: &'static str) -> impl FnOnce(XenError) -> PtError {
    move |error| PtError { what, error }
}

pub(crate) fn check(ok: bool, what: &'static str) -> Result<(), PtError> {
    ok.then_some(()).ok_or(PtError {
        what,
        error: XenError::EINVAL,
    })
}

/// Gets the alias ready for [`run`], before the handshake (see "The alias" above for
/// why not after): turns on `VMASST_TYPE_writable_pagetables` (for the emulated route)
/// and clears the alias's L1 entry (`update_va_mapping` to 0), checked by reading it
/// back.
pub fn prepare<H: Hypervisor + ?Sized, E: Env>(
    hv: &H,
    env: &mut E,
    alias: &Alias,
) -> Result<(), PtError> {
    hypercall::vm_assist_enable(hv, u64::from(xen_sys::VMASST_TYPE_writable_pagetables))
        .map_err(err("pt-write: vm_assist writable_pagetables"))?;
    // SAFETY: nothing lives at the alias (type invariant); it stays unmapped until a
    // route maps the target there.
    unsafe { hypercall::update_va_mapping(hv, alias.va, 0, u64::from(UVMF_INVLPG)) }
        .map_err(err("pt-write: clear the alias"))?;
    check(
        !pagewalk::pte_present(env.read_l1e()),
        "pt-write: alias still mapped",
    )
}

/// Runs the pattern, after [`prepare`]: for each [`Route`] `i` in turn, maps machine
/// frame `targets[i]` (the frame of `touches[i]`'s buffer page) at the alias, writes
/// `touches[i]` through it, unmaps it; then puts the alias's original entry back.
/// `report` sees each [`Event`] right after it happened.
pub fn run<H: Hypervisor + ?Sized, E: Env>(
    hv: &H,
    env: &mut E,
    alias: &Alias,
    targets: [Mfn; 2],
    touches: [Touch; 2],
    mut report: impl FnMut(Event),
) -> Result<(), PtError> {
    for ((route, touch), target) in Route::ALL.into_iter().zip(touches).zip(targets) {
        let pte = pagewalk::kernel_rw_pte(target);
        set_l1e(hv, env, alias, route, pte)?;
        let now = env.read_l1e();
        check(
            pagewalk::pte_present(now) && pagewalk::pte_mfn(now) == target,
            match route {
                Route::Emulated => "pt-write: emulated map check",
                Route::MmuUpdate => "pt-write: mmu_update map check",
            },
        )?;
        report(Event::Mapped(route));
        env.write_alias(touch.offset, touch.value());
        report(Event::Touched(touch));

        set_l1e(hv, env, alias, route, 0)?;
        // SAFETY: only a TLB flush of the alias, which maps nothing now.
        unsafe { hypercall::mmuext_op(hv, &[MmuextOp::invlpg_local(alias.va)], DomId::SELF) }
            .map_err(err("pt-write: invlpg"))?;
        check(
            !pagewalk::pte_present(env.read_l1e()),
            "pt-write: unmap check",
        )?;
    }

    let original = alias.slot.value;
    // SAFETY: puts back the mapping the builder made (a page nothing uses).
    unsafe { hypercall::update_va_mapping(hv, alias.va, original, u64::from(UVMF_INVLPG)) }
        .map_err(err("pt-write: restore the alias"))?;
    let now = env.read_l1e();
    check(
        pagewalk::pte_present(now) && pagewalk::pte_mfn(now) == pagewalk::pte_mfn(original),
        "pt-write: restore check",
    )
}

/// Writes `val` into the alias's L1 entry by `route`.
fn set_l1e<H: Hypervisor + ?Sized, E: Env>(
    hv: &H,
    env: &mut E,
    alias: &Alias,
    route: Route,
    val: u64,
) -> Result<(), PtError> {
    match route {
        Route::Emulated => {
            env.store_l1e(val);
            Ok(())
        }
        Route::MmuUpdate => {
            let req = [MmuUpdate::normal_pt_update(alias.slot.machine_addr(), val)];
            // SAFETY: the entry is the alias's (type invariant): nothing Rust relies on
            // lives at the address it maps.
            let done = unsafe { hypercall::mmu_update(hv, &req, DomId::SELF) }
                .map_err(err("pt-write: mmu_update"))?;
            check(done == 1, "pt-write: mmu_update did nothing")
        }
    }
}

/// `PT-SLOT l1-pfn=0x<pfn> slot=<index> va=0x<alias> pte-va=0x<entry>`, printed before
/// `READY`: the alias [`run`] will use and where its L1 entry is (`pte-va` the
/// guest-virtual address of the entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtSlot {
    /// The guest frame of the L1 page table.
    pub l1_pfn: u64,
    /// The entry's index in it.
    pub slot: u64,
    /// The alias address.
    pub va: u64,
    /// Where the guest writes the entry.
    pub pte_va: u64,
}

impl PtSlot {
    /// The line of `alias`.
    pub fn of(alias: &Alias) -> Self {
        PtSlot {
            l1_pfn: alias.l1_pfn().0,
            slot: alias.slot.index,
            va: alias.va,
            pte_va: alias.pte_va(),
        }
    }
}

impl fmt::Display for PtSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PT-SLOT l1-pfn={:#x} slot={} va={:#x} pte-va={:#x}",
            self.l1_pfn, self.slot, self.va, self.pte_va
        )
    }
}

impl Line<'_> for PtSlot {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "PT-SLOT")?;
        let line = PtSlot {
            l1_pfn: words.hex("l1-pfn")?,
            slot: words.dec("slot")?,
            va: words.hex("va")?,
            pte_va: words.hex("pte-va")?,
        };
        words.end()?;
        Some(line)
    }
}

/// Writes the [`PtSlot`] line of `alias`.
pub fn write_pt_slot(out: &mut (impl Sink + ?Sized), alias: &Alias) {
    let _ = write!(out, "{}", PtSlot::of(alias));
}

/// `PT-WRITE <route> l1-pfn=0x<pfn> slot=<index> va=0x<alias>`: `route` mapped the
/// alias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtWrite {
    /// The route.
    pub route: Route,
    /// The guest frame of the L1 page table.
    pub l1_pfn: u64,
    /// The entry's index in it.
    pub slot: u64,
    /// The alias address.
    pub va: u64,
}

impl fmt::Display for PtWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PT-WRITE {} l1-pfn={:#x} slot={} va={:#x}",
            self.route.name(),
            self.l1_pfn,
            self.slot,
            self.va
        )
    }
}

impl Line<'_> for PtWrite {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "PT-WRITE")?;
        let name = words.next()?;
        let line = PtWrite {
            route: Route::ALL.into_iter().find(|route| route.name() == name)?,
            l1_pfn: words.hex("l1-pfn")?,
            slot: words.dec("slot")?,
            va: words.hex("va")?,
        };
        words.end()?;
        Some(line)
    }
}

/// Writes the [`PtWrite`] line of `route` and `alias`.
pub fn write_pt_write(out: &mut (impl Sink + ?Sized), route: Route, alias: &Alias) {
    let line = PtWrite {
        route,
        l1_pfn: alias.l1_pfn().0,
        slot: alias.slot.index,
        va: alias.va,
    };
    let _ = write!(out, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_xen::{self, FakeXen, Script};
    use crate::hypercall::{Hypercall, HypercallNr};
    use crate::pagewalk::kernel_rw_pte;
    use crate::patterns::{plan, Pattern};
    use std::cell::{Cell, RefCell};
    use std::string::{String, ToString};
    use std::vec::Vec;
    use x86_64::structures::paging::PageTableFlags;
    use xen_sys::MMUEXT_INVLPG_LOCAL;

    const ALIAS_VA: u64 = 0x2c_5000;
    const L1_MFN: u64 = 0x7_7001;
    /// The buffer's frames in the fake: page `p` is machine frame `0x42000 + p`.
    const BUFFER_MFN: u64 = 0x4_2000;
    const TARGETS: [Mfn; 2] = [Mfn(BUFFER_MFN + 6), Mfn(BUFFER_MFN + 9)];
    const ORIGINAL: u64 = (0x3_32c5 << 12) | 0x67 | PageTableFlags::USER_ACCESSIBLE.bits();

    /// One L1 entry, written by the three ways of the pattern; a log of everything.
    struct Fake {
        entry: Cell<u64>,
        log: RefCell<Vec<String>>,
        /// Xen does not emulate the store (it would crash the guest; here: no effect).
        emulation_ignored: bool,
    }

    impl Fake {
        fn new() -> Self {
            Self {
                entry: Cell::new(ORIGINAL),
                log: RefCell::new(Vec::new()),
                emulation_ignored: false,
            }
        }

        fn log(&self, what: String) {
            self.log.borrow_mut().push(what);
        }

        /// Xen adds USER to a present kernel entry it accepts.
        fn adjusted(val: u64) -> u64 {
            if pagewalk::pte_present(val) {
                val | PageTableFlags::USER_ACCESSIBLE.bits()
            } else {
                val
            }
        }
    }

    /// Xen's side: the L1 entry's writes by hypercall.
    impl Script for Fake {
        unsafe fn answer(&self, call: Hypercall) -> i64 {
            match call.nr {
                HypercallNr::VM_ASSIST => self.log(format!("vm_assist {}", call.args[1])),
                HypercallNr::UPDATE_VA_MAPPING => {
                    assert_eq!(call.args[0], ALIAS_VA);
                    assert_eq!(call.args[2], u64::from(UVMF_INVLPG));
                    self.entry.set(Self::adjusted(call.args[1]));
                    self.log(format!("update_va_mapping {:#x}", call.args[1]));
                }
                HypercallNr::MMU_UPDATE => {
                    // SAFETY: the wrapper passes one live request.
                    let req = unsafe { *(call.args[0] as *const MmuUpdate) };
                    assert_eq!(call.args[1], 1);
                    assert_eq!(req.ptr, (L1_MFN << 12) + 0xc5 * 8, "the alias's entry");
                    self.entry.set(Self::adjusted(req.val));
                    // SAFETY: `done` is the wrapper's live counter.
                    unsafe { *(call.args[2] as *mut u32) = 1 };
                    self.log(format!("mmu_update {:#x}", req.val));
                }
                HypercallNr::MMUEXT_OP => {
                    // SAFETY: the wrapper passes one live op.
                    let op = unsafe { *(call.args[0] as *const MmuextOp) };
                    assert_eq!((op.cmd(), op.arg1()), (MMUEXT_INVLPG_LOCAL, ALIAS_VA));
                    // SAFETY: as above.
                    unsafe { *(call.args[2] as *mut u32) = 1 };
                    self.log("invlpg".into());
                }
                other => panic!("unexpected hypercall {other:?}"),
            }
            0
        }
    }

    impl Env for &Fake {
        fn store_l1e(&mut self, val: u64) {
            if !self.emulation_ignored {
                self.entry.set(Fake::adjusted(val));
            }
            self.log(format!("store {val:#x}"));
        }

        fn read_l1e(&mut self) -> u64 {
            self.entry.get()
        }

        fn write_alias(&mut self, offset: usize, value: u8) {
            // A write stores the page index: the alias must map that page's frame.
            assert_eq!(
                pagewalk::pte_mfn(self.entry.get()),
                Mfn(BUFFER_MFN + u64::from(value))
            );
            self.log(format!("write {offset:#x}={value}"));
        }
    }

    fn alias() -> Alias {
        let slot = L1Slot {
            table: Mfn(L1_MFN),
            index: 0xc5,
            entry_virt: 0x21_b000 + 0xc5 * 8,
            value: ORIGINAL,
        };
        // SAFETY: a test alias: nothing is mapped anywhere.
        unsafe { Alias::new(ALIAS_VA, slot) }
    }

    fn touches() -> [Touch; 2] {
        plan(Pattern::PtWrite).touches().try_into().unwrap()
    }

    #[test]
    fn alias_is_inside_the_padding_after_the_boot_stack() {
        // Page tables at 0x217000, 4 of them: the stack is 0x21b000, the padding
        // 0x21c000 to 0x29c000 at least.
        assert_eq!(alias_va(0x21_7000, 4), 0x25_c000);
        let va = alias_va(0x21_7000, 4);
        assert!(va >= 0x21_c000 && va + PAGE_SIZE as u64 <= 0x21_c000 + BOOT_PADDING);
        assert_eq!(va % PAGE_SIZE as u64, 0);
    }

    #[test]
    fn prepare_turns_on_writable_page_tables_and_clears_the_alias() {
        let fake = Fake::new();
        assert_eq!(prepare(&FakeXen::of(&fake), &mut &fake, &alias()), Ok(()));
        assert_eq!(
            *fake.log.borrow(),
            ["vm_assist 2".to_string(), "update_va_mapping 0x0".into()]
        );
        assert_eq!(fake.entry.get(), 0);
    }

    #[test]
    fn prepare_checks_the_alias_is_cleared() {
        let fake = Fake::new();
        assert_eq!(
            prepare(&fake_xen::answering(0), &mut &fake, &alias()),
            Err(PtError {
                what: "pt-write: alias still mapped",
                error: XenError::EINVAL
            })
        );
    }

    #[test]
    fn both_routes_map_write_unmap_then_restore() {
        let fake = Fake::new();
        prepare(&FakeXen::of(&fake), &mut &fake, &alias()).unwrap();
        let prepared = fake.log.borrow().len();
        let mut events = Vec::new();
        let result = run(
            &FakeXen::of(&fake),
            &mut &fake,
            &alias(),
            TARGETS,
            touches(),
            |e| {
                events.push(e);
            },
        );
        assert_eq!(result, Ok(()));
        let [pte6, pte9] = TARGETS.map(kernel_rw_pte);
        // After the handshake the first write to the L1 page is the emulated store: a
        // listener that restricts the page sees it first (the clearing was before).
        assert_eq!(
            fake.log.borrow()[prepared..],
            [
                format!("store {pte6:#x}"),
                "write 0x100=6".into(),
                "store 0x0".into(),
                "invlpg".into(),
                format!("mmu_update {pte9:#x}"),
                "write 0x200=9".into(),
                "mmu_update 0x0".into(),
                "invlpg".into(),
                format!("update_va_mapping {ORIGINAL:#x}"),
            ]
        );
        let [t0, t1] = touches();
        assert_eq!(
            events,
            [
                Event::Mapped(Route::Emulated),
                Event::Touched(t0),
                Event::Mapped(Route::MmuUpdate),
                Event::Touched(t1)
            ]
        );
        assert_eq!(fake.entry.get(), ORIGINAL);
    }

    #[test]
    fn an_emulated_store_that_did_not_land_is_a_failure() {
        let fake = Fake {
            emulation_ignored: true,
            ..Fake::new()
        };
        prepare(&FakeXen::of(&fake), &mut &fake, &alias()).unwrap();
        let mut events = Vec::new();
        let result = run(
            &FakeXen::of(&fake),
            &mut &fake,
            &alias(),
            TARGETS,
            touches(),
            |e| {
                events.push(e);
            },
        );
        assert_eq!(
            result,
            Err(PtError {
                what: "pt-write: emulated map check",
                error: XenError::EINVAL
            })
        );
        assert!(events.is_empty(), "nothing written through a wrong mapping");
    }

    #[test]
    fn xen_errors_stop_the_pattern() {
        let refuses = FakeXen::new(|call| {
            if call.nr == HypercallNr::VM_ASSIST {
                -22
            } else {
                0
            }
        });
        let fake = Fake::new();
        let result = prepare(&refuses, &mut &fake, &alias());
        assert_eq!(
            result,
            Err(PtError {
                what: "pt-write: vm_assist writable_pagetables",
                error: XenError::EINVAL
            })
        );
        assert!(fake.log.borrow().is_empty());
    }

    #[test]
    fn pt_write_line() {
        let mut out = String::new();
        write_pt_write(&mut out, Route::MmuUpdate, &alias());
        assert_eq!(out, "PT-WRITE mmu_update l1-pfn=0x21b slot=197 va=0x2c5000");
        assert_eq!(Route::Emulated.name(), "emulated");
    }

    #[test]
    fn pt_slot_line() {
        let mut out = String::new();
        write_pt_slot(&mut out, &alias());
        assert_eq!(
            out,
            "PT-SLOT l1-pfn=0x21b slot=197 va=0x2c5000 pte-va=0x21b628"
        );
        assert_eq!(alias().pte_va(), 0x21_b628);
    }

    #[test]
    fn pt_lines_read_back() {
        use crate::lines::tests::round_trip;
        round_trip(
            PtSlot {
                l1_pfn: 0x21b,
                slot: 197,
                va: 0x2c_5000,
                pte_va: 0x21_b628,
            },
            "PT-SLOT l1-pfn=0x21b slot=197 va=0x2c5000 pte-va=0x21b628",
        );
        assert_eq!(PtSlot::of(&alias()).to_string(), {
            let mut out = String::new();
            write_pt_slot(&mut out, &alias());
            out
        });
        for (route, text) in [
            (
                Route::MmuUpdate,
                "PT-WRITE mmu_update l1-pfn=0x21b slot=197 va=0x2c5000",
            ),
            (
                Route::Emulated,
                "PT-WRITE emulated l1-pfn=0x21b slot=197 va=0x2c5000",
            ),
        ] {
            let line = PtWrite {
                route,
                l1_pfn: 0x21b,
                slot: 197,
                va: 0x2c_5000,
            };
            round_trip(line, text);
        }
        assert_eq!(
            PtWrite::parse("PT-WRITE other l1-pfn=0x21b slot=197 va=0x2c5000"),
            None
        );
        assert_eq!(
            PtSlot::parse("PT-SLOT l1-pfn=0x21b slot=197 va=0x2c5000"),
            None
        );
    }
}
