//! `hostile/*`: a monitored guest is assumed hostile; these scenarios try the ways a PV
//! guest has around the monitor and check that nothing gets past it (issue 10): Xen's own
//! accesses to its memory, and page-table writes made by hypercall.
//!
//! The semantics asserted: Xen's own accesses to a monitored PV guest's memory (hypercall
//! results, runstate-area updates, the exception and event frames `create_bounce_frame`
//! writes on the guest's kernel stack) complete without being reported and without making
//! any shadow entry more permissive, so that another vCPU can never write a read-only page
//! in that window; and a guest write to a page whose access forbids writing is always
//! reported.
//!
//! - `race`: `hostile/xen-copy-race` and `hostile/runstate-area`, two vCPUs: vCPU 1 has Xen
//!   write a read-only page 10^4 times while vCPU 0 keeps trying to write it.
//! - `bounce_frame`: `hostile/bounce-frame`, exceptions and upcalls delivered on a stack on
//!   a read-only page.
//! - `pt_hypercall_write`: `hostile/pt-hypercall-write`, the guest's page tables read-only,
//!   written by `mmu_update`, `update_va_mapping` and a multicall.
//!
//! The listener's trace of a race has tens of thousands of events (each of vCPU 0's
//! retries is one), so its dom0 half keeps a summary of it ([`TraceSummary`]) and its first
//! lines, not the whole trace.

pub mod bounce_frame;
pub mod pt_hypercall_write;
pub mod race;

pub use super::fault_counts::{fault_count, fault_counts, show_fault_counts};

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::events::trace::Trace;
use crate::scenarios::{Dom0, HostView};

/// What a trace held, grouped: one [`Group`] per kind of event, in the order each kind
/// first appeared.
#[derive(Debug, Serialize, Deserialize)]
pub struct TraceSummary {
    pub events: u64,
    pub end_reason: String,
    pub most_pending: u64,
    pub groups: Vec<Group>,
}

/// Events alike in all but their sequence number and registers.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
pub struct Group {
    pub vcpu: u32,
    pub access: String,
    pub pfn: Option<u64>,
    pub offset: Option<u64>,
    pub response: String,
    /// Whether the vCPU waited for the answer (`vcpu_paused`).
    pub sync: bool,
    pub count: u64,
}

impl TraceSummary {
    pub const FILE: &'static str = "trace-summary.json";
    /// The first lines of the trace, kept as they were.
    pub const HEAD_FILE: &'static str = "trace-head.jsonl";
    const HEAD_LINES: usize = 40;

    pub fn of(trace: &Trace) -> TraceSummary {
        let mut groups: BTreeMap<(usize, Group), u64> = BTreeMap::new();
        let mut first_seen: Vec<Group> = Vec::new();
        for event in &trace.events {
            let key = Group {
                vcpu: event.vcpu,
                access: event.access.clone(),
                pfn: event.pfn,
                offset: event.offset,
                response: event.response.clone(),
                sync: event.flags.iter().any(|flag| flag == "vcpu_paused"),
                count: 0,
            };
            let order = match first_seen.iter().position(|seen| *seen == key) {
                Some(order) => order,
                None => {
                    first_seen.push(key.clone());
                    first_seen.len() - 1
                }
            };
            *groups.entry((order, key)).or_default() += 1;
        }
        TraceSummary {
            events: trace.events.len() as u64,
            end_reason: trace.end.reason.clone(),
            most_pending: trace.end.most_pending,
            groups: groups
                .into_iter()
                .map(|((_, group), count)| Group { count, ..group })
                .collect(),
        }
    }

    /// Replaces the scenario's `trace.jsonl` by its summary and its first lines.
    pub fn condense(dom0: &Dom0) -> Result<()> {
        let path = dom0.dir().join("trace.jsonl");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let summary = TraceSummary::of(&Trace::parse(&text)?);
        dom0.save(Self::FILE, serde_json::to_string_pretty(&summary)? + "\n")?;
        let head: Vec<&str> = text.lines().take(Self::HEAD_LINES).collect();
        dom0.save(Self::HEAD_FILE, head.join("\n") + "\n")?;
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))
    }

    pub fn read(view: &HostView) -> Result<TraceSummary> {
        serde_json::from_str(&view.read(Self::FILE)?)
            .with_context(|| format!("{} is not a trace summary", Self::FILE))
    }

    /// The groups, one per line, for a failure message or a note.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} events, end {}, at most {} pending\n",
            self.events, self.end_reason, self.most_pending
        );
        for group in &self.groups {
            text += &format!(
                "  {} x vcpu{} {} pfn {} offset {} -> {}{}\n",
                group.count,
                group.vcpu,
                group.access,
                group.pfn.map_or("?".to_string(), |pfn| format!("{pfn:#x}")),
                group
                    .offset
                    .map_or("?".to_string(), |at| format!("{at:#x}")),
                group.response,
                if group.sync { "" } else { " (async)" }
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_groups_in_first_seen_order() {
        let event = |seq: u64, vcpu: u32, offset: u64| {
            format!(
                r#"{{"type":"event","seq":{seq},"vcpu":{vcpu},"reason":"mem_access","access":"w","pfn":522,"mfn":1,"gla":"0x20a800","offset":{offset},"flags":["w","vcpu_paused"],"rip":"0x0","response":"keep","recovered":false}}"#
            )
        };
        let text = [
            r#"{"type":"header","version":1,"domain":5,"xen_version":"","options":{"mode":"write","default_access":"rwx","access":[],"on_event":"keep","count":null,"timeout_seconds":null}}"#.to_string(),
            event(1, 0, 0x800),
            event(2, 1, 0x10),
            event(3, 0, 0x800),
            r#"{"type":"end","reason":"domain-gone","events":3,"most_pending":1}"#.to_string(),
        ]
        .join("\n");
        let summary = TraceSummary::of(&Trace::parse(&text).unwrap());
        assert_eq!(summary.events, 3);
        assert_eq!(summary.end_reason, "domain-gone");
        let shape: Vec<(u32, Option<u64>, u64)> = summary
            .groups
            .iter()
            .map(|group| (group.vcpu, group.offset, group.count))
            .collect();
        assert_eq!(shape, [(0, Some(0x800), 2), (1, Some(0x10), 1)]);
        assert!(summary.groups.iter().all(|group| group.sync));
        assert!(summary
            .describe()
            .contains("2 x vcpu0 w pfn 0x20a offset 0x800 -> keep"));
    }
}
