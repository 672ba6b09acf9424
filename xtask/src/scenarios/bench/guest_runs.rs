//! One timed run of a test guest's benchmark pattern: create the guest, put it in the
//! configuration measured (unmonitored, log-dirty, or under `listener monitor`), let it go,
//! take its result line, and destroy it. Each run is a new guest, so no run inherits
//! another's shadows or rights.

use std::process::Child;
use std::time::Duration;

use anyhow::{Context, Result};
use libxc::monitor::{log_dirty_disable, log_dirty_enable};
use libxc::privcmd::Privcmd;
use libxc::xenstore::resolve_domain;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use listener::record::Record;

use listener::timings::Timings;

use test_guest::bench_ops::{BenchSamples, BenchScale};
use test_guest::lines::{self, Line};
use test_guest::patterns::Ready;

use super::measurements::TscScale;
use crate::scenarios::dom0::Guest;
use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::events::run::{release, start_listener, wait, wait_for_header, GO, TRACE};
use crate::scenarios::Dom0;

/// Where a listener given `--timings TIMINGS` leaves them.
pub const TIMINGS: &str = "/tmp/listener-timings.json";

/// How long a guest waits at its go page before it is let go.
const SETTLE: Duration = Duration::from_millis(500);

/// What runs beside the guest while it is timed.
#[derive(Clone, Copy)]
pub enum Monitoring<'a> {
    /// Nothing: Xen runs the guest on its own page tables.
    None,
    /// Log-dirty mode, as live migration uses it: shadow paging without mem_access.
    LogDirty,
    /// `listener monitor` with these options (after `--domain` and `--output`).
    Listener(&'a [&'a str]),
}

/// One run to time.
pub struct TimedRun<'a> {
    pub name: &'a str,
    pub vcpus: u32,
    pub cmdline: &'a str,
    /// The guest's result line read for its TSC ticks, e.g. [`Bench`](test_guest::bench::Bench)'s `tsc` (the
    /// argument is the text after `TEST-GUEST `).
    pub result: fn(&str) -> Option<u64>,
    pub monitoring: Monitoring<'a>,
}

/// What a run left: the TSC ticks of its result line, the guest's console, the listener's
/// trace and timings.
pub struct Timed {
    pub tsc: u64,
    pub console: String,
    pub trace: Option<String>,
    pub listener: Option<Timings>,
}

impl Timed {
    /// The per-operation samples of the `BENCH-SAMPLES` lines, in order.
    pub fn samples(&self) -> Result<Vec<u64>> {
        samples(&self.console)
    }

    /// The guest's `BENCH-SCALE` line.
    pub fn scale(&self) -> Result<TscScale> {
        scale(&self.console)
    }
}

/// Runs `run`; `before_go` runs once the guest is ready (after the listener took it over)
/// and what it returns lives until the guest printed its result (an echo process, say).
pub fn time<T>(
    dom0: &Dom0,
    run: &TimedRun,
    before_go: impl FnOnce(&Guest) -> Result<T>,
) -> Result<Timed> {
    let guest = dom0.create_guest(&GuestConfig {
        name: run.name,
        memory_mib: 64,
        vcpus: run.vcpus,
        cmdline: run.cmdline,
    })?;
    let mut listener = None;
    let outcome = drive(run, &guest, &mut listener, before_go);
    if let Some(child) = listener.as_mut() {
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        wait(child, Duration::from_secs(60))?;
    }
    let console = guest.console();
    dom0.save(&format!("{}-console.log", run.name), &console)?;
    let (trace, timings) = match run.monitoring {
        Monitoring::Listener(_) => (
            std::fs::read_to_string(TRACE).ok(),
            std::fs::read(TIMINGS)
                .ok()
                .and_then(|json| serde_json::from_slice(&json).ok()),
        ),
        _ => (None, None),
    };
    guest.destroy(Duration::from_secs(30))?;
    Ok(Timed {
        tsc: outcome?,
        console,
        trace,
        listener: timings,
    })
}

