//! Xen ABI that `xen-sys` 0.0.0-pre2 does not cover (its bindgen has `xen.h`, `sched.h`
//! and `event_channel.h` only, and none of `xen.h`'s `xen_mk_ulong` macros), still
//! written by hand against Xen 4.17's public headers (and this project's patches):
//! `vcpu.h` (`VCPUOP_*`, `vcpu_runstate_info`), `version.h`, `grant_table.h`, `memory.h`
//! (`XENMEM_*`, `xen_memory_reservation`, `xen_mem_access_op`,
//! `xen_mem_acquire_resource`), `domctl.h` (`xen_domctl`, the vm_event and monitor
//! operations), `io/console.h` (`xencons_interface`) and `xen.h`'s `UVMF_*`.
//!
//! All of it moves to the workspace's generated `xen-abi` crate once that exists; until
//! then it stays in this one module, and nothing else in the guest restates Xen's ABI.

use super::DomId;

// vcpu.h, version.h, xen.h's UVMF_*, grant_table.h.

/// `#define VCPUOP_is_up                 3` (`vcpu.h`): "Returns 1 if the given VCPU
/// is up"; 0 if it exists but is down, `-ENOENT` if there is no such vCPU
/// (`do_vcpu_op` in `xen/arch/x86/domain.c`).
pub const VCPUOP_IS_UP: u64 = 3;

/// `#define VCPUOP_initialise 0` (`vcpu.h`): `extra_arg` is a `vcpu_guest_context *`.
pub const VCPUOP_INITIALISE: u64 = 0;
/// `#define VCPUOP_up 1` (`vcpu.h`).
pub const VCPUOP_UP: u64 = 1;
/// `#define VCPUOP_down 2` (`vcpu.h`): the last vCPU going down powers the domain off.
pub const VCPUOP_DOWN: u64 = 2;

/// `#define XENVER_extraversion 1` (`version.h`): the argument is a
/// `xen_extraversion_t`, `char[16]`, that Xen fills (NUL-padded) with
/// `copy_to_guest`.
pub const XENVER_EXTRAVERSION: u64 = 1;

/// `typedef char xen_extraversion_t[16];` (`version.h`).
pub const XEN_EXTRAVERSION_LEN: usize = 16;

/// `#define UVMF_INVLPG         (xen_mk_ulong(2)<<0) /* Flush only one entry. */`;
/// with `UVMF_LOCAL` (0): flush the one address on this vCPU only.
pub const UVMF_INVLPG: u64 = 2;

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

// vcpu.h: runstate (`xen-copy-race`, `runstate-area`).

/// `#define VCPUOP_get_runstate_info     4` (`vcpu.h`): Xen copies the vCPU's
/// `vcpu_runstate_info` to the argument.
pub const VCPUOP_GET_RUNSTATE_INFO: u64 = 4;

/// `#define VCPUOP_register_runstate_memory_area 5` (`vcpu.h`): from then on Xen copies
/// the vCPU's runstate to that guest address whenever it changes (context switches),
/// and once at registration.
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u64 = 5;

/// `#define RUNSTATE_running  0` (`vcpu.h`).
pub const RUNSTATE_RUNNING: i32 = 0;
/// `#define RUNSTATE_offline  3` (`vcpu.h`): the highest state.
pub const RUNSTATE_OFFLINE: i32 = 3;

/// `struct vcpu_runstate_info` (`vcpu.h`), 48 bytes: `int state`, 4 bytes of the C
/// compiler's padding, `uint64_t state_entry_time`, `uint64_t time[4]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunstateInfo {
    /// `RUNSTATE_*`.
    pub state: i32,
    /// Padding (Xen copies whatever its own struct held there).
    pub pad: u32,
    /// System time (ns) when `state` was entered.
    pub state_entry_time: u64,
    /// Nanoseconds spent in each state.
    pub time: [u64; 4],
}

/// Bytes of [`RunstateInfo`].
pub const RUNSTATE_SIZE: usize = 48;

// memory.h: reservations (`balloon`).

/// `#define XENMEM_decrease_reservation 1` (`memory.h`).
pub const XENMEM_DECREASE_RESERVATION: u64 = 1;
/// `#define XENMEM_populate_physmap 6` (`memory.h`).
pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;

/// `struct xen_memory_reservation` (`memory.h`), 32 bytes on x86_64.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenMemoryReservation {
    /// `XEN_GUEST_HANDLE(xen_pfn_t) extent_start`: the extent list.
    pub extent_start: u64,
    /// `xen_ulong_t nr_extents`.
    pub nr_extents: u64,
    /// `unsigned int extent_order`: 0, single pages.
    pub extent_order: u32,
    /// `unsigned int mem_flags` (`XENMEMF_*`): 0.
    pub mem_flags: u32,
    /// `domid_t domid`: `DOMID_SELF`.
    pub domid: u16,
    /// The C compiler's tail padding, explicit.
    pub pad: [u16; 3],
}

