//! The host's account of a write storm under killed listeners (`robust/listener-kill`):
//! every write the guest made (its `TOUCH` lines) against the events of every listener's
//! trace, one vCPU at a time (Xen orders each vCPU's requests; vCPUs race each other).
//!
//! A run is a chain of listeners ([`Segment`]s): each was killed and followed by a new
//! listener that took its ring over, or by `listener disable`. Each listener restricts the
//! buffer pages again when it starts (an arming, an epoch); its `relax` answers give a page
//! rwx until the next arming. A request the dead listener left is answered by the next one
//! before it arms (`recovered`): it belongs to the dead listener's epoch.
//!
//! Each event must be a write the guest made, in that vCPU's order; the same write may be
//! reported twice (the dead listener traced it but never published its answer, so it comes
//! back recovered; or the write, released by a recovered answer, ran only after the new
//! listener had armed its page again). A write no trace reports is accounted for only if its
//! page was relaxed in the epoch of the event before it (a relaxed page raises nothing), or
//! if a `listener disable` came between the events around it (with no ring, Xen relaxes the
//! page without an event). Any other write is a lost event.

use std::collections::HashSet;

use anyhow::{bail, ensure, Context, Result};
use listener::record::Record;
use serde::{Deserialize, Serialize};

use crate::scenarios::events::trace::{Touch, BUFFER_PAGES, BUFFER_PFN};

/// What followed a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Then {
    /// Killed; a new `listener monitor` took its ring over.
    TakeOver,
    /// Killed; `listener disable` removed its ring.
    Disable,
    /// Not killed: it stopped by itself (the guest finished) or the run ended.
    End,
}

/// One listener of a run, as the dom0 half recorded it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Segment {
    /// Its trace, among the scenario's files.
    pub trace: String,
    pub then: Then,
    /// Requests on the ring (req_prod - rsp_prod) once it was dead.
    pub pending_at_kill: Option<u32>,
}

/// One write event of a trace, as the accounting needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub vcpu: u32,
    pub page: u64,
    pub offset: u64,
    pub va: u64,
    pub recovered: bool,
}

/// The write events on buffer pages of a trace (JSON lines). A killed listener may have
/// left a last line half written: that one is skipped.
pub fn parse_trace(text: &str) -> Result<Vec<Event>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut events = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let record: Record = match serde_json::from_str(line) {
            Ok(record) => record,
            Err(_) if index + 1 == lines.len() => break,
            Err(error) => bail!("trace line {} is not a record ({error}): {line}", index + 1),
        };
        let Record::Event(event) = record else {
            continue;
        };
        let Some(pfn) = event.pfn.filter(|_| event.access == "w") else {
            continue;
        };
        if !(BUFFER_PFN..BUFFER_PFN + BUFFER_PAGES).contains(&pfn) {
            continue;
        }
        events.push(Event {
            vcpu: event.vcpu,
            page: pfn - BUFFER_PFN,
            offset: event.offset.context("no offset")?,
            va: event.gla.context("no gla")?.0,
            recovered: event.recovered,
        });
    }
    Ok(events)
}

/// The counts of one run (or of several, added).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Writes the guest made.
    pub writes: u64,
    /// Writes some trace reports.
    pub reported: u64,
    /// Second reports of a write.
    pub duplicates: u64,
    /// Writes to a page the listener had relaxed.
    pub after_relax: u64,
    /// Writes with a `listener disable` between the events around them.
    pub after_disable: u64,
    /// Events answered as recovered by a listener that took a ring over.
    pub recovered: u64,
    /// Writes not accounted for, and requests left at a kill that no new listener recovered.
    pub lost: u64,
    /// What was lost, for the failure message.
    pub lost_detail: Vec<String>,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.writes += other.writes;
        self.reported += other.reported;
        self.duplicates += other.duplicates;
        self.after_relax += other.after_relax;
        self.after_disable += other.after_disable;
        self.recovered += other.recovered;
        self.lost += other.lost;
        self.lost_detail.extend(other.lost_detail.iter().cloned());
    }

    /// Every write is reported, or unreported for a reason.
    pub fn balanced(&self) -> bool {
        self.reported + self.after_relax + self.after_disable + self.lost == self.writes
    }
}

fn matches(write: &Touch, event: &Event) -> bool {
    write.page == event.page && write.offset == event.offset && write.va == event.va
}

