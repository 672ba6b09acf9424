//! Hypercall numbers and sub-operations (`__HYPERVISOR_*` and the `*OP_*` constants of
//! Xen's public headers), the register assignment of one call, and Xen's errors.

/// Size in bytes of one entry of the hypercall page.
pub const HYPERCALL_ENTRY_SIZE: usize = 32;

/// Size in bytes of the hypercall page (one 4 KiB page).
pub const HYPERCALL_PAGE_SIZE: usize = 4096;

/// A hypercall number (`__HYPERVISOR_*` in `xen.h`).
///
/// # Invariants
///
/// The number is below `HYPERCALL_PAGE_SIZE / HYPERCALL_ENTRY_SIZE` (128), so its
/// entry lies inside the hypercall page. Only the constants below exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypercallNr(u32);

impl HypercallNr {
    /// `#define __HYPERVISOR_set_trap_table        0`
    pub const SET_TRAP_TABLE: Self = Self(0);
    /// `#define __HYPERVISOR_mmu_update            1`
    pub const MMU_UPDATE: Self = Self(1);
    /// `#define __HYPERVISOR_set_callbacks         4`
    pub const SET_CALLBACKS: Self = Self(4);
    /// `#define __HYPERVISOR_memory_op            12`
    pub const MEMORY_OP: Self = Self(12);
    /// `#define __HYPERVISOR_multicall            13`
    pub const MULTICALL: Self = Self(13);
    /// `#define __HYPERVISOR_update_va_mapping    14`
    pub const UPDATE_VA_MAPPING: Self = Self(14);
    /// `#define __HYPERVISOR_xen_version          17`
    pub const XEN_VERSION: Self = Self(17);
    /// `#define __HYPERVISOR_console_io           18`
    pub const CONSOLE_IO: Self = Self(18);
    /// `#define __HYPERVISOR_grant_table_op       20`
    pub const GRANT_TABLE_OP: Self = Self(20);
    /// `#define __HYPERVISOR_vm_assist            21`
    pub const VM_ASSIST: Self = Self(21);
    /// `#define __HYPERVISOR_iret                 23`: never called through
    /// [`Hypervisor`](super::Hypervisor); a handler jumps to its entry with an
    /// `iret_context` on its stack (`test_guest::traps`).
    pub const IRET: Self = Self(23);
    /// `#define __HYPERVISOR_vcpu_op              24`
    pub const VCPU_OP: Self = Self(24);
    /// `#define __HYPERVISOR_mmuext_op            26`
    pub const MMUEXT_OP: Self = Self(26);
    /// `#define __HYPERVISOR_sched_op             29`
    pub const SCHED_OP: Self = Self(29);
    /// `#define __HYPERVISOR_event_channel_op     32`
    pub const EVENT_CHANNEL_OP: Self = Self(32);
    /// `#define __HYPERVISOR_domctl               36` (refused to an unprivileged guest;
    /// the `hostile-calls` pattern checks that).
    pub const DOMCTL: Self = Self(36);

