//! `hostile/xen-copy-race` and `hostile/runstate-area`: while Xen writes a read-only page
//! for one vCPU, another vCPU's writes to it must still fault, be reported and never land.
//!
//! The guest (test-guest `pattern=xen-copy-race` / `pattern=runstate-area`, see
//! `test_guest::xen_writes`) has two vCPUs. Buffer page 10 is read-only (rx) and the
//! listener answers each event `keep`, so a faulting write is retried and faults again.
//! vCPU 1 has Xen write the page 10^4 times (hypercall results, alternately
//! `XENVER_extraversion` and `VCPUOP_get_runstate_info`; or its runstate area, registered
//! in the page, across 10^4 yields) and checks each write; meanwhile vCPU 0 keeps storing
//! a marker byte at 0x800. When vCPU 1 is done (its `READY ... phase=2` line), dom0 makes
//! the page writable (`listener set-access --pfn 0x20a rw`, the monitor still running) and
//! writes `GO2`; vCPU 0's store then lands, and the guest reports its counts.
//!
//! Xen writes the page through its own mapping of the frame (patch 0016) and never changes
//! the shared shadow entry. The grant it made before (the entry built with the guest's
//! rights until the next hypercall exit) let about 2*10^5 of vCPU 0's stores land
//! unreported in a run; `early` (vCPU 0) and `seen-early` (vCPU 1) count them.
//!
//! Host checks: vCPU 1 made its 10^4 calls, every Xen write landed and was right (for the
//! runstate area: every reading right, and Xen updated it at least once); no store of
//! vCPU 0 landed while the page was read-only (`early` = 0, `seen-early` = 0); vCPU 0's
//! store was reported (at least one event), and every event is vCPU 0's synchronous write
//! of page 10 at 0x800, answered `keep` (Xen's writes are never reported); Xen reported as
//! many faults as the trace holds; the listener stopped with the domain (exit 4). The
//! counts go to `counts.txt`.

use anyhow::{ensure, Context, Result};
use test_guest::lines::{self, Line};
use test_guest::xen_writes::{RaceBad, RaceGuest, RaceXen, XenCounts};

use super::{fault_count, fault_counts, show_fault_counts, TraceSummary};
use crate::scenarios::events::run::{self, PatternRun};
use crate::scenarios::events::trace::{Account, BUFFER_PFN};
use crate::scenarios::{Dom0, HostView, Scenario};

/// The page Xen writes and vCPU 0 tries to write, where vCPU 0 writes in it, and vCPU 1's
/// calls: the guest's own constants.
const RACE_PAGE: u64 = test_guest::xen_writes::RACE_PAGE as u64;
const MARKER_OFFSET: u64 = test_guest::xen_writes::MARKER_OFFSET as u64;
const CALLS: u64 = test_guest::xen_writes::RACE_CALLS;

/// One of the two races.
struct Race {
    /// The scenario's name.
    name: &'static str,
    /// The guest's pattern (also the guest's name).
    pattern: &'static str,
    /// Whether every one of Xen's writes leaves a result to find (a hypercall's copy), or
    /// only some (the runstate area changes only when vCPU 1 is switched out and in).
    every_call_lands: bool,
}

const XEN_COPY: Race = Race {
    name: "hostile/xen-copy-race",
    pattern: "xen-copy-race",
    every_call_lands: true,
};

const RUNSTATE: Race = Race {
    name: "hostile/runstate-area",
    pattern: "runstate-area",
    every_call_lands: false,
};

pub const XEN_COPY_RACE: Scenario = Scenario {
    name: XEN_COPY.name,
    in_dom0: |dom0| in_dom0(&XEN_COPY, dom0),
    on_host: |view| on_host(&XEN_COPY, view),
};

pub const RUNSTATE_AREA: Scenario = Scenario {
    name: RUNSTATE.name,
    in_dom0: |dom0| in_dom0(&RUNSTATE, dom0),
    on_host: |view| on_host(&RUNSTATE, view),
};

