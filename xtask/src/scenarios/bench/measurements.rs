//! What `bench/figures` measured in dom0, as it leaves it in `measurements.json` for the
//! host: raw times in the units they were taken in (the guest's TSC ticks, dom0's
//! microseconds), one entry per run. The figures (ratios, medians) are the host's work
//! ([`crate::bench::figures`]), so a change of a figure's definition needs no new boot.

use listener::timings::Timings;
use serde::{Deserialize, Serialize};

/// Everything one `bench/figures` run measured.
#[derive(Serialize, Deserialize, Debug, Default, Clone)]
pub struct Measurements {
    /// How many runs each figure has (`cargo xtask bench`: 5; the e2e's smoke test: 1).
    pub runs: u32,
    /// Per run: the guest's write loop (`pattern=bench`) three ways.
    pub write_loop: Vec<WriteLoop>,
    /// Per run: one guest writing fresh pages, each write one sync event, against the
    /// event-channel ping-pong with a dom0 echo process.
    pub event_rtt: Vec<EventRtt>,
    /// Every run's per-operation samples, for the distribution plot.
    pub rtt_samples: RttSamples,
    /// Where the listener's share of an event goes.
    pub listener_breakdown: Option<ListenerBreakdown>,
    /// Per run: the same events taken by one vCPU and by two.
    pub vcpus: Vec<VcpuScaling>,
    /// Per run: access changes on a small and a big guest.
    pub guest_size: Vec<GuestSize>,
    /// Per run: the guest's loop of hypercalls that have Xen write into its pages.
    pub hypercall_loop: Vec<HypercallLoop>,
    /// `XENMEM_access_op` from dom0, with what Xen's shadow code did for it (once, after
    /// the runs: counts, not timings, and checked).
    pub access_ops: Option<AccessOps>,
}

/// The write loop's guest TSC ticks: unmonitored (no shadow paging), in log-dirty mode
/// (shadow paging, no mem_access), monitored with every page rwx (no events).
#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy)]
pub struct WriteLoop {
    pub writes: u64,
    pub plain_tsc: u64,
    pub log_dirty_tsc: u64,
    pub monitored_tsc: u64,
}

/// Guest TSC ticks for `events` sync events (the listener answering each at once) and for
/// `rounds` event-channel round trips to a dom0 echo process.
#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy)]
pub struct EventRtt {
    pub events: u64,
    pub events_tsc: u64,
    pub rounds: u64,
    pub pingpong_tsc: u64,
    /// The median of the run's per-event samples: one descheduled moment of the nested
    /// machine moves the mean, not this.
    pub events_median_tsc: u64,
    pub pingpong_median_tsc: u64,
}

/// One more run of the same events, after the others, with the listener timing its own
/// steps (`listener monitor --timings`: reading the clock costs a PV dom0 a system call, so
/// the runs the figures come from are not timed this way).
#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy)]
pub struct ListenerBreakdown {
    /// The guest's median per event in this run, for comparison with the others.
    pub events_median_tsc: u64,
    /// `listener monitor --timings`: sums over the run, in nanoseconds (dom0's clock).
    pub listener: Timings,
}

/// The guest's per-operation samples in TSC ticks, and the scale that turns ticks into
/// nanoseconds (Xen's `tsc_to_system_mul` and `tsc_shift` for the guest).
#[derive(Serialize, Deserialize, Debug, Default, Clone)]
pub struct RttSamples {
    pub scale: Option<TscScale>,
    pub events_tsc: Vec<u64>,
    pub pingpong_tsc: Vec<u64>,
}

/// pvclock's scale: `ns = ((ticks << shift or >> -shift) * mul) >> 32`.
#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy, PartialEq)]
pub struct TscScale {
    pub mul: u32,
    pub shift: i8,
}

impl TscScale {
    pub fn nanoseconds(self, ticks: u64) -> f64 {
        let shifted = if self.shift >= 0 {
            (ticks as f64) * f64::from(1u32 << self.shift)
        } else {
            (ticks as f64) / f64::from(1u32 << (-self.shift))
        };
        shifted * f64::from(self.mul) / 4_294_967_296.0
    }
}

/// Guest TSC ticks for the same `events` sync events taken by one vCPU and by two (each a
/// half), and the events of each that the listener's trace is missing.
#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy)]
pub struct VcpuScaling {
    pub events: u64,
    pub one_vcpu_tsc: u64,
    pub two_vcpus_tsc: u64,
    pub lost_one_vcpu: u64,
    pub lost_two_vcpus: u64,
}

/// Access changes on the small guest and on the big one, measured alike.
#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy)]
pub struct GuestSize {
    pub small: AccessChange,
    pub big: AccessChange,
}

/// One guest's costs: each a dom0 call, then the guest's sweep of its 16 buffer pages
/// (timed by the guest, with the shadow faults Xen counted while it ran).
#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy)]
pub struct AccessChange {
    pub memory_mib: u32,
    /// A new default (rx2rw: no events; every frame's shadows rebuilt).
    pub default_set: Step,
    /// Back to rwx: the sweep every other is compared with.
    pub baseline: Step,
    /// One buffer frame restricted (rx2rw).
    pub restrict_one: Step,
}

/// A dom0 call and the guest's sweep after it.
#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy)]
pub struct Step {
    pub call_us: f64,
    pub sweep_ns: u64,
    pub sweep_faults: u64,
}

impl Step {
    /// The whole cost: the call and the guest's sweep after it.
    pub fn total_ns(self) -> f64 {
        self.call_us * 1000.0 + self.sweep_ns as f64
    }
}

/// Guest TSC ticks of `calls` hypercalls that have Xen write into the guest's buffer
/// pages: unmonitored, monitored with the pages rwx, monitored with them read-only.
#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy)]
pub struct HypercallLoop {
    pub calls: u64,
    pub plain_tsc: u64,
    pub monitored_rwx_tsc: u64,
    pub monitored_rx_tsc: u64,
}

/// `REPEAT` calls of each `XENMEM_access_op` kind: mean microseconds and Xen's counts.
#[derive(Serialize, Deserialize, Debug, Default, Clone)]
pub struct AccessOps {
    pub repeat: u64,
    pub default_r: OpCost,
    pub relax_one: OpCost,
    pub restrict_one: OpCost,
}

#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy)]
pub struct OpCost {
    pub mean_us: f64,
    pub revokes: u64,
    pub revoked_entries: u64,
    pub blows: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_converts_as_pvclock_does() {
        // mul 2^31 is half a nanosecond per shifted tick.
        let half = TscScale {
            mul: 1 << 31,
            shift: 0,
        };
        assert_eq!(half.nanoseconds(1000), 500.0);
        let doubled = TscScale {
            mul: 1 << 31,
            shift: 1,
        };
        assert_eq!(doubled.nanoseconds(1000), 1000.0);
        let halved = TscScale {
            mul: 1 << 31,
            shift: -1,
        };
        assert_eq!(halved.nanoseconds(1000), 250.0);
    }

    #[test]
    fn a_step_costs_its_call_and_its_sweep() {
        let step = Step {
            call_us: 2.5,
            sweep_ns: 500,
            sweep_faults: 3,
        };
        assert_eq!(step.total_ns(), 3000.0);
    }
}
