//! The `bench-events` pattern (`test_guest::bench_ops`): one timed byte write to each
//! of the first `pages=<N>` pages of the event area, each write, when monitored with
//! default `rx`, one synchronous mem_access event.
//!
//! Before `READY` ([`prepare`]): `BENCH-AREA` and, if the domain has a second vCPU,
//! vCPU 1 brought up as `multi-vcpu` does (its own entry and stack; it prints `VCPU 1
//! up` and waits for the start flag, yielding). After `GO` ([`run`]), before the clock
//! starts: a volatile read of one byte of each of the `N` pages (under the listener's
//! rights, which dom0 set before `GO`, so their shadow entries exist and a later write
//! faults only for its access rights) and the samples written once (a page of them
//! that the listener restricted takes its event now, not in the loop). Then, with one
//! vCPU: for each page `i`, `rdtsc`, the write (offset 0, storing `i`'s low byte),
//! `rdtsc`, the difference is sample `i`. With two: vCPU 0 reads the TSC, sets the start flag
//! and writes pages `0..N/2` while vCPU 1 writes `N/2..N`; vCPU 0 then waits (bounded,
//! yielding) for vCPU 1's done flag and reads the TSC again; vCPU 1 goes down. Then
//! `BENCH-EVENTS`, `BENCH-SCALE` and (one vCPU) the `BENCH-SAMPLES` lines; the
//! dispatcher prints `PATTERN-DONE bench-events touches=<N>`.

use core::cell::UnsafeCell;
use core::sync::atomic::{compiler_fence, AtomicBool, AtomicUsize, Ordering};

use test_guest::bench_ops::{self, EVENT_AREA_PAGES};
use test_guest::frames::{Pfn, PAGE_SIZE};
use test_guest::handshake::{self, MAX_POLLS, NS_PER_SEC};
use test_guest::hypercall::{self, HypercallPage, VcpuId, XenError};
use test_guest::patterns as plan;
use test_guest::start_info::StartInfo;
use test_guest::vcpu_up::{self, VcpuGuestContext};

use super::super::{fail, line, p2m, xen};
use super::bench::{clear_samples, print_scale_and_samples, rdtsc, record, time_scale};
use super::now_ns;

/// The event area: [`EVENT_AREA_PAGES`] page-aligned pages of its own.
#[repr(C, align(4096))]
struct EventArea(UnsafeCell<[u8; EVENT_AREA_PAGES * PAGE_SIZE]>);

// SAFETY: the area is only touched through raw pointers ([`area_page`]), never through
// a reference; with two vCPUs each writes its own pages.
unsafe impl Sync for EventArea {}

/// In its own section, after the buffer (`guest.ld`).
#[link_section = ".bench_area"]
static EVENT_AREA: EventArea = EventArea(UnsafeCell::new([0; EVENT_AREA_PAGES * PAGE_SIZE]));

/// The first byte of event-area page `page` (below [`EVENT_AREA_PAGES`]).
fn area_page(page: usize) -> *mut u8 {
    EVENT_AREA
        .0
        .get()
        .cast::<u8>()
        .wrapping_add(page * PAGE_SIZE)
}

/// The second vCPU.
const VCPU1: VcpuId = VcpuId(1);

/// How long vCPU 0 waits for vCPU 1 to start, and then to finish its writes.
const VCPU1_TIMEOUT_NS: u64 = 120 * NS_PER_SEC;

/// Bytes of vCPU 1's stack.
const STACK_SIZE: usize = 16 * 1024;

/// vCPU 1's stack.
#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; STACK_SIZE]>);

// SAFETY: only vCPU 1 uses the stack, as its stack (Rust never references it).
unsafe impl Sync for Stack {}

static VCPU1_STACK: Stack = Stack(UnsafeCell::new([0; STACK_SIZE]));

