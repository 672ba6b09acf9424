//! The trace `listener monitor` writes: its records and how each becomes one line.
//!
//! Two formats: `jsonl` (format version 1) for programs and harnesses, `text` for people.
//! The records are plain structs, so the JSON keys come out in the order declared here,
//! always the same; a request becomes an [`Event`] in [`event`], a pure function, so the
//! whole conversion is tested on the host with synthetic requests.
//!
//! JSON lines (`null` where a value is unknown or does not apply):
//!
//! ```text
//! {"type":"header","version":1,"domain":5,"xen_version":"4.17.5-pv-memaccess",
//!  "options":{"mode":"write","default_access":"rx",
//!             "access":[{"pfn":512,"mfn":74291,"access":"rw"}],
//!             "on_event":"relax","count":null,"timeout_seconds":60.0}}
//! {"type":"event","seq":1,"vcpu":0,"reason":"mem_access","access":"w","pfn":517,
//!  "mfn":4660,"gla":"0x205010","offset":16,
//!  "flags":["w","gla_valid","fault_with_gla","gfn_is_mfn","vcpu_paused"],
//!  "rip":"0xffffffff81000000","response":"relax","recovered":false,"ns":1520300}
//! {"type":"end","reason":"timeout","events":1,"most_pending":1}
//! ```
//!
//! (each record on one line). The header is written once the default access and every
//! `--access` are in force, so a harness that sees it knows the guest is monitored as asked.
//! An event's `pfn` is null when a PV guest's P2M does not name its machine frame; its `mfn`
//! is null for an HVM guest. `reason` is `"mem_access"` or, for another `VM_EVENT_REASON_*`,
//! the number; such events carry null `pfn`, `mfn`, `gla` and `offset` and an empty `access`
//! (their request holds no `u.mem_access`). `gla` is meaningful only with `gla_valid` in
//! `flags`. `flags` names the `MEM_ACCESS_*` bits then the request's `VM_EVENT_FLAG_*` bits,
//! each in bit order (`mem_access_bitN` / `vm_event_bitN` for a bit neither Xen 4.17 nor
//! our patches define; `fault_hypercall`, bit 6, is patch 0022's: a write a hypercall was
//! about to make for the guest, with an offset and no gla; `gfn_is_mfn`, bit 7, patch
//! 0015's: the request names a machine frame, as every PV domain's does). `ns` is when the
//! event was answered, in nanoseconds since the header (0 for one recovered before it).
//! `recovered` is true for a request a dead listener left on the ring, answered by
//! this one after it took the ring over (before anything else: such events come right
//! after the header, numbered from 1). The end's `reason` is `count`, `timeout`, `signal`,
//! `domain-gone` or `error`.
//!
//! Text: the same records in words, one line each:
//!
//! ```text
//! domain 5 monitored on Xen 4.17.5-pv-memaccess: mode write, default access rx, pfn 0x200 (mfn 0x12233) rw, on event relax, until 60 s
//! #1 vcpu0 w pfn=0x205 mfn=0x1234 gla=0x205010 rip=0xffffffff81000000 -> relax
//! stopped by the timeout after 1 event (at most 1 pending at once)
//! ```
//!
//! (a write by hypercall has ` hypercall offset=0x<offset>` instead of a gla; a recovered
//! event's line ends with ` (recovered)`).

use crate::frames::Frame;
use libxc::ring::{
    VmEvent, MEM_ACCESS_FLAG_NAMES, MEM_ACCESS_R, MEM_ACCESS_W, MEM_ACCESS_X, VM_EVENT_FLAG_NAMES,
    VM_EVENT_REASON_MEM_ACCESS,
};
pub use listener::record::{
    End, Event, Header, HeaderOptions, Hex, Reason, Record, FORMAT_VERSION,
};

/// How the trace is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line (format version 1).
    Jsonl,
    /// One line of words per record, for people.
    Text,
}

