//! Hypercalls of a 64-bit PV kernel: numbers, argument marshalling, typed wrappers.
//!
//! Xen's public ABI comes from `xen_sys` (its bindgen of `xen.h`, `sched.h` and
//! `event_channel.h`: the `__HYPERVISOR_*` numbers, the `*OP_*` sub-operations,
//! `mmu_update`, `mmuext_op`, `multicall_entry`, the `evtchn_*` and `sched_*`
//! arguments); what it lacks (`vcpu.h`, `version.h`, `grant_table.h`, `memory.h`,
//! `domctl.h`, `io/console.h`, `errno.h`, `xen.h`'s `UVMF_*` and `DOMID_*`) from the
//! workspace's `xen_abi` (bindgen's output over the patched tree's headers): its
//! structures are re-exported here under the guest's names, its numbers used as they
//! are, and `errno.h`'s values are [`XenError`]'s. Nothing in the guest restates Xen's
//! ABI by hand. `xen_sys`'s own `hypercall_*`
//! functions are never used (a wrong fifth register and `sched_op` argument for a
//! 64-bit PV guest): every call goes through [`Hypervisor`]. The calls follow
//! the hypercall page Xen writes for a 64-bit PV kernel
//! (`pv_ring3_init_hypercall_page` in `xen/arch/x86/pv/hypercall.c`): entry `nr` sits
//! at byte `nr * 32` and is `push %rcx; push %r11; mov $nr, %eax; syscall;
//! pop %r11; pop %rcx; ret`. Arguments 1 to 5 travel in `rdi`, `rsi`, `rdx`, `r10`,
//! `r8` (`pv_hypercall` reads them from there), the result comes back in `rax`, and
//! a debug Xen overwrites the argument registers a hypercall used
//! (`clobber_regs64`), so the caller must treat them all as clobbered.
//!
//! The register assignment is the pure [`Hypercall::registers`]; the one `asm!`
//! block lives in `HypercallPage`, compiled only for `target_os = "none"`. The
//! wrappers are generic over [`Hypervisor`] so that host tests can record what they
//! would have asked of Xen.
//!
//! Its parts, all re-exported here (`crate::hypercall::X` is the one path): `abi`
//! (numbers, [`Hypercall`]'s registers, [`XenError`]), `args` (wrappers of Xen's
//! argument structures, and `xen_abi`'s under the guest's names), `calls`
//! ([`Hypervisor`] and the wrappers), `page` (`HypercallPage`, on the real target only).

mod abi;
mod args;
mod calls;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod page;
#[cfg(test)]
mod tests;

pub use abi::*;
pub use args::*;
pub use calls::*;
#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use page::HypercallPage;
