//! The `bench-pingpong` pattern (`test_guest::bench_ops`): timed event-channel round
//! trips with an echo in dom0.
//!
//! Before `READY` ([`prepare`]): `rounds=` (a bad value is a FAIL), an unbound port for
//! dom0 (`EVTCHNOP_alloc_unbound`), masked in `shared_info`'s `evtchn_mask` (so Xen
//! never delivers an upcall for it: the kernel has no event callback), then
//! `ECHO-PORT`. After `GO` ([`run`]): the samples written once before the clock starts
//! (as `bench-events`: a restricted page of them takes its event then); then per round:
//! the port's pending bit cleared (`lock and`), `rdtsc`, `EVTCHNOP_send`, then
//! `SCHEDOP_poll` on the port (which wakes on a masked port too) until its pending bit
//! is set, `rdtsc`. The poll's timeout is [`ECHO_TIMEOUT_NS`] after the round's start,
//! in Xen system time: a round whose echo has not come by then is a FAIL (`FAIL
//! bench-pingpong: no echo error=110`). Then `BENCH-PINGPONG`, `BENCH-SCALE` and the
//! `BENCH-SAMPLES` lines; the dispatcher prints `PATTERN-DONE bench-pingpong
//! touches=0`.

use core::sync::atomic::{AtomicU64, Ordering};

use test_guest::bench;
use test_guest::bench_ops::{
    self, ECHO_TIMEOUT_NS, SHARED_INFO_EVTCHN_MASK, SHARED_INFO_EVTCHN_PENDING,
};
use test_guest::hypercall::{self, DomId, EvtchnPort, HypercallPage, XenError};
use test_guest::start_info::StartInfo;

use super::super::{fail, line, SHARED_INFO};
use super::bench::{clear_samples, now_ns, print_scale_and_samples, rdtsc, record, time_scale};

/// What [`prepare`] settled before `READY`.
#[derive(Clone, Copy)]
pub(super) struct Prepared {
    /// Round trips to make (`rounds=`).
    rounds: u32,
    /// The port dom0's echo binds.
    port: EvtchnPort,
    /// The port's word in `evtchn_pending` (in the mapped `shared_info`).
    pending: &'static AtomicU64,
    /// The port's bit in that word.
    bit: u64,
}

/// The `u64` word at byte `offset` of the mapped `shared_info` page, as an atomic.
fn shared_word(offset: usize) -> &'static AtomicU64 {
    let word = (SHARED_INFO.virt() + offset as u64) as *mut u64;
    // SAFETY: `offset` is 8-byte aligned and inside the 4 KiB shared_info page, which
    // `publish_p2m` mapped at SHARED_INFO for the life of the domain (before any
    // pattern) and which nothing references otherwise; Xen changes these words only
    // with atomic read-modify-writes (`evtchn_pending`, `evtchn_mask` bits), so atomic
    // accesses are the right ones from this side too.
    unsafe { AtomicU64::from_ptr(word) }
}

/// Before `READY`: rounds, port, mask, then `ECHO-PORT`.
pub(super) fn prepare(hv: &HypercallPage, si: &StartInfo) -> Prepared {
    let rounds = match bench::rounds(si.cmdline()) {
        Ok(rounds) => rounds,
        Err(bench::BadRounds) => fail("bench needs rounds=<1..65536>", XenError::EINVAL),
    };
    let port = match hypercall::evtchn_alloc_unbound(hv, DomId::DOM0) {
        Ok(port) => port,
        Err(e) => fail("bench-pingpong: EVTCHNOP_alloc_unbound", e),
    };
    let Some((word, bit)) = bench_ops::evtchn_bit(port.0) else {
        fail(
            "bench-pingpong: port beyond the 2-level ABI",
            XenError::EINVAL,
        )
    };
    let bit = 1u64 << bit;
    shared_word(SHARED_INFO_EVTCHN_MASK + word).fetch_or(bit, Ordering::SeqCst);
    line(|out| bench_ops::write_echo_port(out, port.0));
    Prepared {
        rounds,
        port,
        pending: shared_word(SHARED_INFO_EVTCHN_PENDING + word),
        bit,
    }
}

/// After `GO`: the timed round trips, then `BENCH-PINGPONG`, `BENCH-SCALE` and the
/// samples. Returns 0: no watched page is accessed.
pub(super) fn run(hv: &HypercallPage, prepared: &Prepared) -> usize {
    let Prepared {
        rounds,
        port,
        pending,
        bit,
    } = *prepared;
    clear_samples(rounds as usize);
    let start = rdtsc();
    for round in 0..rounds as usize {
        pending.fetch_and(!bit, Ordering::SeqCst);
        let deadline = now_ns().saturating_add(ECHO_TIMEOUT_NS);
        let before = rdtsc();
        if let Err(e) = hypercall::evtchn_send(hv, port) {
            fail("bench-pingpong: EVTCHNOP_send", e);
        }
        loop {
            // Returns at once if the echo already came; else when it comes, or at the
            // deadline.
            if let Err(e) = hypercall::sched_poll(hv, port, deadline) {
                fail("bench-pingpong: SCHEDOP_poll", e);
            }
            if pending.load(Ordering::SeqCst) & bit != 0 {
                break;
            }
            if now_ns() >= deadline {
                fail("bench-pingpong: no echo", XenError::ETIMEDOUT);
            }
        }
        let after = rdtsc();
        record(round, after.wrapping_sub(before));
    }
    let tsc = rdtsc().wrapping_sub(start);
    let scale = time_scale();
    let ns = bench_ops::tsc_to_ns(tsc, scale.0, scale.1);
    line(|out| bench_ops::write_bench_pingpong(out, rounds, tsc, ns));
    print_scale_and_samples(scale, rounds as usize);
    0
}
