//! The `pt-write` pattern's glue: before the handshake, [`choose`] finds the alias
//! (`test_guest::pt_write::alias_va`) and its L1 entry in the running page tables,
//! checks it is the builder's mapping of an unused page, finds the target frames,
//! prints `PT-SLOT` and has `test_guest::pt_write::prepare` clear the alias (a
//! hypercall write to the L1 page, which must come before dom0 restricts that page);
//! after `GO`, [`run`] gives `test_guest::pt_write::run` the kernel's memory.

use test_guest::frames::{Mfn, Pfn};
use test_guest::hypercall::{HypercallPage, XenError};
use test_guest::pagewalk;
use test_guest::patterns::{self as plan, Plan, Touch};
use test_guest::pt_write::{self, Alias, Event};
use test_guest::start_info::StartInfo;
use test_guest::workload::BUFFER_GFN;

use super::super::{fail, l1_slot, line, p2m};

/// The alias chosen before the handshake, and what each route writes through it.
pub(super) struct Chosen {
    alias: Alias,
    /// The machine frame of each touch's buffer page.
    targets: [Mfn; 2],
    touches: [Touch; 2],
}

/// Chooses the alias and its L1 entry, finds the frames of the plan's pages (6 for the
/// emulated route, 9 for `mmu_update`), prints `PT-SLOT` and prepares the alias
/// (`test_guest::pt_write::prepare`); FAIL if any of it cannot be done. Runs before
/// `READY`.
pub(super) fn choose(hv: &HypercallPage, si: &StartInfo, plan: &Plan) -> Chosen {
    let Ok(touches) = <[Touch; 2]>::try_from(plan.touches()) else {
        fail("pt-write: plan", XenError::EINVAL)
    };
    let Some(p2m) = p2m(si) else {
        fail("no P2M list", XenError::EINVAL)
    };
    let alias = find_alias(si, p2m, l1_slot(si, p2m, alias_va(si)));
    let targets = touches.map(|touch| buffer_mfn(p2m, &touch));
    line(|out| pt_write::write_pt_slot(out, &alias));
    if let Err(e) = pt_write::prepare(hv, &mut AliasEnv::of(&alias), &alias) {
        fail(e.what, e.error);
    }
    Chosen {
        alias,
        targets,
        touches,
    }
}

/// The alias's address (`test_guest::pt_write::alias_va`).
pub(super) fn alias_va(si: &StartInfo) -> u64 {
    pt_write::alias_va(si.pt_base, si.nr_pt_frames)
}

/// The alias at [`alias_va`], whose L1 entry `slot` is (read from the running page
/// tables by the caller); FAIL unless that entry is the builder's 1:1 mapping of the
/// alias's own pfn, a page of the padding nothing uses.
pub(super) fn find_alias(si: &StartInfo, p2m: &[u64], slot: pagewalk::L1Slot) -> Alias {
    let va = alias_va(si);
    // The builder maps the bootstrap region 1:1: the alias's entry must map the
    // alias's own pfn, which nothing uses (past the boot stack).
    let own = usize::try_from(Pfn::from_virt(va).0)
        .ok()
        .and_then(|pfn| p2m.get(pfn));
    if own != Some(&pagewalk::pte_mfn(slot.value).0) {
        fail("alias not in the bootstrap padding", XenError::EINVAL);
    }
    // SAFETY: the alias is a page of the builder's padding after the boot stack (just
    // checked: its entry is the 1:1 bootstrap mapping of its pfn, and `alias_va` puts
    // it past the page tables and the stack), which nothing in this kernel uses;
    // `slot` is the entry that maps `va` (the caller's walk).
    unsafe { Alias::new(va, slot) }
}

/// The machine frame of `touch`'s buffer page, from the P2M; FAIL if it has none.
pub(super) fn buffer_mfn(p2m: &[u64], touch: &Touch) -> Mfn {
    let target = usize::try_from(BUFFER_GFN)
        .ok()
        .and_then(|first| p2m.get(first + touch.page));
    let Some(&target) = target else {
        fail("buffer page not in the P2M", XenError::EINVAL)
    };
    Mfn(target)
}

/// Maps each route's buffer page at the alias `choose` chose, writes through it,
/// unmaps; returns the touches made. Runs after `GO`.
pub(super) fn run(hv: &HypercallPage, chosen: &Chosen) -> usize {
    let Chosen {
        alias,
        targets,
        touches,
    } = *chosen;
    let mut env = AliasEnv::of(&alias);
    let mut made = 0;
    let done = pt_write::run(
        hv,
        &mut env,
        &alias,
        targets,
        touches,
        |event| match event {
            Event::Mapped(route) => line(|out| pt_write::write_pt_write(out, route, &alias)),
            Event::Touched(touch) => {
                line(|out| plan::write_touch(out, &touch, alias.va() + touch.offset as u64));
                made += 1;
            }
        },
    );
    if let Err(e) = done {
        fail(e.what, e.error);
    }
    made
}

/// The kernel's memory as `pt_write::run` sees it.
///
/// # Invariants
///
/// `l1e` is the alias's L1 entry in a bootstrap page table (8-byte aligned, mapped
/// read-only for the life of the domain); `alias` is the alias's page, which nothing
/// Rust relies on uses.
struct AliasEnv {
    l1e: *mut u64,
    alias: *mut u8,
}

impl AliasEnv {
    /// The memory of `alias`, chosen by [`choose`] (so the invariant holds).
    fn of(alias: &Alias) -> Self {
        Self {
            l1e: alias.pte_va() as *mut u64,
            alias: alias.va() as *mut u8,
        }
    }
}

impl pt_write::Env for AliasEnv {
    fn store_l1e(&mut self, val: u64) {
        // SAFETY: a plain, aligned 8-byte store to the L1 entry (type invariant). The
        // page is read-only to the guest, so the store faults into Xen, which emulates
        // it as a checked page-table update (`pt_write::run` turned on writable page
        // tables first) and resumes after it; changing the entry only changes what the
        // alias maps, which nothing relies on.
        unsafe { self.l1e.write_volatile(val) }
    }

    fn read_l1e(&mut self) -> u64 {
        // SAFETY: the entry is aligned and mapped read-only (type invariant); volatile
        // because Xen writes it.
        unsafe { self.l1e.read_volatile() }
    }

    fn write_alias(&mut self, offset: usize, value: u8) {
        // SAFETY: `pt_write::run` calls this only while the alias maps the target page;
        // `offset` is a plan offset inside the page; nothing references the alias or the
        // buffer page behind it (raw pointers only). Volatile: mem_access watches it.
        unsafe { self.alias.add(offset).write_volatile(value) }
    }
}
