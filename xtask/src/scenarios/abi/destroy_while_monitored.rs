//! `abi/destroy-while-monitored`: a monitored PV guest is destroyed while the listener still
//! maps its ring; nothing leaks and nothing is freed under the listener.
//!
//! Xen's free memory (free + still-to-scrub pages, in 4 KiB pages) is read before a guest is
//! created and after it is gone, twice: a control run without monitoring, then a run with
//! monitoring on (ring allocated by Xen, PV shadow mode on) where the scenario itself holds a
//! mapping of the ring across `xl destroy` and drops it afterwards, which is when Xen frees the
//! ring page.
//!
//! Host checks: both runs give back every page (the difference is 0).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use libxc::monitor::RingMapping;
use libxc::privcmd::Privcmd;
use libxc::sysctl::physinfo;
use libxc::xenstore::resolve_domain;

use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "abi/destroy-while-monitored",
    in_dom0,
    on_host,
};

fn available_pages(privcmd: &Privcmd) -> Result<u64> {
    let info = physinfo(privcmd)?;
    Ok(info.free_pages + info.scrub_pages)
}

/// Waits for the freed pages to come back (destruction finishes asynchronously); returns
/// the last count seen.
fn settle(privcmd: &Privcmd, expected: u64) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = available_pages(privcmd)?;
        if now == expected || Instant::now() > deadline {
            return Ok(now);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn one_run(dom0: &Dom0, privcmd: &Privcmd, name: &str, monitored: bool) -> Result<String> {
    let before = available_pages(privcmd)?;
    let guest = dom0.create_guest(&GuestConfig {
        name,
        memory_mib: 64,
        vcpus: 1,
        cmdline: "heartbeat",
    })?;
    let beat = guest.wait_for_heartbeat(0, Duration::from_secs(60))?;
    let mut ring = None;
    if monitored {
        dom0.run("listener", &["enable", "--domain", name])?;
        let domid = resolve_domain(name)?;
        ring = Some(RingMapping::map(privcmd, domid).context("mapping the ring")?);
        guest.wait_for_heartbeat(beat, Duration::from_secs(60))?;
    }
    guest.save_console()?;
    guest.destroy(Duration::from_secs(30))?;
    // The listener lets go of the ring only now, after the domain is gone.
    drop(ring);
    let after = settle(privcmd, before)?;
    Ok(format!(
        "{name}: monitored={monitored} before={before} after={after} difference={}\n",
        after as i64 - before as i64
    ))
}

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let privcmd = Privcmd::open()?;
    let mut report = one_run(dom0, &privcmd, "destroy-control", false)?;
    report += &one_run(dom0, &privcmd, "destroy-monitored", true)?;
    dom0.save("memory.txt", report)
}

fn on_host(view: &HostView) -> Result<()> {
    let report = view.read("memory.txt")?;
    let runs: Vec<&str> = report.lines().collect();
    ensure!(runs.len() == 2, "expected two runs: {report}");
    for run in runs {
        ensure!(
            run.ends_with(" difference=0"),
            "pages were not all given back: {run}"
        );
    }
    Ok(())
}
