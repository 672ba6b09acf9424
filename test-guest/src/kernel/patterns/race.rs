//! The `xen-copy-race` and `runstate-area` patterns (`test_guest::xen_writes`): Xen
//! writes buffer page 10 for vCPU 1 while vCPU 0 keeps trying to write it.
//!
//! The listener keeps page 10 read-only (rx, answering `keep`) until dom0 makes it
//! writable, which it does only after vCPU 1's `READY ... phase=2` line. So:
//! - vCPU 1 (`xen-copy-race`) makes 10^4 hypercalls whose results Xen copies into the
//!   page (alternately `XENVER_extraversion` and `VCPUOP_get_runstate_info`, so each
//!   result differs from the last) and reads each back; or (`runstate-area`) registers
//!   its runstate area in the page and yields 10^4 times, reading the area after each
//!   yield. Either way it also reads vCPU 0's marker byte, which must stay 0. Then it
//!   sets its done flag, prints `RACE-XEN` and `READY go-pfn=0x<go page> phase=2`, and
//!   goes down.
//! - vCPU 0 stores its marker byte at 0x800 again and again. Each store faults and is
//!   reported; the listener answers `keep`, the vCPU retries the same store, which
//!   faults again: one store instruction, many events, until dom0 makes the page
//!   writable. A store that completes before vCPU 1's done flag is set (read after a
//!   full fence) completed while the page was read-only: counted as `early`, and the
//!   loop stores again. Once a store completes after the flag, vCPU 0 waits for `GO2`
//!   (dom0 wrote it after making the page writable), prints `RACE-GUEST` and the
//!   store's `TOUCH` line; the dispatcher prints `PATTERN-DONE`.
//!
//! Known race, on the safe side: a store that completes early but is checked after
//! vCPU 1 set its flag counts as the final one, not as early (vCPU 1's `seen-early`
//! reads may still catch it).
//!
//! vCPU 1's runstate area stays registered (Xen writes it at every context switch of
//! vCPU 1 until the domain ends; after `GO2` the page is writable anyway).

use core::sync::atomic::{fence, AtomicBool, AtomicU8, Ordering};

use test_guest::frames::Pfn;
use test_guest::handshake::{self, NS_PER_SEC};
use test_guest::hypercall::{self, HypercallPage, XenError, XEN_EXTRAVERSION_LEN};
use test_guest::patterns::{self as plan, Pattern, Plan};
use test_guest::start_info::StartInfo;
use test_guest::xen_writes::{
    self, CopyChecker, RunstateInfo, RunstateWatch, Verdict, XenCounts, MARKER_OFFSET, RACE_CALLS,
    RACE_PAGE, RUNSTATE_SIZE, XEN_OFFSET,
};

use super::super::{buffer_byte, fail, line};
use super::second_vcpu::{self, VCPU1};
use super::{print_touch, GO_PAGE};

/// How long vCPU 0 waits for vCPU 1 to start, and for `GO2`.
const WAIT_NS: u64 = 300 * NS_PER_SEC;

/// Which job vCPU 1 does: [`JOB_COPY`] or [`JOB_RUNSTATE`], set before it starts.
static JOB: AtomicU8 = AtomicU8::new(JOB_COPY);
const JOB_COPY: u8 = 0;
const JOB_RUNSTATE: u8 = 1;

/// Set by vCPU 1 when its calls are done, before its `READY ... phase=2` line (so
/// before dom0 makes the page writable).
static VCPU1_DONE: AtomicBool = AtomicBool::new(false);

/// vCPU 0's side of `pattern` (`xen-copy-race` or `runstate-area`); returns its
/// touches (1).
pub(super) fn run(hv: &HypercallPage, si: &StartInfo, pattern: Pattern, plan: &Plan) -> usize {
    let [touch] = plan.touches() else {
        fail("race: plan", XenError::EINVAL)
    };
    let job = match pattern {
        Pattern::RunstateArea => JOB_RUNSTATE,
        _ => JOB_COPY,
    };
    JOB.store(job, Ordering::Relaxed);
    // SAFETY: `vcpu1_job` prints under the console lock, reads and writes atomics,
    // reads buffer page 10 (raw pointers) and makes hypercalls that write it (Xen, not
    // Rust, writes there; vCPU 0 only stores its marker byte, which vCPU 1 only reads).
    unsafe { second_vcpu::start(hv, si, "race", vcpu1_job) };
    second_vcpu::wait_running(hv, WAIT_NS, "race: vcpu 1 did not start");
    second_vcpu::release();

    let marker = buffer_byte(touch.page, touch.offset);
    let (mut stores, mut early) = (0u64, 0u64);
    loop {
        // SAFETY: the marker byte is inside buffer page 10, which nothing references
        // (raw pointers only); vCPU 1 only reads it, Xen writes other bytes of the
        // page. Volatile: each store must happen (it is what mem_access watches).
        unsafe { marker.write_volatile(touch.value()) };
        // The store is globally visible before the flag is read (x86 may otherwise
        // read the flag before the store drains).
        fence(Ordering::SeqCst);
        stores += 1;
        if VCPU1_DONE.load(Ordering::Acquire) {
            break;
        }
        early += 1;
    }
    let go = GO_PAGE.virt() as *const u64;
    second_vcpu::wait(
        hv,
        // SAFETY: GO_PAGE's first u64, aligned, in `.bss`, only accessed through raw
        // pointers; dom0 writes it (volatile).
        || unsafe { go.read_volatile() } == handshake::GO2,
        WAIT_NS,
        "no GO2 on the go page",
    );
    line(|out| xen_writes::write_guest_line(out, pattern.name(), stores, early));
    print_touch(touch, marker as u64);
    1
}