fn drive<T>(
    run: &TimedRun,
    guest: &Guest,
    listener: &mut Option<Child>,
    before_go: impl FnOnce(&Guest) -> Result<T>,
) -> Result<u64> {
    let go_pfn = guest.wait_for::<Ready>(Duration::from_secs(120))?.go_pfn;
    match run.monitoring {
        Monitoring::None => {}
        Monitoring::LogDirty => {
            let privcmd = Privcmd::open()?;
            log_dirty_enable(&privcmd, resolve_domain(run.name)?)?;
        }
        Monitoring::Listener(options) => {
            let _ = std::fs::remove_file(TRACE);
            let _ = std::fs::remove_file(TIMINGS);
            let child = listener.insert(start_listener(run.name, TRACE, options)?);
            wait_for_header(child)?;
        }
    }
    let guard = before_go(guest)?;
    // The guest waits for GO in a loop: give it the time to fault in (under shadow paging)
    // the code, stack and go page of that loop, so the timed part takes in every
    // configuration only the faults of the pages it works on.
    std::thread::sleep(SETTLE);
    release(run.name, go_pfn, GO)?;
    let tsc = guest.wait_for_parsed("result", run.result, Duration::from_secs(600))?;
    drop(guard);
    if let Monitoring::LogDirty = run.monitoring {
        let privcmd = Privcmd::open()?;
        log_dirty_disable(&privcmd, resolve_domain(run.name)?)?;
    }
    Ok(tsc)
}

/// The samples of the [`BENCH-SAMPLES`](BenchSamples) lines, joined in order; each line must
/// start where the previous ended.
pub fn samples(console: &str) -> Result<Vec<u64>> {
    let mut all = Vec::new();
    for body in lines::bodies(console) {
        if !body.starts_with("BENCH-SAMPLES ") {
            continue;
        }
        let line = BenchSamples::parse(body).with_context(|| format!("bad line {body:?}"))?;
        anyhow::ensure!(
            line.from == all.len(),
            "samples from {} follow {} samples: {body:?}",
            line.from,
            all.len()
        );
        all.extend(line.samples());
    }
    Ok(all)
}

/// The guest's [`BENCH-SCALE`](BenchScale) line.
pub fn scale(console: &str) -> Result<TscScale> {
    let line = BenchScale::find(console).context("no BENCH-SCALE line")?;
    Ok(TscScale {
        mul: line.mul,
        shift: line.shift,
    })
}

/// The listener's events whose pfn is in `first..first + count`, from its trace.
pub fn traced_events(trace: &str, first: u64, count: u64) -> Result<u64> {
    let mut events = 0;
    for line in trace.lines() {
        let record: Record =
            serde_json::from_str(line).with_context(|| format!("trace line {line:?}"))?;
        if let Record::Event(event) = record {
            if event
                .pfn
                .is_some_and(|pfn| (first..first + count).contains(&pfn))
            {
                events += 1;
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_join_in_order_and_gaps_are_refused() {
        let console =
            "x\n[t] TEST-GUEST BENCH-SAMPLES from=0 5 6\nTEST-GUEST BENCH-SAMPLES from=2 7\n";
        assert_eq!(samples(console).unwrap(), vec![5, 6, 7]);
        let gap = "TEST-GUEST BENCH-SAMPLES from=0 5\nTEST-GUEST BENCH-SAMPLES from=2 7\n";
        assert!(samples(gap).is_err());
        assert!(samples("TEST-GUEST BENCH-SAMPLES from=0 5x\n").is_err());
    }

    #[test]
    fn scale_is_read_from_its_line() {
        let console = "TEST-GUEST BENCH-SCALE mul=3000000000 shift=-1\n";
        assert_eq!(
            scale(console).unwrap(),
            TscScale {
                mul: 3_000_000_000,
                shift: -1
            }
        );
        assert!(scale("TEST-GUEST BENCH-SCALE mul=3000000000\n").is_err());
    }

    #[test]
    fn only_events_on_the_frames_asked_count() {
        let event = |pfn: u64| {
            format!(
                r#"{{"type":"event","seq":1,"vcpu":0,"reason":"mem_access","access":"w","pfn":{pfn},"mfn":1,"gla":null,"offset":0,"flags":[],"rip":"0x0","response":"relax","recovered":false}}"#
            )
        };
        let trace = [event(16), event(17), event(40)].join("\n");
        let trace = trace.as_str();
        assert_eq!(traced_events(trace, 16, 8).unwrap(), 2);
    }
}
