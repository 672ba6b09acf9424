//! The per-operation benchmarks `bench-events`, `bench-pingpong` and `bench-sweep`:
//! their command-line numbers, the layouts they rely on, and their lines.
//!
//! Each starts with the ordinary go-page handshake ([`crate::handshake`]), prints no
//! `TOUCH` lines (as `bench`, [`crate::bench`]), times its operations with the TSC
//! (`lfence; rdtsc`) and reports both the ticks and the nanoseconds they make at the
//! scale of vCPU 0's `vcpu_time_info` ([`tsc_to_ns`], read once the timed loop is
//! over), then ends with `PATTERN-DONE <name> touches=<n>` and powers off.
//!
//! - `bench-events pages=<N>` (1 to [`EVENT_AREA_PAGES`], default
//!   [`DEFAULT_EVENT_PAGES`], [`pages`]): before `READY`, `BENCH-AREA` names the event
//!   area (512 page-aligned pages of its own, after the 16-page buffer, not in it).
//!   After `GO`, before the clock starts, the guest reads one byte of each of the `N`
//!   pages (so their shadow entries exist and a later write faults only for its access
//!   rights) and writes the samples once (`bench-pingpong` too). Then one volatile byte
//!   write at offset 0 of each page `i` in `0..N`, each timed
//!   alone (`rdtsc` before and after): with a listener whose default is `rx` and which
//!   relaxes each page on its event, each sample is one synchronous event's round trip.
//!   With two vCPUs (the domain has them: it is not required), vCPU 1 is up before
//!   `READY` and waits; after `GO` vCPU 0 starts it and writes pages `0..N/2` while
//!   vCPU 1 writes `N/2..N` ([`vcpu_pages`]); the total runs from that start until
//!   vCPU 0 sees vCPU 1 done (and is done itself), and there are no samples.
//! - `bench-pingpong rounds=<R>` (as `bench`: 1 to 65536, default 256,
//!   [`crate::bench::rounds`]): before `READY`, the guest allocates an unbound event
//!   channel port for dom0 (`EVTCHNOP_alloc_unbound`), masks it in `shared_info`
//!   ([`evtchn_bit`]: no upcall is ever delivered) and prints `ECHO-PORT`. Dom0 binds
//!   it and echoes every notification back. After `GO`, per round: clear the port's
//!   pending bit, `rdtsc`, `EVTCHNOP_send`, then `SCHEDOP_poll` on the port until its
//!   pending bit is set, `rdtsc`. A round whose echo does not come within
//!   [`ECHO_TIMEOUT_NS`] of Xen system time is a FAIL. Dom0 binds the port before it
//!   writes `GO`; binding raises one notification on dom0's own new port (Xen's
//!   `evtchn_bind_interdomain` makes up for any lost while the port was unbound): an
//!   echo that answers it must have done so before `GO`, or its answer may end round 0
//!   early (the guest clears its pending bit at each round's start, not later).
//! - `bench-sweep phases=<K>` (1 to [`MAX_SWEEP_PHASES`], default
//!   [`DEFAULT_SWEEP_PHASES`], [`sweep_phases`]): after `GO` (phase 1, nothing timed),
//!   for each phase `n` from 2 to `K + 1`: `READY go-pfn=0x<same pfn> phase=<n>`, wait
//!   for [`go_value(n)`](crate::handshake::go_value) (`"GO<n>"`), then, timed, one
//!   volatile byte write to each buffer page 0 to 15 in order at offset `0x10 * page`
//!   (storing the page index, as `write-sweep`), then a volatile read of each of those
//!   bytes in the same order; then `SWEEP`. Between phases dom0 changes the access
//!   rights and counts the events a sweep makes. A byte that does not read back as
//!   written is a FAIL (checked after the clock stops).
//!
//! # Console lines (after the `TEST-GUEST ` prefix)
//!
//! ```text
//! BENCH-AREA first-pfn=0x<pfn of the area's first page> pages=<N>          (bench-events, before READY)
//! BENCH-EVENTS pages=<N> vcpus=<1|2> tsc=<total ticks> ns=<total ns>
//! ECHO-PORT port=<p>                                                       (bench-pingpong, before READY)
//! BENCH-PINGPONG rounds=<R> tsc=<total ticks> ns=<total ns>
//! SWEEP phase=<n> tsc=<ticks> ns=<ns>                                      (bench-sweep, once per phase 2..=K+1)
//! BENCH-SCALE mul=<tsc_to_system_mul> shift=<tsc_shift, signed decimal>   (bench-events, bench-pingpong)
//! BENCH-SAMPLES from=<index of the first> <ticks> <ticks> ...             (16 per line, the last may have fewer)
//! PATTERN-DONE bench-events touches=<N>
//! PATTERN-DONE bench-pingpong touches=0
//! PATTERN-DONE bench-sweep touches=<16 * K>
//! ```
//!
//! `bench-events` prints `BENCH-EVENTS`, `BENCH-SCALE`, then (one vCPU only) its `N`
//! samples; `bench-pingpong` prints `BENCH-PINGPONG`, `BENCH-SCALE`, then its `R`
//! samples. Sample `i` is operation `i`'s TSC ticks, in order; `ns = tsc_to_ns(ticks,
//! mul, shift)` converts any of them as the guest converted the totals. Totals run
//! from just before the first operation to just after the last (so they include the
//! loop and the sample stores, not the lines). `bench-pingpong`'s `touches=0`: it
//! accesses no watched page; `bench-sweep`'s counts its writes (16 per phase, each
//! also read back).

