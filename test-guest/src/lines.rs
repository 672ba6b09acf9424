//! The console lines the host harness reads, each one type with both sides of the
//! line: its [`core::fmt::Display`] writes the line (the kernel prints it after the
//! `TEST-GUEST ` prefix, [`PREFIX`]) and [`Line::parse`] reads it back (xtask uses it on
//! the guest's console). Tests format known values, compare them with the exact bytes
//! and parse them back.
//!
//! Each type's doc is the description of its line. The types live next to the code
//! that owns the line; the kernel's own lines (`FRAMES`, `P2M`, `DONE`, `HEARTBEAT`)
//! are here:
//!
//! | line | type |
//! | --- | --- |
//! | `TOUCH` | [`crate::patterns::TouchLine`] |
//! | `READY` | [`crate::patterns::Ready`] |
//! | `PATTERN-DONE` | [`crate::patterns::PatternDone`] |
//! | `XEN-COPY` | [`crate::patterns::XenCopy`] |
//! | `vcpus=` | [`Banner`] |
//! | `FRAMES` | [`Frames`] |
//! | `P2M` | [`P2mRun`] |
//! | `DONE` | [`Done`] |
//! | `HEARTBEAT` | [`Heartbeat`] |
//! | `BOUNCE` | [`Bounce`] |
//! | `BOUNCE-BAD` | [`BounceBad`] |
//! | `PT-SLOT` | [`crate::pt_write::PtSlot`] |
//! | `BENCH` | [`crate::bench::Bench`] |
//! | `BENCH-XEN-COPY` | [`crate::bench::BenchXenCopy`] |
//! | `BENCH-AREA` | [`crate::bench_ops::BenchArea`] |
//! | `BENCH-EVENTS` | [`crate::bench_ops::BenchEvents`] |
//! | `ECHO-PORT` | [`crate::bench_ops::EchoPort`] |
//! | `BENCH-PINGPONG` | [`crate::bench_ops::BenchPingpong`] |
//! | `SWEEP` | [`crate::bench_ops::Sweep`] |
//! | `BENCH-SCALE` | [`crate::bench_ops::BenchScale`] |
//! | `BENCH-SAMPLES` | [`crate::bench_ops::BenchSamples`] |
//! | `PT-WRITE` | [`crate::pt_write::PtWrite`] |
//! | `PT-TABLES` | [`crate::pt_hypercall::PtTables`] |
//! | `PT-HCALL` | [`crate::pt_hypercall::PtHcall`] |
//! | `RACE-XEN` | [`crate::xen_writes::RaceXen`] |
//! | `RACE-BAD` | [`crate::xen_writes::RaceBad`] |
//! | `RACE-GUEST` | [`crate::xen_writes::RaceGuest`] |
//! | `HOSTILE` | [`crate::hostile::Hostile`] |
//! | `HOSTILE-DONE` | [`crate::hostile::HostileDone`] |
//! | `PROBE` | [`crate::probe::Outcome`] |
//! | `PROBES DONE` | [`crate::probe::ProbesDone`] |
//!
//! Lines no host code reads have no type: `BUFFER`, `P2M-PUBLISHED`, `VCPU <n> up`,
//! `BALLOON`, and `FAIL` / `PANIC` / `console lost` (free text; the host only looks
//! for their keyword).

use core::fmt;
use core::str::{FromStr, SplitWhitespace};

use crate::text::Sink;
use crate::traps::Kind;
use crate::workload::BUFFER_PAGES;

/// What the kernel prints before every line.
pub const PREFIX: &str = "TEST-GUEST ";

/// One line of the guest's console protocol; `'a` is the text's lifetime, for a line
/// that keeps some of it (a name, a text).
pub trait Line<'a>: fmt::Display + Sized {
    /// Reads back what [`Display`](fmt::Display) wrote: `body` is the text after
    /// [`PREFIX`] (trailing whitespace ignored); `None` for anything else.
    fn parse(body: &'a str) -> Option<Self>;

    /// The first line of `console` (the guest's console, many lines) that reads as a
    /// `Self`.
    fn find(console: &'a str) -> Option<Self> {
        bodies(console).find_map(Self::parse)
    }
}

/// The text after [`PREFIX`] on one console line (which may carry a timestamp
/// before it), trailing whitespace removed; `None` for a line without the prefix.
pub fn body(line: &str) -> Option<&str> {
    line.split_once(PREFIX).map(|(_, body)| body.trim_end())
}

/// The bodies ([`body`]) of the guest's lines in `console`, in order.
pub fn bodies(console: &str) -> impl Iterator<Item = &str> {
    console.lines().filter_map(body)
}

