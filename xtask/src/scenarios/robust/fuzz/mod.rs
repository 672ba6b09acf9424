//! `robust/fuzz`: ten thousand random calls of the control interface from dom0 against a
//! running, monitored test guest, dom0, Xen and domains no one has (`gen` says what is
//! drawn and what is left out), from a seeded SplitMix64 (`rng`): the seed is printed by
//! `cargo xtask e2e` and kept in `seed.txt`; `cargo xtask e2e --seed N` replays a run.
//!
//! Whatever the calls did, afterwards: Xen is alive (it answers), the guest is too and
//! finishes its pattern once dom0 puts it back to normal (a ring, default rwx, access not
//! required, then no ring), the shadow pool is 0 once the ring is gone, every page comes
//! back when the guest is destroyed, and Xen printed no ASSERT/WARN/BUG (the log check of
//! every scenario). The calls' outcomes are counted per kind and errno in `outcomes.txt`.

mod gen;
mod rng;

use crate::scenarios::abi::destroy_while_monitored::{available_pages, settle};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use libxc::access::Access;
use libxc::memory::{set_mem_access_mfn, AccessTarget};
use libxc::monitor::{
    monitor_disable, monitor_enable, set_access_required, shadow_allocation_mib, shared_info_frame,
    RingMapping,
};
use libxc::privcmd::Privcmd;
use libxc::sysctl::physinfo;
use libxc::xenstore::resolve_domain;
use libxc::DomId;
use test_guest::lines::Line;
use test_guest::patterns::{Pattern, PatternDone, Ready};

use super::counts::{RobustCounts, ROBUST_FILE};
use super::raw::{self as r, FrameList, Lists, Outcome};
use crate::exchange::FUZZ_SEED_VARIABLE;
use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::events::run::{release, GO};
use crate::scenarios::{Dom0, HostView, Scenario};
use gen::{FuzzCall, ListChoice, ListPlace, Pools};
use rng::SplitMix64;

pub const SCENARIO: Scenario = Scenario {
    name: "robust/fuzz",
    in_dom0,
    on_host,
};

const GUEST: &str = "fuzz";
/// How many random calls.
pub const CALLS: u64 = 10_000;
/// Pages Xen or dom0 may keep for good as a guest comes and goes (as
/// `abi/destroy-while-monitored` allows).
const SLACK: i64 = 2;

fn seed() -> Result<u64> {
    match std::env::var(FUZZ_SEED_VARIABLE) {
        Ok(text) => text
            .parse()
            .with_context(|| format!("{FUZZ_SEED_VARIABLE}={text:?} is not a number")),
        // Run by hand without the harness's seed: the clock's.
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64),
    }
}

/// Makes one call.
fn make(privcmd: &Privcmd, call: &FuzzCall) -> Outcome {
    match call {
        FuzzCall::AccessOp {
            op,
            lists,
            cmd_bits,
        } => {
            let lists = match lists {
                None => None,
                Some(ListChoice::Entries(entries)) => Some(Lists::Entries(entries)),
                Some(ListChoice::Unmapped) => Some(Lists::At {
                    frames: r::UNMAPPED,
                    accesses: r::UNMAPPED,
                }),
                Some(ListChoice::UnmappedAccess(frame)) => Some(Lists::UnmappedAccess(*frame)),
                Some(ListChoice::Misaligned(entries)) => Some(Lists::Misaligned(entries)),
            };
            r::access_op(privcmd, *op, lists, *cmd_bits)
        }
        FuzzCall::VmEvent { domain, op, mode } => r::vm_event(privcmd, *domain, *op, *mode),
        FuzzCall::Monitor { domain, op, event } => r::monitor_op(privcmd, *domain, *op, *event),
        FuzzCall::AccessRequired { domain, value } => {
            r::set_access_required(privcmd, *domain, *value)
        }
        FuzzCall::Acquire { request, list } => {
            let list = match list {
                ListPlace::Buffer => FrameList::Buffer,
                ListPlace::Null => FrameList::Null,
                ListPlace::Unmapped => FrameList::At(r::UNMAPPED),
            };
            r::acquire(privcmd, *request, list).map(|(nr, _)| u64::from(nr))
        }
    }
}

