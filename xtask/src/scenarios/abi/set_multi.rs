//! `abi/set-multi`: one `XENMEM_access_op_set_access_multi` over every page of a guest.
//!
//! The test guest (16 MiB, so 4096 pages) prints its whole P2M as runs of machine frames.
//! With monitoring on, one hypercall sets an access on every one of its frames (a pattern of
//! r, rx, rw, rx2rw and n2rwx by page index); Xen takes it in chunks with hypercall
//! continuations. Every frame is then read back with get_access, the default set again (which
//! supersedes them all in O(1)) and a few frames read back as the default.
//!
//! Host checks: every page was set and read back as set; after the new default every sampled
//! page reads as the default; the guest kept running.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use libxc::memory::{
    get_mem_access_mfn, set_mem_access_mfn, set_mem_access_multi_mfn, AccessTarget,
};
use libxc::monitor::{domain_pause, domain_unpause, monitor_disable, monitor_enable};
use libxc::privcmd::Privcmd;
use libxc::xenstore::resolve_domain;
use libxc::{Access, Mfn};

use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "abi/set-multi",
    in_dom0,
    on_host,
};

const GUEST: &str = "set-multi";
const MEMORY_MIB: u32 = 16;
const PATTERN: [Access; 5] = [
    Access::R,
    Access::Rx,
    Access::Rw,
    Access::Rx2rw,
    Access::N2rwx,
];

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let guest = dom0.create_guest(&GuestConfig {
        name: GUEST,
        memory_mib: MEMORY_MIB,
        vcpus: 1,
        cmdline: "heartbeat p2m",
    })?;
    let frames: Vec<Mfn> = guest.all_frames()?.into_iter().map(Mfn).collect();
    let privcmd = Privcmd::open()?;
    let domid = resolve_domain(GUEST)?;
    let beat = guest.wait_for_heartbeat(0, Duration::from_secs(60))?;
    // Nobody answers events here: the guest stays paused while its pages are restricted,
    // else its next write would wait for an answer for good (as an HVM guest would).
    domain_pause(&privcmd, domid)?;
    monitor_enable(&privcmd, domid)?;
    let accesses: Vec<Access> = (0..frames.len())
        .map(|i| PATTERN[i % PATTERN.len()])
        .collect();
    let start = Instant::now();
    set_mem_access_multi_mfn(&privcmd, domid, &frames, &accesses)?;
    let set_seconds = start.elapsed().as_secs_f64();
    let mut wrong = Vec::new();
    for (frame, access) in frames.iter().zip(&accesses) {
        let got = get_mem_access_mfn(&privcmd, domid, Some(*frame))?;
        if got != *access {
            wrong.push(format!("mfn {frame:#x}: set {access}, read {got}"));
        }
    }
    set_mem_access_mfn(&privcmd, domid, AccessTarget::Default, Access::Rx)?;
    let sample: Vec<Mfn> = frames.iter().step_by(97).copied().collect();
    let mut after_default = Vec::new();
    for frame in &sample {
        after_default.push(get_mem_access_mfn(&privcmd, domid, Some(*frame))?);
    }
    set_mem_access_mfn(&privcmd, domid, AccessTarget::Default, Access::Rwx)?;
    monitor_disable(&privcmd, domid)?;
    domain_unpause(&privcmd, domid)?;
    let beat_after = guest.wait_for_heartbeat(beat, Duration::from_secs(60))?;
    let defaults = after_default.iter().filter(|a| **a == Access::Rx).count();
    dom0.save(
        "summary.txt",
        format!(
            "pages={}\nset={}\nread_back_wrong={}\nsampled_after_default={}\nsampled_reading_default={}\nheartbeat={beat}->{beat_after}\nset_seconds={set_seconds:.3}\n",
            frames.len(),
            accesses.len(),
            wrong.len(),
            sample.len(),
            defaults,
        ),
    )?;
    dom0.save("wrong.txt", wrong.join("\n"))?;
    guest.save_console()?;
    Ok(())
}

fn on_host(view: &HostView) -> Result<()> {
    let summary = view.read("summary.txt")?;
    let value = |key: &str| -> Option<String> {
        summary
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
    };
    let pages = MEMORY_MIB as usize * 256;
    ensure!(
        value("pages") == Some(pages.to_string()),
        "expected all {pages} pages of a {MEMORY_MIB} MiB guest: {summary}"
    );
    ensure!(value("set") == Some(pages.to_string()), "{summary}");
    ensure!(
        value("read_back_wrong").as_deref() == Some("0"),
        "frames read back wrong: {}",
        view.read("wrong.txt")?
    );
    ensure!(
        value("sampled_after_default") == value("sampled_reading_default"),
        "after a new default some frames kept their own access: {summary}"
    );
    Ok(())
}
