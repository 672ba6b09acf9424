//! The `ring-probe` mode: mapping the monitor ring's frame by every route of
//! `test_guest::probe`.

use core::fmt::Write;
use test_guest::cmdline;
use test_guest::frames::Mfn;
use test_guest::hypercall::{HypercallPage, ShutdownReason, XenError};
use test_guest::probe;
use test_guest::start_info::StartInfo;
use test_guest::workload::BUFFER_PAGES;

use super::memory::{buffer_byte, l1_slot, p2m};
use super::output::{fail, line, shutdown};

/// The `ring-probe` mode: tries to map the frame named by `ring=0x<mfn>` at the
/// buffer's last page by every route of `test_guest::probe`, one `PROBE` line each,
/// then `PROBES DONE`. Crashes (FAIL line) only when the command line has no usable
/// `ring=`, when the page walk fails, or when undoing a success fails.
pub(super) fn ring_probe(hv: &HypercallPage, si: &StartInfo) {
    let Some(ring) = cmdline::hex_arg(si.cmdline(), cmdline::RING) else {
        fail("ring-probe needs ring=0x<mfn>", XenError::EINVAL)
    };
    let Some(p2m) = p2m(si) else {
        fail("no P2M list", XenError::EINVAL)
    };
    let va = buffer_byte(BUFFER_PAGES - 1, 0) as u64;
    let slot = l1_slot(si, p2m, va);
    let mut env = GuestEnv {
        target: va as *const u64,
        l1e: slot.entry_virt as *const u64,
    };
    // SAFETY: the target is the buffer's last page, which only `workload` touches
    // (through raw pointers), and not while the probes run; `slot` was just read
    // from the running page tables and maps it. `probe::run` puts the original
    // entry back before it returns Ok; otherwise the domain crashes below.
    let target = unsafe { probe::Target::new(va, slot) };
    let done = probe::run(hv, &mut env, Mfn(ring), &target, |outcome| {
        line(|out| outcome.write(out));
    });
    if let Err(e) = done {
        line(|out| {
            let _ = write!(
                out,
                "FAIL probe {} undo: {} error={}",
                e.route.name(),
                e.what,
                e.error.errno()
            );
        });
        shutdown(ShutdownReason::Crash)
    }
    line(|out| {
        let _ = write!(out, "{}", probe::ProbesDone);
    });
}

/// The probes' view of memory: the buffer's last page and its L1 entry.
///
/// # Invariants
///
/// `target` is the first byte of the buffer's last page (page aligned) and `l1e`
/// the virtual address of the L1 entry that maps it, in a bootstrap page table.
struct GuestEnv {
    target: *const u64,
    l1e: *const u64,
}

impl probe::Env for GuestEnv {
    fn read_target(&mut self) -> u64 {
        // SAFETY: `probe` reads the target only while its L1 entry is present (the
        // trait's contract), so the page is mapped: to the buffer page or to the
        // frame a probe just mapped there. Aligned (type invariant). Nothing holds a
        // reference into BUFFER (only raw pointers); volatile because the frame may
        // be one Xen writes.
        unsafe { self.target.read_volatile() }
    }

    fn read_l1e(&mut self) -> u64 {
        // SAFETY: by the type invariant `l1e` is an aligned entry of a bootstrap
        // page table, mapped read-only for the life of the domain; volatile because
        // Xen writes it.
        unsafe { self.l1e.read_volatile() }
    }
}
