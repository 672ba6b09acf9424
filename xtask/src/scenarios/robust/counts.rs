//! The robustness figures of a run: what each scenario leaves in its `robust.json`, summed
//! into `summary.json`'s `"robust"` object, plus the Xen alarm lines the log check counted.
//!
//! A scenario's `robust.json` is one JSON object with any of the keys below (a missing key
//! is 0); a key that is not one of them, or a value that is not a whole number, is an error
//! naming the file, so a typo cannot silently count as 0.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The file a scenario's dom0 half may leave in its output directory.
pub const ROBUST_FILE: &str = "robust.json";

#[derive(Serialize, Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RobustCounts {
    /// Wrong calls made on purpose, each checked for its errno.
    pub bad_inputs: u64,
    /// Random calls of a fuzz run.
    pub fuzz_calls: u64,
    /// Listeners killed while monitoring.
    pub listener_kills: u64,
    /// Pages Xen did not give back.
    pub leaked_pages: u64,
    /// Events the guest caused that no listener saw.
    pub lost_events: u64,
    /// `(XEN)` lines with ASSERT/WARN/BUG/Assertion while the scenario ran.
    pub assert_lines: u64,
}

impl RobustCounts {
    /// Reads a `robust.json`'s text.
    pub fn parse(text: &str) -> Result<RobustCounts> {
        serde_json::from_str(text).with_context(|| {
            format!(
                "{ROBUST_FILE} must be an object of whole numbers with the keys bad_inputs, \
                 fuzz_calls, listener_kills, leaked_pages, lost_events, assert_lines"
            )
        })
    }

    /// Adds another scenario's figures.
    pub fn add(&mut self, other: &RobustCounts) {
        self.bad_inputs += other.bad_inputs;
        self.fuzz_calls += other.fuzz_calls;
        self.listener_kills += other.listener_kills;
        self.leaked_pages += other.leaked_pages;
        self.lost_events += other.lost_events;
        self.assert_lines += other.assert_lines;
    }

    /// The file's text.
    pub fn to_json(self) -> String {
        serde_json::to_string_pretty(&self).unwrap_or_default() + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keys_are_zero_and_sums_add_up() {
        let mut total = RobustCounts::default();
        total.add(&RobustCounts::parse(r#"{"bad_inputs": 120}"#).unwrap());
        total.add(&RobustCounts::parse(r#"{"listener_kills": 3, "lost_events": 0}"#).unwrap());
        total.add(&RobustCounts::parse("{}").unwrap());
        total.add(&RobustCounts {
            assert_lines: 2,
            ..RobustCounts::default()
        });
        assert_eq!(
            total,
            RobustCounts {
                bad_inputs: 120,
                listener_kills: 3,
                assert_lines: 2,
                ..RobustCounts::default()
            }
        );
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        assert!(RobustCounts::parse(r#"{"bad_input": 1}"#).is_err());
        assert!(RobustCounts::parse(r#"{"fuzz_calls": -1}"#).is_err());
        assert!(RobustCounts::parse(r#"{"fuzz_calls": 1.5}"#).is_err());
        let error = RobustCounts::parse("nonsense").unwrap_err();
        assert!(format!("{error:#}").contains("robust.json"), "{error:#}");
    }

    #[test]
    fn written_files_read_back() {
        let counts = RobustCounts {
            fuzz_calls: 10_000,
            leaked_pages: 1,
            ..RobustCounts::default()
        };
        assert_eq!(RobustCounts::parse(&counts.to_json()).unwrap(), counts);
        assert!(counts.to_json().contains("\"fuzz_calls\": 10000"));
    }
}
