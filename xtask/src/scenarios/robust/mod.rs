//! `robust/*`: the system under abuse. Wrong and random calls against the control interface
//! (`bad_input`, `fuzz`), which Xen must answer each with an error, losing nothing; listeners
//! killed in the middle of a write storm; access rights read back on guests never or no
//! longer monitored; guests created and destroyed again and again. Each scenario leaves the
//! counters it measured in `robust.json` ([`Counters`]; `counts` adds them up for the run's
//! summary).

mod accounting;
pub mod bad_input;
pub mod counts;
pub mod cycles;
pub mod fuzz;
pub mod get_access;
pub mod listener_kill;
pub mod raw;

use anyhow::Result;
use serde::Serialize;

use crate::scenarios::Dom0;

/// `robust.json`: what a robustness scenario counted. Only the counters it measured are
/// written.
#[derive(Debug, Default, Serialize)]
pub struct Counters {
    /// `listener monitor` processes killed with SIGKILL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_kills: Option<u64>,
    /// Pages of Xen's free memory not back at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaked_pages: Option<u64>,
    /// Violations that should have reached a listener and did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost_events: Option<u64>,
}

impl Counters {
    pub const FILE: &'static str = "robust.json";

    pub fn save(&self, dom0: &Dom0) -> Result<()> {
        dom0.save(Self::FILE, serde_json::to_string(self)? + "\n")
    }
}

/// Pages lost between two counts of Xen's free memory (0 when none, or when more came back).
pub fn leaked(before: u64, after: u64) -> u64 {
    before.saturating_sub(after)
}

/// Pages Xen or dom0 may keep for good as guests come and go (a grant maptrack frame, an
/// event channel bucket), as `abi/destroy-while-monitored` measured: a leak of one page per
/// guest over the many guests of these scenarios shows far beyond it.
pub const SLACK_PAGES: u64 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_measured_counters_are_written() {
        let counters = Counters {
            listener_kills: Some(24),
            lost_events: Some(0),
            ..Counters::default()
        };
        assert_eq!(
            serde_json::to_string(&counters).unwrap(),
            r#"{"listener_kills":24,"lost_events":0}"#
        );
        assert_eq!(leaked(100, 98), 2);
        assert_eq!(leaked(100, 103), 0);
    }
}
