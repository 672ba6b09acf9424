//! The PV console: the producer side of the `out` ring of `struct xencons_interface`.
//!
//! The page layout is `xen/include/public/io/console.h`'s ([`XenconsInterface`],
//! `xen_abi`'s `xencons_interface`: `xen_sys` lacks it); `MASK_XENCONS_IDX` and
//! the ring protocol of `xen/include/public/io/ring.h` as Linux's
//! `drivers/tty/hvc/hvc_xen.c` (`__write_console`) follows it: read `out_cons`, copy
//! bytes to `out[MASK(prod++)]`, make them visible, then publish `out_prod`, then
//! notify the console's event channel. Indexes are free-running `u32`s; the ring
//! holds `out_prod - out_cons` (wrapping) unread bytes. The reader is xenconsoled in
//! dom0, which writes `out_cons`.
//!
//! When the ring is full the writer notifies and waits ([`Backend::wait`], a
//! `SCHEDOP_yield` in the guest) instead of dropping output; a backend that gives up
//! makes the rest of that write count as [`Console::dropped`].

use core::ptr::addr_of_mut;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::hypercall::{evtchn_send, sched_yield, EvtchnPort, Hypervisor};

pub use crate::hypercall::{XenconsInterface, IN_RING_SIZE, OUT_RING_SIZE};

/// `MASK_XENCONS_IDX(idx, out)`: the slot of free-running index `idx` in `out`.
pub const fn mask_out(idx: u32) -> usize {
    (idx & (OUT_RING_SIZE - 1)) as usize
}

/// Free bytes in the `out` ring, or `None` if the indexes are more than one ring
/// apart (the reader wrote a bogus `out_cons`).
///
/// ```
/// use test_guest::console::out_free;
///
/// assert_eq!(out_free(10, 0), Some(2038));
/// assert_eq!(out_free(3, u32::MAX), Some(2044)); // prod wrapped around
/// ```
pub const fn out_free(prod: u32, cons: u32) -> Option<u32> {
    let used = prod.wrapping_sub(cons);
    if used > OUT_RING_SIZE {
        None
    } else {
        Some(OUT_RING_SIZE - used)
    }
}

/// The ring's indexes do not make sense: `out_prod - out_cons` exceeds the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingCorrupt {
    /// Our `out_prod`.
    pub prod: u32,
    /// The reader's `out_cons`.
    pub cons: u32,
}

/// The `out` ring of a console page.
///
/// # Invariants
///
/// `intf` points to a `xencons_interface` valid for reads and writes for the life
/// of this value, shared only with a reader that follows the ring protocol (it
/// writes only `out_cons` and reads `out` slots between `out_cons` and
/// `out_prod`), and this value is its only producer.
#[derive(Debug)]
pub struct ConsoleRing {
    intf: *mut XenconsInterface,
}

impl ConsoleRing {
    /// Takes over the producer side of the ring at `intf`.
    ///
    /// # Safety
    ///
    /// `intf` must be valid for reads and writes of a `XenconsInterface` for as long
    /// as the returned value lives, shared only with a protocol-following reader,
    /// and no other producer may exist.
    pub const unsafe fn new(intf: *mut XenconsInterface) -> Self {
        Self { intf }
    }

    fn out_cons(&self) -> &AtomicU32 {
        // SAFETY: by the type invariant `intf` is valid for the life of `self`, and
        // `out_cons` is a 4-byte aligned `u32` inside it that both sides access
        // only as a whole word.
        unsafe { AtomicU32::from_ptr(addr_of_mut!((*self.intf).out_cons)) }
    }

    fn out_prod(&self) -> &AtomicU32 {
        // SAFETY: as in `out_cons`; we are the only writer of `out_prod`.
        unsafe { AtomicU32::from_ptr(addr_of_mut!((*self.intf).out_prod)) }
    }

    /// Copies as much of `bytes` as fits and publishes it; returns how many bytes
    /// were taken (0 when the ring is full). Does not notify.
    pub fn write_some(&mut self, bytes: &[u8]) -> Result<usize, RingCorrupt> {
        // Acquire: the slots the reader released by advancing `out_cons` are only
        // overwritten after we have seen the new `out_cons`.
        let cons = self.out_cons().load(Ordering::Acquire);
        let prod = self.out_prod().load(Ordering::Relaxed);
        let free = out_free(prod, cons).ok_or(RingCorrupt { prod, cons })?;
        let n = bytes.len().min(free as usize);
        // SAFETY: by the type invariant `intf` is valid; `out` is a byte array in it.
        let out = unsafe { addr_of_mut!((*self.intf).out) }.cast::<u8>();
        let mut idx = prod;
        for &byte in &bytes[..n] {
            // SAFETY: `mask_out` is below `OUT_RING_SIZE`, inside `out`; the slot is
            // between `out_prod` and `out_cons + OUT_RING_SIZE`, so the reader does
            // not look at it until we publish `out_prod` below.
            unsafe { out.add(mask_out(idx)).write_volatile(byte) };
            idx = idx.wrapping_add(1);
        }
        // Release: the bytes are visible before the index that publishes them
        // (`wmb()` in the C ring protocol).
        self.out_prod().store(idx, Ordering::Release);
        Ok(n)
    }

