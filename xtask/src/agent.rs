//! The dom0 agent: this binary running as init of the nested dom0 (`rdinit=/usr/bin/xtask
//! -- dom0-agent`). It brings dom0 up (file systems, Xen drivers, xenstored, xenconsoled),
//! reads its job from the exchange disk, runs the scenarios' dom0 halves (or a shell, or a
//! script), writes `/out` back onto the disk and stops QEMU through the isa-debug-exit port.
//!
//! Progress lines starting with `E2E-` go to the console, which Xen copies to the serial
//! line the host watches. As PID 1 the agent must never return: every path ends in the exit
//! port, and a power-off should that not stop the machine.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::io::AsFd;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, MsFlags};

use crate::dom0_image::MODULES_ORDER_PATH;
use crate::exchange::{self, AgentReport, Job};
use crate::scenarios::{self, ScenarioResult, Status};

const PATH: &str = "/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const LIBRARY_PATH: &str = "/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu";
const EXCHANGE_DISK: &str = "/dev/vda";
pub const OUT: &str = "/out";
/// Values written to the isa-debug-exit port (QEMU exits with `(value << 1) | 1`).
const EXIT_COMPLETED: u8 = 0x10;
const EXIT_FAILED: u8 = 0x11;

/// Prints a progress line the host shows (and parses).
pub fn phase(name: &str) {
    println!("E2E-PHASE {name} uptime={:.1}", uptime());
}

fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

pub fn run() -> Result<ExitCode> {
    if std::process::id() != 1 {
        bail!("dom0-agent is the init of the nested dom0; it does not run on a host");
    }
    // Mount first, so the marker carries dom0's uptime; a failure still reaches the exit port.
    let mounted = mount_file_systems();
    phase("dom0-userspace");
    let report = match bring_up(mounted).and_then(|job| run_job(&job)) {
        Ok(script_status) => AgentReport {
            completed: true,
            reason: None,
            script_status,
        },
        Err(error) => failed(error),
    };
    collect_logs();
    let code = match save_results(&report) {
        Ok(()) if report.completed => EXIT_COMPLETED,
        Ok(()) => EXIT_FAILED,
        Err(error) => {
            println!("E2E-AGENT cannot write the results: {error:#}");
            EXIT_FAILED
        }
    };
    phase(if code == EXIT_COMPLETED {
        "done"
    } else {
        "failed"
    });
    power_off(code)
}

fn failed(error: anyhow::Error) -> AgentReport {
    println!("E2E-AGENT error: {error:#}");
    AgentReport {
        completed: false,
        reason: Some(format!("{error:#}")),
        script_status: None,
    }
}

fn bring_up(mounted: Result<()>) -> Result<Job> {
    mounted?;
    std::env::set_var("PATH", PATH);
    std::env::set_var("LD_LIBRARY_PATH", LIBRARY_PATH);
    std::env::set_var("HOME", "/root");
    run_quiet("/bin/busybox", &["--install", "-s"])?;
    load_modules()?;
    mount_fs("xenfs", "/proc/xen", "xenfs")?;
    let job = read_job()?;
    start_toolstack()?;
    phase("toolstack-up");
    let info = output("xl", &["info"])?;
    std::fs::write(Path::new(OUT).join("xl-info.txt"), info)?;
    Ok(job)
}

fn mount_fs(source: &str, target: &str, kind: &str) -> Result<()> {
    std::fs::create_dir_all(target)?;
    mount(
        Some(source),
        target,
        Some(kind),
        MsFlags::empty(),
        None::<&str>,
    )
    .with_context(|| format!("mounting {kind} on {target}"))
}

fn mount_file_systems() -> Result<()> {
    mount_fs("proc", "/proc", "proc")?;
    mount_fs("sysfs", "/sys", "sysfs")?;
    mount_fs("devtmpfs", "/dev", "devtmpfs")?;
    mount_fs("devpts", "/dev/pts", "devpts")?;
    mount_fs("tmpfs", "/dev/shm", "tmpfs")?;
    mount_fs("tmpfs", "/run", "tmpfs")?;
    mount_fs("tmpfs", "/tmp", "tmpfs")?;
    for dir in [
        "/run/lock",
        "/run/xen",
        "/run/xenstored",
        "/var/log/xen/console",
        OUT,
    ] {
        std::fs::create_dir_all(dir)?;
    }
    Ok(())
}

/// Loads the modules in dependency order (the image lists them so).
fn load_modules() -> Result<()> {
    let order = std::fs::read_to_string(MODULES_ORDER_PATH)?;
    for module in order.lines().filter(|line| !line.is_empty()) {
        let file = File::open(module).with_context(|| format!("opening {module}"))?;
        let params = CString::default();
        match nix::kmod::finit_module(file.as_fd(), &params, nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(errno) => bail!("loading {module}: {errno}"),
        }
    }
    Ok(())
}

