//! Xen writing into a page the guest may not write: the hypercalls, checks and lines of
//! the `xen-copy-race`, `runstate-area` and `bench-xen-copy` patterns.
//!
//! Why: a monitored guest is assumed hostile. Xen's own writes into its memory (a
//! hypercall's result, the runstate area it updates on every context switch) must land
//! without opening the page to the guest: while Xen writes a read-only page for vCPU 1,
//! vCPU 0's writes to the same page must still fault and be reported. These patterns
//! make Xen write such a page many times while another vCPU keeps trying to write it,
//! and count what landed.
//!
//! Mirrors Xen 4.17's `xen/include/public/vcpu.h` (`VCPUOP_get_runstate_info`,
//! `VCPUOP_register_runstate_memory_area`, `struct vcpu_runstate_info`) and
//! `version.h` (`XENVER_extraversion`); the calls are `do_vcpu_op` in
//! `xen/common/domain.c`, whose results Xen copies with `copy_to_guest` (or, for the
//! runstate area, `__copy_to_guest` from `update_runstate_area()` in
//! `xen/arch/x86/domain.c`, at every context switch of the vCPU).
//!
//! # The page
//!
//! [`RACE_PAGE`] of the buffer: Xen writes at [`XEN_OFFSET`] (48 bytes at most), the
//! guest's vCPU 0 writes one byte at [`MARKER_OFFSET`], far from Xen's bytes so that a
//! byte that changed tells who wrote it.
//!
//! # Lines
//!
//! ```text
//! TEST-GUEST RACE-XEN <pattern> calls=<n> landed=<n> right=<n> seen-early=<n>   (vCPU 1, when done)
//! TEST-GUEST RACE-BAD <pattern> call=<i> rc=<rc> word=0x<first 8 bytes>        (vCPU 1, first wrong result only)
//! TEST-GUEST RACE-GUEST <pattern> stores=<n> early=<n>                          (vCPU 0, at the end)
//! ```
//!
//! `calls`: hypercalls that had Xen write the page (`xen-copy-race`) or yields
//! (`runstate-area`); `landed`: results found in the page (a copy's bytes, or a runstate
//! area whose `state_entry_time` moved on); `right`: results that are also correct;
//! `seen-early`: vCPU 1's reads of the page that found vCPU 0's marker before vCPU 1
//! was done (must be 0). `stores`: vCPU 0's store instructions that completed;
//! `early`: those that completed before vCPU 1 was done (must be 0: the page is
//! read-only until dom0 makes it writable, after vCPU 1's `RACE-XEN` line).

use core::fmt;

use crate::hypercall::{self, Hypercall, HypercallNr, Hypervisor, VcpuId, XenError};
use crate::lines::{Line, Words};
use crate::text::Sink;

pub use crate::hypercall::{runstate_running, RunstateInfo, RUNSTATE_SIZE};

/// The buffer page Xen writes and the guest tries to write.
pub const RACE_PAGE: usize = 10;
/// Where in [`RACE_PAGE`] Xen writes (a hypercall's result, the runstate area).
pub const XEN_OFFSET: usize = 0;
/// Where in [`RACE_PAGE`] vCPU 0 writes its marker byte (the page index, as every
/// write of the patterns).
pub const MARKER_OFFSET: usize = 0x800;
/// vCPU 1's hypercalls (`xen-copy-race`) or yields (`runstate-area`).
pub const RACE_CALLS: u64 = 10_000;

/// `HYPERVISOR_vcpu_op(VCPUOP_get_runstate_info, vcpu, buf)`: Xen's raw result.
///
/// # Safety
///
/// `buf` must be valid for Xen to write [`RUNSTATE_SIZE`] bytes (it need not be
/// writable by the guest: Xen writes it).
pub unsafe fn vcpu_get_runstate_info<H: Hypervisor + ?Sized>(
    hv: &H,
    vcpu: VcpuId,
    buf: *mut RunstateInfo,
) -> i64 {
    let call = Hypercall::new(
        HypercallNr::VCPU_OP,
        [
            u64::from(xen_abi::VCPUOP_get_runstate_info),
            u64::from(vcpu.0),
            buf as u64,
            0,
            0,
        ],
    );
    // SAFETY: the only pointer is `buf`, valid for Xen's write (this fn's contract).
    unsafe { hv.hypercall(call) }
}

