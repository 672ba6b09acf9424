//! vCPU 1 of the two-vCPU patterns (`multi-vcpu`, `bench-events` with a second vCPU,
//! `xen-copy-race`, `runstate-area`): its stack, its entry, its bring-up and vCPU 0's
//! bounded waits on it, shared by the three pattern modules.
//!
//! [`start`] brings vCPU 1 up at `test_guest_vcpu1_entry` (asm: its own 16 KiB stack,
//! then `vcpu1_main`) on the running page tables, with the pattern's job. vCPU 1 prints
//! `VCPU 1 up`, sets its running flag (vCPU 0 waits for it with [`wait_running`]),
//! waits (yielding) until vCPU 0 calls [`release`], runs the job, then takes itself
//! down (`VCPUOP_down`, as Linux's `play_dead`; never `SCHEDOP_block`, which would
//! unmask events this kernel cannot take). A job publishes its own results and done
//! flag; vCPU 0 waits for them with [`wait`].

use core::cell::UnsafeCell;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use test_guest::frames::Pfn;
use test_guest::handshake::{self, MAX_POLLS};
use test_guest::hypercall::{self, HypercallPage, ShutdownReason, VcpuId, XenError};
use test_guest::patterns as plan;
use test_guest::start_info::StartInfo;
use test_guest::vcpu_up::{self, VcpuGuestContext};

use super::super::{fail, line, p2m, shutdown, xen};
use super::now_ns;

/// The second vCPU.
pub(super) const VCPU1: VcpuId = VcpuId(1);

/// What vCPU 1 does between [`release`] and going down.
pub(super) type Job = fn(&HypercallPage);

/// Bytes of vCPU 1's stack.
const STACK_SIZE: usize = 16 * 1024;

/// vCPU 1's stack.
#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; STACK_SIZE]>);

// SAFETY: only vCPU 1 uses the stack, as its stack (Rust never references it).
unsafe impl Sync for Stack {}

static VCPU1_STACK: Stack = Stack(UnsafeCell::new([0; STACK_SIZE]));

/// vCPU 1's [`Job`], as a pointer; set by [`start`] before vCPU 1 is brought up.
static JOB: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
/// Set by vCPU 1 once it runs (after its `VCPU 1 up` line).
static VCPU1_RUNNING: AtomicBool = AtomicBool::new(false);
/// Set by vCPU 0 ([`release`]): vCPU 1 starts its job.
static START: AtomicBool = AtomicBool::new(false);

// vCPU 1's entry: Xen starts it in 64-bit kernel mode at `rip` with the registers of
// its context (`rsp` already the stack top); the entry sets its own stack anyway,
// clears the direction flag and calls `vcpu1_main` with rsp 16-byte aligned before the
// call, as the SysV ABI wants. `vcpu1_main` never returns; `ud2` crashes the domain if
// it somehow did.
core::arch::global_asm!(
    r#"
    .pushsection .text.vcpu1_entry, "ax", @progbits
    .globl test_guest_vcpu1_entry
    .type test_guest_vcpu1_entry, @function
test_guest_vcpu1_entry:
    cld
    lea {stack}+{size}(%rip), %rsp
    xor %ebp, %ebp
    call {main}
    ud2
    .size test_guest_vcpu1_entry, . - test_guest_vcpu1_entry
    .popsection
    "#,
    stack = sym VCPU1_STACK,
    size = const STACK_SIZE,
    main = sym vcpu1_main,
    options(att_syntax)
);

extern "C" {
    /// vCPU 1's entry point, defined above (never called from Rust).
    fn test_guest_vcpu1_entry();
}

/// Prints `TEST-GUEST FAIL <pattern>: <what> error=<errno>` and crashes.
fn fail_in(pattern: &str, what: &str, error: XenError) -> ! {
    line(|out| {
        let _ = write!(out, "FAIL {pattern}: {what} error={}", error.errno());
    });
    shutdown(ShutdownReason::Crash)
}

