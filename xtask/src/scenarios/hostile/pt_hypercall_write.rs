//! `hostile/pt-hypercall-write`: the guest's page tables write-protected by the listener,
//! and the guest writing them by hypercall (Xen's patch 0022).
//!
//! The test guest's `pt-hypercall` pattern (`test_guest::pt_hypercall`) walks to
//! `pt-write`'s alias and prints, before `READY`, its L1 table and the L2 table on the way
//! (`PT-TABLES`). `listener monitor` makes both table pages and buffer pages 1-3 read-only
//! (`--access PFN=r`, default rwx) and relaxes each page it gets an event for
//! (`--on-event relax`). The guest then makes one page-table write per phase:
//!
//! 1. `mmu_update` of the alias's L1 entry (mapping page 1), then writes page 1 through
//!    the alias;
//! 2. `update_va_mapping` of the alias (page 2), then writes page 2 through it;
//! 3. a `multicall` holding one `mmu_update` of the L1 entry (page 3), then writes page 3;
//! 4. `mmu_update` of the L2 entry (its own value with an available bit set, so the
//!    read-back tells the write landed).
//!
//! Relaxing makes a page writable, so before phases 2 and 3 dom0 restricts the L1 page
//! again (`listener set-access --pfn <l1> r`, while the monitor runs): each of steps 1-3
//! meets a read-only L1 page, and step 4 meets the L2 page, read-only since the start and
//! written by nothing before. For each step dom0 stops the listener (SIGSTOP) before
//! letting the guest go, waits for the guest's `PT-HCALL <step> begin` line, waits
//! [`HOLD`] more and looks whether the guest's `PT-HCALL <step> done` line came (it must
//! not: the hypercall waits for the answer), then lets the listener go on.
//!
//! The host asserts: exactly seven events, in order: for each step, one write event
//! flagged `fault_hypercall` (no gla) on the table page, with its machine frame and the
//! entry's offset, then for steps 1-3 one ordinary write event (`gla_valid`, the alias's
//! address) on the buffer page the step mapped, with that page's frame; each sync and
//! relaxed; no step's hypercall returned while the listener was held; each write landed
//! (the guest's read-back of the entry: the L1 entry maps the step's page, the L2 entry
//! has the bit and still points to the L1 table); Xen counted seven reports, no spurious
//! fault; the guest finished and the listener stopped with it.

use std::process::Child;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use libxc::xenstore::resolve_domain;
use listener::record::Reason;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use test_guest::lines::{self, Line};
use test_guest::patterns::PatternDone;
use test_guest::patterns::Ready;
use test_guest::pt_hypercall::{PtHcall, PtTables, Step};

use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::events::check_fault_counts;
use crate::scenarios::events::run::{self, TRACE};
use crate::scenarios::events::trace::{Account, Event, Trace, BUFFER_PFN};
use crate::scenarios::guest::Guest;
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "hostile/pt-hypercall-write",
    in_dom0,
    on_host,
};

const GUEST: &str = "pt-hypercall-write";

/// The steps, step `n` in phase `n`.
const STEPS: [Step; 4] = Step::ALL;

/// The buffer pages steps 1-3 map and write: the guest's own.
const PAGES: [u64; 3] = {
    let [first, second, third] = test_guest::patterns::PT_HYPERCALL_PAGES;
    [first as u64, second as u64, third as u64]
};

/// The available bit step 4 sets in the L2 entry.
const L2_MARK: u64 = test_guest::pt_hypercall::L2_MARK;

/// How long the listener is held once the guest started a step's hypercall.
const HOLD: Duration = Duration::from_secs(3);

/// The go value of phase `n`, the guest's own ([`test_guest::handshake::go_value`]).
fn go_value(phase: u32) -> Result<u64> {
    test_guest::handshake::go_value(phase)
        .with_context(|| format!("the guest has no go value for phase {phase}"))
}

/// The guest's [`PT-TABLES`](PtTables) line: the alias, and each table page's frames and the
/// offset of the entry the steps write.
fn tables(account: &Account) -> Result<PtTables> {
    PtTables::find(&account.console).context("no PT-TABLES line")
}