/// The words of a line being parsed, after its keyword.
pub(crate) struct Words<'a>(SplitWhitespace<'a>);

impl<'a> Words<'a> {
    /// The words of `body` after `keyword` (one word or several, e.g. `PROBES DONE`),
    /// which must be its first.
    pub(crate) fn after(body: &'a str, keyword: &str) -> Option<Self> {
        let mut words = Words(body.split_whitespace());
        for expected in keyword.split_whitespace() {
            words.word(expected)?;
        }
        Some(words)
    }

    /// The next word.
    pub(crate) fn next(&mut self) -> Option<&'a str> {
        self.0.next()
    }

    /// The next word, which must be `expected`.
    pub(crate) fn word(&mut self, expected: &str) -> Option<()> {
        (self.next()? == expected).then_some(())
    }

    /// The value of the next word, which must be `<key>=<value>`.
    pub(crate) fn value(&mut self, key: &str) -> Option<&'a str> {
        self.next()?.strip_prefix(key)?.strip_prefix('=')
    }

    /// The next word's value (`key=<decimal>`).
    pub(crate) fn dec<T: FromStr>(&mut self, key: &str) -> Option<T> {
        self.value(key)?.parse().ok()
    }

    /// The next word's value (`key=0x<hex>`).
    pub(crate) fn hex(&mut self, key: &str) -> Option<u64> {
        hex(self.value(key)?)
    }

    /// The next word's value (`<first><second>=0x<hex>`: a key in two parts, such as
    /// `l1` and `-pfn`).
    pub(crate) fn hex_of(&mut self, first: &str, second: &str) -> Option<u64> {
        let word = self.next()?.strip_prefix(first)?.strip_prefix(second)?;
        hex(word.strip_prefix('=')?)
    }

    /// `Some(())` if no word is left.
    pub(crate) fn end(mut self) -> Option<()> {
        self.next().is_none().then_some(())
    }
}

/// `0x<hex>`, as `{:#x}` writes it.
pub(crate) fn hex(text: &str) -> Option<u64> {
    let digits = text.strip_prefix("0x")?;
    if digits.starts_with('+') {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// `vcpus=<n> cmdline=<text>`: the kernel's first line, the vCPUs it found and its
/// command line (`start_info`'s `cmd_line`, non-printables as `?`; it may hold spaces,
/// and runs to the end of the line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Banner<'a> {
    /// The vCPUs that are up or can be brought up.
    pub vcpus: u32,
    /// The command line.
    pub cmdline: &'a [u8],
}

impl fmt::Display for Banner<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vcpus={} cmdline=", self.vcpus)?;
        f.put_sanitized(self.cmdline);
        Ok(())
    }
}

impl<'a> Line<'a> for Banner<'a> {
    fn parse(body: &'a str) -> Option<Self> {
        let (vcpus, cmdline) = body.strip_prefix("vcpus=")?.split_once(" cmdline=")?;
        Some(Banner {
            vcpus: vcpus.parse().ok()?,
            cmdline: cmdline.as_bytes(),
        })
    }
}

/// `FRAMES 0x<mfn> ... 0x<mfn>`: the machine frame of each of the 16 buffer pages
/// (`BUFFER_GFN` + 0 to 15), in page order, printed at boot before any mode runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frames {
    /// The machine frame numbers, page 0 first.
    pub mfns: [u64; BUFFER_PAGES],
}

impl fmt::Display for Frames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FRAMES")?;
        self.mfns.iter().try_for_each(|mfn| write!(f, " {mfn:#x}"))
    }
}

impl Line<'_> for Frames {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "FRAMES")?;
        let mut mfns = [0; BUFFER_PAGES];
        for mfn in &mut mfns {
            *mfn = hex(words.next()?)?;
        }
        words.end()?;
        Some(Frames { mfns })
    }
}

/// `P2M pfn=0x<pfn> mfn=0x<mfn> count=<n>`: one run of the P2M, pfns `pfn..pfn + n`
/// on machine frames `mfn..mfn + n` (the `p2m` mode prints the whole P2M as runs, in
/// pfn order, after `P2M-PUBLISHED` and before `DONE` or `READY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct P2mRun {
    /// The first pfn.
    pub pfn: u64,
    /// Its machine frame.
    pub mfn: u64,
    /// How many pfns the run has.
    pub count: u64,
}

impl fmt::Display for P2mRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "P2M pfn={:#x} mfn={:#x} count={}",
            self.pfn, self.mfn, self.count
        )
    }
}

impl Line<'_> for P2mRun {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "P2M")?;
        let run = P2mRun {
            pfn: words.hex("pfn")?,
            mfn: words.hex("mfn")?,
            count: words.dec("count")?,
        };
        words.end()?;
        Some(run)
    }
}

