//! Console output: the ring console plus the `console_io` mirror, one lock for
//! whole lines, `FAIL` lines, shutdown, and the panic handler.

use core::cell::UnsafeCell;
use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use test_guest::console::{Console, ConsoleRing, EvtchnBackend, XenconsInterface};
use test_guest::frames::{self, Pfn};
use test_guest::hypercall::{self, HypercallPage, ShutdownReason, XenError};
use test_guest::start_info::StartInfo;
use test_guest::text::{LineBuf, Sink};

use super::boot::{hypercall_page_ready, xen};
use super::memory::{p2m, read_m2p};

/// Yields in a row without the console reader making progress before the
/// console gives up (a dead xenconsoled must not hang the guest forever).
const CONSOLE_MAX_WAITS: u32 = 1_000_000;

/// The ring console plus the `console_io` mirror.
pub(super) struct Output {
    ring: Option<Console<EvtchnBackend<HypercallPage>>>,
    mirror: LineBuf<128>,
}

impl Output {
    fn mirror(&mut self, bytes: &[u8]) {
        let hv = xen();
        // `-EPERM` on a release Xen: the ring is the real console.
        self.mirror.push(bytes, |piece| {
            let _ = hypercall::console_io_write(&hv, piece);
        });
    }

    fn end_line(&mut self) {
        if let Some(ring) = &mut self.ring {
            ring.end_line();
        }
        self.mirror(b"\n");
        let hv = xen();
        self.mirror.drain(|piece| {
            let _ = hypercall::console_io_write(&hv, piece);
        });
    }

    fn flush(&mut self) {
        if let Some(ring) = &mut self.ring {
            ring.flush();
        }
    }

    /// Bytes the ring console could not deliver (its reader stopped, or the
    /// ring is corrupt), if any.
    fn lost(&self) -> Option<u64> {
        let ring = self.ring.as_ref()?;
        (ring.dropped() > 0 || ring.corrupt().is_some()).then(|| ring.dropped())
    }
}

impl core::fmt::Write for Output {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if let Some(ring) = &mut self.ring {
            ring.write(s.as_bytes());
        }
        self.mirror(s.as_bytes());
        Ok(())
    }
}

/// The one `Output`, reachable from the panic handler.
///
/// # Invariants
///
/// `output` is only accessed inside [`Slot::with`] or [`Slot::with_wait`] while
/// `busy` is held: `busy` is the lock that serialises console output between vCPUs.
struct Slot {
    busy: AtomicBool,
    output: UnsafeCell<Option<Output>>,
}

// SAFETY: `with` and `with_wait` hand out the contents to one user at a time (the
// `busy` flag, taken with Acquire and released with Release, so a vCPU sees what
// the previous holder wrote), so neither a second vCPU (`multi-vcpu`) nor a panic
// inside `with` can create a second `&mut`. No events are delivered to any vCPU.
unsafe impl Sync for Slot {}

impl Slot {
    /// Runs `f` on the contents, unless they are already in use (a panic while
    /// printing): then returns `None` without running it.
    fn with<R>(&self, f: impl FnOnce(&mut Option<Output>) -> R) -> Option<R> {
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: `busy` was clear and is now ours: no other reference to the
        // contents exists until we clear it below.
        let result = f(unsafe { &mut *self.output.get() });
        self.busy.store(false, Ordering::Release);
        Some(result)
    }

    /// Runs `f` on the contents once no other vCPU uses them (a spin lock). Not
    /// for the panic handler: a panic while this vCPU holds the lock would spin
    /// forever.
    fn with_wait<R>(&self, f: impl FnOnce(&mut Option<Output>) -> R) -> R {
        while self
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: `busy` was clear and is now ours, as in `with`.
        let result = f(unsafe { &mut *self.output.get() });
        self.busy.store(false, Ordering::Release);
        result
    }
}

static OUTPUT: Slot = Slot {
    busy: AtomicBool::new(false),
    output: UnsafeCell::new(None),
};