/// The entry the guest read back after `step`'s hypercall, from its `PT-HCALL <step> done`
/// line.
fn entry_after(console: &str, step: Step) -> Option<u64> {
    lines::bodies(console)
        .filter_map(PtHcall::parse)
        .find_map(|line| (line.step == step).then_some(line.done).flatten())
}

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let guest = dom0.create_guest(&GuestConfig {
        name: GUEST,
        memory_mib: 64,
        vcpus: 1,
        cmdline: "pattern=pt-hypercall",
    })?;
    let result = monitored(dom0, &guest);
    let saved = guest.save_console();
    let destroyed = guest.destroy(Duration::from_secs(30));
    result.and(saved).and(destroyed)
}

/// Starts the listener once the guest is `READY`, drives the steps, and leaves the trace,
/// `listener.txt` (its exit status) and `held.txt` (per step, whether the hypercall
/// returned while the listener was held).
fn monitored(dom0: &Dom0, guest: &Guest) -> Result<()> {
    let go_pfn = guest.wait_for::<Ready>(Duration::from_secs(60))?.go_pfn;
    dom0.save("domid.txt", resolve_domain(GUEST)?.0.to_string())?;
    let tables = tables(&Account::parse(&guest.console())?)?;
    let mut options: Vec<String> = ["--default-access", "rwx", "--on-event", "relax"]
        .map(String::from)
        .to_vec();
    let restricted = PAGES
        .iter()
        .map(|page| BUFFER_PFN + page)
        .chain([tables.l1.pfn, tables.l2.pfn]);
    for pfn in restricted {
        options.extend(["--access".to_string(), format!("{pfn:#x}=r")]);
    }
    let _ = std::fs::remove_file(TRACE);
    let mut listener = run::start_listener(GUEST, TRACE, &options)?;
    let outcome = steps(dom0, guest, &tables, go_pfn, &mut listener);
    run::finish(dom0, guest, &mut listener, outcome)
}

fn steps(
    dom0: &Dom0,
    guest: &Guest,
    tables: &PtTables,
    go_pfn: u64,
    listener: &mut Child,
) -> Result<()> {
    run::wait_for_header(listener)?;
    let pid = Pid::from_raw(listener.id() as i32);
    let l1_pfn = format!("{:#x}", tables.l1.pfn);
    let mut held = String::new();
    for (phase, step) in (1..).zip(STEPS) {
        let name = step.name();
        if phase > 1 {
            guest.wait_for_matching(
                |ready: &Ready| ready.phase == phase,
                Duration::from_secs(180),
            )?;
        }
        if phase == 2 || phase == 3 {
            // The listener relaxed the L1 page when it answered the last step.
            dom0.run(
                "listener",
                &["set-access", "--domain", GUEST, "--pfn", &l1_pfn, "r"],
            )?;
        }
        kill(pid, Signal::SIGSTOP)?;
        let begun = go_value(phase)
            .and_then(|go| run::release(GUEST, go_pfn, go))
            .and_then(|()| {
                guest.wait_for_matching(
                    |line: &PtHcall| line.step == step && line.done.is_none(),
                    Duration::from_secs(120),
                )
            });
        if begun.is_ok() {
            std::thread::sleep(HOLD);
        }
        let returned = entry_after(&guest.console(), step).is_some();
        kill(pid, Signal::SIGCONT)?;
        begun?;
        held += &format!("{name} returned-while-held={returned}\n");
        guest.wait_for_matching(
            |line: &PtHcall| line.step == step && line.done.is_some(),
            Duration::from_secs(120),
        )?;
    }
    dom0.save("held.txt", &held)?;
    guest.wait_for::<PatternDone>(Duration::from_secs(180))?;
    Ok(())
}

/// One event the host expects, in order.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    pfn: u64,
    mfn: u64,
    offset: u64,
    /// The address of an ordinary write; `None` for a write by hypercall.
    gla: Option<u64>,
}

