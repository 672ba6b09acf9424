//! `abi/enable-disable`: monitoring switched on and off three times while the guest runs.
//!
//! The test guest runs in its `heartbeat` mode (its workload again and again, a numbered
//! HEARTBEAT line now and then). Each cycle: `listener enable` (Xen allocates the ring, the
//! listener maps it through XENMEM_acquire_resource and binds its event channel), `enable`
//! again (already enabled: nothing changes), `status` (monitoring on, the guest on a shadow
//! pool), the guest's heartbeat advances, `listener disable`, `disable` again, `status`
//! (monitoring off, shadow pool 0 MiB: the guest is back on its own page tables), the
//! heartbeat advances again.
//!
//! Host checks: the transcript shows exactly that, three times, and the guest never crashed.

use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "abi/enable-disable",
    in_dom0,
    on_host,
};

const GUEST: &str = "enable-disable";
const CYCLES: usize = 3;

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let guest = dom0.create_guest(&GuestConfig {
        name: GUEST,
        memory_mib: 64,
        vcpus: 1,
        cmdline: "heartbeat",
    })?;
    let mut transcript = String::new();
    let mut listener = |args: &[&str]| -> Result<String> {
        let mut full = args.to_vec();
        full.extend(["--domain", GUEST]);
        let output = dom0.run("listener", &full);
        transcript.push_str(&format!("$ listener {}\n", args.join(" ")));
        match &output {
            Ok(text) => transcript.push_str(text),
            Err(error) => transcript.push_str(&format!("error: {error:#}\n")),
        }
        output
    };
    let result = (|| -> Result<()> {
        let mut beat = guest.wait_for_heartbeat(0, Duration::from_secs(60))?;
        listener(&["status"])?;
        for _ in 0..CYCLES {
            listener(&["enable"])?;
            listener(&["enable"])?;
            listener(&["status"])?;
            beat = guest.wait_for_heartbeat(beat, Duration::from_secs(60))?;
            listener(&["disable"])?;
            listener(&["disable"])?;
            listener(&["status"])?;
            beat = guest.wait_for_heartbeat(beat, Duration::from_secs(60))?;
        }
        Ok(())
    })();
    dom0.save("transcript.txt", &transcript)?;
    guest.save_console()?;
    dom0.save("state.txt", dom0.run("xl", &["list", GUEST])?)?;
    result
}

/// The transcript read line by line, with the `domain N: ` prefix dropped.
struct Lines<'a>(std::str::Lines<'a>);

impl Lines<'_> {
    fn next(&mut self) -> Result<&str> {
        let line = self.0.next().context("the transcript ends early")?;
        Ok(line
            .split_once(": ")
            .filter(|(head, _)| head.starts_with("domain "))
            .map_or(line, |(_, rest)| rest))
    }

    fn expect(&mut self, wanted: &[&str]) -> Result<()> {
        for wanted in wanted {
            let line = self.next()?;
            ensure!(
                line == *wanted,
                "expected `{wanted}`, the transcript says `{line}`"
            );
        }
        Ok(())
    }
}

fn on_host(view: &HostView) -> Result<()> {
    let transcript = view.read("transcript.txt")?;
    let mut lines = Lines(transcript.lines());
    lines.expect(&["$ listener status", "monitoring off", "shadow pool: 0 MiB"])?;
    for cycle in 1..=CYCLES {
        let cycle_checks = |lines: &mut Lines| -> Result<()> {
            lines.expect(&["$ listener enable"])?;
            let enabled = lines.next()?;
            ensure!(
                enabled.starts_with("monitoring enabled (ring mapped, event channel port "),
                "enable said `{enabled}`"
            );
            lines.expect(&[
                "$ listener enable",
                "monitoring already enabled",
                "$ listener status",
                "monitoring on",
                "default access: rwx",
            ])?;
            let pool = lines.next()?;
            ensure!(
                pool.starts_with("shadow pool: ") && pool != "shadow pool: 0 MiB",
                "a monitored PV guest runs on shadows, but `{pool}`"
            );
            lines.expect(&[
                "$ listener disable",
                "monitoring disabled",
                "$ listener disable",
                "monitoring already disabled",
                "$ listener status",
                "monitoring off",
                "shadow pool: 0 MiB",
            ])
        };
        cycle_checks(&mut lines).with_context(|| format!("cycle {cycle}"))?;
    }
    ensure!(
        lines.0.next().is_none(),
        "the transcript goes on after {CYCLES} cycles"
    );
    let console = view.read("guest-console.log")?;
    ensure!(
        !console.contains("TEST-GUEST FAIL") && !console.contains("TEST-GUEST PANIC"),
        "the guest reported a failure"
    );
    let state = view.read("state.txt")?;
    ensure!(!state.contains("---sc-"), "the guest crashed: {state}");
    Ok(())
}
