//! `bench/figures`: what monitoring costs, measured in one boot for `cargo xtask bench`
//! (and, one run only, as the e2e's smoke test of it). Every figure is a ratio between
//! configurations measured in the same boot, interleaved: each run measures every
//! configuration once, each in a new guest. Nested under QEMU's TCG the absolute times
//! mean little; the ratios are the point, and the host half judges none of them
//! (`cargo xtask bench` reports them against their targets).
//!
//! Per run:
//! 1. the guest's write loop (`pattern=bench`) unmonitored, in log-dirty mode, and
//!    monitored with every page rwx;
//! 2. one vCPU writing 256 fresh pages with default rx and the listener relaxing each page
//!    on its event (`pattern=bench-events`: one sync event per write, timed by the guest
//!    write by write), against 256 event-channel round trips to a dom0 echo process
//!    (`pattern=bench-pingpong`, [`echo`]);
//! 3. the same 256 events taken by two vCPUs, with the events the trace misses;
//! 4. access changes on a 64 MiB and a 768 MiB guest ([`scaling`]);
//! 5. a guest loop of 10^4 hypercalls that have Xen write into its buffer pages
//!    (`pattern=bench-xen-copy`), unmonitored, monitored rwx, monitored read-only.
//!
//! After the runs, the `XENMEM_access_op` costs and Xen's perf counts ([`access_ops`],
//! checked). Everything goes to `measurements.json` ([`measurements`]).

mod access_ops;
mod echo;
mod guest_runs;
pub mod measurements;
mod scaling;

use anyhow::{Context, Result};
use libxc::xenstore::resolve_domain;
use test_guest::bench::{Bench, BenchXenCopy};
use test_guest::bench_ops::{BenchArea, BenchEvents, BenchPingpong};
use test_guest::lines::Line;

use guest_runs::{time, traced_events, Monitoring, Timed, TimedRun};
use measurements::{
    EventRtt, GuestSize, HypercallLoop, ListenerBreakdown, Measurements, VcpuScaling, WriteLoop,
};

use crate::scenarios::events::trace::BUFFER_PFN;
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "bench/figures",
    in_dom0,
    on_host,
};

/// The file the dom0 half leaves for the host.
pub const MEASUREMENTS_FILE: &str = "measurements.json";
/// The environment variable that carries the number of runs into dom0 (default 1).
pub const RUNS_VARIABLE: &str = "PV_MEM_ACCESS_BENCH_RUNS";
/// The most runs: the sweep guests take four phases a run, and have at most 64.
pub const MAX_RUNS: u32 = 16;

/// The write loop's rounds: 2^20 writes (the most the guest does), so the first writes'
/// faults on its 16 pages weigh in the figure without making it.
const WRITE_ROUNDS: u32 = 65536;
/// Sync events per event run (pages written), and echo round trips.
const EVENTS: u32 = 256;
/// The hypercalls of the Xen-writes loop (issue 10: 10^4).
const XEN_COPY_CALLS: u32 = 10_000;

fn runs() -> Result<u32> {
    match std::env::var(RUNS_VARIABLE) {
        Err(_) => Ok(1),
        Ok(text) => text
            .parse()
            .ok()
            .filter(|runs| (1..=MAX_RUNS).contains(runs))
            .with_context(|| {
                format!("{RUNS_VARIABLE}={text:?} is not a number from 1 to {MAX_RUNS}")
            }),
    }
}

fn progress(run: u32, runs: u32, what: &str) {
    println!("E2E-BENCH run {run}/{runs}: {what}");
}

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let runs = runs()?;
    let mut measured = Measurements {
        runs,
        ..Measurements::default()
    };
    progress(0, runs, "creating the 64 MiB and 768 MiB sweep guests");
    let mut sizes = scaling::Guests::create(dom0, runs)?;
    let outcome =
        (1..=runs).try_for_each(|run| measure_run(dom0, run, runs, &mut sizes, &mut measured));
    sizes.destroy(dom0);
    outcome?;
    progress(
        runs,
        runs,
        "the events once more, the listener timing its steps",
    );
    measured.listener_breakdown = Some(listener_breakdown(dom0)?);
    progress(runs, runs, "XENMEM_access_op costs and Xen's counts");
    measured.access_ops = Some(access_ops::measure(dom0)?);
    dom0.save(
        MEASUREMENTS_FILE,
        serde_json::to_string_pretty(&measured)? + "\n",
    )
}

