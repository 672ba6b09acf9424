//! Xen from source: Debian's source package at the pinned version (Debian's own patches
//! applied, as in the packaged hypervisor), then our series from `hypervisor-patch/patches/`,
//! Debian's configuration plus ours, and the hypervisor alone built (never the tools).
//!
//! Everything is cached under `target/xtask/xen/`. The source is prepared in a staging tree
//! and only files whose bytes changed are copied into the build tree, so make rebuilds what a
//! patch touched and nothing else; when nothing that goes into the hypervisor changed, make
//! is not run at all.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::debian::refresh_package_lists;
use crate::layout::{Layout, XEN_DEB_VERSION, XEN_VENDOR_VERSION};
use crate::progress::{quietly, step};

/// A hypervisor configuration we build: our options on top of Debian's
/// `debian/xen-kconfig`, in a build tree of its own under `target/xtask/<dir>/`.
pub struct Variant {
    /// The directory under `target/xtask/`.
    pub dir: &'static str,
    /// Our options; `=n` lines must come out as `# CONFIG_... is not set`.
    pub fragment: &'static str,
}

/// The hypervisor the scenarios boot: Debian's, with HVM, PV and PV mem_access, and perf
/// counters (`xenperf` in dom0 reads them) to count what the shadow code did. 32-bit PV
/// guests too (`CONFIG_PV32`, off in Debian's configuration): `abi/pv32-refused` boots one
/// to prove Xen refuses to monitor it. (Xen turns them off at boot when it uses CET, shadow
/// stacks or IBT, which QEMU's `qemu64` CPU does not have.)
pub const BOOTED: Variant = Variant {
    dir: "xen",
    fragment: "\
CONFIG_DEBUG=y
CONFIG_DEBUG_INFO=y
CONFIG_PERF_COUNTERS=y
CONFIG_SHADOW_PAGING=y
CONFIG_PV=y
CONFIG_PV32=y
CONFIG_HVM=y
CONFIG_MEM_ACCESS=y
CONFIG_PV_MEM_ACCESS=y
",
};

/// The booted hypervisor as a production build: no `CONFIG_DEBUG`, so no assertions and
/// `map_domain_page()` through the direct map instead of the per-vCPU mapcache that debug
/// builds force on PV vCPUs. For figures (`cargo xtask e2e --release-xen`), never for
/// correctness: the debug build's assertions are part of every test. Perf counters stay on:
/// `cargo xtask bench` reads them (they cost both sides of each ratio alike); without
/// `CONFIG_DEBUG` Kconfig offers them only to `CONFIG_EXPERT`.
pub const BOOTED_RELEASE: Variant = Variant {
    dir: "xen-release",
    fragment: "\
CONFIG_DEBUG=n
CONFIG_EXPERT=y
CONFIG_PERF_COUNTERS=y
CONFIG_SHADOW_PAGING=y
CONFIG_PV=y
CONFIG_PV32=y
CONFIG_HVM=y
CONFIG_MEM_ACCESS=y
CONFIG_PV_MEM_ACCESS=y
",
};

/// PV mem_access needs nothing of HVM (the series' last patch): the same hypervisor without HVM must
/// build. Built by `cargo xtask ci`, never booted.
pub const WITHOUT_HVM: Variant = Variant {
    dir: "xen-without-hvm",
    fragment: "\
CONFIG_DEBUG=y
CONFIG_SHADOW_PAGING=y
CONFIG_PV=y
CONFIG_HVM=n
CONFIG_MEM_ACCESS=y
CONFIG_PV_MEM_ACCESS=y
",
};

/// The list of source files (no build outputs) a prepared tree keeps at its top.
pub const SOURCE_MANIFEST: &str = ".source-manifest";

/// Where the first patch of our series links the Rust module's object from.
const RUST_OBJECT_IN_TREE: &str = "xen/arch/x86/mm/pv-mem-access/rust.o";

/// A built hypervisor.
pub struct XenImage {
    /// The 32-bit multiboot ELF QEMU's `-kernel` takes (`xen/xen` of the build).
    pub multiboot_elf: PathBuf,
}