/// `HYPERVISOR_vcpu_op(VCPUOP_register_runstate_memory_area, vcpu, &area)` with
/// `area.addr.v = area_va`: Xen writes the runstate there now and at every change.
///
/// # Safety
///
/// `area_va` must stay valid for Xen's writes of [`RUNSTATE_SIZE`] bytes for as long
/// as the domain lives (nothing here unregisters it), and nothing Rust relies on may
/// live there.
pub unsafe fn register_runstate_area<H: Hypervisor + ?Sized>(
    hv: &H,
    vcpu: VcpuId,
    area_va: u64,
) -> Result<(), XenError> {
    // `struct vcpu_register_runstate_memory_area { union { ...; uint64_t p; } addr; }`.
    let area: u64 = area_va;
    let call = Hypercall::new(
        HypercallNr::VCPU_OP,
        [
            u64::from(xen_abi::VCPUOP_register_runstate_memory_area),
            u64::from(vcpu.0),
            core::ptr::from_ref(&area) as u64,
            0,
            0,
        ],
    );
    // SAFETY: `area` is a live u64 Xen only reads; what Xen then writes at `area_va`
    // is this fn's contract.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// What a check of one of Xen's writes found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The result is in the page.
    pub landed: bool,
    /// And it is what Xen should have written.
    pub right: bool,
}

/// Checks `xen-copy-race`'s hypercall results, read back from the page.
///
/// Calls alternate so that each one's bytes differ from what the previous one left:
/// even calls are `XENVER_extraversion` (16 bytes, compared with [`Self::reference`],
/// the same call into an ordinary buffer before the race), odd calls
/// `VCPUOP_get_runstate_info` of the calling vCPU (48 bytes: `state` running, which
/// reads as 0 where the string's first 4 bytes are not, and times that never go back).
#[derive(Clone, Copy, Debug)]
pub struct CopyChecker {
    /// The extra version string, as Xen copied it into an ordinary buffer.
    pub reference: [u8; hypercall::XEN_EXTRAVERSION_LEN],
    last: RunstateInfo,
}

impl CopyChecker {
    /// A checker for `reference`; `None` if its first 4 bytes are 0 (an odd call's
    /// result could not be told from it).
    pub fn new(reference: [u8; hypercall::XEN_EXTRAVERSION_LEN]) -> Option<Self> {
        (reference[..4] != [0; 4]).then_some(Self {
            reference,
            last: RunstateInfo::default(),
        })
    }

    /// Whether call `index` is `XENVER_extraversion` (else `VCPUOP_get_runstate_info`).
    pub const fn is_extraversion(index: u64) -> bool {
        index % 2 == 0
    }

    /// Checks call `index`'s result: its `rc` and the 48 bytes at [`XEN_OFFSET`] read
    /// back after it.
    pub fn check(&mut self, index: u64, rc: i64, bytes: &[u8; RUNSTATE_SIZE]) -> Verdict {
        if Self::is_extraversion(index) {
            let landed = bytes[..hypercall::XEN_EXTRAVERSION_LEN] == self.reference;
            return Verdict {
                landed,
                right: landed && rc == 0,
            };
        }
        let info = runstate_from_bytes(bytes);
        let landed = runstate_running(&info);
        let right = landed && rc == 0 && info.state_entry_time > 0 && monotonic(&self.last, &info);
        if right {
            self.last = info;
        }
        Verdict { landed, right }
    }
}

/// Whether `now` follows `last` (a later reading of the same vCPU's runstate): no time
/// goes back.
pub fn monotonic(last: &RunstateInfo, now: &RunstateInfo) -> bool {
    now.state_entry_time >= last.state_entry_time
        && now
            .time
            .iter()
            .zip(last.time)
            .all(|(&now, last)| now >= last)
}

/// Checks `runstate-area`'s readings of the area after each yield, on the vCPU whose
/// area it is (so Xen never writes it during a reading).
#[derive(Clone, Copy, Debug, Default)]
pub struct RunstateWatch {
    last: RunstateInfo,
}

impl RunstateWatch {
    /// Starts from the reading right after registration.
    pub const fn new(first: RunstateInfo) -> Self {
        Self { last: first }
    }

    /// Checks a reading: `landed` when Xen updated the area since the last reading
    /// (`state_entry_time` moved on), `right` when the reading is sound (the reader is
    /// running, and no time went back).
    pub fn check(&mut self, now: RunstateInfo) -> Verdict {
        let landed = now.state_entry_time > self.last.state_entry_time;
        let right = runstate_running(&now) && monotonic(&self.last, &now);
        if right {
            self.last = now;
        }
        Verdict { landed, right }
    }
}

/// The [`RunstateInfo`] whose bytes (little-endian, as Xen's copy left them) are `bytes`.
pub fn runstate_from_bytes(bytes: &[u8; RUNSTATE_SIZE]) -> RunstateInfo {
    zerocopy::transmute!(*bytes)
}