fn measure_run(
    dom0: &Dom0,
    run: u32,
    runs: u32,
    sizes: &mut scaling::Guests,
    measured: &mut Measurements,
) -> Result<()> {
    progress(
        run,
        runs,
        "write loop: unmonitored, log-dirty, monitored rwx",
    );
    measured.write_loop.push(write_loop(dom0, run)?);
    progress(run, runs, "sync events against event-channel ping-pong");
    let (rtt, one_vcpu) = event_rtt(dom0, run, measured)?;
    measured.event_rtt.push(rtt);
    progress(run, runs, "the same events on two vCPUs");
    measured.vcpus.push(two_vcpus(dom0, run, one_vcpu)?);
    progress(run, runs, "access changes on a 64 MiB and a 768 MiB guest");
    let (small, big) = sizes.run(dom0)?;
    measured.guest_size.push(GuestSize { small, big });
    progress(run, runs, "hypercall loop writing restricted pages");
    measured.hypercall_loop.push(hypercall_loop(dom0, run)?);
    Ok(())
}

/// The guest TSC ticks of one run of `cmdline` per configuration, each in a new guest
/// (`<prefix>-<label>-<run>`), in the order of `configurations` turned by `run`, so none
/// always goes first; the ticks in the order of `configurations`.
fn interleaved(
    dom0: &Dom0,
    run: u32,
    prefix: &str,
    cmdline: &str,
    result: fn(&str) -> Option<u64>,
    configurations: &[(&str, Monitoring); 3],
) -> Result<[u64; 3]> {
    let mut ticks = [0u64; 3];
    for offset in 0..3 {
        let index = (offset + run as usize) % 3;
        let (label, monitoring) = configurations[index];
        let timed = TimedRun {
            name: &format!("{prefix}-{label}-{run}"),
            vcpus: 1,
            cmdline,
            result,
            monitoring,
        };
        ticks[index] = time(dom0, &timed, |_| Ok(()))?.tsc;
    }
    Ok(ticks)
}

/// The write loop three ways.
fn write_loop(dom0: &Dom0, run: u32) -> Result<WriteLoop> {
    let cmdline = format!("pattern=bench rounds={WRITE_ROUNDS}");
    let configurations = [
        ("plain", Monitoring::None),
        ("log-dirty", Monitoring::LogDirty),
        (
            "monitored",
            Monitoring::Listener(&["--default-access", "rwx"]),
        ),
    ];
    let ticks = interleaved(
        dom0,
        run,
        "bench-write",
        &cmdline,
        |body| Bench::parse(body).map(|line| line.tsc),
        &configurations,
    )?;
    Ok(WriteLoop {
        writes: u64::from(WRITE_ROUNDS) * 16,
        plain_tsc: ticks[0],
        log_dirty_tsc: ticks[1],
        monitored_tsc: ticks[2],
    })
}

/// The listener of the event runs: every page rx, each relaxed to rwx on its event, as
/// `xen-access` does.
const EVENT_LISTENER: &[&str] = &["--default-access", "rx", "--on-event", "relax"];

/// `EVENTS` writes to fresh pages, each one sync event, by `vcpus` vCPUs.
fn events(dom0: &Dom0, name: &str, vcpus: u32) -> Result<Timed> {
    events_with(dom0, name, vcpus, EVENT_LISTENER)
}

fn events_with(dom0: &Dom0, name: &str, vcpus: u32, listener: &[&str]) -> Result<Timed> {
    time(
        dom0,
        &TimedRun {
            name,
            vcpus,
            cmdline: &format!("pattern=bench-events pages={EVENTS}"),
            result: |body| BenchEvents::parse(body).map(|line| line.tsc),
            monitoring: Monitoring::Listener(listener),
        },
        |_| Ok(()),
    )
}

/// The events once more, the listener timing its own steps.
fn listener_breakdown(dom0: &Dom0) -> Result<ListenerBreakdown> {
    let mut listener = EVENT_LISTENER.to_vec();
    listener.extend(["--timings", guest_runs::TIMINGS]);
    let timed = events_with(dom0, "bench-events-timed", 1, &listener)?;
    Ok(ListenerBreakdown {
        events_median_tsc: median(&timed.samples()?).context("no event samples")?,
        listener: timed.listener.context("the listener left no timings")?,
    })
}

