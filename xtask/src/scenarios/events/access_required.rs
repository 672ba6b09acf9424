//! `events/access-required`: violations with no listener, as `p2m_mem_access_check` handles
//! them. Monitoring is enabled, the buffer pages set read-only, access_required set, and
//! monitoring disabled again: the rights stay in force without a ring (as an HVM p2m's do).
//! Then the guest runs its write sweep.
//!
//! - access_required on: the first write crashes the domain; the guest reports no touch.
//! - access_required off: every write relaxes its page to rwx silently; the guest finishes,
//!   and the pages read back rwx.
//!
//! Host checks: the crash and Xen's reason on the serial log; the finished sweep and the
//! relaxed pages; no event could be sent (no ring).

use std::time::Duration;

use anyhow::{ensure, Result};
use test_guest::patterns::{PatternDone, Ready};

use super::run::{release, GO};
use super::trace::{Account, BUFFER_PAGES, BUFFER_PFN};
use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "events/access-required",
    in_dom0,
    on_host,
};

/// One guest: restricted, access_required `required`, unmonitored, released.
fn run(dom0: &Dom0, name: &str, required: &str) -> Result<()> {
    let guest = dom0.create_guest(&GuestConfig {
        name,
        memory_mib: 64,
        vcpus: 1,
        cmdline: "pattern=write-sweep",
    })?;
    let go_pfn = guest.wait_for::<Ready>(Duration::from_secs(60))?.go_pfn;
    let mut report = String::new();
    let mut listener = |args: &[&str]| -> Result<()> {
        let mut all = args.to_vec();
        all.extend(["--domain", name]);
        report += &format!("$ listener {}\n", args.join(" "));
        report += &dom0.run("listener", &all)?;
        Ok(())
    };
    listener(&["enable"])?;
    let pages: Vec<String> = (0..BUFFER_PAGES)
        .map(|page| format!("{:#x}", BUFFER_PFN + page))
        .collect();
    let mut set = vec!["set-access"];
    for pfn in &pages {
        set.extend(["--pfn", pfn]);
    }
    set.push("r");
    listener(&set)?;
    listener(&["access-required", required])?;
    listener(&["disable"])?;
    release(name, go_pfn, GO)?;
    let ending = if required == "on" {
        format!(
            "shutdown={}\n",
            guest.wait_for_shutdown(Duration::from_secs(120))?.as_str()
        )
    } else {
        guest.wait_for::<PatternDone>(Duration::from_secs(120))?;
        // XENMEM_access_op needs a ring (for HVM too): enable again to read back.
        listener(&["enable"])?;
        listener(&["get-access", "--pfn", &pages[0], "--pfn", &pages[15]])?;
        listener(&["disable"])?;
        "finished\n".to_string()
    };
    dom0.save(&format!("{name}.txt"), report + &ending)?;
    dom0.save(&format!("{name}-console.log"), guest.console())?;
    dom0.save(
        &format!("{name}-domid.txt"),
        libxc::xenstore::resolve_domain(name)?.0.to_string(),
    )?;
    guest.destroy(Duration::from_secs(30))
}

fn in_dom0(dom0: &Dom0) -> Result<()> {
    run(dom0, "required", "on")?;
    run(dom0, "not-required", "off")
}

fn on_host(view: &HostView) -> Result<()> {
    let crashed = view.read("required.txt")?;
    ensure!(
        crashed.ends_with("shutdown=crash\n"),
        "with access_required the guest was not crashed:\n{crashed}"
    );
    let account = Account::parse(&view.read("required-console.log")?)?;
    ensure!(
        account.touches.is_empty() && !account.done,
        "the guest wrote a read-only page with access_required and no listener"
    );
    let domid = view.read("required-domid.txt")?;
    let serial = view.serial()?;
    let reason = format!("no listener: crashing d{}", domid.trim());
    ensure!(
        serial.contains(&reason),
        "Xen did not say why it crashed the guest ({reason:?})"
    );

    let relaxed = view.read("not-required.txt")?;
    let account = Account::parse(&view.read("not-required-console.log")?)?;
    ensure!(
        account.done && account.touches.len() == BUFFER_PAGES as usize,
        "without access_required the sweep did not finish: {} touches",
        account.touches.len()
    );
    let accesses: Vec<&str> = relaxed
        .lines()
        .skip_while(|line| !line.starts_with("$ listener get-access"))
        .skip(1)
        .take_while(|line| !line.starts_with('$'))
        .filter_map(|line| line.split_whitespace().last())
        .collect();
    ensure!(
        accesses == ["rwx", "rwx"],
        "the written pages were not relaxed to rwx:\n{relaxed}"
    );
    let domid = view.read("not-required-domid.txt")?;
    // The ring went before the run, so the fault counts printed when it came back and went
    // again are those of the run: 16 pages relaxed, nothing reported.
    let prefix = format!("pv-mem-access: d{} faults: ", domid.trim());
    let counts: Vec<&str> = serial
        .lines()
        .filter_map(|line| Some(line.split_once(&prefix)?.1.trim()))
        .collect();
    ensure!(
        counts
            .last()
            .is_some_and(|last| last.starts_with("0 reported, 16 relaxed, ")),
        "fault counts of the run without a listener: {counts:?}"
    );
    Ok(())
}