/// The 48 bytes at page 10's [`XEN_OFFSET`], as Xen last wrote them.
fn read_xen_bytes() -> [u8; RUNSTATE_SIZE] {
    let at = buffer_byte(RACE_PAGE, XEN_OFFSET).cast::<u64>();
    let mut bytes = [0u8; RUNSTATE_SIZE];
    for (index, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        // SAFETY: 8-byte aligned words inside buffer page 10 (offsets 0 to 40), only
        // accessed through raw pointers; volatile because Xen writes them.
        chunk.copy_from_slice(&unsafe { at.add(index).read_volatile() }.to_le_bytes());
    }
    bytes
}

/// Whether vCPU 0's marker is in the page.
fn marker_seen() -> bool {
    // SAFETY: one byte of buffer page 10, raw pointer, volatile (vCPU 0 writes it).
    unsafe { buffer_byte(RACE_PAGE, MARKER_OFFSET).read_volatile() != 0 }
}

/// Counts one call's `verdict`, keeps the first wrong one, and looks for vCPU 0's
/// marker.
fn note(
    counts: &mut XenCounts,
    first_bad: &mut Option<(u64, i64)>,
    index: u64,
    rc: i64,
    verdict: Verdict,
) {
    counts.count(verdict);
    if !verdict.right && first_bad.is_none() {
        *first_bad = Some((index, rc));
    }
    counts.seen_early += u64::from(marker_seen());
}

/// vCPU 1's job: Xen's writes and their checks, its done flag, then its lines
/// (`RACE-XEN`, `RACE-BAD`, `READY ... phase=2`); `second_vcpu` then takes it down.
fn vcpu1_job(hv: &HypercallPage) {
    let pattern = match JOB.load(Ordering::Relaxed) {
        JOB_RUNSTATE => Pattern::RunstateArea,
        _ => Pattern::XenCopyRace,
    };
    let mut counts = XenCounts::default();
    let mut first_bad: Option<(u64, i64)> = None;
    let dest = buffer_byte(RACE_PAGE, XEN_OFFSET);
    match pattern {
        Pattern::RunstateArea => {
            // SAFETY: page 10's first 48 bytes hold nothing Rust relies on (raw
            // pointers only); Xen writes them until the domain ends.
            if let Err(e) = unsafe { xen_writes::register_runstate_area(hv, VCPU1, dest as u64) } {
                fail("runstate-area: register", e);
            }
            let first = xen_writes::runstate_from_bytes(&read_xen_bytes());
            if !xen_writes::runstate_running(&first) || first.state_entry_time == 0 {
                first_bad = Some((0, 0));
            }
            let mut watch = RunstateWatch::new(first);
            for index in 1..=RACE_CALLS {
                let rc = match hypercall::sched_yield(hv) {
                    Ok(()) => 0,
                    Err(e) => e.code(),
                };
                let now: RunstateInfo = xen_writes::runstate_from_bytes(&read_xen_bytes());
                let verdict = watch.check(now);
                let verdict = Verdict {
                    right: verdict.right && rc == 0,
                    ..verdict
                };
                note(&mut counts, &mut first_bad, index, rc, verdict);
            }
        }
        _ => {
            let mut reference = [0u8; XEN_EXTRAVERSION_LEN];
            // SAFETY: `reference` is 16 writable bytes of this stack.
            let rc = unsafe { hypercall::xen_version_extraversion(hv, reference.as_mut_ptr()) };
            let checker = CopyChecker::new(reference).filter(|_| rc == 0);
            let Some(mut checker) = checker else {
                fail("xen-copy-race: reference extraversion", XenError::EINVAL)
            };
            for index in 0..RACE_CALLS {
                let rc = if CopyChecker::is_extraversion(index) {
                    // SAFETY: 16 bytes of page 10 that nothing references; Xen writes
                    // them (the guest may not).
                    unsafe { hypercall::xen_version_extraversion(hv, dest) }
                } else {
                    // SAFETY: 48 bytes of page 10, as above.
                    unsafe { xen_writes::vcpu_get_runstate_info(hv, VCPU1, dest.cast()) }
                };
                let verdict = checker.check(index, rc, &read_xen_bytes());
                note(&mut counts, &mut first_bad, index, rc, verdict);
            }
        }
    }
    VCPU1_DONE.store(true, Ordering::Release);
    line(|out| xen_writes::write_xen_line(out, pattern.name(), &counts));
    if let Some((index, rc)) = first_bad {
        let word = u64::from_le_bytes(read_xen_bytes()[..8].try_into().unwrap_or([0; 8]));
        line(|out| xen_writes::write_bad_line(out, pattern.name(), index, rc, word));
    }
    line(|out| plan::write_ready(out, Pfn::from_virt(GO_PAGE.virt()), 2));
}