/// The names of the bits set in `flags`, in bit order, from a name table; a bit the table
/// lacks (a newer Xen's) as `{prefix}_bitN`, so no bit is ever dropped silently.
fn flag_names(
    flags: u32,
    table: &'static [(u32, &'static str)],
    prefix: &'static str,
) -> impl Iterator<Item = String> {
    (0..32)
        .map(|shift| 1u32 << shift)
        .filter(move |bit| flags & bit != 0)
        .map(
            move |bit| match table.iter().find(|(known, _)| *known == bit) {
                Some((_, name)) => name.to_string(),
                None => format!("{prefix}_bit{}", bit.trailing_zeros()),
            },
        )
}

/// The event for `request`, the `seq`-th, whose page is `frame` (as [`crate::frames`] named
/// it), which was answered with `response`, `recovered` if a dead listener left it.
pub fn event(
    seq: u64,
    request: &VmEvent,
    frame: Frame,
    response: &'static str,
    recovered: bool,
) -> Event {
    let vm_event_flags = flag_names(request.flags, &VM_EVENT_FLAG_NAMES, "vm_event");
    if request.reason != VM_EVENT_REASON_MEM_ACCESS {
        return Event {
            seq,
            vcpu: request.vcpu_id,
            reason: Reason::Other(request.reason),
            access: String::new(),
            pfn: None,
            mfn: None,
            gla: None,
            offset: None,
            flags: vm_event_flags.collect(),
            rip: Hex(request.regs.rip),
            response: response.into(),
            recovered,
            ns: 0,
        };
    }
    let access = &request.mem_access;
    let letters = [
        (MEM_ACCESS_R, 'r'),
        (MEM_ACCESS_W, 'w'),
        (MEM_ACCESS_X, 'x'),
    ]
    .iter()
    .filter(|(bit, _)| access.flags & bit != 0)
    .map(|(_, letter)| *letter)
    .collect();
    Event {
        seq,
        vcpu: request.vcpu_id,
        reason: Reason::MemAccess,
        access: letters,
        pfn: frame.pfn,
        mfn: frame.mfn,
        gla: Some(Hex(access.gla)),
        offset: Some(access.offset),
        flags: flag_names(access.flags, &MEM_ACCESS_FLAG_NAMES, "mem_access")
            .chain(vm_event_flags)
            .collect(),
        rip: Hex(request.regs.rip),
        response: response.into(),
        recovered,
        ns: 0,
    }
}

/// `record` as one line (without its newline) in `format`.
pub fn render(record: &Record, format: Format) -> String {
    match format {
        Format::Jsonl => {
            serde_json::to_string(record).expect("trace records have string keys only")
        }
        Format::Text => text(record),
    }
}

