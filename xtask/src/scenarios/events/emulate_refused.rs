//! `events/emulate-refused`: a response PV cannot honour is refused visibly, never dropped.
//!
//! The listener answers each event with `VM_EVENT_FLAG_EMULATE` (`--on-event emulate`), as
//! an HVM listener that lets an access through once does. Xen cannot emulate a PV vCPU's
//! access (patch 0013): it resumes the vCPU without emulating, logs the refusal once per
//! domain, and the vCPU's next request, the same access faulting again, carries
//! `VM_EVENT_FLAG_RESPONSE_REFUSED`; the listener then relaxes the page. Before, the vCPU
//! would come back with the same event for ever (a livelock the listener could not see).
//!
//! Host checks: for each of the 16 pages the guest writes, two events in a row, the first
//! answered `emulate` without the flag, the second flagged `response_refused` and answered
//! `relax`; the guest finishes its sweep; Xen's log names the refusal exactly once for the
//! domain.

use anyhow::{ensure, Result};

use super::run::{self, PatternRun};
use super::trace::{Account, Trace, BUFFER_PAGES, BUFFER_PFN};
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "events/emulate-refused",
    in_dom0,
    on_host,
};

const REFUSED: &str = "response_refused";

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let pages: Vec<String> = (0..BUFFER_PAGES)
        .map(|page| format!("{:#x}=rx", BUFFER_PFN + page))
        .collect();
    let mut listener = vec!["--default-access", "rwx", "--on-event", "emulate"];
    for page in &pages {
        listener.extend(["--access", page]);
    }
    run::run(
        dom0,
        &PatternRun {
            guest: "emulate-refused",
            cmdline: "pattern=write-sweep",
            vcpus: 1,
            listener: &listener,
            expect_crash: false,
            between_phases: None,
            stall_listener: None,
            restrict_page_table: false,
        },
        |_| Ok(()),
    )
}

fn on_host(view: &HostView) -> Result<()> {
    let account = Account::parse(&view.read("guest-console.log")?)?;
    ensure!(
        account.done && account.touches.len() == BUFFER_PAGES as usize,
        "the write sweep did not finish: {} touches",
        account.touches.len()
    );
    let trace = Trace::parse(&view.read("trace.jsonl")?)?;
    let pairs: Vec<_> = trace.events.chunks(2).collect();
    ensure!(
        trace.events.len() == 2 * BUFFER_PAGES as usize,
        "expected two events per page (emulate refused, then relax), got {}",
        trace.events.len()
    );
    for (page, pair) in pairs.iter().enumerate() {
        let [first, second] = pair else {
            unreachable!("chunks of two of an even count")
        };
        let pfn = BUFFER_PFN + page as u64;
        for event in [first, second] {
            ensure!(
                event.pfn == Some(pfn) && event.access == "w",
                "event {} is not the write of pfn {pfn:#x}: {event:?}",
                event.seq
            );
        }
        ensure!(
            first.response == "emulate" && !first.flags.iter().any(|flag| flag == REFUSED),
            "event {} should be answered emulate, unflagged: {first:?}",
            first.seq
        );
        ensure!(
            second.response == "relax" && second.flags.iter().any(|flag| flag == REFUSED),
            "event {} should say the emulate was refused and be relaxed: {second:?}",
            second.seq
        );
    }
    let domid = view.read("domid.txt")?;
    let refusal = format!(
        "d{}v0: vm_event response flags 0x4 not supported for PV",
        domid.trim()
    );
    let logged = view.serial()?.matches(&refusal).count();
    ensure!(
        logged == 1,
        "Xen should log the refused response once for the domain, logged it {logged} times ({refusal:?})"
    );
    Ok(())
}
