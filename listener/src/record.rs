//! The trace's records as types: what `listener monitor` writes (one JSON object per line,
//! format [`FORMAT_VERSION`]) and what programs that read traces parse (xtask's scenarios),
//! so the two sides cannot drift apart. The keys come out in the order declared here.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// The version of the JSON-lines format, in every header.
pub const FORMAT_VERSION: u32 = 1;

/// One line of the trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    /// The first line, once the guest is monitored as asked.
    Header(Header),
    /// One per request answered.
    Event(Event),
    /// The last line, whatever stopped the listener.
    End(End),
}

/// What is monitored, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// [`FORMAT_VERSION`].
    pub version: u32,
    /// The domain id.
    pub domain: u16,
    /// Xen's version string (empty if Xen would not say).
    pub xen_version: String,
    /// The options in force.
    pub options: HeaderOptions,
}

/// The options of a header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeaderOptions {
    /// `--mode` (`write`, `exec`, `read`, `any`).
    pub mode: String,
    /// The default access in force (from `--mode`, or `--default-access`).
    pub default_access: String,
    /// The `--access` pages, in the order applied.
    pub access: Vec<PageRecord>,
    /// `relax`, `keep` or `emulate`.
    pub on_event: String,
    /// `--count`.
    pub count: Option<u64>,
    /// `--timeout`.
    pub timeout_seconds: Option<f64>,
}

/// One `--access` page of a header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRecord {
    /// The guest frame number.
    pub pfn: u64,
    /// Its machine frame (PV); `None` for HVM, where Xen takes the pfn.
    pub mfn: Option<u64>,
    /// The access, by name (`rx`, `rx2rw`, ...).
    pub access: String,
}

/// One request answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// 1 for the first event.
    pub seq: u64,
    /// The vCPU that raised it.
    pub vcpu: u32,
    /// Why Xen raised it.
    pub reason: Reason,
    /// The accesses violated: `r`, `w`, `x` letters in that order.
    pub access: String,
    /// The guest frame number.
    pub pfn: Option<u64>,
    /// The machine frame (PV).
    pub mfn: Option<u64>,
    /// The guest linear address.
    pub gla: Option<Hex>,
    /// The byte offset within the page.
    pub offset: Option<u64>,
    /// The request's flags, by name.
    pub flags: Vec<String>,
    /// The vCPU's instruction pointer.
    pub rip: Hex,
    /// `relax`, `keep` or `emulate`.
    pub response: String,
    /// Left on the ring by a listener that died, answered after taking the ring over.
    pub recovered: bool,
    /// When it was answered: nanoseconds since the header (0 for a request a dead listener
    /// left, answered before the header). Left out of snapshots.
    #[serde(default)]
    pub ns: u64,
}

impl Event {
    /// Whether the request's flags name `flag`.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|name| name == flag)
    }
}

/// The last line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// What stopped the listener: `count`, `timeout`, `signal`, `domain-gone` or `error`.
    pub reason: String,
    /// How many events were answered.
    pub events: u64,
    /// The most requests found waiting on the ring at once (the ring holds 8: 8 means it
    /// was full and vCPUs had to wait for room).
    pub most_pending: u64,
}

/// `VM_EVENT_REASON_*`: by name for mem_access, the only one the listener asks for, by number
/// otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `VM_EVENT_REASON_MEM_ACCESS`.
    MemAccess,
    /// Any other reason.
    Other(u32),
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Reason::MemAccess => serializer.serialize_str("mem_access"),
            Reason::Other(number) => serializer.serialize_u32(*number),
        }
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Reason, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Number(u32),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Name(name) if name == "mem_access" => Ok(Reason::MemAccess),
            Raw::Name(name) => Err(de::Error::custom(format!("unknown reason {name:?}"))),
            Raw::Number(number) => Ok(Reason::Other(number)),
        }
    }
}

/// An address, written `0x…` (JSON numbers lose precision past 2^53, and people read
/// addresses in hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hex(pub u64);

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{:#x}", self.0))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hex, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.strip_prefix("0x")
            .and_then(|digits| u64::from_str_radix(digits, 16).ok())
            .map(Hex)
            .ok_or_else(|| de::Error::custom(format!("{text:?} is not a 0x address")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_reads_back_as_written() {
        let event = Record::Event(Event {
            seq: 1,
            vcpu: 1,
            reason: Reason::MemAccess,
            access: "w".into(),
            pfn: Some(0x205),
            mfn: None,
            gla: Some(Hex(0x205010)),
            offset: Some(16),
            flags: vec!["w".into(), "gfn_is_mfn".into()],
            rip: Hex(u64::MAX),
            response: "relax".into(),
            recovered: false,
            ns: 12,
        });
        let other = Record::Event(Event {
            reason: Reason::Other(8),
            gla: None,
            ..match &event {
                Record::Event(event) => event.clone(),
                _ => unreachable!(),
            }
        });
        let header = Record::Header(Header {
            version: FORMAT_VERSION,
            domain: 5,
            xen_version: "4.17.5".into(),
            options: HeaderOptions {
                mode: "write".into(),
                default_access: "rx".into(),
                access: vec![PageRecord {
                    pfn: 0x200,
                    mfn: Some(0x1234),
                    access: "rw".into(),
                }],
                on_event: "relax".into(),
                count: None,
                timeout_seconds: Some(60.0),
            },
        });
        let end = Record::End(End {
            reason: "timeout".into(),
            events: 1,
            most_pending: 1,
        });
        for record in [event, other, header, end] {
            let line = serde_json::to_string(&record).unwrap();
            assert_eq!(
                serde_json::from_str::<Record>(&line).unwrap(),
                record,
                "{line}"
            );
        }
    }

    #[test]
    fn bad_values_are_refused_and_a_missing_time_is_zero() {
        assert!(serde_json::from_str::<Hex>(r#""12""#).is_err());
        assert!(serde_json::from_str::<Reason>(r#""paging""#).is_err());
        let old = r#"{"type":"event","seq":1,"vcpu":0,"reason":"mem_access","access":"w","pfn":1,"mfn":2,"gla":null,"offset":null,"flags":[],"rip":"0x0","response":"keep","recovered":false}"#;
        match serde_json::from_str::<Record>(old).unwrap() {
            Record::Event(event) => assert_eq!(event.ns, 0),
            other => panic!("{other:?}"),
        }
    }
}
