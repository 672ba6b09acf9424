//! `compat/pfn-refused`: a tool that calls `XENMEM_access_op` on a PV guest the HVM way
//! (frame numbers without `XENMEM_access_op_mfn`, as Xen 4.17's libxenctrl does) is refused
//! with `EOPNOTSUPP`, and nothing changes: its pfn is never taken for a machine frame.
//!
//! On a running guest, without a monitor ring and with one: set_access of the default, of a
//! buffer page by its pfn and by its mfn, get_access, set_access_multi, each without the
//! flag. Around them the default and the page's access are read back the PV way; the same
//! set_access with the flag then works (the flag is the only difference).
//!
//! Host checks: every call without the flag failed with EOPNOTSUPP, the rights read the
//! same before and after, the call with the flag took effect, the guest kept running.

use std::fmt::Write;
use std::time::Duration;

use anyhow::{ensure, Result};
use libxc::memory::{
    get_access, get_mem_access_mfn, set_access_multi, set_mem_access_mfn, set_mem_access_raw,
    AccessTarget,
};
use libxc::monitor::{monitor_disable, monitor_enable};
use libxc::privcmd::Privcmd;
use libxc::xenstore::resolve_domain;
use libxc::{Access, DomId, Gfn, Mfn};

use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "compat/pfn-refused",
    in_dom0,
    on_host,
};

const GUEST: &str = "pfn-refused";
use crate::scenarios::events::trace::BUFFER_PFN;

/// The rights the PV way: the default and buffer page 0's.
fn rights(privcmd: &Privcmd, domid: DomId, mfn: Mfn) -> Result<(Access, Access)> {
    Ok((
        get_mem_access_mfn(privcmd, domid, None)?,
        get_mem_access_mfn(privcmd, domid, Some(mfn))?,
    ))
}

/// Each call the HVM way, one report line each: `<call> errno=<name>` (or `ok`).
///
/// Each names its frame as an HVM guest's ([`Gfn`]): the guest's pfn, and (on purpose, to
/// see Xen refuse it) the machine frame's number taken for a gfn.
fn hvm_style_calls(privcmd: &Privcmd, domid: DomId, mfn: Mfn, report: &mut String) {
    let (pfn, mfn_as_gfn) = (Gfn(BUFFER_PFN), Gfn(mfn.0));
    let outcomes = [
        (
            "set_access default",
            set_mem_access_raw::<Gfn>(privcmd, domid, AccessTarget::Default, Access::R as u8),
        ),
        (
            "set_access pfn",
            set_mem_access_raw(privcmd, domid, AccessTarget::frame(pfn), Access::R as u8),
        ),
        (
            "set_access mfn",
            set_mem_access_raw(
                privcmd,
                domid,
                AccessTarget::frame(mfn_as_gfn),
                Access::R as u8,
            ),
        ),
        (
            "get_access default",
            get_access::<Gfn>(privcmd, domid, None).map(drop),
        ),
        (
            "get_access pfn",
            get_access(privcmd, domid, Some(pfn)).map(drop),
        ),
        (
            "set_access_multi pfn",
            set_access_multi(privcmd, domid, &[pfn], &[Access::R]),
        ),
    ];
    for (call, outcome) in outcomes {
        let _ = match outcome {
            Ok(()) => writeln!(report, "{call} ok"),
            Err(error) => writeln!(
                report,
                "{call} errno={}",
                error
                    .errno
                    .map(|errno| format!("{errno:?}"))
                    .unwrap_or_default()
            ),
        };
    }
}

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let guest = dom0.create_guest(&GuestConfig::heartbeat(GUEST))?;
    let mfn = Mfn(guest.frames()?[0]);
    let beat = guest.wait_for_heartbeat(0, Duration::from_secs(60))?;
    let privcmd = Privcmd::open()?;
    let domid = resolve_domain(GUEST)?;
    let mut report = String::new();
    let before = rights(&privcmd, domid, mfn)?;
    writeln!(report, "before default={} page={}", before.0, before.1)?;
    writeln!(report, "without a ring")?;
    hvm_style_calls(&privcmd, domid, mfn, &mut report);
    monitor_enable(&privcmd, domid)?;
    writeln!(report, "with a ring")?;
    hvm_style_calls(&privcmd, domid, mfn, &mut report);
    let after = rights(&privcmd, domid, mfn)?;
    writeln!(report, "after default={} page={}", after.0, after.1)?;
    // The flag is the only difference: the same call, naming the mfn as one, is taken.
    let page = AccessTarget::frame(mfn);
    set_mem_access_mfn(&privcmd, domid, page, Access::Rw)?;
    let flagged = get_mem_access_mfn(&privcmd, domid, Some(mfn))?;
    writeln!(report, "with the flag page={flagged}")?;
    set_mem_access_mfn(&privcmd, domid, page, Access::Rwx)?;
    monitor_disable(&privcmd, domid)?;
    let running = guest
        .wait_for_heartbeat(beat, Duration::from_secs(60))
        .is_ok();
    writeln!(report, "guest running={running}")?;
    guest.destroy(Duration::from_secs(30))?;
    dom0.save("calls.txt", report)
}

fn on_host(view: &HostView) -> Result<()> {
    let report = view.read("calls.txt")?;
    let calls: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("set_") || line.starts_with("get_"))
        .collect();
    ensure!(calls.len() == 12, "expected 12 calls:\n{report}");
    for call in &calls {
        ensure!(
            call.ends_with(" errno=EOPNOTSUPP"),
            "a call without XENMEM_access_op_mfn was not refused with EOPNOTSUPP: {call}\n{report}"
        );
    }
    let line = |prefix: &str| {
        report
            .lines()
            .find(|line| line.starts_with(prefix))
            .map(|line| line[prefix.len()..].to_string())
    };
    ensure!(
        line("before ") == line("after "),
        "the refused calls changed the rights:\n{report}"
    );
    ensure!(
        line("with the flag ").as_deref() == Some("page=rw"),
        "the call with the flag did not take effect:\n{report}"
    );
    ensure!(
        line("guest ").as_deref() == Some("running=true"),
        "the guest stopped:\n{report}"
    );
    Ok(())
}
