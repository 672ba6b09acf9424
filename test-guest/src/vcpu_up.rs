//! Bringing up a second vCPU of a 64-bit PV guest: `VCPUOP_initialise` with a
//! `vcpu_guest_context`, then `VCPUOP_up`; and `VCPUOP_down` for a vCPU to stop itself.
//!
//! Why: the `multi-vcpu` pattern has two vCPUs write at the same time, and a PV vCPU
//! other than 0 starts only when the kernel gives Xen its whole register state. The
//! layouts are `xen_sys`'s (`vcpu_guest_context`, `cpu_user_regs`, `trap_info` of
//! `arch-x86/xen.h` and `xen-x86_64.h`); the calls are `vcpu.h`'s (`VCPUOP_*`, in
//! `xen_abi`).
//!
//! What [`VcpuGuestContext::for_kernel_entry`] sets mirrors what the domain builder
//! sets for vCPU 0 (`vcpu_x86_64` in `tools/libs/guest/xg_dom_x86.c`), checked against
//! `arch_set_info_guest` (`xen/arch/x86/domain.c`):
//! - `flags` = `VGCF_in_kernel` only: without `VGCF_online` the vCPU stays down until
//!   `VCPUOP_up`. No `VGCF_i387_valid`: Xen gives it a fresh FPU state.
//! - `user_regs`: `rip` the entry, `rsp` the stack top, `cs`/`ss` the flat kernel
//!   selectors ([`FLAT_KERNEL_CS`], [`FLAT_KERNEL_SS`]: ring 3, in Xen's reserved part
//!   of the GDT, so no GDT of our own: `gdt_ents` = 0), data selectors 0, `rflags` IF
//!   (Xen forces IF on anyway; event delivery is the upcall mask in `shared_info`,
//!   which the builder set for every vCPU).
//! - `kernel_ss`/`kernel_sp` = the same stack (used only on a user-to-kernel switch,
//!   which never happens here).
//! - `ctrlreg[3]` = `xen_pfn_to_cr3(mfn)` of the kernel's L4 table (the one in use, a
//!   machine frame: a PV guest cannot read its own CR3 usefully), `ctrlreg[1]` (user
//!   page table) 0, which a vCPU in kernel mode may have.
//! - `debugreg[6]`/`[7]` their reset values, as the builder does.
//! - No trap table, no callbacks (`event_callback_eip` etc. 0), `vm_assist` 0 (only
//!   vCPU 0's context sets the domain's assists).

use x86_64::registers::rflags::RFlags;

use xen_abi::{VCPUOP_down, VCPUOP_initialise, VCPUOP_up};

use crate::hypercall::{Hypercall, HypercallNr, Hypervisor, VcpuId, XenError};

/// `FLAT_KERNEL_CS` (`xen_sys`, = `FLAT_RING3_CS64`: a 64-bit PV kernel runs in ring 3),
/// as the 16-bit selector it is.
pub const FLAT_KERNEL_CS: u16 = xen_sys::FLAT_KERNEL_CS as u16;
/// `FLAT_KERNEL_SS` (`xen_sys`, = `FLAT_RING3_SS64`), as a 16-bit selector.
pub const FLAT_KERNEL_SS: u16 = xen_sys::FLAT_KERNEL_SS as u16;

/// `X86_EFLAGS_IF` (`x86_64`'s `RFlags::INTERRUPT_FLAG`).
pub const RFLAGS_IF: u64 = RFlags::INTERRUPT_FLAG.bits();
/// `X86_DR6_DEFAULT` (Xen's `x86-defns.h`, not a public header: what the builder puts
/// in `debugreg[6]`).
pub const DR6_DEFAULT: u64 = 0xffff_0ff0;
/// `X86_DR7_DEFAULT`.
pub const DR7_DEFAULT: u64 = 0x400;

/// `#define xen_pfn_to_cr3(pfn) ((unsigned long)(pfn) << 12)` (`xen-x86_64.h`; a
/// macro, which bindgen does not translate).
pub const fn xen_pfn_to_cr3(mfn: u64) -> u64 {
    mfn << 12
}

/// `struct trap_info` (`arch-x86/xen.h`): one entry of a virtual IDT.
pub type TrapInfo = xen_sys::trap_info;