/// Builds Xen with our series and the Rust module's object `rust_object`, configured as
/// `variant` says.
pub fn build(
    sh: &Shell,
    layout: &Layout,
    rust_object: &Path,
    variant: &Variant,
) -> Result<XenImage> {
    let dir = layout.cache().join(variant.dir);
    let fragment = variant.fragment;
    let tree = source_tree(&dir);
    let image = XenImage {
        multiboot_elf: dir.join("xen.elf"),
    };
    let source_key = source_key(&read_series(&layout.patches())?)?;
    let object =
        std::fs::read(rust_object).with_context(|| format!("reading {}", rust_object.display()))?;
    let mut build_key = Sha256::new();
    build_key.update(format!("{source_key}\n{fragment}\n{XEN_VENDOR_VERSION}\n"));
    build_key.update(&object);
    let build_key = hex(&build_key.finalize());
    let built_stamp = dir.join("built.key");
    if image.multiboot_elf.exists()
        && std::fs::read_to_string(&built_stamp).ok().as_deref() == Some(build_key.as_str())
    {
        step("Xen is up to date (sources, patches and configuration unchanged)");
        return Ok(image);
    }

    prepare_source(sh, layout, &dir)?;
    configure(sh, &tree, &dir.join("config.key"), fragment)?;
    // Only a changed object is copied, so make relinks only when the module changed.
    let in_tree = tree.join(RUST_OBJECT_IN_TREE);
    if std::fs::read(&in_tree).ok().as_deref() != Some(object.as_slice()) {
        std::fs::write(&in_tree, &object)?;
    }

    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let jobs = jobs.to_string();
    step(&format!(
        "make -C xen -j{jobs} (a clean build takes 3-5 minutes on 2 cores)"
    ));
    let _tree = sh.push_dir(&tree);
    let vendor = format!("XEN_VENDORVERSION={XEN_VENDOR_VERSION}");
    let log = dir.join("build.log");
    let output = cmd!(sh, "make -C xen -j{jobs} {vendor}")
        .quiet()
        .ignore_status()
        .output()?;
    let mut text = output.stdout.clone();
    text.extend_from_slice(&output.stderr);
    std::fs::write(&log, &text)?;
    if !output.status.success() {
        let tail: Vec<&str> = std::str::from_utf8(&output.stderr)
            .unwrap_or("")
            .lines()
            .rev()
            .take(25)
            .collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "building Xen failed (full log: {}):\n{}",
            log.display(),
            tail.join("\n")
        );
    }
    // xen/xen is the 32-bit multiboot ELF that xen.gz compresses.
    std::fs::copy(tree.join("xen/xen"), &image.multiboot_elf)?;
    std::fs::write(&built_stamp, &build_key)?;
    Ok(image)
}

/// The source tree of the build directory `dir` (under `target/xtask/`).
pub fn source_tree(dir: &Path) -> PathBuf {
    dir.join("tree")
}

/// Prepares the patched source tree of the build directory `dir` ([`source_tree`]):
/// Debian's source package at the pinned version, Debian's patches, then our series,
/// staged and synced into the tree (only changed files touched), and nothing built. Does
/// nothing when the tree already holds these sources. `cargo xtask codegen` reads Xen's
/// public headers from it.
pub fn prepare_source(sh: &Shell, layout: &Layout, dir: &Path) -> Result<PathBuf> {
    let tree = source_tree(dir);
    let series = read_series(&layout.patches())?;
    let source_key = source_key(&series)?;
    let source_stamp = dir.join("source.key");
    if std::fs::read_to_string(&source_stamp).ok().as_deref() == Some(source_key.as_str())
        && tree.exists()
    {
        return Ok(tree);
    }
    // One download for every variant.
    let dsc = download_source(sh, &layout.xen().join("download"))?;
    let staging = dir.join("staging");
    // dpkg-source puts the upstream tarballs next to the tree it unpacks.
    std::fs::create_dir_all(dir)?;
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    step(&format!(
        "unpacking xen {XEN_DEB_VERSION} with Debian's patches"
    ));
    quietly(cmd!(sh, "dpkg-source -q -x {dsc} {staging}"))
        .context("dpkg-source could not unpack Xen's source package")?;
    for patch in &series {
        apply_patch(sh, &staging, patch)?;
    }
    let changed = sync_tree(&staging, &tree)?;
    step(&format!(
        "{} patches applied; {changed} files changed in the source tree",
        series.len()
    ));
    std::fs::remove_dir_all(&staging)?;
    std::fs::write(&source_stamp, &source_key)?;
    // The sources changed: the configuration is made again.
    let _ = std::fs::remove_file(dir.join("config.key"));
    Ok(tree)
}

