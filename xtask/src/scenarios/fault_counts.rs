//! Xen's own counts of what its PV mem_access fault path did for a guest, from the line it
//! prints when the guest's ring goes (`pv-mem-access: dN faults: R reported, L relaxed,
//! X by Xen, B rebuilt, S spurious`, patch 0018).

use anyhow::{bail, Context, Result};

use crate::scenarios::HostView;

/// Xen's own counts of its fault path for the scenario's guest (`pv-mem-access: dN faults:
/// R reported, L relaxed, X by Xen, B rebuilt, S spurious`, printed when the ring goes),
/// as `(name, count)` pairs in Xen's order.
pub fn fault_counts(view: &HostView) -> Result<Vec<(String, u64)>> {
    let domid = view.read("domid.txt")?;
    let prefix = format!("pv-mem-access: d{} faults: ", domid.trim());
    let serial = view.serial()?;
    let Some((_, counts)) = serial.lines().find_map(|line| line.split_once(&prefix)) else {
        bail!("no `{prefix}` line on the serial log");
    };
    counts
        .trim()
        .split(", ")
        .map(|part| {
            let (count, name) = part
                .split_once(' ')
                .with_context(|| format!("{part:?} in `{counts}`"))?;
            Ok((name.to_string(), count.parse()?))
        })
        .collect()
}

/// `count` of `name` among Xen's fault counts.
pub fn fault_count(counts: &[(String, u64)], name: &str) -> Option<u64> {
    counts
        .iter()
        .find_map(|(what, count)| (what == name).then_some(*count))
}

/// Xen's fault counts as Xen printed them.
pub fn show_fault_counts(counts: &[(String, u64)]) -> String {
    counts
        .iter()
        .map(|(name, count)| format!("{count} {name}"))
        .collect::<Vec<_>>()
        .join(", ")
}
