//! `cargo xtask codegen [--check]`: Xen's ABI from Xen's headers. Prepares the patched
//! source tree the Xen build uses (Debian's source package, Debian's patches, our series;
//! nothing built) and runs `ci/xen-abi-gen` (bindgen, a crate of its own so that xtask
//! compiles neither bindgen nor libclang's bindings) over its `xen/include/public`, into
//! `xen-abi/src/generated.rs`. With `--check` the bindings are generated into
//! `target/xtask/codegen/` and compared with the committed file: a difference fails, with a
//! summary of it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::layout::{Layout, XEN_DEB_VERSION};
use crate::progress::step;
use crate::xen_build::{prepare_source, series_digest, BOOTED};

/// The committed bindings, from the workspace's root.
pub const GENERATED: &str = "xen-abi/src/generated.rs";

/// How many lines of the diff a failed check shows.
const DIFF_LINES_SHOWN: usize = 40;

#[derive(clap::Args, Default)]
pub struct Options {
    /// Generate into a temporary file and fail if the committed one differs (CI).
    #[arg(long)]
    pub check: bool,
}

pub fn run(options: &Options) -> Result<ExitCode> {
    let sh = Shell::new()?;
    let layout = Layout::new();
    crate::host::ensure_prerequisites(&sh)?;
    let committed = layout.root.join(GENERATED);
    let output = if options.check {
        let dir = layout.cache().join("codegen");
        std::fs::create_dir_all(&dir)?;
        dir.join("generated.rs")
    } else {
        committed.clone()
    };
    generate(&sh, &layout, &output)?;
    if !options.check {
        step(&format!("wrote {GENERATED}"));
        return Ok(ExitCode::SUCCESS);
    }
    let old = std::fs::read_to_string(&committed)
        .with_context(|| format!("reading {}", committed.display()))?;
    let new = std::fs::read_to_string(&output)?;
    if old == new {
        step(&format!("{GENERATED} is what Xen's headers give"));
        return Ok(ExitCode::SUCCESS);
    }
    bail!(
        "{GENERATED} differs from what the patched Xen's headers give \
         (run `cargo xtask codegen` and commit the result):\n{}",
        diff_summary(&sh, &committed, &output)
    )
}

/// Prepares the patched tree (the booted hypervisor's: a later build reuses it) and writes
/// the bindings of its public headers to `output`.
pub fn generate(sh: &Shell, layout: &Layout, output: &Path) -> Result<()> {
    let dir = layout.cache().join(BOOTED.dir);
    let tree = prepare_source(sh, layout, &dir)?;
    let public: PathBuf = tree.join("xen/include/public");
    let provenance = format!(
        "Xen {XEN_DEB_VERSION} (Debian's source package and patches) with \
         hypervisor-patch/patches (series {})",
        series_digest(layout)?
    );
    step("generating Xen's ABI bindings (ci/xen-abi-gen)");
    let _root = sh.push_dir(&layout.root);
    let result = cmd!(
        sh,
        "cargo run --quiet --release -p xen-abi-gen -- {public} {output} {provenance}"
    )
    .run();
    result.context("ci/xen-abi-gen failed (is libclang-dev installed?)")
}

/// `diff -u`'s counts of lines removed and added, and its first lines.
fn diff_summary(sh: &Shell, old: &Path, new: &Path) -> String {
    let diff = cmd!(sh, "diff -u {old} {new}")
        .quiet()
        .ignore_status()
        .read()
        .unwrap_or_default();
    let lines: Vec<&str> = diff.lines().collect();
    let changes = |sign: char, header: &str| {
        lines
            .iter()
            .filter(|line| line.starts_with(sign) && !line.starts_with(header))
            .count()
    };
    let (removed, added) = (changes('-', "---"), changes('+', "+++"));
    let mut summary = format!(
        "{removed} line(s) of the committed file differ, {added} line(s) of the generated one \
         (generated: {}):\n",
        new.display()
    );
    for line in lines.iter().take(DIFF_LINES_SHOWN) {
        summary.push_str(line);
        summary.push('\n');
    }
    if lines.len() > DIFF_LINES_SHOWN {
        summary.push_str(&format!(
            "... ({} more diff lines)\n",
            lines.len() - DIFF_LINES_SHOWN
        ));
    }
    summary
}
