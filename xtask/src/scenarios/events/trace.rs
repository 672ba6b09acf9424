//! The host half shared by the `events/*` scenarios: the listener's trace and the guest's own
//! account of what it touched, parsed; the two compared; and the trace rendered for its
//! snapshot with what differs between runs (machine frames, instruction pointers) left out.

use anyhow::{bail, ensure, Context, Result};
use test_guest::lines::{self, Line};
use test_guest::patterns::{PatternDone, Ready, TouchLine};

/// The first guest frame of the test guest's 16-page buffer (`TEST-GUEST BUFFER gfn=0x200`),
/// and its pages: the guest's own constants.
pub const BUFFER_PFN: u64 = test_guest::workload::BUFFER_GFN;
pub const BUFFER_PAGES: u64 = test_guest::workload::BUFFER_PAGES as u64;

/// One `event` record of the trace: the listener's own type ([`listener::record`]).
pub use listener::record::Event;
use listener::record::{End, Header, Reason, Record};

/// A parsed trace: the header, the events in ring order, the end record.
pub struct Trace {
    pub header: Header,
    pub events: Vec<Event>,
    pub end: End,
}

impl Trace {
    pub fn parse(text: &str) -> Result<Trace> {
        let mut header = None;
        let mut events: Vec<Event> = Vec::new();
        let mut end = None;
        for (number, line) in text.lines().enumerate() {
            let record: Record = serde_json::from_str(line)
                .with_context(|| format!("trace line {} is not a record: {line}", number + 1))?;
            match record {
                Record::Header(record) => header = Some(record),
                Record::Event(record) => events.push(record),
                Record::End(record) => end = Some(record),
            }
        }
        let (Some(header), Some(end)) = (header, end) else {
            bail!("the trace has no header or no end record:\n{text}");
        };
        for (index, event) in events.iter().enumerate() {
            ensure!(
                event.seq == index as u64 + 1,
                "event {} has seq {}",
                index + 1,
                event.seq
            );
        }
        ensure!(
            end.events == events.len() as u64,
            "the end record counts {} events, the trace holds {}",
            end.events,
            events.len()
        );
        Ok(Trace {
            header,
            events,
            end,
        })
    }
}

/// One access the guest reports (`TEST-GUEST TOUCH <r|w|x> page=… offset=… va=… [vcpu=…]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touch {
    pub access: char,
    pub page: u64,
    pub offset: u64,
    pub va: u64,
    pub vcpu: u32,
}

/// What the guest said about its run.
pub struct Account {
    pub touches: Vec<Touch>,
    /// The machine frames of the buffer pages at start (`TEST-GUEST FRAMES`).
    pub frames: Vec<u64>,
    pub done: bool,
    pub console: String,
    /// How many touches came before the second phase of a two-phase pattern.
    pub phase2_at: Option<usize>,
}

/// The page-table slot of the pt-write pattern: the guest's own line type (the guest frame
/// of the L1 page table, the address through which the guest writes the entry, ...).
pub use test_guest::pt_write::PtSlot;

impl Account {
    pub fn parse(console: &str) -> Result<Account> {
        let mut touches = Vec::new();
        let mut frames = Vec::new();
        let mut done = false;
        let mut phase2_at = None;
        for body in lines::bodies(console) {
            if body.starts_with("TOUCH ") {
                touches.push(parse_touch(body).with_context(|| format!("in {body:?}"))?);
            } else if body.starts_with("FRAMES ") {
                frames = lines::Frames::parse(body)
                    .with_context(|| {
                        format!("not a FRAMES line as the guest writes them: {body:?}")
                    })?
                    .mfns
                    .to_vec();
            } else if PatternDone::parse(body).is_some() {
                done = true;
            } else if Ready::parse(body).is_some_and(|ready| ready.phase == 2) {
                phase2_at = Some(touches.len());
            }
        }
        Ok(Account {
            touches,
            frames,
            done,
            console: console.to_string(),
            phase2_at,
        })
    }
}

/// A `TOUCH` line, read with the guest's own parser of what it prints.
fn parse_touch(body: &str) -> Result<Touch> {
    let line = TouchLine::parse(body).context("not a TOUCH line as the guest writes them")?;
    Ok(Touch {
        access: line.access,
        page: line.page as u64,
        offset: line.offset as u64,
        va: line.va,
        vcpu: line.vcpu.unwrap_or(0),
    })
}