// memory.h, domctl.h: the mem_access control interface an unprivileged guest is refused
// (`hostile-calls`).

/// `#define XENMEM_access_op 21` (`memory.h`).
pub const XENMEM_ACCESS_OP: u64 = 21;
/// `#define XENMEM_acquire_resource 28` (`memory.h`).
pub const XENMEM_ACQUIRE_RESOURCE: u64 = 28;
/// `#define XEN_DOMCTL_INTERFACE_VERSION 0x00000015` (`domctl.h`, Xen 4.17).
pub const DOMCTL_INTERFACE_VERSION: u32 = 0x15;

/// `#define XEN_DOMCTL_vm_event_op 56` (`domctl.h`).
pub const DOMCTL_VM_EVENT_OP: u32 = 56;
/// `#define XEN_DOMCTL_set_access_required 64` (`domctl.h`).
pub const DOMCTL_SET_ACCESS_REQUIRED: u32 = 64;
/// `#define XEN_DOMCTL_monitor_op 77` (`domctl.h`).
pub const DOMCTL_MONITOR_OP: u32 = 77;
/// `#define XEN_VM_EVENT_ENABLE 0` (`domctl.h`).
pub const VM_EVENT_ENABLE: u32 = 0;
/// `#define XEN_VM_EVENT_DISABLE 1` (`domctl.h`).
pub const VM_EVENT_DISABLE: u32 = 1;
/// `#define XEN_VM_EVENT_GET_VERSION 3` (`domctl.h`).
pub const VM_EVENT_GET_VERSION: u32 = 3;
/// `XEN_VM_EVENT_ATTACH` (4, this project's patches to `domctl.h`).
pub const VM_EVENT_ATTACH: u32 = 4;
/// `#define XEN_DOMCTL_VM_EVENT_OP_MONITOR 2` (`domctl.h`).
pub const VM_EVENT_MODE_MONITOR: u32 = 2;
/// `#define XEN_DOMCTL_MONITOR_OP_GET_CAPABILITIES 2` (`domctl.h`).
pub const MONITOR_OP_GET_CAPABILITIES: u32 = 2;

/// `struct xen_mem_access_op` (`memory.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemAccessOp {
    /// `XENMEM_access_op_*`.
    pub op: u8,
    /// A `xenmem_access_t`.
    pub access: u8,
    /// The domain.
    pub domid: u16,
    /// How many frames.
    pub nr: u32,
    /// The first frame, `~0` for the default.
    pub pfn: u64,
    /// `set_access_multi`'s frames.
    pub pfn_list: u64,
    /// `set_access_multi`'s accesses.
    pub access_list: u64,
}

/// `struct xen_domctl` (`domctl.h`): command, version, domain, a 128-byte union.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Domctl {
    /// `XEN_DOMCTL_*`.
    pub cmd: u32,
    /// [`DOMCTL_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// The domain.
    pub domain: u16,
    /// Padding.
    pub pad: [u16; 3],
    /// The union, as 32-bit words.
    pub payload: [u32; 32],
}

/// `struct xen_mem_acquire_resource` (`memory.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemAcquireResource {
    /// The domain.
    pub domid: u16,
    /// `XENMEM_resource_*` (4: the vm_event ring, patch 0009).
    pub kind: u16,
    /// The ring's mode (2: monitor).
    pub id: u32,
    /// Frames asked.
    pub nr_frames: u32,
    /// Must be 0.
    pub pad: u32,
    /// First frame.
    pub frame: u64,
    /// Where Xen writes the frames.
    pub frame_list: u64,
}

// io/console.h: the console ring page (`console`).

/// Size of the `in` ring (guest input, unused here).
pub const IN_RING_SIZE: u32 = 1024;

/// Size of the `out` ring. A power of two, as masking requires.
pub const OUT_RING_SIZE: u32 = 2048;

/// `struct xencons_interface` (`io/console.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct XenconsInterface {
    /// `char in[1024];`
    pub input: [u8; IN_RING_SIZE as usize],
    /// `char out[2048];`
    pub out: [u8; OUT_RING_SIZE as usize],
    /// `XENCONS_RING_IDX in_cons;`
    pub in_cons: u32,
    /// `XENCONS_RING_IDX in_prod;`
    pub in_prod: u32,
    /// `XENCONS_RING_IDX out_cons;` (written by the reader)
    pub out_cons: u32,
    /// `XENCONS_RING_IDX out_prod;` (written by us)
    pub out_prod: u32,
}

impl XenconsInterface {
    /// An all-zero interface, as the builder hands it over.
    pub const fn zeroed() -> Self {
        Self {
            input: [0; IN_RING_SIZE as usize],
            out: [0; OUT_RING_SIZE as usize],
            in_cons: 0,
            in_prod: 0,
            out_cons: 0,
            out_prod: 0,
        }
    }
}