    /// Bytes published but not yet consumed by the reader.
    pub fn unconsumed(&self) -> Result<u32, RingCorrupt> {
        let cons = self.out_cons().load(Ordering::Acquire);
        let prod = self.out_prod().load(Ordering::Relaxed);
        match out_free(prod, cons) {
            Some(free) => Ok(OUT_RING_SIZE - free),
            None => Err(RingCorrupt { prod, cons }),
        }
    }
}

/// How the console waits for its reader.
pub trait Backend {
    /// Tells the reader there is new output (`EVTCHNOP_send`).
    fn notify(&mut self);

    /// The ring is full, or being drained: lets the reader run. `attempt` counts
    /// the waits since the reader last made progress, from 0. Returns `false` to
    /// give up.
    fn wait(&mut self, attempt: u32) -> bool;
}

/// Re-notify the reader every this many fruitless waits, in case it needs a nudge.
const RENOTIFY_EVERY: u32 = 1024;

/// A line-oriented console over a [`ConsoleRing`].
#[derive(Debug)]
pub struct Console<B> {
    ring: ConsoleRing,
    backend: B,
    dropped: u64,
    corrupt: Option<RingCorrupt>,
}

impl<B: Backend> Console<B> {
    /// A console writing to `ring`, waiting and notifying through `backend`.
    pub const fn new(ring: ConsoleRing, backend: B) -> Self {
        Self {
            ring,
            backend,
            dropped: 0,
            corrupt: None,
        }
    }

    /// Writes `bytes`, waiting for room when the ring is full. Notifies only when it
    /// has to wait; [`end_line`](Self::end_line) notifies.
    pub fn write(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        let mut attempt = 0;
        while !rest.is_empty() {
            if self.corrupt.is_some() {
                break;
            }
            match self.ring.write_some(rest) {
                Err(corrupt) => self.corrupt = Some(corrupt),
                Ok(0) => {
                    if attempt % RENOTIFY_EVERY == 0 {
                        self.backend.notify();
                    }
                    if !self.backend.wait(attempt) {
                        break;
                    }
                    attempt += 1;
                }
                Ok(n) => {
                    rest = &rest[n..];
                    attempt = 0;
                }
            }
        }
        self.dropped += rest.len() as u64;
    }

    /// Ends the line with `\n` and notifies the reader.
    pub fn end_line(&mut self) {
        self.write(b"\n");
        self.backend.notify();
    }

    /// Notifies, then waits until the reader has consumed everything. Returns
    /// whether it did before the backend gave up (`false` also if the ring is
    /// corrupt).
    pub fn flush(&mut self) -> bool {
        self.backend.notify();
        let mut attempt = 0;
        let mut last = u32::MAX;
        loop {
            match self.ring.unconsumed() {
                Ok(0) => return true,
                Ok(left) => {
                    if left < last {
                        last = left;
                        attempt = 0;
                    }
                }
                Err(corrupt) => {
                    self.corrupt = Some(corrupt);
                    return false;
                }
            }
            if attempt > 0 && attempt % RENOTIFY_EVERY == 0 {
                self.backend.notify();
            }
            if !self.backend.wait(attempt) {
                return false;
            }
            attempt += 1;
        }
    }

    /// Bytes given up on (the backend stopped waiting, or the ring is corrupt).
    pub const fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The bad indexes, if the reader ever corrupted the ring.
    pub const fn corrupt(&self) -> Option<RingCorrupt> {
        self.corrupt
    }
}

impl<B: Backend> core::fmt::Write for Console<B> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write(s.as_bytes());
        Ok(())
    }
}

/// The guest's [`Backend`]: notifies with `EVTCHNOP_send` on the console's event
/// channel and waits with `SCHEDOP_yield`, giving up after `max_waits` fruitless
/// yields in a row (so a dead xenconsoled cannot hang the guest forever).
#[derive(Debug)]
pub struct EvtchnBackend<H> {
    hv: H,
    port: EvtchnPort,
    max_waits: u32,
}

impl<H: Hypervisor> EvtchnBackend<H> {
    /// A backend for the console on `port`.
    pub const fn new(hv: H, port: EvtchnPort, max_waits: u32) -> Self {
        Self {
            hv,
            port,
            max_waits,
        }
    }
}

