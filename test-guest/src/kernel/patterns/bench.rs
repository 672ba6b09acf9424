//! The `bench` pattern (`test_guest::bench`): after `GO`, `rounds` rounds of one-byte
//! writes to the 16 buffer pages (the plan, one round, in order), timed with Xen's
//! system time interpolated with the TSC, no `TOUCH` lines; then the `BENCH` line. The
//! dispatcher prints `PATTERN-DONE bench touches=<rounds * 16>`.
//!
//! Also what the per-operation benchmarks (`test_guest::bench_ops`) share: the TSC
//! ([`rdtsc`]), vCPU 0's TSC scale ([`time_scale`]), the samples array (its own
//! section after the buffer, `guest.ld`) and its `BENCH-SCALE` and `BENCH-SAMPLES`
//! lines ([`print_scale_and_samples`]).

use core::cell::UnsafeCell;
use core::sync::atomic::{compiler_fence, Ordering};

use test_guest::bench;
use test_guest::bench_ops::{self, MAX_SAMPLES};
use test_guest::handshake::{self, VcpuTimeInfo};
use test_guest::hypercall::{self, HypercallPage, XenError};
use test_guest::patterns::{Access, Plan, Via, BENCH_XEN_COPY_OFFSET};
use test_guest::start_info::StartInfo;
use test_guest::workload::BUFFER_PAGES;

use super::super::{buffer_byte, fail, line, SHARED_INFO};

/// The rounds asked for by the command line (`rounds=<decimal>`, default 256); a bad
/// value is a FAIL. Also checks that `plan` (one round) is what the timed loop can do:
/// 16 one-byte writes through the buffer's own address. Called before `READY`.
pub(super) fn rounds(si: &StartInfo, plan: &Plan) -> u32 {
    let writes_only = plan
        .touches()
        .iter()
        .all(|t| t.access == Access::Write && t.size == 1 && t.via == Via::Buffer);
    if !writes_only || plan.touches().len() != BUFFER_PAGES {
        fail("bench: plan", XenError::EINVAL);
    }
    match bench::rounds(si.cmdline()) {
        Ok(rounds) => rounds,
        Err(bench::BadRounds) => fail("bench needs rounds=<1..65536>", XenError::EINVAL),
    }
}

/// Makes the `rounds` rounds of writes of `plan`, timed, and prints the `BENCH` line;
/// returns the writes made (for `PATTERN-DONE`).
pub(super) fn run(plan: &Plan, rounds: u32) -> usize {
    // The 16 (address, byte) pairs, worked out before the clock starts.
    let mut writes = [(core::ptr::null_mut::<u8>(), 0u8); BUFFER_PAGES];
    for (slot, touch) in writes.iter_mut().zip(plan.touches()) {
        *slot = (buffer_byte(touch.page, touch.offset), touch.value());
    }
    let start = now_ns();
    let start_tsc = rdtsc();
    compiler_fence(Ordering::SeqCst);
    for _ in 0..rounds {
        for &(ptr, value) in &writes {
            // SAFETY: `ptr` is a touch of the plan, checked by `rounds` to be a
            // one-byte buffer write, inside one buffer page (a host test checks); the
            // buffer is only touched through raw pointers. Volatile: every write must
            // reach memory, each round (it is what mem_access watches and what is
            // timed).
            unsafe { ptr.write_volatile(value) };
        }
    }
    compiler_fence(Ordering::SeqCst);
    let tsc = rdtsc().wrapping_sub(start_tsc);
    let ns = now_ns().saturating_sub(start);
    line(|out| bench::write_bench(out, rounds, ns, tsc));
    // At most 65536 * 16 writes: fits any usize this kernel runs with.
    usize::try_from(bench::writes(rounds)).unwrap_or(usize::MAX)
}

/// The `bench-xen-copy` pattern: `calls` hypercalls (`rounds=`, read before `READY`
/// by [`calls`]) that have Xen copy its extra version string into buffer page `i % 16`
/// at 0x40, timed as [`run`]'s writes, then the `BENCH-XEN-COPY` line. Monitored with
/// the pages read-only, every copy is Xen writing a page the guest may not: what that
/// costs against the same loop unmonitored is the point. Returns the calls made.
pub(super) fn run_xen_copy(hv: &HypercallPage, calls: u32) -> usize {
    let mut failed = 0u64;
    let start = now_ns();
    let start_tsc = rdtsc();
    for index in 0..calls as usize {
        let dest = buffer_byte(index % BUFFER_PAGES, BENCH_XEN_COPY_OFFSET);
        // SAFETY: 16 bytes inside one buffer page (offset 0x40), which nothing
        // references (raw pointers only); Xen writes them.
        let rc = unsafe { hypercall::xen_version_extraversion(hv, dest) };
        failed += u64::from(rc != 0);
    }
    let tsc = rdtsc().wrapping_sub(start_tsc);
    let ns = now_ns().saturating_sub(start);
    line(|out| bench::write_bench_xen_copy(out, calls, failed, ns, tsc));
    calls as usize
}

/// The hypercalls `bench-xen-copy` makes (`rounds=<decimal>`, default 256); a bad value
/// is a FAIL. Called before `READY`.
pub(super) fn calls(si: &StartInfo) -> u32 {
    match bench::rounds(si.cmdline()) {
        Ok(rounds) => rounds,
        Err(bench::BadRounds) => fail("bench needs rounds=<1..65536>", XenError::EINVAL),
    }
}

