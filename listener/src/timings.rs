//! Where the listener's time goes while it answers events (`listener monitor --timings
//! FILE`): each step of the answer path summed over the run, written as JSON at the end.
//! The guest sees a sync event's whole round trip; these say which part of it is the
//! listener's own, and of that, which step.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Sums over a run, in nanoseconds. Only kept when asked for: reading the clock is a
/// system call in a PV dom0, and would cost every answer its share.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Timings {
    /// Whether the steps are timed (`--timings`).
    #[serde(skip)]
    pub enabled: bool,
    /// Times the event channel woke the loop with requests to answer.
    pub wakeups: u64,
    /// Requests answered.
    pub events: u64,
    /// From the wake-up to Xen notified of the last answer: the listener's share of the
    /// round trips.
    pub drain_ns: u64,
    /// `XENMEM_access_op` relaxing pages (`--on-event relax`).
    pub set_access_ns: u64,
    /// Writing (and flushing) trace lines.
    pub trace_ns: u64,
    /// Notifying Xen of the answers (the event-channel ioctl).
    pub notify_ns: u64,
}

impl Timings {
    /// Runs `step` and adds its time to the counter `field` picks.
    pub fn time<T>(&mut self, field: fn(&mut Timings) -> &mut u64, step: impl FnOnce() -> T) -> T {
        if !self.enabled {
            return step();
        }
        let start = Instant::now();
        let result = step();
        *field(self) += nanoseconds(start.elapsed());
        result
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default() + "\n"
    }
}

fn nanoseconds(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_add_up_in_their_own_counters() {
        let mut untimed = Timings::default();
        assert_eq!(untimed.time(|t| &mut t.trace_ns, || 3), 3);
        assert_eq!(untimed, Timings::default());
        let mut timings = Timings {
            enabled: true,
            ..Timings::default()
        };
        let value = timings.time(
            |t| &mut t.trace_ns,
            || {
                std::thread::sleep(Duration::from_millis(2));
                7
            },
        );
        assert_eq!(value, 7);
        assert!(timings.trace_ns >= 2_000_000);
        assert_eq!(timings.set_access_ns, 0);
        let json: serde_json::Value = serde_json::from_str(&timings.to_json()).unwrap();
        assert!(json["trace_ns"].as_u64().unwrap() >= 2_000_000);
        assert_eq!(json["events"], 0);
    }
}
