//! The start of a pattern: the guest says where its go page is, then waits until dom0
//! writes the go value there.
//!
//! Why: a pattern is only worth running once the listener has restricted the pages and
//! is reading the ring, and the guest cannot see that. So it prints
//! `TEST-GUEST READY go-pfn=0x<pfn>` (the pfn of a page-aligned page of its `.bss`,
//! outside the buffer) and polls that page's first `u64`, volatile, until it reads
//! [`GO`]. Dom0 finds the page's machine frame through the P2M the guest published,
//! maps it and writes [`GO`] once.
//!
//! A pattern with a second phase (`generation`, see `crate::patterns`) hands over
//! again on the same page: it prints `TEST-GUEST READY go-pfn=0x<same pfn> phase=2`
//! and waits the same way for [`GO2`], which dom0 writes over [`GO`] once it has done
//! its part (changed the listener's default access). Later phases go the same way
//! (`pt-hypercall` has 4, `bench-sweep` up to 65): phase `n` waits for `"GO<n>"`.
//! [`go_value`] maps a phase to its value.
//!
//! Between polls the guest yields (`SCHEDOP_yield`, which keeps event delivery masked,
//! unlike `SCHEDOP_block`). It gives up after [`GO_TIMEOUT_NS`] of Xen system time, read
//! from its `vcpu_time_info` in `shared_info` ([`VcpuTimeInfo`]; Xen refreshes it when
//! it schedules the vCPU and at every time calibration, about once a second, so the
//! timeout is accurate to a second or so), or after [`MAX_POLLS`] polls should that
//! clock never move. The same [`wait_until`] bounds the waits between vCPUs in
//! `multi-vcpu`.
//!
//! The `bench` pattern times its writes with the same record, interpolated with the
//! TSC as `xen.h` prescribes ([`VcpuTimeInfo::system_time_at`]), since `system_time`
//! alone moves only when Xen updates it. The per-operation benchmarks
//! ([`crate::bench_ops`]) convert TSC deltas with its scale alone ([`tsc_to_ns`]).

use core::sync::atomic::{fence, Ordering};

/// The go value: `"GO"` as a little-endian `u64` (`b'G'` = 0x47 first).
pub const GO: u64 = u16::from_le_bytes(*b"GO") as u64;

/// The go value of phase 2: `"GO2"` as a little-endian `u64` (0x324f47).
pub const GO2: u64 = u32::from_le_bytes(*b"GO2\0") as u64;

/// The go value of phase 3 (`pt-hypercall`): `"GO3"` as a little-endian `u64`.
pub const GO3: u64 = u32::from_le_bytes(*b"GO3\0") as u64;

/// The go value of phase 4 (`pt-hypercall`): `"GO4"` as a little-endian `u64`.
pub const GO4: u64 = u32::from_le_bytes(*b"GO4\0") as u64;

/// The highest phase [`go_value`] has a value for: `"GO"` and six digits fill the
/// `u64`.
pub const MAX_GO_PHASE: u32 = 999_999;

/// The value the go page must hold before phase `phase` of a pattern starts: [`GO`]
/// for phase 1; for a later phase `n`, the ASCII bytes `"GO<n>"` (`n` in decimal, no
/// padding) as a little-endian `u64`, zero-padded: [`GO2`] to [`GO4`] for phases 2 to 4,
/// `"GO10"` = 0x30314f47 for phase 10, `"GO65"` for phase 65 (`bench-sweep`'s last with
/// `phases=64`). `None` for phase 0 and above [`MAX_GO_PHASE`].
pub const fn go_value(phase: u32) -> Option<u64> {
    if phase == 0 || phase > MAX_GO_PHASE {
        return None;
    }
    if phase == 1 {
        return Some(GO);
    }
    let mut digits = 0;
    let mut rest = phase;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    // "GO" in bytes 0 and 1, the most significant digit in byte 2, the last digit in
    // byte 1 + digits.
    let mut value = GO;
    let mut rest = phase;
    let mut byte = 1 + digits;
    while rest > 0 {
        value |= ((b'0' + (rest % 10) as u8) as u64) << (8 * byte);
        rest /= 10;
        byte -= 1;
    }
    Some(value)
}