fn text(record: &Record) -> String {
    match record {
        Record::Header(header) => {
            let options = &header.options;
            let mut parts = vec![
                format!("mode {}", options.mode),
                format!("default access {}", options.default_access),
            ];
            parts.extend(options.access.iter().map(|page| match page.mfn {
                Some(mfn) => format!("pfn {:#x} (mfn {mfn:#x}) {}", page.pfn, page.access),
                None => format!("pfn {:#x} {}", page.pfn, page.access),
            }));
            parts.push(format!("on event {}", options.on_event));
            let limits: Vec<String> = options
                .count
                .map(|count| format!("{count} {}", plural(count, "event")))
                .into_iter()
                .chain(
                    options
                        .timeout_seconds
                        .map(|seconds| format!("{seconds} s")),
                )
                .collect();
            parts.push(match limits.is_empty() {
                true => "until stopped".into(),
                false => format!("until {}", limits.join(" or ")),
            });
            let xen = match header.xen_version.as_str() {
                "" => String::new(),
                version => format!(" on Xen {version}"),
            };
            format!(
                "domain {} monitored{xen}: {}",
                header.domain,
                parts.join(", ")
            )
        }
        Record::Event(event) => {
            let mut line = format!("#{} vcpu{}", event.seq, event.vcpu);
            match event.reason {
                Reason::MemAccess if event.access.is_empty() => line += " -",
                Reason::MemAccess => line += &format!(" {}", event.access),
                Reason::Other(number) => line += &format!(" reason={number}"),
            }
            if event.reason == Reason::MemAccess {
                match event.pfn {
                    Some(pfn) => line += &format!(" pfn={pfn:#x}"),
                    None => line += " pfn=?",
                }
            }
            if let Some(mfn) = event.mfn {
                line += &format!(" mfn={mfn:#x}");
            }
            if let Some(gla) = event
                .gla
                .filter(|_| event.flags.iter().any(|f| f == "gla_valid"))
            {
                line += &format!(" gla={:#x}", gla.0);
            }
            // A write a hypercall was about to make has no address, only where in the
            // frame: say so, or the line would read as a write from nowhere.
            if event.flags.iter().any(|f| f == "fault_hypercall") {
                line += &format!(" hypercall offset={:#x}", event.offset.unwrap_or(0));
            }
            let recovered = if event.recovered { " (recovered)" } else { "" };
            format!(
                "{line} rip={:#x} -> {}{recovered}",
                event.rip.0, event.response
            )
        }
        Record::End(end) => {
            let cause = match end.reason.as_str() {
                "count" => "--count",
                "timeout" => "the timeout",
                "signal" => "a signal",
                "domain-gone" => "the domain's end",
                "error" => "an error",
                other => other,
            };
            format!(
                "stopped by {cause} after {} {} (at most {} pending at once)",
                end.events,
                plural(end.events, "event"),
                end.most_pending
            )
        }
    }
}

