//! Running `pattern=<name>`: the go-page handshake, then the pattern's touches (the
//! plan of `test_guest::patterns`), each followed by its `TOUCH` line, then
//! `PATTERN-DONE` and poweroff. A pattern with two phases (`generation`) makes its
//! phase-1 touches, hands over again (`READY ... phase=2`, wait for `GO2`), then makes
//! its phase-2 touches. `bench` repeats its plan (one round) without `TOUCH` lines and
//! prints one `BENCH` line instead; `bench-events`, `bench-pingpong` and `bench-sweep`
//! (`test_guest::bench_ops`) time each operation or sweep, also without `TOUCH` lines.
//! Patterns that need more than plain accesses have a module each.

use core::fmt::Write;
use core::sync::atomic::{compiler_fence, Ordering};

use test_guest::frames::Pfn;
use test_guest::handshake::{self, GO_TIMEOUT_NS, MAX_POLLS};
use test_guest::hostile;
use test_guest::hypercall::{self, HypercallPage, ShutdownReason, XenError};
use test_guest::pagewalk;
use test_guest::patterns::{self as plan, Access, Pattern, Plan, Touch};
use test_guest::start_info::StartInfo;
use test_guest::text::Sink;

use super::{buffer_byte, fail, l1_slot, line, p2m, shutdown, BssPage, SHARED_INFO};

mod balloon;
mod bench;
mod bench_events;
mod bounce_frame;
mod multi_vcpu;
mod pingpong;
mod pt_hypercall;
mod pt_write;
mod race;
mod second_vcpu;
mod sweep;

/// The go page: dom0 writes [`handshake::GO`] into its first `u64` (then
/// [`handshake::GO2`] for a pattern's phase 2).
static GO_PAGE: BssPage = BssPage::new();

/// Runs the pattern called `name` and powers off; a name that is no pattern, or a
/// domain with too few vCPUs for it, is a FAIL (before `READY`), as is a `pt-write`
/// alias that cannot be chosen (its `PT-SLOT` or `PT-TABLES` line comes before `READY`), a `bench`
/// (or `bench-xen-copy`, `bench-pingpong`) with a bad `rounds=`, a `bench-events` with a
/// bad `pages=` or a `bench-sweep` with a bad `phases=`.
pub(super) fn run(hv: &HypercallPage, si: &StartInfo, name: &[u8], vcpus: u32) -> ! {
    let Some(pattern) = Pattern::from_name(name) else {
        line(|out| {
            out.put_str("FAIL unknown pattern ");
            out.put_sanitized(name);
            let _ = write!(out, " error={}", XenError::EINVAL.errno());
        });
        shutdown(ShutdownReason::Crash)
    };
    if vcpus < pattern.vcpus_needed() {
        fail("pattern needs more vcpus", XenError::ENOENT);
    }
    let plan = plan::plan(pattern);
    // `pt-write` chooses and prepares its alias (and prints `PT-SLOT`) before the
    // handshake: its page-table writes after `GO` are only the ones it reports; `bench`
    // reads its rounds (a bad `rounds=` is a FAIL before `READY`).
    let pt_write = (pattern == Pattern::PtWrite).then(|| pt_write::choose(hv, si, &plan));
    // `pt-hypercall` likewise (`PT-TABLES`), for the same reason.
    let pt_hypercall =
        (pattern == Pattern::PtHypercall).then(|| pt_hypercall::choose(hv, si, &plan));
    let bench_rounds = (pattern == Pattern::Bench).then(|| bench::rounds(si, &plan));
    let xen_copy_calls = (pattern == Pattern::BenchXenCopy).then(|| bench::calls(si));
    // The per-operation benchmarks prepare before `READY` too (`BENCH-AREA`,
    // `ECHO-PORT`, vCPU 1), so that nothing of it is timed.
    let events = (pattern == Pattern::BenchEvents).then(|| bench_events::prepare(hv, si, vcpus));
    let pingpong = (pattern == Pattern::BenchPingpong).then(|| pingpong::prepare(hv, si));
    let sweep_phases = (pattern == Pattern::BenchSweep).then(|| sweep::phases(si));
    wait_for_go(hv, 1);
    let touches = match pattern {
        Pattern::ReadSweep
        | Pattern::WriteSweep
        | Pattern::Stride
        | Pattern::Repeat
        | Pattern::Generation => {
            for phase in 1..=pattern.phases() {
                if phase > 1 {
                    wait_for_go(hv, phase);
                }
                plan.of_phase(phase).for_each(touch_buffer);
            }
            plan.touches().len()
        }
        Pattern::Exec => exec(si, &plan),
        Pattern::PtWrite => match &pt_write {
            Some(chosen) => pt_write::run(hv, chosen),
            None => fail("pt-write: no alias", XenError::EINVAL),
        },
        Pattern::PtHypercall => match &pt_hypercall {
            Some(chosen) => pt_hypercall::run(hv, chosen),
            None => fail("pt-hypercall: no tables", XenError::EINVAL),
        },
        Pattern::XenCopy => xen_copy(hv, &plan),
        Pattern::MultiVcpu => multi_vcpu::run(hv, si, &plan),
        Pattern::Balloon => balloon::run(hv, si, &plan),
        Pattern::HostileCalls => hostile_calls(hv, &plan),
        Pattern::XenCopyRace | Pattern::RunstateArea => race::run(hv, si, pattern, &plan),
        Pattern::BounceFrame => bounce_frame::run(hv, &plan),
        Pattern::BenchXenCopy => match xen_copy_calls {
            Some(calls) => bench::run_xen_copy(hv, calls),
            None => fail("bench-xen-copy: no rounds", XenError::EINVAL),
        },
        Pattern::Bench => match bench_rounds {
            Some(rounds) => bench::run(&plan, rounds),
            None => fail("bench: no rounds", XenError::EINVAL),
        },
        Pattern::BenchEvents => match &events {
            Some(prepared) => bench_events::run(hv, prepared),
            None => fail("bench-events: not prepared", XenError::EINVAL),
        },
        Pattern::BenchPingpong => match &pingpong {
            Some(prepared) => pingpong::run(hv, prepared),
            None => fail("bench-pingpong: not prepared", XenError::EINVAL),
        },
        Pattern::BenchSweep => match sweep_phases {
            Some(phases) => sweep::run(hv, &plan, phases),
            None => fail("bench-sweep: no phases", XenError::EINVAL),
        },
    };
    line(|out| plan::write_pattern_done(out, pattern, touches));
    shutdown(ShutdownReason::Poweroff)
}

