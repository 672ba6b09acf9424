//! The figures of `cargo xtask bench`, computed from what `bench/figures` measured in dom0
//! ([`Measurements`]) and from the host's tracker benchmark: each a ratio (or a count) per
//! run, reported as the median with the minimum and maximum, against its target.

use anyhow::{ensure, Result};
use serde::Serialize;

use crate::scenarios::bench::measurements::{AccessChange, Measurements, Step};

/// Which way a figure is good.
#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    pub fn met_by(self, value: f64) -> bool {
        match self {
            Target::AtMost(limit) => value <= limit,
            Target::AtLeast(limit) => value >= limit,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Target::AtMost(limit) => format!("<= {limit}"),
            Target::AtLeast(limit) => format!(">= {limit}"),
        }
    }
}

/// One figure: its value per run, and their median as its value.
#[derive(Serialize, Debug, Clone)]
pub struct Figure {
    #[serde(skip)]
    pub name: &'static str,
    /// The median of `runs`.
    pub value: f64,
    pub min: f64,
    pub max: f64,
    pub target: Option<Target>,
    /// Whether `value` meets `target` (absent without a target).
    pub met: Option<bool>,
    pub runs: Vec<f64>,
    pub unit: &'static str,
    /// What the figure is, in one line.
    pub what: &'static str,
}

impl Figure {
    fn new(
        name: &'static str,
        what: &'static str,
        unit: &'static str,
        target: Option<Target>,
        runs: Vec<f64>,
    ) -> Result<Figure> {
        ensure!(!runs.is_empty(), "{name}: no runs measured it");
        ensure!(
            runs.iter().all(|value| value.is_finite()),
            "{name}: a run gave {runs:?}"
        );
        let value = median(&runs);
        Ok(Figure {
            name,
            value,
            min: runs.iter().copied().fold(f64::INFINITY, f64::min),
            max: runs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            target,
            met: target.map(|target| target.met_by(value)),
            runs,
            unit,
            what,
        })
    }
}

/// The median; the mean of the middle two for an even count.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    }
}

/// The host's tracker benchmark: lookup time over a flat array's, per repetition, and the
/// memory the tracker used per tracked frame.
#[derive(serde::Deserialize, Serialize, Debug, Clone, PartialEq)]
pub struct TrackerFigures {
    pub lookup_ratio_runs: Vec<f64>,
    pub bytes_per_frame: f64,
}

fn ratio(numerator: u64, denominator: u64) -> f64 {
    numerator as f64 / denominator as f64
}

