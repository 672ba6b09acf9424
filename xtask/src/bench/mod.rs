//! `cargo xtask bench`: the figures of issue 12, from one nested boot. Runs the host's
//! tracker benchmark, then the e2e job with only `bench/figures` (a release Xen, five runs
//! by default), and writes `target/bench/`: `summary.json`, `report.md` and
//! `event-rtt.svg` ([`report`]). `--quick` is the smoke test `cargo xtask ci` runs: one run
//! on the debug Xen the tests boot, every figure reported, none judged.

pub mod figures;
pub mod report;
mod svg;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::layout::Layout;
use crate::progress::{step, Phase};
use crate::scenarios::bench::measurements::{Measurements, TscScale};
use crate::scenarios::bench::{MAX_RUNS, MEASUREMENTS_FILE, SCENARIO};
use figures::TrackerFigures;
use report::Setting;

#[derive(clap::Args)]
pub struct Options {
    /// The smoke test: one run on the debug Xen; the figures are reported, not judged.
    #[arg(long)]
    quick: bool,
    /// Runs of every figure (each run measures every configuration once).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=MAX_RUNS as i64))]
    runs: u32,
}

pub fn run(options: &Options) -> Result<ExitCode> {
    let layout = Layout::new();
    let runs = if options.quick { 1 } else { options.runs };
    let tracker = tracker_figures(&layout, options.quick)?;
    let e2e = crate::e2e::Options::bench(SCENARIO.name, runs, !options.quick);
    let code = crate::e2e::run(&e2e)?;
    if code != ExitCode::SUCCESS {
        anyhow::bail!(
            "bench/figures failed: see {}",
            layout.e2e_results().join("summary.json").display()
        );
    }
    let setting = Setting {
        quick: options.quick,
        xen_build: if options.quick { "debug" } else { "release" },
        runs,
    };
    write(&layout, &setting, Some(&tracker))?;
    Ok(ExitCode::SUCCESS)
}

/// `target/bench/` from the measurements the last e2e run left (`cargo xtask ci` calls it
/// after its e2e run, whose `bench/figures` took one run).
pub fn write(layout: &Layout, setting: &Setting, tracker: Option<&TrackerFigures>) -> Result<()> {
    let measured_path = layout
        .e2e_results()
        .join(SCENARIO.name)
        .join(MEASUREMENTS_FILE);
    let measured: Measurements = serde_json::from_slice(
        &std::fs::read(&measured_path)
            .with_context(|| format!("reading {}", measured_path.display()))?,
    )
    .with_context(|| format!("parsing {}", measured_path.display()))?;
    let figures = figures::compute(&measured, tracker)?;
    let out = layout.target().join("bench");
    std::fs::create_dir_all(&out)?;
    let (svg, note) = rtt_plot(&measured);
    std::fs::write(out.join("event-rtt.svg"), svg)?;
    std::fs::write(
        out.join("summary.json"),
        report::summary_json(setting, &figures)?,
    )?;
    std::fs::write(
        out.join("report.md"),
        report::markdown(setting, &figures, &note),
    )?;
    println!();
    print!("{}", report::table(&figures));
    println!("bench: {}", out.join("report.md").display());
    Ok(())
}

/// The distribution plot of the guest's round trips, and a line of medians for the report.
fn rtt_plot(measured: &Measurements) -> (String, String) {
    let samples = &measured.rtt_samples;
    let scale = samples.scale.unwrap_or(TscScale { mul: 0, shift: 0 });
    let microseconds = |ticks: &[u64]| -> Vec<f64> {
        ticks
            .iter()
            .map(|&tick| scale.nanoseconds(tick) / 1000.0)
            .collect()
    };
    let (events, pingpong) = (
        microseconds(&samples.events_tsc),
        microseconds(&samples.pingpong_tsc),
    );
    let median = |values: &[f64]| {
        if values.is_empty() {
            f64::NAN
        } else {
            figures::median(values)
        }
    };
    let breakdown = measured.listener_breakdown.unwrap_or_default();
    let timings = breakdown.listener;
    let (events_seen, wakeups) = (timings.events, timings.wakeups);
    let (drain, set_access, trace, notify) = (
        timings.drain_ns,
        timings.set_access_ns,
        timings.trace_ns,
        timings.notify_ns,
    );
    let per_event = |ns: u64| ns as f64 / events_seen.max(1) as f64 / 1000.0;
    let mut note = format!(
        "Guest-side time of each sync mem_access event (a write to a page with access rx, \
         the listener relaxing it and answering at once) and of each event-channel round \
         trip to a dom0 echo process, all runs together: medians {:.1} us and {:.1} us \
         ({} and {} samples).",
        median(&events),
        median(&pingpong),
        events.len(),
        pingpong.len()
    );
    note += &format!(
        " Where the listener's share goes (one more run, the listener timing its own steps \
         with dom0's clock, `listener monitor --timings`; the guest's median per event was \
         {:.1} us in that run): {:.1} us per event from its wake-up to Xen notified \
         ({events_seen} events in {wakeups} wake-ups), of which relaxing the page \
         (`XENMEM_access_op`) {:.1} us, writing the trace line {:.1} us, notifying Xen {:.1} \
         us.",
        scale.nanoseconds(breakdown.events_median_tsc) / 1000.0,
        per_event(drain),
        per_event(set_access),
        per_event(trace),
        per_event(notify),
    );
    let svg = svg::distribution(
        "Guest-side round trips: sync mem_access event vs event-channel ping-pong",
        &[
            svg::Series {
                label: "sync mem_access event",
                colour: "#c0392b",
                microseconds: &events,
            },
            svg::Series {
                label: "event-channel ping-pong",
                colour: "#2471a3",
                microseconds: &pingpong,
            },
        ],
    );
    (svg, note)
}

/// The host's tracker benchmark (`cargo bench -p hypervisor-patch --bench tracker`), its
/// figures read from the JSON it writes; `quick` skips criterion's own measurement.
pub fn tracker_figures(layout: &Layout, quick: bool) -> Result<TrackerFigures> {
    let phase = Phase::start("tracker", "host benchmark of the tracker at 4M frames");
    let sh = Shell::new()?;
    let _root = sh.push_dir(&layout.root);
    let out = layout.target().join("bench");
    std::fs::create_dir_all(&out)?;
    let json = out.join("tracker.json");
    let _ = std::fs::remove_file(&json);
    let _output = sh.push_env("PVMA_TRACKER_BENCH_JSON", &json);
    let _quick = quick.then(|| sh.push_env("PVMA_TRACKER_BENCH_QUICK", "1"));
    step("cargo bench -p hypervisor-patch --bench tracker");
    cmd!(
        sh,
        "cargo bench --quiet -p hypervisor-patch --bench tracker"
    )
    .run()
    .context("the tracker benchmark")?;
    let figures = read_tracker(&json)?;
    phase.finish();
    Ok(figures)
}

fn read_tracker(path: &Path) -> Result<TrackerFigures> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}