/// How long the guest waits for [`GO`] (and for [`GO2`], counted again from the
/// `phase=2` line): 10 minutes, in nanoseconds.
pub const GO_TIMEOUT_NS: u64 = 600 * NS_PER_SEC;

/// Nanoseconds per second.
pub const NS_PER_SEC: u64 = 1_000_000_000;

/// The most polls of any wait, whatever the clock says: 2^32 polls, each a hypercall,
/// take over an hour even on fast hardware.
pub const MAX_POLLS: u64 = 1 << 32;

/// `sizeof(struct vcpu_info)` (`xen_sys`): `shared_info` starts with
/// `vcpu_info[XEN_LEGACY_MAX_VCPUS]`.
pub const VCPU_INFO_SIZE: usize = core::mem::size_of::<xen_sys::vcpu_info>();

/// `offsetof(struct vcpu_info, time)`.
pub const VCPU_INFO_TIME: usize = core::mem::offset_of!(xen_sys::vcpu_info, time);

/// Byte offset in `shared_info` of `vcpu_info[vcpu].time` (legacy vCPUs, below 32).
pub const fn vcpu_time_offset(vcpu: u32) -> usize {
    vcpu as usize * VCPU_INFO_SIZE + VCPU_INFO_TIME
}

/// `struct vcpu_time_info` (`xen.h`, as `xen_sys::vcpu_time_info`; its fields read
/// through `Deref`): Xen's clock for one vCPU, updated with the seqlock protocol of
/// `version`.
#[repr(transparent)]
#[derive(Clone, Copy, Debug)]
pub struct VcpuTimeInfo(pub xen_sys::vcpu_time_info);

impl core::ops::Deref for VcpuTimeInfo {
    type Target = xen_sys::vcpu_time_info;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// `offsetof(struct vcpu_time_info, version)`.
pub const TIME_VERSION: usize = core::mem::offset_of!(xen_sys::vcpu_time_info, version);
/// `offsetof(struct vcpu_time_info, system_time)`.
pub const TIME_SYSTEM_TIME: usize = core::mem::offset_of!(xen_sys::vcpu_time_info, system_time);

impl VcpuTimeInfo {
    /// Xen's system time (nanoseconds since boot) at TSC value `tsc`, interpolated as
    /// `xen.h` says: `system_time + ((tsc - tsc_timestamp) << tsc_shift) *
    /// tsc_to_system_mul >> 32` (a negative shift shifts right). Unlike
    /// `system_time` alone, which only moves when Xen updates the
    /// record (about once a second), this is as fine as the TSC.
    ///
    /// Read `tsc` inside the same [`stable_read`] as the record. A `tsc` before
    /// `tsc_timestamp` (a record newer than the reading) gives `system_time`; the
    /// arithmetic saturates instead of wrapping.
    pub fn system_time_at(&self, tsc: u64) -> u64 {
        let delta = tsc.saturating_sub(self.tsc_timestamp);
        self.system_time
            .saturating_add(tsc_to_ns(delta, self.tsc_to_system_mul, self.tsc_shift))
    }
}

/// Nanoseconds of `ticks` TSC ticks at the scale of a [`VcpuTimeInfo`] (the pvclock
/// conversion of `xen.h`): `ticks` shifted left by `tsc_shift` (right when negative),
/// times `tsc_to_system_mul`, `>> 32`, with a 128-bit product. Saturates instead of
/// wrapping (a shift that moves every bit out gives 0; a result above `u64::MAX` gives
/// `u64::MAX`).
///
/// ```
/// // A 2 GHz TSC as Xen encodes it: shift 0, mul 0.5 in 32.32 fixed point.
/// assert_eq!(test_guest::handshake::tsc_to_ns(2_000, 0x8000_0000, 0), 1_000);
/// ```
pub fn tsc_to_ns(ticks: u64, tsc_to_system_mul: u32, tsc_shift: i8) -> u64 {
    let ticks = u128::from(ticks);
    let shift = i32::from(tsc_shift);
    let shifted = if shift >= 0 {
        ticks.checked_shl(shift.unsigned_abs()).unwrap_or(u128::MAX)
    } else {
        ticks.checked_shr(shift.unsigned_abs()).unwrap_or(0)
    };
    let scaled = shifted.saturating_mul(u128::from(tsc_to_system_mul)) >> 32;
    u64::try_from(scaled).unwrap_or(u64::MAX)
}

/// Reads a value Xen updates under a seqlock: `version()` before and after `body()`,
/// retrying while the version is odd (update in progress) or changed.
pub fn stable_read<T>(mut version: impl FnMut() -> u32, mut body: impl FnMut() -> T) -> T {
    loop {
        let before = version();
        if before % 2 == 0 {
            fence(Ordering::Acquire);
            let value = body();
            fence(Ordering::Acquire);
            if version() == before {
                return value;
            }
        }
        core::hint::spin_loop();
    }
}

/// A wait that ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut {
    /// Polls made.
    pub polls: u64,
    /// Nanoseconds waited, by the clock.
    pub waited_ns: u64,
}

