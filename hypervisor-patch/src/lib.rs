//! The hypervisor side of PV mem_access: a `no_std` module that Xen 4.17 links in (the
//! per-page access tracker, access decisions and vm_event request building), together with
//! the patch series for Xen's C code in `patches/` (applied in the order `patches/series`
//! gives by `cargo xtask e2e`).
//!
//! The module is not linked into Xen yet: the series holds no patches so far, and this
//! crate exports nothing. Rules for the code that comes here: no `core::fmt`, no allocation on
//! the fault path, no indirect branches, `unsafe` only at the C boundary with a SAFETY
//! comment.

#![no_std]
