//! The `multi-vcpu` pattern: vCPU 0 brings vCPU 1 up on its own stack, both write
//! their half of the buffer at the same time, vCPU 1 then stops itself.
//!
//! vCPU 1 starts at `test_guest_vcpu1_entry` (asm: its own 16 KiB stack, then
//! [`vcpu1_main`]), prints `VCPU 1 up`, and waits for the start flag; vCPU 0 sets it
//! once vCPU 1 runs. From there the two do not wait for each other: each makes its
//! touches of the plan, printing each `TOUCH ... vcpu=<n>` line under the console lock
//! (`line`). vCPU 1 then counts its touches, sets its done flag and takes itself down
//! (`VCPUOP_down`, as Linux's `play_dead`; never `SCHEDOP_block`, which would unmask
//! events this kernel cannot take). vCPU 0 waits (bounded) for that flag, then the
//! dispatcher prints `PATTERN-DONE` with both vCPUs' touches.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use test_guest::frames::Pfn;
use test_guest::handshake::{self, MAX_POLLS, NS_PER_SEC};
use test_guest::hypercall::{self, HypercallPage, VcpuId, XenError};
use test_guest::patterns::{self as plan, Pattern, Plan};
use test_guest::start_info::StartInfo;
use test_guest::vcpu_up::{self, VcpuGuestContext};

use super::super::{fail, line, p2m, xen};
use super::{now_ns, touch_buffer};

/// The second vCPU.
const VCPU1: VcpuId = VcpuId(1);

/// How long vCPU 0 waits for vCPU 1 to start, and then to finish.
const VCPU1_TIMEOUT_NS: u64 = 120 * NS_PER_SEC;

/// Bytes of vCPU 1's stack.
const STACK_SIZE: usize = 16 * 1024;

/// vCPU 1's stack.
#[repr(C, align(16))]
struct Stack(UnsafeCell<[u8; STACK_SIZE]>);

// SAFETY: only vCPU 1 uses the stack, as its stack (Rust never references it).
unsafe impl Sync for Stack {}

static VCPU1_STACK: Stack = Stack(UnsafeCell::new([0; STACK_SIZE]));

/// Set by vCPU 1 once it runs (after its `VCPU 1 up` line).
static VCPU1_RUNNING: AtomicBool = AtomicBool::new(false);
/// Set by vCPU 0: both start touching.
static START: AtomicBool = AtomicBool::new(false);
/// vCPU 1's touches, published before [`VCPU1_DONE`].
static VCPU1_TOUCHES: AtomicUsize = AtomicUsize::new(0);
/// Set by vCPU 1 when its touches and their lines are done.
static VCPU1_DONE: AtomicBool = AtomicBool::new(false);

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

/// The address of vCPU 1's entry.
fn vcpu1_entry() -> u64 {
    test_guest_vcpu1_entry as *const () as u64
}

/// Makes vCPU `vcpu`'s touches of `plan`, in order, each with its line; returns how
/// many.
fn touch_all(plan: &Plan, vcpu: u32) -> usize {
    let mut done = 0;
    for touch in plan.of_vcpu(vcpu) {
        touch_buffer(touch);
        done += 1;
    }
    done
}

/// vCPU 0's side; returns the touches of both vCPUs.
pub(super) fn run(hv: &HypercallPage, si: &StartInfo, plan: &Plan) -> usize {
    match hypercall::vcpu_is_up(hv, VCPU1) {
        Ok(false) => {}
        Ok(true) => fail("multi-vcpu: vcpu 1 already up", XenError::EINVAL),
        Err(e) => fail("multi-vcpu: vcpu 1", e),
    }
    let l4 = usize::try_from(Pfn::from_virt(si.pt_base).0).ok();
    let Some(&l4_mfn) = p2m(si).zip(l4).and_then(|(p2m, l4)| p2m.get(l4)) else {
        fail("multi-vcpu: L4 not in the P2M", XenError::EINVAL)
    };
    let stack_top = VCPU1_STACK.0.get() as u64 + STACK_SIZE as u64;
    let ctx = VcpuGuestContext::for_kernel_entry(vcpu1_entry(), stack_top, l4_mfn);
    // SAFETY: the entry switches to VCPU1_STACK, which nothing else uses, and runs
    // `vcpu1_main`, which only prints under the console lock, reads and writes atomics,
    // writes its own half of the buffer (raw pointers, disjoint from vCPU 0's) and makes
    // hypercalls; it has no trap table and its events stay masked (the builder masks
    // every vCPU's upcalls; nothing here unmasks them). The page tables are the running
    // ones (the L4 in use by vCPU 0).
    if let Err(e) = unsafe { vcpu_up::vcpu_initialise(hv, VCPU1, &ctx) } {
        fail("multi-vcpu: VCPUOP_initialise", e);
    }
    if let Err(e) = vcpu_up::vcpu_up(hv, VCPU1) {
        fail("multi-vcpu: VCPUOP_up", e);
    }
    wait(hv, &VCPU1_RUNNING, "multi-vcpu: vcpu 1 did not start");
    START.store(true, Ordering::Release);
    let mine = touch_all(plan, 0);
    wait(hv, &VCPU1_DONE, "multi-vcpu: vcpu 1 did not finish");
    mine + VCPU1_TOUCHES.load(Ordering::Acquire)
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

/// vCPU 1's Rust entry, called by `test_guest_vcpu1_entry` on vCPU 1's stack.
extern "C" fn vcpu1_main() -> ! {
    let hv = xen();
    line(|out| plan::write_vcpu_up(out, VCPU1.0));
    VCPU1_RUNNING.store(true, Ordering::Release);
    while !START.load(Ordering::Acquire) {
        let _ = hypercall::sched_yield(&hv);
    }
    let plan = plan::plan(Pattern::MultiVcpu);
    let touches = touch_all(&plan, VCPU1.0);
    VCPU1_TOUCHES.store(touches, Ordering::Relaxed);
    VCPU1_DONE.store(true, Ordering::Release);
    loop {
        // Returns only when vCPU 0 brings it up again (it does not), or if Xen
        // refused: then stay harmless.
        let _ = vcpu_up::vcpu_down(&hv, VCPU1);
        let _ = hypercall::sched_yield(&hv);
    }
}
