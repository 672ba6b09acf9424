//! The same calls made by an unprivileged guest: the test guest's `hostile-calls` pattern
//! (`test-guest/src/hostile.rs`, which says how Xen decides each one) against itself (by
//! id and as `DOMID_SELF`), dom0, another guest (monitored by dom0 meanwhile) and a
//! domain no one has. dom0 reads the state of both guests before the guest's calls and
//! after them (the guest makes its calls in one go, so "nothing changed" is checked for the
//! whole batch) and turns each `HOSTILE` line into a row.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use libxc::monitor::ForeignMapping;
use libxc::p2m::P2m;
use libxc::privcmd::Privcmd;
use libxc::{DomId, Pfn};
use test_guest::hostile::{Hostile, HostileDone};
use test_guest::lines::{self, Line};

use super::super::raw::{EACCES, EFAULT, EPERM, ESRCH};
use super::table::Row;

/// The errno Xen gives an unprivileged guest (`test_guest::hostile`'s table).
pub fn expected(call: &str, target: &str) -> Option<i32> {
    // The extra calls: do_domctl's interface-version check comes before all else; the
    // copies of an argument at Xen's own addresses fail; DOMID_INVALID skips the domain
    // lookup of vm_event_op and meets xsm_domctl.
    let extra = match call {
        "domctl-old-version" => Some(EACCES),
        "domctl-bad-pointer" | "access-op-bad-pointer" | "acquire-bad-pointer" => Some(EFAULT),
        "vm-event-version-domid-invalid" | "vm-event-enable-domid-invalid" => Some(EPERM),
        _ => None,
    };
    if target == "-" {
        return extra;
    }
    let known_call = [
        "get-default",
        "set-default",
        "set-frame",
        "set-multi",
        "access-op-99",
        "vm-event-enable",
        "vm-event-disable",
        "vm-event-attach",
        "vm-event-version",
        "monitor-capabilities",
        "set-access-required",
        "acquire-ring",
    ]
    .contains(&call);
    if !known_call {
        return None;
    }
    // Every call looks the domain up first (rcu_lock_*domain_by_id: -ESRCH, DOMID_SELF
    // included), then refuses the guest: its own id (rcu_lock_remote_domain_by_id, or
    // xsm_domctl's XSM_PRIV) and others' (xsm_mem_access / xsm_domain_resource_map with
    // XSM_DM_PRIV, xsm_domctl with XSM_PRIV) alike with -EPERM.
    match target {
        "own-id" | "dom0" | "other" => Some(EPERM),
        "domid-self" | "nobody" => Some(ESRCH),
        _ => None,
    }
}

/// One [`HOSTILE`](Hostile) line: (call, target, positive errno or 0).
pub fn parse_line(line: &str) -> Option<(String, String, i32)> {
    let line = Hostile::parse(lines::body(line)?)?;
    let errno = i32::try_from(-line.rc).ok()?;
    Some((line.call.to_string(), line.target.to_string(), errno))
}

/// The rows of a guest console: one per [`HOSTILE`](Hostile) line, with `unchanged` for all.
pub fn rows(console: &str, unchanged: bool) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for line in console
        .lines()
        .filter(|line| lines::body(line).is_some_and(|body| body.starts_with("HOSTILE ")))
    {
        let (call, target, got) =
            parse_line(line).with_context(|| format!("malformed line {line:?}"))?;
        let expected =
            expected(&call, &target).with_context(|| format!("no expectation for {line:?}"))?;
        rows.push(Row {
            name: format!("guest: {call} {target}"),
            expected: vec![expected],
            got,
            unchanged,
        });
    }
    let done = HostileDone::find(console)
        .context("no HOSTILE-DONE line")?
        .calls;
    if done != rows.len() {
        bail!(
            "the guest made {done} calls but printed {} lines",
            rows.len()
        );
    }
    Ok(rows)
}

/// Hands the guest its setup through the go page, then `GO`: words 1 to 3 (own id, other
/// guest, a frame of it) first, so the guest sees them once it sees `GO`.
pub fn release(privcmd: &Privcmd, guest: DomId, go_pfn: u64, words: [u64; 3]) -> Result<()> {
    let mfn = P2m::read(privcmd, guest)?
        .mfn(Pfn(go_pfn))
        .with_context(|| format!("go pfn {go_pfn:#x} has no machine frame"))?;
    let page = ForeignMapping::map(privcmd, guest, &[mfn], true)?;
    let base = page.as_ptr().cast::<u64>();
    // SAFETY: one writable page, live until `page` drops; aligned u64 stores; the guest
    // reads these words only after it sees GO (written last).
    unsafe {
        for (index, word) in words.iter().enumerate() {
            base.add(index + 1).write_volatile(*word);
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        base.write_volatile(crate::scenarios::events::run::GO);
    }
    Ok(())
}

/// How long the guest may take for its calls.
pub const CALLS_TIMEOUT: Duration = Duration::from_secs(120);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_rows_with_their_expectations() {
        let console = "\
TEST-GUEST READY go-pfn=0x120
TEST-GUEST HOSTILE get-default own-id rc=-1
TEST-GUEST HOSTILE acquire-ring domid-self rc=-3
TEST-GUEST HOSTILE vm-event-enable other rc=0
TEST-GUEST HOSTILE domctl-old-version - rc=-13
TEST-GUEST HOSTILE-DONE calls=4
";
        let rows = rows(console, true).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].name, "guest: get-default own-id");
        assert!(rows[0].passes() && rows[1].passes() && rows[3].passes());
        assert_eq!((rows[2].expected.clone(), rows[2].got), (vec![EPERM], 0));
        assert!(!rows[2].passes(), "a success is a failure here");
    }

    #[test]
    fn missing_or_strange_lines_are_errors() {
        assert!(rows("TEST-GUEST HOSTILE get-default own-id rc=-1\n", true).is_err());
        let unknown =
            "TEST-GUEST HOSTILE launch-missiles dom0 rc=-1\nTEST-GUEST HOSTILE-DONE calls=1\n";
        assert!(rows(unknown, true).is_err());
        let short = "TEST-GUEST HOSTILE-DONE calls=3\nTEST-GUEST HOSTILE get-default dom0 rc=-1\n";
        assert!(rows(short, true).is_err());
        assert_eq!(parse_line("TEST-GUEST HOSTILE x y rc=oops"), None);
    }

    #[test]
    fn every_call_and_target_has_an_errno() {
        for call in [
            "get-default",
            "set-multi",
            "vm-event-attach",
            "acquire-ring",
        ] {
            assert_eq!(expected(call, "own-id"), Some(EPERM));
            assert_eq!(expected(call, "domid-self"), Some(ESRCH));
            assert_eq!(expected(call, "dom0"), Some(EPERM));
            assert_eq!(expected(call, "nobody"), Some(ESRCH));
        }
        assert_eq!(expected("acquire-bad-pointer", "-"), Some(EFAULT));
        assert_eq!(expected("get-default", "-"), None);
        assert_eq!(expected("get-default", "everyone"), None);
    }
}
