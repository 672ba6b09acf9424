//! `xen-abi-gen PUBLIC_DIR OUTPUT PROVENANCE`: generates `xen-abi/src/generated.rs` from the
//! public headers in `PUBLIC_DIR` (`xen/include/public` of the patched tree `cargo xtask
//! codegen` prepares) and writes it to `OUTPUT`, its second line naming `PROVENANCE`.
//!
//! What it asks of bindgen: the tools' view of the ABI (`__XEN_TOOLS__`, so the latest
//! interface version, as libxenctrl is built), x86_64, only the items in [`TYPES`],
//! [`FILES`] and [`CONSTANTS`] and what they hold, explicit padding, `core::ffi` types and
//! bindgen's layout assertions (size, alignment, offsets, checked whenever the crate
//! compiles). C unions come out as bindgen's union structs (`__BindgenUnionField` members
//! over plain storage), so a struct holding one can still be plain bytes. A `#define`
//! cexpr cannot evaluate (one built with `xen.h`'s `xen_mk_ulong` or `xen_mk_uint`:
//! `UVMF_*`, `DOMID_*`) is evaluated by clang (bindgen's macro fallback), so none is
//! restated by hand; a C enum's members (`errno.h`'s `XEN_E*`) are constants under their
//! own names.
//!
//! Then, on the syntax tree:
//! - a guest handle's pointer (`XEN_GUEST_HANDLE(t)`, `struct { t *p; }` on x86) becomes
//!   `u64`: the ABI is the 64-bit address, the callers (a dom0 library through hypercall
//!   buffers, a guest kernel) have it as a number, and a pointer would make every struct
//!   holding a handle neither plain bytes nor `Send`;
//! - every struct made only of integers, arrays and such structs derives zerocopy's
//!   `FromBytes`, `IntoBytes`, `Immutable` and `KnownLayout` (zerocopy checks again, when
//!   it compiles, that none has padding).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use quote::quote;
use syn::{parse_quote, Fields, Item, Type};

/// The headers read, from the public directory.
const HEADERS: &[&str] = &[
    "domctl.h",
    "sysctl.h",
    "vm_event.h",
    "memory.h",
    "vcpu.h",
    "version.h",
    "xen.h",
    "grant_table.h",
    "io/console.h",
    "errno.h",
];

/// Types wanted, with all they hold: the domctl and sysctl envelopes (so every
/// sub-operation's payload), the vm_event request/response and its ring, the memory
/// operations a listener makes, `XENVER_extraversion`'s string, the `shared_info` page (a
/// PV guest publishes its P2M there); and for the test guest the grant map and unmap
/// operations, the console ring page and Xen's errno values.
const TYPES: &[&str] = &[
    "xen_domctl",
    "xen_sysctl",
    "vm_event_st",
    "vm_event_sring",
    "xen_mem_access_op",
    "xen_mem_acquire_resource",
    "xen_memory_reservation",
    "xen_extraversion_t",
    "shared_info",
    "gnttab_map_grant_ref",
    "gnttab_unmap_grant_ref",
    "xencons_interface",
    "xen_errno",
    "xenmem_access_t",
];

/// Headers taken whole (small, and all of it is ABI a guest uses).
const FILES: &[&str] = &[".*/vcpu\\.h"];