/// `DONE <checksum>`: the workload's FNV-1a 64 checksum
/// ([`crate::workload`]), exactly 16 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    /// The checksum.
    pub checksum: u64,
}

impl fmt::Display for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DONE {:016x}", self.checksum)
    }
}

impl Line<'_> for Done {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "DONE")?;
        let digits = words.next()?;
        words.end()?;
        let hex_digits = |d: &str| d.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        (digits.len() == 16 && hex_digits(digits)).then_some(())?;
        let checksum = u64::from_str_radix(digits, 16).ok()?;
        Some(Done { checksum })
    }
}

/// `HEARTBEAT <n>`: the `heartbeat` mode's `n`-th beat (one per 64 workload rounds),
/// after `DONE`, until the domain is destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// The beat, from 1.
    pub beat: u64,
}

impl fmt::Display for Heartbeat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HEARTBEAT {}", self.beat)
    }
}

impl Line<'_> for Heartbeat {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "HEARTBEAT")?;
        let beat = words.next()?.parse().ok()?;
        words.end()?;
        Some(Heartbeat { beat })
    }
}

/// `BOUNCE kind=<name> delivered=<n> right=<n>`: the `bounce-frame` pattern's count of
/// one kind of delivery ([`crate::traps`]), `right` of them with a right frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounce {
    /// The kind.
    pub kind: Kind,
    /// Deliveries made.
    pub delivered: u64,
    /// Of them, with the frame right.
    pub right: u64,
}

impl fmt::Display for Bounce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BOUNCE kind={} delivered={} right={}",
            self.kind.name(),
            self.delivered,
            self.right
        )
    }
}

/// The kind called `name`.
fn kind(name: &str) -> Option<Kind> {
    Kind::ALL.into_iter().find(|kind| kind.name() == name)
}

impl Line<'_> for Bounce {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "BOUNCE")?;
        let line = Bounce {
            kind: kind(words.value("kind")?)?,
            delivered: words.dec("delivered")?,
            right: words.dec("right")?,
        };
        words.end()?;
        Some(line)
    }
}

/// `BOUNCE-BAD kind=<name> round=<n> field=<name> got=0x<hex> expected=0x<hex>`: the
/// first wrong frame, of a `kind` delivery in round `n` ([`crate::traps::Mismatch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BounceBad<'a> {
    /// The kind.
    pub kind: Kind,
    /// The round.
    pub round: u64,
    /// The wrong field's name.
    pub field: &'a str,
    /// What the frame held.
    pub got: u64,
    /// What it should have held.
    pub expected: u64,
}

impl fmt::Display for BounceBad<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BOUNCE-BAD kind={} round={} field={} got={:#x} expected={:#x}",
            self.kind.name(),
            self.round,
            self.field,
            self.got,
            self.expected
        )
    }
}

impl<'a> Line<'a> for BounceBad<'a> {
    fn parse(body: &'a str) -> Option<Self> {
        let mut words = Words::after(body, "BOUNCE-BAD")?;
        let line = BounceBad {
            kind: kind(words.value("kind")?)?,
            round: words.dec("round")?,
            field: words.value("field")?,
            got: words.hex("got")?,
            expected: words.hex("expected")?,
        };
        words.end()?;
        Some(line)
    }
}