/// vCPU 1's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenCounts {
    /// Hypercalls or yields made.
    pub calls: u64,
    /// Results found in the page.
    pub landed: u64,
    /// Results found and right.
    pub right: u64,
    /// Reads of the page that found vCPU 0's marker while the page was read-only.
    pub seen_early: u64,
}

impl XenCounts {
    /// Counts one call's verdict.
    pub fn count(&mut self, verdict: Verdict) {
        self.calls += 1;
        self.landed += u64::from(verdict.landed);
        self.right += u64::from(verdict.right);
    }
}

/// `RACE-XEN <pattern> calls=<n> landed=<n> right=<n> seen-early=<n>`: vCPU 1's
/// account of Xen's writes ([`XenCounts`]) in `xen-copy-race` or `runstate-area`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaceXen<'a> {
    /// The pattern's name.
    pub pattern: &'a str,
    /// The counts.
    pub counts: XenCounts,
}

impl fmt::Display for RaceXen<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = &self.counts;
        write!(
            f,
            "RACE-XEN {} calls={} landed={} right={} seen-early={}",
            self.pattern, counts.calls, counts.landed, counts.right, counts.seen_early
        )
    }
}

impl<'a> Line<'a> for RaceXen<'a> {
    fn parse(body: &'a str) -> Option<Self> {
        let mut words = Words::after(body, "RACE-XEN")?;
        let pattern = words.next()?;
        let counts = XenCounts {
            calls: words.dec("calls")?,
            landed: words.dec("landed")?,
            right: words.dec("right")?,
            seen_early: words.dec("seen-early")?,
        };
        words.end()?;
        Some(RaceXen { pattern, counts })
    }
}

/// Writes [`RaceXen`].
pub fn write_xen_line(out: &mut (impl Sink + ?Sized), pattern: &str, counts: &XenCounts) {
    let counts = *counts;
    let _ = write!(out, "{}", RaceXen { pattern, counts });
}

/// `RACE-BAD <pattern> call=<i> rc=<rc> word=0x<hex>`: the first wrong result Xen
/// left, of call `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaceBad<'a> {
    /// The pattern's name.
    pub pattern: &'a str,
    /// The call's index.
    pub call: u64,
    /// Its result.
    pub rc: i64,
    /// The word found in the page.
    pub word: u64,
}

impl fmt::Display for RaceBad<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RACE-BAD {} call={} rc={} word={:#x}",
            self.pattern, self.call, self.rc, self.word
        )
    }
}

impl<'a> Line<'a> for RaceBad<'a> {
    fn parse(body: &'a str) -> Option<Self> {
        let mut words = Words::after(body, "RACE-BAD")?;
        let line = RaceBad {
            pattern: words.next()?,
            call: words.dec("call")?,
            rc: words.dec("rc")?,
            word: words.hex("word")?,
        };
        words.end()?;
        Some(line)
    }
}

/// Writes [`RaceBad`].
pub fn write_bad_line(
    out: &mut (impl Sink + ?Sized),
    pattern: &str,
    call: u64,
    rc: i64,
    word: u64,
) {
    let line = RaceBad {
        pattern,
        call,
        rc,
        word,
    };
    let _ = write!(out, "{line}");
}

/// `RACE-GUEST <pattern> stores=<n> early=<n>`: vCPU 0's completed stores, `early` of
/// them while the page was read-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaceGuest<'a> {
    /// The pattern's name.
    pub pattern: &'a str,
    /// Stores completed.
    pub stores: u64,
    /// Of them, while the page was read-only.
    pub early: u64,
}

impl fmt::Display for RaceGuest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RACE-GUEST {} stores={} early={}",
            self.pattern, self.stores, self.early
        )
    }
}

impl<'a> Line<'a> for RaceGuest<'a> {
    fn parse(body: &'a str) -> Option<Self> {
        let mut words = Words::after(body, "RACE-GUEST")?;
        let line = RaceGuest {
            pattern: words.next()?,
            stores: words.dec("stores")?,
            early: words.dec("early")?,
        };
        words.end()?;
        Some(line)
    }
}

