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
    /// [`Hypervisor`]; a handler jumps to its entry with an `iret_context` on its
    /// stack (`test_guest::traps`).
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

/// A domain id (`domid_t`, a `uint16_t`), including Xen's reserved ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomId(pub u16);

impl DomId {
    /// The control domain.
    pub const DOM0: Self = Self(0);
    /// `#define DOMID_SELF           xen_mk_uint(0x7FF0)` (`xen.h`).
    pub const SELF: Self = Self(0x7FF0);
    /// `#define DOMID_XEN            xen_mk_uint(0x7FF2)` (`xen.h`): owner of Xen's
    /// own pages; as a foreign domain "only permitted if the caller is privileged".
    pub const XEN: Self = Self(0x7FF2);
}

/// `struct mmu_update { uint64_t ptr; uint64_t val; };` (`xen.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmuUpdate {
    /// Machine address of the page-table entry, with the `MMU_*` command in bits 1:0.
    pub ptr: u64,
    /// New contents of the entry.
    pub val: u64,
}

impl MmuUpdate {
    /// `MMU_NORMAL_PT_UPDATE`: a checked `*entry_maddr = val`. `entry_maddr` is the
    /// machine address of an 8-byte aligned page-table entry.
    pub const fn normal_pt_update(entry_maddr: u64, val: u64) -> Self {
        Self {
            ptr: entry_maddr | MMU_NORMAL_PT_UPDATE,
            val,
        }
    }

    /// `MMU_MACHPHYS_UPDATE`: set the M2P entry of machine frame `mfn` to `pfn`, as a
    /// PV kernel must after it gives a pseudo-physical frame a new machine frame.
    pub const fn machphys_update(mfn: u64, pfn: u64) -> Self {
        Self {
            ptr: (mfn << 12) | MMU_MACHPHYS_UPDATE,
            val: pfn,
        }
    }
}

/// `struct mmuext_op` (`xen.h`) for a 64-bit guest: `unsigned int cmd`, then the
/// unions `arg1` (`xen_pfn_t mfn` / `unsigned long linear_addr`) and `arg2`
/// (`nr_ents` / `vcpumask` / `src_mfn`), both 8 bytes, at offsets 8 and 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmuextOp {
    /// `MMUEXT_*`.
    pub cmd: u32,
    /// `arg1`: a machine frame or a linear address, depending on `cmd`.
    pub arg1: u64,
    /// `arg2`: unused by the commands here (0).
    pub arg2: u64,
}

impl MmuextOp {
    /// `MMUEXT_PIN_L1_TABLE` of machine frame `mfn`.
    pub const fn pin_l1_table(mfn: u64) -> Self {
        Self {
            cmd: MMUEXT_PIN_L1_TABLE,
            arg1: mfn,
            arg2: 0,
        }
    }

    /// `MMUEXT_UNPIN_TABLE` of machine frame `mfn`.
    pub const fn unpin_table(mfn: u64) -> Self {
        Self {
            cmd: MMUEXT_UNPIN_TABLE,
            arg1: mfn,
            arg2: 0,
        }
    }

    /// `MMUEXT_INVLPG_LOCAL` of virtual address `va`.
    pub const fn invlpg_local(va: u64) -> Self {
        Self {
            cmd: MMUEXT_INVLPG_LOCAL,
            arg1: va,
            arg2: 0,
        }
    }
}

/// `struct gnttab_map_grant_ref` (`grant_table.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GnttabMapGrantRef {
    /// IN: where to map (a virtual address of the caller with `GNTMAP_host_map`).
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN: the grant reference, in the granting domain's table.
    pub ref_: u32,
    /// IN: the granting domain.
    pub dom: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: the handle that unmaps it.
    pub handle: u32,
    /// OUT: the bus address, with `GNTMAP_device_map`.
    pub dev_bus_addr: u64,
}

impl GnttabMapGrantRef {
    /// A read-write host mapping of `(dom, ref_)` at virtual address `host_addr`.
    pub const fn host_map(host_addr: u64, dom: DomId, ref_: u32) -> Self {
        Self {
            host_addr,
            flags: GNTMAP_HOST_MAP,
            ref_,
            dom: dom.0,
            status: GNTST_OKAY,
            handle: 0,
            dev_bus_addr: 0,
        }
    }
}

/// `struct gnttab_unmap_grant_ref` (`grant_table.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GnttabUnmapGrantRef {
    /// IN: the host mapping's virtual address (0: none).
    pub host_addr: u64,
    /// IN: the device mapping's bus address (0: none).
    pub dev_bus_addr: u64,
    /// IN: the handle `GNTTABOP_map_grant_ref` returned.
    pub handle: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// An event channel port (`evtchn_port_t`, a `uint32_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvtchnPort(pub u32);

/// A vCPU id, as `VCPUOP_*` take it (`unsigned int vcpuid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuId(pub u32);

/// Why the domain shuts down (`SHUTDOWN_*` in `sched.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// `#define SHUTDOWN_poweroff   0  /* Domain exited normally. Clean up and kill. */`
    Poweroff = 0,
    /// `#define SHUTDOWN_crash      3  /* Tell controller we've crashed.             */`
    Crash = 3,
}

/// `struct sched_shutdown { unsigned int reason; };` (`sched.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedShutdown {
    /// `SHUTDOWN_*`.
    pub reason: u32,
}

/// `struct evtchn_send { evtchn_port_t port; };` (`event_channel.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvtchnSend {
    /// The local port to notify through.
    pub port: u32,
}

/// `struct evtchn_alloc_unbound { domid_t dom, remote_dom; evtchn_port_t port; }`
/// (`event_channel.h`): 8 bytes, `port` at 4.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvtchnAllocUnbound {
    /// The domain the port is allocated in (`DOMID_SELF`).
    pub dom: u16,
    /// The domain that may bind the port's other end.
    pub remote_dom: u16,
    /// Out: the new port.
    pub port: u32,
}

/// `struct sched_poll { XEN_GUEST_HANDLE(evtchn_port_t) ports; unsigned int nr_ports;
/// uint64_t timeout; }` (`sched.h`): 24 bytes, `nr_ports` at 8, `timeout` at 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedPoll {
    /// Address of the array of ports.
    pub ports: u64,
    /// How many ports the array holds.
    pub nr_ports: u32,
    /// Padding (the handle and `timeout` are 8-byte aligned).
    pub pad: u32,
    /// Absolute Xen system time (ns) to wake up at anyway; 0 for none.
    pub timeout: u64,
}

/// Something that makes hypercalls: Xen through its hypercall page in the guest, a
/// recorder in host tests.
pub trait Hypervisor {
    /// Makes `call` and returns Xen's raw result (`rax`).
    ///
    /// # Safety
    ///
    /// Every argument that is a pointer must be valid, for the whole call, for what
    /// Xen does with it for this hypercall (read or write the argument structure or
    /// buffer).
    unsafe fn hypercall(&self, call: Hypercall) -> i64;
}