fn read_job() -> Result<Job> {
    // The virtio disk appears asynchronously after its driver loads.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !Path::new(EXCHANGE_DISK).exists() {
        if Instant::now() > deadline {
            bail!("the exchange disk {EXCHANGE_DISK} did not appear");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let disk = File::open(EXCHANGE_DISK)?;
    exchange::read_job(disk, Path::new("/"))
}

fn start_toolstack() -> Result<()> {
    // Both daemons fork into the background once they are ready.
    run_quiet("xenstored", &["--pid-file=/run/xenstored.pid"])?;
    run_quiet("xen-init-dom0", &[])?;
    run_quiet(
        "xenconsoled",
        &["--log=guest", "--pid-file=/run/xenconsoled.pid"],
    )?;
    Ok(())
}

fn run_job(job: &Job) -> Result<Option<i32>> {
    match job {
        Job::Scenarios {
            names,
            fuzz_seed,
            bench_runs,
        } => {
            if let Some(seed) = fuzz_seed {
                std::env::set_var(exchange::FUZZ_SEED_VARIABLE, seed.to_string());
            }
            if let Some(runs) = bench_runs {
                std::env::set_var(exchange::BENCH_RUNS_VARIABLE, runs.to_string());
            }
            for name in names {
                run_scenario(name);
            }
            Ok(None)
        }
        Job::Shell => {
            println!(
                "dom0 shell: files left in /out come back to target/vm/out; `exit` ends the VM"
            );
            // On /dev/hvc0 (a real tty, unlike /dev/console) and in a session of its own,
            // the shell gets job control and Ctrl-C.
            let tty = OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/hvc0")?;
            let status = Command::new("setsid")
                .args(["-c", "/bin/sh", "-l"])
                .stdin(tty.try_clone()?)
                .stdout(tty.try_clone()?)
                .stderr(tty)
                .status()?;
            Ok(status.code())
        }
        Job::Script { path } => {
            phase("script-start");
            let status = Command::new("/bin/sh")
                .arg(path)
                .current_dir(OUT)
                .status()?;
            phase("script-end");
            Ok(Some(status.code().unwrap_or(128)))
        }
    }
}

fn run_scenario(name: &str) {
    println!("E2E-SCENARIO-START {name}");
    let start = Instant::now();
    let out = Path::new(OUT).join(name);
    let outcome = match scenarios::find(name) {
        Some(scenario) => std::fs::create_dir_all(&out)
            .map_err(anyhow::Error::from)
            .and_then(|()| {
                scenarios::unless_panicked(|| (scenario.in_dom0)(&scenarios::Dom0::new(&out)))
            }),
        None => Err(anyhow::anyhow!("no scenario is called {name}")),
    };
    let result = ScenarioResult {
        status: if outcome.is_ok() {
            Status::Pass
        } else {
            Status::Fail
        },
        seconds: start.elapsed().as_secs_f64(),
        reason: outcome.err().map(|error| format!("{error:#}")),
    };
    let _ = std::fs::create_dir_all(&out);
    if let Ok(json) = serde_json::to_vec_pretty(&result) {
        let _ = std::fs::write(out.join(scenarios::RESULT_FILE), json);
    }
    println!(
        "E2E-SCENARIO-END {name} {} {:.1}s{}",
        result.status.as_str(),
        result.seconds,
        result
            .reason
            .as_deref()
            .map(|reason| format!(": {reason}"))
            .unwrap_or_default()
    );
}

/// Logs worth having after any run.
fn collect_logs() {
    if let Ok(dmesg) = output("xl", &["dmesg"]) {
        let _ = std::fs::write(Path::new(OUT).join("xl-dmesg.log"), dmesg);
    }
    if let Ok(dmesg) = output("dmesg", &[]) {
        let _ = std::fs::write(Path::new(OUT).join("dom0-dmesg.log"), dmesg);
    }
}

fn save_results(report: &AgentReport) -> Result<()> {
    let disk = OpenOptions::new().write(true).open(EXCHANGE_DISK)?;
    exchange::write_results(&disk, report, Path::new(OUT))?;
    disk.sync_all()?;
    Ok(())
}

fn power_off(code: u8) -> ! {
    // /dev/port is the I/O port space; 0xf4 is where QEMU has its isa-debug-exit device.
    if let Ok(mut port) = OpenOptions::new().write(true).open("/dev/port") {
        let _ = port.seek(SeekFrom::Start(0xf4));
        let _ = port.write_all(&[code]);
    }
    std::thread::sleep(Duration::from_secs(5));
    println!("E2E-AGENT the exit port did not stop QEMU; powering off");
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Runs a program and returns its standard output; a failure carries its standard error.
pub fn output(program: &str, args: &[&str]) -> Result<String> {
    let result = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !result.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            result.status,
            String::from_utf8_lossy(&result.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&result.stdout).into_owned())
}

fn run_quiet(program: &str, args: &[&str]) -> Result<()> {
    output(program, args).map(drop)
}
