//! The `multi-vcpu` pattern: vCPU 0 brings vCPU 1 up on its own stack, both write
//! their half of the buffer at the same time, vCPU 1 then stops itself.
//!
//! vCPU 1 starts as `second_vcpu` brings it up (its own stack), prints `VCPU 1 up`,
//! and waits for the start flag; vCPU 0 sets it once vCPU 1 runs. From there the two do not wait for each other: each makes its
//! touches of the plan, printing each `TOUCH ... vcpu=<n>` line under the console lock
//! (`line`). vCPU 1 then counts its touches, sets its done flag and takes itself down
//! (`second_vcpu`). vCPU 0 waits (bounded) for that flag, then the
//! dispatcher prints `PATTERN-DONE` with both vCPUs' touches.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use test_guest::handshake::NS_PER_SEC;
use test_guest::hypercall::HypercallPage;
use test_guest::patterns::{self as plan, Pattern, Plan};
use test_guest::start_info::StartInfo;

use super::second_vcpu::{self, VCPU1};
use super::touch_buffer;

/// How long vCPU 0 waits for vCPU 1 to start, and then to finish.
const VCPU1_TIMEOUT_NS: u64 = 120 * NS_PER_SEC;

/// vCPU 1's touches, published before [`VCPU1_DONE`].
static VCPU1_TOUCHES: AtomicUsize = AtomicUsize::new(0);
/// Set by vCPU 1 when its touches and their lines are done.
static VCPU1_DONE: AtomicBool = AtomicBool::new(false);

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
    // SAFETY: `vcpu1_job` only prints under the console lock, writes atomics and its
    // own half of the buffer (raw pointers, disjoint from vCPU 0's) and makes no
    // hypercall that unmasks events.
    unsafe { second_vcpu::start(hv, si, "multi-vcpu", vcpu1_job) };
    second_vcpu::wait_running(hv, VCPU1_TIMEOUT_NS, "multi-vcpu: vcpu 1 did not start");
    second_vcpu::release();
    let mine = touch_all(plan, 0);
    second_vcpu::wait(
        hv,
        || VCPU1_DONE.load(Ordering::Acquire),
        VCPU1_TIMEOUT_NS,
        "multi-vcpu: vcpu 1 did not finish",
    );
    mine + VCPU1_TOUCHES.load(Ordering::Acquire)
}

/// vCPU 1's job: its touches of the plan, then its count and done flag.
fn vcpu1_job(_hv: &HypercallPage) {
    let plan = plan::plan(Pattern::MultiVcpu);
    let touches = touch_all(&plan, VCPU1.0);
    VCPU1_TOUCHES.store(touches, Ordering::Relaxed);
    VCPU1_DONE.store(true, Ordering::Release);
}
