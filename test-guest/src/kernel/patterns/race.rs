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

use core::cell::UnsafeCell;
use core::sync::atomic::{fence, AtomicBool, AtomicU8, Ordering};

use test_guest::frames::Pfn;
use test_guest::handshake::{self, MAX_POLLS, NS_PER_SEC};
use test_guest::hypercall::{self, HypercallPage, VcpuId, XenError, XEN_EXTRAVERSION_LEN};
use test_guest::patterns::{self as plan, Pattern, Plan};
use test_guest::start_info::StartInfo;
use test_guest::vcpu_up::{self, VcpuGuestContext};
use test_guest::xen_writes::{
    self, CopyChecker, RunstateInfo, RunstateWatch, Verdict, XenCounts, MARKER_OFFSET, RACE_CALLS,
    RACE_PAGE, RUNSTATE_SIZE, XEN_OFFSET,
};

use super::super::{buffer_byte, fail, line, p2m, xen};
use super::{now_ns, print_touch, GO_PAGE};

/// The second vCPU.
const VCPU1: VcpuId = VcpuId(1);

/// How long vCPU 0 waits for vCPU 1 to start, and for `GO2`.
const WAIT_NS: u64 = 300 * NS_PER_SEC;

/// Bytes of vCPU 1's stack.
const STACK_SIZE: usize = 16 * 1024;

/// vCPU 1's stack.
#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; STACK_SIZE]>);

// SAFETY: only vCPU 1 uses the stack, as its stack (Rust never references it).
unsafe impl Sync for Stack {}

static VCPU1_STACK: Stack = Stack(UnsafeCell::new([0; STACK_SIZE]));

/// Which job vCPU 1 does: [`JOB_COPY`] or [`JOB_RUNSTATE`], set before it starts.
static JOB: AtomicU8 = AtomicU8::new(JOB_COPY);
const JOB_COPY: u8 = 0;
const JOB_RUNSTATE: u8 = 1;

/// Set by vCPU 1 once it runs.
static VCPU1_RUNNING: AtomicBool = AtomicBool::new(false);
/// Set by vCPU 0: vCPU 1 starts its calls.
static START: AtomicBool = AtomicBool::new(false);
/// Set by vCPU 1 when its calls are done, before its `READY ... phase=2` line (so
/// before dom0 makes the page writable).
static VCPU1_DONE: AtomicBool = AtomicBool::new(false);

// vCPU 1's entry, as `multi_vcpu`'s: its own stack, direction flag clear, rsp 16-byte
// aligned before the call; `race_vcpu1_main` never returns.
core::arch::global_asm!(
    r#"
    .pushsection .text.race_vcpu1_entry, "ax", @progbits
    .globl test_guest_race_vcpu1_entry
    .type test_guest_race_vcpu1_entry, @function
test_guest_race_vcpu1_entry:
    cld
    lea {stack}+{size}(%rip), %rsp
    xor %ebp, %ebp
    call {main}
    ud2
    .size test_guest_race_vcpu1_entry, . - test_guest_race_vcpu1_entry
    .popsection
    "#,
    stack = sym VCPU1_STACK,
    size = const STACK_SIZE,
    main = sym race_vcpu1_main,
    options(att_syntax)
);

extern "C" {
    /// vCPU 1's entry point, defined above (never called from Rust).
    fn test_guest_race_vcpu1_entry();
}

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
    start_vcpu1(hv, si);
    wait(
        hv,
        || VCPU1_RUNNING.load(Ordering::Acquire),
        "race: vcpu 1 did not start",
    );
    START.store(true, Ordering::Release);

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
    wait(
        hv,
        // SAFETY: GO_PAGE's first u64, aligned, in `.bss`, only accessed through raw
        // pointers; dom0 writes it (volatile).
        || unsafe { go.read_volatile() } == handshake::GO2,
        "no GO2 on the go page",
    );
    line(|out| xen_writes::write_guest_line(out, pattern.name(), stores, early));
    print_touch(touch, marker as u64);
    1
}

