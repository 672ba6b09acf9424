//! `cargo xtask ci`: everything CI runs, in the order that fails fastest. Green here means
//! green in CI.

use std::process::ExitCode;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::host::BARE_METAL_TARGET;
use crate::layout::Layout;
use crate::progress::Phase;

pub fn run() -> Result<ExitCode> {
    let sh = Shell::new()?;
    let _root = sh.push_dir(Layout::new().root);
    // The object check and the guest need the bare-metal target, e2e the host packages: a
    // fresh machine has neither.
    let phase = Phase::start("prepare", "host packages and the Rust target");
    crate::host::ensure_prerequisites(&sh)?;
    phase.finish();

    let phase = Phase::start("fmt", "cargo fmt --check");
    cmd!(sh, "cargo fmt --all -- --check")
        .run()
        .context("formatting differs: run cargo fmt")?;
    phase.finish();

    let phase = Phase::start("clippy", "cargo clippy --workspace -- -D warnings");
    cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").run()?;
    phase.finish();

    clippy_bare_metal(&sh)?;

    let phase = Phase::start("test", "cargo test --workspace (host tests)");
    // Snapshots are reviewed by people, never accepted by CI.
    cmd!(sh, "cargo test --workspace")
        .env("INSTA_UPDATE", "no")
        .run()?;
    phase.finish();

    let phase = Phase::start(
        "codegen-check",
        "xen-abi's bindings are what the patched Xen's headers give",
    );
    crate::codegen::run(&crate::codegen::Options { check: true })?;
    phase.finish();

    let phase = Phase::start(
        "check-hv-object",
        "the Rust module's object keeps Xen's rules",
    );
    crate::hv_module::check_command(None)?;
    phase.finish();

    build_xen_without_hvm()?;

    // `bench --quick`: the tracker's figures now, the booted ones from the e2e's own
    // `bench/figures` (one run); reported, not judged.
    let tracker = crate::bench::tracker_figures(&Layout::new(), true)?;
    // Snapshots are reviewed by people: a changed trace fails, and insta writes nothing.
    std::env::set_var("INSTA_UPDATE", "no");
    let code = crate::e2e::run(&crate::e2e::Options::default())?;
    if code == ExitCode::SUCCESS {
        let setting = crate::bench::report::Setting {
            quick: true,
            xen_build: "debug",
            runs: 1,
        };
        crate::bench::write(&Layout::new(), &setting, Some(&tracker))?;
    }
    Ok(code)
}

/// The guest kernel and the hypervisor module as they are built: for the bare-metal target,
/// where the host build leaves their `cfg(target_os = "none")` code (the kernel's entry, its
/// hypercall page and most of its `unsafe`) out of the workspace's clippy. The module with
/// the profile `hv_module` builds it with; its code-generation flags change no lint.
fn clippy_bare_metal(sh: &Shell) -> Result<()> {
    let phase = Phase::start(
        "clippy-bare-metal",
        "cargo clippy --target x86_64-unknown-none (test-guest, hypervisor-patch)",
    );
    cmd!(
        sh,
        "cargo clippy -p test-guest --target {BARE_METAL_TARGET} -- -D warnings"
    )
    .run()?;
    cmd!(
        sh,
        "cargo clippy -p hypervisor-patch --lib --profile hypervisor
            --target {BARE_METAL_TARGET} -- -D warnings"
    )
    .run()?;
    phase.finish();
    Ok(())
}

/// PV mem_access needs nothing of HVM: the hypervisor must build without it (built, never
/// booted).
pub fn build_xen_without_hvm() -> Result<()> {
    let sh = Shell::new()?;
    let layout = Layout::new();
    let _root = sh.push_dir(&layout.root);
    let phase = Phase::start(
        "build_xen_without_hvm",
        "Xen with PV mem_access and without HVM (built, never booted)",
    );
    let rust_object = crate::hv_module::build(&sh, &layout)?;
    crate::xen_build::build(&sh, &layout, &rust_object, &crate::xen_build::WITHOUT_HVM)?;
    phase.finish();
    Ok(())
}
