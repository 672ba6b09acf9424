//! Xen's complaints in the serial log, per scenario.
//!
//! Xen reports a broken invariant with `Assertion '...' failed at file:line` (`ASSERT`,
//! `ASSERT_UNREACHABLE`), `Xen WARN at file:line` (`WARN_ON`, `WARN()`) and `Xen BUG at
//! file:line` (`BUG_ON`, `BUG()`), all on its console as `(XEN)` lines. A debug build carries
//! on after a WARN (and after some assertions, when they are only printed), so the run
//! does not stop: this module finds those lines afterwards, in the part of the log a
//! scenario ran in (between the agent's `E2E-SCENARIO-START <name>` and
//! `E2E-SCENARIO-END <name>` lines), so that a scenario fails when Xen complained while it
//! ran.
//!
//! Only Xen's own lines count: a guest's `(dN)` lines and dom0's kernel lines are other
//! programs' words. A word counts when it begins with `ASSERT`, `WARN` or `BUG` in capitals
//! (so `WARN_ON`, `WARNING`, `BUG_ON` too), or is `Assertion`, and no letter or digit comes
//! before it (`DEBUG` and `debug=y`, which Xen prints, are not `BUG`).

/// The words that make a `(XEN)` line an alarm: prefixes of a word.
const ALARM_PREFIXES: [&str; 4] = ["ASSERT", "WARN", "BUG", "Assertion"];

/// Xen's alarm lines while scenario `name` ran, from the serial log as QEMU wrote it (lines
/// end in `\r\r\n` there: the `\r`s go first).
pub fn scenario_alarms(serial_log: &str, name: &str) -> Vec<String> {
    let log = serial_log.replace('\r', "");
    scenario_section(&log, name)
        .map(|section| alarm_lines(section).into_iter().map(String::from).collect())
        .unwrap_or_default()
}

/// The part of `log` (without `\r`) that scenario `name` ran in: from the line after its start marker to
/// its end marker, or to the end of the log when the scenario never ended (the run stopped
/// inside it). `None` when it never started.
pub fn scenario_section<'a>(log: &'a str, name: &str) -> Option<&'a str> {
    let start_marker = format!("E2E-SCENARIO-START {name}\n");
    let end_marker = format!("E2E-SCENARIO-END {name} ");
    let start = find_line_start(log, &start_marker)? + start_marker.len();
    let rest = &log[start..];
    Some(match find_line_start(rest, &end_marker) {
        Some(end) => &rest[..end],
        None => rest,
    })
}

/// Where `marker` is in `text`. Anywhere, not only at a line's start: on the serial line
/// the agent's marker may follow another program's unfinished line. The markers end with
/// `\n` or a space, so `abi/set` does not find `abi/set-multi`.
fn find_line_start(text: &str, marker: &str) -> Option<usize> {
    text.find(marker)
}

/// Xen's alarm lines in `section`, as they appear.
pub fn alarm_lines(section: &str) -> Vec<&str> {
    section.lines().filter(|line| is_alarm(line)).collect()
}

/// Whether a serial line is Xen's and carries an alarm word.
fn is_alarm(line: &str) -> bool {
    let Some(at) = line.find("(XEN)") else {
        return false;
    };
    let text = &line[at + "(XEN)".len()..];
    // A guest's console_io output is relayed as `(XEN) (dN) ...` by some Xen versions:
    // the guest's words, not Xen's.
    if text.trim_start().starts_with("(d") {
        return false;
    }
    text.char_indices().any(|(index, _)| {
        let before = text[..index].chars().next_back();
        let at_word_start = !before.is_some_and(|c| c.is_ascii_alphanumeric());
        at_word_start
            && ALARM_PREFIXES
                .iter()
                .any(|prefix| text[index..].starts_with(prefix))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
(XEN) [    1.0] Xen version 4.17.5-pv-memaccess debug=y
E2E-SCENARIO-START abi/set
(XEN) [    2.0] Assertion 'x' failed at common/vm_event.c:100
E2E-SCENARIO-END abi/set pass 1.0s
E2E-SCENARIO-START abi/set-multi
(d3) [    3.0] TEST-GUEST WARN BUG ASSERT
(XEN) [    3.1] pv-mem-access: d3 faults: 0 reported
[    3.2] PCI: ... report a bug
(XEN) [    3.3] Xen WARN at arch/x86/mm/shadow/multi.c:123
(XEN) [    3.4] DEBUG things, debug=y, BUGGY? no: WARNING: x
E2E-SCENARIO-END abi/set-multi fail 2.0s
E2E-SCENARIO-START robust/fuzz
(XEN) [    4.0] Xen BUG at mm.c:1
";

    #[test]
    fn sections_are_bounded_by_exact_names() {
        let set = scenario_section(LOG, "abi/set").unwrap();
        assert_eq!(alarm_lines(set).len(), 1);
        assert!(set.contains("Assertion"));
        assert!(!set.contains("set-multi"));
        let multi = scenario_section(LOG, "abi/set-multi").unwrap();
        assert!(multi.starts_with("(d3)"));
        assert!(multi.ends_with("WARNING: x\n"));
        assert_eq!(scenario_section(LOG, "boot"), None);
    }

    #[test]
    fn carriage_returns_of_the_serial_line_are_ignored() {
        let raw = LOG.replace('\n', "\r\r\n");
        assert_eq!(
            scenario_alarms(&raw, "abi/set"),
            ["(XEN) [    2.0] Assertion 'x' failed at common/vm_event.c:100"]
        );
        assert_eq!(scenario_alarms(&raw, "abi/set-multi").len(), 2);
        assert!(scenario_alarms(&raw, "boot").is_empty());
    }

    #[test]
    fn an_unfinished_scenario_runs_to_the_end_of_the_log() {
        let fuzz = scenario_section(LOG, "robust/fuzz").unwrap();
        assert_eq!(alarm_lines(fuzz), ["(XEN) [    4.0] Xen BUG at mm.c:1"]);
    }

    #[test]
    fn only_xen_lines_with_whole_alarm_words_count() {
        let multi = scenario_section(LOG, "abi/set-multi").unwrap();
        assert_eq!(
            alarm_lines(multi),
            [
                "(XEN) [    3.3] Xen WARN at arch/x86/mm/shadow/multi.c:123",
                "(XEN) [    3.4] DEBUG things, debug=y, BUGGY? no: WARNING: x",
            ]
        );
        assert!(!is_alarm("(XEN) [ 1.0] Xen version 4.17.5 debug=y"));
        assert!(!is_alarm("(XEN) (d2) Assertion failed in the guest"));
        assert!(!is_alarm("[ 3.2] kernel BUG at mm/slub.c"));
        assert!(is_alarm("(XEN) Assertion 'p2m' failed at p2m.c:9"));
        assert!(is_alarm("(XEN) ASSERT_UNREACHABLE"));
        assert!(!is_alarm("(XEN) DEBUGGING"));
    }
}
