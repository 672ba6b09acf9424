//! The logic of `test-guest`, a tiny 64-bit Xen PV kernel used by the mem_access tests.
//!
//! Everything here is pure or generic over a [`hypercall::Hypervisor`], so it builds
//! and is tested on the host (`cargo test -p test-guest`). The kernel itself
//! (`src/main.rs`, its doc the console contract; `src/kernel.rs` and `src/kernel/`:
//! ELF notes and entry, console and panic handler, memory, `kernel_main`, the
//! patterns) only glues these pieces together for the real target.
//!
//! # Building the kernel
//!
//! ```text
//! cargo build -p test-guest --release --target x86_64-unknown-none
//! ```
//!
//! No `RUSTFLAGS` are needed: `build.rs` passes the linker script (`guest.ld`: linked
//! at 1 MiB, virtual = pseudo-physical) and `--no-pie` to rust-lld, only for the bin
//! and only when the target OS is `none`. The result is
//! `target/x86_64-unknown-none/release/test-guest`, an ELF64 `EXEC` with a `PT_NOTE`
//! segment holding the Xen notes, no dynamic section and no relocations. Boot it with
//! `xl create` and `type = "pv"`, `kernel = ".../test-guest"`.
//!
//! On the host, `cargo build -p test-guest` builds a bin that only says it must be
//! built for `x86_64-unknown-none` and exits with status 2.
//!
//! # Modules
//!
//! - [`hypercall`]: hypercall numbers, register marshalling, typed wrappers.
//! - [`start_info`]: the `start_info` page Xen hands the kernel in `rsi`.
//! - [`frames`]: frame numbers, the M2P table, machine frame to virtual address.
//! - [`pagewalk`]: walking the kernel's own page tables to an L1 entry.
//! - [`p2m_tree`]: the frame-list tree that publishes the P2M in `shared_info`.
//! - [`probe`]: the `ring-probe` mode's attempts to map a frame the guest does not own.
//! - [`pt_write`]: the `pt-write` pattern's alias mapping, by emulated store and `mmu_update`.
//! - [`pt_hypercall`]: the `pt-hypercall` pattern's page-table writes by hypercall.
//! - [`console`]: the PV console ring writer (`xencons_interface`).
//! - [`handshake`]: the go page a pattern waits on, and bounded waits.
//! - [`hostile`]: the `hostile-calls` pattern: control-interface calls an unprivileged guest makes.
//! - [`workload`]: the page workload and its FNV-1a checksum (also used by xtask).
//! - [`lines`]: the console lines the host reads, one type each: `Display` writes
//!   the line, [`lines::Line::parse`] reads it back.
//! - [`patterns`]: the access patterns of `pattern=<name>`: their touches and lines.
//! - [`text`]: the console's number and string formats, on `core::fmt::Write`.
//! - [`bench`](mod@bench): the `bench` pattern's rounds (`rounds=<decimal>`) and its `BENCH` line.
//! - [`bench_ops`]: the per-operation benchmarks `bench-events`, `bench-pingpong` and
//!   `bench-sweep` (`pages=`, `phases=`, samples, TSC to ns) and their lines.
//! - [`balloon`]: the `balloon` pattern's frame exchange (decrease, populate, P2M, M2P).
//! - [`vcpu_up`]: starting a second vCPU (`vcpu_guest_context`, `VCPUOP_*`).
//! - [`cmdline`]: the command line's mode words and `key=0x<hex>`, `key=<decimal>` values.
//! - [`xen_writes`]: Xen writing a read-only page while another vCPU tries to
//!   (`xen-copy-race`, `runstate-area`).
//! - `fake_xen` (tests only): the one fake Xen of the host tests, a recorder with a
//!   script (a closure or a model of Xen's effects).
//! - [`traps`]: exceptions and upcalls whose frames Xen writes on a restricted stack
//!   (`bounce-frame`).
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

pub mod balloon;
pub mod bench;
pub mod bench_ops;
pub mod cmdline;
pub mod console;
#[cfg(test)]
mod fake_xen;
pub mod frames;
pub mod handshake;
pub mod hostile;
pub mod hypercall;
pub mod lines;
pub mod p2m_tree;
pub mod pagewalk;
pub mod patterns;
pub mod probe;
pub mod pt_hypercall;
pub mod pt_write;
pub mod start_info;
pub mod text;
pub mod traps;
pub mod vcpu_up;
pub mod workload;
pub mod xen_writes;