/// The events of `timed` (its area's pages) the listener's trace does not have.
fn lost_events(timed: &Timed) -> Result<u64> {
    let first = BenchArea::find(&timed.console)
        .context("no BENCH-AREA line")?
        .first_pfn;
    let trace = timed
        .trace
        .as_deref()
        .context("the listener left no trace")?;
    let traced = traced_events(trace, first, u64::from(EVENTS))?;
    Ok(u64::from(EVENTS).saturating_sub(traced))
}

/// One vCPU's events, and the ping-pong; keeps every sample. Returns the one-vCPU run
/// for [`two_vcpus`] to compare with.
fn event_rtt(dom0: &Dom0, run: u32, measured: &mut Measurements) -> Result<(EventRtt, Timed)> {
    let events = events(dom0, &format!("bench-events-{run}"), 1)?;
    let name = format!("bench-pingpong-{run}");
    let pingpong = time(
        dom0,
        &TimedRun {
            name: &name,
            vcpus: 1,
            cmdline: &format!("pattern=bench-pingpong rounds={EVENTS}"),
            result: |body| BenchPingpong::parse(body).map(|line| line.tsc),
            monitoring: Monitoring::None,
        },
        |guest| {
            let port = echo::echo_port(&guest.console())?;
            echo::Echo::start(resolve_domain(&name)?, port)
        },
    )?;
    let (event_samples, pingpong_samples) = (events.samples()?, pingpong.samples()?);
    let samples = &mut measured.rtt_samples;
    samples.scale = Some(events.scale()?);
    samples.events_tsc.extend(&event_samples);
    samples.pingpong_tsc.extend(&pingpong_samples);
    Ok((
        EventRtt {
            events: u64::from(EVENTS),
            events_tsc: events.tsc,
            rounds: u64::from(EVENTS),
            pingpong_tsc: pingpong.tsc,
            events_median_tsc: median(&event_samples).context("no event samples")?,
            pingpong_median_tsc: median(&pingpong_samples).context("no ping-pong samples")?,
        },
        events,
    ))
}

/// The lower median of `samples`.
fn median(samples: &[u64]) -> Option<u64> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len().checked_sub(1)? / 2).copied()
}

fn two_vcpus(dom0: &Dom0, run: u32, one_vcpu: Timed) -> Result<VcpuScaling> {
    let two = events(dom0, &format!("bench-events-2vcpus-{run}"), 2)?;
    Ok(VcpuScaling {
        events: u64::from(EVENTS),
        one_vcpu_tsc: one_vcpu.tsc,
        two_vcpus_tsc: two.tsc,
        lost_one_vcpu: lost_events(&one_vcpu)?,
        lost_two_vcpus: lost_events(&two)?,
    })
}

fn hypercall_loop(dom0: &Dom0, run: u32) -> Result<HypercallLoop> {
    let cmdline = format!("pattern=bench-xen-copy rounds={XEN_COPY_CALLS}");
    let read_only: Vec<String> = ["--default-access", "rwx", "--on-event", "keep"]
        .into_iter()
        .map(String::from)
        .chain((0..16).flat_map(|page| {
            [
                "--access".to_string(),
                format!("{:#x}=rx", BUFFER_PFN + page),
            ]
        }))
        .collect();
    let read_only: Vec<&str> = read_only.iter().map(String::as_str).collect();
    let configurations = [
        ("plain", Monitoring::None),
        ("rwx", Monitoring::Listener(&["--default-access", "rwx"])),
        ("rx", Monitoring::Listener(&read_only)),
    ];
    let ticks = interleaved(
        dom0,
        run,
        "bench-copy",
        &cmdline,
        |body| BenchXenCopy::parse(body).map(|line| line.tsc),
        &configurations,
    )?;
    Ok(HypercallLoop {
        calls: u64::from(XEN_COPY_CALLS),
        plain_tsc: ticks[0],
        monitored_rwx_tsc: ticks[1],
        monitored_rx_tsc: ticks[2],
    })
}

/// Checks that every figure was measured and Xen's counts; prints the figures (judging
/// none: `cargo xtask bench` reports them against their targets).
fn on_host(view: &HostView) -> Result<()> {
    let measured: Measurements = serde_json::from_str(&view.read(MEASUREMENTS_FILE)?)
        .context("reading measurements.json")?;
    let ops = measured
        .access_ops
        .as_ref()
        .context("no XENMEM_access_op costs")?;
    access_ops::check(ops)?;
    let figures = crate::bench::figures::compute(&measured, None)?;
    let table = crate::bench::report::table(&figures);
    print!("{table}");
    view.save_note("figures.txt", &table)
}
