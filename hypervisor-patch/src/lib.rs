//! The hypervisor side of PV mem_access: a `no_std` module linked into Xen 4.17 (the access
//! decisions of [`access`] and the per-page [`tracker`]), and the
//! patch series for Xen's C code in `patches/`, applied in the order `patches/series` gives.
//!
//! Layers, as in Rust-for-Linux: [`ffi`] is the C boundary (the `extern "C"` entry points Xen
//! calls and the C glue services the module calls, declared in `asm/pv-mem-access.h` in the
//! series); [`xen`] wraps those services safely; everything else is plain safe Rust that the
//! host tests run exactly as Xen links it.
//!
//! Rules for this crate, which `cargo xtask check-hv-object` enforces on the linked object
//! where a machine can: no `core::fmt` (it brings vtables, so indirect calls), no allocation
//! on the fault path (only the listener's calls allocate, through the glue), no reachable
//! panic (the panic handler names a symbol nobody defines, so Xen would not link),
//! no indirect branches (Xen runs with CET-IBT; jump tables are disabled at build time),
//! `unsafe` only at the C boundary, each with a SAFETY comment: [`ffi`] and [`xen`] (the
//! calls), [`domain_tracker`] (Xen's allocator) and the few helpers of [`tracker`] that turn
//! its nodes (pages of Xen's heap the tree owns) into references.

#![no_std]
#![deny(missing_docs)]

pub mod access;
pub mod domain_tracker;
pub mod errno;
pub mod ffi;
pub mod tracker;
pub mod xen;

pub use errno::Errno;

/// The line the module logs once at boot; the `boot` scenario looks for it.
pub const BANNER: &str = concat!("pv-mem-access: rust module ", env!("CARGO_PKG_VERSION"));