use core::fmt;
use core::ops::Range;

use crate::cmdline;
use crate::frames::Pfn;
use crate::lines::{Line, Words};
use crate::text::Sink;
use crate::workload::BUFFER_PAGES;

pub use crate::handshake::tsc_to_ns;

/// Pages of the `bench-events` area (the most `pages=` may ask for).
pub const EVENT_AREA_PAGES: usize = 512;

/// Pages `bench-events` writes when the command line has no `pages=`.
pub const DEFAULT_EVENT_PAGES: u32 = 256;

/// The most samples a pattern keeps: `bench-pingpong`'s most rounds.
pub const MAX_SAMPLES: usize = crate::bench::MAX_ROUNDS as usize;

/// Samples per `BENCH-SAMPLES` line.
pub const SAMPLES_PER_LINE: usize = 16;

/// Timed phases `bench-sweep` runs when the command line has no `phases=`.
pub const DEFAULT_SWEEP_PHASES: u32 = 8;

/// The most timed phases `phases=` may ask for.
pub const MAX_SWEEP_PHASES: u32 = 64;

/// How long `bench-pingpong` waits for one echo, in Xen system time: 10 s.
pub const ECHO_TIMEOUT_NS: u64 = 10 * crate::handshake::NS_PER_SEC;

/// Byte offset of `evtchn_pending[]` (64 `xen_ulong_t`) in `struct shared_info`
/// (`xen_sys`'s layout: after `vcpu_info[32]`, 64 bytes each).
pub const SHARED_INFO_EVTCHN_PENDING: usize =
    core::mem::offset_of!(xen_sys::shared_info, evtchn_pending);

/// Byte offset of `evtchn_mask[]` (64 `xen_ulong_t`) in `struct shared_info`.
pub const SHARED_INFO_EVTCHN_MASK: usize = core::mem::offset_of!(xen_sys::shared_info, evtchn_mask);

/// Ports the 2-level event channel ABI has: 64 words of 64 bits.
pub const EVTCHN_2L_PORTS: u32 = 64 * 64;

/// A `pages=` or `phases=` that is not a decimal within its bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadArg;

/// The value of `key=<decimal>` in `cmdline`: `default` without such a word, its value
/// if the first such word is a decimal from 1 to `max`, [`BadArg`] otherwise.
fn bounded(cmdline: &[u8], key: &[u8], default: u32, max: u32) -> Result<u32, BadArg> {
    if cmdline::arg(cmdline, key).is_none() {
        return Ok(default);
    }
    cmdline::dec_arg(cmdline, key)
        .and_then(|value| u32::try_from(value).ok())
        .filter(|value| (1..=max).contains(value))
        .ok_or(BadArg)
}

