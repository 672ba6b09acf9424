//! Bringing up a second vCPU of a 64-bit PV guest: `VCPUOP_initialise` with a
//! `vcpu_guest_context`, then `VCPUOP_up`; and `VCPUOP_down` for a vCPU to stop itself.
//!
//! Why: the `multi-vcpu` pattern has two vCPUs write at the same time, and a PV vCPU
//! other than 0 starts only when the kernel gives Xen its whole register state. The
//! layouts mirror Xen 4.17's `xen/include/public/arch-x86/xen.h` (`struct
//! vcpu_guest_context`, `struct trap_info`) and `arch-x86/xen-x86_64.h` (`struct
//! cpu_user_regs`) for x86_64, pinned by host tests against offsets printed by a C
//! program built with those headers; the calls are `vcpu.h`'s.
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

use crate::hypercall::{Hypercall, HypercallNr, Hypervisor, VcpuId, XenError};

/// `#define VCPUOP_initialise 0`: `extra_arg` is a `vcpu_guest_context *`.
pub const VCPUOP_INITIALISE: u64 = 0;
/// `#define VCPUOP_up 1`.
pub const VCPUOP_UP: u64 = 1;
/// `#define VCPUOP_down 2`: the last vCPU going down powers the domain off.
pub const VCPUOP_DOWN: u64 = 2;

/// `#define VGCF_in_kernel (1<<2)`.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// `#define VGCF_online (1<<5)`: not set by [`VcpuGuestContext::for_kernel_entry`].
pub const VGCF_ONLINE: u64 = 1 << 5;

/// `FLAT_KERNEL_CS` = `FLAT_RING3_CS64` (`xen-x86_64.h`): a 64-bit PV kernel runs in ring 3.
pub const FLAT_KERNEL_CS: u16 = 0xe033;
/// `FLAT_KERNEL_SS` = `FLAT_RING3_SS64`.
pub const FLAT_KERNEL_SS: u16 = 0xe02b;

/// `X86_EFLAGS_IF`.
pub const RFLAGS_IF: u64 = 1 << 9;
/// `X86_DR6_DEFAULT` (what the builder puts in `debugreg[6]`).
pub const DR6_DEFAULT: u64 = 0xffff_0ff0;
/// `X86_DR7_DEFAULT`.
pub const DR7_DEFAULT: u64 = 0x400;

/// `#define xen_pfn_to_cr3(pfn) ((unsigned long)(pfn) << 12)` (`xen-x86_64.h`).
pub const fn xen_pfn_to_cr3(mfn: u64) -> u64 {
    mfn << 12
}

/// `struct cpu_user_regs` (`xen-x86_64.h`): each `__DECL_REG_*` is one 8-byte union.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)] // register names
pub struct CpuUserRegs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// Private to Xen.
    pub error_code: u32,
    /// Private to Xen.
    pub entry_vector: u32,
    pub rip: u64,
    pub cs: u16,
    pub pad0: u16,
    /// Private to Xen.
    pub saved_upcall_mask: u8,
    pub pad1: [u8; 3],
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u16,
    pub pad2: [u16; 3],
    pub es: u16,
    pub pad3: [u16; 3],
    pub ds: u16,
    pub pad4: [u16; 3],
    pub fs: u16,
    pub pad5: [u16; 3],
    pub gs: u16,
    pub pad6: [u16; 3],
}

/// `struct trap_info` (`arch-x86/xen.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    /// Exception vector.
    pub vector: u8,
    /// DPL and interrupt-enable bits.
    pub flags: u8,
    /// Code selector.
    pub cs: u16,
    /// The C compiler's padding, explicit so that the context has no padding bytes.
    pub pad: u32,
    /// Handler address.
    pub address: u64,
}

