//! The `bench` pattern's numbers and its line: how many rounds of writes it times
//! ([`rounds`], from `rounds=<decimal>` on the command line) and the `BENCH` line that
//! reports the time they took ([`write_bench`]).
//!
//! After the go-page handshake the guest writes one byte to each of its 16 buffer
//! pages in order, at offset `0x10 * page` (the touches of `write-sweep`, one round,
//! see [`crate::patterns`]), `rounds` times, with no `TOUCH` lines. It reads Xen's
//! system time just before the first write and just after the last
//! ([`VcpuTimeInfo::system_time_at`](crate::handshake::VcpuTimeInfo::system_time_at):
//! vCPU 0's `vcpu_time_info` in `shared_info`, interpolated with the TSC, in
//! nanoseconds), then prints
//!
//! ```text
//! TEST-GUEST BENCH rounds=<R> pages=16 writes=<R*16> ns=<elapsed nanoseconds> tsc=<TSC ticks>
//! TEST-GUEST PATTERN-DONE bench touches=<R*16>
//! ```
//!
//! and powers off. Run unmonitored, monitored with every access allowed, and monitored
//! with the pages restricted (an event per write), the `ns` values compare the cost of
//! the same writes.
//!
//! [`rounds`] also reads `bench-xen-copy`'s hypercalls ([`write_bench_xen_copy`]) and
//! `bench-pingpong`'s round trips. The per-operation benchmarks `bench-events`,
//! `bench-pingpong` and `bench-sweep`, which time each operation with the TSC alone and
//! print per-operation samples, are in [`crate::bench_ops`].

use core::fmt;

use crate::cmdline;
use crate::lines::{Line, Words};
use crate::text::Sink;
use crate::workload::BUFFER_PAGES;

/// Rounds when the command line has no `rounds=`.
pub const DEFAULT_ROUNDS: u32 = 256;

/// The most rounds `rounds=` may ask for (65536 rounds are 1 Mi writes).
pub const MAX_ROUNDS: u32 = 65536;

/// `rounds=` is there but is not a decimal from 1 to [`MAX_ROUNDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadRounds;

/// The rounds asked for by `cmdline`: [`DEFAULT_ROUNDS`] without a `rounds=` word, its
/// value if the first such word is `rounds=<decimal>` with a value from 1 to
/// [`MAX_ROUNDS`] ([`cmdline::dec_arg`]), [`BadRounds`] otherwise (0 included: a
/// benchmark of no writes measures nothing).
pub fn rounds(cmdline: &[u8]) -> Result<u32, BadRounds> {
    if cmdline::arg(cmdline, cmdline::ROUNDS).is_none() {
        return Ok(DEFAULT_ROUNDS);
    }
    cmdline::dec_arg(cmdline, cmdline::ROUNDS)
        .and_then(|value| u32::try_from(value).ok())
        .filter(|value| (1..=MAX_ROUNDS).contains(value))
        .ok_or(BadRounds)
}

/// The writes of `rounds` rounds: one per buffer page and round.
pub const fn writes(rounds: u32) -> u64 {
    rounds as u64 * BUFFER_PAGES as u64
}

/// `BENCH rounds=<R> pages=16 writes=<R*16> ns=<ns> tsc=<ticks>`: the `bench`
/// pattern's result, `ns` the nanoseconds the `rounds` rounds took.
///
/// `tsc` is the time-stamp counter's advance over the same loop: the guest's own clock,
/// monotonic even where Xen's interpolated system time is not (nested under TCG, the TSC
/// scaling Xen calibrated can make a short interval come out as 0 ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bench {
    /// The rounds.
    pub rounds: u32,
    /// The pages written per round (16).
    pub pages: usize,
    /// All the writes, [`writes`]`(rounds)`.
    pub writes: u64,
    /// Nanoseconds, Xen's system time.
    pub ns: u64,
    /// TSC ticks.
    pub tsc: u64,
}

impl fmt::Display for Bench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BENCH rounds={} pages={} writes={} ns={} tsc={}",
            self.rounds, self.pages, self.writes, self.ns, self.tsc
        )
    }
}

impl Line<'_> for Bench {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "BENCH")?;
        let line = Bench {
            rounds: words.dec("rounds")?,
            pages: words.dec("pages")?,
            writes: words.dec("writes")?,
            ns: words.dec("ns")?,
            tsc: words.dec("tsc")?,
        };
        words.end()?;
        Some(line)
    }
}

/// Writes the [`Bench`] line of `rounds` rounds.
pub fn write_bench(out: &mut (impl Sink + ?Sized), rounds: u32, ns: u64, tsc: u64) {
    let line = Bench {
        rounds,
        pages: BUFFER_PAGES,
        writes: writes(rounds),
        ns,
        tsc,
    };
    let _ = write!(out, "{line}");
}

/// `BENCH-XEN-COPY calls=<R> failed=<n> ns=<ns> tsc=<ticks>`: the `bench-xen-copy`
/// pattern's `R` hypercalls (`XENVER_extraversion`, Xen writing 16 bytes into buffer
/// page `i % 16` at 0x40), `failed` of them with a non-zero result, timed as
/// [`Bench`]'s loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchXenCopy {
    /// The hypercalls.
    pub calls: u32,
    /// Those with a non-zero result.
    pub failed: u64,
    /// Nanoseconds, Xen's system time.
    pub ns: u64,
    /// TSC ticks.
    pub tsc: u64,
}