/// The pages `bench-events` writes: `pages=<decimal>`, 1 to [`EVENT_AREA_PAGES`],
/// default [`DEFAULT_EVENT_PAGES`].
pub fn pages(cmdline: &[u8]) -> Result<u32, BadArg> {
    bounded(
        cmdline,
        cmdline::PAGES,
        DEFAULT_EVENT_PAGES,
        EVENT_AREA_PAGES as u32,
    )
}

/// The timed phases `bench-sweep` runs: `phases=<decimal>`, 1 to
/// [`MAX_SWEEP_PHASES`], default [`DEFAULT_SWEEP_PHASES`].
pub fn sweep_phases(cmdline: &[u8]) -> Result<u32, BadArg> {
    bounded(
        cmdline,
        cmdline::PHASES,
        DEFAULT_SWEEP_PHASES,
        MAX_SWEEP_PHASES,
    )
}

/// The event-area pages vCPU `vcpu` writes in `bench-events` when `vcpus` vCPUs (1 or
/// 2) share `pages` pages: all of them with one vCPU; `0..pages/2` for vCPU 0 and
/// `pages/2..pages` for vCPU 1 with two. Empty for any other vCPU.
pub fn vcpu_pages(pages: usize, vcpus: u32, vcpu: u32) -> Range<usize> {
    match (vcpus, vcpu) {
        (1, 0) => 0..pages,
        (2, 0) => 0..pages / 2,
        (2, 1) => pages / 2..pages,
        _ => 0..0,
    }
}

/// The buffer page and offset of write `index` (0 to 15) of a `bench-sweep` sweep,
/// the byte it stores (the page index) being read back in the same order.
pub const fn sweep_byte(index: usize) -> (usize, usize) {
    (index, 0x10 * index)
}

/// The writes `bench-sweep` makes over `phases` timed phases (its `PATTERN-DONE`
/// count): one per buffer page and phase.
pub const fn sweep_writes(phases: u32) -> u64 {
    phases as u64 * BUFFER_PAGES as u64
}

/// Where port `port`'s bit is in `evtchn_pending[]` or `evtchn_mask[]`: the byte offset
/// of its 64-bit word from the array's start, and the bit's index in that word; `None`
/// for a port the 2-level ABI does not have.
pub const fn evtchn_bit(port: u32) -> Option<(usize, u32)> {
    if port >= EVTCHN_2L_PORTS {
        return None;
    }
    Some((8 * (port / 64) as usize, port % 64))
}

/// `BENCH-AREA first-pfn=0x<pfn> pages=<N>`: the event area's first page and the pages
/// `bench-events` writes (before `READY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchArea {
    /// The area's first pfn.
    pub first_pfn: u64,
    /// The pages written.
    pub pages: u32,
}

impl fmt::Display for BenchArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BENCH-AREA first-pfn={:#x} pages={}",
            self.first_pfn, self.pages
        )
    }
}

impl Line<'_> for BenchArea {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "BENCH-AREA")?;
        let line = BenchArea {
            first_pfn: words.hex("first-pfn")?,
            pages: words.dec("pages")?,
        };
        words.end()?;
        Some(line)
    }
}

/// Writes [`BenchArea`].
pub fn write_bench_area(out: &mut (impl Sink + ?Sized), first: Pfn, pages: u32) {
    let line = BenchArea {
        first_pfn: first.0,
        pages,
    };
    let _ = write!(out, "{line}");
}

/// ` tsc=<ticks> ns=<ns>`, the end of the timed lines.
fn times(f: &mut fmt::Formatter<'_>, tsc: u64, ns: u64) -> fmt::Result {
    write!(f, " tsc={tsc} ns={ns}")
}

/// `BENCH-EVENTS pages=<N> vcpus=<v> tsc=<ticks> ns=<ns>`: `bench-events`' total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchEvents {
    /// The pages written, one event each when monitored.
    pub pages: u32,
    /// The vCPUs that wrote them.
    pub vcpus: u32,
    /// TSC ticks.
    pub tsc: u64,
    /// Nanoseconds at vCPU 0's scale.
    pub ns: u64,
}

impl fmt::Display for BenchEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BENCH-EVENTS pages={} vcpus={}", self.pages, self.vcpus)?;
        times(f, self.tsc, self.ns)
    }
}

