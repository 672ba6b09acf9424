//! `XENMEM_access_op` from dom0, timed there, [`REPEAT`] times each: a new default of r
//! (which rebuilds the guest's shadows), a frame relaxed (which changes none), a frame
//! restricted (which changes only that frame's entries, patch 0019), with what Xen's perf
//! counters say the shadow code did for them. Those counts are what Xen did, not timings:
//! the host half checks them ([`check`]).

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use libxc::memory::{set_mem_access_mfn, AccessTarget};
use libxc::monitor::{monitor_disable, monitor_enable};
use libxc::privcmd::Privcmd;
use libxc::xenstore::resolve_domain;
use libxc::{Access, Mfn};

use super::measurements::{AccessOps, OpCost};
use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::{perf_counters, Dom0};

/// Calls of each kind.
pub const REPEAT: u32 = 50;

/// Measures `REPEAT` calls of `call`, each after an untimed `prepare`.
fn op_cost(
    dom0: &Dom0,
    mut prepare: impl FnMut() -> Result<()>,
    mut call: impl FnMut() -> Result<()>,
) -> Result<OpCost> {
    let mut total = Duration::ZERO;
    let mut cost = OpCost::default();
    for _ in 0..REPEAT {
        prepare()?;
        let before = perf_counters::read(dom0)?;
        let start = Instant::now();
        call()?;
        total += start.elapsed();
        let after = perf_counters::read(dom0)?;
        let growth = |name| perf_counters::growth(&before, &after, name);
        cost.revokes += growth(perf_counters::REVOKES)?;
        cost.revoked_entries += growth(perf_counters::REVOKED_ENTRIES)?;
        cost.blows += growth(perf_counters::BLOWS)?;
    }
    cost.mean_us = total.as_secs_f64() * 1e6 / f64::from(REPEAT);
    Ok(cost)
}

/// The calls' costs, on a guest that runs (so shadows exist).
pub fn measure(dom0: &Dom0) -> Result<AccessOps> {
    const NAME: &str = "bench-access-op";
    let guest = dom0.create_guest(&GuestConfig::heartbeat(NAME))?;
    let frames = guest.frames()?;
    guest.wait_for_heartbeat(0, Duration::from_secs(60))?;
    let privcmd = Privcmd::open()?;
    let domain = resolve_domain(NAME)?;
    // A ring nobody answers: the guest's first write the rights forbid pauses it for good
    // (until the ring goes), so its own faults stay out of the counts and its shadows stay
    // as they were. Without a ring and with every right back at rwx, Xen would leave the
    // mem_access mode and refuse the calls (ENODEV).
    monitor_enable(&privcmd, domain)?;
    let frame = AccessTarget::frame(Mfn(frames[0]));
    let set = |target, access| -> Result<()> {
        Ok(set_mem_access_mfn(&privcmd, domain, target, access)?)
    };
    // A new default of r takes rights from every frame: the shadows are rebuilt.
    let default_r = op_cost(
        dom0,
        || set(AccessTarget::Default, Access::Rwx),
        || set(AccessTarget::Default, Access::R),
    );
    let _ = set(AccessTarget::Default, Access::Rwx);
    // r -> rwx only adds rights: nothing to do. rwx -> r takes write away from that
    // frame's shadow entries, and from no others.
    let relax_one = op_cost(dom0, || set(frame, Access::R), || set(frame, Access::Rwx));
    let restrict_one = op_cost(dom0, || set(frame, Access::Rwx), || set(frame, Access::R));
    let _ = set(AccessTarget::Default, Access::Rwx);
    // Removing the ring releases the vCPU it paused (patch 0002).
    monitor_disable(&privcmd, domain)?;
    guest.destroy(Duration::from_secs(30))?;
    Ok(AccessOps {
        repeat: u64::from(REPEAT),
        default_r: default_r?,
        relax_one: relax_one?,
        restrict_one: restrict_one?,
    })
}

/// What Xen must have done, counted by Xen: each restriction searched for that frame's
/// entries and blew nothing; a relaxation did nothing; each new default of r blew the
/// shadows.
pub fn check(ops: &AccessOps) -> Result<()> {
    let repeat = ops.repeat;
    let counted = [
        ("restrict", "revokes", ops.restrict_one.revokes, repeat),
        ("restrict", "blows", ops.restrict_one.blows, 0),
        ("relax", "revokes", ops.relax_one.revokes, 0),
        ("relax", "blows", ops.relax_one.blows, 0),
        ("default", "revokes", ops.default_r.revokes, 0),
        ("default", "blows", ops.default_r.blows, repeat),
    ];
    for (op, what, counted, expected) in counted {
        ensure!(
            counted == expected,
            "{repeat} {op} calls: {what} {counted} (expected {expected})"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(restrict_blows: u64) -> AccessOps {
        AccessOps {
            repeat: 50,
            default_r: OpCost {
                blows: 50,
                ..OpCost::default()
            },
            relax_one: OpCost::default(),
            restrict_one: OpCost {
                revokes: 50,
                revoked_entries: 50,
                blows: restrict_blows,
                ..OpCost::default()
            },
        }
    }

    #[test]
    fn counts_are_checked_against_what_each_call_must_do() {
        assert!(check(&ops(0)).is_ok());
        let error = check(&ops(1)).unwrap_err().to_string();
        assert!(error.contains("restrict calls: blows 1"), "{error}");
    }
}