/// Tests of every line type: its `Display` gives the exact bytes the kernel printed
/// before the types existed, and `parse` reads them back.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::string::ToString;

    /// `line` displays as exactly `text`, and `text` parses back to `line` (also with
    /// the prefix, a timestamp and a line end around it, as a console log has it).
    pub(crate) fn round_trip<'a, T: Line<'a> + PartialEq + fmt::Debug>(line: T, text: &'a str) {
        assert_eq!(line.to_string(), text);
        assert_eq!(T::parse(text).as_ref(), Some(&line), "{text}");
        let console = std::format!("noise\n[12.5] {PREFIX}{text}\r\n").leak();
        assert_eq!(T::find(console).as_ref(), Some(&line), "{console}");
    }

    #[test]
    fn bodies_are_what_follows_the_prefix() {
        assert_eq!(body("TEST-GUEST DONE 1 \r"), Some("DONE 1"));
        assert_eq!(body("(d1) [ 3.0] TEST-GUEST X"), Some("X"));
        assert_eq!(body("DONE 1"), None);
        let console = "a\nTEST-GUEST A\nb\nTEST-GUEST B\n";
        assert_eq!(bodies(console).collect::<std::vec::Vec<_>>(), ["A", "B"]);
    }

    #[test]
    fn words_parse_keys_and_numbers() {
        let mut words = Words::after("PROBES DONE a=0x1f b=7 c", "PROBES DONE").unwrap();
        assert_eq!(words.hex("a"), Some(0x1f));
        assert_eq!(words.dec::<u32>("b"), Some(7));
        assert_eq!(words.next(), Some("c"));
        assert_eq!(words.end(), Some(()));
        assert!(Words::after("PROBE x", "PROBES").is_none());
        assert_eq!(hex("1f"), None);
        assert_eq!(hex("0x+1"), None);
        assert_eq!(hex("0x"), None);
    }

    #[test]
    fn banner() {
        round_trip(
            Banner {
                vcpus: 1,
                cmdline: b"pattern=bench rounds=4",
            },
            "vcpus=1 cmdline=pattern=bench rounds=4",
        );
        round_trip(
            Banner {
                vcpus: 2,
                cmdline: b"",
            },
            "vcpus=2 cmdline=",
        );
        let line = Banner {
            vcpus: 1,
            cmdline: b"a\tb",
        };
        assert_eq!(line.to_string(), "vcpus=1 cmdline=a?b");
        assert_eq!(Banner::parse("vcpus=x cmdline="), None);
        assert_eq!(Banner::parse("vcpus=1"), None);
    }

    #[test]
    fn frames() {
        let mut mfns = [0; BUFFER_PAGES];
        for (page, mfn) in mfns.iter_mut().enumerate() {
            *mfn = 0x100 + page as u64;
        }
        round_trip(
            Frames { mfns },
            "FRAMES 0x100 0x101 0x102 0x103 0x104 0x105 0x106 0x107 0x108 0x109 0x10a \
             0x10b 0x10c 0x10d 0x10e 0x10f",
        );
        let short = "FRAMES 0x100 0x101";
        assert_eq!(Frames::parse(short), None);
    }

    #[test]
    fn p2m_runs() {
        round_trip(
            P2mRun {
                pfn: 0,
                mfn: 0x4a000,
                count: 512,
            },
            "P2M pfn=0x0 mfn=0x4a000 count=512",
        );
        assert_eq!(P2mRun::parse("P2M pfn=0x0 mfn=0x4a000"), None);
        assert_eq!(P2mRun::parse("P2M-PUBLISHED max_pfn=0x4000 fll=0x1"), None);
    }

    #[test]
    fn done_and_heartbeat() {
        round_trip(
            Done {
                checksum: 0xebeb_9254_ff2b_d002,
            },
            "DONE ebeb9254ff2bd002",
        );
        round_trip(Done { checksum: 0x1f }, "DONE 000000000000001f");
        assert_eq!(Done::parse("DONE 1f"), None);
        assert_eq!(Done::parse("DONE EBEB9254FF2BD002"), None);
        round_trip(Heartbeat { beat: 3 }, "HEARTBEAT 3");
        assert_eq!(Heartbeat::parse("HEARTBEAT"), None);
    }

    #[test]
    fn bounce_lines() {
        round_trip(
            Bounce {
                kind: Kind::BadSelector,
                delivered: 64,
                right: 63,
            },
            "BOUNCE kind=mov-ds delivered=64 right=63",
        );
        for kind in Kind::ALL {
            let line = Bounce {
                kind,
                delivered: 1,
                right: 1,
            };
            assert_eq!(Bounce::parse(&line.to_string()), Some(line));
        }
        round_trip(
            BounceBad {
                kind: Kind::Upcall,
                round: 3,
                field: "rip",
                got: 0x1f,
                expected: 0x20,
            },
            "BOUNCE-BAD kind=upcall round=3 field=rip got=0x1f expected=0x20",
        );
        let mut out = std::string::String::new();
        crate::traps::write_kind_line(&mut out, Kind::Int3, 64, 64);
        assert_eq!(out, "BOUNCE kind=int3 delivered=64 right=64");
        let mut out = std::string::String::new();
        let bad = crate::traps::Mismatch {
            field: "rsp",
            got: 0x20c_ff8,
            expected: 0x20c_ff0,
        };
        crate::traps::write_bad_line(&mut out, Kind::Ud2, 9, &bad);
        assert_eq!(
            out,
            "BOUNCE-BAD kind=ud2 round=9 field=rsp got=0x20cff8 expected=0x20cff0"
        );
        assert_eq!(Bounce::parse("BOUNCE kind=nmi delivered=1 right=1"), None);
        assert_eq!(
            Bounce::parse("BOUNCE-BAD kind=upcall round=3 field=rip got=0x1f expected=0x20"),
            None
        );
    }
}