/// Polls `done()` until it is true, calling `pause()` between polls. Gives up when
/// `now_ns()` has moved `timeout_ns` past its first reading, or after `max_polls`
/// polls. Returns the polls made before `done()` was true (0: it already was).
pub fn wait_until(
    mut done: impl FnMut() -> bool,
    mut now_ns: impl FnMut() -> u64,
    mut pause: impl FnMut(),
    timeout_ns: u64,
    max_polls: u64,
) -> Result<u64, TimedOut> {
    let start = now_ns();
    let mut polls = 0;
    loop {
        if done() {
            return Ok(polls);
        }
        polls += 1;
        let waited_ns = now_ns().saturating_sub(start);
        if waited_ns >= timeout_ns || polls >= max_polls {
            return Err(TimedOut { polls, waited_ns });
        }
        pause();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    #[test]
    fn go_is_go_little_endian() {
        assert_eq!(GO, 0x4f47);
        assert_eq!(&GO.to_le_bytes()[..3], b"GO\0");
    }

    #[test]
    fn go2_is_go2_little_endian() {
        assert_eq!(GO2, 0x324f47);
        assert_eq!((GO3, GO4), (0x334f47, 0x344f47));
        assert_eq!(go_value(4), Some(GO4));
        assert_eq!(&GO2.to_le_bytes()[..4], b"GO2\0");
        assert_eq!(go_value(1), Some(GO));
        assert_eq!(go_value(2), Some(GO2));
        assert_eq!(go_value(0), None);
        assert_eq!(go_value(3), Some(GO3));
        assert_ne!(GO, GO2, "phase 2 must not start on phase 1's value");
    }

    #[test]
    fn go_value_of_any_phase_is_go_and_its_decimal_number() {
        assert_eq!(go_value(5), Some(0x354f47));
        assert_eq!(go_value(9), Some(u64::from(u32::from_le_bytes(*b"GO9\0"))));
        assert_eq!(go_value(10), Some(0x3031_4f47));
        assert_eq!(go_value(10), Some(u64::from(u32::from_le_bytes(*b"GO10"))));
        assert_eq!(go_value(65), Some(u64::from(u32::from_le_bytes(*b"GO65"))));
        assert_eq!(go_value(100), Some(u64::from_le_bytes(*b"GO100\0\0\0")));
        assert_eq!(
            go_value(MAX_GO_PHASE),
            Some(u64::from_le_bytes(*b"GO999999"))
        );
        assert_eq!(go_value(MAX_GO_PHASE + 1), None);
        assert_eq!(go_value(u32::MAX), None);
        // Every value is distinct and none is another phase's.
        let values: std::vec::Vec<u64> = (1..=1000).map(|n| go_value(n).unwrap()).collect();
        let mut sorted = values.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), values.len());
        for n in 2..=1000u32 {
            let bytes = go_value(n).unwrap().to_le_bytes();
            let text = std::format!("GO{n}");
            assert_eq!(&bytes[..text.len()], text.as_bytes());
            assert!(bytes[text.len()..].iter().all(|&b| b == 0), "{n}");
        }
    }

    #[test]
    fn tsc_to_ns_is_the_pvclock_scale() {
        assert_eq!(tsc_to_ns(0, 0x8000_0000, 0), 0);
        assert_eq!(tsc_to_ns(2_000, 0x8000_0000, 0), 1_000, "mul 0.5");
        assert_eq!(
            tsc_to_ns(2_000, 0x8000_0000, 1),
            2_000,
            "shift 1 doubles first"
        );
        assert_eq!(
            tsc_to_ns(2_000, 0x8000_0000, -1),
            500,
            "shift -1 halves first"
        );
        assert_eq!(
            tsc_to_ns(3, 0x8000_0000, -1),
            0,
            "the bit shifted out is lost"
        );
        // 3 GHz (shift -1, mul 2/3 * 2^32): 3e9 ticks are a second, truncated.
        assert_eq!(tsc_to_ns(3_000_000_000, 0xaaaa_aaaa, -1), 999_999_999);
        // 1 GHz (shift 1, mul 0.5: the encoding Xen picks for mul >= 2^31).
        assert_eq!(tsc_to_ns(1_000_000_000, 0x8000_0000, 1), 1_000_000_000);
        // The product needs more than 64 bits before the >> 32.
        assert_eq!(tsc_to_ns(u64::MAX, u32::MAX, 0), 0xffff_fffe_ffff_ffff);
        assert_eq!(tsc_to_ns(u64::MAX, u32::MAX, 127), u64::MAX, "saturates");
        assert_eq!(tsc_to_ns(u64::MAX, u32::MAX, -128), 0);
        assert_eq!(tsc_to_ns(u64::MAX, u32::MAX, 32), u64::MAX);
        let t = time(5_000, 1_000, 0xaaaa_aaaa, -1);
        assert_eq!(
            t.system_time_at(5_000 + 3_000_000_000),
            1_000 + tsc_to_ns(3_000_000_000, 0xaaaa_aaaa, -1),
            "the same scale as system_time_at"
        );
    }

    #[test]
    fn time_offsets() {
        assert_eq!(vcpu_time_offset(0), 32);
        assert_eq!(vcpu_time_offset(1), 96);
    }

    fn time(tsc_timestamp: u64, system_time: u64, mul: u32, shift: i8) -> VcpuTimeInfo {
        VcpuTimeInfo(xen_sys::vcpu_time_info {
            version: 0,
            pad0: 0,
            tsc_timestamp,
            system_time,
            tsc_to_system_mul: mul,
            tsc_shift: shift,
            pad1: [0; 3],
        })
    }

    #[test]
    fn system_time_at_scales_the_tsc_delta() {
        // mul 0x8000_0000 is 0.5 in 32.32 fixed point.
        let half = time(5_000, 1_000, 0x8000_0000, 0);
        assert_eq!(half.system_time_at(5_000), 1_000, "no TSC delta");
        assert_eq!(half.system_time_at(7_000), 2_000, "2000 ticks * 0.5");
        let left = time(5_000, 1_000, 0x8000_0000, 1);
        assert_eq!(left.system_time_at(7_000), 3_000, "shift 1 doubles first");
        let right = time(5_000, 1_000, 0x8000_0000, -1);
        assert_eq!(right.system_time_at(7_000), 1_500, "shift -1 halves first");
        // A 3 GHz TSC as Xen encodes it (shift -1, mul 2/3 * 2^32): 3e9 ticks are one
        // second, truncated to the nanosecond below.
        let ghz3 = time(0, 0, 0xaaaa_aaaa, -1);
        assert_eq!(ghz3.system_time_at(3_000_000_000), 999_999_999);
        assert_eq!(
            ghz3.system_time_at(3_000_000_000 + 3),
            999_999_999 + 1,
            "3 ticks: 1 ns"
        );
    }

    #[test]
    fn system_time_at_saturates_instead_of_wrapping() {
        let t = time(10_000, 77, 0x8000_0000, 0);
        assert_eq!(t.system_time_at(9_000), 77, "TSC before the record's");
        assert_eq!(t.system_time_at(0), 77);
        let wide = time(0, 5, u32::MAX, 127);
        assert_eq!(wide.system_time_at(u64::MAX), u64::MAX);
        let narrow = time(0, 5, u32::MAX, -128);
        assert_eq!(narrow.system_time_at(u64::MAX), 5, "shifted out entirely");
        let late = time(0, u64::MAX - 1, u32::MAX, 0);
        assert_eq!(late.system_time_at(1 << 40), u64::MAX);
    }

    #[test]
    fn stable_read_retries_odd_and_changed_versions() {
        // Versions seen: 3 (odd: retry), 4 then 6 (changed: retry), 6 and 6: done.
        let versions = [3u32, 4, 6, 6, 6];
        let next = Cell::new(0);
        let bodies = Cell::new(0);
        let value = stable_read(
            || {
                let v = versions[next.get()];
                next.set(next.get() + 1);
                v
            },
            || {
                bodies.set(bodies.get() + 1);
                bodies.get() * 100
            },
        );
        assert_eq!(value, 200, "the second body read is the consistent one");
        assert_eq!(next.get(), 5);
    }

    #[test]
    fn wait_until_returns_when_done() {
        let polls = Cell::new(0);
        let pauses = Cell::new(0);
        let result = wait_until(
            || {
                polls.set(polls.get() + 1);
                polls.get() == 4
            },
            || 0,
            || pauses.set(pauses.get() + 1),
            GO_TIMEOUT_NS,
            MAX_POLLS,
        );
        assert_eq!(result, Ok(3));
        assert_eq!(
            pauses.get(),
            3,
            "a pause between polls, none after the last"
        );
        assert_eq!(wait_until(|| true, || 0, || panic!(), 1, 1), Ok(0));
    }

    #[test]
    fn wait_until_times_out_by_clock_or_by_polls() {
        // The clock moves 100 s per reading: the first reading is the start, so the
        // sixth poll sees 600 s.
        let clock = Cell::new(0u64);
        let result = wait_until(
            || false,
            || {
                let now = clock.get();
                clock.set(now + 100 * NS_PER_SEC);
                now
            },
            || {},
            GO_TIMEOUT_NS,
            MAX_POLLS,
        );
        assert_eq!(
            result,
            Err(TimedOut {
                polls: 6,
                waited_ns: 600 * NS_PER_SEC
            })
        );

        let result = wait_until(|| false, || 5, || {}, GO_TIMEOUT_NS, 10);
        assert_eq!(
            result,
            Err(TimedOut {
                polls: 10,
                waited_ns: 0
            }),
            "a clock that never moves"
        );

        let result = wait_until(|| false, || 0, || {}, 0, MAX_POLLS);
        assert_eq!(result.unwrap_err().polls, 1);
    }

    #[test]
    fn a_clock_going_back_does_not_end_the_wait() {
        let clock = Cell::new(1_000u64);
        let polls = Cell::new(0);
        let result = wait_until(
            || {
                polls.set(polls.get() + 1);
                polls.get() == 3
            },
            || {
                clock.set(clock.get() - 10);
                clock.get()
            },
            || {},
            1,
            MAX_POLLS,
        );
        assert_eq!(result, Ok(2));
    }
}