impl Line<'_> for BenchEvents {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "BENCH-EVENTS")?;
        let line = BenchEvents {
            pages: words.dec("pages")?,
            vcpus: words.dec("vcpus")?,
            tsc: words.dec("tsc")?,
            ns: words.dec("ns")?,
        };
        words.end()?;
        Some(line)
    }
}

/// Writes [`BenchEvents`].
pub fn write_bench_events(
    out: &mut (impl Sink + ?Sized),
    pages: u32,
    vcpus: u32,
    tsc: u64,
    ns: u64,
) {
    let line = BenchEvents {
        pages,
        vcpus,
        tsc,
        ns,
    };
    let _ = write!(out, "{line}");
}

/// `ECHO-PORT port=<p>`: the unbound port dom0's echo binds (`bench-pingpong`, before
/// `READY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoPort {
    /// The port.
    pub port: u32,
}

impl fmt::Display for EchoPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ECHO-PORT port={}", self.port)
    }
}

impl Line<'_> for EchoPort {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "ECHO-PORT")?;
        let port = words.dec("port")?;
        words.end()?;
        Some(EchoPort { port })
    }
}

/// Writes [`EchoPort`].
pub fn write_echo_port(out: &mut (impl Sink + ?Sized), port: u32) {
    let _ = write!(out, "{}", EchoPort { port });
}

/// `BENCH-PINGPONG rounds=<R> tsc=<ticks> ns=<ns>`: `bench-pingpong`'s total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchPingpong {
    /// The round trips.
    pub rounds: u32,
    /// TSC ticks.
    pub tsc: u64,
    /// Nanoseconds at vCPU 0's scale.
    pub ns: u64,
}

impl fmt::Display for BenchPingpong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BENCH-PINGPONG rounds={}", self.rounds)?;
        times(f, self.tsc, self.ns)
    }
}

impl Line<'_> for BenchPingpong {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "BENCH-PINGPONG")?;
        let line = BenchPingpong {
            rounds: words.dec("rounds")?,
            tsc: words.dec("tsc")?,
            ns: words.dec("ns")?,
        };
        words.end()?;
        Some(line)
    }
}

/// Writes [`BenchPingpong`].
pub fn write_bench_pingpong(out: &mut (impl Sink + ?Sized), rounds: u32, tsc: u64, ns: u64) {
    let _ = write!(out, "{}", BenchPingpong { rounds, tsc, ns });
}

/// `SWEEP phase=<n> tsc=<ticks> ns=<ns>`: one timed sweep of `bench-sweep`, in phase
/// `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sweep {
    /// The phase.
    pub phase: u32,
    /// TSC ticks.
    pub tsc: u64,
    /// Nanoseconds at vCPU 0's scale.
    pub ns: u64,
}

impl fmt::Display for Sweep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SWEEP phase={}", self.phase)?;
        times(f, self.tsc, self.ns)
    }
}

impl Line<'_> for Sweep {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "SWEEP")?;
        let line = Sweep {
            phase: words.dec("phase")?,
            tsc: words.dec("tsc")?,
            ns: words.dec("ns")?,
        };
        words.end()?;
        Some(line)
    }
}

/// Writes [`Sweep`].
pub fn write_sweep(out: &mut (impl Sink + ?Sized), phase: u32, tsc: u64, ns: u64) {
    let _ = write!(out, "{}", Sweep { phase, tsc, ns });
}

/// `BENCH-SCALE mul=<tsc_to_system_mul> shift=<tsc_shift>` (the shift signed): vCPU
/// 0's TSC scale, which turns the samples' ticks into nanoseconds ([`tsc_to_ns`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchScale {
    /// `tsc_to_system_mul`.
    pub mul: u32,
    /// `tsc_shift`.
    pub shift: i8,
}

impl fmt::Display for BenchScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BENCH-SCALE mul={} shift={}", self.mul, self.shift)
    }
}

impl Line<'_> for BenchScale {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "BENCH-SCALE")?;
        let line = BenchScale {
            mul: words.dec("mul")?,
            shift: words.dec("shift")?,
        };
        words.end()?;
        Some(line)
    }
}

