//! `abi/ring-unreachable`: a guest cannot map a monitor ring by any route.
//!
//! The ring of a PV domain is a page Xen owns (`DOMID_XEN`). Guest A is monitored; guest B
//! is started with A's ring frame on its command line (`ring-probe ring=0x...`) and is
//! monitored too, then tries every route a PV guest has to map a frame: `update_va_mapping`,
//! `mmu_update` (as itself and with `DOMID_XEN` as the foreign domain), pinning it as a page
//! table, and grant mapping. Each route prints `TEST-GUEST PROBE <route> rc=<rc>
//! mapped=<yes|no>`. (A guest cannot learn its own ring's frame before the ring exists; every
//! ring page is owned by dom_xen and refused by the same ownership checks.)
//!
//! Host checks: every route failed and nothing was mapped; the rings still work (the
//! listener maps them again afterwards); no guest crashed.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use libxc::monitor::RingMapping;
use libxc::privcmd::Privcmd;
use libxc::xenstore::resolve_domain;

use test_guest::lines::{self, Line};
use test_guest::probe::{Outcome, ProbesDone};

use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "abi/ring-unreachable",
    in_dom0,
    on_host,
};

/// The routes the guest must report, with the error Xen 4.17 gives each (read from its
/// source before the first run).
const ROUTES: [(&str, i32); 5] = [
    // mod_l1_entry -> get_page_from_l1e: the real owner (dom_xen) is neither the guest nor a
    // domain it may map from.
    ("update_va_mapping", -16),
    // do_mmu_update, same check.
    ("mmu_update", -16),
    // do_mmu_update: xsm_mmu_update refuses DOMID_XEN as the foreign domain of a domU.
    ("mmu_update-foreign-xen", -1),
    // MMUEXT_PIN_L1_TABLE: the frame is not the guest's own.
    ("mmuext-pin", -22),
    // map_grant_ref: dom0 granted nothing (GNTST_general_error).
    ("grant-map", -1),
];

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let privcmd = Privcmd::open()?;
    let a = dom0.create_guest(&GuestConfig {
        name: "ring-owner",
        memory_mib: 32,
        vcpus: 1,
        cmdline: "heartbeat",
    })?;
    a.wait_for_heartbeat(0, Duration::from_secs(60))?;
    dom0.run("listener", &["enable", "--domain", "ring-owner"])?;
    let ring = RingMapping::map(&privcmd, resolve_domain("ring-owner")?)?.frame;
    let cmdline = format!("ring-probe ring={ring:#x} heartbeat");
    let b = dom0.create_guest(&GuestConfig {
        name: "ring-prober",
        memory_mib: 32,
        vcpus: 1,
        cmdline: &cmdline,
    })?;
    dom0.run("listener", &["enable", "--domain", "ring-prober"])?;
    let done = b.wait_for::<ProbesDone>(Duration::from_secs(120));
    b.save_console()?;
    done?;
    // Both rings still map for the listener.
    for name in ["ring-owner", "ring-prober"] {
        RingMapping::map(&privcmd, resolve_domain(name)?)
            .with_context(|| format!("mapping the ring of {name} after the probes"))?;
        dom0.run("listener", &["disable", "--domain", name])?;
    }
    dom0.save("state.txt", dom0.run("xl", &["list"])?)?;
    drop(a);
    Ok(())
}

fn on_host(view: &HostView) -> Result<()> {
    let console = view.read("guest-console.log")?;
    for (route, rc) in ROUTES {
        let line = lines::bodies(&console)
            .filter_map(Outcome::parse)
            .find(|outcome| outcome.route.name() == route)
            .with_context(|| format!("the guest did not report the route {route}"))?;
        ensure!(!line.mapped, "the guest mapped the ring: {line}");
        ensure!(
            line.rc == i64::from(rc),
            "expected rc={rc} (see the table in this file): {line}"
        );
    }
    let state = view.read("state.txt")?;
    ensure!(!state.contains("---sc-"), "a guest crashed: {state}");
    Ok(())
}