/// Prints one `TEST-GUEST ...` line; `body` writes what follows the prefix. Waits
/// while another vCPU prints, so lines never interleave.
pub(super) fn line(body: impl FnOnce(&mut Output)) {
    OUTPUT.with_wait(|output| {
        if let Some(out) = output {
            out.put_str(test_guest::lines::PREFIX);
            body(out);
            out.end_line();
        }
    });
}

/// Prints `TEST-GUEST FAIL <what> error=<errno>` and crashes.
pub(super) fn fail(what: &str, error: XenError) -> ! {
    line(|out| {
        let _ = write!(out, "FAIL {what} error={}", error.errno());
    });
    shutdown(ShutdownReason::Crash)
}

/// Lets the console drain, then asks Xen to end the domain. Never returns.
///
/// A poweroff becomes a crash if the ring console lost output: the harness
/// must not take a clean exit for a pass when the lines it needs are missing.
pub(super) fn shutdown(mut reason: ShutdownReason) -> ! {
    let lost = OUTPUT
        .with(|output| {
            output.as_mut().and_then(|out| {
                out.flush();
                out.lost()
            })
        })
        .flatten();
    if let (ShutdownReason::Poweroff, Some(lost)) = (reason, lost) {
        let mut out = XenConsole;
        let _ = writeln!(out, "TEST-GUEST FAIL console lost={lost}");
        reason = ShutdownReason::Crash;
    }
    let hv = xen();
    let _ = hypercall::sched_shutdown(&hv, reason);
    // Only reached if Xen refused: stay harmless (never SCHEDOP_block, which
    // would unmask events this kernel cannot take).
    loop {
        let _ = hypercall::sched_yield(&hv);
    }
}

/// The console ring named by `start_info`, if its frame can be found.
fn console_ring(si: &StartInfo) -> Option<Console<EvtchnBackend<HypercallPage>>> {
    let p2m = p2m(si)?;
    let pfn: Pfn = frames::resolve_pfn(si.console_mfn(), read_m2p, p2m)?;
    let intf = pfn.to_virt() as *mut XenconsInterface;
    // SAFETY: the console page is a bootstrap element (item f of the same
    // layout), mapped read-write at VIRT_BASE + pfn * 4096 for the life of the
    // domain; xenconsoled is its only other user and follows the ring protocol;
    // this is the only producer, created once.
    let ring = unsafe { ConsoleRing::new(intf) };
    let backend = EvtchnBackend::new(xen(), si.console_evtchn(), CONSOLE_MAX_WAITS);
    Some(Console::new(ring, backend))
}

/// Sets up the console: the ring named by `si` (if its frame can be found) and the
/// `console_io` mirror. Returns whether the ring was found.
pub(super) fn open(si: &StartInfo) -> bool {
    let ring = console_ring(si);
    let have_ring = ring.is_some();
    OUTPUT.with(|output| {
        *output = Some(Output {
            ring,
            mirror: LineBuf::new(),
        });
    });
    have_ring
}

/// Xen's own console alone (`console_io`), for when `OUTPUT` is unusable.
struct XenConsole;

impl core::fmt::Write for XenConsole {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // Best effort: refused by a release Xen.
        let _ = hypercall::console_io_write(&xen(), s.as_bytes());
        Ok(())
    }
}

/// Writes `PANIC <file>:<line>` (without the `TEST-GUEST ` prefix).
fn panic_body(out: &mut impl Sink, info: &PanicInfo<'_>) {
    out.put_str("PANIC ");
    match info.location() {
        Some(loc) => {
            let _ = write!(out, "{}:{}", loc.file(), loc.line());
        }
        None => out.put_str("unknown"),
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let printed = OUTPUT
        .with(|output| match output {
            Some(out) => {
                out.put_str("TEST-GUEST ");
                panic_body(out, info);
                out.end_line();
                true
            }
            None => false,
        })
        .unwrap_or(false);
    if !printed && hypercall_page_ready() {
        // The panic came from inside `OUTPUT` (or before it existed): the ring
        // may be half-written, so only Xen's console gets the line.
        let mut out = XenConsole;
        out.put_str("TEST-GUEST ");
        panic_body(&mut out, info);
        out.put_str("\n");
    }
    shutdown(ShutdownReason::Crash)
}
