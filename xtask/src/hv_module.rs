//! Builds the Rust module Xen links (the `hypervisor-patch` crate) into ONE relocatable
//! object with Xen's code-generation rules, and checks it (with `ci/hv-object-check`).
//!
//! Why these flags (all measured on Xen 4.17's link):
//! - `relocation-model=pie`, `plt=yes`, `relax-elf-relocations=yes`: Xen links at
//!   0xffff82d040000000 and its linker script asserts `.got`/`.plt` stay empty; `static`
//!   overflows 32-bit relocations there, and default flags leave GOT entries;
//! - `jump-tables=no`: a jump table is an indirect branch, which CET-IBT forbids;
//! - `cf-protection=branch`: `endbr64` where an indirect call may land, as Xen's own
//!   `-fcf-protection=branch`;
//! - `function-return=thunk-extern`: returns go through Xen's `__x86_return_thunk`, as with
//!   Xen's `-mfunction-return=thunk-extern`;
//! - no unwind tables, frame pointers kept (Xen's stack traces walk them).
//!   The `-Z` flags need `RUSTC_BOOTSTRAP=1` on the stable toolchain.
//!
//! From the static library only the crate's own object is taken (not compiler_builtins:
//! Xen has memcpy and friends), without the LLVM bitcode sections LTO leaves behind.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::host::BARE_METAL_TARGET;
use crate::layout::Layout;
use crate::progress::quietly;

const RUSTFLAGS: &str = "-C relocation-model=pie -Z plt=yes -Z relax-elf-relocations=yes \
    -C jump-tables=no -C force-unwind-tables=no -Z function-return=thunk-extern \
    -Z cf-protection=branch -C force-frame-pointers=yes";

/// Builds the module and returns the path of its object.
pub fn build(sh: &Shell, layout: &Layout) -> Result<PathBuf> {
    let target_dir = layout.cache().join("hv-rust");
    let _root = sh.push_dir(&layout.root);
    quietly(
        cmd!(
            sh,
            "cargo rustc --quiet -p hypervisor-patch --lib --profile hypervisor
                --target {BARE_METAL_TARGET} --crate-type staticlib"
        )
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", RUSTFLAGS)
        .env("RUSTC_BOOTSTRAP", "1"),
    )
    .context("building the hypervisor module")?;
    let library = target_dir
        .join(BARE_METAL_TARGET)
        .join("hypervisor")
        .join("libhypervisor_patch.a");
    let extract = target_dir.join("object");
    if extract.exists() {
        std::fs::remove_dir_all(&extract)?;
    }
    std::fs::create_dir_all(&extract)?;
    let members = cmd!(sh, "ar t {library}").quiet().read()?;
    let ours: Vec<&str> = members
        .lines()
        .filter(|member| member.starts_with("hypervisor_patch-") && member.ends_with(".o"))
        .collect();
    let [member] = ours.as_slice() else {
        bail!(
            "expected one object of the crate in {}, found {ours:?}",
            library.display()
        );
    };
    {
        let _extract = sh.push_dir(&extract);
        cmd!(sh, "ar x {library} {member}").quiet().run()?;
    }
    let object = target_dir.join("pv-mem-access-rust.o");
    let member = extract.join(member);
    cmd!(
        sh,
        "objcopy --remove-section=.llvmbc --remove-section=.llvmcmd {member} {object}"
    )
    .quiet()
    .run()?;
    Ok(object)
}

/// `cargo xtask check-hv-object [OBJECT]`: builds the module (unless an object is named) and
/// checks it.
pub fn check_command(object: Option<&Path>) -> Result<std::process::ExitCode> {
    let sh = Shell::new()?;
    let layout = Layout::new();
    let object = match object {
        Some(path) => path.to_path_buf(),
        None => build(&sh, &layout)?,
    };
    check(&sh, &layout, &object)?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Checks `object` with the checker of `ci/hv-object-check` (a crate of its own, so xtask
/// compiles no disassembler); an error names every rule it breaks.
pub fn check(sh: &Shell, layout: &Layout, object: &Path) -> Result<()> {
    let _root = sh.push_dir(&layout.root);
    let output = cmd!(
        sh,
        "cargo run --quiet --release -p hv-object-check -- {object}"
    )
    .ignore_status()
    .output()?;
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{report}");
    if !output.status.success() {
        bail!(
            "the Rust module's object breaks Xen's rules:\n{report}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