impl<H: Hypervisor> Backend for EvtchnBackend<H> {
    fn notify(&mut self) {
        // A failed notify leaves the bytes in the ring for the reader's next look.
        let _ = evtchn_send(&self.hv, self.port);
    }

    fn wait(&mut self, attempt: u32) -> bool {
        if attempt >= self.max_waits {
            return false;
        }
        // A failed yield just makes this a busy wait.
        let _ = sched_yield(&self.hv);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_xen;
    use crate::hypercall::HypercallNr;
    use crate::text::Sink;
    use std::boxed::Box;
    use std::vec::Vec;

    /// A console page in ordinary memory, freed on drop.
    struct Page(*mut XenconsInterface);

    impl Page {
        fn new(prod_cons: u32) -> Self {
            let mut intf = Box::new(XenconsInterface::default());
            intf.out_cons = prod_cons;
            intf.out_prod = prod_cons;
            Self(Box::into_raw(intf))
        }

        fn ring(&self) -> ConsoleRing {
            // SAFETY: the page outlives the ring in every test and the tests' reader
            // only advances `out_cons` over published bytes.
            unsafe { ConsoleRing::new(self.0) }
        }

        fn prod(&self) -> u32 {
            // SAFETY: `self.0` is a live, exclusively test-owned allocation.
            unsafe { (*self.0).out_prod }
        }

        fn cons(&self) -> u32 {
            // SAFETY: as in `prod`.
            unsafe { (*self.0).out_cons }
        }

        fn set_cons(&self, cons: u32) {
            // SAFETY: as in `prod`.
            unsafe { (*self.0).out_cons = cons }
        }

        fn slot(&self, idx: u32) -> u8 {
            // SAFETY: as in `prod`.
            unsafe { (*self.0).out[mask_out(idx)] as u8 }
        }

        /// Consumes up to `max` bytes like xenconsoled.
        fn consume(&self, max: u32) -> Vec<u8> {
            let (prod, mut cons) = (self.prod(), self.cons());
            let mut out = Vec::new();
            while cons != prod && (out.len() as u32) < max {
                out.push(self.slot(cons));
                cons = cons.wrapping_add(1);
            }
            self.set_cons(cons);
            out
        }
    }

    impl Drop for Page {
        fn drop(&mut self) {
            // SAFETY: `self.0` came from `Box::into_raw` and no ring outlives the page.
            drop(unsafe { Box::from_raw(self.0) });
        }
    }

    /// A backend whose reader drains `per_wait` bytes on each wait, up to `max`
    /// waits in a row, recording everything it read.
    struct Reader<'a> {
        page: &'a Page,
        per_wait: u32,
        max_waits: u32,
        notifies: u32,
        waits: u32,
        read: Vec<u8>,
    }

    impl<'a> Reader<'a> {
        fn new(page: &'a Page, per_wait: u32, max_waits: u32) -> Self {
            Self {
                page,
                per_wait,
                max_waits,
                notifies: 0,
                waits: 0,
                read: Vec::new(),
            }
        }
    }

    impl Backend for &mut Reader<'_> {
        fn notify(&mut self) {
            self.notifies += 1;
        }