impl Expected {
    fn flags(&self) -> &'static [&'static str] {
        match self.gla {
            Some(_) => &[
                "w",
                "gla_valid",
                "fault_with_gla",
                "gfn_is_mfn",
                "vcpu_paused",
            ],
            None => &["w", "fault_hypercall", "gfn_is_mfn", "vcpu_paused"],
        }
    }

    fn matches(&self, event: &Event) -> Result<()> {
        let gla = event.gla.map(|gla| gla.0);
        ensure!(
            event.reason == Reason::MemAccess
                && event.vcpu == 0
                && event.access == "w"
                && event.pfn == Some(self.pfn)
                && event.mfn == Some(self.mfn)
                && event.offset == Some(self.offset)
                && event.flags == self.flags()
                && (self.gla.is_none() || gla == self.gla)
                && event.response == "relax"
                && !event.recovered,
            "expected a w event on pfn {:#x} (mfn {:#x}) +{:#x}{} flagged {:?}, relaxed; got {event:?}",
            self.pfn,
            self.mfn,
            self.offset,
            self.gla.map_or(String::new(), |gla| format!(" at {gla:#x}")),
            self.flags()
        );
        Ok(())
    }
}

/// The events the steps must raise, in order.
fn expected(tables: &PtTables, account: &Account) -> Result<Vec<Expected>> {
    let mut expected = Vec::new();
    for (index, step) in STEPS.iter().enumerate() {
        let step = step.name();
        let table = if index < PAGES.len() {
            tables.l1
        } else {
            tables.l2
        };
        expected.push(Expected {
            pfn: table.pfn,
            mfn: table.mfn,
            offset: table.offset,
            gla: None,
        });
        let Some(&page) = PAGES.get(index) else {
            continue;
        };
        let touch = account
            .touches
            .iter()
            .find(|touch| touch.page == page)
            .with_context(|| format!("no TOUCH line for page {page} (step {step})"))?;
        ensure!(
            touch.access == 'w' && touch.va == tables.va + touch.offset,
            "step {step}: the guest's touch is not a write through the alias: {touch:?}"
        );
        let mfn = *account
            .frames
            .get(page as usize)
            .context("no FRAMES line")?;
        expected.push(Expected {
            pfn: BUFFER_PFN + page,
            mfn,
            offset: touch.offset,
            gla: Some(touch.va),
        });
    }
    Ok(expected)
}