/// The pages of the run, set before vCPU 1 starts.
static PAGES: AtomicUsize = AtomicUsize::new(0);
/// Set by vCPU 1 once it runs (after its `VCPU 1 up` line).
static VCPU1_RUNNING: AtomicBool = AtomicBool::new(false);
/// Set by vCPU 0 after `GO`: both start writing.
static START: AtomicBool = AtomicBool::new(false);
/// Set by vCPU 1 when its writes are done.
static VCPU1_DONE: AtomicBool = AtomicBool::new(false);

// vCPU 1's entry, as `multi_vcpu`'s: its own stack, direction flag clear, rsp 16-byte
// aligned before the call; `bench_vcpu1_main` never returns.
core::arch::global_asm!(
    r#"
    .pushsection .text.bench_vcpu1_entry, "ax", @progbits
    .globl test_guest_bench_vcpu1_entry
    .type test_guest_bench_vcpu1_entry, @function
test_guest_bench_vcpu1_entry:
    cld
    lea {stack}+{size}(%rip), %rsp
    xor %ebp, %ebp
    call {main}
    ud2
    .size test_guest_bench_vcpu1_entry, . - test_guest_bench_vcpu1_entry
    .popsection
    "#,
    stack = sym VCPU1_STACK,
    size = const STACK_SIZE,
    main = sym bench_vcpu1_main,
    options(att_syntax)
);

extern "C" {
    /// vCPU 1's entry point, defined above (never called from Rust).
    fn test_guest_bench_vcpu1_entry();
}

/// What [`prepare`] settled before `READY`.
pub(super) struct Prepared {
    /// Pages written (`pages=`).
    pages: u32,
    /// vCPUs writing: 1, or 2 when the domain has a second one.
    vcpus: u32,
}

/// Before `READY`: reads `pages=` (a bad value is a FAIL), prints `BENCH-AREA` and,
/// with `vcpus` 2 or more, brings vCPU 1 up and waits until it runs.
pub(super) fn prepare(hv: &HypercallPage, si: &StartInfo, vcpus: u32) -> Prepared {
    let pages = match bench_ops::pages(si.cmdline()) {
        Ok(pages) => pages,
        Err(bench_ops::BadArg) => fail("bench-events needs pages=<1..512>", XenError::EINVAL),
    };
    let first = Pfn::from_virt(area_page(0) as u64);
    line(|out| bench_ops::write_bench_area(out, first, pages));
    let vcpus = if vcpus >= 2 { 2 } else { 1 };
    if vcpus == 2 {
        PAGES.store(pages as usize, Ordering::Relaxed);
        start_vcpu1(hv, si);
        wait(hv, &VCPU1_RUNNING, "bench-events: vcpu 1 did not start");
    }
    Prepared { pages, vcpus }
}

/// After `GO`: the reads and the samples' writes, then the timed writes, then
/// `BENCH-EVENTS`, `BENCH-SCALE` and (one vCPU) the samples. Returns the pages written.
pub(super) fn run(hv: &HypercallPage, prepared: &Prepared) -> usize {
    let pages = prepared.pages as usize;
    for page in 0..pages.min(EVENT_AREA_PAGES) {
        // SAFETY: the first byte of an area page, only touched through raw pointers.
        // Volatile: the read must happen (it makes the page's shadow entry).
        let _ = unsafe { area_page(page).read_volatile() };
    }
    clear_samples(pages);
    compiler_fence(Ordering::SeqCst);
    let start = rdtsc();
    if prepared.vcpus == 2 {
        START.store(true, Ordering::Release);
        write_pages(bench_ops::vcpu_pages(pages, 2, 0));
        wait(hv, &VCPU1_DONE, "bench-events: vcpu 1 did not finish");
    } else {
        for page in 0..pages {
            let before = rdtsc();
            write_page(page);
            let after = rdtsc();
            record(page, after.wrapping_sub(before));
        }
    }
    compiler_fence(Ordering::SeqCst);
    let tsc = rdtsc().wrapping_sub(start);
    let scale = time_scale();
    let ns = bench_ops::tsc_to_ns(tsc, scale.0, scale.1);
    line(|out| bench_ops::write_bench_events(out, prepared.pages, prepared.vcpus, tsc, ns));
    let samples = if prepared.vcpus == 1 { pages } else { 0 };
    print_scale_and_samples(scale, samples);
    pages
}