/// The address of `value`, as a hypercall argument.
fn arg_ptr<T>(value: &T) -> u64 {
    core::ptr::from_ref(value) as u64
}

/// The address of `value`, as a hypercall argument Xen may write through.
fn arg_ptr_mut<T>(value: &mut T) -> u64 {
    core::ptr::from_mut(value) as u64
}

/// A batch length as `mmu_update`'s and `mmuext_op`'s `unsigned int count`:
/// below [`MMU_UPDATE_PREEMPTED`], which Xen reads as its own continuation.
fn batch_count(len: usize) -> Result<u32, XenError> {
    u32::try_from(len)
        .ok()
        .filter(|&count| count < MMU_UPDATE_PREEMPTED)
        .ok_or(XenError::EINVAL)
}

/// `HYPERVISOR_update_va_mapping(va, val, flags)`: a checked write of `val` into the
/// L1 entry that maps `va` in the current page tables (`do_update_va_mapping`,
/// `xen/arch/x86/mm.c`), then the TLB flush `flags` asks for.
///
/// # Safety
///
/// Xen changes what `va` shows: unless `val` maps the same frame as before, nothing
/// Rust relies on may live in that page (no reference into it, no value read through
/// it that must stay the same) until the original entry is back.
pub unsafe fn update_va_mapping<H: Hypervisor + ?Sized>(
    hv: &H,
    va: u64,
    val: u64,
    flags: u64,
) -> Result<(), XenError> {
    let call = Hypercall::new(HypercallNr::UPDATE_VA_MAPPING, [va, val, flags, 0, 0]);
    // SAFETY: no pointer arguments: Xen reads no memory of the caller for this call
    // (it walks the page tables to the entry for `va`); the change of mapping is this
    // fn's contract.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_mmu_update(reqs, count, &done, foreigndom)`: applies `reqs` in order,
/// stopping at the first that fails. Returns how many were done (all of them on
/// success); on failure Xen's error. `foreigndom` names the expected owner of the
/// frames new L1 entries map (`DomId::SELF` for the caller); the page tables are
/// the caller's own (PFD bits 31:16 = 0).
///
/// # Safety
///
/// Every request must change only entries Rust does not rely on: an L1 entry as in
/// [`update_va_mapping`], no higher-level entry or M2P entry the kernel uses.
pub unsafe fn mmu_update<H: Hypervisor + ?Sized>(
    hv: &H,
    reqs: &[MmuUpdate],
    foreigndom: DomId,
) -> Result<u32, XenError> {
    let count = batch_count(reqs.len())?;
    let mut done: u32 = 0;
    let call = Hypercall::new(
        HypercallNr::MMU_UPDATE,
        [
            reqs.as_ptr() as u64,
            u64::from(count),
            arg_ptr_mut(&mut done),
            u64::from(foreigndom.0),
            0,
        ],
    );
    // SAFETY: `reqs` is `count` live `mmu_update` structures Xen only reads; `done`
    // is a live `unsigned int` Xen may write.
    let ret = unsafe { hv.hypercall(call) };
    XenError::check(ret).map(|_| done)
}

/// `HYPERVISOR_mmuext_op(ops, count, &done, foreigndom)`: applies `ops` in order,
/// stopping at the first that fails. Returns how many were done; on failure Xen's
/// error.
///
/// # Safety
///
/// The ops must not change page tables or mappings Rust relies on (no
/// `MMUEXT_NEW_BASEPTR`, no unpinning a table in use). Pinning or unpinning a frame
/// the kernel does not use as a page table, and TLB flushes, are fine.
pub unsafe fn mmuext_op<H: Hypervisor + ?Sized>(
    hv: &H,
    ops: &[MmuextOp],
    foreigndom: DomId,
) -> Result<u32, XenError> {
    let count = batch_count(ops.len())?;
    let mut done: u32 = 0;
    let call = Hypercall::new(
        HypercallNr::MMUEXT_OP,
        [
            ops.as_ptr() as u64,
            u64::from(count),
            arg_ptr_mut(&mut done),
            u64::from(foreigndom.0),
            0,
        ],
    );
    // SAFETY: `ops` is `count` live `mmuext_op` structures Xen only reads; `done` is
    // a live `unsigned int` Xen may write.
    let ret = unsafe { hv.hypercall(call) };
    XenError::check(ret).map(|_| done)
}

/// `struct multicall_entry { xen_ulong_t op, result; xen_ulong_t args[6]; }` (`xen.h`),
/// 64 bytes for a 64-bit guest: one hypercall of a [`multicall`] batch.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulticallEntry {
    /// The hypercall number.
    pub op: u64,
    /// OUT: what the hypercall returned (as `rax` would hold it).
    pub result: u64,
    /// Its arguments; the sixth is unused by the hypercalls here.
    pub args: [u64; 6],
}

impl MulticallEntry {
    /// The batch entry for `call` (its number and five arguments), result 0.
    pub const fn new(call: Hypercall) -> Self {
        let [a0, a1, a2, a3, a4] = call.args;
        Self {
            op: call.nr.0 as u64,
            result: 0,
            args: [a0, a1, a2, a3, a4, 0],
        }
    }

    /// The entry's result as a hypercall's: an error when negative.
    pub const fn check(&self) -> Result<u64, XenError> {
        XenError::check(self.result as i64)
    }
}

