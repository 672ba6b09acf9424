//! Hypercall numbers and sub-operations (`__HYPERVISOR_*` and the `*OP_*` constants of
//! Xen's public headers), the register assignment of one call, and Xen's errors.

/// Size in bytes of one entry of the hypercall page.
pub const HYPERCALL_ENTRY_SIZE: usize = 32;

/// Size in bytes of the hypercall page (one 4 KiB page).
pub const HYPERCALL_PAGE_SIZE: usize = 4096;

/// A hypercall number (`__HYPERVISOR_*` in `xen.h`, from `xen_sys`).
///
/// # Invariants
///
/// The number is below `HYPERCALL_PAGE_SIZE / HYPERCALL_ENTRY_SIZE` (128), so its
/// entry lies inside the hypercall page. Only the constants below exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypercallNr(u32);

impl HypercallNr {
    /// `__HYPERVISOR_set_trap_table`
    pub const SET_TRAP_TABLE: Self = Self(xen_sys::__HYPERVISOR_set_trap_table);
    /// `__HYPERVISOR_mmu_update`
    pub const MMU_UPDATE: Self = Self(xen_sys::__HYPERVISOR_mmu_update);
    /// `__HYPERVISOR_set_callbacks`
    pub const SET_CALLBACKS: Self = Self(xen_sys::__HYPERVISOR_set_callbacks);
    /// `__HYPERVISOR_memory_op`
    pub const MEMORY_OP: Self = Self(xen_sys::__HYPERVISOR_memory_op);
    /// `__HYPERVISOR_multicall`
    pub const MULTICALL: Self = Self(xen_sys::__HYPERVISOR_multicall);
    /// `__HYPERVISOR_update_va_mapping`
    pub const UPDATE_VA_MAPPING: Self = Self(xen_sys::__HYPERVISOR_update_va_mapping);
    /// `__HYPERVISOR_xen_version`
    pub const XEN_VERSION: Self = Self(xen_sys::__HYPERVISOR_xen_version);
    /// `__HYPERVISOR_console_io`
    pub const CONSOLE_IO: Self = Self(xen_sys::__HYPERVISOR_console_io);
    /// `__HYPERVISOR_grant_table_op`
    pub const GRANT_TABLE_OP: Self = Self(xen_sys::__HYPERVISOR_grant_table_op);
    /// `__HYPERVISOR_vm_assist`
    pub const VM_ASSIST: Self = Self(xen_sys::__HYPERVISOR_vm_assist);
    /// `__HYPERVISOR_iret`: never called through
    /// [`Hypervisor`](super::Hypervisor); a handler jumps to its entry with an
    /// `iret_context` on its stack (`test_guest::traps`).
    pub const IRET: Self = Self(xen_sys::__HYPERVISOR_iret);
    /// `__HYPERVISOR_vcpu_op`
    pub const VCPU_OP: Self = Self(xen_sys::__HYPERVISOR_vcpu_op);
    /// `__HYPERVISOR_mmuext_op`
    pub const MMUEXT_OP: Self = Self(xen_sys::__HYPERVISOR_mmuext_op);
    /// `__HYPERVISOR_sched_op`
    pub const SCHED_OP: Self = Self(xen_sys::__HYPERVISOR_sched_op);
    /// `__HYPERVISOR_event_channel_op`
    pub const EVENT_CHANNEL_OP: Self = Self(xen_sys::__HYPERVISOR_event_channel_op);
    /// `__HYPERVISOR_domctl` (refused to an unprivileged guest;
    /// the `hostile-calls` pattern checks that).
    pub const DOMCTL: Self = Self(xen_sys::__HYPERVISOR_domctl);

    /// The raw number, as Xen's `rax`.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// `mmu_update`'s and `mmuext_op`'s count may not have this bit set: Xen uses it to
/// mark its own continuations (`MMU_UPDATE_PREEMPTED`, `xen/arch/x86/mm.c`).
pub const MMU_UPDATE_PREEMPTED: u32 = 1 << 31;

/// The register assignment of one hypercall, as the hypercall page expects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registers {
    /// Argument 1.
    pub rdi: u64,
    /// Argument 2.
    pub rsi: u64,
    /// Argument 3.
    pub rdx: u64,
    /// Argument 4 (`rcx` is taken by `syscall`, so not the C ABI's fourth register).
    pub r10: u64,
    /// Argument 5.
    pub r8: u64,
}