/// Writes byte 0 of event-area page `page` (below the run's pages), volatile.
fn write_page(page: usize) {
    if page < EVENT_AREA_PAGES {
        // SAFETY: the first byte of an area page, only touched through raw pointers;
        // each vCPU writes its own pages. Volatile: the write must reach memory (it is
        // what mem_access watches and what is timed).
        unsafe { area_page(page).write_volatile(page as u8) };
    }
}

/// Writes byte 0 of each page of `pages`, in order.
fn write_pages(pages: core::ops::Range<usize>) {
    pages.for_each(write_page);
}

/// Brings vCPU 1 up at `test_guest_bench_vcpu1_entry` on the running page tables.
fn start_vcpu1(hv: &HypercallPage, si: &StartInfo) {
    match hypercall::vcpu_is_up(hv, VCPU1) {
        Ok(false) => {}
        Ok(true) => fail("bench-events: vcpu 1 already up", XenError::EINVAL),
        Err(e) => fail("bench-events: vcpu 1", e),
    }
    let l4 = usize::try_from(Pfn::from_virt(si.pt_base).0).ok();
    let Some(&l4_mfn) = p2m(si).zip(l4).and_then(|(p2m, l4)| p2m.get(l4)) else {
        fail("bench-events: L4 not in the P2M", XenError::EINVAL)
    };
    let entry = test_guest_bench_vcpu1_entry as *const () as u64;
    let stack_top = VCPU1_STACK.0.get() as u64 + STACK_SIZE as u64;
    let ctx = VcpuGuestContext::for_kernel_entry(entry, stack_top, l4_mfn);
    // SAFETY: the entry switches to VCPU1_STACK, which nothing else uses, and runs
    // `bench_vcpu1_main`, which only prints under the console lock, reads and writes
    // atomics, writes its own pages of the event area (raw pointers, disjoint from vCPU
    // 0's) and makes hypercalls; it has no trap table and its events stay masked (the
    // builder masks every vCPU's upcalls; nothing here unmasks them). The page tables
    // are the running ones (the L4 in use by vCPU 0).
    if let Err(e) = unsafe { vcpu_up::vcpu_initialise(hv, VCPU1, &ctx) } {
        fail("bench-events: VCPUOP_initialise", e);
    }
    if let Err(e) = vcpu_up::vcpu_up(hv, VCPU1) {
        fail("bench-events: VCPUOP_up", e);
    }
}

/// Waits (bounded, yielding) until `flag` is set; FAIL on timeout.
fn wait(hv: &HypercallPage, flag: &AtomicBool, what: &str) {
    let waited = handshake::wait_until(
        || flag.load(Ordering::Acquire),
        now_ns,
        || {
            let _ = hypercall::sched_yield(hv);
        },
        VCPU1_TIMEOUT_NS,
        MAX_POLLS,
    );
    if waited.is_err() {
        fail(what, XenError::ETIMEDOUT);
    }
}

/// vCPU 1's Rust entry, called by `test_guest_bench_vcpu1_entry` on vCPU 1's stack.
extern "C" fn bench_vcpu1_main() -> ! {
    let hv = xen();
    line(|out| plan::write_vcpu_up(out, VCPU1.0));
    VCPU1_RUNNING.store(true, Ordering::Release);
    while !START.load(Ordering::Acquire) {
        let _ = hypercall::sched_yield(&hv);
    }
    write_pages(bench_ops::vcpu_pages(
        PAGES.load(Ordering::Relaxed),
        2,
        VCPU1.0,
    ));
    VCPU1_DONE.store(true, Ordering::Release);
    loop {
        // Returns only when vCPU 0 brings it up again (it does not), or if Xen
        // refused: then stay harmless.
        let _ = vcpu_up::vcpu_down(&hv, VCPU1);
        let _ = hypercall::sched_yield(&hv);
    }
}