/// Puts the guest back to normal whatever the calls left: a ring (enabled again if a call
/// disabled it), every frame back to the default rwx, access not required, then no ring.
fn restore(privcmd: &Privcmd, guest: DomId) -> Result<()> {
    match monitor_enable(privcmd, guest) {
        Ok(_) => {}
        Err(error) if error.errno.map(|errno| errno as i32) == Some(r::EBUSY) => {}
        Err(error) => return Err(error).context("enabling the ring again"),
    }
    set_mem_access_mfn(privcmd, guest, AccessTarget::Default, Access::Rwx)?;
    set_access_required(privcmd, guest, false)?;
    monitor_disable(privcmd, guest)?;
    Ok(())
}

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let seed = seed()?;
    dom0.save("seed.txt", format!("{seed}\n"))?;
    println!("E2E-FUZZ seed {seed}");
    let privcmd = Privcmd::open()?;
    let pages_before = available_pages(&privcmd)?;
    let guest = dom0.create_guest(&GuestConfig {
        name: GUEST,
        memory_mib: 16,
        vcpus: 1,
        cmdline: "p2m pattern=write-sweep",
    })?;
    let domid = resolve_domain(GUEST)?;
    let go_pfn = guest.wait_for::<Ready>(Duration::from_secs(60))?.go_pfn;
    monitor_enable(&privcmd, domid)?;
    let ring_frame = RingMapping::map(&privcmd, domid)?.frame;
    let pools = Pools {
        guest: domid,
        guest_frames: guest.p2m_frames()?,
        dom0_frame: shared_info_frame(&privcmd, DomId(0))?.0,
        xen_frame: ring_frame.0,
        max_frame: physinfo(&privcmd)?.max_mfn,
    };

    let mut rng = SplitMix64::new(seed);
    let mut outcomes: BTreeMap<(&str, i32), u64> = BTreeMap::new();
    let start = Instant::now();
    for index in 0..CALLS {
        let call = gen::next(&mut rng, &pools);
        let errno = match make(&privcmd, &call) {
            Ok(_) => 0,
            Err(errno) => errno,
        };
        *outcomes.entry((call.kind(), errno)).or_insert(0) += 1;
        if (index + 1) % 1000 == 0 {
            // On the serial line: should Xen die, the log shows how far the run got (the
            // seed and the count replay it; the call is cut short, lists can be long).
            let last: String = format!("{call:?}").chars().take(160).collect();
            println!("E2E-FUZZ {} calls, last {last}", index + 1);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    // Xen is alive and still answers the first question any listener asks.
    let version = r::vm_event(&privcmd, r::DOMID_INVALID, r::GET_VERSION, r::MONITOR);
    ensure!(
        version == Ok(7),
        "vm_event GET_VERSION after the calls: {version:?}"
    );

    restore(&privcmd, domid)?;
    let shadow = shadow_allocation_mib(&privcmd, domid)?;
    release(GUEST, go_pfn, GO)?;
    let done = guest.wait_for::<PatternDone>(Duration::from_secs(120));
    guest.save_console()?;
    done?;
    guest.destroy(Duration::from_secs(30))?;
    let pages_after = settle(&privcmd, pages_before)?;

    let mut report = format!(
        "seed={seed} calls={CALLS} seconds={seconds:.1} shadow_mib_after_disable={shadow} \
         pages_before={pages_before} pages_after={pages_after}\n"
    );
    for ((kind, errno), count) in &outcomes {
        writeln!(report, "{kind} errno={errno} count={count}")?;
    }
    dom0.save("outcomes.txt", &report)?;
    let leaked = (pages_before as i64 - pages_after as i64 - SLACK).max(0) as u64;
    let counts = RobustCounts {
        fuzz_calls: CALLS,
        leaked_pages: leaked,
        ..RobustCounts::default()
    };
    dom0.save(ROBUST_FILE, counts.to_json())?;
    ensure!(
        shadow == 0,
        "the shadow pool is {shadow} MiB after disabling"
    );
    ensure!(
        leaked == 0,
        "{leaked} pages were not given back (before {pages_before}, after {pages_after})"
    );
    Ok(())
}

fn on_host(view: &HostView) -> Result<()> {
    let report = view.read("outcomes.txt")?;
    let first = report.lines().next().unwrap_or_default();
    ensure!(first.contains(&format!("calls={CALLS}")), "{first}");
    // Every call has its outcome line: the counts add up to the calls.
    let counted: u64 = report
        .lines()
        .skip(1)
        .filter_map(|line| line.rsplit("count=").next()?.parse::<u64>().ok())
        .sum();
    ensure!(
        counted == CALLS,
        "the outcomes count {counted} calls, not {CALLS}"
    );
    let console = view.read("guest-console.log")?;
    ensure!(
        PatternDone::find(&console).is_some_and(|done| done.pattern == Pattern::WriteSweep),
        "the guest did not finish its pattern"
    );
    ensure!(!console.contains("TEST-GUEST FAIL"), "the guest failed");
    Ok(())
}
