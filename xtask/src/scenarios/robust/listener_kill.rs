//! `robust/listener-kill`: `listener monitor` killed (SIGKILL) at random moments of the
//! guest's write storm, again and again: no write goes unaccounted for, the guest always
//! finishes, and Xen gets its memory back.
//!
//! Runs alternate between a one-vCPU guest running `write-sweep` (16 writes) and a two-vCPU
//! guest running `multi-vcpu` (32 writes, both vCPUs at once), its 16 buffer pages rx. In a
//! run: a listener starts, the guest is let go; the listener is killed once its trace holds
//! a random number of events (and a random few microseconds more); the ring is read (what
//! the dead listener left: req_prod - rsp_prod); then, alternately from kill to kill, a new
//! `listener monitor` takes the ring over (it must answer what was left first, flagged
//! recovered) or `listener disable` removes it (Xen releases the waiting vCPUs). The rights
//! stay in force without a ring (patch 0017), so the guest stays on shadows while they
//! restrict anything: once it finished, the default is set to rwx (with a ring for the
//! time: Xen changes rights only with one) and the shadow pool must be back to 0 MiB. Each run has two kills, so the second is followed by a
//! disable and the guest then finishes unmonitored. The random choices come from one seed,
//! printed (`ROBUST_SEED=<n>` at build time repeats a run's choices).
//!
//! Two unmeasured warm-up runs (one of each kind) come first: a boot's first guests and
//! listeners make Xen and dom0 grow tables they keep.
//!
//! A kill that comes too late (the listener had already stopped by itself, the guest having
//! finished) is not counted; runs go on until [`KILLS`] kills.
//!
//! Host checks ([`super::accounting`]): every event is a write of the guest; every write is
//! reported by some listener, or made on a page relaxed or after a disable; every takeover
//! recovered at least what was left; every guest finished its pattern; at least [`KILLS`]
//! kills, at least [`KILLS_EACH`] with each vCPU count; free memory back to within
//! [`SLACK_PAGES`] pages.

use std::os::unix::process::ExitStatusExt;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use libxc::monitor::{monitor_attach, shadow_allocation_mib, RingMapping};
use libxc::privcmd::Privcmd;
use libxc::ring::BackRing;
use libxc::xenstore::resolve_domain;
use libxc::{DomId, Errno};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use test_guest::lines::Line;
use test_guest::patterns::{PatternDone, Ready};

use super::accounting::{self, Segment, Tally, Then};
use super::{leaked, Counters, SLACK_PAGES};
use crate::scenarios::abi::destroy_while_monitored::{available_pages, settle};
use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::events::run::{release, start_listener, wait, wait_for_header_in, GO};
use crate::scenarios::events::trace::Account;
use crate::scenarios::events::trace::BUFFER_PFN;
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "robust/listener-kill",
    in_dom0,
    on_host,
};

/// Kills to reach, and the fewest with each vCPU count.
const KILLS: u64 = 24;
const KILLS_EACH: u64 = 10;
/// Runs at most (kills that come too late, the guest done first, are not counted: on a
/// loaded machine that was 10 runs in 20, so there is room for twice as many).
const MAX_RUNS: usize = 40;
/// Kills per run: the first followed by a takeover, the second by a disable.
const KILLS_PER_RUN: usize = 2;
/// The index of the first, unmeasured, warm-up run (its files are kept under that index).
const WARM_UP: usize = 100;
/// The write events a run's first listener sees at most (one per buffer page).
const PAGES: u64 = test_guest::workload::BUFFER_PAGES as u64;

/// splitmix64: small, seedable, good enough to pick moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..bound (bound > 0).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// The seed: `ROBUST_SEED` when xtask was built, else the clock.
fn seed() -> u64 {
    option_env!("ROBUST_SEED")
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |elapsed| elapsed.as_nanos() as u64)
        })
}

/// One run, as the host half reads it back (`runs.json`).
#[derive(Debug, Serialize, Deserialize)]
struct Run {
    index: usize,
    vcpus: u32,
    /// The guest's console, among the scenario's files.
    console: String,
    segments: Vec<Segment>,
    /// Shadow pool after each `listener disable` (MiB): still the domain's minimum while
    /// its rights restrict anything (they stay in force without a ring, patch 0017).
    shadow_after_disable: Vec<u32>,
    /// Shadow pool once the guest finished (every page it wrote relaxed), then once the
    /// default is rwx again (it supersedes every frame's access: nothing restricted, so the
    /// guest leaves shadow paging), in MiB.
    shadow_after_finish: Option<u32>,
    shadow_after_rwx_default: Option<u32>,
    kills: u64,
}

