//! Xen's perf counters (`CONFIG_PERF_COUNTERS`), read in dom0 with Xen's own `xenperf`:
//! what the shadow code did, counted by the hypervisor itself (patch 0019 adds
//! `shadow_pvma_revoke`, `shadow_pvma_revoke_entry` and `shadow_pvma_blow`).

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use crate::scenarios::Dom0;

/// "shadow mem_access rights revoked": searches for one frame's shadow entries.
pub const REVOKES: &str = "shadow mem_access rights revoked";
/// "shadow mem_access entries revoked": shadow entries that lost rights in those searches.
pub const REVOKED_ENTRIES: &str = "shadow mem_access entries revoked";
/// "shadow mem_access blew all shadows": domain-wide rebuilds for mem_access.
pub const BLOWS: &str = "shadow mem_access blew all shadows";

/// Every counter's total over the CPUs, by its description, as `xenperf` prints them.
pub fn read(dom0: &Dom0) -> Result<BTreeMap<String, u64>> {
    let text = dom0.run("xenperf", &[])?;
    parse(&text)
}

/// `xenperf`'s lines: `<description padded to 35> T=<total> <per CPU...>`; lines without a
/// total (array elements, blank lines) are skipped.
fn parse(text: &str) -> Result<BTreeMap<String, u64>> {
    text.lines()
        .filter_map(|line| line.split_once("T="))
        .map(|(name, rest)| {
            let total = rest
                .split_whitespace()
                .next()
                .and_then(|total| total.parse().ok())
                .with_context(|| format!("xenperf line without a total: {name}T={rest}"))?;
            Ok((name.trim().to_string(), total))
        })
        .collect()
}

/// How much counter `name` grew from `before` to `after`; an error when either lacks it
/// (a Xen without our counters, or built without `CONFIG_PERF_COUNTERS`).
pub fn growth(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    name: &str,
) -> Result<u64> {
    let get = |counters: &BTreeMap<String, u64>| {
        counters
            .get(name)
            .copied()
            .with_context(|| format!("Xen has no perf counter {name:?}"))
    };
    Ok(get(after)?.saturating_sub(get(before)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_read_by_description() {
        let text = "\
exceptions                          T=      1234       600       634 \n\
    [00]                                      12\n\
shadow mem_access rights revoked    T=         3         1         2 \n\
shadow mem_access blew all shadows  T=         0         0         0 \n";
        let counters = parse(text).unwrap();
        assert_eq!(counters.get("exceptions"), Some(&1234));
        assert_eq!(counters.get(REVOKES), Some(&3));
        assert_eq!(counters.get(BLOWS), Some(&0));
        assert_eq!(counters.len(), 3);
    }

    #[test]
    fn growth_needs_the_counter() {
        let before = parse("shadow mem_access rights revoked T= 3\n").unwrap();
        let after = parse("shadow mem_access rights revoked T= 5\n").unwrap();
        assert_eq!(growth(&before, &after, REVOKES).unwrap(), 2);
        assert!(growth(&before, &after, BLOWS).is_err());
    }

    #[test]
    fn a_line_without_a_number_is_an_error() {
        assert!(parse("broken T= x\n").is_err());
    }
}