/// Writes [`BenchScale`].
pub fn write_bench_scale(out: &mut (impl Sink + ?Sized), mul: u32, shift: i8) {
    let _ = write!(out, "{}", BenchScale { mul, shift });
}

/// `BENCH-SAMPLES from=<from> <ticks> ...`: at most [`SAMPLES_PER_LINE`] samples, the
/// first being sample number `from` (of the run's samples, in order, [`sample_lines`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchSamples {
    /// The number of the line's first sample.
    pub from: usize,
    len: usize,
    ticks: [u64; SAMPLES_PER_LINE],
}

impl BenchSamples {
    /// The line of `samples` from sample `from`; `None` for more than
    /// [`SAMPLES_PER_LINE`] samples.
    pub fn new(from: usize, samples: &[u64]) -> Option<Self> {
        let mut ticks = [0; SAMPLES_PER_LINE];
        ticks.get_mut(..samples.len())?.copy_from_slice(samples);
        Some(BenchSamples {
            from,
            len: samples.len(),
            ticks,
        })
    }

    /// The samples, in ticks.
    pub fn samples(&self) -> &[u64] {
        &self.ticks[..self.len]
    }
}

impl fmt::Display for BenchSamples {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BENCH-SAMPLES from={}", self.from)?;
        self.samples()
            .iter()
            .try_for_each(|ticks| write!(f, " {ticks}"))
    }
}

impl Line<'_> for BenchSamples {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "BENCH-SAMPLES")?;
        let from = words.dec("from")?;
        let mut line = BenchSamples::new(from, &[])?;
        while let Some(word) = words.next() {
            *line.ticks.get_mut(line.len)? = word.parse().ok()?;
            line.len += 1;
        }
        Some(line)
    }
}

/// Writes the [`BenchSamples`] line of `samples` (at most [`SAMPLES_PER_LINE`] by the
/// callers' choice: any further ones are left out), the first being sample number
/// `from`.
pub fn write_bench_samples(out: &mut (impl Sink + ?Sized), from: usize, samples: &[u64]) {
    let samples = &samples[..samples.len().min(SAMPLES_PER_LINE)];
    if let Some(line) = BenchSamples::new(from, samples) {
        let _ = write!(out, "{line}");
    }
}