/// Accounts for the guest's `touches` against the `traces` of the run's `segments` (one
/// trace text per segment); `vcpus`: the guest's. An event that is no write of the guest, in
/// its vCPU's order, is an error.
pub fn account(
    touches: &[Touch],
    segments: &[Segment],
    traces: &[Vec<Event>],
    vcpus: u32,
) -> Result<Tally> {
    ensure!(segments.len() == traces.len(), "one trace per segment");
    let mut tally = Tally::default();
    // A listener that took over answers at most one request per vCPU (each waits for its
    // answer), and at least what was there when the dead one died.
    for (index, segment) in segments.iter().enumerate() {
        let recovered = traces.get(index + 1).map_or(0, |next| {
            next.iter().filter(|event| event.recovered).count() as u64
        });
        if segment.then == Then::TakeOver {
            let pending = u64::from(segment.pending_at_kill.unwrap_or(0));
            ensure!(
                recovered <= u64::from(vcpus),
                "listener {} recovered {recovered} requests from a guest of {vcpus} vCPUs",
                index + 1
            );
            // A listener killed before it traced anything (killed right after its header)
            // may die before it answers what it took over: those requests are still on the
            // ring at its own kill, carried to what comes next (a disable releases them),
            // not lost.
            let next_died_silent = traces.get(index + 1).is_some_and(|next| next.is_empty());
            let carried = match segments.get(index + 1) {
                Some(next) if next_died_silent => u64::from(next.pending_at_kill.unwrap_or(0)),
                _ => 0,
            };
            if recovered.saturating_add(carried) < pending {
                tally.lost += pending - recovered;
                tally.lost_detail.push(format!(
                    "{pending} requests left at the kill of listener {index}, {recovered} recovered"
                ));
            }
        }
        tally.recovered += recovered;
    }
    let disabled_between = |from: usize, to: usize| {
        segments[from..to.min(segments.len())]
            .iter()
            .any(|segment| segment.then == Then::Disable)
    };
    for vcpu in 0..vcpus {
        let writes: Vec<&Touch> = touches
            .iter()
            .filter(|touch| touch.vcpu == vcpu && touch.access == 'w')
            .collect();
        tally.writes += writes.len() as u64;
        let events = traces.iter().enumerate().flat_map(|(segment, events)| {
            events
                .iter()
                .filter(move |event| event.vcpu == vcpu)
                .map(move |event| (segment, event))
        });
        // The last write reported: (its index, the segment and epoch of its event).
        let mut last: Option<(usize, usize, usize)> = None;
        let mut next = 0;
        let mut relaxed: HashSet<(usize, u64)> = HashSet::new();
        let unreported = |tally: &mut Tally,
                          write: &Touch,
                          last: Option<(usize, usize, usize)>,
                          relaxed: &HashSet<(usize, u64)>,
                          until: usize| {
            let from = last.map_or(0, |(_, segment, _)| segment);
            if disabled_between(from, until) {
                tally.after_disable += 1;
            } else if last.is_some_and(|(_, _, epoch)| relaxed.contains(&(epoch, write.page))) {
                tally.after_relax += 1;
            } else {
                tally.lost += 1;
                tally.lost_detail.push(format!(
                    "vcpu{vcpu} write to page {} +{:#x} reported by no listener (between \
                     listeners {from} and {until})",
                    write.page, write.offset
                ));
            }
        };
        for (segment, event) in events {
            let epoch = match (event.recovered, segment) {
                (false, _) => segment,
                (true, 0) => bail!("the first listener recovered an event: {event:?}"),
                (true, segment) => segment - 1,
            };
            if let Some((index, _, _)) = last.filter(|&(index, _, _)| matches(writes[index], event))
            {
                tally.duplicates += 1;
                relaxed.insert((epoch, event.page));
                last = Some((index, segment, epoch));
                continue;
            }
            let Some(found) = (next..writes.len()).find(|&index| matches(writes[index], event))
            else {
                bail!(
                    "vcpu{vcpu}: listener {segment} reported {event:?}, which matches no write \
                     of the guest after its write {next}"
                );
            };
            for write in &writes[next..found] {
                unreported(&mut tally, write, last, &relaxed, segment);
            }
            tally.reported += 1;
            relaxed.insert((epoch, event.page));
            last = Some((found, segment, epoch));
            next = found + 1;
        }
        for write in &writes[next..] {
            unreported(&mut tally, write, last, &relaxed, segments.len());
        }
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(vcpu: u32, page: u64) -> Touch {
        Touch {
            access: 'w',
            page,
            offset: 0x10 * page,
            va: 0x20_0000 + 0x1000 * page + 0x10 * page,
            vcpu,
        }
    }

    fn event(vcpu: u32, page: u64, recovered: bool) -> Event {
        let touch = write(vcpu, page);
        Event {
            vcpu,
            page,
            offset: touch.offset,
            va: touch.va,
            recovered,
        }
    }

    fn segment(then: Then, pending: Option<u32>) -> Segment {
        Segment {
            trace: String::new(),
            then,
            pending_at_kill: pending,
        }
    }

    #[test]
    fn a_takeover_recovers_and_a_duplicate_is_one_write() {
        let touches: Vec<Touch> = (0..4).map(|page| write(0, page)).collect();
        let segments = [segment(Then::TakeOver, Some(1)), segment(Then::End, None)];
        // Listener 0 traced page 1 but died before publishing the answer: recovered again.
        let traces = vec![
            vec![event(0, 0, false), event(0, 1, false)],
            vec![event(0, 1, true), event(0, 2, false), event(0, 3, false)],
        ];
        let tally = account(&touches, &segments, &traces, 1).unwrap();
        assert_eq!((tally.writes, tally.reported, tally.duplicates), (4, 4, 1));
        assert_eq!((tally.recovered, tally.lost), (1, 0));
        assert!(tally.balanced());
    }

    #[test]
    fn writes_after_a_disable_or_a_relax_are_accounted_for() {
        // Page 0 written twice: the second time relaxed. Pages 2 and 3 after the disable.
        let mut touches = vec![write(0, 0), write(0, 0), write(0, 1)];
        touches.extend([write(0, 2), write(0, 3)]);
        let segments = [segment(Then::Disable, Some(0))];
        let traces = vec![vec![event(0, 0, false), event(0, 1, false)]];
        let tally = account(&touches, &segments, &traces, 1).unwrap();
        assert_eq!(
            (
                tally.reported,
                tally.after_relax,
                tally.after_disable,
                tally.lost
            ),
            (2, 1, 2, 0)
        );
        assert!(tally.balanced());
    }

    #[test]
    fn a_write_missing_under_a_live_listener_is_lost() {
        let touches: Vec<Touch> = (0..3).map(|page| write(0, page)).collect();
        let segments = [segment(Then::End, None)];
        let traces = vec![vec![event(0, 0, false), event(0, 2, false)]];
        let tally = account(&touches, &segments, &traces, 1).unwrap();
        assert_eq!(tally.lost, 1, "{:?}", tally.lost_detail);
        // So is a request left at a kill that nobody recovered.
        let segments = [segment(Then::TakeOver, Some(1)), segment(Then::End, None)];
        let traces = vec![
            vec![event(0, 0, false)],
            vec![event(0, 1, false), event(0, 2, false)],
        ];
        let tally = account(&touches, &segments, &traces, 1).unwrap();
        assert_eq!(tally.lost, 1, "{:?}", tally.lost_detail);
    }

    #[test]
    fn a_request_carried_past_a_listener_that_died_silent_is_not_lost() {
        // Listener 1 took the ring over and was killed before it traced anything, the
        // request still pending; the disable after it released the vCPU.
        let touches: Vec<Touch> = (0..2).map(|page| write(0, page)).collect();
        let segments = [
            segment(Then::TakeOver, Some(1)),
            segment(Then::Disable, Some(1)),
        ];
        let traces = vec![vec![event(0, 0, false)], vec![]];
        let tally = account(&touches, &segments, &traces, 1).unwrap();
        assert_eq!(tally.lost, 0, "{:?}", tally.lost_detail);
        // The same listener gone with the ring empty did lose it.
        let segments = [
            segment(Then::TakeOver, Some(1)),
            segment(Then::Disable, Some(0)),
        ];
        let tally = account(&touches, &segments, &traces, 1).unwrap();
        assert_eq!(tally.lost, 1, "{:?}", tally.lost_detail);
    }

    #[test]
    fn vcpus_are_accounted_apart_and_phantoms_refused() {
        let touches = vec![write(0, 0), write(1, 8), write(0, 1), write(1, 9)];
        let segments = [segment(Then::End, None)];
        let traces = vec![vec![
            event(1, 8, false),
            event(0, 0, false),
            event(1, 9, false),
            event(0, 1, false),
        ]];
        let tally = account(&touches, &segments, &traces, 2).unwrap();
        assert_eq!((tally.writes, tally.reported, tally.lost), (4, 4, 0));
        let phantom = vec![vec![event(0, 5, false)]];
        assert!(account(&touches, &segments, &phantom, 2).is_err());
    }

    #[test]
    fn a_half_written_last_line_is_skipped() {
        let line = r#"{"type":"event","seq":1,"vcpu":0,"reason":"mem_access","access":"w","pfn":513,"mfn":9,"gla":"0x201010","offset":16,"flags":[],"rip":"0x0","response":"relax","recovered":false}"#;
        let text = format!("{line}\n{{\"type\":\"ev");
        let events = parse_trace(&text).unwrap();
        assert_eq!(events, [event(0, 1, false)]);
        assert!(parse_trace(&format!("{{\"type\n{line}")).is_err());
    }
}
