//! `abi/destroy-while-monitored`: a monitored PV guest is destroyed while the listener still
//! maps its ring; nothing leaks and nothing is freed under the listener.
//!
//! Xen's free memory (free + still-to-scrub pages, in 4 KiB pages) is read before and after
//! four guests come and go, for two kinds of guest (after an unmeasured warm-up guest, since
//! the first guest of a boot makes Xen and dom0 grow tables they keep): a control run without monitoring, then a run with
//! monitoring on (ring allocated by Xen, PV shadow mode on, access set on the guest's buffer
//! frames so the access tracker has a table) where the scenario itself holds a mapping of the
//! ring across `xl destroy` and drops it afterwards, which is when Xen frees the ring page.
//!
//! Host checks: both kinds give back every page, up to two pages Xen or dom0 may keep for good
//! whatever the guest (a leak of one page per guest would show as four or more).

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use libxc::memory::set_mem_access_multi_mfn;
use libxc::monitor::RingMapping;
use libxc::privcmd::Privcmd;
use libxc::sysctl::physinfo;
use libxc::xenstore::resolve_domain;
use libxc::{Access, Mfn};

use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "abi/destroy-while-monitored",
    in_dom0,
    on_host,
};

pub(crate) fn available_pages(privcmd: &Privcmd) -> Result<u64> {
    let info = physinfo(privcmd)?;
    Ok(info.free_pages + info.scrub_pages)
}

/// Waits for the freed pages to come back (destruction finishes asynchronously): until the
/// count is back to `expected` (or above), or has not moved for two seconds; returns the
/// last count.
pub(crate) fn settle(privcmd: &Privcmd, expected: u64) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = available_pages(privcmd)?;
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(250));
        let now = available_pages(privcmd)?;
        if now != last {
            last = now;
            since = Instant::now();
        }
        if last >= expected || since.elapsed() > Duration::from_secs(2) || Instant::now() > deadline
        {
            return Ok(last);
        }
    }
}

/// Creates a guest, runs it (monitored or not), destroys it.
fn one_guest(dom0: &Dom0, privcmd: &Privcmd, name: &str, monitored: bool) -> Result<()> {
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
        // Entries in the tracker, so its table exists when the domain dies.
        let frames: Vec<Mfn> = guest.frames()?.into_iter().map(Mfn).collect();
        let accesses = vec![Access::Rx; frames.len()];
        set_mem_access_multi_mfn(privcmd, domid, &frames, &accesses)?;
        guest.wait_for_heartbeat(beat, Duration::from_secs(60))?;
    }
    guest.save_console()?;
    guest.destroy(Duration::from_secs(30))?;
    // The listener lets go of the ring only now, after the domain is gone.
    drop(ring);
    Ok(())
}

/// Pages lost over `RUNS` guests of one kind (negative: not given back).
fn runs(dom0: &Dom0, privcmd: &Privcmd, monitored: bool) -> Result<String> {
    let kind = if monitored { "monitored" } else { "control" };
    let before = settle(privcmd, 0)?;
    for run in 0..RUNS {
        one_guest(dom0, privcmd, &format!("destroy-{kind}-{run}"), monitored)?;
    }
    let after = settle(privcmd, before)?;
    Ok(format!(
        "{kind}: runs={RUNS} before={before} after={after} difference={}\n",
        after as i64 - before as i64
    ))
}

/// Guests per kind: a leak of even one page per guest shows as at least `RUNS` pages, well
/// beyond [`SLACK`].
const RUNS: usize = 4;
/// Pages Xen or dom0 may keep for good as guests come and go (a grant maptrack frame, an
/// event channel bucket), whatever the kind of guest.
const SLACK: i64 = 2;

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let privcmd = Privcmd::open()?;
    // The first guest (and the first ring) of a boot makes Xen and dom0 grow tables they keep:
    // warm up once, unmeasured.
    one_guest(dom0, &privcmd, "destroy-warm-up", true)?;
    let mut report = runs(dom0, &privcmd, false)?;
    report += &runs(dom0, &privcmd, true)?;
    dom0.save("memory.txt", report)
}

fn on_host(view: &HostView) -> Result<()> {
    let report = view.read("memory.txt")?;
    let kinds: Vec<&str> = report.lines().collect();
    ensure!(
        kinds.len() == 2,
        "expected a control and a monitored line: {report}"
    );
    for line in kinds {
        let difference: i64 = line
            .rsplit("difference=")
            .next()
            .and_then(|n| n.trim().parse().ok())
            .with_context(|| format!("no difference in {line:?}"))?;
        ensure!(
            difference >= -SLACK,
            "pages were not given back ({RUNS} guests, {SLACK} pages of slack): {line}"
        );
    }
    Ok(())
}