/// Every figure, in the order the report shows them.
pub fn compute(measured: &Measurements, tracker: Option<&TrackerFigures>) -> Result<Vec<Figure>> {
    let per_run = |f: &dyn Fn(usize) -> f64, count: usize| (0..count).map(f).collect::<Vec<_>>();
    let writes = &measured.write_loop;
    let rtt = &measured.event_rtt;
    let vcpus = &measured.vcpus;
    let sizes = &measured.guest_size;
    let copies = &measured.hypercall_loop;
    let size_ratio = |step: fn(&AccessChange) -> Step| {
        per_run(
            &|run| step(&sizes[run].big).total_ns() / step(&sizes[run].small).total_ns(),
            sizes.len(),
        )
    };
    let extra_faults = |change: &AccessChange| {
        change.restrict_one.sweep_faults as f64 - change.baseline.sweep_faults as f64
    };
    let mut figures = vec![
        Figure::new(
            "monitor_overhead",
            "guest write loop, monitored with every page rwx (no events) / in log-dirty mode \
             (shadow paging without mem_access): time",
            "ratio",
            Some(Target::AtMost(1.05)),
            per_run(
                &|run| ratio(writes[run].monitored_tsc, writes[run].log_dirty_tsc),
                writes.len(),
            ),
        )?,
        Figure::new(
            "monitor_overhead_vs_no_shadow",
            "the same loop, monitored / unmonitored (the guest on its own page tables): time",
            "ratio",
            None,
            per_run(
                &|run| ratio(writes[run].monitored_tsc, writes[run].plain_tsc),
                writes.len(),
            ),
        )?,
        Figure::new(
            "event_rtt_ratio",
            "guest time per sync mem_access event (the listener relaxing the page at once) / \
             per event-channel round trip to a dom0 echo process (each the median of its \
             run's 256 samples)",
            "ratio",
            Some(Target::AtMost(1.5)),
            per_run(
                &|run| ratio(rtt[run].events_median_tsc, rtt[run].pingpong_median_tsc),
                rtt.len(),
            ),
        )?,
        Figure::new(
            "default_set_scaling",
            "new default (rx2rw) and the guest's sweep after it (rebuild faults included), \
             768 MiB guest / 64 MiB guest: time",
            "ratio",
            Some(Target::AtMost(1.2)),
            size_ratio(|change| change.default_set),
        )?,
        Figure::new(
            "restrict_one_frame_scaling",
            "one frame restricted (rx2rw) and the guest's sweep after it, 768 MiB guest / \
             64 MiB guest: time",
            "ratio",
            Some(Target::AtMost(1.2)),
            size_ratio(|change| change.restrict_one),
        )?,
        Figure::new(
            "restrict_one_frame_extra_faults",
            "shadow faults of the sweep after one frame was restricted, beyond the sweep \
             after the default went back to rwx (the larger of the two guests)",
            "faults",
            Some(Target::AtMost(4.0)),
            per_run(
                &|run| extra_faults(&sizes[run].small).max(extra_faults(&sizes[run].big)),
                sizes.len(),
            ),
        )?,
        Figure::new(
            "events_per_sec_2vcpu_over_1vcpu",
            "sync events per second with two vCPUs taking them / with one",
            "ratio",
            Some(Target::AtLeast(1.5)),
            per_run(
                &|run| ratio(vcpus[run].one_vcpu_tsc, vcpus[run].two_vcpus_tsc),
                vcpus.len(),
            ),
        )?,
        Figure::new(
            "lost_events",
            "sync events the listener's trace misses, one and two vCPUs together",
            "events",
            Some(Target::AtMost(0.0)),
            per_run(
                &|run| (vcpus[run].lost_one_vcpu + vcpus[run].lost_two_vcpus) as f64,
                vcpus.len(),
            ),
        )?,
        Figure::new(
            "hypercall_loop_ratio",
            "guest loop of hypercalls having Xen write into its pages, speed with the pages \
             read-only (monitored) / unmonitored",
            "ratio",
            Some(Target::AtLeast(0.5)),
            per_run(
                &|run| ratio(copies[run].plain_tsc, copies[run].monitored_rx_tsc),
                copies.len(),
            ),
        )?,
    ];
    if let Some(tracker) = tracker {
        figures.push(Figure::new(
            "tracker_lookup_ratio",
            "tracker lookup / flat-array load over the same 64Ki random keys at 4M frames \
             (host)",
            "ratio",
            Some(Target::AtMost(2.0)),
            tracker.lookup_ratio_runs.clone(),
        )?);
        figures.push(Figure::new(
            "tracker_bytes_per_frame",
            "tracker memory per tracked frame at 4M frames, every frame with its own access \
             (host)",
            "bytes",
            Some(Target::AtMost(8.0)),
            vec![tracker.bytes_per_frame],
        )?);
    }
    Ok(figures)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::bench::measurements::{
        EventRtt, GuestSize, HypercallLoop, VcpuScaling, WriteLoop,
    };

    #[test]
    fn medians_take_the_middle() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
    }

    #[test]
    fn targets_know_their_direction() {
        assert!(Target::AtMost(1.05).met_by(1.05));
        assert!(!Target::AtMost(1.05).met_by(1.06));
        assert!(Target::AtLeast(0.5).met_by(0.6));
        assert!(!Target::AtLeast(0.5).met_by(0.4));
    }

    fn change(memory_mib: u32, default_ns: u64, extra: u64) -> AccessChange {
        let step = |sweep_ns, sweep_faults| Step {
            call_us: 1.0,
            sweep_ns,
            sweep_faults,
        };
        AccessChange {
            memory_mib,
            default_set: step(default_ns, 30),
            baseline: step(1000, 2),
            restrict_one: step(1000, 2 + extra),
        }
    }

    fn measured() -> Measurements {
        Measurements {
            runs: 2,
            write_loop: vec![
                WriteLoop {
                    writes: 16,
                    plain_tsc: 100,
                    log_dirty_tsc: 100,
                    monitored_tsc: 110,
                };
                2
            ],
            event_rtt: vec![
                EventRtt {
                    events: 10,
                    events_tsc: 300,
                    rounds: 10,
                    pingpong_tsc: 100,
                    events_median_tsc: 30,
                    pingpong_median_tsc: 10,
                };
                2
            ],
            vcpus: vec![
                VcpuScaling {
                    events: 10,
                    one_vcpu_tsc: 300,
                    two_vcpus_tsc: 200,
                    lost_one_vcpu: 0,
                    lost_two_vcpus: 1,
                };
                2
            ],
            guest_size: vec![
                GuestSize {
                    small: change(64, 1000, 1),
                    big: change(768, 2000, 3),
                },
                GuestSize {
                    small: change(64, 1000, 1),
                    big: change(768, 1000, 1),
                },
            ],
            hypercall_loop: vec![
                HypercallLoop {
                    calls: 10,
                    plain_tsc: 100,
                    monitored_rwx_tsc: 110,
                    monitored_rx_tsc: 400,
                };
                2
            ],
            ..Measurements::default()
        }
    }

    #[test]
    fn figures_are_the_ratios_of_each_run() {
        let tracker = TrackerFigures {
            lookup_ratio_runs: vec![3.0, 3.2, 3.1],
            bytes_per_frame: 0.5,
        };
        let figures = compute(&measured(), Some(&tracker)).unwrap();
        let get = |name| figures.iter().find(|figure| figure.name == name).unwrap();
        assert_eq!(get("monitor_overhead").value, 1.1);
        assert_eq!(get("monitor_overhead").met, Some(false));
        assert_eq!(get("event_rtt_ratio").value, 3.0);
        // (1000 ns call + 2000 ns sweep) / (1000 + 1000), and 2000 / 2000.
        assert_eq!(get("default_set_scaling").runs, vec![1.5, 1.0]);
        assert_eq!(get("default_set_scaling").value, 1.25);
        assert_eq!(get("restrict_one_frame_extra_faults").runs, vec![3.0, 1.0]);
        assert_eq!(get("events_per_sec_2vcpu_over_1vcpu").value, 1.5);
        assert_eq!(get("lost_events").value, 1.0);
        assert_eq!(get("lost_events").met, Some(false));
        assert_eq!(get("hypercall_loop_ratio").value, 0.25);
        assert_eq!(get("tracker_lookup_ratio").value, 3.1);
        assert_eq!(get("tracker_lookup_ratio").min, 3.0);
        assert_eq!(get("tracker_lookup_ratio").max, 3.2);
        assert_eq!(get("tracker_bytes_per_frame").met, Some(true));
    }

    #[test]
    fn a_figure_no_run_measured_is_an_error() {
        let empty = Measurements::default();
        assert!(compute(&empty, None).is_err());
    }
}
