//! The dom0 half shared by the `events/*` scenarios: a test guest runs one access pattern
//! while `listener monitor` restricts its pages.
//!
//! The guest prints `READY go-pfn=…` and waits; the listener is started and its trace header
//! awaited (it is written only once every requested access is in force); then dom0 writes
//! "GO" into the guest's go page through a foreign mapping, and the guest runs its pattern
//! up to `PATTERN-DONE` (or is crashed). The guest then powers off: the listener sees the
//! domain shut down and stops by itself (exit 4, end `domain-gone`, after answering what was
//! left and disabling the ring; SIGTERM only if something went wrong before). The trace,
//! the guest's console and the listener's exit status are saved for the host half.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libxc::monitor::ForeignMapping;
use libxc::p2m::P2m;
use libxc::privcmd::Privcmd;
use libxc::xenstore::resolve_domain;
use libxc::Pfn;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use test_guest::lines::Line;
use test_guest::patterns::{PatternDone, Ready};

use super::trace::PtSlot;
use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::guest::Guest;
use crate::scenarios::Dom0;

/// The value the guest waits for in its go page, and before the second phase of a
/// two-phase pattern: the guest's own constants.
pub use test_guest::handshake::{GO, GO2};

/// Where the listener writes its trace in dom0.
pub const TRACE: &str = "/tmp/trace.jsonl";

/// One run of a pattern under the listener.
pub struct PatternRun<'a> {
    /// The guest's name, also the domain the listener monitors.
    pub guest: &'a str,
    /// The guest's command line (`pattern=<name>` and any options).
    pub cmdline: &'a str,
    pub vcpus: u32,
    /// `listener monitor` arguments after `--domain` and `--output`.
    pub listener: &'a [&'a str],
    /// Whether the guest is expected to crash instead of finishing its pattern.
    pub expect_crash: bool,
    /// A `listener` command (after `--domain`) run between the two phases of a two-phase
    /// pattern, before the guest is let go again with GO2.
    pub between_phases: Option<&'a [&'a str]>,
    /// Stop the listener (SIGSTOP) for this long once the guest is let go, so its requests
    /// fill the ring and its vCPUs must wait for room.
    pub stall_listener: Option<Duration>,
    /// Make the L1 page table named by the guest's `PT-SLOT` line read-only too.
    pub restrict_page_table: bool,
}

/// Runs the pattern; leaves `trace.jsonl`, `guest-console.log`, `listener.txt` (the exit
/// status) and, for a crash, `shutdown.txt` in the scenario's output. `during` runs after the pattern finished, while the
/// listener still monitors (to read access rights back, say).
pub fn run(dom0: &Dom0, run: &PatternRun, during: impl FnOnce(&Guest) -> Result<()>) -> Result<()> {
    let guest = dom0.create_guest(&GuestConfig {
        name: run.guest,
        memory_mib: 64,
        vcpus: run.vcpus,
        cmdline: run.cmdline,
    })?;
    let result = run_with(dom0, &guest, run, during);
    let saved = guest.save_console();
    let destroyed = guest.destroy(Duration::from_secs(30));
    result.and(saved).and(destroyed)
}

fn run_with(
    dom0: &Dom0,
    guest: &Guest,
    run: &PatternRun,
    during: impl FnOnce(&Guest) -> Result<()>,
) -> Result<()> {
    let go_pfn = guest.wait_for::<Ready>(Duration::from_secs(60))?.go_pfn;
    dom0.save("domid.txt", resolve_domain(run.guest)?.0.to_string())?;
    let mut options: Vec<String> = run.listener.iter().map(|s| s.to_string()).collect();
    if run.restrict_page_table {
        let console = guest.console();
        let slot = PtSlot::find(&console).context("no PT-SLOT line before READY")?;
        options.extend(["--access".to_string(), format!("{:#x}=r", slot.l1_pfn)]);
    }
    let _ = std::fs::remove_file(TRACE);
    let mut listener = start_listener(run.guest, TRACE, &options)?;
    let outcome = drive(dom0, guest, run, go_pfn, &mut listener, during);
    finish(dom0, guest, &mut listener, outcome)
}

