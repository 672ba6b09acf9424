//! Safe Rust over the devices a dom0 mem_access listener needs: `/dev/xen/privcmd` and
//! `/dev/xen/hypercall` (domctls and memory operations), `/dev/xen/evtchn` (the ring's event
//! channel) and `XENMEM_acquire_resource` (mapping the ring), with libxenctrl's names.
//!
//! Layers, as in rust-vmm's crates: [`ioctl`] holds every ioctl number and argument layout;
//! [`privcmd`] owns the devices and issues raw hypercalls; [`domctl`] builds Xen's
//! domain-control envelope; [`monitor`] and [`memory`] are the calls a listener makes,
//! named after libxenctrl's; [`xenstore`] resolves domain names.
//!
//! Xen's numbers and struct layouts come from [`xen_abi`], bindgen's bindings of the patched
//! Xen's headers: the private payloads are its structs, the constants here its `#define`s
//! under this crate's names. The few structs of this crate's API that keep their own shape
//! (a union as bytes or as the member a listener reads, a guest handle as the address of a
//! hypercall buffer) fail to compile unless laid out as the generated ones. Only Linux's
//! ioctls ([`ioctl`]) are written by hand.
//!
//! | libxenctrl | here |
//! | --- | --- |
//! | `xc_monitor_enable` (hypercall part) | [`monitor::monitor_enable`] |
//! | `xc_monitor_disable` | [`monitor::monitor_disable`] |
//! | (none: `XEN_VM_EVENT_ATTACH`, our patch 0006, takes over a ring whose listener died) | [`monitor::monitor_attach`] |
//! | ring mapping (`HVM_PARAM_MONITOR_RING_PFN` + map; PV: acquire_resource) | [`monitor::RingMapping::map`] |
//! | `xc_set_mem_access` (HVM: gfns) | [`memory::set_mem_access`] |
//! | `xc_get_mem_access` (HVM: gfns) | [`memory::get_mem_access`] |
//! | `xc_set_mem_access_multi` (HVM: gfns) | [`memory::set_mem_access_multi`] |
//! | `xc_set_mem_access_mfn` (PV: machine frames, `XENMEM_access_op_mfn`) | [`memory::set_mem_access_mfn`] |
//! | `xc_get_mem_access_mfn` (PV) | [`memory::get_mem_access_mfn`] |
//! | `xc_set_mem_access_multi_mfn` (PV) | [`memory::set_mem_access_multi_mfn`] |
//! | `xc_domain_populate_physmap_exact` | [`memory::populate_physmap`] |
//! | `xc_domain_getinfo` (HVM or PV, dying, shut down) | [`monitor::domain_info`], [`monitor::domain_is_hvm`] |
//! | `xenforeignmemory_map_resource` (frames) | [`memory::acquire_resource_frames`] |
//! | `xc_domain_set_access_required` | [`monitor::set_access_required`] |
//! | `xc_shadow_control(ENABLE_LOGDIRTY / OFF)` | [`monitor::log_dirty_enable`] / [`monitor::log_dirty_disable`] |
//! | `xc_domain_pause` / `xc_domain_unpause` | [`monitor::domain_pause`] / [`monitor::domain_unpause`] |
//! | `xc_shadow_control(GET_ALLOCATION)` | [`monitor::shadow_allocation_mib`] |
//! | `xc_physinfo` (memory) | [`sysctl::physinfo`] |
//! | `xc_version` | [`version::xen_version`] |
//! | `xenforeignmemory_map` | [`monitor::ForeignMapping::map`] |
//! | `xc_core`/save's P2M of a PV guest (`pfn_to_mfn_frame_list_list`) | [`p2m::P2m::read`] |
//! | `xenevtchn_bind_interdomain` / `_unbind` / `_notify` / `_pending` / `_unmask` | [`evtchn::Evtchn`] |
//!
//! Xen 4.17 has no call to read access_required back.

#![deny(missing_docs)]

mod abi;
pub mod access;
pub mod domctl;
pub mod error;
pub mod evtchn;
pub mod frame;
pub mod ioctl;
pub mod memory;
pub mod monitor;
pub mod p2m;
pub mod privcmd;
pub mod ring;
pub mod sysctl;
pub mod version;
pub mod xenstore;

pub use access::Access;
pub use error::{Error, Result};
pub use frame::{AccessFrame, FrameKind, FrameNumber, Gfn, Mfn, Pfn};
/// The errno an [`Error`] carries (nix's), so users compare with `Errno::EBUSY` and friends
/// without depending on nix themselves.
pub use nix::errno::Errno;
/// The byte-conversion traits of this crate's API (`HypercallBuffer::write`, `Domctl::new`
/// and their readers take `zerocopy::IntoBytes` and `zerocopy::FromBytes` values), so users
/// derive them for their own structs without depending on zerocopy themselves:
/// `#[derive(libxc::zerocopy::IntoBytes, ...)]` with `#[zerocopy(crate = "libxc::zerocopy")]`.
pub use zerocopy;

/// A domain id (`domid_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(pub u16);

impl DomId {
    /// `DOMID_XEN`: pages owned by Xen itself.
    pub const XEN: DomId = DomId(abi::u16_of(xen_abi::DOMID_XEN));
    /// `DOMID_SELF`: the calling domain.
    pub const SELF: DomId = DomId(abi::u16_of(xen_abi::DOMID_SELF));
    /// `DOMID_INVALID`: no domain (the target of domctls about none).
    pub const INVALID: DomId = DomId(abi::u16_of(xen_abi::DOMID_INVALID));
}
