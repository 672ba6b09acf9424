//! `events/*`: a PV test guest touches its pages in a known pattern (`test-guest` patterns)
//! while `listener monitor` restricts them; Xen's shadow code raises the events, the listener
//! answers, the guest goes on.
//!
//! Each trace is checked twice: against the guest's own account (its `TOUCH` lines: which
//! accesses must have raised an event, on which page, at which address, by which vCPU; and
//! the machine frame of each against the guest's `FRAMES` line), and against a committed
//! snapshot (`snapshot.rs`) with machine frames and instruction pointers left out.
//!
//! Every case restricts only the 16 buffer pages (gfn 0x200..0x20f) unless it says so, so
//! the guest's stack, code and console raise nothing and traces stay the same from build to
//! build.

pub mod access_required;
pub mod emulate_refused;
pub mod run;
mod snapshot;
pub mod trace;

use std::collections::HashMap;

use anyhow::{ensure, Context, Result};
use hypervisor_patch::access::{AccessKind, Outcome, PageAccess};
use test_guest::lines::Line;
use test_guest::pt_write::{PtWrite, Route};

use run::PatternRun;
use trace::{Account, Expected, PtSlot, Trace, BUFFER_PFN};

use crate::scenarios::fault_counts::{fault_count, fault_counts, show_fault_counts};
use crate::scenarios::{Dom0, HostView, Scenario};

/// One `events/*` case.
struct Case {
    /// The scenario's name; the part after `events/` names the guest and the snapshot.
    name: &'static str,
    /// The guest's command line.
    cmdline: &'static str,
    vcpus: u32,
    /// The default access while monitoring.
    default: &'static str,
    /// Buffer pages given their own access: (first page, count, access).
    pages: &'static [(u64, u64, &'static str)],
    /// `relax` (rwx after each event) or `keep`.
    on_event: &'static str,
    /// Whether only each vCPU's own order is guaranteed.
    per_vcpu_order: bool,
    /// Pages whose machine frame the guest replaced during the run.
    new_pages: &'static [u64],
    /// A page whose access is read back after the run, and what it must be.
    access_after: Option<(u64, &'static str)>,
    /// Whether the events are reported without pausing the vCPU (n2rwx).
    asynchronous: bool,
    /// Further checks on the host.
    check: fn(&Account, &Trace) -> Result<()>,
    /// For a two-phase pattern: the default access set between the phases (it supersedes
    /// every page's own access, relaxed ones included).
    new_default: Option<&'static str>,
    /// Whether the listener is stopped while the guest starts, so the ring fills (it holds
    /// 8 requests) and the vCPUs wait for room.
    fill_ring: bool,
    /// Whether the L1 page table of the pt-write pattern's slot is read-only too (its frame
    /// from the guest's `PT-SLOT` line): the guest's own write to it, which Xen emulates,
    /// must be reported like any write.
    restrict_page_table: bool,
}

impl Case {
    /// `listener monitor` options.
    fn listener(&self) -> Vec<String> {
        let mut options = vec![
            "--default-access".to_string(),
            self.default.to_string(),
            "--on-event".to_string(),
            self.on_event.to_string(),
        ];
        for &(first, count, access) in self.pages {
            for page in first..first + count {
                options.push("--access".to_string());
                options.push(format!("{:#x}={access}", BUFFER_PFN + page));
            }
        }
        options
    }

    /// Whether only buffer pages are restricted (otherwise the guest's other pages raise
    /// events too, which are not compared and not in the snapshot: they change with the
    /// guest's build).
    fn buffer_only(&self) -> bool {
        self.default != "rwx" || self.new_default.is_some_and(|access| access != "rwx")
    }

    /// The access a buffer page starts with.
    fn access_of(&self, page: u64) -> PageAccess {
        let name = self
            .pages
            .iter()
            .find(|(first, count, _)| (*first..first + count).contains(&page))
            .map_or(self.default, |(_, _, access)| access);
        page_access(name)
    }

