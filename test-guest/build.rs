//! Links the kernel with `guest.ld`, as a non-PIE static executable, when building
//! for a bare-metal target (`x86_64-unknown-none`). Host builds get nothing extra.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=guest.ld");

    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    // rust-lld (ld.lld flavour) takes these directly. x86_64-unknown-none defaults
    // to a static PIE; `--no-pie` comes after rustc's own `-pie`, and the last one
    // wins, so the image has fixed addresses and no dynamic relocations for the
    // domain builder to ignore. Only the bin is linked this way.
    println!("cargo:rustc-link-arg-bins=-T{dir}/guest.ld");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    println!("cargo:rustc-link-arg-bins=--build-id=none");
}
