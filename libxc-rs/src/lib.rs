//! Safe Rust over the devices a dom0 mem_access listener needs: `/dev/xen/privcmd` and
//! `/dev/xen/hypercall` (domctls and memory operations), `/dev/xen/evtchn` (the ring's event
//! channel) and `XENMEM_acquire_resource` (mapping the ring), with libxenctrl's names.
//!
//! Nothing is implemented yet: the crate is empty until the monitor ABI lands in Xen.

#![deny(missing_docs)]
