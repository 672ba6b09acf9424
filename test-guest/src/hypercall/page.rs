//! The hypercall page: Xen's entries, called with the one `asm!` block (only for
//! `target_os = "none"`).

use super::{Hypercall, Hypervisor};

/// The hypercall page Xen fills in at domain build time (the page named by
/// `XEN_ELFNOTE_HYPERCALL_PAGE`).
///
/// # Invariants
///
/// `base` is the start of a 4 KiB page that Xen initialised with hypercall
/// entries, mapped executable for the life of the kernel.
#[derive(Clone, Copy, Debug)]
pub struct HypercallPage {
    base: *const u8,
}

impl HypercallPage {
    /// Wraps the hypercall page at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the page named by `XEN_ELFNOTE_HYPERCALL_PAGE`, already
    /// initialised by Xen.
    pub const unsafe fn new(base: *const u8) -> Self {
        Self { base }
    }
}

impl Hypervisor for HypercallPage {
    unsafe fn hypercall(&self, call: Hypercall) -> i64 {
        let regs = call.registers();
        let entry = self.base.wrapping_add(call.entry_offset());
        let ret: i64;
        // SAFETY: by the type invariant `entry` is a hypercall entry of Xen's page
        // (`entry_offset` stays inside it by `HypercallNr`'s invariant). The entry
        // saves `rcx`/`r11` around `syscall` and returns with `ret`; `rax` holds
        // the result and the argument registers may be clobbered by a debug Xen.
        // Memory may be read or written through pointer arguments, which the
        // caller guarantees valid (this fn's contract); the asm block is not
        // `nomem`, so the compiler assumes both.
        unsafe {
            core::arch::asm!(
                "call {entry}",
                entry = in(reg) entry,
                inlateout("rdi") regs.rdi => _,
                inlateout("rsi") regs.rsi => _,
                inlateout("rdx") regs.rdx => _,
                inlateout("r10") regs.r10 => _,
                inlateout("r8") regs.r8 => _,
                lateout("r9") _,
                lateout("rcx") _,
                lateout("r11") _,
                lateout("rax") ret,
            );
        }
        ret
    }
}
