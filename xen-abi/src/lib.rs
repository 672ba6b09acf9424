//! Xen's public ABI for the tools (`__XEN_TOOLS__`, x86_64) of the hypervisor this project
//! builds: Xen 4.17.5 as Debian packages it, with the series of `hypervisor-patch/patches`
//! (so `XENMEM_access_op_mfn`, `MEM_ACCESS_GFN_IS_MFN`, `XEN_VM_EVENT_ATTACH`, ...).
//!
//! [`generated.rs`](generated) is bindgen's output over `public/domctl.h`, `sysctl.h`,
//! `vm_event.h`, `memory.h`, `vcpu.h`, `version.h`, `xen.h`, `grant_table.h`,
//! `io/console.h` and `errno.h`, committed: `cargo xtask codegen`
//! writes it again from the patched tree, `cargo xtask codegen --check` (a phase of
//! `cargo xtask ci`) fails when it differs. Nobody edits it.
//!
//! What the generator (`ci/xen-abi-gen`) makes of the headers:
//! - every `#define` number of the families the project uses (`XEN_DOMCTL_*`,
//!   `XEN_SYSCTL_*`, `XENMEM_*`, `VM_EVENT_*`, `MEM_ACCESS_*`, `VCPUOP_*`, `XENVER_*`,
//!   `__HYPERVISOR_*`, `GNTTABOP_*`, `GNTMAP_*`, `GNTST_*`, ...), those built with
//!   `xen_mk_ulong`/`xen_mk_uint` too (`UVMF_*`, `DOMID_*`: clang evaluates them), and
//!   `errno.h`'s values (`XEN_EPERM`, ...), and the structs the domctl and sysctl envelopes, vm_event's
//!   request, response and ring, and the memory operations hold;
//! - each struct's size, alignment and field offsets asserted at compile time (bindgen's
//!   layout tests), so the crate does not build where Rust would lay a struct out other
//!   than the C compiler;
//! - C unions as structs of bindgen's `__BindgenUnionField` members over plain storage
//!   (`bindgen_union_field`), guest handles as their 64-bit address (`p: u64`);
//! - zerocopy's `FromBytes`, `IntoBytes`, `Immutable` and `KnownLayout` on every struct made
//!   of plain bytes (all of them but a few holding a pointer), padding spelled out by bindgen
//!   as fields, so a struct goes to Xen as bytes with no `unsafe`.

#![no_std]

/// bindgen's output (see the crate's documentation); C's names, unchanged. Formatted by
/// the generator (prettyplease, pinned by the lock file), not by rustfmt, so that a
/// toolchain's rustfmt cannot make it differ from what `cargo xtask codegen` writes.
#[rustfmt::skip]
#[allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::undocumented_unsafe_blocks,
    unsafe_op_in_unsafe_fn
)]
pub mod generated;

pub use generated::*;

#[cfg(test)]
mod tests {
    use zerocopy::{FromBytes, IntoBytes};

    #[test]
    fn the_file_names_the_tree_it_came_from() {
        let provenance = include_str!("generated.rs").lines().nth(1).unwrap_or("");
        assert!(provenance.starts_with("// From Xen 4.17.5"), "{provenance}");
        assert!(provenance.contains("hypervisor-patch/patches (series "));
    }

    #[test]
    fn the_series_additions_are_there() {
        // Only the patched headers define these: that they compile is the test.
        let _ = (
            super::XENMEM_access_op_mfn,
            super::MEM_ACCESS_GFN_IS_MFN,
            super::XEN_VM_EVENT_ATTACH,
            super::XENMEM_resource_vm_event_ring,
            super::XEN_DOMCTL_MONITOR_EVENT_MEM_ACCESS,
        );
    }

    #[test]
    fn macros_cexpr_cannot_evaluate_are_there() {
        // `xen_mk_ulong`/`xen_mk_uint` in `xen.h`, an enum in `errno.h`.
        assert_eq!(super::UVMF_INVLPG, 2);
        assert_eq!(super::UVMF_LOCAL, 0);
        assert_eq!(
            (super::DOMID_SELF, super::DOMID_XEN, super::DOMID_INVALID),
            (0x7FF0, 0x7FF2, 0x7FF4)
        );
        assert_eq!((super::XEN_EPERM, super::XEN_ETIMEDOUT), (1, 110));
        assert_eq!(super::GNTMAP_host_map, 1 << super::_GNTMAP_host_map);
    }

    #[test]
    fn an_envelope_goes_to_bytes_and_back() {
        let mut domctl = super::xen_domctl {
            cmd: super::XEN_DOMCTL_vm_event_op,
            interface_version: super::XEN_DOMCTL_INTERFACE_VERSION,
            domain: 7,
            ..Default::default()
        };
        let op = super::xen_domctl_vm_event_op {
            op: super::XEN_VM_EVENT_ENABLE,
            mode: super::XEN_DOMCTL_VM_EVENT_OP_MONITOR,
            ..Default::default()
        };
        domctl.u.as_mut_bytes()[..op.as_bytes().len()].copy_from_slice(op.as_bytes());
        let back = super::xen_domctl::read_from_bytes(domctl.as_bytes()).unwrap();
        assert_eq!((back.cmd, back.domain), (domctl.cmd, 7));
        let (read, _) = super::xen_domctl_vm_event_op::read_from_prefix(back.u.as_bytes()).unwrap();
        assert_eq!((read.op, read.mode), (op.op, op.mode));
    }
}
