//! The exchange disk: one raw virtio-blk image that carries the job into dom0 and the
//! results back out, byte for byte.
//!
//! The host writes a tar holding `job.json` and the files to put into dom0 (under `files/`);
//! the agent reads it before anything else, and at the end writes a tar of dom0's `/out`
//! over it, with `agent.json` (how the agent ended) as its first member. The host only
//! trusts results whose archive starts with that member.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Room for the results; the image is sparse, so this costs nothing on the host's disk.
const DISK_BYTES: u64 = 256 << 20;
const JOB_MEMBER: &str = "job.json";
const FILES_PREFIX: &str = "files/";
pub const AGENT_MEMBER: &str = "agent.json";

/// What dom0 is asked to do.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum Job {
    /// Run these scenarios, in this order. `fuzz_seed` replays a `robust/fuzz` run (the
    /// agent hands it over as [`FUZZ_SEED_VARIABLE`]).
    Scenarios {
        names: Vec<String>,
        #[serde(default)]
        fuzz_seed: Option<u64>,
        /// The runs of `bench/figures` (the agent hands it over as
        /// [`BENCH_RUNS_VARIABLE`]); one when absent.
        #[serde(default)]
        bench_runs: Option<u32>,
    },
    /// Give the console an interactive shell.
    Shell,
    /// Run this shell script (a path in dom0) and report its exit status.
    Script { path: String },
}

/// The environment variable that carries `cargo xtask e2e --seed` to `robust/fuzz` in dom0.
pub const FUZZ_SEED_VARIABLE: &str = "PV_MEM_ACCESS_FUZZ_SEED";

/// The environment variable that carries `cargo xtask bench --runs` to `bench/figures`.
pub use crate::scenarios::bench::RUNS_VARIABLE as BENCH_RUNS_VARIABLE;

/// How the agent ended, written first into the results.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AgentReport {
    /// True when the agent got through its job (scenario failures included).
    pub completed: bool,
    /// Why it did not, when it did not.
    pub reason: Option<String>,
    /// The exit status of a `Script` job.
    pub script_status: Option<i32>,
}

/// A file to put into dom0.
pub struct AddedFile<'a> {
    pub host: &'a Path,
    pub dom0: &'a str,
}

/// Writes the disk image holding `job` and `files`.
pub fn write_job(image: &Path, job: &Job, files: &[AddedFile]) -> Result<()> {
    let file = std::fs::File::create(image)?;
    let mut archive = tar::Builder::new(file);
    append_bytes(&mut archive, JOB_MEMBER, &serde_json::to_vec(job)?)?;
    for added in files {
        let data = std::fs::read(added.host)
            .with_context(|| format!("reading {}", added.host.display()))?;
        let name = format!("{FILES_PREFIX}{}", added.dom0.trim_start_matches('/'));
        append_bytes(&mut archive, &name, &data)?;
    }
    let file = archive.into_inner()?;
    file.set_len(DISK_BYTES.max(file.metadata()?.len() + (64 << 20)))?;
    Ok(())
}

fn append_bytes<W: Write>(archive: &mut tar::Builder<W>, name: &str, data: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    archive.append_data(&mut header, name, data)?;
    Ok(())
}

/// Dom0 side: reads the job and puts its files in place (under `root`, `/` in dom0).
pub fn read_job(disk: impl Read, root: &Path) -> Result<Job> {
    let mut archive = tar::Archive::new(disk);
    let mut job = None;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if name == JOB_MEMBER {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            job = Some(serde_json::from_str(&text)?);
        } else if let Some(path) = name.strip_prefix(FILES_PREFIX) {
            let target = root.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            entry.unpack(&target)?;
        }
    }
    job.context("the exchange disk holds no job")
}

/// Dom0 side: writes the report and the results directory over the disk.
pub fn write_results(disk: impl Write, report: &AgentReport, results: &Path) -> Result<()> {
    let mut archive = tar::Builder::new(disk);
    append_bytes(&mut archive, AGENT_MEMBER, &serde_json::to_vec(report)?)?;
    archive.follow_symlinks(false);
    archive.append_dir_all(".", results)?;
    archive.into_inner()?.flush()?;
    Ok(())
}

/// Host side: unpacks the results into `into`, or fails when dom0 never wrote any.
pub fn read_results(image: &Path, into: &Path) -> Result<AgentReport> {
    let file = std::fs::File::open(image)?;
    let mut archive = tar::Archive::new(file);
    let mut entries = archive.entries()?;
    let Some(first) = entries.next() else {
        bail!("dom0 wrote no results");
    };
    let mut first = first?;
    if first.path()?.to_string_lossy() != AGENT_MEMBER {
        bail!("dom0 wrote no results (the exchange disk still holds the job)");
    }
    let mut text = String::new();
    first.read_to_string(&mut text)?;
    let report: AgentReport = serde_json::from_str(&text)?;
    std::fs::create_dir_all(into)?;
    for entry in entries {
        let mut entry = entry?;
        // unpack_in refuses paths that would leave `into`.
        entry.unpack_in(into)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_and_results_round_trip() {
        let dir = std::env::temp_dir().join(format!("xtask-exchange-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let extra = dir.join("extra");
        std::fs::write(&extra, b"\x00\x01binary").unwrap();
        let image = dir.join("disk.img");
        let job = Job::Script {
            path: "/root/run.sh".into(),
        };
        write_job(
            &image,
            &job,
            &[AddedFile {
                host: &extra,
                dom0: "/root/extra.bin",
            }],
        )
        .unwrap();
        assert!(std::fs::metadata(&image).unwrap().len() >= DISK_BYTES);

        // Before dom0 writes anything, the image holds no results.
        assert!(read_results(&image, &dir.join("none")).is_err());

        let dom0_root = dir.join("dom0");
        let read = read_job(std::fs::File::open(&image).unwrap(), &dom0_root).unwrap();
        assert!(matches!(read, Job::Script { ref path } if path == "/root/run.sh"));
        assert_eq!(
            std::fs::read(dom0_root.join("root/extra.bin")).unwrap(),
            b"\x00\x01binary"
        );

        let out = dir.join("out");
        std::fs::create_dir_all(out.join("boot")).unwrap();
        std::fs::write(out.join("boot/console.log"), b"TEST-GUEST DONE\n").unwrap();
        let report = AgentReport {
            completed: true,
            reason: None,
            script_status: Some(3),
        };
        let disk = std::fs::OpenOptions::new()
            .write(true)
            .open(&image)
            .unwrap();
        write_results(disk, &report, &out).unwrap();
        let back = dir.join("back");
        assert_eq!(read_results(&image, &back).unwrap(), report);
        assert_eq!(
            std::fs::read(back.join("boot/console.log")).unwrap(),
            b"TEST-GUEST DONE\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