pub fn hex(text: &str) -> Result<u64> {
    u64::from_str_radix(text.trim_start_matches("0x"), 16)
        .with_context(|| format!("{text:?} is not a hexadecimal number"))
}

/// An event the guest's account predicts: who, what, where (the guest frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub vcpu: u32,
    pub access: char,
    pub pfn: u64,
    pub offset: u64,
    pub va: u64,
}

impl From<&Touch> for Expected {
    fn from(touch: &Touch) -> Expected {
        Expected {
            vcpu: touch.vcpu,
            access: touch.access,
            pfn: BUFFER_PFN + touch.page,
            offset: touch.offset,
            va: touch.va,
        }
    }
}

/// The events of `trace` as the guest would describe them; with `buffer_only`, only those
/// about the buffer.
pub fn observed(trace: &Trace, buffer_only: bool) -> Result<Vec<Expected>> {
    let mut seen = Vec::new();
    for event in &trace.events {
        let pfn = event.pfn.context("an event without a pfn")?;
        if buffer_only && !(BUFFER_PFN..BUFFER_PFN + BUFFER_PAGES).contains(&pfn) {
            continue;
        }
        seen.push(Expected {
            vcpu: event.vcpu,
            access: event.access.chars().next().unwrap_or('?'),
            pfn,
            offset: event.offset.unwrap_or(u64::MAX),
            va: event.gla.map_or(0, |gla| gla.0),
        });
    }
    Ok(seen)
}