/// Ends a monitored run once the guest was driven (`outcome`): if it went well, the guest
/// powers off and the listener stops by itself; otherwise the listener is stopped (resumed
/// first, should it be held with SIGSTOP), and its teardown leaves the guest unmonitored.
/// Leaves `trace.jsonl` and `listener.txt` (its exit status).
pub fn finish(dom0: &Dom0, guest: &Guest, listener: &mut Child, outcome: Result<()>) -> Result<()> {
    let status = match &outcome {
        Ok(()) => guest
            .wait_for_shutdown(Duration::from_secs(120))
            .and_then(|_| wait(listener, Duration::from_secs(30))),
        Err(_) => {
            let pid = Pid::from_raw(listener.id() as i32);
            let _ = kill(pid, Signal::SIGCONT);
            let _ = kill(pid, Signal::SIGTERM);
            wait(listener, Duration::from_secs(60))
        }
    };
    if let Ok(trace) = std::fs::read(TRACE) {
        dom0.save("trace.jsonl", trace)?;
    }
    dom0.save(
        "listener.txt",
        format!("exit={}\n", status.as_ref().map_or(-1, |s| *s)),
    )?;
    outcome.and(status.map(drop))
}

fn drive(
    dom0: &Dom0,
    guest: &Guest,
    run: &PatternRun,
    go_pfn: u64,
    listener: &mut Child,
    during: impl FnOnce(&Guest) -> Result<()>,
) -> Result<()> {
    wait_for_header(listener)?;
    let pid = Pid::from_raw(listener.id() as i32);
    if run.stall_listener.is_some() {
        kill(pid, Signal::SIGSTOP)?;
    }
    release(run.guest, go_pfn, GO)?;
    if let Some(stall) = run.stall_listener {
        std::thread::sleep(stall);
        kill(pid, Signal::SIGCONT)?;
    }
    if let Some(command) = run.between_phases {
        guest.wait_for_matching(|ready: &Ready| ready.phase == 2, Duration::from_secs(180))?;
        let mut args = command.to_vec();
        args.extend(["--domain", run.guest]);
        dom0.run("listener", &args)?;
        release(run.guest, go_pfn, GO2)?;
    }
    if run.expect_crash {
        let shutdown = guest.wait_for_shutdown(Duration::from_secs(120))?;
        return dom0.save("shutdown.txt", shutdown.as_str());
    }
    guest.wait_for::<PatternDone>(Duration::from_secs(180))?;
    during(guest)
}

/// Starts `listener monitor` on `domain`, its trace going to `output`, with `options`.
pub fn start_listener(
    domain: &str,
    output: &str,
    options: &[impl AsRef<std::ffi::OsStr>],
) -> Result<Child> {
    Command::new("listener")
        .args(["monitor", "--domain", domain, "--output", output])
        .args(options)
        .stdout(Stdio::null())
        .spawn()
        .context("starting listener monitor")
}

/// Waits for the trace's header line: the listener has applied every access.
pub fn wait_for_header(listener: &mut Child) -> Result<()> {
    wait_for_header_in(listener, TRACE)
}

/// Waits for the header line of the trace at `path`.
pub fn wait_for_header_in(listener: &mut Child, path: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if std::fs::read_to_string(path).is_ok_and(|text| text.contains("\"type\":\"header\"")) {
            return Ok(());
        }
        if let Some(status) = listener.try_wait()? {
            bail!("listener monitor exited ({status}) before writing its trace header");
        }
        if Instant::now() > deadline {
            bail!("listener monitor wrote no trace header within 60s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lets the guest go: writes `value` into its go page, found through its P2M.
pub fn release(guest: &str, go_pfn: u64, value: u64) -> Result<()> {
    let privcmd = Privcmd::open()?;
    let domain = resolve_domain(guest)?;
    let mfn = P2m::read(&privcmd, domain)?
        .mfn(Pfn(go_pfn))
        .with_context(|| format!("go pfn {go_pfn:#x} has no machine frame in the P2M"))?;
    let page = ForeignMapping::map(&privcmd, domain, &[mfn], true)?;
    // SAFETY: the mapping is one writable page, live until `page` drops; the guest polls
    // this u64 with volatile reads, and an aligned u64 store is atomic on x86.
    unsafe { page.as_ptr().cast::<u64>().write_volatile(value) };
    Ok(())
}

/// Waits for the listener to exit; its status.
pub fn wait(child: &mut Child, limit: Duration) -> Result<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.code().unwrap_or(-1));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("listener monitor did not stop within {}s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