/// `HYPERVISOR_multicall(calls, nr_calls)`: Xen makes each hypercall of the batch in
/// order and writes its result into its entry (`do_multicall`, `xen/common/multicall.c`).
/// `Err` only when the batch itself fails; each call's own result is its entry's
/// [`MulticallEntry::check`]. A call Xen preempts (a continuation) is finished before
/// the next one starts, so a batch is as a sequence of the same hypercalls; Xen may
/// rewrite an entry's arguments meanwhile (the continuation's), hence `&mut`.
///
/// # Safety
///
/// Every entry must be a hypercall whose own safety contract holds (its pointer
/// arguments valid for what Xen does with them, for the whole batch).
pub unsafe fn multicall<H: Hypervisor + ?Sized>(
    hv: &H,
    calls: &mut [MulticallEntry],
) -> Result<(), XenError> {
    // `nr_calls` is an `uint32_t`.
    let count = u32::try_from(calls.len()).map_err(|_| XenError::EINVAL)?;
    let call = Hypercall::new(
        HypercallNr::MULTICALL,
        [calls.as_mut_ptr() as u64, u64::from(count), 0, 0, 0],
    );
    // SAFETY: `calls` is `count` live entries Xen reads and writes (results, and the
    // arguments of a continuation); what each call does with its own arguments is
    // this fn's contract.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_grant_table_op(GNTTABOP_map_grant_ref, op, 1)`. `Err` only when the
/// hypercall itself fails; the mapping's own result is `op.status` (`GNTST_*`), and
/// on success `op.handle` unmaps it.
///
/// # Safety
///
/// With `GNTMAP_host_map` Xen replaces the mapping at `op.host_addr`: as for
/// [`update_va_mapping`], nothing Rust relies on may live in that page.
pub unsafe fn gnttab_map_grant_ref<H: Hypervisor + ?Sized>(
    hv: &H,
    op: &mut GnttabMapGrantRef,
) -> Result<(), XenError> {
    let call = Hypercall::new(
        HypercallNr::GRANT_TABLE_OP,
        [GNTTABOP_MAP_GRANT_REF, arg_ptr_mut(op), 1, 0, 0],
    );
    // SAFETY: the only pointer is `op`, one live `gnttab_map_grant_ref` that Xen
    // reads and writes back (its OUT fields).
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_grant_table_op(GNTTABOP_unmap_grant_ref, op, 1)`. `Err` only when the
/// hypercall itself fails; the unmapping's own result is `op.status`. For a PV host
/// mapping Xen clears the L1 entry at `op.host_addr` (it does not put back what was
/// mapped there before).
///
/// # Safety
///
/// Nothing may access the page at `op.host_addr` until something is mapped there
/// again.
pub unsafe fn gnttab_unmap_grant_ref<H: Hypervisor + ?Sized>(
    hv: &H,
    op: &mut GnttabUnmapGrantRef,
) -> Result<(), XenError> {
    let call = Hypercall::new(
        HypercallNr::GRANT_TABLE_OP,
        [GNTTABOP_UNMAP_GRANT_REF, arg_ptr_mut(op), 1, 0, 0],
    );
    // SAFETY: the only pointer is `op`, one live `gnttab_unmap_grant_ref` that Xen
    // reads and writes back (`status`).
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_event_channel_op(EVTCHNOP_send, &(evtchn_send_t){ port })`: notifies
/// the other end of `port`.
pub fn evtchn_send<H: Hypervisor + ?Sized>(hv: &H, port: EvtchnPort) -> Result<(), XenError> {
    let send = EvtchnSend { port: port.0 };
    let call = Hypercall::new(
        HypercallNr::EVENT_CHANNEL_OP,
        [EVTCHNOP_SEND, arg_ptr(&send), 0, 0, 0],
    );
    // SAFETY: the only pointer is `send`, a live `evtchn_send` Xen only reads.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_event_channel_op(EVTCHNOP_alloc_unbound, &(evtchn_alloc_unbound_t){
/// DOMID_SELF, remote, 0 })`: a new port of this domain, unbound, which domain `remote`
/// may bind (`evtchn_alloc_unbound`, `xen/common/event_channel.c`). Its notifications
/// go to vCPU 0.
pub fn evtchn_alloc_unbound<H: Hypervisor + ?Sized>(
    hv: &H,
    remote: DomId,
) -> Result<EvtchnPort, XenError> {
    let mut alloc = EvtchnAllocUnbound {
        dom: DomId::SELF.0,
        remote_dom: remote.0,
        port: 0,
    };
    let call = Hypercall::new(
        HypercallNr::EVENT_CHANNEL_OP,
        [EVTCHNOP_ALLOC_UNBOUND, arg_ptr_mut(&mut alloc), 0, 0, 0],
    );
    // SAFETY: the only pointer is `alloc`, a live `evtchn_alloc_unbound` that Xen reads
    // and writes back (`port`).
    XenError::check(unsafe { hv.hypercall(call) })?;
    Ok(EvtchnPort(alloc.port))
}

/// `HYPERVISOR_sched_op(SCHEDOP_poll, &(sched_poll_t){ ports, 1, timeout })`: blocks
/// this vCPU until `port` is pending or Xen's system time reaches `timeout_ns` (0: no
/// timeout); returns at once if the port already is pending (`do_poll`,
/// `xen/common/sched/core.c`). A masked port wakes its pollers too, and polling
/// delivers no upcall. Success says nothing about which happened: the caller
/// checks the port's pending bit.
pub fn sched_poll<H: Hypervisor + ?Sized>(
    hv: &H,
    port: EvtchnPort,
    timeout_ns: u64,
) -> Result<(), XenError> {
    let ports = [port.0];
    let poll = SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: 1,
        pad: 0,
        timeout: timeout_ns,
    };
    let call = Hypercall::new(
        HypercallNr::SCHED_OP,
        [SCHEDOP_POLL, arg_ptr(&poll), 0, 0, 0],
    );
    // SAFETY: the pointers are `poll`, a live `sched_poll` Xen only reads, and, inside
    // it, `ports`, one live port Xen only reads.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_sched_op(SCHEDOP_shutdown, &(sched_shutdown_t){ reason })`. On
/// success the domain is shutting down and this vCPU is not scheduled again, so the
/// caller rarely sees the return.
pub fn sched_shutdown<H: Hypervisor + ?Sized>(
    hv: &H,
    reason: ShutdownReason,
) -> Result<(), XenError> {
    let shutdown = SchedShutdown {
        reason: reason as u32,
    };
    let call = Hypercall::new(
        HypercallNr::SCHED_OP,
        [SCHEDOP_SHUTDOWN, arg_ptr(&shutdown), 0, 0, 0],
    );
    // SAFETY: the only pointer is `shutdown`, a live `sched_shutdown` Xen only reads.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_sched_op(SCHEDOP_yield, NULL)`: lets other vCPUs (xenconsoled's in
/// dom0) run.
///
/// Unlike `SCHEDOP_block`, yielding leaves event delivery masked: this kernel
/// registers no event callback, so an unmasked upcall would crash it.
pub fn sched_yield<H: Hypervisor + ?Sized>(hv: &H) -> Result<(), XenError> {
    let call = Hypercall::new(HypercallNr::SCHED_OP, [SCHEDOP_YIELD, 0, 0, 0, 0]);
    // SAFETY: no pointer arguments (the NULL argument is not dereferenced).
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_vcpu_op(VCPUOP_is_up, vcpu, NULL)`: whether `vcpu` is up;
/// `Err(XenError::ENOENT)` when the domain has no such vCPU.
pub fn vcpu_is_up<H: Hypervisor + ?Sized>(hv: &H, vcpu: VcpuId) -> Result<bool, XenError> {
    let call = Hypercall::new(
        HypercallNr::VCPU_OP,
        [VCPUOP_IS_UP, u64::from(vcpu.0), 0, 0, 0],
    );
    // SAFETY: no pointer arguments.
    XenError::check(unsafe { hv.hypercall(call) }).map(|up| up != 0)
}

/// Counts the domain's vCPUs (up or down): asks `VCPUOP_is_up` for ids 0, 1, ...
/// until Xen answers `-ENOENT`, trying at most `max` ids. Any other error is
/// returned.
pub fn count_vcpus<H: Hypervisor + ?Sized>(hv: &H, max: u32) -> Result<u32, XenError> {
    for id in 0..max {
        match vcpu_is_up(hv, VcpuId(id)) {
            Ok(_) => {}
            Err(XenError::ENOENT) => return Ok(id),
            Err(e) => return Err(e),
        }
    }
    Ok(max)
}

/// `HYPERVISOR_xen_version(XENVER_extraversion, buf)`: Xen copies its 16-byte extra
/// version string (`xen_extra_version()`, NUL-padded) to `buf` (`do_xen_version`,
/// `xen/common/kernel.c`). Returns Xen's raw result: 0, or `-EFAULT` when the copy to
/// `buf` failed. The raw value is what the `xen-copy` pattern reports.
///
/// # Safety
///
/// `buf` must be valid for writes of [`XEN_EXTRAVERSION_LEN`] bytes, and nothing Rust
/// relies on may be there (Xen writes it behind the compiler's back).
pub unsafe fn xen_version_extraversion<H: Hypervisor + ?Sized>(hv: &H, buf: *mut u8) -> i64 {
    let call = Hypercall::new(
        HypercallNr::XEN_VERSION,
        [XENVER_EXTRAVERSION, buf as u64, 0, 0, 0],
    );
    // SAFETY: the only pointer is `buf`, writable for the 16 bytes Xen copies (this
    // fn's contract).
    unsafe { hv.hypercall(call) }
}

/// `HYPERVISOR_vm_assist(VMASST_CMD_enable, type)`: turns on one of Xen's assists for
/// the whole domain.
pub fn vm_assist_enable<H: Hypervisor + ?Sized>(hv: &H, assist: u64) -> Result<(), XenError> {
    let call = Hypercall::new(HypercallNr::VM_ASSIST, [VMASST_CMD_ENABLE, assist, 0, 0, 0]);
    // SAFETY: no pointer arguments. The assists change how Xen treats later faults
    // (writable page tables: it emulates writes to L1 tables instead of reflecting
    // the fault), not any memory Rust relies on.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_console_io(CONSOLEIO_write, len, bytes)`: writes to Xen's own
/// console. Xen allows it to a domU only when built with `CONFIG_VERBOSE_DEBUG`
/// (the default of a debug build; `xsm_console_io`), otherwise `-EPERM`.
pub fn console_io_write<H: Hypervisor + ?Sized>(hv: &H, bytes: &[u8]) -> Result<(), XenError> {
    // `count` is an `unsigned int`: split anything longer (never happens in practice).
    for chunk in bytes.chunks(u32::MAX as usize) {
        let call = Hypercall::new(
            HypercallNr::CONSOLE_IO,
            [
                CONSOLEIO_WRITE,
                chunk.len() as u64,
                chunk.as_ptr() as u64,
                0,
                0,
            ],
        );
        // SAFETY: the pointer is `chunk`, valid for `chunk.len()` bytes that Xen only
        // reads.
        XenError::check(unsafe { hv.hypercall(call) })?;
    }
    Ok(())
}

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use self::page::HypercallPage;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod page {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::vec::Vec;

    #[test]
    fn multicall_entries_are_xen_s_layout_and_marshal_their_call() {
        use core::mem::{offset_of, size_of};
        assert_eq!(size_of::<MulticallEntry>(), 64);
        assert_eq!(offset_of!(MulticallEntry, result), 8);
        assert_eq!(offset_of!(MulticallEntry, args), 16);
        let entry = MulticallEntry::new(Hypercall::new(
            HypercallNr::MMU_UPDATE,
            [0x1000, 1, 0x2000, 0x7ff0, 0],
        ));
        assert_eq!(entry.op, 1);
        assert_eq!(entry.args, [0x1000, 1, 0x2000, 0x7ff0, 0, 0]);
        assert_eq!(entry.check(), Ok(0));
        let failed = MulticallEntry {
            result: -22i64 as u64,
            ..entry
        };
        assert_eq!(failed.check(), Err(XenError::EINVAL));
    }

    #[test]
    fn multicall_passes_the_batch_and_its_length() {
        let recorder = Recorder::new(false, |_| 0);
        let mut batch = [MulticallEntry::new(Hypercall::new(
            HypercallNr::UPDATE_VA_MAPPING,
            [0x2c_5000, 0, UVMF_INVLPG, 0, 0],
        )); 2];
        // SAFETY: the recorder reads nothing.
        assert_eq!(unsafe { multicall(&recorder, &mut batch) }, Ok(()));
        let calls = recorder.calls.borrow();
        assert_eq!(calls[0].0.nr, HypercallNr::MULTICALL);
        assert_eq!(calls[0].0.args[..2], [batch.as_ptr() as u64, 2]);
    }

    /// Records each call, with the 32-bit word its second argument points to when
    /// `deref_arg1` says so, and answers from a script.
    struct Recorder {
        calls: RefCell<Vec<(Hypercall, Option<u32>)>>,
        deref_arg1: bool,
        answer: fn(&Hypercall) -> i64,
    }

    impl Recorder {
        fn new(deref_arg1: bool, answer: fn(&Hypercall) -> i64) -> Self {
            Self {
                calls: RefCell::new(Vec::new()),
                deref_arg1,
                answer,
            }
        }
    }

    impl Hypervisor for Recorder {
        unsafe fn hypercall(&self, call: Hypercall) -> i64 {
            let pointee = self.deref_arg1.then(|| {
                // SAFETY: the tests set `deref_arg1` only for hypercalls whose second
                // argument points to a live 32-bit structure (this fn's contract).
                unsafe { (call.args[1] as *const u32).read() }
            });
            self.calls.borrow_mut().push((call, pointee));
            (self.answer)(&call)
        }
    }

    #[test]
    fn numbers_match_xen_headers() {
        assert_eq!(HypercallNr::CONSOLE_IO.get(), 18);
        assert_eq!(HypercallNr::VCPU_OP.get(), 24);
        assert_eq!(HypercallNr::SCHED_OP.get(), 29);
        assert_eq!(HypercallNr::EVENT_CHANNEL_OP.get(), 32);
        assert_eq!(
            (
                CONSOLEIO_WRITE,
                VCPUOP_IS_UP,
                SCHEDOP_YIELD,
                SCHEDOP_SHUTDOWN
            ),
            (0, 3, 0, 2)
        );
        assert_eq!(EVTCHNOP_SEND, 4);
        assert_eq!(ShutdownReason::Poweroff as u32, 0);
        assert_eq!(ShutdownReason::Crash as u32, 3);
        assert_eq!(XenError::ENOENT.errno(), 2);
        assert_eq!(size_of::<SchedShutdown>(), 4);
        assert_eq!(size_of::<EvtchnSend>(), 4);
    }

    #[test]
    fn entries_are_32_bytes_apart_inside_the_page() {
        let at = |nr| Hypercall::new(nr, [0; 5]).entry_offset();
        assert_eq!(at(HypercallNr::CONSOLE_IO), 18 * 32);
        assert_eq!(at(HypercallNr::VCPU_OP), 768);
        assert_eq!(at(HypercallNr::SCHED_OP), 928);
        assert_eq!(at(HypercallNr::EVENT_CHANNEL_OP), 1024);
        assert_eq!(at(HypercallNr::MMU_UPDATE), 32);
        assert_eq!(at(HypercallNr::UPDATE_VA_MAPPING), 14 * 32);
        assert_eq!(at(HypercallNr::GRANT_TABLE_OP), 640);
        assert_eq!(at(HypercallNr::MMUEXT_OP), 832);
        assert_eq!(at(HypercallNr::MEMORY_OP), 384);
        assert_eq!(at(HypercallNr::XEN_VERSION), 544);
        assert_eq!(at(HypercallNr::VM_ASSIST), 672);
        for nr in [
            HypercallNr::MMU_UPDATE,
            HypercallNr::MEMORY_OP,
            HypercallNr::XEN_VERSION,
            HypercallNr::VM_ASSIST,
            HypercallNr::UPDATE_VA_MAPPING,
            HypercallNr::CONSOLE_IO,
            HypercallNr::GRANT_TABLE_OP,
            HypercallNr::VCPU_OP,
            HypercallNr::MMUEXT_OP,
            HypercallNr::SCHED_OP,
            HypercallNr::EVENT_CHANNEL_OP,
        ] {
            assert!(at(nr) + HYPERCALL_ENTRY_SIZE <= HYPERCALL_PAGE_SIZE);
        }
    }

    #[test]
    fn arguments_go_in_rdi_rsi_rdx_r10_r8() {
        let call = Hypercall::new(HypercallNr::SCHED_OP, [1, 2, 3, 4, 5]);
        assert_eq!(
            call.registers(),
            Registers {
                rdi: 1,
                rsi: 2,
                rdx: 3,
                r10: 4,
                r8: 5
            }
        );
    }

    #[test]
    fn check_splits_negative_errno() {
        assert_eq!(XenError::check(0), Ok(0));
        assert_eq!(XenError::check(7), Ok(7));
        assert_eq!(XenError::check(-2), Err(XenError::ENOENT));
        assert_eq!(XenError::check(-38), Err(XenError::ENOSYS));
    }

    #[test]
    fn shutdown_passes_reason_by_pointer() {
        let hv = Recorder::new(true, |_| 0);
        assert_eq!(sched_shutdown(&hv, ShutdownReason::Poweroff), Ok(()));
        assert_eq!(sched_shutdown(&hv, ShutdownReason::Crash), Ok(()));
        let calls = hv.calls.borrow();
        assert_eq!(calls.len(), 2);
        for ((call, pointee), reason) in calls.iter().zip([0, 3]) {
            assert_eq!(call.nr, HypercallNr::SCHED_OP);
            assert_eq!(call.args[0], SCHEDOP_SHUTDOWN);
            assert_ne!(call.args[1], 0, "argument is a pointer, not the value");
            assert_eq!(*pointee, Some(reason));
            assert_eq!(&call.args[2..], &[0, 0, 0]);
        }
    }

    #[test]
    fn event_and_poll_layouts_match_the_headers() {
        use core::mem::offset_of;
        assert_eq!((EVTCHNOP_ALLOC_UNBOUND, SCHEDOP_POLL), (6, 3));
        assert_eq!(size_of::<EvtchnAllocUnbound>(), 8);
        assert_eq!(offset_of!(EvtchnAllocUnbound, dom), 0);
        assert_eq!(offset_of!(EvtchnAllocUnbound, remote_dom), 2);
        assert_eq!(offset_of!(EvtchnAllocUnbound, port), 4);
        assert_eq!(size_of::<SchedPoll>(), 24);
        assert_eq!(offset_of!(SchedPoll, ports), 0);
        assert_eq!(offset_of!(SchedPoll, nr_ports), 8);
        assert_eq!(offset_of!(SchedPoll, timeout), 16);
    }

    #[test]
    fn alloc_unbound_asks_for_self_and_returns_xen_s_port() {
        struct Xen(RefCell<Option<EvtchnAllocUnbound>>);
        impl Hypervisor for Xen {
            unsafe fn hypercall(&self, call: Hypercall) -> i64 {
                assert_eq!(call.nr, HypercallNr::EVENT_CHANNEL_OP);
                assert_eq!(call.args[0], EVTCHNOP_ALLOC_UNBOUND);
                let alloc = call.args[1] as *mut EvtchnAllocUnbound;
                // SAFETY: `evtchn_alloc_unbound` passes a live, writable structure.
                unsafe {
                    *self.0.borrow_mut() = Some(alloc.read());
                    (*alloc).port = 42;
                }
                0
            }
        }
        let xen = Xen(RefCell::new(None));
        assert_eq!(evtchn_alloc_unbound(&xen, DomId::DOM0), Ok(EvtchnPort(42)));
        assert_eq!(
            *xen.0.borrow(),
            Some(EvtchnAllocUnbound {
                dom: 0x7FF0,
                remote_dom: 0,
                port: 0
            })
        );
        let refused = Recorder::new(false, |_| -28);
        assert_eq!(
            evtchn_alloc_unbound(&refused, DomId::DOM0).map_err(XenError::errno),
            Err(28)
        );
    }

    #[test]
    fn poll_passes_one_port_and_the_timeout() {
        struct Xen(RefCell<Vec<(SchedPoll, u32)>>);
        impl Hypervisor for Xen {
            unsafe fn hypercall(&self, call: Hypercall) -> i64 {
                assert_eq!(call.nr, HypercallNr::SCHED_OP);
                assert_eq!(call.args[0], SCHEDOP_POLL);
                // SAFETY: `sched_poll` passes a live structure and a live port array.
                let (poll, port) = unsafe {
                    let poll = (call.args[1] as *const SchedPoll).read();
                    (poll, (poll.ports as *const u32).read())
                };
                self.0.borrow_mut().push((poll, port));
                0
            }
        }
        let xen = Xen(RefCell::new(Vec::new()));
        assert_eq!(sched_poll(&xen, EvtchnPort(9), 123_456), Ok(()));
        let calls = xen.0.borrow();
        let (poll, port) = calls[0];
        assert_eq!((poll.nr_ports, poll.timeout, port), (1, 123_456, 9));
    }

    #[test]
    fn evtchn_send_passes_port_by_pointer() {
        let hv = Recorder::new(true, |_| 0);
        assert_eq!(evtchn_send(&hv, EvtchnPort(7)), Ok(()));
        let calls = hv.calls.borrow();
        let (call, pointee) = calls[0];
        assert_eq!(call.nr, HypercallNr::EVENT_CHANNEL_OP);
        assert_eq!(call.args[0], EVTCHNOP_SEND);
        assert_eq!(pointee, Some(7));
    }

    #[test]
    fn yield_has_null_argument() {
        let hv = Recorder::new(false, |_| 0);
        assert_eq!(sched_yield(&hv), Ok(()));
        let calls = hv.calls.borrow();
        assert_eq!(calls[0].0.nr, HypercallNr::SCHED_OP);
        assert_eq!(calls[0].0.args, [SCHEDOP_YIELD, 0, 0, 0, 0]);
    }

    #[test]
    fn count_vcpus_stops_at_enoent() {
        // Three vCPUs: 0 up, 1 and 2 down, none from 3 on.
        let hv = Recorder::new(false, |call| match call.args[1] {
            0 => 1,
            1 | 2 => 0,
            _ => -2,
        });
        assert_eq!(count_vcpus(&hv, 64), Ok(3));
        let calls = hv.calls.borrow();
        assert_eq!(calls.len(), 4);
        for (id, (call, _)) in calls.iter().enumerate() {
            assert_eq!(call.nr, HypercallNr::VCPU_OP);
            assert_eq!(call.args, [VCPUOP_IS_UP, id as u64, 0, 0, 0]);
        }
    }

    #[test]
    fn count_vcpus_reports_other_errors_and_respects_max() {
        let hv = Recorder::new(false, |_| -38);
        assert_eq!(count_vcpus(&hv, 64), Err(XenError::ENOSYS));
        let hv = Recorder::new(false, |_| 1);
        assert_eq!(count_vcpus(&hv, 5), Ok(5));
        assert_eq!(hv.calls.borrow().len(), 5);
    }

    #[test]
    fn console_io_write_passes_length_and_buffer() {
        let hv = Recorder::new(false, |_| 0);
        let text = b"hello\n";
        assert_eq!(console_io_write(&hv, text), Ok(()));
        let calls = hv.calls.borrow();
        assert_eq!(calls[0].0.nr, HypercallNr::CONSOLE_IO);
        assert_eq!(
            calls[0].0.args,
            [CONSOLEIO_WRITE, 6, text.as_ptr() as u64, 0, 0]
        );
        let denied = Recorder::new(false, |_| -1);
        assert_eq!(console_io_write(&denied, text), Err(XenError::EPERM));
    }

    #[test]
    fn xen_version_and_vm_assist_numbers_and_arguments() {
        // Checked with a C program including xen.h and version.h of Xen 4.17.
        assert_eq!(HypercallNr::MEMORY_OP.get(), 12);
        assert_eq!(HypercallNr::XEN_VERSION.get(), 17);
        assert_eq!(HypercallNr::VM_ASSIST.get(), 21);
        assert_eq!((XENVER_EXTRAVERSION, XEN_EXTRAVERSION_LEN), (1, 16));
        assert_eq!((VMASST_CMD_ENABLE, VMASST_TYPE_WRITABLE_PAGETABLES), (0, 2));
        assert_eq!(
            (XenError::EFAULT.code(), XenError::ETIMEDOUT.code()),
            (-14, -110)
        );

        let hv = Recorder::new(false, |call| {
            if call.nr == HypercallNr::XEN_VERSION {
                -14
            } else {
                0
            }
        });
        let mut buf = [0u8; XEN_EXTRAVERSION_LEN];
        // SAFETY: `buf` is 16 writable bytes; the recorder writes nothing.
        let rc = unsafe { xen_version_extraversion(&hv, buf.as_mut_ptr()) };
        assert_eq!(rc, -14, "the raw result, not an Err");
        assert_eq!(
            vm_assist_enable(&hv, VMASST_TYPE_WRITABLE_PAGETABLES),
            Ok(())
        );
        let calls = hv.calls.borrow();
        assert_eq!(calls[0].0.nr, HypercallNr::XEN_VERSION);
        assert_eq!(calls[0].0.args, [1, buf.as_ptr() as u64, 0, 0, 0]);
        assert_eq!(calls[1].0.nr, HypercallNr::VM_ASSIST);
        assert_eq!(calls[1].0.args, [0, 2, 0, 0, 0]);
        let refused = Recorder::new(false, |_| -22);
        assert_eq!(vm_assist_enable(&refused, 2), Err(XenError::EINVAL));
    }

    /// Answers each call with a closure that sees the call (and may read or write
    /// through its pointers, as Xen would) and records the calls.
    struct Scripted<F: Fn(&Hypercall) -> i64> {
        calls: RefCell<Vec<Hypercall>>,
        answer: F,
    }

    impl<F: Fn(&Hypercall) -> i64> Scripted<F> {
        fn new(answer: F) -> Self {
            Self {
                calls: RefCell::new(Vec::new()),
                answer,
            }
        }
    }

    impl<F: Fn(&Hypercall) -> i64> Hypervisor for Scripted<F> {
        unsafe fn hypercall(&self, call: Hypercall) -> i64 {
            self.calls.borrow_mut().push(call);
            (self.answer)(&call)
        }
    }

    /// Reads a `T` that a marshalled pointer argument points to.
    ///
    /// # Safety
    ///
    /// `addr` must point to a live, aligned `T` (a wrapper's argument during its call).
    unsafe fn pointee<T: Copy>(addr: u64) -> T {
        // SAFETY: this fn's contract.
        unsafe { (addr as *const T).read() }
    }

    /// Writes a `T` where a marshalled pointer argument points, as Xen writes OUT
    /// fields.
    ///
    /// # Safety
    ///
    /// `addr` must point to a live, aligned, writable `T`.
    unsafe fn write_pointee<T>(addr: u64, value: T) {
        // SAFETY: this fn's contract.
        unsafe { (addr as *mut T).write(value) }
    }

    // The memory wrappers for the tests' hypervisors. Their safety contracts are about
    // real page tables; a recording hypervisor changes no mapping.

    fn sim_update_va_mapping<H: Hypervisor>(
        hv: &H,
        va: u64,
        val: u64,
        flags: u64,
    ) -> Result<(), XenError> {
        // SAFETY: `hv` is a test hypervisor, which changes no mapping.
        unsafe { update_va_mapping(hv, va, val, flags) }
    }

    fn sim_mmu_update<H: Hypervisor>(
        hv: &H,
        reqs: &[MmuUpdate],
        foreigndom: DomId,
    ) -> Result<u32, XenError> {
        // SAFETY: `hv` is a test hypervisor, which changes no mapping.
        unsafe { mmu_update(hv, reqs, foreigndom) }
    }

    fn sim_mmuext_op<H: Hypervisor>(
        hv: &H,
        ops: &[MmuextOp],
        foreigndom: DomId,
    ) -> Result<u32, XenError> {
        // SAFETY: `hv` is a test hypervisor, which changes no mapping.
        unsafe { mmuext_op(hv, ops, foreigndom) }
    }

    fn sim_gnttab_map_grant_ref<H: Hypervisor>(
        hv: &H,
        op: &mut GnttabMapGrantRef,
    ) -> Result<(), XenError> {
        // SAFETY: `hv` is a test hypervisor, which changes no mapping.
        unsafe { gnttab_map_grant_ref(hv, op) }
    }

    fn sim_gnttab_unmap_grant_ref<H: Hypervisor>(
        hv: &H,
        op: &mut GnttabUnmapGrantRef,
    ) -> Result<(), XenError> {
        // SAFETY: `hv` is a test hypervisor, which changes no mapping.
        unsafe { gnttab_unmap_grant_ref(hv, op) }
    }

    #[test]
    fn memory_numbers_match_xen_headers() {
        // Checked with a C program including xen.h and grant_table.h of Xen 4.17.
        assert_eq!(HypercallNr::MMU_UPDATE.get(), 1);
        assert_eq!(HypercallNr::UPDATE_VA_MAPPING.get(), 14);
        assert_eq!(HypercallNr::GRANT_TABLE_OP.get(), 20);
        assert_eq!(HypercallNr::MMUEXT_OP.get(), 26);
        assert_eq!(MMU_NORMAL_PT_UPDATE, 0);
        assert_eq!(UVMF_INVLPG, 2);
        assert_eq!(
            (MMUEXT_PIN_L1_TABLE, MMUEXT_UNPIN_TABLE, MMUEXT_INVLPG_LOCAL),
            (0, 4, 7)
        );
        assert_eq!((GNTTABOP_MAP_GRANT_REF, GNTTABOP_UNMAP_GRANT_REF), (0, 1));
        assert_eq!(GNTMAP_HOST_MAP, 2);
        assert_eq!((GNTST_OKAY, GNTST_GENERAL_ERROR), (0, -1));
        assert_eq!(DomId::SELF.0, 32752);
        assert_eq!(DomId::XEN.0, 32754);
        assert_eq!(DomId::DOM0.0, 0);
        assert_eq!(XenError::EBUSY.code(), -16);
        assert_eq!(XenError::EPERM.code(), -1);
        assert_eq!(XenError::EINVAL.errno(), 22);
    }

    /// Offsets as gcc lays out the Xen 4.17 headers for x86_64 (printed with
    /// `offsetof`/`sizeof` from a C program including `xen.h` and `grant_table.h`).
    #[test]
    fn memory_structs_match_xen_headers() {
        use core::mem::offset_of;
        assert_eq!(offset_of!(MmuUpdate, ptr), 0);
        assert_eq!(offset_of!(MmuUpdate, val), 8);
        assert_eq!(size_of::<MmuUpdate>(), 16);

        assert_eq!(offset_of!(MmuextOp, cmd), 0);
        assert_eq!(offset_of!(MmuextOp, arg1), 8);
        assert_eq!(offset_of!(MmuextOp, arg2), 16);
        assert_eq!(size_of::<MmuextOp>(), 24);

        assert_eq!(offset_of!(GnttabMapGrantRef, host_addr), 0);
        assert_eq!(offset_of!(GnttabMapGrantRef, flags), 8);
        assert_eq!(offset_of!(GnttabMapGrantRef, ref_), 12);
        assert_eq!(offset_of!(GnttabMapGrantRef, dom), 16);
        assert_eq!(offset_of!(GnttabMapGrantRef, status), 18);
        assert_eq!(offset_of!(GnttabMapGrantRef, handle), 20);
        assert_eq!(offset_of!(GnttabMapGrantRef, dev_bus_addr), 24);
        assert_eq!(size_of::<GnttabMapGrantRef>(), 32);

        assert_eq!(offset_of!(GnttabUnmapGrantRef, host_addr), 0);
        assert_eq!(offset_of!(GnttabUnmapGrantRef, dev_bus_addr), 8);
        assert_eq!(offset_of!(GnttabUnmapGrantRef, handle), 16);
        assert_eq!(offset_of!(GnttabUnmapGrantRef, status), 20);
        assert_eq!(size_of::<GnttabUnmapGrantRef>(), 24);
    }

    #[test]
    fn update_va_mapping_passes_va_pte_flags_by_value() {
        let hv = Recorder::new(false, |_| -16);
        let pte = (0x1_2345 << 12) | 3;
        assert_eq!(
            sim_update_va_mapping(&hv, 0x20f000, pte, UVMF_INVLPG),
            Err(XenError::EBUSY)
        );
        let calls = hv.calls.borrow();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].0.nr, HypercallNr::UPDATE_VA_MAPPING);
        assert_eq!(calls[0].0.args, [0x20f000, pte, 2, 0, 0]);
        let regs = calls[0].0.registers();
        assert_eq!((regs.rdi, regs.rsi, regs.rdx), (0x20f000, pte, 2));
        let ok = Recorder::new(false, |_| 0);
        assert_eq!(sim_update_va_mapping(&ok, 0x1000, 0, UVMF_INVLPG), Ok(()));
    }

    #[test]
    fn mmu_update_passes_requests_count_done_and_foreigndom() {
        let seen = RefCell::new(Vec::new());
        let hv = Scripted::new(|call| {
            let count = call.args[1] as usize;
            for i in 0..count {
                // SAFETY: `args[0]` points to `count` live requests during the call.
                let req: MmuUpdate = unsafe { pointee(call.args[0] + 16 * i as u64) };
                seen.borrow_mut().push(req);
            }
            // SAFETY: `args[2]` points to the wrapper's live `done`.
            unsafe { write_pointee(call.args[2], count as u32) };
            0
        });
        let reqs = [
            MmuUpdate::normal_pt_update(0xabc_d078, 0x1234_5003),
            MmuUpdate::normal_pt_update(0x1000, 0),
        ];
        assert_eq!(sim_mmu_update(&hv, &reqs, DomId::SELF), Ok(2));
        assert_eq!(sim_mmu_update(&hv, &reqs[..1], DomId::XEN), Ok(1));
        let calls = hv.calls.borrow();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].nr, HypercallNr::MMU_UPDATE);
        assert_eq!(calls[0].args[0], reqs.as_ptr() as u64);
        assert_eq!(calls[0].args[1], 2);
        assert_ne!(calls[0].args[2], 0, "done is passed by pointer");
        assert_eq!(calls[0].args[3], 0x7FF0, "FD = DOMID_SELF, PFD bits 0");
        assert_eq!(calls[1].args[1], 1);
        assert_eq!(calls[1].args[3], 0x7FF2, "FD = DOMID_XEN");
        assert_eq!(calls[1].args[4], 0);
        let seen = seen.borrow();
        assert_eq!(
            seen[0].ptr, 0xabc_d078,
            "MMU_NORMAL_PT_UPDATE is 0 in bits 1:0"
        );
        assert_eq!(seen[0].val, 0x1234_5003);
        assert_eq!(seen[2], reqs[0]);
    }

    #[test]
    fn machphys_update_names_the_frame_by_machine_address() {
        assert_eq!(MMU_MACHPHYS_UPDATE, 1);
        let req = MmuUpdate::machphys_update(0x1_2345, 0x20c);
        assert_eq!(req.ptr, 0x1234_5001);
        assert_eq!(req.val, 0x20c);
    }

    #[test]
    fn mmu_update_reports_xen_error() {
        let hv = Scripted::new(|_| -1);
        let req = [MmuUpdate::normal_pt_update(0x5000, 7)];
        assert_eq!(sim_mmu_update(&hv, &req, DomId::XEN), Err(XenError::EPERM));
    }

    #[test]
    fn batch_count_rejects_continuation_bit() {
        assert_eq!(batch_count(0), Ok(0));
        assert_eq!(batch_count(1), Ok(1));
        assert_eq!(batch_count((1 << 31) - 1), Ok((1 << 31) - 1));
        assert_eq!(batch_count(1 << 31), Err(XenError::EINVAL));
        assert_eq!(batch_count(usize::MAX), Err(XenError::EINVAL));
    }

    #[test]
    fn mmuext_op_passes_ops_by_pointer() {
        let seen = RefCell::new(Vec::new());
        let hv = Scripted::new(|call| {
            // SAFETY: `args[0]` points to at least one live op during the call.
            let op: MmuextOp = unsafe { pointee(call.args[0]) };
            seen.borrow_mut().push(op);
            if op.cmd == MMUEXT_PIN_L1_TABLE {
                -22
            } else {
                // SAFETY: `args[2]` points to the wrapper's live `done`.
                unsafe { write_pointee(call.args[2], 1u32) };
                0
            }
        });
        assert_eq!(
            sim_mmuext_op(&hv, &[MmuextOp::pin_l1_table(0x4_2000)], DomId::SELF),
            Err(XenError::EINVAL)
        );
        assert_eq!(
            sim_mmuext_op(&hv, &[MmuextOp::invlpg_local(0x20f000)], DomId::SELF),
            Ok(1)
        );
        assert_eq!(
            sim_mmuext_op(&hv, &[MmuextOp::unpin_table(0x4_2000)], DomId::SELF),
            Ok(1)
        );
        let calls = hv.calls.borrow();
        for call in calls.iter() {
            assert_eq!(call.nr, HypercallNr::MMUEXT_OP);
            assert_eq!(call.args[1], 1);
            assert_ne!(call.args[2], 0);
            assert_eq!(call.args[3], 0x7FF0);
        }
        let seen = seen.borrow();
        assert_eq!(
            seen[0],
            MmuextOp {
                cmd: 0,
                arg1: 0x4_2000,
                arg2: 0
            }
        );
        assert_eq!((seen[1].cmd, seen[1].arg1), (7, 0x20f000));
        assert_eq!((seen[2].cmd, seen[2].arg1), (4, 0x4_2000));
    }

    #[test]
    fn grant_map_and_unmap_pass_one_op_and_read_back_status() {
        let seen_map = RefCell::new(Vec::new());
        let hv = Scripted::new(|call| {
            if call.args[0] == GNTTABOP_MAP_GRANT_REF {
                // SAFETY: `args[1]` points to the wrapper's live op.
                let mut op: GnttabMapGrantRef = unsafe { pointee(call.args[1]) };
                seen_map.borrow_mut().push(op);
                if op.ref_ == 5 {
                    op.status = GNTST_OKAY;
                    op.handle = 9;
                } else {
                    op.status = GNTST_GENERAL_ERROR;
                }
                // SAFETY: as above; Xen writes the OUT fields back.
                unsafe { write_pointee(call.args[1], op) };
            } else {
                // SAFETY: `args[1]` points to the wrapper's live op.
                let mut op: GnttabUnmapGrantRef = unsafe { pointee(call.args[1]) };
                op.status = if op.handle == 9 { 0 } else { -4 };
                // SAFETY: as above.
                unsafe { write_pointee(call.args[1], op) };
            }
            0
        });
        let mut op = GnttabMapGrantRef::host_map(0x20f000, DomId::DOM0, 3);
        assert_eq!(sim_gnttab_map_grant_ref(&hv, &mut op), Ok(()));
        assert_eq!(op.status, GNTST_GENERAL_ERROR);
        let mut op = GnttabMapGrantRef::host_map(0x20f000, DomId::DOM0, 5);
        assert_eq!(sim_gnttab_map_grant_ref(&hv, &mut op), Ok(()));
        assert_eq!((op.status, op.handle), (GNTST_OKAY, 9));
        let mut unmap = GnttabUnmapGrantRef {
            host_addr: 0x20f000,
            dev_bus_addr: 0,
            handle: op.handle,
            status: -99,
        };
        assert_eq!(sim_gnttab_unmap_grant_ref(&hv, &mut unmap), Ok(()));
        assert_eq!(unmap.status, 0);

        let calls = hv.calls.borrow();
        assert_eq!(calls.len(), 3);
        for call in calls.iter() {
            assert_eq!(call.nr, HypercallNr::GRANT_TABLE_OP);
            assert_eq!(call.args[2], 1, "one op per call");
            assert_eq!(&call.args[3..], &[0, 0]);
        }
        assert_eq!(calls[0].args[0], GNTTABOP_MAP_GRANT_REF);
        assert_eq!(calls[2].args[0], GNTTABOP_UNMAP_GRANT_REF);
        let seen = seen_map.borrow();
        assert_eq!(seen[0].host_addr, 0x20f000);
        assert_eq!(seen[0].flags, GNTMAP_HOST_MAP);
        assert_eq!((seen[0].dom, seen[0].ref_), (0, 3));

        let broken = Scripted::new(|_| -38);
        let mut op = GnttabMapGrantRef::host_map(0x20f000, DomId::DOM0, 0);
        assert_eq!(
            sim_gnttab_map_grant_ref(&broken, &mut op),
            Err(XenError::ENOSYS)
        );
    }
}