/// `struct vcpu_guest_context` (`arch-x86/xen.h`) for a 64-bit guest, 5168 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VcpuGuestContext {
    /// FXSAVE area (`struct { char x[512]; } fpu_ctxt`), used with `VGCF_i387_valid`.
    pub fpu_ctxt: [u8; 512],
    /// `VGCF_*`.
    pub flags: u64,
    /// The registers the vCPU starts with.
    pub user_regs: CpuUserRegs,
    /// The virtual IDT.
    pub trap_ctxt: [TrapInfo; 256],
    /// LDT linear address.
    pub ldt_base: u64,
    /// LDT entries.
    pub ldt_ents: u64,
    /// GDT machine frames.
    pub gdt_frames: [u64; 16],
    /// GDT entries (0: only Xen's reserved flat selectors).
    pub gdt_ents: u64,
    /// Kernel stack segment for user-to-kernel switches.
    pub kernel_ss: u64,
    /// Kernel stack pointer for user-to-kernel switches.
    pub kernel_sp: u64,
    /// CR0 to CR7; CR3 is the kernel L4 (`xen_pfn_to_cr3`), CR1 the user L4.
    pub ctrlreg: [u64; 8],
    /// DR0 to DR7.
    pub debugreg: [u64; 8],
    /// Event upcall entry.
    pub event_callback_eip: u64,
    /// Failsafe callback entry.
    pub failsafe_callback_eip: u64,
    /// SYSCALL entry.
    pub syscall_callback_eip: u64,
    /// `VMASST_TYPE_*` bitmap (read from vCPU 0's context only).
    pub vm_assist: u64,
    /// FS base.
    pub fs_base: u64,
    /// Kernel GS base.
    pub gs_base_kernel: u64,
    /// User GS base.
    pub gs_base_user: u64,
}

impl VcpuGuestContext {
    /// All zero.
    pub const fn zeroed() -> Self {
        Self {
            fpu_ctxt: [0; 512],
            flags: 0,
            user_regs: CpuUserRegs {
                r15: 0,
                r14: 0,
                r13: 0,
                r12: 0,
                rbp: 0,
                rbx: 0,
                r11: 0,
                r10: 0,
                r9: 0,
                r8: 0,
                rax: 0,
                rcx: 0,
                rdx: 0,
                rsi: 0,
                rdi: 0,
                error_code: 0,
                entry_vector: 0,
                rip: 0,
                cs: 0,
                pad0: 0,
                saved_upcall_mask: 0,
                pad1: [0; 3],
                rflags: 0,
                rsp: 0,
                ss: 0,
                pad2: [0; 3],
                es: 0,
                pad3: [0; 3],
                ds: 0,
                pad4: [0; 3],
                fs: 0,
                pad5: [0; 3],
                gs: 0,
                pad6: [0; 3],
            },
            trap_ctxt: [TrapInfo {
                vector: 0,
                flags: 0,
                cs: 0,
                pad: 0,
                address: 0,
            }; 256],
            ldt_base: 0,
            ldt_ents: 0,
            gdt_frames: [0; 16],
            gdt_ents: 0,
            kernel_ss: 0,
            kernel_sp: 0,
            ctrlreg: [0; 8],
            debugreg: [0; 8],
            event_callback_eip: 0,
            failsafe_callback_eip: 0,
            syscall_callback_eip: 0,
            vm_assist: 0,
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
        }
    }

    /// A context that starts the vCPU in kernel mode at `entry` with `rsp` =
    /// `stack_top`, on the page tables whose L4 is machine frame `l4_mfn` (see the
    /// module docs for every field).
    pub const fn for_kernel_entry(entry: u64, stack_top: u64, l4_mfn: u64) -> Self {
        let mut ctx = Self::zeroed();
        ctx.flags = VGCF_IN_KERNEL;
        ctx.user_regs.rip = entry;
        ctx.user_regs.rsp = stack_top;
        ctx.user_regs.cs = FLAT_KERNEL_CS;
        ctx.user_regs.ss = FLAT_KERNEL_SS;
        ctx.user_regs.rflags = RFLAGS_IF;
        ctx.kernel_ss = FLAT_KERNEL_SS as u64;
        ctx.kernel_sp = stack_top;
        ctx.ctrlreg[3] = xen_pfn_to_cr3(l4_mfn);
        ctx.debugreg[6] = DR6_DEFAULT;
        ctx.debugreg[7] = DR7_DEFAULT;
        ctx
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
            VCPUOP_INITIALISE,
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
        [VCPUOP_UP, u64::from(vcpu.0), 0, 0, 0],
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
        [VCPUOP_DOWN, u64::from(vcpu.0), 0, 0, 0],
    );
    // SAFETY: no pointer arguments.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_xen::{FakeXen, Script};
    use core::mem::offset_of;

