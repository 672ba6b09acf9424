//! `cargo xtask e2e`: the main job. Prepares the host, builds Xen with our patches and the
//! dom0 image (both cached), boots the nested system once, runs the selected scenarios in
//! dom0, checks their results on the host and writes `target/e2e/summary.json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use xshell::{cmd, Shell};

use crate::dom0_image::{self, OurPrograms};
use crate::exchange::{self, Job};
use crate::host::{self, BARE_METAL_TARGET};
use crate::layout::Layout;
use crate::progress::{step, Phase};
use crate::qemu::{Ending, Machine};
use crate::scenarios::robust::counts::{RobustCounts, ROBUST_FILE};
use crate::scenarios::{self, HostView, Scenario, ScenarioResult, Status, RESULT_FILE};
use crate::xen_tools::XenTools;
use crate::{debian, hv_module, xen_build, xen_log, xen_tools};

#[derive(clap::Args)]
pub struct Options {
    /// Run only the scenarios this selects: a name, a group (`abi`), or a `*` pattern
    /// (repeatable; default: all).
    #[arg(long = "scenario", value_name = "PATTERN")]
    patterns: Vec<String>,
    /// Wall-clock limit for the nested run (boot and scenarios), in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TIMEOUT)]
    timeout: u64,
    /// The seed of `robust/fuzz`'s random calls, to replay a run (default: a new one,
    /// printed).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Boot Xen built without `CONFIG_DEBUG`, as production runs it: for `bench/*` figures.
    /// Tests want the default, the debug build, whose assertions are part of every check.
    #[arg(long)]
    release_xen: bool,
    /// Runs of `bench/figures` (`cargo xtask bench` asks for 5; the e2e takes 1: the smoke
    /// test).
    #[arg(skip)]
    bench_runs: Option<u32>,
}

/// Boot takes about a minute under TCG; the rest is for the scenarios: about 8 minutes on an
/// idle 2-core machine, 15 when it is shared (seen with a load average of 8).
const DEFAULT_TIMEOUT: u64 = 1800;

impl Default for Options {
    fn default() -> Options {
        Options {
            patterns: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            seed: None,
            release_xen: false,
            bench_runs: None,
        }
    }
}

impl Options {
    /// Only `scenario`, with `runs` runs, on the release Xen or the debug one.
    pub fn bench(scenario: &str, runs: u32, release_xen: bool) -> Options {
        Options {
            patterns: vec![scenario.to_string()],
            release_xen,
            bench_runs: Some(runs),
            ..Options::default()
        }
    }
}

#[derive(Serialize)]
struct Summary {
    xen_version: String,
    passed: usize,
    failed: usize,
    scenarios: Vec<ScenarioSummary>,
    phases: Phases,
    /// Summed from each scenario's `robust.json`, plus the log check's alarm lines.
    robust: RobustCounts,
}

#[derive(Serialize)]
struct ScenarioSummary {
    name: String,
    status: Status,
    seconds: f64,
    reason: String,
}

#[derive(Serialize, Default)]
pub struct Phases {
    prepare: f64,
    build_xen: f64,
    build_dom0: f64,
    boot: f64,
    scenarios: f64,
}

/// Everything needed to boot the nested system.
pub struct System {
    pub xen: PathBuf,
    pub dom0_kernel: PathBuf,
    pub dom0_initramfs: PathBuf,
}