/// Brings vCPU 1 up at `test_guest_vcpu1_entry` on the running page tables, to run
/// `job` once [`release`]d; `pattern` names the FAILs (`<pattern>: vcpu 1 already up`,
/// `<pattern>: VCPUOP_up`, ...). Does not wait for it to run ([`wait_running`]).
///
/// # Safety
///
/// `job`, run on vCPU 1 while vCPU 0 goes on, may only print under the console lock
/// (`line`), read and write atomics, access memory through raw pointers that vCPU 0
/// does not write at the same time (or that Xen writes), and make hypercalls; it has no
/// trap table and must not unmask events (the builder masks every vCPU's upcalls).
pub(super) unsafe fn start(hv: &HypercallPage, si: &StartInfo, pattern: &str, job: Job) {
    match hypercall::vcpu_is_up(hv, VCPU1) {
        Ok(false) => {}
        Ok(true) => fail_in(pattern, "vcpu 1 already up", XenError::EINVAL),
        Err(e) => fail_in(pattern, "vcpu 1", e),
    }
    let l4 = usize::try_from(Pfn::from_virt(si.pt_base).0).ok();
    let Some(&l4_mfn) = p2m(si).zip(l4).and_then(|(p2m, l4)| p2m.get(l4)) else {
        fail_in(pattern, "L4 not in the P2M", XenError::EINVAL)
    };
    JOB.store(job as *mut (), Ordering::Release);
    let entry = test_guest_vcpu1_entry as *const () as u64;
    let stack_top = VCPU1_STACK.0.get() as u64 + STACK_SIZE as u64;
    let ctx = VcpuGuestContext::for_kernel_entry(entry, stack_top, l4_mfn);
    // SAFETY: the entry switches to VCPU1_STACK, which nothing else uses, and runs
    // `vcpu1_main`, which prints under the console lock, reads and writes atomics, makes
    // hypercalls and runs `job`, which does no more (this fn's contract); no trap table,
    // events masked. The page tables are the running ones (the L4 in use by vCPU 0).
    if let Err(e) = unsafe { vcpu_up::vcpu_initialise(hv, VCPU1, &ctx) } {
        fail_in(pattern, "VCPUOP_initialise", e);
    }
    if let Err(e) = vcpu_up::vcpu_up(hv, VCPU1) {
        fail_in(pattern, "VCPUOP_up", e);
    }
}

/// Waits (bounded by `timeout_ns`, yielding) until vCPU 1 runs; FAIL `what` on timeout.
pub(super) fn wait_running(hv: &HypercallPage, timeout_ns: u64, what: &str) {
    wait(
        hv,
        || VCPU1_RUNNING.load(Ordering::Acquire),
        timeout_ns,
        what,
    );
}

/// Lets vCPU 1 start its job.
pub(super) fn release() {
    START.store(true, Ordering::Release);
}

/// Waits (bounded by `timeout_ns`, yielding) until `done()`; FAIL `what` on timeout.
pub(super) fn wait(hv: &HypercallPage, done: impl FnMut() -> bool, timeout_ns: u64, what: &str) {
    let waited = handshake::wait_until(
        done,
        now_ns,
        || {
            let _ = hypercall::sched_yield(hv);
        },
        timeout_ns,
        MAX_POLLS,
    );
    if waited.is_err() {
        fail(what, XenError::ETIMEDOUT);
    }
}

/// vCPU 1's Rust entry, called by `test_guest_vcpu1_entry` on vCPU 1's stack.
extern "C" fn vcpu1_main() -> ! {
    let hv = xen();
    line(|out| plan::write_vcpu_up(out, VCPU1.0));
    VCPU1_RUNNING.store(true, Ordering::Release);
    while !START.load(Ordering::Acquire) {
        let _ = hypercall::sched_yield(&hv);
    }
    let job = JOB.load(Ordering::Acquire);
    if !job.is_null() {
        // SAFETY: a non-null JOB was stored by `start` from a `Job` (`fn(&HypercallPage)`),
        // so this is that fn pointer back.
        let job: Job = unsafe { core::mem::transmute::<*mut (), Job>(job) };
        job(&hv);
    }
    loop {
        // Returns only when vCPU 0 brings it up again (it does not), or if Xen
        // refused: then stay harmless.
        let _ = vcpu_up::vcpu_down(&hv, VCPU1);
        let _ = hypercall::sched_yield(&hv);
    }
}