/// Prints `READY go-pfn=...` (with ` phase=<n>` after phase 1) and waits (bounded)
/// for dom0's go value of `phase` ([`handshake::go_value`]: `GO`, then `GO2`, `GO3`,
/// ...); on timeout `FAIL no GO on the go page error=110` (phase 1) or `FAIL no GO<n> on
/// the go page error=110` (phase `n`), and a crash.
fn wait_for_go(hv: &HypercallPage, phase: u32) {
    let Some(expected) = handshake::go_value(phase) else {
        fail("no go value for this phase", XenError::EINVAL)
    };
    let go = GO_PAGE.virt();
    line(|out| plan::write_ready(out, Pfn::from_virt(go), phase));
    let waited = handshake::wait_until(
        // SAFETY: `go` is GO_PAGE's first `u64`: aligned, in `.bss`, never referenced
        // (only raw pointers); volatile because dom0 writes it.
        || unsafe { (go as *const u64).read_volatile() } == expected,
        now_ns,
        || {
            let _ = hypercall::sched_yield(hv);
        },
        GO_TIMEOUT_NS,
        MAX_POLLS,
    );
    if waited.is_err() {
        line(|out| {
            out.put_str("FAIL no GO");
            if phase > 1 {
                let _ = write!(out, "{phase}");
            }
            let _ = write!(out, " on the go page error={}", XenError::ETIMEDOUT.errno());
        });
        shutdown(ShutdownReason::Crash)
    }
}

/// Xen's system time (nanoseconds since boot), from vCPU 0's `vcpu_time_info` in the
/// `shared_info` page (mapped at SHARED_INFO by `publish_p2m`, before any pattern).
fn now_ns() -> u64 {
    let time = SHARED_INFO.virt() + handshake::vcpu_time_offset(0) as u64;
    handshake::stable_read(
        // SAFETY: `time` is vcpu_info[0].time inside the mapped 4 KiB shared_info
        // page; `version` (offset 0) is an aligned u32 that Xen updates: volatile.
        || unsafe { ((time + handshake::TIME_VERSION as u64) as *const u32).read_volatile() },
        // SAFETY: as above; `system_time` (offset 16) is an aligned u64.
        || unsafe { ((time + handshake::TIME_SYSTEM_TIME as u64) as *const u64).read_volatile() },
    )
}

/// Does `touch` (a one-byte read or write) through the buffer's own address, then
/// prints its `TOUCH` line. A write stores the page index.
fn touch_buffer(touch: &Touch) {
    let ptr = buffer_byte(touch.page, touch.offset);
    // SAFETY: `touch` comes from the plan, whose touches lie inside one buffer page (a
    // host test checks); the buffer is only touched through raw pointers. Volatile: the access must happen, exactly once,
    // since mem_access watches it.
    unsafe {
        match (touch.access, touch.size) {
            (Access::Read, 1) => {
                let _ = ptr.read_volatile();
            }
            (Access::Write, 1) => ptr.write_volatile(touch.value()),
            _ => fail("touch: not a one-byte read or write", XenError::EINVAL),
        }
    }
    print_touch(touch, ptr as u64);
}