    /// Offsets and sizes printed by a C program including Xen 4.17's `xen.h` and
    /// `vcpu.h` (gcc, x86_64).
    #[test]
    fn layouts_match_xen_headers() {
        assert_eq!(size_of::<CpuUserRegs>(), 200);
        assert_eq!(offset_of!(CpuUserRegs, r15), 0);
        assert_eq!(offset_of!(CpuUserRegs, rbp), 32);
        assert_eq!(offset_of!(CpuUserRegs, rbx), 40);
        assert_eq!(offset_of!(CpuUserRegs, r11), 48);
        assert_eq!(offset_of!(CpuUserRegs, rax), 80);
        assert_eq!(offset_of!(CpuUserRegs, rsi), 104);
        assert_eq!(offset_of!(CpuUserRegs, rdi), 112);
        assert_eq!(offset_of!(CpuUserRegs, error_code), 120);
        assert_eq!(offset_of!(CpuUserRegs, entry_vector), 124);
        assert_eq!(offset_of!(CpuUserRegs, rip), 128);
        assert_eq!(offset_of!(CpuUserRegs, cs), 136);
        assert_eq!(offset_of!(CpuUserRegs, saved_upcall_mask), 140);
        assert_eq!(offset_of!(CpuUserRegs, rflags), 144);
        assert_eq!(offset_of!(CpuUserRegs, rsp), 152);
        assert_eq!(offset_of!(CpuUserRegs, ss), 160);
        assert_eq!(offset_of!(CpuUserRegs, es), 168);
        assert_eq!(offset_of!(CpuUserRegs, ds), 176);
        assert_eq!(offset_of!(CpuUserRegs, fs), 184);
        assert_eq!(offset_of!(CpuUserRegs, gs), 192);

        assert_eq!(size_of::<TrapInfo>(), 16);
        assert_eq!(offset_of!(TrapInfo, cs), 2);
        assert_eq!(offset_of!(TrapInfo, address), 8);

        assert_eq!(size_of::<VcpuGuestContext>(), 5168);
        assert_eq!(offset_of!(VcpuGuestContext, flags), 512);
        assert_eq!(offset_of!(VcpuGuestContext, user_regs), 520);
        assert_eq!(offset_of!(VcpuGuestContext, trap_ctxt), 720);
        assert_eq!(offset_of!(VcpuGuestContext, ldt_base), 4816);
        assert_eq!(offset_of!(VcpuGuestContext, ldt_ents), 4824);
        assert_eq!(offset_of!(VcpuGuestContext, gdt_frames), 4832);
        assert_eq!(offset_of!(VcpuGuestContext, gdt_ents), 4960);
        assert_eq!(offset_of!(VcpuGuestContext, kernel_ss), 4968);
        assert_eq!(offset_of!(VcpuGuestContext, kernel_sp), 4976);
        assert_eq!(offset_of!(VcpuGuestContext, ctrlreg), 4984);
        assert_eq!(offset_of!(VcpuGuestContext, debugreg), 5048);
        assert_eq!(offset_of!(VcpuGuestContext, event_callback_eip), 5112);
        assert_eq!(offset_of!(VcpuGuestContext, failsafe_callback_eip), 5120);
        assert_eq!(offset_of!(VcpuGuestContext, syscall_callback_eip), 5128);
        assert_eq!(offset_of!(VcpuGuestContext, vm_assist), 5136);
        assert_eq!(offset_of!(VcpuGuestContext, fs_base), 5144);
        assert_eq!(offset_of!(VcpuGuestContext, gs_base_kernel), 5152);
        assert_eq!(offset_of!(VcpuGuestContext, gs_base_user), 5160);
    }

