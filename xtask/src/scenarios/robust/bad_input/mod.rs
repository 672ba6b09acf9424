//! `robust/bad-input`: callers that get the control interface wrong get a clear error, and
//! nothing changes.
//!
//! Two callers. dom0 (`dom0_rows`): a table of wrong calls of `XENMEM_access_op` (every
//! op: set_access, get_access, set_access_multi, and invalid ones), the monitor and
//! vm_event domctls (ATTACH included) and `XENMEM_acquire_resource` of the ring type,
//! against the test guest (without and with its monitor ring), dom0 itself, another guest,
//! special and nonexistent domains; each with the errno read from Xen's source (the
//! deciding function named in each row's comment). Before and after each call dom0 reads
//! back what must not change (`state`): default access, one frame's access, ring and
//! listener, shadow pool, of both guests. Then an unprivileged guest (`from_guest`) makes
//! the same kinds of calls against itself, dom0, the monitored guest and nobody.
//!
//! Host checks: every row got its errno with nothing changed, at least 100 rows (60 of them
//! the guest's), the test guest's heartbeat went on, the unprivileged guest finished its
//! pattern, and its monitor ring is gone with its shadow pool back to 0.

mod dom0_rows;
mod from_guest;
mod state;
mod table;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use libxc::access::Access;
use libxc::evtchn::Evtchn;
use libxc::memory::{set_mem_access_mfn, AccessTarget};
use libxc::monitor::{monitor_disable, monitor_enable, shadow_allocation_mib, RingMapping};
use libxc::privcmd::Privcmd;
use libxc::xenstore::resolve_domain;
use libxc::{DomId, Mfn};
use test_guest::patterns::{Pattern, PatternDone, Ready};

use super::counts::{RobustCounts, ROBUST_FILE};
use super::raw::{self as r};
use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::{Dom0, HostView, Scenario};
use state::{snapshot, Checker, Watched};
use table::Table;

pub const SCENARIO: Scenario = Scenario {
    name: "robust/bad-input",
    in_dom0,
    on_host,
};

const GUEST: &str = "bad-input";
const OTHER: &str = "bad-input-other";
const HOSTILE: &str = "bad-input-hostile";
const CALLS_FILE: &str = "calls.txt";

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let privcmd = Privcmd::open()?;
    // `p2m` prints every frame: the last one is a frame the guest never touches, whose
    // access can be set to r and read back without stopping the guest.
    let guest = dom0.create_guest(&GuestConfig {
        cmdline: "p2m heartbeat",
        ..GuestConfig::heartbeat(GUEST)
    })?;
    let other = dom0.create_guest(&GuestConfig {
        name: OTHER,
        memory_mib: 32,
        vcpus: 1,
        cmdline: "heartbeat",
    })?;
    let domid = resolve_domain(GUEST)?;
    let other_id = resolve_domain(OTHER)?;
    let own_frame = *guest
        .all_frames()?
        .last()
        .context("the guest has no frames")?;
    let other_frame = other.frames()?[0];
    let mut beat = guest.wait_for_heartbeat(0, Duration::from_secs(60))?;
    let mut c = Checker {
        privcmd: &privcmd,
        watched: vec![
            Watched {
                domain: domid,
                frame: own_frame,
            },
            Watched {
                domain: other_id,
                frame: other_frame,
            },
        ],
        table: Table::default(),
    };
    dom0_rows::special_domains(&mut c);
    dom0_rows::unmonitored(&mut c, domid, own_frame);

    let port = monitor_enable(&privcmd, domid)?;
    set_mem_access_mfn(
        &privcmd,
        domid,
        AccessTarget::frame(Mfn(own_frame)),
        Access::R,
    )?;
    let ring = RingMapping::map(&privcmd, domid)?;
    let evtchn = Evtchn::open()?;
    let local = evtchn.bind_interdomain(domid, port)?;
    // vm_event_attach: a listener's channel is bound.
    c.row("vm_event attach, a listener bound", &[r::EBUSY], |p| {
        r::vm_event(p, domid, r::ATTACH, r::MONITOR)
    });
    let frames = dom0_rows::Frames {
        own: own_frame,
        other: other_frame,
        ring: ring.frame.0,
    };
    dom0_rows::monitored(&mut c, domid, other_id, &frames);
    drop(other);

    // The unprivileged guest, against the monitored guest as "other", its listener bound.
    let guest_rows = hostile_guest(dom0, &privcmd, domid, own_frame)?;

    evtchn.unbind(local)?;
    // vm_event_attach: the listener went: the ring's port, nothing changed.
    c.watched.truncate(1);
    c.row_where(
        "vm_event attach, listener gone: the ring's port",
        &[0],
        |p| r::vm_event(p, domid, r::ATTACH, r::MONITOR),
        |attached| attached == u64::from(port.0),
    );
    drop(ring);

    // Rights stay in force without a ring (patch 0017), and shadows with them: the frame
    // set to r goes back to the default rwx first.
    set_mem_access_mfn(&privcmd, domid, AccessTarget::Default, Access::Rwx)?;
    monitor_disable(&privcmd, domid)?;
    let shadow = shadow_allocation_mib(&privcmd, domid)?;
    dom0_rows::after_the_ring(&mut c, domid, own_frame);

    let mut table = c.table;
    table.rows.extend(guest_rows);
    dom0.save(CALLS_FILE, table.text())?;
    let counts = RobustCounts {
        bad_inputs: table.rows.len() as u64,
        ..RobustCounts::default()
    };
    dom0.save(ROBUST_FILE, counts.to_json())?;
    ensure!(
        shadow == 0,
        "the shadow pool is {shadow} MiB after disabling"
    );
    beat = guest.wait_for_heartbeat(beat, Duration::from_secs(60))?;
    dom0.save("heartbeat.txt", format!("{beat}\n"))?;
    guest.save_console()?;
    Ok(())
}