fn on_host(view: &HostView) -> Result<()> {
    let console = view.read("guest-console.log")?;
    if let Some(fail) = console
        .lines()
        .find(|line| line.contains("TEST-GUEST FAIL"))
    {
        bail!("the guest failed: {fail}");
    }
    let account = Account::parse(&console)?;
    ensure!(account.done, "the guest did not finish its pattern");
    let tables = tables(&account)?;
    ensure!(
        tables.l1.pfn != tables.l2.pfn,
        "one page for both tables: {tables:?}"
    );

    // Each write landed: the entry the guest read back after its hypercall returned.
    for (index, step) in STEPS.iter().enumerate() {
        let name = step.name();
        let entry = entry_after(&account.console, *step)
            .with_context(|| format!("no `PT-HCALL {name} done` line"))?;
        let frame = (entry & 0x000f_ffff_ffff_f000) >> 12;
        match PAGES.get(index) {
            Some(&page) => ensure!(
                entry & 1 == 1 && Some(&frame) == account.frames.get(page as usize),
                "step {name}: the L1 entry reads {entry:#x}, not page {page}'s frame"
            ),
            None => ensure!(
                entry & L2_MARK != 0 && frame == tables.l1.mfn,
                "step {name}: the L2 entry reads {entry:#x}: no mark, or not the L1 table {:#x}",
                tables.l1.mfn
            ),
        }
    }

    // No hypercall returned while its report waited for the held listener.
    let held = view.read("held.txt")?;
    for step in STEPS.map(Step::name) {
        let line = format!("{step} returned-while-held=false");
        ensure!(
            held.lines().any(|l| l == line),
            "step {step}: the hypercall did not wait for the listener's answer:\n{held}"
        );
    }

    let trace = Trace::parse(&view.read("trace.jsonl")?)?;
    let expected = expected(&tables, &account)?;
    ensure!(
        trace.events.len() == expected.len(),
        "{} events, expected {}: {:#?}",
        trace.events.len(),
        expected.len(),
        trace.events
    );
    for (event, expected) in trace.events.iter().zip(&expected) {
        expected.matches(event)?;
    }
    check_fault_counts(view, &trace, true)?;
    let exit = view.read("listener.txt")?;
    ensure!(
        exit.trim() == "exit=4",
        "listener monitor (stopped by the guest's poweroff): {exit}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_guest::pt_hypercall::TableEntry;

    #[test]
    fn go_values_are_the_guest_s() {
        assert_eq!(go_value(1).unwrap(), 0x4f47);
        assert_eq!(go_value(2).unwrap(), 0x324f47);
        assert_eq!(go_value(3).unwrap(), 0x334f47);
        assert_eq!(go_value(4).unwrap(), 0x344f47);
    }

    #[test]
    fn tables_and_expected_events_from_the_guest_s_account() {
        let console = "\
TEST-GUEST FRAMES 0x100 0x101 0x102 0x103 0x104 0x105 0x106 0x107 0x108 0x109 0x10a 0x10b 0x10c 0x10d 0x10e 0x10f
TEST-GUEST PT-TABLES va=0x279000 l1-pfn=0x237 l1-mfn=0x5237 l1-offset=0x3c8 l2-pfn=0x236 l2-mfn=0x5236 l2-offset=0x8
TEST-GUEST READY go-pfn=0x2f0
TEST-GUEST PT-HCALL mmu_update begin
TEST-GUEST PT-HCALL mmu_update done entry=0x101067
TEST-GUEST TOUCH w page=1 offset=0x110 va=0x279110
TEST-GUEST READY go-pfn=0x2f0 phase=2
TEST-GUEST TOUCH w page=2 offset=0x220 va=0x279220
TEST-GUEST TOUCH w page=3 offset=0x330 va=0x279330
TEST-GUEST PATTERN-DONE pt-hypercall touches=3
";
        let account = Account::parse(console).unwrap();
        let tables = tables(&account).unwrap();
        assert_eq!(
            tables,
            PtTables {
                va: 0x27_9000,
                l1: TableEntry {
                    pfn: 0x237,
                    mfn: 0x5237,
                    offset: 0x3c8
                },
                l2: TableEntry {
                    pfn: 0x236,
                    mfn: 0x5236,
                    offset: 0x8
                },
            }
        );
        assert_eq!(
            entry_after(&account.console, Step::MmuUpdate),
            Some(0x10_1067)
        );
        assert_eq!(entry_after(&account.console, Step::Multicall), None);
        let expected = expected(&tables, &account).unwrap();
        let hypercall = |page: TableEntry| Expected {
            pfn: page.pfn,
            mfn: page.mfn,
            offset: page.offset,
            gla: None,
        };
        let alias = |page: u64, offset: u64| Expected {
            pfn: BUFFER_PFN + page,
            mfn: 0x100 + page,
            offset,
            gla: Some(0x27_9000 + offset),
        };
        assert_eq!(
            expected,
            [
                hypercall(tables.l1),
                alias(1, 0x110),
                hypercall(tables.l1),
                alias(2, 0x220),
                hypercall(tables.l1),
                alias(3, 0x330),
                hypercall(tables.l2),
            ]
        );
        assert_eq!(
            expected[0].flags(),
            ["w", "fault_hypercall", "gfn_is_mfn", "vcpu_paused"]
        );
    }

    #[test]
    fn an_event_without_the_hypercall_flag_does_not_match() {
        let event: Event = serde_json::from_str(
            r#"{"seq":1,"vcpu":0,"reason":"mem_access","access":"w","pfn":567,"mfn":21047,"gla":"0x0","offset":968,"flags":["w","vcpu_paused"],"rip":"0x0","response":"relax","recovered":false}"#,
        )
        .unwrap();
        let expected = Expected {
            pfn: 0x237,
            mfn: 0x5237,
            offset: 0x3c8,
            gla: None,
        };
        assert!(expected.matches(&event).is_err());
        let flagged = Event {
            flags: ["w", "fault_hypercall", "gfn_is_mfn", "vcpu_paused"]
                .map(String::from)
                .to_vec(),
            ..event
        };
        expected.matches(&flagged).unwrap();
    }
}
