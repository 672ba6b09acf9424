//! Safe Rust over the devices a dom0 mem_access listener needs: `/dev/xen/privcmd` and
//! `/dev/xen/hypercall` (domctls and memory operations), `/dev/xen/evtchn` (the ring's event
//! channel) and `XENMEM_acquire_resource` (mapping the ring), with libxenctrl's names.
//!
//! Layers, as in rust-vmm's crates: [`ioctl`] holds every ioctl number and argument layout;
//! [`privcmd`] owns the devices and issues raw hypercalls; [`domctl`] builds Xen's
//! domain-control envelope. The monitor and mem_access calls arrive with Xen's PV support for
//! them.

#![deny(missing_docs)]

pub mod domctl;
pub mod error;
pub mod evtchn;
pub mod ioctl;
pub mod privcmd;

pub use error::{Error, Result};

/// A domain id (`domid_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(pub u16);

impl DomId {
    /// `DOMID_XEN`: pages owned by Xen itself.
    pub const XEN: DomId = DomId(0x7ff2);
    /// `DOMID_SELF`: the calling domain.
    pub const SELF: DomId = DomId(0x7ff0);
}