/// Runs the `hostile-calls` pattern in a third guest; its rows.
fn hostile_guest(
    dom0: &Dom0,
    privcmd: &Privcmd,
    monitored: DomId,
    monitored_frame: u64,
) -> Result<Vec<table::Row>> {
    let hostile = dom0.create_guest(&GuestConfig {
        name: HOSTILE,
        memory_mib: 32,
        vcpus: 1,
        cmdline: "pattern=hostile-calls",
    })?;
    let hostile_id = resolve_domain(HOSTILE)?;
    let go_pfn = hostile.wait_for::<Ready>(Duration::from_secs(60))?.go_pfn;
    let hostile_frame = hostile.frames()?[0];
    let watched = [
        Watched {
            domain: monitored,
            frame: monitored_frame,
        },
        Watched {
            domain: hostile_id,
            frame: hostile_frame,
        },
    ];
    let before = snapshot(privcmd, &watched);
    from_guest::release(
        privcmd,
        hostile_id,
        go_pfn,
        [
            u64::from(hostile_id.0),
            u64::from(monitored.0),
            monitored_frame,
        ],
    )?;
    let done = hostile.wait_for::<PatternDone>(from_guest::CALLS_TIMEOUT);
    dom0.save("hostile-console.log", hostile.console())?;
    let done = done?;
    let expected = PatternDone {
        pattern: Pattern::HostileCalls,
        touches: 1,
    };
    ensure!(
        done == expected,
        "the unprivileged guest ended its pattern with {done}, not {expected}"
    );
    let after = snapshot(privcmd, &watched);
    from_guest::rows(&hostile.console(), before == after)
}

fn on_host(view: &HostView) -> Result<()> {
    let rows = table::parse_all(&view.read(CALLS_FILE)?)?;
    let from_guest = rows
        .iter()
        .filter(|row| row.name.starts_with("guest: "))
        .count();
    ensure!(rows.len() >= 100, "only {} bad calls were made", rows.len());
    ensure!(
        from_guest >= 60,
        "only {from_guest} calls came from the guest"
    );
    let wrong: Vec<String> = rows
        .iter()
        .filter(|row| !row.passes())
        .map(|row| row.line(0))
        .collect();
    ensure!(
        wrong.is_empty(),
        "calls with the wrong outcome or a change:\n{}",
        wrong.join("\n")
    );
    let later: Vec<String> = rows
        .iter()
        .filter(|row| row.answers_the_later_way())
        .map(|row| row.name.clone())
        .collect();
    view.save_note(
        "answered-the-later-way.txt",
        &(later.join("\n") + if later.is_empty() { "" } else { "\n" }),
    )?;
    for console in ["guest-console.log", "hostile-console.log"] {
        ensure!(
            !view.read(console)?.contains("TEST-GUEST FAIL"),
            "{console}: the guest reported a failure"
        );
    }
    Ok(())
}
