//! The end-to-end scenarios, one module (or directory) each, in the manner of XTF's one
//! directory per test. A scenario has two halves: `in_dom0` runs inside the nested dom0 and
//! leaves what it observed as files in its output directory; `on_host` asserts on those files
//! (and on the serial log) after they came back. Adding a scenario is a new module and one
//! line in the list below.

mod abi;
pub mod bench;
mod boot;
mod compat;
mod dom0;
mod events;
mod fault_counts;
mod guest;
mod hostile;
mod listener;
mod perf_counters;
pub mod robust;
mod transcript;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub use dom0::Dom0;

/// Every scenario, in the order a full run takes them.
pub const ALL: &[&Scenario] = &[
    &boot::SCENARIO,
    &abi::enable_disable::SCENARIO,
    &abi::default_access::SCENARIO,
    &abi::set_multi::SCENARIO,
    &abi::ring_unreachable::SCENARIO,
    &abi::destroy_while_monitored::SCENARIO,
    &abi::pv32_refused::SCENARIO,
    &compat::pfn_refused::SCENARIO,
    &robust::bad_input::SCENARIO,
    &robust::fuzz::SCENARIO,
    &listener::lifecycle::SCENARIO,
    &events::READ_SWEEP,
    &events::WRITE_SWEEP,
    &events::EXEC,
    &events::STRIDE,
    &events::RX2RW,
    &events::N2RWX,
    &events::PT_WRITE,
    &events::XEN_COPY,
    &events::MULTI_VCPU,
    &events::DEFAULT_GENERATION,
    &events::BALLOON,
    &events::access_required::SCENARIO,
    &events::emulate_refused::SCENARIO,
    &robust::get_access::SCENARIO,
    &robust::cycles::SCENARIO,
    &robust::listener_kill::SCENARIO,
    &hostile::race::XEN_COPY_RACE,
    &hostile::race::RUNSTATE_AREA,
    &hostile::bounce_frame::SCENARIO,
    &hostile::pt_hypercall_write::SCENARIO,
    &compat::libxenctrl::SCENARIO,
    &compat::xen_access::SCENARIO,
    &bench::SCENARIO,
];

/// The dom0 half's verdict, in `<scenario>/result.json`.
pub const RESULT_FILE: &str = "result.json";

pub struct Scenario {
    /// `group/name`, also the results directory under `target/e2e/`.
    pub name: &'static str,
    pub in_dom0: fn(&Dom0) -> Result<()>,
    pub on_host: fn(&HostView) -> Result<()>,
}

/// What the host has after the run, for a scenario's assertions.
pub struct HostView {
    /// The scenario's files from dom0 (`target/e2e/<name>/`).
    pub dir: PathBuf,
    /// The whole serial log of the run.
    pub serial_log: PathBuf,
}

impl HostView {
    pub fn read(&self, file: &str) -> Result<String> {
        read(&self.dir.join(file))
    }

    pub fn serial(&self) -> Result<String> {
        read(&self.serial_log)
    }

    /// Keeps a finding of the host half next to the scenario's results (measurements that
    /// are reported, not asserted).
    pub fn save_note(&self, file: &str, text: &str) -> Result<()> {
        let path = self.dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }
}

fn read(path: &Path) -> Result<String> {
    use anyhow::Context;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ScenarioResult {
    pub status: Status,
    pub seconds: f64,
    pub reason: Option<String>,
}

/// Runs one half of a scenario; a panic in it is that scenario's failure, not the end of
/// the run (the dom0 agent is PID 1: its panic would take every later scenario with it).
pub fn unless_panicked(half: impl FnOnce() -> Result<()>) -> Result<()> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(half)) {
        Ok(outcome) => outcome,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            anyhow::bail!("panicked: {message}")
        }
    }
}

pub fn find(name: &str) -> Option<&'static Scenario> {
    ALL.iter().copied().find(|scenario| scenario.name == name)
}

/// The scenarios a set of `--scenario` patterns selects, in run order; all when there are
/// none. A pattern selects a name it equals, a group it names (`abi` selects `abi/...`), or
/// the names it matches with `*` as a wildcard. A pattern that selects nothing is an error.
pub fn select(patterns: &[String]) -> Result<Vec<&'static Scenario>> {
    if patterns.is_empty() {
        return Ok(ALL.to_vec());
    }
    for pattern in patterns {
        if !ALL.iter().any(|scenario| selects(pattern, scenario.name)) {
            let names: Vec<&str> = ALL.iter().map(|scenario| scenario.name).collect();
            anyhow::bail!(
                "--scenario {pattern} matches no scenario; there are: {}",
                names.join(", ")
            );
        }
    }
    Ok(ALL
        .iter()
        .copied()
        .filter(|scenario| patterns.iter().any(|p| selects(p, scenario.name)))
        .collect())
}

fn selects(pattern: &str, name: &str) -> bool {
    pattern == name
        || name
            .strip_prefix(pattern.trim_end_matches('/'))
            .is_some_and(|rest| rest.starts_with('/'))
        || (pattern.contains('*') && wildcard(pattern.as_bytes(), name.as_bytes()))
}

fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| wildcard(rest, &name[skip..])),
        Some((first, rest)) => name.first() == Some(first) && wildcard(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_select_names_groups_and_wildcards() {
        assert!(selects("boot", "boot"));
        assert!(!selects("boo", "boot"));
        assert!(selects("abi", "abi/set-multi"));
        assert!(selects("abi/", "abi/set-multi"));
        assert!(!selects("ab", "abi/set-multi"));
        assert!(selects("abi/*-multi", "abi/set-multi"));
        assert!(selects("*multi*", "abi/set-multi"));
        assert!(!selects("*single*", "abi/set-multi"));
    }

    #[test]
    fn unknown_patterns_are_refused_with_the_names() {
        let error = select(&["nothing-like-this".into()]).err().unwrap();
        assert!(error.to_string().contains("boot"), "{error}");
        assert_eq!(select(&[]).unwrap().len(), ALL.len());
    }

    #[test]
    fn a_panicking_half_fails_alone() {
        let failed = unless_panicked(|| panic!("boom {}", 7)).unwrap_err();
        assert!(failed.to_string().contains("panicked: boom 7"), "{failed}");
        assert!(unless_panicked(|| Ok(())).is_ok());
        assert!(unless_panicked(|| anyhow::bail!("plain")).is_err());
    }

    #[test]
    fn names_are_unique() {
        for (index, scenario) in ALL.iter().enumerate() {
            assert!(ALL[index + 1..]
                .iter()
                .all(|other| other.name != scenario.name));
        }
    }
}