/// A short digest of our series (patch names and contents, in order), for the generated
/// bindings' provenance.
pub fn series_digest(layout: &Layout) -> Result<String> {
    let mut hash = Sha256::new();
    for patch in read_series(&layout.patches())? {
        hash.update(patch.file_name().unwrap_or_default().as_encoded_bytes());
        hash.update(b"\n");
        hash.update(std::fs::read(&patch)?);
    }
    Ok(hex(&hash.finalize())[..16].to_string())
}

/// The patch files named by `series`, in order (quilt's format: one name a line, `#` starts a
/// comment).
fn read_series(patches: &Path) -> Result<Vec<PathBuf>> {
    let series = patches.join("series");
    let text = std::fs::read_to_string(&series)
        .with_context(|| format!("reading {}", series.display()))?;
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(|name| {
            let path = patches.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                bail!("{} names {name}, which does not exist", series.display())
            }
        })
        .collect()
}

/// Everything that decides the source tree's contents.
fn source_key(series: &[PathBuf]) -> Result<String> {
    let mut hash = Sha256::new();
    hash.update(XEN_DEB_VERSION.as_bytes());
    for patch in series {
        hash.update(patch.file_name().unwrap_or_default().as_encoded_bytes());
        hash.update(std::fs::read(patch)?);
    }
    Ok(hex(&hash.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn download_source(sh: &Shell, download: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(download)?;
    let dsc = download.join(format!(
        "xen_{}.dsc",
        XEN_DEB_VERSION
            .split(':')
            .next_back()
            .unwrap_or(XEN_DEB_VERSION)
    ));
    if dsc.exists() {
        return Ok(dsc);
    }
    step(&format!("apt-get source xen={XEN_DEB_VERSION}"));
    let _dir = sh.push_dir(download);
    let spec = format!("xen={XEN_DEB_VERSION}");
    let fetch = |sh: &Shell| {
        cmd!(
            sh,
            "apt-get -q -o APT::Sandbox::User=root source --download-only {spec}"
        )
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
    };
    if fetch(sh).is_err() {
        refresh_package_lists(sh)?;
        fetch(sh).with_context(|| {
            format!("apt-get source {spec} failed: is there a deb-src entry, and is that version still in the archive?")
        })?;
    }
    if !dsc.exists() {
        bail!("apt-get source did not produce {}", dsc.display());
    }
    Ok(dsc)
}

fn apply_patch(sh: &Shell, tree: &Path, patch: &Path) -> Result<()> {
    let name = patch.file_name().unwrap_or_default().to_string_lossy();
    let output = cmd!(
        sh,
        "patch -p1 --batch --forward --no-backup-if-mismatch -r - -d {tree} -i {patch}"
    )
    .quiet()
    .ignore_status()
    .output()?;
    if output.status.success() {
        return Ok(());
    }
    let report = String::from_utf8_lossy(&output.stdout);
    // Keep the lines that say which file and which hunk failed.
    let mut current_file = "";
    let mut failures = Vec::new();
    for line in report.lines() {
        if let Some(file) = line.strip_prefix("patching file ") {
            current_file = file;
        } else if line.contains("FAILED")
            || line.contains("can't find file")
            || line.contains("malformed")
        {
            failures.push(format!("  {current_file}: {line}"));
        }
    }
    if failures.is_empty() {
        failures.push(report.trim().to_string());
    }
    bail!(
        "patch {name} does not apply to xen {XEN_DEB_VERSION}:\n{}",
        failures.join("\n")
    )
}

/// Makes `to` a copy of the file (or symbolic link) `from` unless it already is one, so an
/// unchanged file keeps its time stamp; whether it had to change.
pub fn sync_file(from: &Path, to: &Path, is_symlink: bool) -> Result<bool> {
    if is_symlink {
        let target = std::fs::read_link(from)?;
        if std::fs::read_link(to).ok().as_ref() == Some(&target) {
            return Ok(false);
        }
        let _ = std::fs::remove_file(to);
        std::os::unix::fs::symlink(&target, to)?;
    } else {
        if std::fs::read(to).ok() == Some(std::fs::read(from)?) {
            return Ok(false);
        }
        let _ = std::fs::remove_file(to);
        std::fs::copy(from, to)?;
    }
    Ok(true)
}

/// Makes `tree` hold exactly the files of `staging`, touching only files whose contents
/// differ, so build outputs of unchanged sources stay valid. Returns how many files changed.
fn sync_tree(staging: &Path, tree: &Path) -> Result<usize> {
    let manifest_path = tree.join(SOURCE_MANIFEST);
    let old: BTreeSet<String> = std::fs::read_to_string(&manifest_path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    std::fs::create_dir_all(tree)?;
    let mut new = BTreeSet::new();
    let mut changed = 0;
    let mut stack = vec![PathBuf::new()];
    while let Some(relative) = stack.pop() {
        for entry in std::fs::read_dir(staging.join(&relative))? {
            let entry = entry?;
            let relative = relative.join(entry.file_name());
            let from = staging.join(&relative);
            let to = tree.join(&relative);
            let kind = entry.file_type()?;
            if kind.is_dir() {
                std::fs::create_dir_all(&to)?;
                stack.push(relative);
                continue;
            }
            new.insert(relative.to_string_lossy().into_owned());
            if sync_file(&from, &to, kind.is_symlink())? {
                changed += 1;
            }
        }
    }
    for gone in old.difference(&new) {
        let _ = std::fs::remove_file(tree.join(gone));
        changed += 1;
    }
    let manifest: Vec<&str> = new.iter().map(String::as_str).collect();
    std::fs::write(&manifest_path, manifest.join("\n"))?;
    Ok(changed)
}

/// Debian's hypervisor configuration with our options, resolved by Kconfig; fails when
/// Kconfig refuses one of our options (a dependency we did not satisfy).
fn configure(sh: &Shell, tree: &Path, stamp: &Path, fragment: &str) -> Result<()> {
    let key = hex(&Sha256::digest(fragment.as_bytes()));
    let config = tree.join("xen/.config");
    if config.exists() && std::fs::read_to_string(stamp).ok().as_deref() == Some(key.as_str()) {
        return Ok(());
    }
    let debian = std::fs::read_to_string(tree.join("debian/xen-kconfig"))?;
    std::fs::write(&config, format!("{debian}\n{fragment}"))?;
    let _tree = sh.push_dir(tree);
    quietly(cmd!(sh, "make -C xen olddefconfig")).context("configuring Xen")?;
    let resolved = std::fs::read_to_string(&config)?;
    for wanted in fragment.lines() {
        if !resolved.lines().any(|line| line == kconfig_line(wanted)) {
            bail!(
                "Xen's Kconfig did not keep {wanted} (see {})",
                config.display()
            );
        }
    }
    std::fs::write(stamp, key)?;
    Ok(())
}

/// How Kconfig writes an option into `.config`: `CONFIG_X=n` as `# CONFIG_X is not set`.
fn kconfig_line(option: &str) -> String {
    match option.strip_suffix("=n") {
        Some(name) => format!("# {name} is not set"),
        None => option.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_file_copies_only_what_differs() {
        let dir = std::env::temp_dir().join(format!("xtask-sync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (from, to) = (dir.join("from"), dir.join("to"));
        std::fs::write(&from, "a").unwrap();
        assert!(sync_file(&from, &to, false).unwrap());
        assert!(!sync_file(&from, &to, false).unwrap());
        std::fs::write(&from, "b").unwrap();
        assert!(sync_file(&from, &to, false).unwrap());
        assert_eq!(std::fs::read_to_string(&to).unwrap(), "b");
        let (link, copy) = (dir.join("link"), dir.join("copy"));
        std::os::unix::fs::symlink("from", &link).unwrap();
        assert!(sync_file(&link, &copy, true).unwrap());
        assert!(!sync_file(&link, &copy, true).unwrap());
        assert_eq!(std::fs::read_link(&copy).unwrap(), Path::new("from"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn disabled_options_are_checked_as_kconfig_writes_them() {
        assert_eq!(kconfig_line("CONFIG_HVM=n"), "# CONFIG_HVM is not set");
        assert_eq!(kconfig_line("CONFIG_PV=y"), "CONFIG_PV=y");
    }

    #[test]
    fn variants_build_pv_mem_access_and_differ_only_where_named() {
        for variant in [&BOOTED, &BOOTED_RELEASE, &WITHOUT_HVM] {
            assert!(variant.fragment.contains("CONFIG_PV_MEM_ACCESS=y\n"));
        }
        assert_eq!(
            BOOTED.fragment,
            BOOTED_RELEASE.fragment.replace(
                "CONFIG_DEBUG=n\nCONFIG_EXPERT=y\n",
                "CONFIG_DEBUG=y\nCONFIG_DEBUG_INFO=y\n"
            )
        );
        assert!(BOOTED.fragment.contains("CONFIG_HVM=y\n"));
        assert!(WITHOUT_HVM.fragment.contains("CONFIG_HVM=n\n"));
        assert_ne!(BOOTED.dir, WITHOUT_HVM.dir);
    }
}
