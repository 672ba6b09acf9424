//! `hostile/bounce-frame`: exceptions and event upcalls delivered onto a kernel stack on a
//! read-only page.
//!
//! Semantics (issue 10, item 1): the exception and event frames that `create_bounce_frame`
//! writes on a PV guest's kernel stack are Xen's own writes. Xen writes them through its
//! slow path (the guest's page walk, `map_domain_page`): they land, they are not reported,
//! and they leave the page's access as it was. (HVM reports an EPT violation during event
//! delivery as the guest's own write; for PV the frame is Xen's doing, and reporting it
//! would have a listener answer for a write the guest's code never made.)
//!
//! The guest (test-guest `pattern=bounce-frame`, `test_guest::traps`) moves its stack to
//! buffer page 12 (rx) around each of 64 rounds of `int3`, `ud2`, a `mov` to `ds` of a
//! selector of the (empty) LDT (`#GP` with error code 0x1234) and an event upcall (an IPI event channel to itself); its handlers
//! only read the frame (asm: record it elsewhere, leave through `HYPERVISOR_iret` from
//! another stack), so the guest never writes page 12 until its one final write at 0x10.
//! The listener relaxes a page after its event.
//!
//! Host checks: every delivery happened with the right frame (`BOUNCE kind=<k>
//! delivered=64 right=64` for each kind, no `BOUNCE-BAD`); the trace holds exactly one
//! event, the final write (vCPU 0, w, page 12 at 0x10), so no frame write was reported and
//! the page was still read-only at the end; Xen reported one fault; the listener stopped
//! with the domain (exit 4). Counts in `counts.txt`.

use anyhow::{ensure, Result};
use test_guest::lines::{self, Bounce, BounceBad, Line};
use test_guest::traps::Kind;

use super::{fault_count, fault_counts, show_fault_counts, TraceSummary};
use crate::scenarios::events::run::{self, PatternRun};
use crate::scenarios::events::trace::{Account, BUFFER_PFN};
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "hostile/bounce-frame",
    in_dom0,
    on_host,
};

/// The stack's page, the final write's offset and the rounds of deliveries (each kind once
/// a round): the guest's own constants.
const PAGE: u64 = test_guest::patterns::BOUNCE_PAGE as u64;
const TOUCH_OFFSET: u64 = test_guest::patterns::BOUNCE_TOUCH_OFFSET as u64;
const ROUNDS: u64 = test_guest::patterns::BOUNCE_ROUNDS;

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let page = format!("{:#x}=rx", BUFFER_PFN + PAGE);
    let listener = ["--default-access", "rwx", "--access", &page];
    let outcome = run::run(
        dom0,
        &PatternRun {
            guest: "bounce-frame",
            cmdline: "pattern=bounce-frame",
            vcpus: 1,
            listener: &listener,
            expect_crash: false,
            between_phases: None,
            stall_listener: None,
            restrict_page_table: false,
        },
        |_| Ok(()),
    );
    // Condensed as the races' traces (it should hold one event, but if Xen reported its
    // frame writes it holds hundreds).
    let condensed = TraceSummary::condense(dom0);
    outcome.and(condensed)
}

fn on_host(view: &HostView) -> Result<()> {
    let account = Account::parse(&view.read("guest-console.log")?)?;
    let summary = TraceSummary::read(view)?;
    let faults = fault_counts(view);
    let faults_text = faults.as_ref().map_or_else(
        |error| format!("({error})"),
        |counts| show_fault_counts(counts),
    );
    let mut kinds = Vec::new();
    for kind in Kind::ALL {
        let line = lines::bodies(&account.console)
            .filter_map(Bounce::parse)
            .find(|line| line.kind == kind);
        let count = |count: fn(&Bounce) -> u64| line.as_ref().map(count);
        kinds.push((
            kind.name(),
            count(|line| line.delivered),
            count(|line| line.right),
        ));
    }
    let bad = BounceBad::find(&account.console).map(|bad| bad.to_string());
    let bad = bad.as_deref();
    let counts = format!(
        "deliveries (kind, delivered, right): {kinds:?}\nfirst wrong frame: {}\ntrace: {}\
         Xen's fault counts: {faults_text}\n",
        bad.unwrap_or("none"),
        summary.describe()
    );
    print!("hostile/bounce-frame: {counts}");
    view.save_note("counts.txt", &counts)?;

    ensure!(
        account.done,
        "the guest did not finish its pattern (a delivery hung or crashed it; its last \
         lines are in guest-console.log)"
    );
    for (kind, delivered, right) in &kinds {
        ensure!(
            *delivered == Some(ROUNDS) && *right == Some(ROUNDS),
            "{kind}: delivered {delivered:?}, right {right:?}, expected {ROUNDS} each (first \
             wrong frame: {})",
            bad.unwrap_or("none")
        );
    }
    ensure!(bad.is_none(), "a wrong frame: {}", bad.unwrap_or(""));
    let pfn = BUFFER_PFN + PAGE;
    let only_the_touch = matches!(summary.groups.as_slice(), [group]
        if group.count == 1
            && group.vcpu == 0
            && group.access == "w"
            && group.pfn == Some(pfn)
            && group.offset == Some(TOUCH_OFFSET)
            && group.sync);
    ensure!(
        only_the_touch && summary.events == 1,
        "expected exactly one event, the guest's final write of page {pfn:#x} at \
         {TOUCH_OFFSET:#x} (Xen's frame writes are not reported, and the page stayed \
         read-only), the trace holds {}",
        summary.describe()
    );
    let faults = faults?;
    ensure!(
        fault_count(&faults, "reported") == Some(1),
        "Xen's fault counts `{faults_text}`: expected 1 reported"
    );
    let exit = view.read("listener.txt")?;
    ensure!(
        exit.trim() == "exit=4",
        "listener monitor (stopped by the guest's poweroff): {}",
        exit.trim()
    );
    Ok(())
}
