//! Hypercalls of a 64-bit PV kernel: numbers, argument marshalling, typed wrappers.
//!
//! Mirrors Xen 4.17's public headers (`xen/include/public/xen.h` for the
//! `__HYPERVISOR_*` numbers, `mmu_update`, `mmuext_op` and `update_va_mapping`,
//! `sched.h`, `event_channel.h`, `vcpu.h`, `grant_table.h`, `errno.h`) and
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
//! (numbers, sub-operations, [`Hypercall`]'s registers, [`XenError`]), `args` (Xen's
//! argument structures), `calls` ([`Hypervisor`] and the wrappers), `page`
//! (`HypercallPage`, on the real target only).

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
