//! Whether access changes cost more on a bigger guest: the same changes on a 64 MiB and a
//! 768 MiB guest, each followed by the guest's timed sweep of its 16 buffer pages
//! (`pattern=bench-sweep`, one phase per change), so the rebuild faults a change causes are
//! part of its cost.
//!
//! The changes use `rx2rw`, which Xen converts to rw on the first write without an event:
//! the guests need no listener (dom0 enables their rings and answers nothing), and what is
//! measured is the shadow code, not event delivery. Per run and guest, four phases:
//! a new default rx2rw (every frame's rights change: the shadows are rebuilt, lazily), the
//! default back to rwx (the sweep the others are compared with), one buffer frame
//! restricted to rx2rw (only its own shadow entries change), that frame back to rwx.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libxc::memory::{set_mem_access_mfn, AccessTarget};
use libxc::monitor::{monitor_disable, monitor_enable};
use libxc::privcmd::Privcmd;
use libxc::xenstore::resolve_domain;
use libxc::Mfn;
use libxc::{Access, DomId};

use super::measurements::{AccessChange, Step};
use crate::scenarios::dom0::{Guest, GuestConfig};
use crate::scenarios::events::run::release;
use crate::scenarios::{perf_counters, Dom0};
use test_guest::bench_ops::Sweep;
use test_guest::patterns::Ready;

/// The two guest sizes compared.
pub const SMALL_MIB: u32 = 64;
pub const BIG_MIB: u32 = 768;
/// Phases each run takes of a guest.
const PHASES_PER_RUN: u32 = 4;
/// Xen's count of shadow page faults, whatever their outcome.
const SHADOW_FAULTS: &str = "calls to shadow_fault";

/// A monitored sweep guest, ready for its next phase.
struct SweepGuest<'a> {
    guest: Guest<'a>,
    domain: DomId,
    memory_mib: u32,
    go_pfn: u64,
    /// Buffer page 0's machine frame: the frame restricted.
    frame: u64,
    /// The phase the guest waits for next (its first sweep is phase 2).
    phase: u32,
}

/// The small and the big guest.
pub struct Guests<'a> {
    small: SweepGuest<'a>,
    big: SweepGuest<'a>,
    privcmd: Privcmd,
}

impl<'a> Guests<'a> {
    /// Creates both guests with phases for `runs` runs and enables their rings.
    pub fn create(dom0: &'a Dom0, runs: u32) -> Result<Guests<'a>> {
        let privcmd = Privcmd::open()?;
        let small = SweepGuest::create(dom0, &privcmd, "bench-sweep-small", SMALL_MIB, runs)?;
        let big = SweepGuest::create(dom0, &privcmd, "bench-sweep-big", BIG_MIB, runs);
        let big = match big {
            Ok(big) => big,
            Err(error) => {
                small.destroy(dom0, &privcmd);
                return Err(error);
            }
        };
        Ok(Guests {
            small,
            big,
            privcmd,
        })
    }

    /// One run: the small guest's four phases, then the big guest's.
    pub fn run(&mut self, dom0: &Dom0) -> Result<(AccessChange, AccessChange)> {
        let small = self.small.run(dom0, &self.privcmd)?;
        let big = self.big.run(dom0, &self.privcmd)?;
        Ok((small, big))
    }

    /// Lets both guests finish and destroys them.
    pub fn destroy(self, dom0: &Dom0) {
        self.small.destroy(dom0, &self.privcmd);
        self.big.destroy(dom0, &self.privcmd);
    }
}

impl<'a> SweepGuest<'a> {
    fn create(
        dom0: &'a Dom0,
        privcmd: &Privcmd,
        name: &str,
        memory_mib: u32,
        runs: u32,
    ) -> Result<SweepGuest<'a>> {
        let cmdline = format!("pattern=bench-sweep phases={}", runs * PHASES_PER_RUN);
        let guest = dom0.create_guest(&GuestConfig {
            name,
            memory_mib,
            vcpus: 1,
            cmdline: &cmdline,
        })?;
        let ready = guest.wait_for::<Ready>(Duration::from_secs(300));
        let prepared = ready.and_then(|ready| {
            let go_pfn = ready.go_pfn;
            let frame = *guest.frames()?.first().context("no buffer frames")?;
            let domain = resolve_domain(name)?;
            monitor_enable(privcmd, domain)?;
            // Phase 1 only starts the pattern: it sweeps from phase 2 on.
            release(name, go_pfn, crate::scenarios::events::run::GO)?;
            Ok((go_pfn, frame, domain))
        });
        let (go_pfn, frame, domain) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                let _ = guest.save_console();
                let _ = guest.destroy(Duration::from_secs(60));
                return Err(error);
            }
        };
        Ok(SweepGuest {
            guest,
            domain,
            memory_mib,
            go_pfn,
            frame,
            phase: 2,
        })
    }

    fn run(&mut self, dom0: &Dom0, privcmd: &Privcmd) -> Result<AccessChange> {
        let frame = AccessTarget::frame(Mfn(self.frame));
        let default_set = self.step(dom0, privcmd, AccessTarget::Default, Access::Rx2rw)?;
        let baseline = self.step(dom0, privcmd, AccessTarget::Default, Access::Rwx)?;
        let restrict_one = self.step(dom0, privcmd, frame, Access::Rx2rw)?;
        self.step(dom0, privcmd, frame, Access::Rwx)?;
        Ok(AccessChange {
            memory_mib: self.memory_mib,
            default_set,
            baseline,
            restrict_one,
        })
    }

    /// Sets `access` on `target` (timed), then lets the guest sweep once.
    fn step(
        &mut self,
        dom0: &Dom0,
        privcmd: &Privcmd,
        target: AccessTarget<Mfn>,
        access: Access,
    ) -> Result<Step> {
        let phase = self.phase;
        self.phase += 1;
        let (go_pfn, timeout) = (self.go_pfn, Duration::from_secs(120));
        self.guest.wait_for_matching(
            |ready: &Ready| ready.go_pfn == go_pfn && ready.phase == phase,
            timeout,
        )?;
        let start = Instant::now();
        set_mem_access_mfn(privcmd, self.domain, target, access)?;
        let call_us = start.elapsed().as_secs_f64() * 1e6;
        let go = test_guest::handshake::go_value(phase)
            .with_context(|| format!("no go value for phase {phase}"))?;
        let before = perf_counters::read(dom0)?;
        release(&self.guest.name, self.go_pfn, go)?;
        let sweep = self
            .guest
            .wait_for_matching(|sweep: &Sweep| sweep.phase == phase, timeout)?;
        let after = perf_counters::read(dom0)?;
        Ok(Step {
            call_us,
            sweep_ns: sweep.ns,
            sweep_faults: perf_counters::growth(&before, &after, SHADOW_FAULTS)?,
        })
    }

    fn destroy(self, dom0: &Dom0, privcmd: &Privcmd) {
        let _ = monitor_disable(privcmd, self.domain);
        let _ = dom0.save(
            &format!("{}-console.log", self.guest.name),
            self.guest.console(),
        );
        let _ = self.guest.destroy(Duration::from_secs(60));
    }
}