    /// The raw number, as Xen's `rax`.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// `#define CONSOLEIO_write         0` (`xen.h`): write a buffer to Xen's console.
pub const CONSOLEIO_WRITE: u64 = 0;

/// `#define VCPUOP_is_up                 3` (`vcpu.h`): "Returns 1 if the given VCPU
/// is up"; 0 if it exists but is down, `-ENOENT` if there is no such vCPU
/// (`do_vcpu_op` in `xen/arch/x86/domain.c`).
pub const VCPUOP_IS_UP: u64 = 3;

/// `#define XENVER_extraversion 1` (`version.h`): the argument is a
/// `xen_extraversion_t`, `char[16]`, that Xen fills (NUL-padded) with
/// `copy_to_guest`.
pub const XENVER_EXTRAVERSION: u64 = 1;

/// `typedef char xen_extraversion_t[16];` (`version.h`).
pub const XEN_EXTRAVERSION_LEN: usize = 16;

/// `#define VMASST_CMD_enable                0` (`xen.h`).
pub const VMASST_CMD_ENABLE: u64 = 0;

/// `#define VMASST_TYPE_writable_pagetables  2` (`xen.h`): Xen emulates a PV kernel's
/// plain writes to its own (read-only mapped) L1 page tables (`ptwr_do_page_fault`,
/// `xen/arch/x86/pv/ro-page-fault.c`). Off unless the kernel asks: the domain builder
/// does not enable it, whatever `XEN_ELFNOTE_FEATURES` says.
pub const VMASST_TYPE_WRITABLE_PAGETABLES: u64 = 2;

/// `#define SCHEDOP_yield       0` (`sched.h`).
pub const SCHEDOP_YIELD: u64 = 0;

/// `#define SCHEDOP_shutdown    2` (`sched.h`): argument is a `sched_shutdown_t *`.
pub const SCHEDOP_SHUTDOWN: u64 = 2;

/// `#define SCHEDOP_poll        3` (`sched.h`): argument is a `sched_poll_t *`.
pub const SCHEDOP_POLL: u64 = 3;

/// `#define EVTCHNOP_send             4` (`event_channel.h`): argument is an
/// `evtchn_send_t *`.
pub const EVTCHNOP_SEND: u64 = 4;

/// `#define EVTCHNOP_alloc_unbound    6` (`event_channel.h`): argument is an
/// `evtchn_alloc_unbound_t *`.
pub const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;

/// `#define MMU_NORMAL_PT_UPDATE       0 /* checked '*ptr = val'. ptr is MA.      */`
/// (`xen.h`): the command in bits 1:0 of `mmu_update.ptr`.
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;

/// `#define MMU_MACHPHYS_UPDATE        1 /* ptr = MA of frame to modify entry for */`
/// (`xen.h`): `mmu_update.val` becomes the M2P entry of the frame whose machine address
/// is `ptr` (Xen checks the frame is the caller's).
pub const MMU_MACHPHYS_UPDATE: u64 = 1;

/// `#define UVMF_INVLPG         (xen_mk_ulong(2)<<0) /* Flush only one entry. */`;
/// with `UVMF_LOCAL` (0): flush the one address on this vCPU only.
pub const UVMF_INVLPG: u64 = 2;

/// `#define MMUEXT_PIN_L1_TABLE      0` (`xen.h`): validate and pin `arg1.mfn` as an
/// L1 page table.
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;

/// `#define MMUEXT_UNPIN_TABLE       4` (`xen.h`).
pub const MMUEXT_UNPIN_TABLE: u32 = 4;

/// `#define MMUEXT_INVLPG_LOCAL      7` (`xen.h`): flush `arg1.linear_addr` from
/// this vCPU's TLB (`invlpg` itself is privileged: a PV kernel runs in ring 3).
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;

/// `#define GNTTABOP_map_grant_ref        0` (`grant_table.h`).
pub const GNTTABOP_MAP_GRANT_REF: u64 = 0;

/// `#define GNTTABOP_unmap_grant_ref      1` (`grant_table.h`).
pub const GNTTABOP_UNMAP_GRANT_REF: u64 = 1;

/// `#define GNTMAP_host_map         (1<<_GNTMAP_host_map)` with `_GNTMAP_host_map`
/// 1 (`grant_table.h`): map the granted frame at `host_addr`, a virtual address of
/// the caller (no `GNTMAP_contains_pte`).
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;

/// `#define GNTST_okay             (0)` (`grant_table.h`): a grant operation's
/// `status` on success; failures are negative `GNTST_*` codes.
pub const GNTST_OKAY: i16 = 0;

/// `#define GNTST_general_error    (-1)` (`grant_table.h`): among others, the grant
/// entry does not permit access to the mapping domain (`_set_status_v1`).
pub const GNTST_GENERAL_ERROR: i16 = -1;

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
    /// `XEN_ERRNO(EPERM, 1)`: operation not permitted.
    pub const EPERM: Self = Self(-1);
    /// `XEN_ERRNO(ENOENT, 2)`: no such entry (for example no such vCPU).
    pub const ENOENT: Self = Self(-2);
    /// `XEN_ERRNO(ENOMEM, 12)`: used by the guest itself when Xen allocated fewer
    /// frames than asked (`populate_physmap` returns a count, not an error).
    pub const ENOMEM: Self = Self(-12);
    /// `XEN_ERRNO(EFAULT, 14)`: bad address (Xen could not copy to or from the guest).
    pub const EFAULT: Self = Self(-14);
    /// `XEN_ERRNO(EBUSY, 16)`: for example a frame that may not be mapped
    /// (`get_page_from_l1e` in `xen/arch/x86/mm.c`).
    pub const EBUSY: Self = Self(-16);
    /// `XEN_ERRNO(EINVAL, 22)`: invalid argument.
    pub const EINVAL: Self = Self(-22);
    /// `XEN_ERRNO(ENOSYS, 38)`: function not implemented.
    pub const ENOSYS: Self = Self(-38);
    /// `XEN_ERRNO(ETIMEDOUT, 110)`: used by the guest itself for a wait that ran out.
    pub const ETIMEDOUT: Self = Self(-110);

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