/// `#define`d numbers wanted, as regular expressions over their names.
const CONSTANTS: &[&str] = &[
    "XEN_DOMCTL_.*",
    "XEN_SYSCTL_.*",
    "XEN_DOMINF_.*",
    "_XEN_DOMINF_.*",
    "XEN_VM_EVENT_.*",
    "XENMEM_.*",
    "VM_EVENT_.*",
    "MEM_ACCESS_.*",
    "VCPUOP_.*",
    "XENVER_.*",
    "__HYPERVISOR_.*",
    "DOMID_.*",
    "UVMF_.*",
    "GNTTABOP_.*",
    "_?GNTMAP_.*",
    "GNTST_.*",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [public, output, provenance] = args.as_slice() else {
        eprintln!("usage: xen-abi-gen PUBLIC_DIR OUTPUT PROVENANCE");
        return ExitCode::from(2);
    };
    match generate(Path::new(public), provenance)
        .and_then(|text| std::fs::write(output, text).with_context(|| format!("writing {output}")))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xen-abi-gen: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The generated file's text.
fn generate(public: &Path, provenance: &str) -> Result<String> {
    for header in HEADERS {
        let path = public.join(header);
        if !path.is_file() {
            bail!("{} is missing: not Xen's public headers", path.display());
        }
    }
    let wrapper: String = std::iter::once(STDINT.to_string())
        .chain(
            HEADERS
                .iter()
                .map(|header| format!("#include \"{header}\"\n")),
        )
        .collect();
    // clang's fallback for the macros cexpr cannot evaluate (`xen_mk_ulong`'s and
    // `xen_mk_uint`'s: `UVMF_*`, `DOMID_*`) reads the input headers from files and
    // writes a precompiled header next to them: the wrapper goes to a scratch directory.
    let scratch = std::env::temp_dir().join(format!("xen-abi-gen-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let result = bindings(public, &wrapper, &scratch);
    std::fs::remove_dir_all(&scratch).ok();
    let mut file = result?;
    handles_as_addresses(&mut file);
    unions_without_padding(&mut file);
    derive_zerocopy(&mut file);
    let body = prettyplease::unparse(&file);
    Ok(format!(
        "// @generated by ci/xen-abi-gen (`cargo xtask codegen`): do not edit.\n\
         // From {provenance}; bindgen 0.71.1.\n\n{body}"
    ))
}

/// bindgen's output for `wrapper` (which includes the headers of `public`), parsed; its
/// scratch files go to `scratch`.
fn bindings(public: &Path, wrapper: &str, scratch: &Path) -> Result<syn::File> {
    let header = scratch.join("xen-abi-wrapper.h");
    std::fs::write(&header, wrapper).with_context(|| format!("writing {}", header.display()))?;
    let header = header
        .to_str()
        .context("the scratch directory's path is not UTF-8")?;
    let mut builder = bindgen::Builder::default()
        .header(header)
        .clang_macro_fallback()
        .clang_macro_fallback_build_dir(scratch)
        .prepend_enum_name(false)
        .clang_arg("--target=x86_64-unknown-linux-gnu")
        .clang_arg("-D__XEN_TOOLS__")
        .clang_arg("-nostdinc")
        .clang_arg(format!("-iquote{}", public.display()))
        .use_core()
        .ctypes_prefix("core::ffi")
        .disable_untagged_union()
        .explicit_padding(true)
        .derive_default(true)
        .derive_partialeq(true)
        .derive_eq(true)
        .generate_comments(false)
        .layout_tests(true)
        .formatter(bindgen::Formatter::None);
    for name in TYPES {
        builder = builder.allowlist_type(name);
    }
    for file in FILES {
        builder = builder.allowlist_file(file);
    }
    for constant in CONSTANTS {
        builder = builder.allowlist_var(constant);
    }
    let bindings = builder
        .generate()
        .map_err(|error| anyhow::anyhow!("bindgen failed: {error}"))?;
    syn::parse_str(&bindings.to_string()).context("parsing bindgen's output")
}

/// `<stdint.h>`'s types from the compiler's own macros: no C library's headers (the public
/// directory has a `features.h` of its own, which glibc's would find), the same on every
/// machine. bindgen maps these names to Rust's integers.
const STDINT: &str = "\
typedef __INT8_TYPE__ int8_t;
typedef __INT16_TYPE__ int16_t;
typedef __INT32_TYPE__ int32_t;
typedef __INT64_TYPE__ int64_t;
typedef __UINT8_TYPE__ uint8_t;
typedef __UINT16_TYPE__ uint16_t;
typedef __UINT32_TYPE__ uint32_t;
typedef __UINT64_TYPE__ uint64_t;
";

/// bindgen's explicit padding gets union structs wrong (a padding field of "minus a few"
/// bytes, computed as if the `__BindgenUnionField` members took room): their storage covers
/// the whole union already, so their padding fields go.
fn unions_without_padding(file: &mut syn::File) {
    for item in &mut file.items {
        let Item::Struct(structure) = item else {
            continue;
        };
        let Fields::Named(fields) = &mut structure.fields else {
            continue;
        };
        let named = |field: &syn::Field, prefix: &str| {
            field
                .ident
                .as_ref()
                .is_some_and(|ident| ident.to_string().starts_with(prefix))
        };
        if !fields
            .named
            .iter()
            .any(|field| named(field, "bindgen_union_field"))
        {
            continue;
        }
        fields.named = std::mem::take(&mut fields.named)
            .into_pairs()
            .filter(|pair| !named(pair.value(), "__bindgen_padding_"))
            .collect();
    }
}

fn is_handle(name: &str) -> bool {
    name.starts_with("__guest_handle_")
}

/// Guest handles hold their address as `u64`, and derive `Default` instead of bindgen's
/// zeroing impl for a pointer.
fn handles_as_addresses(file: &mut syn::File) {
    file.items.retain(|item| match item {
        Item::Impl(implementation) => {
            let self_type = &implementation.self_ty;
            let name = quote!(#self_type).to_string();
            !(is_handle(&name) && implementation.trait_.is_some() && {
                let path = &implementation.trait_.as_ref().expect("checked").1;
                quote!(#path).to_string().ends_with("Default")
            })
        }
        _ => true,
    });
    for item in &mut file.items {
        let Item::Struct(structure) = item else {
            continue;
        };
        if !is_handle(&structure.ident.to_string()) {
            continue;
        }
        for field in structure.fields.iter_mut() {
            if matches!(field.ty, Type::Ptr(_)) {
                field.ty = parse_quote!(u64);
            }
        }
        let derives_default = structure
            .attrs
            .iter()
            .any(|attr| quote!(#attr).to_string().contains("Default"));
        if !derives_default {
            structure.attrs.push(parse_quote!(#[derive(Default)]));
        }
    }
}

/// Integer types bindgen emits (directly or as `core::ffi` names).
const INTEGERS: &[&str] = &[
    "u8",
    "u16",
    "u32",
    "u64",
    "i8",
    "i16",
    "i32",
    "i64",
    "c_char",
    "c_schar",
    "c_uchar",
    "c_short",
    "c_ushort",
    "c_int",
    "c_uint",
    "c_long",
    "c_ulong",
    "c_longlong",
    "c_ulonglong",
];

/// bindgen's helper types that hold plain bytes (given the derives here too).
const HELPERS: &[&str] = &["__BindgenUnionField", "__BindgenBitfieldUnit"];

/// Adds zerocopy's derives to every struct of plain bytes, and to bindgen's helpers.
fn derive_zerocopy(file: &mut syn::File) {
    let mut aliases = BTreeMap::new();
    let mut structs = BTreeMap::new();
    for item in &file.items {
        match item {
            Item::Type(alias) => {
                aliases.insert(alias.ident.to_string(), (*alias.ty).clone());
            }
            Item::Struct(structure) => {
                let fields: Vec<Type> = match &structure.fields {
                    Fields::Named(named) => named.named.iter().map(|f| f.ty.clone()).collect(),
                    Fields::Unnamed(unnamed) => {
                        unnamed.unnamed.iter().map(|f| f.ty.clone()).collect()
                    }
                    Fields::Unit => Vec::new(),
                };
                structs.insert(structure.ident.to_string(), fields);
            }
            _ => {}
        }
    }
    // Greatest fixed point: a struct is plain unless a field is not.
    let mut plain: BTreeSet<String> = structs.keys().cloned().collect();
    loop {
        let before = plain.len();
        let not_plain: Vec<String> = plain
            .iter()
            .filter(|name| !HELPERS.contains(&name.as_str()))
            .filter(|name| {
                structs[name.as_str()]
                    .iter()
                    .any(|ty| !is_plain(ty, &plain, &aliases))
            })
            .cloned()
            .collect();
        for name in not_plain {
            plain.remove(&name);
        }
        if plain.len() == before {
            break;
        }
    }
    for item in &mut file.items {
        let Item::Struct(structure) = item else {
            continue;
        };
        let name = structure.ident.to_string();
        if !plain.contains(&name) {
            continue;
        }
        if HELPERS.contains(&name.as_str()) {
            // One field (a PhantomData, or the storage): transparent is the same layout,
            // and zerocopy derives it for a generic struct.
            for attr in &mut structure.attrs {
                if attr.path().is_ident("repr") {
                    *attr = parse_quote!(#[repr(transparent)]);
                }
            }
        }
        structure.attrs.push(parse_quote!(
            #[derive(
                zerocopy::FromBytes,
                zerocopy::IntoBytes,
                zerocopy::Immutable,
                zerocopy::KnownLayout
            )]
        ));
    }
}

fn is_plain(ty: &Type, plain: &BTreeSet<String>, aliases: &BTreeMap<String, Type>) -> bool {
    match ty {
        Type::Array(array) => is_plain(&array.elem, plain, aliases),
        Type::Paren(inner) => is_plain(&inner.elem, plain, aliases),
        Type::Path(path) if path.qself.is_none() => {
            let Some(last) = path.path.segments.last() else {
                return false;
            };
            let name = last.ident.to_string();
            if INTEGERS.contains(&name.as_str()) {
                return true;
            }
            if HELPERS.contains(&name.as_str()) {
                return plain.contains(&name);
            }
            if let Some(target) = aliases.get(&name) {
                return is_plain(target, plain, aliases);
            }
            plain.contains(&name)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passes(source: &str) -> String {
        let mut file: syn::File = syn::parse_str(source).unwrap();
        handles_as_addresses(&mut file);
        unions_without_padding(&mut file);
        derive_zerocopy(&mut file);
        prettyplease::unparse(&file)
    }

    #[test]
    fn a_handle_holds_an_address_and_derives_default() {
        let out = passes(
            "#[repr(C)] #[derive(Copy, Clone)] pub struct __guest_handle_uint8 { pub p: *mut u8 }
             impl Default for __guest_handle_uint8 { fn default() -> Self { todo!() } }",
        );
        assert!(out.contains("pub p: u64"), "{out}");
        assert!(!out.contains("impl Default"), "{out}");
        assert!(out.contains("#[derive(Default)]"), "{out}");
        assert!(out.contains("zerocopy::IntoBytes"), "{out}");
    }

    #[test]
    fn union_structs_lose_bindgens_wrong_padding() {
        let out = passes(
            "#[repr(C)] pub struct __BindgenUnionField<T>(::core::marker::PhantomData<T>);
             #[repr(C)] pub struct u { pub a: __BindgenUnionField<u32>,
                 pub __bindgen_padding_0: [u8; 18446744073709551612usize],
                 pub bindgen_union_field: u64 }
             #[repr(C)] pub struct s { pub x: u32, pub __bindgen_padding_0: [u8; 4usize] }",
        );
        assert!(!out.contains("18446744073709551612"), "{out}");
        // A struct's own padding stays: it is what makes it plain bytes.
        assert!(
            out.contains("pub __bindgen_padding_0: [u8; 4usize]"),
            "{out}"
        );
        assert!(out.contains("#[repr(transparent)]"), "{out}");
    }

    #[test]
    fn only_structs_of_plain_bytes_derive_zerocopy() {
        let out = passes(
            "pub type domid_t = u16;
             #[repr(C)] pub struct plain { pub a: domid_t, pub b: [core::ffi::c_char; 2] }
             #[repr(C)] pub struct holds_plain { pub p: plain }
             #[repr(C)] pub struct pointer { pub p: *mut u8 }
             #[repr(C)] pub struct holds_pointer { pub x: [pointer; 2] }",
        );
        let derives = |name: &str| {
            let at = out.find(&format!("pub struct {name} ")).unwrap();
            let start = out[..at].rfind('}').map_or(0, |end| end + 1);
            out[start..at].contains("zerocopy::FromBytes")
        };
        assert!(derives("plain") && derives("holds_plain"), "{out}");
        assert!(!derives("pointer") && !derives("holds_pointer"), "{out}");
    }
}
