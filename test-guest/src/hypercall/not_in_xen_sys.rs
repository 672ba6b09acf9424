//! Xen ABI that `xen-sys` 0.0.0-pre2 does not cover (its bindgen has `xen.h`, `sched.h`
//! and `event_channel.h` only, and none of `xen.h`'s `xen_mk_ulong` macros), still
//! written here against Xen 4.17's public headers: `vcpu.h`'s `VCPUOP_*`, `version.h`,
//! `grant_table.h`, `memory.h`'s `XENMEM_*` and `xen_memory_reservation`, `xen.h`'s
//! `UVMF_*`. They move to the workspace's generated `xen-abi` crate once it exists; keep
//! them in this one module until then.

use super::DomId;

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