/// Writes [`RaceGuest`].
pub fn write_guest_line(out: &mut (impl Sink + ?Sized), pattern: &str, stores: u64, early: u64) {
    let line = RaceGuest {
        pattern,
        stores,
        early,
    };
    let _ = write!(out, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    /// `RUNSTATE_running`, as `vcpu_runstate_info`'s `int state`.
    const RUNNING: i32 = xen_abi::RUNSTATE_running as i32;

    /// What `write` puts on a line.
    fn line(write: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        write(&mut out);
        out
    }

    /// The area's reading and the marker do not overlap.
    #[test]
    fn runstate_layout_matches_xen() {
        assert_eq!(RUNSTATE_SIZE, 48);
        const { assert!(MARKER_OFFSET >= XEN_OFFSET + RUNSTATE_SIZE) };
    }

    fn bytes_of(info: &RunstateInfo) -> [u8; RUNSTATE_SIZE] {
        zerocopy::transmute!(*info)
    }

    #[test]
    fn copy_checker_tells_each_call_from_the_last() {
        let reference = *b".5-pv-memaccess\0";
        assert!(CopyChecker::new([0; 16]).is_none());
        let mut checker = CopyChecker::new(reference).unwrap();
        let mut page = [0u8; RUNSTATE_SIZE];
        page[..16].copy_from_slice(&reference);
        assert_eq!(
            checker.check(0, 0, &page),
            Verdict {
                landed: true,
                right: true
            }
        );
        // The runstate call did not land: the string is still there.
        assert!(!checker.check(1, 0, &page).landed);
        let running = RunstateInfo {
            state: RUNNING,
            __bindgen_padding_0: [0xad, 0xde, 0, 0],
            state_entry_time: 100,
            time: [50, 1, 0, 0],
        };
        assert!(checker.check(1, 0, &bytes_of(&running)).right);
        // An extraversion call that did not land leaves the runstate's bytes.
        assert!(!checker.check(2, 0, &bytes_of(&running)).landed);
        // Time going back is landed but wrong; a failed call is wrong.
        let back = RunstateInfo {
            time: [49, 1, 0, 0],
            ..running
        };
        assert_eq!(
            checker.check(3, 0, &bytes_of(&back)),
            Verdict {
                landed: true,
                right: false
            }
        );
        assert!(!checker.check(3, -14, &bytes_of(&running)).right);
        assert!(checker.check(4, 0, &page).right);
    }

    #[test]
    fn runstate_watch_counts_updates() {
        let first = RunstateInfo {
            state: RUNNING,
            __bindgen_padding_0: [0; 4],
            state_entry_time: 10,
            time: [5, 0, 0, 0],
        };
        let mut watch = RunstateWatch::new(first);
        assert_eq!(
            watch.check(first),
            Verdict {
                landed: false,
                right: true
            }
        );
        let later = RunstateInfo {
            state_entry_time: 20,
            time: [6, 3, 0, 0],
            ..first
        };
        assert_eq!(
            watch.check(later),
            Verdict {
                landed: true,
                right: true
            }
        );
        let runnable = RunstateInfo {
            state: 1,
            state_entry_time: 30,
            ..later
        };
        assert!(!watch.check(runnable).right);
        assert!(!watch.check(first).right, "time went back");
    }

    #[test]
    fn lines() {
        let mut counts = XenCounts::default();
        counts.count(Verdict {
            landed: true,
            right: true,
        });
        counts.count(Verdict {
            landed: true,
            right: false,
        });
        assert_eq!(
            line(|out| write_xen_line(out, "xen-copy-race", &counts)),
            "RACE-XEN xen-copy-race calls=2 landed=2 right=1 seen-early=0"
        );
        assert_eq!(
            line(|out| write_bad_line(out, "xen-copy-race", 7, -14, 0x2d70)),
            "RACE-BAD xen-copy-race call=7 rc=-14 word=0x2d70"
        );
        assert_eq!(
            line(|out| write_guest_line(out, "runstate-area", 1, 0)),
            "RACE-GUEST runstate-area stores=1 early=0"
        );
    }

    #[test]
    fn lines_read_back() {
        use crate::lines::tests::round_trip;
        let counts = XenCounts {
            calls: 10_000,
            landed: 10_000,
            right: 9_999,
            seen_early: 0,
        };
        round_trip(
            RaceXen {
                pattern: "xen-copy-race",
                counts,
            },
            "RACE-XEN xen-copy-race calls=10000 landed=10000 right=9999 seen-early=0",
        );
        round_trip(
            RaceBad {
                pattern: "xen-copy-race",
                call: 7,
                rc: -14,
                word: 0x2d70,
            },
            "RACE-BAD xen-copy-race call=7 rc=-14 word=0x2d70",
        );
        round_trip(
            RaceGuest {
                pattern: "runstate-area",
                stores: 1,
                early: 0,
            },
            "RACE-GUEST runstate-area stores=1 early=0",
        );
        assert_eq!(RaceGuest::parse("RACE-GUEST runstate-area stores=1"), None);
        assert_eq!(
            RaceXen::parse("RACE-GUEST runstate-area stores=1 early=0"),
            None
        );
    }
}