    /// The events the guest's account predicts: each touch, in its vCPU's order, against
    /// its page's access as Xen's decision table (`hypervisor_patch::access`) changes it,
    /// and as the listener's answer does (`relax`: rwx).
    fn expected(&self, account: &Account) -> Vec<Expected> {
        let mut access: HashMap<u64, PageAccess> = HashMap::new();
        let mut expected = Vec::new();
        // The emulated write of the alias's entry comes first (the listener relaxes the
        // table, so the later writes to it raise nothing).
        if let (true, Some(slot)) = (self.restrict_page_table, PtSlot::find(&account.console)) {
            expected.push(Expected {
                vcpu: 0,
                access: 'w',
                pfn: slot.l1_pfn,
                offset: slot.pte_va & 0xfff,
                va: slot.pte_va,
            });
        }
        for (index, touch) in account.touches.iter().enumerate() {
            if let (Some(default), Some(at)) = (self.new_default, account.phase2_at) {
                if index == at {
                    let default = page_access(default);
                    for page in 0..trace::BUFFER_PAGES {
                        access.insert(page, default);
                    }
                }
            }
            let now = *access
                .entry(touch.page)
                .or_insert_with(|| self.access_of(touch.page));
            let kind = match touch.access {
                'r' => AccessKind::Read,
                'w' => AccessKind::Write,
                _ => AccessKind::Fetch,
            };
            let decision = now.decide(kind);
            let after = match decision.outcome {
                Outcome::Allowed => now,
                Outcome::SilentConversion => decision.access_after,
                Outcome::SyncViolation | Outcome::AsyncViolation => {
                    expected.push(Expected::from(touch));
                    if self.on_event == "relax" {
                        PageAccess::Rwx
                    } else {
                        decision.access_after
                    }
                }
            };
            access.insert(touch.page, after);
        }
        expected
    }
}

/// A `xenmem_access_t` name as the listener takes it (libxc-rs parses it), as the decision
/// table's access: `xenmem_access_t` and `p2m_access_t` number n .. n2rwx alike.
fn page_access(name: &str) -> PageAccess {
    name.parse::<libxc::Access>()
        .ok()
        .and_then(|access| PageAccess::from_p2m(u32::from(access as u8)))
        .unwrap_or_else(|| panic!("{name} is not an access a page can hold"))
}

fn nothing_more(_: &Account, _: &Trace) -> Result<()> {
    Ok(())
}

/// Defaults for the fields most cases share.
const CASE: Case = Case {
    name: "",
    cmdline: "",
    vcpus: 1,
    default: "rwx",
    pages: &[],
    on_event: "relax",
    per_vcpu_order: false,
    new_pages: &[],
    access_after: None,
    asynchronous: false,
    check: nothing_more,
    new_default: None,
    fill_ring: false,
    restrict_page_table: false,
};

/// Declares an `events/*` scenario and its case together: the scenario runs exactly the
/// case written next to it.
macro_rules! case {
    ($scenario:ident, $case:expr) => {
        pub const $scenario: Scenario = {
            const THIS: Case = $case;
            Scenario {
                name: THIS.name,
                in_dom0: |dom0| in_dom0(&THIS, dom0),
                on_host: |view| on_host(&THIS, view),
            }
        };
    };
}

case!(
    READ_SWEEP,
    Case {
        name: "events/read-sweep",
        cmdline: "pattern=read-sweep",
        pages: &[(0, 16, "n")],
        ..CASE
    }
);

case!(
    WRITE_SWEEP,
    Case {
        name: "events/write-sweep",
        cmdline: "pattern=write-sweep",
        pages: &[(0, 16, "rx")],
        ..CASE
    }
);

case!(
    EXEC,
    Case {
        name: "events/exec",
        cmdline: "pattern=exec",
        // The copy of the function into the page is a write, allowed; the call is not.
        pages: &[(3, 1, "rw")],
        ..CASE
    }
);

