//! `abi/enable-disable`: monitoring switched on and off three times while the guest runs.
//!
//! The test guest runs in its `heartbeat` mode (its workload again and again, a numbered
//! HEARTBEAT line now and then). Each cycle: `listener enable` (Xen allocates the ring, the
//! listener maps it through XENMEM_acquire_resource and binds its event channel), `enable`
//! again (already enabled: nothing changes), `status` (monitoring on, no listener attached
//! to the ring, the guest on a shadow pool), the guest's heartbeat advances, `listener disable`, `disable` again, `status`
//! (monitoring off, shadow pool 0 MiB: the guest is back on its own page tables), the
//! heartbeat advances again.
//!
//! Host checks: the transcript shows exactly that, three times, and the guest never crashed.

use std::time::Duration;

use anyhow::{ensure, Context, Result};

use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::transcript::{Lines, Transcript};
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "abi/enable-disable",
    in_dom0,
    on_host,
};

const GUEST: &str = "enable-disable";
const CYCLES: usize = 3;

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let guest = dom0.create_guest(&GuestConfig::heartbeat(GUEST))?;
    let mut transcript = Transcript::new(dom0, GUEST);
    let mut listener = |args: &[&str]| transcript.listener(args);
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
    transcript.save()?;
    guest.save_console()?;
    dom0.save("state.txt", dom0.run("xl", &["list", GUEST])?)?;
    result
}

fn on_host(view: &HostView) -> Result<()> {
    let transcript = view.read("transcript.txt")?;
    let mut lines = Lines::new(&transcript);
    lines.expect(&[
        "$ listener status",
        "monitoring off",
        "shadow pool: 0 MiB",
        "monitor events: mem_access",
    ])?;
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
                // `listener enable` proved the ring's event channel, then let it go.
                "ring has no listener attached (a listener died, or `listener enable` made \
                 it): `listener monitor` takes it over",
                "default access: rwx",
            ])?;
            let pool = lines.next()?;
            ensure!(
                pool.starts_with("shadow pool: ") && pool != "shadow pool: 0 MiB",
                "a monitored PV guest runs on shadows, but `{pool}`"
            );
            lines.expect(&[
                "monitor events: mem_access",
                "$ listener disable",
                "monitoring disabled",
                "$ listener disable",
                "monitoring already disabled",
                "$ listener status",
                "monitoring off",
                "shadow pool: 0 MiB",
                "monitor events: mem_access",
            ])
        };
        cycle_checks(&mut lines).with_context(|| format!("cycle {cycle}"))?;
    }
    ensure!(
        lines.at_end(),
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