    #[test]
    fn constants_match_xen_headers() {
        assert_eq!((VCPUOP_INITIALISE, VCPUOP_UP, VCPUOP_DOWN), (0, 1, 2));
        assert_eq!((VGCF_IN_KERNEL, VGCF_ONLINE), (4, 0x20));
        assert_eq!((FLAT_KERNEL_CS, FLAT_KERNEL_SS), (0xe033, 0xe02b));
        assert_eq!(xen_pfn_to_cr3(0x1234), 0x123_4000);
    }

    /// The bytes of a context, as Xen would copy them.
    fn bytes(ctx: &VcpuGuestContext) -> &[u8] {
        // SAFETY: `ctx` is a live `repr(C)` struct of integers with no padding bytes
        // (every gap of the C layout is an explicit field; the layout test pins the
        // size), so all its bytes are initialised.
        unsafe {
            core::slice::from_raw_parts(
                core::ptr::from_ref(ctx).cast::<u8>(),
                size_of::<VcpuGuestContext>(),
            )
        }
    }

    /// The little-endian `u64` at byte `at` of the context.
    fn word(ctx: &VcpuGuestContext, at: usize) -> u64 {
        u64::from_le_bytes(bytes(ctx)[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn kernel_entry_context_fields_at_xen_offsets() {
        let ctx = VcpuGuestContext::for_kernel_entry(0x10_2340, 0x18_8000, 0x4_5678);
        assert_eq!(
            word(&ctx, 512),
            VGCF_IN_KERNEL,
            "flags: in kernel, not online"
        );
        assert_eq!(word(&ctx, 520 + 128), 0x10_2340, "rip");
        assert_eq!(word(&ctx, 520 + 136), 0xe033, "cs, no upcall mask byte");
        assert_eq!(word(&ctx, 520 + 144), 0x200, "rflags");
        assert_eq!(word(&ctx, 520 + 152), 0x18_8000, "rsp");
        assert_eq!(word(&ctx, 520 + 160), 0xe02b, "ss");
        for seg in [168, 176, 184, 192] {
            assert_eq!(word(&ctx, 520 + seg), 0, "data selectors 0");
        }
        assert_eq!(word(&ctx, 4960), 0, "gdt_ents");
        assert_eq!(word(&ctx, 4968), 0xe02b, "kernel_ss");
        assert_eq!(word(&ctx, 4976), 0x18_8000, "kernel_sp");
        assert_eq!(word(&ctx, 4984 + 8), 0, "no user page table");
        assert_eq!(word(&ctx, 4984 + 3 * 8), 0x4567_8000, "cr3 = L4 mfn << 12");
        assert_eq!(word(&ctx, 5048 + 6 * 8), 0xffff_0ff0);
        assert_eq!(word(&ctx, 5048 + 7 * 8), 0x400);
        for at in [5112, 5120, 5128, 5136, 5144, 5152, 5160] {
            assert_eq!(word(&ctx, at), 0, "callbacks, vm_assist, bases at {at}");
        }
        assert!(bytes(&ctx)[..512].iter().all(|&b| b == 0), "no FPU state");
        assert!(
            bytes(&ctx)[720..4816].iter().all(|&b| b == 0),
            "no trap table"
        );
    }

    /// A fake Xen that checks the context's rip, as Xen would read it, and answers
    /// `rc`.
    fn recorder(rc: i64) -> FakeXen<impl Script> {
        FakeXen::new(move |call| {
            if call.args[0] == VCPUOP_INITIALISE {
                // SAFETY: the wrapper passes a live context; read its rip as Xen would.
                let ctx = unsafe { &*(call.args[2] as *const VcpuGuestContext) };
                assert_eq!(ctx.user_regs.rip, 0x10_2340);
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
