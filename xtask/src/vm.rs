//! `cargo xtask vm`: the same nested system for a person. Without `--script` the terminal
//! becomes dom0's console with a shell (`exit` ends the machine); with `--script FILE` the
//! script runs in dom0 (from `/out`) and its exit status becomes ours. `--add HOST=DOM0` puts
//! extra files into dom0; whatever is left in dom0's `/out` comes back to `target/vm/out/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::e2e::{build_system, Phases};
use crate::exchange::{self, AddedFile, Job};
use crate::layout::Layout;
use crate::progress::{step, Phase};
use crate::qemu::{Ending, Machine};

const SCRIPT_IN_DOM0: &str = "/root/vm-script.sh";

pub fn run(script: Option<PathBuf>, add: &[String], timeout: Option<u64>) -> Result<ExitCode> {
    let mut added: Vec<(PathBuf, String)> = add
        .iter()
        .map(|spec| parse_add(spec))
        .collect::<Result<_>>()?;
    let job = match &script {
        Some(path) => {
            if !path.is_file() {
                bail!("--script {}: no such file", path.display());
            }
            added.push((path.clone(), SCRIPT_IN_DOM0.to_string()));
            Job::Script {
                path: SCRIPT_IN_DOM0.into(),
            }
        }
        None => Job::Shell,
    };
    let layout = Layout::new();
    let sh = Shell::new()?;
    let (system, _) = build_system(
        &sh,
        &layout,
        &crate::xen_build::BOOTED,
        &mut Phases::default(),
    )?;

    let results = layout.vm_results();
    if results.exists() {
        std::fs::remove_dir_all(&results)?;
    }
    std::fs::create_dir_all(&results)?;
    let disk = results.join("exchange.img");
    let files: Vec<AddedFile> = added
        .iter()
        .map(|(host, dom0)| AddedFile { host, dom0 })
        .collect();
    exchange::write_job(&disk, &job, &files)?;

    let interactive = script.is_none();
    let phase = Phase::start("boot", "Xen + dom0 under QEMU (TCG)");
    if interactive {
        step("the terminal is dom0's console once it is up; Ctrl-A three times switches to Xen");
    }
    let machine = Machine {
        xen: &system.xen,
        dom0_kernel: &system.dom0_kernel,
        dom0_initramfs: &system.dom0_initramfs,
        exchange_disk: &disk,
        run_dir: &results,
        timeout: timeout.map(Duration::from_secs),
        interactive,
    };
    // A script's run shows dom0's console; Xen's own lines stay in the serial log.
    let boot = machine.boot(|line| {
        if !interactive && !line.starts_with("(XEN)") {
            println!("{line}");
        }
    })?;
    phase.finish();
    let out = results.join("out");
    match boot.ending {
        Ending::Agent { .. } => {
            let report =
                exchange::read_results(&disk, &out).context("reading what dom0 left in /out")?;
            step(&format!("dom0's /out is in {}", out.display()));
            if let Some(reason) = report.reason {
                bail!("the dom0 agent failed: {reason}");
            }
            let status = report.script_status.unwrap_or(0);
            Ok(ExitCode::from(u8::try_from(status).unwrap_or(1)))
        }
        Ending::Stopped { reason, .. } => {
            bail!("{reason} (serial log: {})", boot.serial_log.display())
        }
        Ending::QemuExited { code } => bail!(
            "QEMU exited unexpectedly ({code:?}); serial log: {}",
            boot.serial_log.display()
        ),
    }
}

fn parse_add(spec: &str) -> Result<(PathBuf, String)> {
    let Some((host, dom0)) = spec.split_once('=') else {
        bail!("--add {spec}: expected HOST_PATH=DOM0_PATH");
    };
    if !Path::new(host).is_file() {
        bail!("--add {spec}: {host} is not a file");
    }
    if !dom0.starts_with('/') || dom0.split('/').any(|part| part == "..") {
        bail!("--add {spec}: the dom0 path must be absolute, without `..`");
    }
    Ok((PathBuf::from(host), dom0.to_string()))
}
