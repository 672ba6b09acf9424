//! `boot`: the road itself. Our Xen build boots with Debian's dom0, the toolstack runs, and
//! the Rust test guest (PV, 64 MiB, one vCPU) starts, prints its banner, writes and reads back
//! its buffer pages, prints `TEST-GUEST DONE <checksum>` and powers off.
//!
//! Host checks: the Rust module linked into Xen announced itself exactly once; the banner
//! shows one vCPU and the command line we gave; the checksum is the
//! one the guest's own workload definition predicts; the guest powered off (not crashed);
//! Xen announces this project's version string on the serial console and `xl info` shows it.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use test_guest::lines::{Banner, Done, Line};

use super::dom0::GuestConfig;
use super::{Dom0, HostView, Scenario};
use crate::layout::XEN_EXTRA_VERSION;

pub const SCENARIO: Scenario = Scenario {
    name: "boot",
    in_dom0,
    on_host,
};

const CMDLINE: &str = "boot-scenario";

fn in_dom0(dom0: &Dom0) -> Result<()> {
    dom0.save("xl-info.txt", dom0.run("xl", &["info"])?)?;
    let guest = dom0.create_guest(&GuestConfig {
        name: "boot",
        memory_mib: 64,
        vcpus: 1,
        cmdline: CMDLINE,
    })?;
    let waited = guest.wait_for::<Done>(Duration::from_secs(120));
    let shutdown = waited.and_then(|_| guest.wait_for_shutdown(Duration::from_secs(60)));
    guest.save_console()?;
    dom0.save("shutdown.txt", shutdown?.as_str())?;
    Ok(())
}

fn on_host(view: &HostView) -> Result<()> {
    let console = view.read("guest-console.log")?;
    let banner = Banner::find(&console).context("the guest printed no banner")?;
    let expected = Banner {
        vcpus: 1,
        cmdline: CMDLINE.as_bytes(),
    };
    ensure!(banner == expected, "unexpected banner: {banner}");
    let done = Done::find(&console).context("the guest printed no DONE line")?;
    let expected = test_guest::workload::expected_checksum();
    ensure!(
        done.checksum == expected,
        "the guest's checksum is {:016x}, its workload predicts {expected:016x}",
        done.checksum
    );
    let shutdown = view.read("shutdown.txt")?;
    ensure!(
        shutdown == "poweroff",
        "the guest ended by {shutdown}, not poweroff"
    );
    let serial = view.serial()?;
    let banners = serial
        .lines()
        .filter(|line| line.contains("pv-mem-access: rust module"))
        .count();
    ensure!(
        banners == 1 && serial.contains(hypervisor_patch::BANNER),
        "the serial log has {banners} Rust module banner(s), expected one `{}`",
        hypervisor_patch::BANNER
    );
    ensure!(
        serial.contains(&format!("Xen version 4.17{XEN_EXTRA_VERSION} ")),
        "the serial log does not show Xen announcing version 4.17{XEN_EXTRA_VERSION}"
    );
    let info = view.read("xl-info.txt")?;
    let version = info
        .lines()
        .find(|line| line.starts_with("xen_extra"))
        .context("xl info printed no xen_extra")?;
    ensure!(
        version.split(':').nth(1).map(str::trim) == Some(XEN_EXTRA_VERSION),
        "xl info does not show our version string {XEN_EXTRA_VERSION}: {version}"
    );
    Ok(())
}