/// `struct vcpu_guest_context` (`arch-x86/xen.h`) for a 64-bit guest, as
/// `xen_sys::vcpu_guest_context`; its fields read and write through `Deref`.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct VcpuGuestContext(xen_sys::vcpu_guest_context);

impl core::ops::Deref for VcpuGuestContext {
    type Target = xen_sys::vcpu_guest_context;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl VcpuGuestContext {
    /// All zero.
    pub const fn zeroed() -> Self {
        // SAFETY: `vcpu_guest_context` is integers, integer arrays and unions of
        // integers: all zeroes is a valid value (the one C's `= { 0 }` gives).
        Self(unsafe { core::mem::zeroed() })
    }

    /// A context that starts the vCPU in kernel mode at `entry` with `rsp` =
    /// `stack_top`, on the page tables whose L4 is machine frame `l4_mfn` (see the
    /// module docs for every field).
    pub const fn for_kernel_entry(entry: u64, stack_top: u64, l4_mfn: u64) -> Self {
        let mut ctx = Self::zeroed().0;
        ctx.flags = xen_sys::VGCF_in_kernel as u64;
        ctx.user_regs.__bindgen_anon_8.rip = entry;
        ctx.user_regs.__bindgen_anon_10.rsp = stack_top;
        ctx.user_regs.cs = FLAT_KERNEL_CS;
        ctx.user_regs.ss = FLAT_KERNEL_SS;
        ctx.user_regs.__bindgen_anon_9.rflags = RFLAGS_IF;
        ctx.kernel_ss = FLAT_KERNEL_SS as u64;
        ctx.kernel_sp = stack_top;
        ctx.ctrlreg[3] = xen_pfn_to_cr3(l4_mfn);
        ctx.debugreg[6] = DR6_DEFAULT;
        ctx.debugreg[7] = DR7_DEFAULT;
        Self(ctx)
    }
}

/// `HYPERVISOR_vcpu_op(VCPUOP_initialise, vcpu, ctx)`: gives a down, never
/// initialised vCPU its first register state (`-EEXIST` if it already has one).
///
/// # Safety
///
/// Once the vCPU is up it runs `ctx.user_regs.rip` with `ctx.user_regs.rsp` on the page
/// tables of `ctrlreg[3]`, alongside the caller: the entry must be code that is sound
/// to run there (its own stack, no trap table, events masked), and the stack must be
/// memory nothing else uses.
pub unsafe fn vcpu_initialise<H: Hypervisor + ?Sized>(
    hv: &H,
    vcpu: VcpuId,
    ctx: &VcpuGuestContext,
) -> Result<(), XenError> {
    let call = Hypercall::new(
        HypercallNr::VCPU_OP,
        [
            u64::from(VCPUOP_initialise),
            u64::from(vcpu.0),
            core::ptr::from_ref(ctx) as u64,
            0,
            0,
        ],
    );
    // SAFETY: the only pointer is `ctx`, a live `vcpu_guest_context` that Xen copies
    // (reads) before returning; what the vCPU then runs is this fn's contract.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_vcpu_op(VCPUOP_up, vcpu, NULL)`: starts an initialised vCPU
/// (`-EINVAL` if it was never initialised). What it runs was vouched for by
/// [`vcpu_initialise`]'s caller.
pub fn vcpu_up<H: Hypervisor + ?Sized>(hv: &H, vcpu: VcpuId) -> Result<(), XenError> {
    let call = Hypercall::new(
        HypercallNr::VCPU_OP,
        [u64::from(VCPUOP_up), u64::from(vcpu.0), 0, 0, 0],
    );
    // SAFETY: no pointer arguments.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_vcpu_op(VCPUOP_down, vcpu, NULL)`: stops `vcpu` (the caller itself, as
/// Linux's `play_dead` does). If it is the domain's last running vCPU, Xen powers the
/// domain off instead.
pub fn vcpu_down<H: Hypervisor + ?Sized>(hv: &H, vcpu: VcpuId) -> Result<(), XenError> {
    let call = Hypercall::new(
        HypercallNr::VCPU_OP,
        [u64::from(VCPUOP_down), u64::from(vcpu.0), 0, 0, 0],
    );
    // SAFETY: no pointer arguments.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_xen::{FakeXen, Script};

    #[test]
    fn xen_pfn_to_cr3_shifts_the_frame() {
        // A function-like macro of xen-x86_64.h (bindgen cannot translate those); its value
        // checked with a C program including Xen 4.17's header.
        assert_eq!(xen_pfn_to_cr3(0x1234), 0x123_4000);
    }

    #[test]
    fn kernel_entry_context_fields() {
        let ctx = VcpuGuestContext::for_kernel_entry(0x10_2340, 0x18_8000, 0x4_5678);
        assert_eq!(ctx.flags, 4, "flags: VGCF_in_kernel, not VGCF_online");
        let regs = &ctx.user_regs;
        // SAFETY: the register unions hold `u64`s, every member plain bits.
        let (rip, rsp, rflags) = unsafe {
            (
                regs.__bindgen_anon_8.rip,
                regs.__bindgen_anon_10.rsp,
                regs.__bindgen_anon_9.rflags,
            )
        };
        assert_eq!((rip, rsp, rflags), (0x10_2340, 0x18_8000, 0x200));
        assert_eq!((regs.cs, regs.ss), (0xe033, 0xe02b));
        assert_eq!(regs.saved_upcall_mask, 0, "no upcall mask byte");
        assert_eq!((regs.es, regs.ds, regs.fs, regs.gs), (0, 0, 0, 0));
        assert_eq!(ctx.gdt_ents, 0);
        assert_eq!((ctx.kernel_ss, ctx.kernel_sp), (0xe02b, 0x18_8000));
        assert_eq!(ctx.ctrlreg[1], 0, "no user page table");
        assert_eq!(ctx.ctrlreg[3], 0x4567_8000, "cr3 = L4 mfn << 12");
        assert_eq!((ctx.debugreg[6], ctx.debugreg[7]), (0xffff_0ff0, 0x400));
        assert_eq!(
            [
                ctx.event_callback_eip,
                ctx.failsafe_callback_eip,
                ctx.syscall_callback_eip,
                ctx.vm_assist,
                ctx.fs_base,
                ctx.gs_base_kernel,
                ctx.gs_base_user,
            ],
            [0; 7],
            "callbacks, vm_assist, bases"
        );
        assert!(ctx.fpu_ctxt.x.iter().all(|&b| b == 0), "no FPU state");
        assert!(
            ctx.trap_ctxt
                .iter()
                .all(|t| (t.vector, t.flags, t.cs, t.address) == (0, 0, 0, 0)),
            "no trap table"
        );
    }

    /// A fake Xen that checks the context's rip, as Xen would read it, and answers
    /// `rc`.
    fn recorder(rc: i64) -> FakeXen<impl Script> {
        FakeXen::new(move |call| {
            if call.args[0] == u64::from(VCPUOP_initialise) {
                // SAFETY: the wrapper passes a live context; read its rip as Xen would
                // (a union of `u64`s).
                let rip = unsafe {
                    let ctx = &*(call.args[2] as *const VcpuGuestContext);
                    ctx.user_regs.__bindgen_anon_8.rip
                };
                assert_eq!(rip, 0x10_2340);
            }
            rc
        })
    }
    #[test]
    fn vcpu_ops_marshal_cmd_vcpu_and_context() {
        let hv = recorder(0);
        let ctx = VcpuGuestContext::for_kernel_entry(0x10_2340, 0x18_8000, 1);
        // SAFETY: the recorder runs nothing.
        assert_eq!(unsafe { vcpu_initialise(&hv, VcpuId(1), &ctx) }, Ok(()));
        assert_eq!(vcpu_up(&hv, VcpuId(1)), Ok(()));
        assert_eq!(vcpu_down(&hv, VcpuId(1)), Ok(()));
        let calls = hv.calls();
        assert!(calls.iter().all(|c| c.nr == HypercallNr::VCPU_OP));
        assert_eq!(
            calls[0].args,
            [0, 1, core::ptr::from_ref(&ctx) as u64, 0, 0]
        );
        assert_eq!(calls[1].args, [1, 1, 0, 0, 0]);
        assert_eq!(calls[2].args, [2, 1, 0, 0, 0]);

        let exists = recorder(-17);
        // SAFETY: as above.
        let rc = unsafe { vcpu_initialise(&exists, VcpuId(1), &ctx) };
        assert_eq!(rc.map_err(XenError::code), Err(-17));
    }
}