/// Brings vCPU 1 up at `test_guest_race_vcpu1_entry` on the running page tables.
fn start_vcpu1(hv: &HypercallPage, si: &StartInfo) {
    match hypercall::vcpu_is_up(hv, VCPU1) {
        Ok(false) => {}
        Ok(true) => fail("race: vcpu 1 already up", XenError::EINVAL),
        Err(e) => fail("race: vcpu 1", e),
    }
    let l4 = usize::try_from(Pfn::from_virt(si.pt_base).0).ok();
    let Some(&l4_mfn) = p2m(si).zip(l4).and_then(|(p2m, l4)| p2m.get(l4)) else {
        fail("race: L4 not in the P2M", XenError::EINVAL)
    };
    let entry = test_guest_race_vcpu1_entry as *const () as u64;
    let stack_top = VCPU1_STACK.0.get() as u64 + STACK_SIZE as u64;
    let ctx = VcpuGuestContext::for_kernel_entry(entry, stack_top, l4_mfn);
    // SAFETY: the entry switches to VCPU1_STACK, which nothing else uses, and runs
    // `race_vcpu1_main`, which prints under the console lock, reads and writes atomics,
    // reads buffer page 10 (raw pointers) and makes hypercalls that write it; no trap
    // table, events masked (as the builder left every vCPU). The page tables are the
    // running ones.
    if let Err(e) = unsafe { vcpu_up::vcpu_initialise(hv, VCPU1, &ctx) } {
        fail("race: VCPUOP_initialise", e);
    }
    if let Err(e) = vcpu_up::vcpu_up(hv, VCPU1) {
        fail("race: VCPUOP_up", e);
    }
}

/// Waits (bounded, yielding) until `done()`; FAIL on timeout.
fn wait(hv: &HypercallPage, done: impl FnMut() -> bool, what: &str) {
    let waited = handshake::wait_until(
        done,
        now_ns,
        || {
            let _ = hypercall::sched_yield(hv);
        },
        WAIT_NS,
        MAX_POLLS,
    );
    if waited.is_err() {
        fail(what, XenError::ETIMEDOUT);
    }
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

/// vCPU 1's Rust entry, on its own stack.
extern "C" fn race_vcpu1_main() -> ! {
    let hv = xen();
    line(|out| plan::write_vcpu_up(out, VCPU1.0));
    VCPU1_RUNNING.store(true, Ordering::Release);
    while !START.load(Ordering::Acquire) {
        let _ = hypercall::sched_yield(&hv);
    }
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
            if let Err(e) = unsafe { xen_writes::register_runstate_area(&hv, VCPU1, dest as u64) } {
                fail("runstate-area: register", e);
            }
            let first = xen_writes::runstate_from_bytes(&read_xen_bytes());
            if first.state != xen_writes::RUNSTATE_RUNNING || first.state_entry_time == 0 {
                first_bad = Some((0, 0));
            }
            let mut watch = RunstateWatch::new(first);
            for index in 1..=RACE_CALLS {
                let rc = match hypercall::sched_yield(&hv) {
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
            let rc = unsafe { hypercall::xen_version_extraversion(&hv, reference.as_mut_ptr()) };
            let checker = CopyChecker::new(reference).filter(|_| rc == 0);
            let Some(mut checker) = checker else {
                fail("xen-copy-race: reference extraversion", XenError::EINVAL)
            };
            for index in 0..RACE_CALLS {
                let rc = if CopyChecker::is_extraversion(index) {
                    // SAFETY: 16 bytes of page 10 that nothing references; Xen writes
                    // them (the guest may not).
                    unsafe { hypercall::xen_version_extraversion(&hv, dest) }
                } else {
                    // SAFETY: 48 bytes of page 10, as above.
                    unsafe { xen_writes::vcpu_get_runstate_info(&hv, VCPU1, dest.cast()) }
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
    loop {
        // As multi-vcpu's vCPU 1: down for good (stay harmless if Xen refused).
        let _ = vcpu_up::vcpu_down(&hv, VCPU1);
        let _ = hypercall::sched_yield(&hv);
    }
}