/// Prepares the host and builds (or takes from the cache) everything that boots; shared with
/// `cargo xtask vm`.
pub fn build_system(
    sh: &Shell,
    layout: &Layout,
    variant: &xen_build::Variant,
    phases: &mut Phases,
) -> Result<(System, String)> {
    let phase = Phase::start(
        "prepare",
        "host packages, Rust target, dom0's Debian packages",
    );
    host::ensure_prerequisites(sh)?;
    let debian = debian::prepare(sh, layout)?;
    phases.prepare = phase.finish();

    let phase = Phase::start(
        "build_xen",
        "the Rust module, then Xen 4.17 from Debian's source with our patches, then libxenctrl and xen-access",
    );
    let rust_object = hv_module::build(sh, layout)?;
    hv_module::check(sh, layout, &rust_object)?;
    let xen = xen_build::build(sh, layout, &rust_object, variant)?;
    let tools = xen_tools::build(sh, layout, variant.dir)?;
    phases.build_xen = phase.finish();

    let phase = Phase::start("build_dom0", "test guest, listener, dom0 initramfs");
    let ours = build_our_programs(sh, layout, tools)?;
    let initramfs = dom0_image::build(sh, layout, &debian, &ours)?;
    phases.build_dom0 = phase.finish();
    Ok((
        System {
            xen: xen.multiboot_elf,
            dom0_kernel: debian.vmlinuz(),
            dom0_initramfs: initramfs,
        },
        debian.kernel_release,
    ))
}

fn build_our_programs(sh: &Shell, layout: &Layout, tools: XenTools) -> Result<OurPrograms> {
    let _root = sh.push_dir(&layout.root);
    step("cargo build -p test-guest (PV kernel) and -p listener");
    cmd!(
        sh,
        "cargo build --quiet --release -p test-guest --target {BARE_METAL_TARGET}"
    )
    .run()
    .context("building the test guest")?;
    cmd!(sh, "cargo build --quiet --release -p listener")
        .run()
        .context("building the listener")?;
    // The agent is this very program; a stripped copy keeps the initramfs small.
    let agent = layout.dom0().join("xtask-agent");
    std::fs::create_dir_all(layout.dom0())?;
    let me = std::env::current_exe()?;
    cmd!(sh, "strip -o {agent} {me}").run()?;
    let release = layout.target().join("release");
    Ok(OurPrograms {
        agent,
        listener: release.join("listener"),
        test_guest: layout
            .target()
            .join(BARE_METAL_TARGET)
            .join("release")
            .join("test-guest"),
        tools,
    })
}