/// Xen's system time (nanoseconds since boot) now, finer than the handshake's
/// `now_ns`: vCPU 0's `vcpu_time_info` (in `shared_info`, mapped at SHARED_INFO by
/// `publish_p2m`) interpolated with a TSC reading taken inside the same seqlock read
/// ([`VcpuTimeInfo::system_time_at`]). Only vCPU 0 runs this pattern.
pub(super) fn now_ns() -> u64 {
    with_time_info(|info| info.system_time_at(rdtsc()))
}

/// vCPU 0's TSC scale now: `(tsc_to_system_mul, tsc_shift)` of its `vcpu_time_info`,
/// for [`bench_ops::tsc_to_ns`].
pub(super) fn time_scale() -> (u32, i8) {
    with_time_info(|info| (info.tsc_to_system_mul, info.tsc_shift))
}

/// `f` of a consistent copy of vCPU 0's `vcpu_time_info` (run inside the seqlock read,
/// retried with it).
fn with_time_info<T>(mut f: impl FnMut(&VcpuTimeInfo) -> T) -> T {
    let time = SHARED_INFO.virt() + handshake::vcpu_time_offset(0) as u64;
    handshake::stable_read(
        // SAFETY: `time` is vcpu_info[0].time inside the mapped 4 KiB shared_info
        // page; `version` (offset 0) is an aligned u32 that Xen updates: volatile.
        || unsafe { ((time + handshake::TIME_VERSION as u64) as *const u32).read_volatile() },
        || {
            // SAFETY: as above; the whole 32-byte record is inside the page and 8-byte
            // aligned (offset 32 of a page), plain integers whatever Xen wrote; the
            // seqlock retries a torn read.
            let info = unsafe { (time as *const VcpuTimeInfo).read_volatile() };
            f(&info)
        },
    )
}

/// The per-operation samples of `bench-events` and `bench-pingpong` (TSC ticks), in
/// their own section after the buffer (`guest.ld`: the image below the buffer has no
/// room for 512 KiB).
#[repr(C, align(4096))]
struct Samples(UnsafeCell<[u64; MAX_SAMPLES]>);

// SAFETY: only vCPU 0 touches the samples, through raw pointers ([`record`],
// [`clear_samples`]) or through the slice [`print_scale_and_samples`] makes while
// nothing writes them.
unsafe impl Sync for Samples {}

#[link_section = ".bench_samples"]
static SAMPLES: Samples = Samples(UnsafeCell::new([0; MAX_SAMPLES]));

/// Stores sample `index` (ignored at or beyond [`MAX_SAMPLES`]; the callers' counts
/// are within it). vCPU 0 only.
pub(super) fn record(index: usize, ticks: u64) {
    if index < MAX_SAMPLES {
        // SAFETY: inside SAMPLES, which only vCPU 0 touches and nothing references.
        unsafe { SAMPLES.0.get().cast::<u64>().add(index).write(ticks) };
    }
}

/// Writes the first `count` samples once (zero), before the timed loop, so that their
/// pages are not first written while it runs. vCPU 0 only.
pub(super) fn clear_samples(count: usize) {
    for index in 0..count.min(MAX_SAMPLES) {
        // SAFETY: as in `record`; volatile, so the writes are not dropped as dead
        // (the loop overwrites them).
        unsafe { SAMPLES.0.get().cast::<u64>().add(index).write_volatile(0) };
    }
}

/// Prints `BENCH-SCALE` (`scale`, the one the totals were converted with), then the
/// first `samples` samples, 16 per `BENCH-SAMPLES` line (none for 0). vCPU 0 only.
pub(super) fn print_scale_and_samples((mul, shift): (u32, i8), samples: usize) {
    line(|out| bench_ops::write_bench_scale(out, mul, shift));
    // SAFETY: the first `samples` (at most MAX_SAMPLES) u64s of SAMPLES, initialized
    // (zeroed at boot); only vCPU 0 touches them and it writes none while this shared
    // slice lives.
    let samples = unsafe {
        core::slice::from_raw_parts(SAMPLES.0.get().cast::<u64>(), samples.min(MAX_SAMPLES))
    };
    bench_ops::sample_lines(samples, |from, chunk| {
        line(|out| bench_ops::write_bench_samples(out, from, chunk));
    });
}

/// The TSC, read once every earlier instruction completed (`lfence; rdtsc`, as
/// Linux's `rdtsc_ordered`), so the reading does not float into the timed writes.
/// Inline asm rather than `core::arch`'s `_mm_lfence`: this target has SSE disabled,
/// so that intrinsic would not inline; without `nomem` the asm is also a compiler
/// barrier for memory accesses.
pub(super) fn rdtsc() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: `lfence` and `rdtsc` exist on every x86_64 CPU; they only order
    // instructions and read the time-stamp counter into edx:eax (a PV guest's rdtsc
    // may be emulated by Xen, which is also fine). No stack, flags untouched.
    unsafe {
        core::arch::asm!(
            "lfence",
            "rdtsc",
            out("eax") low,
            out("edx") high,
            options(nostack, preserves_flags),
        );
    }
    (u64::from(high) << 32) | u64::from(low)
}