        fn wait(&mut self, attempt: u32) -> bool {
            if attempt >= self.max_waits {
                return false;
            }
            self.waits += 1;
            let bytes = self.page.consume(self.per_wait);
            self.read.extend(bytes);
            true
        }
    }

    #[test]
    fn index_arithmetic() {
        assert_eq!(mask_out(0), 0);
        assert_eq!(mask_out(2047), 2047);
        assert_eq!(mask_out(2048), 0);
        assert_eq!(mask_out(u32::MAX), 2047);
        assert_eq!(out_free(0, 0), Some(2048));
        assert_eq!(out_free(100, 0), Some(1948));
        assert_eq!(out_free(2048, 0), Some(0));
        assert_eq!(out_free(2049, 0), None);
        assert_eq!(out_free(5, u32::MAX - 4), Some(2048 - 10), "prod wrapped");
        assert_eq!(out_free(0, 1), None, "cons ahead of prod");
    }

    #[test]
    fn write_some_publishes_bytes_and_index() {
        let page = Page::new(0);
        let mut ring = page.ring();
        assert_eq!(ring.write_some(b"hello"), Ok(5));
        assert_eq!((page.prod(), page.cons()), (5, 0));
        assert_eq!(ring.unconsumed(), Ok(5));
        assert_eq!(page.consume(100), b"hello");
        assert_eq!(ring.unconsumed(), Ok(0));
    }

    #[test]
    fn full_ring_takes_nothing_more() {
        let page = Page::new(0);
        let mut ring = page.ring();
        let big = [b'x'; 3000];
        assert_eq!(ring.write_some(&big), Ok(2048));
        assert_eq!(ring.write_some(b"y"), Ok(0));
        assert_eq!(page.prod(), 2048);
        page.consume(10);
        assert_eq!(ring.write_some(&big), Ok(10));
        assert_eq!(page.prod(), 2058);
        assert_eq!(page.slot(2048), b'x', "slot 0 reused after the wrap");
    }

    #[test]
    fn wraps_at_2048() {
        let page = Page::new(2040);
        let mut ring = page.ring();
        assert_eq!(ring.write_some(b"0123456789abcdef"), Ok(16));
        assert_eq!(page.prod(), 2056);
        // SAFETY: the page is live and test-owned.
        let out = unsafe { (*page.0).out }.map(|byte| byte as u8);
        assert_eq!(&out[2040..2048], b"01234567");
        assert_eq!(&out[0..8], b"89abcdef");
        assert_eq!(page.consume(100), b"0123456789abcdef");
    }

    #[test]
    fn u32_index_overflow() {
        let start = u32::MAX - 9;
        let page = Page::new(start);
        let mut ring = page.ring();
        let text: Vec<u8> = (0..100u8).collect();
        assert_eq!(ring.write_some(&text), Ok(100));
        assert_eq!(page.prod(), 90, "prod wrapped past u32::MAX");
        assert_eq!(ring.unconsumed(), Ok(100));
        assert_eq!(page.consume(1000), text);
        // A full ring across the u32 wrap still reports full.
        page.set_cons(u32::MAX - 999);
        assert_eq!(ring.unconsumed(), Ok(1090));
        assert_eq!(ring.write_some(&[0; 2048]), Ok(958));
        assert_eq!(ring.write_some(b"z"), Ok(0));
    }

    #[test]
    fn corrupt_indexes_are_refused() {
        let page = Page::new(0);
        page.set_cons(4000);
        let mut ring = page.ring();
        let bad = RingCorrupt {
            prod: 0,
            cons: 4000,
        };
        assert_eq!(ring.write_some(b"x"), Err(bad));
        assert_eq!(ring.unconsumed(), Err(bad));
        assert_eq!(page.prod(), 0, "nothing published");
    }

    #[test]
    fn console_waits_for_the_reader_instead_of_dropping() {
        let page = Page::new(0);
        let mut reader = Reader::new(&page, 512, 10);
        let text: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        {
            let mut console = Console::new(page.ring(), &mut reader);
            console.write(&text);
            console.end_line();
            assert!(console.flush());
            assert_eq!(console.dropped(), 0);
        }
        let mut expected = text.clone();
        expected.push(b'\n');
        assert_eq!(reader.read, expected);
        // 5001 bytes through a 2048-byte ring drained 512 at a time.
        assert_eq!(reader.waits, 10);
        assert!(
            reader.notifies >= 2,
            "notified when stalled and at end of line"
        );
    }

    #[test]
    fn console_gives_up_when_the_backend_does() {
        let page = Page::new(0);
        let mut reader = Reader::new(&page, 0, 3);
        {
            let mut console = Console::new(page.ring(), &mut reader);
            console.write(&[b'a'; 2100]);
            assert_eq!(console.dropped(), 52);
            assert!(!console.flush(), "nobody reads: flush gives up");
        }
        assert_eq!(reader.waits, 6, "3 waits in write, 3 in flush");
        assert!(reader.read.is_empty());
    }

    #[test]
    fn console_stops_on_corrupt_ring() {
        let page = Page::new(0);
        page.set_cons(9999);
        let mut reader = Reader::new(&page, 0, 3);
        let mut console = Console::new(page.ring(), &mut reader);
        console.put_str("lost");
        assert_eq!(console.dropped(), 4);
        assert_eq!(
            console.corrupt(),
            Some(RingCorrupt {
                prod: 0,
                cons: 9999
            })
        );
        assert!(!console.flush());
    }

    #[test]
    fn evtchn_backend_sends_and_yields_then_gives_up() {
        let mut backend = EvtchnBackend::new(fake_xen::answering(0), EvtchnPort(3), 2);
        backend.notify();
        assert!(backend.wait(0));
        assert!(backend.wait(1));
        assert!(!backend.wait(2));
        let calls = backend.hv.calls();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[0].nr, HypercallNr::EVENT_CHANNEL_OP);
        assert_eq!(calls[0].args[0], u64::from(xen_sys::EVTCHNOP_send));
        assert_eq!(calls[1].nr, HypercallNr::SCHED_OP);
        assert_eq!(calls[1].args[0], u64::from(xen_sys::SCHEDOP_yield));
        assert_eq!(calls[2], calls[1]);
    }
}
