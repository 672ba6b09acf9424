//! The `bench-sweep` pattern (`test_guest::bench_ops`): a timed sweep of the buffer in
//! each of `phases=<K>` phases, dom0 changing access rights between them.
//!
//! `phases=` is read before `READY` ([`phases`]; a bad value is a FAIL). After `GO`
//! (phase 1, nothing timed), for each phase `n` from 2 to `K + 1` ([`run`]): `READY
//! go-pfn=0x<same pfn> phase=<n>`, the bounded wait for `"GO<n>"`, then, between two
//! `rdtsc`, the plan's touches in order (one sweep: a volatile byte write to each
//! buffer page 0 to 15 at `0x10 * page`, storing the page index, then a volatile read
//! of each of those bytes), then `SWEEP phase=<n> tsc=<ticks> ns=<ns>`. A byte that
//! read back other than written is a FAIL (`FAIL page=<p> offset=<o> expected=0x<hex>
//! got=0x<hex>`, as the workload's), checked once the clock stopped. The dispatcher
//! prints `PATTERN-DONE bench-sweep touches=<16 * K>`.

use core::fmt::Write;
use core::sync::atomic::{compiler_fence, Ordering};

use test_guest::bench_ops;
use test_guest::hypercall::{HypercallPage, ShutdownReason, XenError};
use test_guest::patterns::{Access, Plan, Touch, Via, MAX_TOUCHES};
use test_guest::start_info::StartInfo;
use test_guest::workload::BUFFER_PAGES;

use super::super::{buffer_byte, fail, line, shutdown};
use super::bench::{rdtsc, time_scale};
use super::wait_for_go;

/// The timed phases asked for by `phases=<decimal>` (default 8, 1 to 64); a bad value
/// is a FAIL. Called before `READY`.
pub(super) fn phases(si: &StartInfo) -> u32 {
    match bench_ops::sweep_phases(si.cmdline()) {
        Ok(phases) => phases,
        Err(bench_ops::BadArg) => fail("bench-sweep needs phases=<1..64>", XenError::EINVAL),
    }
}

/// Phases 2 to `phases + 1`, each a handshake then a timed sweep of `plan` (one-byte
/// buffer accesses only, else a FAIL) and its `SWEEP` line. Returns the writes made.
pub(super) fn run(hv: &HypercallPage, plan: &Plan, phases: u32) -> usize {
    let one_byte = plan
        .touches()
        .iter()
        .all(|t| t.size == 1 && t.via == Via::Buffer && t.access != Access::Exec);
    if !one_byte || plan.touches().len() != 2 * BUFFER_PAGES {
        fail("bench-sweep: plan", XenError::EINVAL);
    }
    // Each touch's address, worked out before the clock starts.
    let mut bytes = [core::ptr::null_mut::<u8>(); MAX_TOUCHES];
    for (slot, touch) in bytes.iter_mut().zip(plan.touches()) {
        *slot = buffer_byte(touch.page, touch.offset);
    }
    let touches = plan.touches().iter().zip(bytes);
    for phase in 2..=phases + 1 {
        wait_for_go(hv, phase);
        let mut read = [0u8; MAX_TOUCHES];
        let start = rdtsc();
        compiler_fence(Ordering::SeqCst);
        for ((touch, ptr), got) in touches.clone().zip(read.iter_mut()) {
            // SAFETY: `ptr` is a touch of the plan, checked above to be a one-byte
            // buffer access, inside one buffer page (a host test checks); the buffer
            // is only touched through raw pointers. Volatile: every access must
            // happen, each phase (it is what mem_access watches and what is timed).
            unsafe {
                match touch.access {
                    Access::Write => ptr.write_volatile(touch.value()),
                    _ => *got = ptr.read_volatile(),
                }
            }
        }
        compiler_fence(Ordering::SeqCst);
        let tsc = rdtsc().wrapping_sub(start);
        check(plan, &read);
        let (mul, shift) = time_scale();
        let ns = bench_ops::tsc_to_ns(tsc, mul, shift);
        line(|out| bench_ops::write_sweep(out, phase, tsc, ns));
    }
    usize::try_from(bench_ops::sweep_writes(phases)).unwrap_or(usize::MAX)
}

/// FAIL (and crash) at the first read of `plan` whose byte in `read` is not the page
/// index its write stored.
fn check(plan: &Plan, read: &[u8; MAX_TOUCHES]) {
    for (touch, &got) in plan.touches().iter().zip(read) {
        if touch.access == Access::Read && got != touch.value() {
            report(touch, got);
        }
    }
}

/// `FAIL page=<p> offset=<o> expected=0x<hex> got=0x<hex>`, then a crash.
fn report(touch: &Touch, got: u8) -> ! {
    line(|out| {
        let _ = write!(
            out,
            "FAIL page={} offset={} expected={:#x} got={got:#x}",
            touch.page,
            touch.offset,
            touch.value()
        );
    });
    shutdown(ShutdownReason::Crash)
}