pub fn run(options: &Options) -> Result<ExitCode> {
    let selected = scenarios::select(&options.patterns)?;
    let layout = Layout::new();
    let sh = Shell::new()?;
    let mut phases = Phases::default();
    let variant = if options.release_xen {
        &xen_build::BOOTED_RELEASE
    } else {
        &xen_build::BOOTED
    };
    let (system, _) = build_system(&sh, &layout, variant, &mut phases)?;

    let results = layout.e2e_results();
    if results.exists() {
        std::fs::remove_dir_all(&results)?;
    }
    let run_dir = results.join("run");
    std::fs::create_dir_all(&run_dir)?;
    let disk = run_dir.join("exchange.img");
    let names: Vec<String> = selected.iter().map(|s| s.name.to_string()).collect();

    let phase = Phase::start(
        "boot",
        &format!(
            "Xen + dom0 under QEMU (TCG), then {} scenario(s); serial log: {}",
            names.len(),
            run_dir.join("serial.log").display()
        ),
    );
    let machine = Machine {
        xen: &system.xen,
        dom0_kernel: &system.dom0_kernel,
        dom0_initramfs: &system.dom0_initramfs,
        exchange_disk: &disk,
        run_dir: &run_dir,
        timeout: Some(Duration::from_secs(options.timeout)),
        interactive: false,
    };
    let fuzz_seed = options.seed.unwrap_or_else(fresh_seed);
    if names.iter().any(|name| name == "robust/fuzz") {
        step(&format!(
            "robust/fuzz seed {fuzz_seed} (replay: cargo xtask e2e --scenario robust/fuzz --seed {fuzz_seed})"
        ));
    }
    let job = Job::Scenarios {
        names,
        fuzz_seed: Some(fuzz_seed),
        bench_runs: options.bench_runs,
    };
    let mut toolstack_at = None;
    let mut attempt = 1;
    let boot = loop {
        exchange::write_job(&disk, &job, &[])?;
        let start = std::time::Instant::now();
        let boot = machine.boot(|line| show_progress(line, start, &mut toolstack_at))?;
        match &boot.ending {
            Ending::Stopped {
                boot_hang: true,
                reason,
            } if attempt == 1 => {
                let kept = run_dir.join("serial-hang-attempt1.log");
                std::fs::copy(&boot.serial_log, &kept)?;
                step(&format!(
                    "{reason}; log kept as {}; trying once more",
                    kept.display()
                ));
                attempt += 1;
            }
            _ => break boot,
        }
    };
    let total = phase.finish();
    phases.boot = toolstack_at.unwrap_or(total);
    phases.scenarios = total - phases.boot;
    std::fs::copy(&boot.serial_log, results.join("serial.log"))?;

    let dom0_out = results.join("dom0");
    let (ending_reason, report) = match &boot.ending {
        Ending::Agent { completed } => match exchange::read_results(&disk, &dom0_out) {
            Ok(report) => (report.reason.clone(), Some(report)),
            Err(error) if *completed => (Some(format!("{error:#}")), None),
            Err(error) => (Some(format!("the dom0 agent failed: {error:#}")), None),
        },
        Ending::Stopped { reason, .. } => (Some(reason.clone()), None),
        Ending::QemuExited { code } => (Some(format!("QEMU exited unexpectedly ({code:?})")), None),
    };
    if report.is_some() {
        move_scenario_dirs(&dom0_out, &results, &selected)?;
    }
    let serial = results.join("serial.log");
    let serial_text = String::from_utf8_lossy(&std::fs::read(&serial)?).into_owned();
    let mut robust = RobustCounts::default();
    let summaries: Vec<ScenarioSummary> = selected
        .iter()
        .map(|scenario| {
            let (summary, counts) = judge(
                scenario,
                &results,
                &serial,
                &serial_text,
                ending_reason.as_deref(),
            );
            robust.add(&counts);
            summary
        })
        .collect();

    let passed = summaries
        .iter()
        .filter(|s| s.status == Status::Pass)
        .count();
    let failed = summaries.len() - passed;
    let summary = Summary {
        xen_version: xen_version(&serial).unwrap_or_else(|| "unknown".into()),
        passed,
        failed,
        scenarios: summaries,
        phases,
        robust,
    };
    std::fs::write(
        results.join("summary.json"),
        serde_json::to_string_pretty(&summary)? + "\n",
    )?;
    println!();
    for scenario in &summary.scenarios {
        println!(
            "{:<6} {} ({:.1}s){}",
            scenario.status.as_str(),
            scenario.name,
            scenario.seconds,
            if scenario.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", scenario.reason)
            }
        );
    }
    if let Some(reason) = &ending_reason {
        println!("run: {reason}");
    }
    println!("results: {}", results.join("summary.json").display());
    println!("e2e: {passed} passed, {failed} failed");
    Ok(if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A seed for a fuzz run nobody asked to replay: the clock's nanoseconds.
fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0)
}

/// Shows the agent's progress lines as they come, with the time since QEMU started.
fn show_progress(line: &str, start: std::time::Instant, toolstack_at: &mut Option<f64>) {
    let Some(at) = line.find("E2E-") else {
        return;
    };
    let line = &line[at..];
    let seconds = start.elapsed().as_secs_f64();
    if line.starts_with("E2E-PHASE toolstack-up") {
        *toolstack_at = Some(seconds);
    }
    step(&format!("+{seconds:6.1}s {line}"));
}

/// Results of each scenario go to `target/e2e/<scenario>/`; dom0's own logs stay in
/// `target/e2e/dom0/`.
fn move_scenario_dirs(dom0_out: &Path, results: &Path, selected: &[&Scenario]) -> Result<()> {
    for scenario in selected {
        let from = dom0_out.join(scenario.name);
        if from.exists() {
            let to = results.join(scenario.name);
            std::fs::create_dir_all(to.parent().unwrap_or(results))?;
            std::fs::rename(&from, &to)?;
        }
    }
    Ok(())
}

