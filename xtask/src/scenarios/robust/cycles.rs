//! `robust/cycles`: a guest's whole life, monitored, again and again; Xen gets every page
//! back.
//!
//! [`CYCLES`] times: create a small test guest (one vCPU, or two every other cycle: Xen
//! 4.17 kept a scheduling unit of every 2-vCPU domain, fixed by patch 0005) running
//! `write-sweep`, `listener monitor`
//! with its 16 buffer pages rx, let the guest go, its 16 write events, the guest powers off
//! (the listener stops by itself: domain gone, ring disabled), destroy it. Xen's free memory
//! (free + to scrub) is counted after an unmeasured warm-up cycle (a boot's first guests make
//! Xen and dom0 grow tables they keep) and after the last cycle.
//!
//! Host checks: every cycle's trace has the 16 events, the listener exited 4 each time, and
//! at most [`SLACK_PAGES`] pages are missing at the end.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use libxc::privcmd::Privcmd;
use test_guest::patterns::{PatternDone, Ready};

use super::{leaked, Counters, SLACK_PAGES};
use crate::scenarios::abi::destroy_while_monitored::{available_pages, settle};
use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::events::run::{release, start_listener, wait, wait_for_header, GO, TRACE};
use crate::scenarios::events::trace::BUFFER_PFN;
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "robust/cycles",
    in_dom0,
    on_host,
};

const CYCLES: usize = 20;
/// Write events of one `write-sweep` (one per buffer page).
const EVENTS: usize = test_guest::workload::BUFFER_PAGES;

/// One life; returns the listener's exit status and the events in its trace.
fn cycle(dom0: &Dom0, name: &str, vcpus: u32) -> Result<(i32, usize)> {
    let guest = dom0.create_guest(&GuestConfig {
        name,
        memory_mib: 16,
        vcpus,
        cmdline: "pattern=write-sweep",
    })?;
    let go_pfn = guest.wait_for::<Ready>(Duration::from_secs(60))?.go_pfn;
    let _ = std::fs::remove_file(TRACE);
    let mut options = vec!["--default-access".to_string(), "rwx".to_string()];
    for page in 0..EVENTS {
        options.push("--access".into());
        options.push(format!("{:#x}=rx", BUFFER_PFN + page as u64));
    }
    let mut listener = start_listener(name, TRACE, &options)?;
    let run = (|| -> Result<i32> {
        wait_for_header(&mut listener)?;
        release(name, go_pfn, GO)?;
        guest.wait_for::<PatternDone>(Duration::from_secs(120))?;
        guest.wait_for_shutdown(Duration::from_secs(60))?;
        wait(&mut listener, Duration::from_secs(30))
    })();
    if run.is_err() {
        let _ = listener.kill();
        let _ = listener.wait();
        guest.save_console()?;
    }
    guest.destroy(Duration::from_secs(30))?;
    let status = run?;
    let trace = std::fs::read_to_string(TRACE).context("reading the trace")?;
    let events = trace.matches("\"type\":\"event\"").count();
    Ok((status, events))
}

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let privcmd = Privcmd::open()?;
    cycle(dom0, "cycles-warm-up", 2)?;
    let before = settle(&privcmd, 0)?;
    let mut report = String::new();
    let mut lost = 0;
    for index in 0..CYCLES {
        let (status, events) = cycle(dom0, &format!("cycles-{index}"), 1 + (index % 2) as u32)?;
        lost += EVENTS.saturating_sub(events) as u64;
        report += &format!("cycle {index}: exit={status} events={events}\n");
    }
    let after = settle(&privcmd, before)?;
    report += &format!(
        "memory: before={before} after={after} now={}\n",
        available_pages(&privcmd)?
    );
    dom0.save("cycles.txt", &report)?;
    Counters {
        leaked_pages: Some(leaked(before, after)),
        lost_events: Some(lost),
        ..Counters::default()
    }
    .save(dom0)
}

fn on_host(view: &HostView) -> Result<()> {
    let report = view.read("cycles.txt")?;
    let cycles: Vec<&str> = report.lines().filter(|l| l.starts_with("cycle ")).collect();
    ensure!(
        cycles.len() == CYCLES,
        "{} cycles of {CYCLES}:\n{report}",
        cycles.len()
    );
    for line in &cycles {
        ensure!(
            line.ends_with(&format!(": exit=4 events={EVENTS}")),
            "a cycle went wrong (expected the listener to stop on the poweroff, exit 4, after \
             {EVENTS} events): {line}"
        );
    }
    let counters: serde_json::Value = serde_json::from_str(&view.read(Counters::FILE)?)?;
    let leaked = counters["leaked_pages"]
        .as_u64()
        .context("no leaked_pages")?;
    ensure!(
        leaked <= SLACK_PAGES,
        "{leaked} pages not given back after {CYCLES} cycles: {}",
        report.lines().last().unwrap_or("")
    );
    Ok(())
}
