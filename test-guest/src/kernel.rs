//! The kernel proper, built only for `target_os = "none"` (see the crate's doc for
//! what it does and prints): `kernel_main` and the ordinary workload here; the ELF
//! notes, entry and hypercall page in `boot`; the console (ring and `console_io`),
//! `FAIL` lines, shutdown and the panic handler in `output`; the buffer, the P2M list
//! and page walks in `memory`; the P2M's publication and the `p2m` mode in `p2m`;
//! the `ring-probe` mode in `ring_probe`; the `pattern=<name>` access patterns in
//! `patterns`.

use core::fmt::Write;
use test_guest::cmdline;
use test_guest::frames::Pfn;
use test_guest::hypercall::{self, HypercallPage, ShutdownReason, XenError};
use test_guest::lines::{Banner, Done, Frames, Heartbeat};
use test_guest::start_info::StartInfo;
use test_guest::workload::{self, BUFFER_GFN, BUFFER_PAGES};

mod boot;
mod memory;
mod output;
mod p2m;
mod patterns;
mod ring_probe;

// What the patterns (`super::super::...`) use besides this module's own items.
use boot::{hypercall_page_ready, xen};
use memory::{buffer_byte, l1_slot, l2_and_l1_slots, p2m, BssPage, SHARED_INFO};
use output::{fail, line, shutdown};

/// Most vCPU ids asked about when counting.
const MAX_VCPUS: u32 = 1024;

/// The Rust entry point, called by `_start` with Xen's `start_info`: `rsi` at
/// entry, the virtual address of the builder's start_info page (item d of
/// xen.h's start-of-day layout), mapped read-write for the life of the domain
/// and never written by Xen after boot, hence `&'static`.
extern "C" fn kernel_main(start_info: &'static StartInfo) -> ! {
    if !hypercall_page_ready() {
        // No hypercalls, hence no console and no shutdown: crash loudly.
        // SAFETY: `ud2` only raises #UD, which (no trap table) makes Xen crash
        // the domain.
        unsafe { core::arch::asm!("ud2", options(noreturn)) };
    }
    if !output::open(start_info) {
        fail("console ring not found", XenError::ENOENT);
    }
    if !start_info.magic_ok() {
        fail("start_info magic", XenError::EINVAL);
    }

    let hv = xen();
    let vcpus = match hypercall::count_vcpus(&hv, MAX_VCPUS) {
        Ok(n) => n,
        Err(e) => fail("vcpu_op is_up", e),
    };
    line(|out| {
        let cmdline = start_info.cmdline();
        let _ = write!(out, "{}", Banner { vcpus, cmdline });
    });

    let first = Pfn::from_virt(buffer_byte(0, 0) as u64);
    if first.0 != BUFFER_GFN {
        fail("buffer not at BUFFER_GFN", XenError::EINVAL);
    }
    line(|out| {
        let _ = write!(out, "BUFFER gfn={:#x} pages={}", first.0, BUFFER_PAGES);
    });

    // The buffer's machine frames, which a PV listener names in XENMEM_access_op.
    let frames = p2m(start_info).and_then(|p2m| {
        let start = usize::try_from(BUFFER_GFN).ok()?;
        p2m.get(start..start + BUFFER_PAGES)
    });
    match frames.and_then(|frames| frames.try_into().ok()) {
        Some(mfns) => line(|out| {
            let _ = write!(out, "{}", Frames { mfns });
        }),
        None => fail("buffer frames not in the P2M", XenError::EINVAL),
    }

    p2m::publish_p2m(&hv, start_info);

    if cmdline::has_word(start_info.cmdline(), cmdline::P2M) {
        p2m::print_p2m_runs(start_info);
    }
    if let Some(name) = cmdline::arg(start_info.cmdline(), cmdline::PATTERN) {
        patterns::run(&hv, start_info, name, vcpus)
    }
    let sum = workload();
    line(|out| {
        let _ = write!(out, "{}", Done { checksum: sum });
    });
    if cmdline::has_word(start_info.cmdline(), cmdline::RING_PROBE) {
        ring_probe::ring_probe(&hv, start_info);
    }
    if cmdline::has_word(start_info.cmdline(), cmdline::HEARTBEAT) {
        heartbeat(&hv)
    }
    shutdown(ShutdownReason::Poweroff)
}

/// Writes the pattern into the buffer and reads it back; returns its checksum, or
/// crashes the domain with a FAIL line naming the first wrong byte.
fn workload() -> u64 {
    workload::fill(|page, offset, byte| {
        // SAFETY: `page < BUFFER_PAGES` and `offset < PAGE_SIZE`, so the byte is
        // inside BUFFER, which nothing else references. Volatile: the write must
        // reach memory (it is what mem_access watches).
        unsafe { buffer_byte(page, offset).write_volatile(byte) }
    });
    let checked = workload::verify(|page, offset| {
        // SAFETY: as above; volatile so the value is read from memory, not
        // forwarded from the writes.
        unsafe { buffer_byte(page, offset).read_volatile() }
    });
    match checked {
        Ok(sum) => sum,
        Err(m) => {
            line(|out| {
                let _ = write!(
                    out,
                    "FAIL page={} offset={} expected={:#x} got={:#x}",
                    m.page, m.offset, m.expected, m.got
                );
            });
            shutdown(ShutdownReason::Crash)
        }
    }
}

/// The `heartbeat` mode: the workload again and again, a HEARTBEAT line every
/// [`ROUNDS_PER_BEAT`] rounds, yielding the CPU between rounds. Never returns: the
/// scenario destroys the guest.
fn heartbeat(hv: &HypercallPage) -> ! {
    const ROUNDS_PER_BEAT: u64 = 64;
    let mut round: u64 = 0;
    loop {
        workload();
        round += 1;
        if round % ROUNDS_PER_BEAT == 0 {
            line(|out| {
                let beat = round / ROUNDS_PER_BEAT;
                let _ = write!(out, "{}", Heartbeat { beat });
            });
        }
        if let Err(e) = hypercall::sched_yield(hv) {
            fail("sched_op yield", e);
        }
    }
}