/// One marshalled hypercall: its number and five arguments (unused ones are 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hypercall {
    /// Which hypercall.
    pub nr: HypercallNr,
    /// Arguments 1 to 5, in order; pointers are passed as their address.
    pub args: [u64; 5],
}

impl Hypercall {
    /// Marshals hypercall `nr` with `args`.
    pub const fn new(nr: HypercallNr, args: [u64; 5]) -> Self {
        Self { nr, args }
    }

    /// Byte offset of this hypercall's entry in the hypercall page.
    pub const fn entry_offset(&self) -> usize {
        self.nr.0 as usize * HYPERCALL_ENTRY_SIZE
    }

    /// Which register each argument goes in.
    ///
    /// ```
    /// use test_guest::hypercall::{Hypercall, HypercallNr, Registers};
    ///
    /// let call = Hypercall::new(HypercallNr::SCHED_OP, [2, 0x1000, 0, 0, 0]);
    /// assert_eq!(call.entry_offset(), 29 * 32);
    /// assert_eq!(call.registers().rdi, 2);
    /// assert_eq!(call.registers().rsi, 0x1000);
    /// ```
    pub const fn registers(&self) -> Registers {
        Registers {
            rdi: self.args[0],
            rsi: self.args[1],
            rdx: self.args[2],
            r10: self.args[3],
            r8: self.args[4],
        }
    }
}

/// A failed hypercall: Xen's negative errno (`xen/include/public/errno.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenError(i64);

impl XenError {
    /// `XEN_EPERM`: operation not permitted.
    pub const EPERM: Self = Self::errno_of(xen_abi::XEN_EPERM);
    /// `XEN_ENOENT`: no such entry (for example no such vCPU).
    pub const ENOENT: Self = Self::errno_of(xen_abi::XEN_ENOENT);
    /// `XEN_ENOMEM`: used by the guest itself when Xen allocated fewer frames than
    /// asked (`populate_physmap` returns a count, not an error).
    pub const ENOMEM: Self = Self::errno_of(xen_abi::XEN_ENOMEM);
    /// `XEN_EFAULT`: bad address (Xen could not copy to or from the guest).
    pub const EFAULT: Self = Self::errno_of(xen_abi::XEN_EFAULT);
    /// `XEN_EBUSY`: for example a frame that may not be mapped (`get_page_from_l1e`
    /// in `xen/arch/x86/mm.c`).
    pub const EBUSY: Self = Self::errno_of(xen_abi::XEN_EBUSY);
    /// `XEN_EINVAL`: invalid argument.
    pub const EINVAL: Self = Self::errno_of(xen_abi::XEN_EINVAL);
    /// `XEN_ENOSYS`: function not implemented.
    pub const ENOSYS: Self = Self::errno_of(xen_abi::XEN_ENOSYS);
    /// `XEN_ETIMEDOUT`: used by the guest itself for a wait that ran out.
    pub const ETIMEDOUT: Self = Self::errno_of(xen_abi::XEN_ETIMEDOUT);

    /// The error a hypercall returns as `-errno` (`errno.h`'s value, positive).
    const fn errno_of(errno: xen_abi::xen_errno) -> Self {
        Self(-(errno as i64))
    }

    /// Splits a raw hypercall result: negative values are errors.
    pub const fn check(ret: i64) -> Result<u64, XenError> {
        if ret < 0 {
            Err(Self(ret))
        } else {
            Ok(ret as u64)
        }
    }

    /// The positive errno number (2 for `ENOENT`).
    pub const fn errno(self) -> u64 {
        self.0.unsigned_abs()
    }

    /// The raw (negative) value Xen returned (-2 for `ENOENT`).
    pub const fn code(self) -> i64 {
        self.0
    }
}
