//! The `pt-hypercall` pattern's glue: before the handshake, [`choose`] finds
//! `pt-write`'s alias, its L1 entry and the L2 entry on the way in the running page
//! tables, the target frames, prints `PT-TABLES` and has
//! `test_guest::pt_hypercall::prepare` clear the alias; after `GO`, [`run`] makes each
//! step of `test_guest::pt_hypercall` in its own phase (a `READY ... phase=<n>`
//! handshake before steps 2 to 4), then puts the alias back.

use test_guest::frames::Mfn;
use test_guest::hypercall::{HypercallPage, XenError};
use test_guest::patterns::{self as plan, Plan, Touch};
use test_guest::pt_hypercall::{self, Event, Step, Tables};
use test_guest::start_info::StartInfo;

use super::super::{fail, l2_and_l1_slots, line, p2m};
use super::pt_write::{alias_va, buffer_mfn, find_alias};
use super::wait_for_go;

/// The tables chosen before the handshake, and what each step maps and writes.
pub(super) struct Chosen {
    tables: Tables,
    /// The machine frame of each touch's buffer page.
    targets: [Mfn; 3],
    touches: [Touch; 3],
}

/// Chooses the alias, its L1 entry and the L2 entry, finds the frames of the plan's
/// pages, prints `PT-TABLES` and clears the alias; FAIL if any of it cannot be done.
/// Runs before `READY`.
pub(super) fn choose(hv: &HypercallPage, si: &StartInfo, plan: &Plan) -> Chosen {
    let Ok(touches) = <[Touch; 3]>::try_from(plan.touches()) else {
        fail("pt-hypercall: plan", XenError::EINVAL)
    };
    let Some(p2m) = p2m(si) else {
        fail("no P2M list", XenError::EINVAL)
    };
    let (l2, l1) = l2_and_l1_slots(si, p2m, alias_va(si));
    let alias = find_alias(si, p2m, l1);
    let targets = touches.map(|touch| buffer_mfn(p2m, &touch));
    // SAFETY: `l2` is the L2 entry the walk to the alias went through, read from the
    // running page tables.
    let tables = unsafe { Tables::new(alias, l2) };
    line(|out| pt_hypercall::write_pt_tables(out, &tables));
    let mut env = TablesEnv::of(&tables);
    if let Err(e) = pt_hypercall::prepare(hv, &mut env, &tables) {
        fail(e.what, e.error);
    }
    Chosen {
        tables,
        targets,
        touches,
    }
}

/// Makes the steps, step `n` in phase `n` (phase 1 was opened by the caller's
/// handshake); returns the touches made. Runs after `GO`.
pub(super) fn run(hv: &HypercallPage, chosen: &Chosen) -> usize {
    let Chosen {
        tables,
        targets,
        touches,
    } = *chosen;
    let mut env = TablesEnv::of(&tables);
    let alias_va = tables.alias().va();
    let mut made = 0;
    for (phase, step) in (1..).zip(Step::ALL) {
        if phase > 1 {
            wait_for_go(hv, phase);
        }
        let done =
            pt_hypercall::step(
                hv,
                &mut env,
                &tables,
                step,
                targets,
                touches,
                |event| match event {
                    Event::Begin(step) => line(|out| pt_hypercall::write_pt_hcall(out, step, None)),
                    Event::Done(step, entry) => {
                        line(|out| pt_hypercall::write_pt_hcall(out, step, Some(entry)))
                    }
                    Event::Touched(touch) => {
                        line(|out| plan::write_touch(out, &touch, alias_va + touch.offset as u64));
                        made += 1;
                    }
                },
            );
        if let Err(e) = done {
            fail(e.what, e.error);
        }
    }
    if let Err(e) = pt_hypercall::finish(hv, &mut env, &tables) {
        fail(e.what, e.error);
    }
    made
}

/// The kernel's memory as `test_guest::pt_hypercall` sees it.
///
/// # Invariants
///
/// `l1e` and `l2e` are the alias's L1 entry and the L2 entry on the way, in bootstrap
/// page tables (8-byte aligned, mapped read-only for the life of the domain); `alias`
/// is the alias's page, which nothing Rust relies on uses.
struct TablesEnv {
    l1e: *const u64,
    l2e: *const u64,
    alias: *mut u8,
}

impl TablesEnv {
    /// The memory of `tables`, chosen by [`choose`] (so the invariant holds).
    fn of(tables: &Tables) -> Self {
        Self {
            l1e: tables.alias().pte_va() as *const u64,
            l2e: tables.l2().entry_virt as *const u64,
            alias: tables.alias().va() as *mut u8,
        }
    }
}

impl pt_hypercall::Env for TablesEnv {
    fn read_l1e(&mut self) -> u64 {
        // SAFETY: the entry is aligned and mapped read-only (type invariant); volatile
        // because Xen writes it.
        unsafe { self.l1e.read_volatile() }
    }

    fn read_l2e(&mut self) -> u64 {
        // SAFETY: as `read_l1e`.
        unsafe { self.l2e.read_volatile() }
    }

    fn write_alias(&mut self, offset: usize, value: u8) {
        // SAFETY: `pt_hypercall::step` calls this only while the alias maps a target
        // page; `offset` is a plan offset inside the page; nothing references the alias
        // or the buffer page behind it (raw pointers only). Volatile: mem_access
        // watches it.
        unsafe { self.alias.add(offset).write_volatile(value) }
    }
}
