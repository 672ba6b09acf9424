//! The `bench-events` pattern (`test_guest::bench_ops`): one timed byte write to each
//! of the first `pages=<N>` pages of the event area, each write, when monitored with
//! default `rx`, one synchronous mem_access event.
//!
//! Before `READY` ([`prepare`]): `BENCH-AREA` and, if the domain has a second vCPU,
//! vCPU 1 brought up as `multi-vcpu` does (`second_vcpu`: its own entry and stack; it
//! prints `VCPU 1 up` and waits for the start flag, yielding). After `GO` ([`run`]), before the clock
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
use test_guest::handshake::NS_PER_SEC;
use test_guest::hypercall::{HypercallPage, XenError};
use test_guest::start_info::StartInfo;

use super::super::{fail, line};
use super::bench::{clear_samples, print_scale_and_samples, rdtsc, record, time_scale};
use super::second_vcpu::{self, VCPU1};

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

/// How long vCPU 0 waits for vCPU 1 to start, and then to finish its writes.
const VCPU1_TIMEOUT_NS: u64 = 120 * NS_PER_SEC;

/// The pages of the run, set before vCPU 1 starts.
static PAGES: AtomicUsize = AtomicUsize::new(0);
/// Set by vCPU 1 when its writes are done.
static VCPU1_DONE: AtomicBool = AtomicBool::new(false);

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
        // SAFETY: `vcpu1_job` only reads and writes atomics and writes its own pages of
        // the event area (raw pointers, disjoint from vCPU 0's).
        unsafe { second_vcpu::start(hv, si, "bench-events", vcpu1_job) };
        second_vcpu::wait_running(hv, VCPU1_TIMEOUT_NS, "bench-events: vcpu 1 did not start");
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
        second_vcpu::release();
        write_pages(bench_ops::vcpu_pages(pages, 2, 0));
        second_vcpu::wait(
            hv,
            || VCPU1_DONE.load(Ordering::Acquire),
            VCPU1_TIMEOUT_NS,
            "bench-events: vcpu 1 did not finish",
        );
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

/// vCPU 1's job: its half of the pages, then its done flag.
fn vcpu1_job(_hv: &HypercallPage) {
    write_pages(bench_ops::vcpu_pages(
        PAGES.load(Ordering::Relaxed),
        2,
        VCPU1.0,
    ));
    VCPU1_DONE.store(true, Ordering::Release);
}