/// Calls `line` once per `BENCH-SAMPLES` line of `samples`: with the index of the
/// line's first sample and its (at most [`SAMPLES_PER_LINE`]) samples.
pub fn sample_lines(samples: &[u64], mut line: impl FnMut(usize, &[u64])) {
    for (index, chunk) in samples.chunks(SAMPLES_PER_LINE).enumerate() {
        line(index * SAMPLES_PER_LINE, chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    fn text(write: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        write(&mut out);
        out
    }

    #[test]
    fn pages_default_bounds_and_malformed() {
        assert_eq!(pages(b"pattern=bench-events"), Ok(256));
        assert_eq!(pages(b""), Ok(DEFAULT_EVENT_PAGES));
        assert_eq!(pages(b"pattern=bench-events pages=1"), Ok(1));
        assert_eq!(pages(b"pages=512 pattern=bench-events"), Ok(512));
        assert_eq!(pages(b"pages=0042\0\0"), Ok(42));
        assert_eq!(pages(b"page=7 xpages=9 pages"), Ok(256), "no pages= word");
        for bad in [
            b"pages=0".as_slice(),
            b"pages=513",
            b"pages=4294967297",
            b"pages=",
            b"pages=-1",
            b"pages=0x10",
            b"pages=1k",
            b"pages=bad pages=5",
        ] {
            let cmdline = [b"pattern=bench-events ".as_slice(), bad].concat();
            assert_eq!(
                pages(&cmdline),
                Err(BadArg),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn phases_default_bounds_and_malformed() {
        assert_eq!(sweep_phases(b"pattern=bench-sweep"), Ok(8));
        assert_eq!(sweep_phases(b"pattern=bench-sweep phases=1"), Ok(1));
        assert_eq!(sweep_phases(b"phases=64"), Ok(MAX_SWEEP_PHASES));
        assert_eq!(sweep_phases(b"phase=3 rounds=5"), Ok(DEFAULT_SWEEP_PHASES));
        for bad in [
            b"phases=0".as_slice(),
            b"phases=65",
            b"phases=",
            b"phases=+3",
            b"phases=0x4",
            b"phases=x phases=4",
        ] {
            assert_eq!(
                sweep_phases(bad),
                Err(BadArg),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Every phase of the longest sweep has a go value, "GO65" the last.
        let last = MAX_SWEEP_PHASES + 1;
        assert_eq!(
            crate::handshake::go_value(last),
            Some(u64::from(u32::from_le_bytes(*b"GO65")))
        );
        assert_eq!(sweep_writes(8), 128);
        assert_eq!(sweep_writes(MAX_SWEEP_PHASES), 1024);
    }

    #[test]
    fn sweep_bytes_are_write_sweep_s() {
        let plan = crate::patterns::plan(crate::patterns::Pattern::WriteSweep);
        let bytes: Vec<(usize, usize)> = (0..BUFFER_PAGES).map(sweep_byte).collect();
        let write_sweep: Vec<(usize, usize)> =
            plan.touches().iter().map(|t| (t.page, t.offset)).collect();
        assert_eq!(bytes, write_sweep);
    }

    #[test]
    fn two_vcpus_split_the_pages() {
        assert_eq!(vcpu_pages(256, 1, 0), 0..256);
        assert_eq!(vcpu_pages(256, 2, 0), 0..128);
        assert_eq!(vcpu_pages(256, 2, 1), 128..256);
        assert_eq!(vcpu_pages(5, 2, 0), 0..2);
        assert_eq!(vcpu_pages(5, 2, 1), 2..5);
        assert_eq!(vcpu_pages(1, 2, 0), 0..0);
        assert_eq!(vcpu_pages(1, 2, 1), 0..1);
        assert!(vcpu_pages(8, 1, 1).is_empty());
        assert!(vcpu_pages(8, 3, 0).is_empty());
        for pages in 1..=EVENT_AREA_PAGES {
            let (a, b) = (vcpu_pages(pages, 2, 0), vcpu_pages(pages, 2, 1));
            assert_eq!((a.start, a.end, b.end), (0, b.start, pages));
        }
    }

    #[test]
    fn evtchn_bits_follow_the_2l_layout() {
        assert_eq!(evtchn_bit(0), Some((0, 0)));
        assert_eq!(evtchn_bit(5), Some((0, 5)));
        assert_eq!(evtchn_bit(63), Some((0, 63)));
        assert_eq!(evtchn_bit(64), Some((8, 0)));
        assert_eq!(evtchn_bit(130), Some((16, 2)));
        assert_eq!(evtchn_bit(4095), Some((504, 63)));
        assert_eq!(evtchn_bit(4096), None);
        // 64 words of 64 bits each: the 2-level ABI's ports.
        assert_eq!(SHARED_INFO_EVTCHN_MASK - SHARED_INFO_EVTCHN_PENDING, 64 * 8);
    }

    #[test]
    fn line_formats() {
        assert_eq!(
            text(|out| write_bench_area(out, Pfn(0x210), 256)),
            "BENCH-AREA first-pfn=0x210 pages=256"
        );
        assert_eq!(
            text(|out| write_bench_events(out, 256, 1, 9_876_543, 3_292_181)),
            "BENCH-EVENTS pages=256 vcpus=1 tsc=9876543 ns=3292181"
        );
        assert_eq!(
            text(|out| write_bench_events(out, 512, 2, 0, 0)),
            "BENCH-EVENTS pages=512 vcpus=2 tsc=0 ns=0"
        );
        assert_eq!(text(|out| write_echo_port(out, 7)), "ECHO-PORT port=7");
        assert_eq!(
            text(|out| write_bench_pingpong(out, 65536, u64::MAX, 12)),
            "BENCH-PINGPONG rounds=65536 tsc=18446744073709551615 ns=12"
        );
        assert_eq!(
            text(|out| write_sweep(out, 9, 4321, 1440)),
            "SWEEP phase=9 tsc=4321 ns=1440"
        );
        assert_eq!(
            text(|out| write_bench_scale(out, 0xaaaa_aaaa, -1)),
            "BENCH-SCALE mul=2863311530 shift=-1"
        );
        assert_eq!(
            text(|out| write_bench_scale(out, u32::MAX, 3)),
            "BENCH-SCALE mul=4294967295 shift=3"
        );
        assert_eq!(
            text(|out| write_bench_samples(out, 32, &[100, 0, 18_446_744_073_709_551_615])),
            "BENCH-SAMPLES from=32 100 0 18446744073709551615"
        );
        assert_eq!(
            text(|out| write_bench_samples(out, 0, &[])),
            "BENCH-SAMPLES from=0"
        );
    }

    #[test]
    fn lines_read_back() {
        use crate::lines::tests::round_trip;
        round_trip(
            BenchArea {
                first_pfn: 0x210,
                pages: 256,
            },
            "BENCH-AREA first-pfn=0x210 pages=256",
        );
        round_trip(
            BenchEvents {
                pages: 256,
                vcpus: 1,
                tsc: 9_876_543,
                ns: 3_292_181,
            },
            "BENCH-EVENTS pages=256 vcpus=1 tsc=9876543 ns=3292181",
        );
        round_trip(EchoPort { port: 7 }, "ECHO-PORT port=7");
        round_trip(
            BenchPingpong {
                rounds: 65536,
                tsc: u64::MAX,
                ns: 12,
            },
            "BENCH-PINGPONG rounds=65536 tsc=18446744073709551615 ns=12",
        );
        round_trip(
            Sweep {
                phase: 9,
                tsc: 4321,
                ns: 1440,
            },
            "SWEEP phase=9 tsc=4321 ns=1440",
        );
        round_trip(
            BenchScale {
                mul: 0xaaaa_aaaa,
                shift: -1,
            },
            "BENCH-SCALE mul=2863311530 shift=-1",
        );
        round_trip(
            BenchSamples::new(32, &[100, 0, u64::MAX]).unwrap(),
            "BENCH-SAMPLES from=32 100 0 18446744073709551615",
        );
        round_trip(BenchSamples::new(0, &[]).unwrap(), "BENCH-SAMPLES from=0");
        let full: Vec<u64> = (0..16).collect();
        let line = BenchSamples::new(16, &full).unwrap();
        assert_eq!(line.samples(), &full[..]);
        assert_eq!(BenchSamples::parse(&line.to_string()), Some(line));
        let too_many = std::format!("{line} 16");
        assert_eq!(BenchSamples::parse(&too_many), None);
        assert_eq!(BenchSamples::new(0, &[0; 17]), None);
        assert_eq!(BenchSamples::parse("BENCH-SAMPLES from=0 5x"), None);
        assert_eq!(Sweep::parse("SWEEP phase=9 tsc=4321"), None);
        assert_eq!(
            BenchScale::parse("BENCH-SCALE mul=4294967296 shift=0"),
            None
        );
    }

    #[test]
    fn samples_go_16_per_line_in_order() {
        let samples: Vec<u64> = (0..37).map(|i| 1000 + i).collect();
        let mut lines = Vec::new();
        sample_lines(&samples, |from, chunk| {
            lines.push(text(|out| write_bench_samples(out, from, chunk)));
        });
        assert_eq!(lines.len(), 3);
        let expected: Vec<String> = (0..16).map(|i| (1000 + i).to_string()).collect();
        assert_eq!(
            lines[0],
            std::format!("BENCH-SAMPLES from=0 {}", expected.join(" "))
        );
        assert!(lines[1].starts_with("BENCH-SAMPLES from=16 1016 1017 "));
        assert!(lines[1].ends_with(" 1031"));
        assert_eq!(lines[2], "BENCH-SAMPLES from=32 1032 1033 1034 1035 1036");
        let mut count = 0;
        sample_lines(&samples[..16], |_, chunk| count += chunk.len());
        assert_eq!(count, 16);
        sample_lines(&[], |_, _| panic!("no samples, no line"));
    }

    #[test]
    fn samples_convert_as_the_totals() {
        // A 3 GHz TSC: 3000 ticks are 999 ns (truncated), as the host converts them.
        assert_eq!(tsc_to_ns(3000, 0xaaaa_aaaa, -1), 999);
        assert_eq!(MAX_SAMPLES, 65536);
        const { assert!(MAX_SAMPLES >= EVENT_AREA_PAGES) };
    }
}