fn in_dom0(race: &Race, dom0: &Dom0) -> Result<()> {
    let pfn = format!("{:#x}", BUFFER_PFN + RACE_PAGE);
    let page = format!("{pfn}=rx");
    let cmdline = format!("pattern={}", race.pattern);
    let listener = [
        "--default-access",
        "rwx",
        "--access",
        &page,
        "--on-event",
        "keep",
    ];
    // Once vCPU 1 is done: the page writable, with the monitor still running.
    let writable = ["set-access", "--pfn", &pfn, "rw"];
    let outcome = run::run(
        dom0,
        &PatternRun {
            guest: race.pattern,
            cmdline: &cmdline,
            vcpus: 2,
            listener: &listener,
            expect_crash: false,
            between_phases: Some(&writable),
            stall_listener: None,
            restrict_page_table: false,
        },
        |_| Ok(()),
    );
    // The trace is kept condensed whatever happened: it may hold 10^5 events.
    let condensed = TraceSummary::condense(dom0);
    outcome.and(condensed)
}

fn on_host(race: &Race, view: &HostView) -> Result<()> {
    let console = view.read("guest-console.log")?;
    let account = Account::parse(&console)?;
    let ours = |pattern: &str| pattern == race.pattern;
    let xen = lines::bodies(&console)
        .filter_map(RaceXen::parse)
        .find(|line| ours(line.pattern))
        .with_context(|| format!("no RACE-XEN {} line", race.pattern))?;
    let guest = lines::bodies(&console)
        .filter_map(RaceGuest::parse)
        .find(|line| ours(line.pattern))
        .with_context(|| format!("no RACE-GUEST {} line", race.pattern))?;
    let XenCounts {
        calls,
        landed,
        right,
        seen_early,
    } = xen.counts;
    let (stores, early) = (guest.stores, guest.early);
    let summary = TraceSummary::read(view)?;
    let faults = fault_counts(view);
    let faults_text = faults.as_ref().map_or_else(
        |error| format!("({error})"),
        |counts| show_fault_counts(counts),
    );
    let bad_line =
        RaceBad::find(&console).map_or_else(|| "none".to_string(), |bad| bad.to_string());
    let counts = format!(
        "vCPU 1: {calls} calls, Xen's writes landed {landed}, right {right}, vCPU 0's marker \
         seen early {seen_early}; first wrong: {bad_line}\nvCPU 0: {stores} stores completed, \
         {early} of them while the page was read-only\ntrace: {}Xen's fault counts: \
         {faults_text}\n",
        summary.describe()
    );
    print!("{}: {counts}", race.name);
    view.save_note("counts.txt", &counts)?;

    ensure!(account.done, "the guest did not finish its pattern");
    ensure!(
        calls == CALLS,
        "vCPU 1 made {calls} calls, expected {CALLS}"
    );
    if race.every_call_lands {
        ensure!(
            landed == calls && right == calls,
            "of {calls} hypercall results Xen wrote into the read-only page, {landed} landed and \
             {right} were right (first wrong: {bad_line})"
        );
    } else {
        ensure!(
            right == calls && landed > 0,
            "of {calls} readings of the runstate area in the read-only page, {right} were right \
             and {landed} showed an update by Xen (first wrong: {bad_line})"
        );
    }
    ensure!(
        bad_line == "none",
        "a wrong result of Xen's (call 0 of the runstate area is its registration): {bad_line}"
    );
    ensure!(
        early == 0 && seen_early == 0,
        "vCPU 0's write landed while the page was read-only: {early} of its {stores} stores \
         completed before vCPU 1 was done, and vCPU 1 found the marker {seen_early} times \
         (trace: {})",
        summary.describe()
    );
    let pfn = BUFFER_PFN + RACE_PAGE;
    let foreign: Vec<_> = summary
        .groups
        .iter()
        .filter(|group| {
            !(group.vcpu == 0
                && group.access == "w"
                && group.pfn == Some(pfn)
                && group.offset == Some(MARKER_OFFSET)
                && group.response == "keep"
                && group.sync)
        })
        .collect();
    ensure!(
        foreign.is_empty(),
        "events other than vCPU 0's synchronous write of page {pfn:#x} at {MARKER_OFFSET:#x} \
         (Xen's own writes must never be reported): {foreign:?}"
    );
    ensure!(
        summary.events >= 1,
        "vCPU 0's write of the read-only page was never reported (trace: {})",
        summary.describe()
    );
    let faults = faults?;
    ensure!(
        fault_count(&faults, "reported") == Some(summary.events),
        "Xen reported `{faults_text}`, the trace holds {} events",
        summary.events
    );
    let exit = view.read("listener.txt")?;
    ensure!(
        exit.trim() == "exit=4",
        "listener monitor (stopped by the guest's poweroff): {}",
        exit.trim()
    );
    Ok(())
}