impl fmt::Display for BenchXenCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BENCH-XEN-COPY calls={} failed={} ns={} tsc={}",
            self.calls, self.failed, self.ns, self.tsc
        )
    }
}

impl Line<'_> for BenchXenCopy {
    fn parse(body: &str) -> Option<Self> {
        let mut words = Words::after(body, "BENCH-XEN-COPY")?;
        let line = BenchXenCopy {
            calls: words.dec("calls")?,
            failed: words.dec("failed")?,
            ns: words.dec("ns")?,
            tsc: words.dec("tsc")?,
        };
        words.end()?;
        Some(line)
    }
}

/// Writes [`BenchXenCopy`].
pub fn write_bench_xen_copy(
    out: &mut (impl Sink + ?Sized),
    calls: u32,
    failed: u64,
    ns: u64,
    tsc: u64,
) {
    let line = BenchXenCopy {
        calls,
        failed,
        ns,
        tsc,
    };
    let _ = write!(out, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patterns::{self, Pattern};
    use std::string::String;

    fn bench_line(rounds: u32, ns: u64) -> String {
        let mut out = String::new();
        write_bench(&mut out, rounds, ns, 12345);
        out
    }

    #[test]
    fn xen_copy_line() {
        let mut out = String::new();
        write_bench_xen_copy(&mut out, 10_000, 0, 77, 12345);
        assert_eq!(out, "BENCH-XEN-COPY calls=10000 failed=0 ns=77 tsc=12345");
    }

    #[test]
    fn rounds_default_when_absent() {
        assert_eq!(rounds(b""), Ok(256));
        assert_eq!(rounds(b"pattern=bench"), Ok(DEFAULT_ROUNDS));
        assert_eq!(rounds(b"pattern=bench xrounds=5 roundsx=7"), Ok(256));
        assert_eq!(
            rounds(b"pattern=bench rounds"),
            Ok(256),
            "a word without = is no rounds= word"
        );
    }

    #[test]
    fn rounds_within_bounds() {
        assert_eq!(rounds(b"pattern=bench rounds=1"), Ok(1));
        assert_eq!(rounds(b"rounds=1024 pattern=bench"), Ok(1024));
        assert_eq!(rounds(b"pattern=bench rounds=65536"), Ok(MAX_ROUNDS));
        assert_eq!(rounds(b"pattern=bench rounds=00042\0\0"), Ok(42));
    }

    #[test]
    fn rounds_out_of_bounds_or_malformed_are_refused() {
        for bad in [
            b"rounds=0".as_slice(),
            b"rounds=65537",
            b"rounds=4294967296",
            b"rounds=4294967297",
            b"rounds=99999999999999999999999",
            b"rounds=",
            b"rounds=-1",
            b"rounds=0x100",
            b"rounds=1k",
            b"rounds=bad rounds=5",
        ] {
            let cmdline = [b"pattern=bench ".as_slice(), bad].concat();
            assert_eq!(
                rounds(&cmdline),
                Err(BadRounds),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn writes_are_rounds_times_pages() {
        assert_eq!(writes(1), 16);
        assert_eq!(writes(DEFAULT_ROUNDS), 4096);
        assert_eq!(writes(MAX_ROUNDS), 1_048_576);
    }

    #[test]
    fn bench_line_format() {
        assert_eq!(
            bench_line(256, 1_234_567),
            "BENCH rounds=256 pages=16 writes=4096 ns=1234567 tsc=12345"
        );
        assert_eq!(
            bench_line(1, 0),
            "BENCH rounds=1 pages=16 writes=16 ns=0 tsc=12345"
        );
        assert_eq!(
            bench_line(65536, u64::MAX),
            "BENCH rounds=65536 pages=16 writes=1048576 ns=18446744073709551615 tsc=12345"
        );
    }

    #[test]
    fn one_round_is_write_sweep() {
        let round = patterns::plan(Pattern::Bench);
        assert_eq!(round, patterns::plan(Pattern::WriteSweep));
        assert_eq!(round.touches().len(), BUFFER_PAGES);
        assert_eq!(writes(1), round.touches().len() as u64);
        let mut out = String::new();
        patterns::write_pattern_done(&mut out, Pattern::Bench, writes(256) as usize);
        assert_eq!(out, "PATTERN-DONE bench touches=4096");
    }

    #[test]
    fn bench_lines_read_back() {
        use crate::lines::tests::round_trip;
        round_trip(
            Bench {
                rounds: 256,
                pages: 16,
                writes: 4096,
                ns: 1_234_567,
                tsc: 12345,
            },
            "BENCH rounds=256 pages=16 writes=4096 ns=1234567 tsc=12345",
        );
        round_trip(
            BenchXenCopy {
                calls: 4096,
                failed: 1,
                ns: u64::MAX,
                tsc: 7,
            },
            "BENCH-XEN-COPY calls=4096 failed=1 ns=18446744073709551615 tsc=7",
        );
        let mut out = String::new();
        write_bench_xen_copy(&mut out, 4096, 1, u64::MAX, 7);
        assert_eq!(
            out,
            "BENCH-XEN-COPY calls=4096 failed=1 ns=18446744073709551615 tsc=7"
        );
        assert_eq!(
            Bench::parse("BENCH-XEN-COPY calls=1 failed=0 ns=0 tsc=0"),
            None
        );
        assert_eq!(
            BenchXenCopy::parse("BENCH rounds=1 pages=16 writes=16 ns=0 tsc=1"),
            None
        );
        assert_eq!(Bench::parse("BENCH rounds=1 pages=16 writes=16 ns=0"), None);
    }
}