/// The events in the trace at `path` so far.
fn events_in(path: &str) -> usize {
    std::fs::read_to_string(path)
        .map(|text| text.matches("\"type\":\"event\"").count())
        .unwrap_or(0)
}

/// Requests on the domain's ring nobody answered: req_prod - rsp_prod; `None` when the ring
/// is gone (the listener was killed in its own teardown, the guest having finished).
fn ring_pending(privcmd: &Privcmd, domid: DomId) -> Result<Option<u32>> {
    match monitor_attach(privcmd, domid) {
        Err(error) if error.is(Errno::ENODEV) => return Ok(None),
        _ => {}
    }
    let mut mapping =
        RingMapping::map(privcmd, domid).context("mapping the ring after the kill")?;
    // Only its header is read here.
    let ring = BackRing::new(&mut mapping);
    let header = ring.header();
    Ok(Some(header.req_prod.wrapping_sub(header.rsp_prod)))
}

/// Waits until the trace at `path` holds `events` events, or the guest finished, or 20 s.
fn wait_for_events(path: &str, events: usize, console: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut polls = 0u32;
    while events_in(path) < events && Instant::now() < deadline {
        polls += 1;
        // The console is a bigger file: looked at every 50th poll.
        if polls.is_multiple_of(50) && PatternDone::find(&console()).is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Kills `child` with SIGKILL; whether the kill is what ended it (not its own exit before).
fn kill_listener(child: &mut Child) -> Result<bool> {
    if child.try_wait()?.is_some() {
        return Ok(false);
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL)?;
    let status = child.wait()?;
    Ok(status.signal() == Some(Signal::SIGKILL as i32))
}

fn listener_options() -> Vec<String> {
    let mut options = vec!["--default-access".to_string(), "rwx".to_string()];
    for page in 0..PAGES {
        options.push("--access".into());
        options.push(format!("{:#x}=rx", BUFFER_PFN + page));
    }
    options
}

/// One run; `kills` counts every kill of the scenario (it decides what follows each).
fn one_run(
    dom0: &Dom0,
    privcmd: &Privcmd,
    rng: &mut Rng,
    index: usize,
    kills: &mut u64,
    log: &mut String,
) -> Result<Run> {
    let vcpus = 1 + (index % 2) as u32;
    let name = format!("kill-{index}");
    let guest = dom0.create_guest(&GuestConfig {
        name: &name,
        memory_mib: 32,
        vcpus,
        cmdline: if vcpus == 1 {
            "pattern=write-sweep"
        } else {
            "pattern=multi-vcpu"
        },
    })?;
    let go_pfn = guest.wait_for::<Ready>(Duration::from_secs(60))?.go_pfn;
    let domid = resolve_domain(&name)?;
    let options = listener_options();
    let mut run = Run {
        index,
        vcpus,
        console: format!("console-{index}.log"),
        segments: Vec::new(),
        shadow_after_disable: Vec::new(),
        shadow_after_finish: None,
        shadow_after_rwx_default: None,
        kills: 0,
    };
    let trace_path = |segment: usize| format!("/tmp/kill-{index}-{segment}.jsonl");
    let mut listener = start_listener(&name, &trace_path(0), &options)?;
    wait_for_header_in(&mut listener, &trace_path(0))?;
    release(&name, go_pfn, GO)?;
    let mut seen = 0u64;
    let mut alive = Some(listener);
    for segment in 0..KILLS_PER_RUN {
        let path = trace_path(segment);
        let Some(mut child) = alive.take() else { break };
        let target = rng.below(PAGES.saturating_sub(seen).max(1));
        let jitter = Duration::from_micros(rng.below(3000));
        let before = events_in(&path);
        wait_for_events(&path, before + target as usize, || guest.console());
        std::thread::sleep(jitter);
        let killed = kill_listener(&mut child)?;
        let events = events_in(&path);
        seen += events.saturating_sub(before) as u64;
        let file = format!("trace-{index}-{segment}.jsonl");
        dom0.save(&file, std::fs::read(&path).unwrap_or_default())?;
        if !killed {
            log.push_str(&format!(
                "run {index} vcpus={vcpus} listener {segment}: stopped by itself before the \
                 kill (events={events})\n"
            ));
            run.segments.push(Segment {
                trace: file,
                then: Then::End,
                pending_at_kill: None,
            });
            break;
        }
        let then = if kills.is_multiple_of(2) {
            Then::TakeOver
        } else {
            Then::Disable
        };
        *kills += 1;
        run.kills += 1;
        let pending = ring_pending(privcmd, domid)?;
        log.push_str(&format!(
            "run {index} vcpus={vcpus} listener {segment}: killed after {events} events \
             (waited for {target} more, then {} us), {} pending, then {then:?}\n",
            jitter.as_micros(),
            pending.map_or("ring gone:".to_string(), |count| count.to_string())
        ));
        run.segments.push(Segment {
            trace: file,
            then,
            pending_at_kill: pending,
        });
        match then {
            Then::TakeOver => {
                let next = trace_path(segment + 1);
                let mut child = start_listener(&name, &next, &options)?;
                wait_for_header_in(&mut child, &next)?;
                alive = Some(child);
            }
            Then::Disable | Then::End => {
                dom0.run("listener", &["disable", "--domain", &name])?;
                run.shadow_after_disable
                    .push(shadow_allocation_mib(privcmd, domid)?);
            }
        }
    }
    // A listener still alive (no kill was left for it) stops by itself on the poweroff.
    let finished = guest.wait_for::<PatternDone>(Duration::from_secs(120));
    if let Some(mut child) = alive {
        let segment = run.segments.len();
        let status = guest
            .wait_for_shutdown(Duration::from_secs(60))
            .and_then(|_| wait(&mut child, Duration::from_secs(30)));
        let file = format!("trace-{index}-{segment}.jsonl");
        dom0.save(
            &file,
            std::fs::read(trace_path(segment)).unwrap_or_default(),
        )?;
        run.segments.push(Segment {
            trace: file,
            then: Then::End,
            pending_at_kill: None,
        });
        status?;
    }
    dom0.save(&run.console, guest.console())?;
    finished?;
    guest.wait_for_shutdown(Duration::from_secs(60))?;
    run.shadow_after_finish = Some(shadow_allocation_mib(privcmd, domid)?);
    // Rights can be changed only with a ring (set_access without one is -ENODEV): a ring
    // for the time of the new default.
    for command in [
        &["enable"][..],
        &["set-access", "--default", "rwx"],
        &["disable"],
    ] {
        let mut args = command.to_vec();
        args.extend(["--domain", name.as_str()]);
        dom0.run("listener", &args)?;
    }
    run.shadow_after_rwx_default = Some(shadow_allocation_mib(privcmd, domid)?);
    guest.destroy(Duration::from_secs(30))?;
    Ok(run)
}

/// A run's tally, from the files the dom0 half left in `dir`.
fn tally(dir: &std::path::Path, run: &Run) -> Result<Tally> {
    let read = |file: &str| {
        std::fs::read_to_string(dir.join(file)).with_context(|| format!("reading {file}"))
    };
    let account = Account::parse(&read(&run.console)?)?;
    ensure!(
        account.done,
        "run {}: the guest did not finish its pattern",
        run.index
    );
    let traces = run
        .segments
        .iter()
        .map(|segment| accounting::parse_trace(&read(&segment.trace)?))
        .collect::<Result<Vec<_>>>()?;
    accounting::account(&account.touches, &run.segments, &traces, run.vcpus)
        .with_context(|| format!("run {}", run.index))
}

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let privcmd = Privcmd::open()?;
    let seed = seed();
    let mut rng = Rng(seed);
    let mut log = format!("seed {seed}\n");
    println!("robust/listener-kill: seed {seed}");
    // A boot's first guests, and listeners, make Xen and dom0 grow tables they keep (event
    // channel buckets, grant maptrack frames): one unmeasured run of each kind first, its
    // kills not counted.
    let mut warm_up_kills = 0;
    for index in [WARM_UP, WARM_UP + 1] {
        one_run(
            dom0,
            &privcmd,
            &mut rng,
            index,
            &mut warm_up_kills,
            &mut log,
        )
        .with_context(|| format!("warm-up run {index} (seed {seed})"))?;
    }
    let before = settle(&privcmd, 0)?;
    let mut kills = 0;
    let mut runs = Vec::new();
    let mut outcome = Ok(());
    for index in 0..MAX_RUNS {
        if kills >= KILLS {
            break;
        }
        let run_start = available_pages(&privcmd)?;
        match one_run(dom0, &privcmd, &mut rng, index, &mut kills, &mut log) {
            Ok(run) => {
                // Per run, so that a loss can be matched with what the run did.
                let run_end = settle(&privcmd, run_start)?;
                log.push_str(&format!(
                    "run {index}: free pages {run_start} -> {run_end}\n"
                ));
                runs.push(run)
            }
            Err(error) => {
                outcome = Err(error.context(format!("run {index} (seed {seed})")));
                break;
            }
        }
    }
    let after = settle(&privcmd, before)?;
    log.push_str(&format!(
        "memory: before={before} after={after} now={}\n",
        available_pages(&privcmd)?
    ));
    dom0.save("kills.txt", &log)?;
    dom0.save("runs.json", serde_json::to_string_pretty(&runs)?)?;
    outcome?;
    let mut total = Tally::default();
    for run in &runs {
        total.add(&tally(dom0.dir(), run)?);
    }
    Counters {
        listener_kills: Some(kills),
        leaked_pages: Some(leaked(before, after)),
        lost_events: Some(total.lost),
    }
    .save(dom0)
}

fn on_host(view: &HostView) -> Result<()> {
    let runs: Vec<Run> = serde_json::from_str(&view.read("runs.json")?)?;
    let log = view.read("kills.txt")?;
    let mut total = Tally::default();
    let mut kills_by_vcpus = [0u64; 2];
    for run in &runs {
        let tally = tally(&view.dir, run)?;
        total.add(&tally);
        kills_by_vcpus[run.vcpus as usize - 1] += run.kills;
        ensure!(
            run.shadow_after_rwx_default == Some(0),
            "run {}: shadow pool {:?} MiB after listener disable and a default of rwx (after \
             the disable: {:?}, once the guest finished: {:?})",
            run.index,
            run.shadow_after_rwx_default,
            run.shadow_after_disable,
            run.shadow_after_finish
        );
    }
    let counters: serde_json::Value = serde_json::from_str(&view.read(Counters::FILE)?)?;
    let kills = counters["listener_kills"]
        .as_u64()
        .context("no listener_kills")?;
    let leaked = counters["leaked_pages"]
        .as_u64()
        .context("no leaked_pages")?;
    let memory = log.lines().last().unwrap_or("");
    let shadows: Vec<String> = runs
        .iter()
        .map(|run| {
            format!(
                "{:?}/{}/{}",
                run.shadow_after_disable,
                run.shadow_after_finish.unwrap_or(u32::MAX),
                run.shadow_after_rwx_default.unwrap_or(u32::MAX)
            )
        })
        .collect();
    let summary = format!(
        "{kills} kills ({} with 1 vCPU, {} with 2) in {} runs; {} writes: {} reported ({} \
         twice), {} after a relax, {} after a disable, {} lost; {} requests recovered; {memory}; \
         shadow MiB per run after disable / guest finished / default rwx: {}\n",
        kills_by_vcpus[0],
        kills_by_vcpus[1],
        runs.len(),
        total.writes,
        total.reported,
        total.duplicates,
        total.after_relax,
        total.after_disable,
        total.lost,
        total.recovered,
        shadows.join(" ")
    );
    view.save_note("summary.txt", &summary)?;
    ensure!(
        total.lost == 0,
        "writes or requests lost:\n{}",
        total.lost_detail.join("\n")
    );
    ensure!(total.balanced(), "the account does not add up: {summary}");
    ensure!(kills >= KILLS, "only {kills} kills: {summary}");
    ensure!(
        kills_by_vcpus.iter().all(|&count| count >= KILLS_EACH),
        "kills with 1 and 2 vCPUs: {kills_by_vcpus:?}"
    );
    if leaked > SLACK_PAGES {
        bail!("{leaked} pages of free memory not back: {memory}");
    }
    Ok(())
}