/// The `hostile-calls` pattern: reads dom0's words from the go page, makes the calls of
/// `test_guest::hostile` (one `HOSTILE` line each, then `HOSTILE-DONE`), then its one
/// touch.
fn hostile_calls(hv: &HypercallPage, plan: &Plan) -> usize {
    let go = GO_PAGE.virt() as *const u64;
    // SAFETY: words 0 to 3 of GO_PAGE, aligned, in `.bss`, only read through raw pointers;
    // dom0 wrote them before `GO` (volatile: written behind the compiler's back).
    let words = core::array::from_fn(|index| unsafe { go.add(index).read_volatile() });
    let Some(setup) = hostile::Setup::from_go_page(words) else {
        fail(
            "hostile-calls: no domain ids on the go page",
            XenError::EINVAL,
        )
    };
    let calls = hostile::run(hv, &setup, |call, target, rc| {
        line(|out| hostile::write_line(out, call, target, rc));
    });
    line(|out| {
        let _ = write!(out, "{}", hostile::HostileDone { calls });
    });
    plan.touches().iter().for_each(touch_buffer);
    plan.touches().len()
}

/// Prints the `TOUCH` line of `touch`, made through address `va`.
fn print_touch(touch: &Touch, va: u64) {
    line(|out| plan::write_touch(out, touch, va));
}

/// The `exec` pattern: one 8-byte write of [`plan::EXEC_CODE`] into page 3, a call to
/// it, the result checked.
fn exec(si: &StartInfo, plan: &Plan) -> usize {
    let [copy, call] = plan.touches() else {
        fail("exec: plan", XenError::EINVAL)
    };
    let code = buffer_byte(copy.page, copy.offset);
    let Some(p2m) = p2m(si) else {
        fail("no P2M list", XenError::EINVAL)
    };
    if pagewalk::pte_nx(l1_slot(si, p2m, code as u64).value) {
        fail("exec: buffer page mapped NX", XenError::EINVAL);
    }
    // SAFETY: the copy lies inside buffer page 3 and is 8-byte aligned (the plan's
    // offset 0x100); the buffer is only touched through raw pointers.
    unsafe {
        code.cast::<u64>()
            .write_volatile(u64::from_le_bytes(plan::EXEC_CODE));
    }
    print_touch(copy, code as u64);
    // The code is in memory before the call (x86 keeps instruction fetches coherent
    // with earlier stores to the same address; the compiler must not sink the store).
    compiler_fence(Ordering::SeqCst);
    // SAFETY: `code` (not null) now holds `mov eax, 0x1234; ret`, a complete function
    // of the C ABI: no arguments, result in eax, nothing clobbered but rax, no stack
    // use beyond its return address. The page is mapped and executable (NX checked
    // above against the running page tables).
    let function = unsafe { core::mem::transmute::<*mut u8, extern "C" fn() -> u32>(code) };
    let got = function();
    print_touch(call, code as u64);
    if got != plan::EXEC_RESULT {
        line(|out| {
            let _ = write!(
                out,
                "FAIL exec returned={got:#x} expected={:#x}",
                u64::from(plan::EXEC_RESULT)
            );
        });
        shutdown(ShutdownReason::Crash)
    }
    plan.touches().len()
}

/// The `xen-copy` pattern: Xen copies its extra version string into page 7 at 0x40,
/// the guest reads it back (two 8-byte reads, accounted for by the `XEN-COPY` line),
/// prints `XEN-COPY`, then makes the plan's write to page 7 at 0x80. A failed copy is
/// reported (its `rc`), not a FAIL: whether Xen's write goes through is what the test
/// looks at.
fn xen_copy(hv: &HypercallPage, plan: &Plan) -> usize {
    let dest = buffer_byte(plan::XEN_COPY_PAGE, plan::XEN_COPY_OFFSET);
    // SAFETY: the 16 bytes at `dest` are inside buffer page 7, which nothing
    // references (raw pointers only).
    let rc = unsafe { hypercall::xen_version_extraversion(hv, dest) };
    let mut text = [0u8; hypercall::XEN_EXTRAVERSION_LEN];
    for (chunk, offset) in text.chunks_exact_mut(8).zip(plan::XEN_COPY_READS) {
        let word = buffer_byte(plan::XEN_COPY_PAGE, offset).cast::<u64>();
        // SAFETY: 8-byte aligned (offsets 0x40 and 0x48 of a page) and inside page 7;
        // volatile because Xen wrote the bytes.
        chunk.copy_from_slice(&unsafe { word.read_volatile() }.to_ne_bytes());
    }
    line(|out| plan::write_xen_copy(out, rc, &text));
    plan.touches().iter().for_each(touch_buffer);
    plan.touches().len()
}