fn plural(count: u64, word: &str) -> String {
    match count {
        1 => word.to_string(),
        _ => format!("{word}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pages::PageAccess;
    use libxc::ring::{
        MemAccess, RegsX86, MEM_ACCESS_FAULT_HYPERCALL, MEM_ACCESS_FAULT_WITH_GLA,
        MEM_ACCESS_GLA_VALID, VM_EVENT_FLAG_VCPU_PAUSED, VM_EVENT_INTERFACE_VERSION,
    };
    use libxc::Access;

    /// A write to frame `gfn` at offset 0x10 of gla 0x205010, vCPU 0 paused.
    fn write_request(gfn: u64) -> VmEvent {
        VmEvent {
            version: VM_EVENT_INTERFACE_VERSION,
            flags: VM_EVENT_FLAG_VCPU_PAUSED,
            reason: VM_EVENT_REASON_MEM_ACCESS,
            vcpu_id: 0,
            mem_access: MemAccess {
                gfn,
                offset: 0x10,
                gla: 0x20_5010,
                flags: MEM_ACCESS_W | MEM_ACCESS_GLA_VALID | MEM_ACCESS_FAULT_WITH_GLA,
                _pad: 0,
            },
            regs: RegsX86 {
                rip: 0xffff_ffff_8100_0000,
                ..RegsX86::default()
            },
            ..VmEvent::default()
        }
    }

    fn pv(pfn: Option<u64>, mfn: u64) -> Frame {
        Frame {
            pfn,
            mfn: Some(mfn),
        }
    }

    #[test]
    fn a_pv_write_event_in_both_formats() {
        let record = Record::Event(event(
            3,
            &write_request(0x1234),
            pv(Some(0x205), 0x1234),
            "relax",
            false,
        ));
        assert_eq!(
            render(&record, Format::Jsonl),
            r#"{"type":"event","seq":3,"vcpu":0,"reason":"mem_access","access":"w","pfn":517,"mfn":4660,"gla":"0x205010","offset":16,"flags":["w","gla_valid","fault_with_gla","vcpu_paused"],"rip":"0xffffffff81000000","response":"relax","recovered":false,"ns":0}"#
        );
        assert_eq!(
            render(&record, Format::Text),
            "#3 vcpu0 w pfn=0x205 mfn=0x1234 gla=0x205010 rip=0xffffffff81000000 -> relax"
        );
    }

    #[test]
    fn a_recovered_event_says_so_last() {
        let record = Record::Event(event(
            1,
            &write_request(0x1234),
            pv(Some(0x205), 0x1234),
            "relax",
            true,
        ));
        let json = render(&record, Format::Jsonl);
        assert!(
            json.ends_with(r#""response":"relax","recovered":true,"ns":0}"#),
            "{json}"
        );
        assert_eq!(
            render(&record, Format::Text),
            "#1 vcpu0 w pfn=0x205 mfn=0x1234 gla=0x205010 rip=0xffffffff81000000 -> relax \
             (recovered)"
        );
    }

    #[test]
    fn unknown_pfns_and_hvm_mfns_are_null() {
        let record = Record::Event(event(
            1,
            &write_request(0x9999),
            pv(None, 0x9999),
            "keep",
            false,
        ));
        let json: serde_json::Value =
            serde_json::from_str(&render(&record, Format::Jsonl)).unwrap();
        assert_eq!(
            (json["pfn"].is_null(), &json["mfn"]),
            (true, &0x9999.into())
        );
        assert_eq!(
            render(&record, Format::Text),
            "#1 vcpu0 w pfn=? mfn=0x9999 gla=0x205010 rip=0xffffffff81000000 -> keep"
        );
        let hvm = Frame {
            pfn: Some(0x205),
            mfn: None,
        };
        let record = Record::Event(event(2, &write_request(0x205), hvm, "relax", false));
        let json: serde_json::Value =
            serde_json::from_str(&render(&record, Format::Jsonl)).unwrap();
        assert_eq!((&json["pfn"], json["mfn"].is_null()), (&0x205.into(), true));
        assert_eq!(
            render(&record, Format::Text),
            "#2 vcpu0 w pfn=0x205 gla=0x205010 rip=0xffffffff81000000 -> relax"
        );
    }

    #[test]
    fn every_access_letter_and_flag_is_named_and_unknown_bits_are_numbered() {
        let mut request = write_request(0x1234);
        request.vcpu_id = 1;
        request.mem_access.flags = MEM_ACCESS_R | MEM_ACCESS_W | MEM_ACCESS_X | 1 << 9;
        request.flags = VM_EVENT_FLAG_VCPU_PAUSED | 1 << 7 | 1 << 20;
        let event = event(4, &request, pv(Some(1), 0x1234), "relax", false);
        assert_eq!(event.access, "rwx");
        assert_eq!(
            event.flags,
            [
                "r",
                "w",
                "x",
                "mem_access_bit9",
                "vcpu_paused",
                "alternate_p2m",
                "vm_event_bit20"
            ]
        );
        // No gla_valid: the text leaves the gla out.
        assert_eq!(
            render(&Record::Event(event), Format::Text),
            "#4 vcpu1 rwx pfn=0x1 mfn=0x1234 rip=0xffffffff81000000 -> relax"
        );
    }

    #[test]
    fn a_write_by_hypercall_is_flagged_fault_hypercall_without_a_gla() {
        // As patch 0022 sends it: W | FAULT_HYPERCALL, the offset of the entry in the
        // L1 table's frame, no gla.
        let mut request = write_request(0x1234);
        request.mem_access.flags = MEM_ACCESS_W | MEM_ACCESS_FAULT_HYPERCALL;
        request.mem_access.offset = 0x3c8;
        request.mem_access.gla = 0;
        let event = event(1, &request, pv(Some(0x237), 0x1234), "relax", false);
        assert_eq!(event.flags, ["w", "fault_hypercall", "vcpu_paused"]);
        let record = Record::Event(event);
        let json: serde_json::Value =
            serde_json::from_str(&render(&record, Format::Jsonl)).unwrap();
        assert_eq!(json["offset"], 0x3c8);
        assert_eq!(
            render(&record, Format::Text),
            "#1 vcpu0 w pfn=0x237 mfn=0x1234 hypercall offset=0x3c8 rip=0xffffffff81000000 -> relax"
        );
    }

    #[test]
    fn another_reason_is_a_number_without_mem_access_fields() {
        let mut request = write_request(0x1234);
        request.reason = 8; // VM_EVENT_REASON_GUEST_REQUEST
        let event = event(5, &request, pv(Some(1), 0x1234), "relax", false);
        let record = Record::Event(event);
        assert_eq!(
            render(&record, Format::Jsonl),
            r#"{"type":"event","seq":5,"vcpu":0,"reason":8,"access":"","pfn":null,"mfn":null,"gla":null,"offset":null,"flags":["vcpu_paused"],"rip":"0xffffffff81000000","response":"relax","recovered":false,"ns":0}"#
        );
        assert_eq!(
            render(&record, Format::Text),
            "#5 vcpu0 reason=8 rip=0xffffffff81000000 -> relax"
        );
    }

    fn header(access: Vec<PageAccess>, count: Option<u64>, timeout: Option<f64>) -> Record {
        let access = access.iter().map(PageAccess::record).collect();
        Record::Header(Header {
            version: FORMAT_VERSION,
            domain: 5,
            xen_version: "4.17.5-pv-memaccess".into(),
            options: HeaderOptions {
                mode: "write".into(),
                default_access: "rx".into(),
                access,
                on_event: "relax".into(),
                count,
                timeout_seconds: timeout,
            },
        })
    }

    #[test]
    fn header_in_both_formats() {
        let page = PageAccess {
            pfn: 0x200,
            mfn: Some(libxc::Mfn(0x1_2233)),
            access: Access::Rw,
        };
        let record = header(vec![page], None, Some(60.0));
        assert_eq!(
            render(&record, Format::Jsonl),
            r#"{"type":"header","version":1,"domain":5,"xen_version":"4.17.5-pv-memaccess","options":{"mode":"write","default_access":"rx","access":[{"pfn":512,"mfn":74291,"access":"rw"}],"on_event":"relax","count":null,"timeout_seconds":60.0}}"#
        );
        assert_eq!(
            render(&record, Format::Text),
            "domain 5 monitored on Xen 4.17.5-pv-memaccess: mode write, default access rx, \
             pfn 0x200 (mfn 0x12233) rw, on event relax, until 60 s"
        );
        let hvm_page = PageAccess { mfn: None, ..page };
        assert_eq!(
            render(&header(vec![hvm_page], Some(1), Some(0.5)), Format::Text),
            "domain 5 monitored on Xen 4.17.5-pv-memaccess: mode write, default access rx, \
             pfn 0x200 rw, on event relax, until 1 event or 0.5 s"
        );
        assert!(render(&header(vec![], None, None), Format::Text).ends_with("until stopped"));
        assert!(render(&header(vec![], None, None), Format::Jsonl).contains(r#""access":[]"#));
    }

    #[test]
    fn end_in_both_formats() {
        let end = |reason: &str, events| {
            Record::End(End {
                reason: reason.into(),
                events,
                most_pending: events.min(8),
            })
        };
        assert_eq!(
            render(&end("timeout", 12), Format::Jsonl),
            r#"{"type":"end","reason":"timeout","events":12,"most_pending":8}"#
        );
        assert_eq!(
            render(&end("timeout", 12), Format::Text),
            "stopped by the timeout after 12 events (at most 8 pending at once)"
        );
        assert_eq!(
            render(&end("domain-gone", 1), Format::Text),
            "stopped by the domain's end after 1 event (at most 1 pending at once)"
        );
        assert_eq!(
            render(&end("error", 0), Format::Text),
            "stopped by an error after 0 events (at most 0 pending at once)"
        );
    }
}