/// Compares what the trace says with what the guest's account predicts. With
/// `per_vcpu_order`, only each vCPU's own order is compared (Xen orders requests per vCPU;
/// two vCPUs race for the ring).
pub fn compare(expected: &[Expected], seen: &[Expected], per_vcpu_order: bool) -> Result<()> {
    let arrange = |list: &[Expected]| {
        let mut list = list.to_vec();
        if per_vcpu_order {
            list.sort_by_key(|e| e.vcpu);
        }
        list
    };
    let (expected, seen) = (arrange(expected), arrange(seen));
    if expected != seen {
        let show = |list: &[Expected]| {
            list.iter()
                .map(|e| {
                    format!(
                        "  vcpu{} {} {} +{:#x} va {:#x}",
                        e.vcpu,
                        e.access,
                        page_name(Some(e.pfn)),
                        e.offset,
                        e.va
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        bail!(
            "the trace does not match the guest's account\nexpected ({}):\n{}\nin the trace ({}):\n{}",
            expected.len(),
            show(&expected),
            seen.len(),
            show(&seen)
        );
    }
    Ok(())
}

/// Checks the machine frame of every buffer event against the guest's FRAMES line, except
/// for `new_pages` (frames the guest replaced), whose frames must differ from the old ones.
pub fn check_frames(trace: &Trace, account: &Account, new_pages: &[u64]) -> Result<()> {
    for event in &trace.events {
        let Some(page) = event.pfn.and_then(|pfn| pfn.checked_sub(BUFFER_PFN)) else {
            continue;
        };
        let Some(&old) = account.frames.get(page as usize) else {
            continue;
        };
        let mfn = event.mfn.context("a PV event without an mfn")?;
        if new_pages.contains(&page) {
            ensure!(mfn != old, "page {page} kept its frame {old:#x}: {event:?}");
        } else {
            ensure!(
                mfn == old,
                "page {page}: the event names mfn {mfn:#x}, the guest's FRAMES {old:#x}"
            );
        }
    }
    Ok(())
}

/// How a page is named in a snapshot: by its buffer index, else by pfn (stable for a given
/// guest build; machine frames are not).
fn page_name(pfn: Option<u64>) -> String {
    match pfn {
        Some(pfn) if (BUFFER_PFN..BUFFER_PFN + BUFFER_PAGES).contains(&pfn) => {
            format!("page {}", pfn - BUFFER_PFN)
        }
        Some(pfn) => format!("pfn {pfn:#x}"),
        None => "pfn ?".to_string(),
    }
}

/// The name of the buffer page after `name` ("page 3" -> "page 4").
fn next_page(name: &str) -> Option<String> {
    let page: u64 = name.strip_prefix("page ")?.parse().ok()?;
    Some(format!("page {}", page + 1))
}

/// The trace as its snapshot holds it: options, events (per vCPU when `per_vcpu_order`),
/// the end. Machine frames and instruction pointers are left out (they change with every
/// run and every build); sequence numbers are kept within a vCPU.
///
/// With `buffer_only`, events outside the buffer and the total count are left out too.
pub fn render(trace: &Trace, per_vcpu_order: bool, buffer_only: bool) -> String {
    let options = &trace.header.options;
    let mut out = String::new();
    out += &format!(
        "monitor: default {}, on event {}\n",
        options.default_access, options.on_event,
    );
    // Runs of pages with the same access, on one line each.
    let mut runs: Vec<(String, String, String)> = Vec::new();
    for access in &options.access {
        let (name, what) = (page_name(Some(access.pfn)), access.access.clone());
        match runs.last_mut() {
            Some((_, last, run_access))
                if *run_access == what && next_page(last).as_deref() == Some(&name) =>
            {
                *last = name
            }
            _ => runs.push((name.clone(), name, what)),
        }
    }
    for (first, last, access) in runs {
        if first == last {
            out += &format!("  {first}: {access}\n");
        } else {
            let last = last.trim_start_matches("page ");
            out += &format!("  {first}-{last}: {access}\n");
        }
    }
    let in_buffer = |event: &&Event| {
        event
            .pfn
            .is_some_and(|pfn| (BUFFER_PFN..BUFFER_PFN + BUFFER_PAGES).contains(&pfn))
    };
    let mut events: Vec<&Event> = trace
        .events
        .iter()
        .filter(|event| !buffer_only || in_buffer(event))
        .collect();
    if per_vcpu_order {
        events.sort_by_key(|event| event.vcpu);
    }
    for event in events {
        let reason = match event.reason {
            Reason::MemAccess => "mem_access".to_string(),
            Reason::Other(number) => number.to_string(),
        };
        out += &format!(
            "vcpu{} {} {} {} +{:#x} gla {} [{}] -> {}\n",
            event.vcpu,
            reason,
            event.access,
            page_name(event.pfn),
            event.offset.unwrap_or(0),
            // Only a gla_valid event has an address (a write by hypercall has none).
            match event.gla {
                Some(gla) if event.has_flag("gla_valid") => format!("{:#x}", gla.0),
                _ => "-".to_string(),
            },
            event.flags.join(" "),
            event.response,
        );
    }
    if buffer_only {
        out += &format!("end: {}\n", trace.end.reason);
    } else {
        out += &format!("end: {}, {} events\n", trace.end.reason, trace.end.events);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_names_the_hypercall_flag_and_shows_no_address_without_gla_valid() {
        let text = r#"{"type":"header","version":1,"domain":5,"xen_version":"x","options":{"mode":"write","default_access":"rwx","access":[{"pfn":567,"mfn":1,"access":"r"}],"on_event":"relax","count":null,"timeout_seconds":null}}
{"type":"event","seq":1,"vcpu":0,"reason":"mem_access","access":"w","pfn":567,"mfn":1,"gla":"0x0","offset":968,"flags":["w","fault_hypercall","vcpu_paused"],"rip":"0x0","response":"relax","recovered":false}
{"type":"event","seq":2,"vcpu":0,"reason":"mem_access","access":"w","pfn":513,"mfn":2,"gla":"0x279110","offset":272,"flags":["w","gla_valid","fault_with_gla","vcpu_paused"],"rip":"0x0","response":"relax","recovered":false}
{"type":"end","reason":"domain-gone","events":2,"most_pending":1}"#;
        let trace = Trace::parse(text).unwrap();
        assert_eq!(
            render(&trace, false, false),
            "monitor: default rwx, on event relax\n  pfn 0x237: r\n\
             vcpu0 mem_access w pfn 0x237 +0x3c8 gla - [w fault_hypercall vcpu_paused] -> relax\n\
             vcpu0 mem_access w page 1 +0x110 gla 0x279110 [w gla_valid fault_with_gla vcpu_paused] -> relax\n\
             end: domain-gone, 2 events\n"
        );
    }
}