case!(
    STRIDE,
    Case {
        name: "events/stride",
        cmdline: "pattern=stride",
        pages: &[(0, 16, "r")],
        ..CASE
    }
);

case!(
    RX2RW,
    Case {
        name: "events/rx2rw",
        cmdline: "pattern=repeat",
        pages: &[(5, 1, "rx2rw")],
        on_event: "keep",
        access_after: Some((5, "rw")),
        ..CASE
    }
);

case!(
    N2RWX,
    Case {
        name: "events/n2rwx",
        cmdline: "pattern=write-sweep",
        pages: &[(0, 16, "n2rwx")],
        on_event: "keep",
        access_after: Some((0, "rwx")),
        asynchronous: true,
        ..CASE
    }
);

case!(
    PT_WRITE,
    Case {
        name: "events/pt-write",
        cmdline: "pattern=pt-write",
        // The guest maps page 6 at an alias by writing its L1 page table (read-only here, so
        // that write, which Xen emulates, is reported first), then page 9 by mmu_update (a
        // hypercall write to the table, not reported: the listener relaxed the table at the
        // first event; hostile/pt-hypercall-write reports such writes). Writes through
        // either alias are reported: new mappings carry their page's rights.
        pages: &[(6, 1, "r"), (9, 1, "r")],
        restrict_page_table: true,
        check: |account, _| {
            let routes: Vec<Route> = test_guest::lines::bodies(&account.console)
                .filter_map(PtWrite::parse)
                .map(|line| line.route)
                .collect();
            ensure!(
                Route::ALL.iter().all(|route| routes.contains(route)),
                "the guest did not map its alias both ways (only {routes:?})"
            );
            Ok(())
        },
        ..CASE
    }
);

case!(
    XEN_COPY,
    Case {
        name: "events/xen-copy",
        cmdline: "pattern=xen-copy",
        // Xen's copy into the read-only page goes through Xen's own mapping of the frame
        // (patch 0016): not reported, and the page stays read-only, so the guest reads it
        // (allowed), then writes it (reported).
        pages: &[(7, 1, "r")],
        check: |account, _| {
            let copy = test_guest::lines::bodies(&account.console)
                .find_map(test_guest::patterns::XenCopy::parse)
                .context("no XEN-COPY line")?;
            ensure!(
                copy.rc == 0 && copy.text == crate::layout::XEN_EXTRA_VERSION.as_bytes(),
                "Xen's copy did not land: {copy}"
            );
            Ok(())
        },
        ..CASE
    }
);

case!(
    MULTI_VCPU,
    Case {
        name: "events/multi-vcpu",
        cmdline: "pattern=multi-vcpu",
        vcpus: 2,
        // n2rwx does not pause, and the listener is stopped while the guest starts: both
        // vCPUs fill the 8-slot ring and wait for room. Each page's first write is still
        // reported exactly once, in order per vCPU, and both vCPUs finish.
        pages: &[(0, 16, "n2rwx")],
        on_event: "keep",
        per_vcpu_order: true,
        asynchronous: true,
        fill_ring: true,
        ..CASE
    }
);

case!(
    DEFAULT_GENERATION,
    Case {
        name: "events/default-generation",
        cmdline: "pattern=generation",
        // Phase 1 writes the read-only pages, each relaxed to rwx after its event; then the
        // default becomes r, which supersedes every page's own access in O(1), so phase 2
        // raises the same events again. The new default restricts the whole guest: only
        // the buffer part of the trace is kept.
        pages: &[(0, 16, "r")],
        new_default: Some("r"),
        ..CASE
    }
);

case!(
    BALLOON,
    Case {
        name: "events/balloon",
        cmdline: "pattern=balloon",
        // The default applies to frames the guest gains: pages 12-15 get new frames, which
        // start at the default (rx) and are written.
        default: "rx",
        pages: &[(0, 12, "rwx")],
        new_pages: &[12, 13, 14, 15],
        ..CASE
    }
);