/// A scenario's verdict and its robustness figures. Beyond its own halves' verdicts, a
/// scenario fails when Xen printed an alarm line while it ran (`xen_log`), or when its
/// `robust.json` cannot be read.
fn judge(
    scenario: &Scenario,
    results: &Path,
    serial: &Path,
    serial_text: &str,
    ending: Option<&str>,
) -> (ScenarioSummary, RobustCounts) {
    let dir = results.join(scenario.name);
    let alarms = xen_log::scenario_alarms(serial_text, scenario.name);
    let mut counts = RobustCounts {
        assert_lines: alarms.len() as u64,
        ..RobustCounts::default()
    };
    let mut summary = judge_halves(scenario, &dir, serial, ending);
    let mut problems = Vec::new();
    if !alarms.is_empty() {
        let _ = std::fs::write(dir.join("xen-alarms.log"), alarms.join("\n") + "\n");
        problems.push(format!(
            "Xen printed {} ASSERT/WARN/BUG line(s) while it ran, first: {}",
            alarms.len(),
            alarms[0].trim()
        ));
    }
    match std::fs::read_to_string(dir.join(ROBUST_FILE)) {
        Ok(text) => match RobustCounts::parse(&text) {
            Ok(own) => counts.add(&own),
            Err(error) => problems.push(format!("{}: {error:#}", dir.join(ROBUST_FILE).display())),
        },
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => problems.push(format!("{}: {error}", dir.join(ROBUST_FILE).display())),
    }
    if !problems.is_empty() {
        if summary.status == Status::Fail {
            problems.insert(0, summary.reason.clone());
        }
        summary.status = Status::Fail;
        summary.reason = problems.join("; ");
    }
    (summary, counts)
}

fn judge_halves(
    scenario: &Scenario,
    dir: &Path,
    serial: &Path,
    ending: Option<&str>,
) -> ScenarioSummary {
    let dir = dir.to_path_buf();
    let fail = |seconds, reason: String| ScenarioSummary {
        name: scenario.name.into(),
        status: Status::Fail,
        seconds,
        reason,
    };
    let in_dom0: ScenarioResult = match std::fs::read(dir.join(RESULT_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
    {
        Some(result) => result,
        None => {
            return fail(
                0.0,
                format!(
                    "did not run to the end: {}",
                    ending.unwrap_or("no result from dom0")
                ),
            )
        }
    };
    if in_dom0.status == Status::Fail {
        let reason = in_dom0.reason.unwrap_or_default();
        return fail(in_dom0.seconds, with_console_hint(reason, &dir));
    }
    let view = HostView {
        dir: dir.clone(),
        serial_log: serial.to_path_buf(),
    };
    match scenarios::unless_panicked(|| (scenario.on_host)(&view)) {
        Ok(()) => ScenarioSummary {
            name: scenario.name.into(),
            status: Status::Pass,
            seconds: in_dom0.seconds,
            reason: String::new(),
        },
        Err(error) => fail(
            in_dom0.seconds,
            with_console_hint(format!("{error:#}"), &dir),
        ),
    }
}

fn with_console_hint(reason: String, dir: &Path) -> String {
    let console = dir.join("guest-console.log");
    if console.exists() {
        format!("{reason} (guest console: {})", console.display())
    } else {
        reason
    }
}

/// The version Xen announces on the serial console, e.g. `4.17.5-pv-mem-access`.
fn xen_version(serial: &Path) -> Option<String> {
    let log = std::fs::read(serial).ok()?;
    let log = String::from_utf8_lossy(&log);
    let at = log.find("Xen version ")?;
    log[at + "Xen version ".len()..]
        .split_whitespace()
        .next()
        .map(str::to_string)
}