fn short_name(case: &Case) -> &'static str {
    case.name.trim_start_matches("events/")
}

fn in_dom0(case: &Case, dom0: &Dom0) -> Result<()> {
    let listener = case.listener();
    let listener: Vec<&str> = listener.iter().map(String::as_str).collect();
    let between: Option<[&str; 3]> = case
        .new_default
        .map(|access| ["set-access", "--default", access]);
    let run = PatternRun {
        guest: short_name(case),
        cmdline: case.cmdline,
        vcpus: case.vcpus,
        listener: &listener,
        expect_crash: false,
        between_phases: between.as_ref().map(|command| command.as_slice()),
        stall_listener: case.fill_ring.then_some(std::time::Duration::from_secs(5)),
        restrict_page_table: case.restrict_page_table,
    };
    run::run(dom0, &run, |guest| {
        let Some((page, _)) = case.access_after else {
            return Ok(());
        };
        let pfn = format!("{:#x}", BUFFER_PFN + page);
        let access = dom0.run(
            "listener",
            &["get-access", "--domain", &guest.name, "--pfn", &pfn],
        )?;
        dom0.save("access-after.txt", access)
    })
}

fn on_host(case: &Case, view: &HostView) -> Result<()> {
    let account = Account::parse(&view.read("guest-console.log")?)?;
    ensure!(account.done, "the guest did not finish its pattern");
    let trace = Trace::parse(&view.read("trace.jsonl")?)?;
    let seen = trace::observed(&trace, case.buffer_only())?;
    trace::compare(&case.expected(&account), &seen, case.per_vcpu_order)?;
    for event in &trace.events {
        let paused = event.flags.iter().any(|flag| flag == "vcpu_paused");
        ensure!(
            paused != case.asynchronous,
            "{} event (vcpu_paused {}): {event:?}",
            if case.asynchronous {
                "an n2rwx"
            } else {
                "a sync"
            },
            if paused { "set" } else { "clear" }
        );
    }
    trace::check_frames(&trace, &account, case.new_pages)?;
    if let Some((page, access)) = case.access_after {
        let got = view.read("access-after.txt")?;
        ensure!(
            got.split_whitespace().last() == Some(access),
            "page {page} reads `{}` after the run, expected {access}",
            got.trim()
        );
    }
    (case.check)(&account, &trace)?;
    check_fault_counts(view, &trace, case.vcpus == 1)?;
    let most_pending = trace.end.most_pending;
    if case.fill_ring {
        ensure!(
            most_pending == 8,
            "the ring never filled: at most {most_pending} requests were pending at once"
        );
    }
    ensure!(
        trace.events.iter().all(|event| !event.recovered),
        "an event flagged recovered, with no listener killed"
    );
    let exit = view.read("listener.txt")?;
    ensure!(
        exit.trim() == "exit=4",
        "listener monitor (stopped by the guest's poweroff): {exit}"
    );
    snapshot::check(
        short_name(case),
        &trace::render(&trace, case.per_vcpu_order, case.buffer_only()),
    )
}

/// Xen's own count of what its fault path did for the guest (printed when the ring goes):
/// as many reports as the trace has events, and no spurious fault with `one_vcpu`.
pub fn check_fault_counts(view: &HostView, trace: &Trace, one_vcpu: bool) -> Result<()> {
    let counts = fault_counts(view)?;
    let shown = show_fault_counts(&counts);
    view.save_note("fault-counts.txt", &shown)?;
    ensure!(
        fault_count(&counts, "reported") == Some(trace.events.len() as u64),
        "Xen reported `{shown}`, the trace holds {} events",
        trace.events.len()
    );
    if one_vcpu {
        ensure!(
            fault_count(&counts, "spurious") == Some(0),
            "spurious faults: {shown}"
        );
    }
    Ok(())
}
