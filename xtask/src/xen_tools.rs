//! The part of Xen's tools our series changes, built from the same patched source as the
//! hypervisor: libxenctrl (with the libraries it is linked against and libxenguest, which
//! xen-access needs to link) and `tools/misc/xen-access`. dom0 gets our libxenctrl and
//! xen-access in place of Debian's (same version, same Debian patches, plus ours); every other
//! library stays Debian's.
//!
//! The tools build in a tree of their own under `target/xtask/xen-tools/`, copied file by file
//! from the hypervisor's source tree (only files whose bytes changed are written, so make
//! rebuilds what a patch touched), configured once with as little as Xen's configure allows,
//! and cached on the series' content: a warm run runs neither configure nor make.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::layout::Layout;
use crate::progress::{quietly, step};
use crate::xen_build::{self, hex};

/// How the tools are configured: only what libxenctrl and xen-access need is built, and
/// configure is asked to look for nothing else it can be told to skip. (It still insists on
/// yajl, iasl, uuid, curses and Python for the rest of the tools: host packages.)
const CONFIGURE_ARGS: &[&str] = &[
    "--disable-xen",
    "--disable-docs",
    "--disable-stubdom",
    "--prefix=/usr",
    "--libdir=/usr/lib/x86_64-linux-gnu",
    "--disable-seabios",
    "--disable-rombios",
    "--disable-ipxe",
    "--disable-ovmf",
    "--disable-qemu-traditional",
    "--with-system-qemu=/usr/bin/qemu-system-i386",
    "--disable-ocamltools",
    "--disable-golang",
    "--disable-xsmpolicy",
    "--disable-monitors",
    "--disable-pvshim",
    "--disable-9pfs",
    "--disable-systemd",
];

/// The libraries below `tools/libs/`, in build order (each after those it links against:
/// `tools/libs/uselibs.mk`): libxenctrl's, libxenctrl, and libxenguest for xen-access.
const LIBRARIES: &[&str] = &[
    "toolcore",
    "toollog",
    "call",
    "evtchn",
    "gnttab",
    "foreignmemory",
    "devicemodel",
    "ctrl",
    "guest",
];

/// The libraries dom0 gets from this build instead of Debian's: (directory under
/// `tools/libs/`, the name dom0's programs load it by). Only libxenctrl changed.
const REPLACED_LIBRARIES: &[(&str, &str)] = &[("ctrl", "libxenctrl.so.4.17")];

/// The C sources xtask builds against the patched libxenctrl, under `xtask/c/`.
pub const C_PROGRAMS: &[&str] = &["compat-libxenctrl"];

/// What the build gives dom0 and the C programs built against it.
pub struct XenTools {
    /// (name dom0 loads it by, the built file) for each library replacing Debian's.
    pub libraries: Vec<(String, PathBuf)>,
    pub xen_access: PathBuf,
    /// Our C programs, built against the patched headers and libxenctrl: (name, binary).
    pub programs: Vec<(String, PathBuf)>,
}

/// Builds (or takes from the cache) libxenctrl and xen-access from the patched source tree
/// of `hypervisor_dir` (a variant's directory under `target/xtask/`, built just before).
pub fn build(sh: &Shell, layout: &Layout, hypervisor_dir: &str) -> Result<XenTools> {
    let source_dir = layout.cache().join(hypervisor_dir);
    let source = source_dir.join("tree");
    let dir = layout.cache().join("xen-tools");
    let tree = dir.join("tree");
    let out = dir.join("out");
    let source_key = std::fs::read_to_string(source_dir.join("source.key"))
        .context("the hypervisor's source tree is not prepared")?;
    let c_dir = layout.root.join("xtask").join("c");

    let mut key = Sha256::new();
    key.update(format!(
        "{source_key}\n{}\n{}\n",
        CONFIGURE_ARGS.join(" "),
        LIBRARIES.join(" ")
    ));
    for program in C_PROGRAMS {
        key.update(std::fs::read(c_dir.join(format!("{program}.c")))?);
    }
    let key = hex(&key.finalize());
    let tools = XenTools {
        libraries: REPLACED_LIBRARIES
            .iter()
            .map(|(_, name)| (name.to_string(), out.join(name)))
            .collect(),
        xen_access: out.join("xen-access"),
        programs: C_PROGRAMS
            .iter()
            .map(|name| (name.to_string(), out.join(name)))
            .collect(),
    };
    let stamp = dir.join("built.key");
    let outputs_exist = tools.xen_access.exists()
        && tools.libraries.iter().all(|(_, path)| path.exists())
        && tools.programs.iter().all(|(_, path)| path.exists());
    if outputs_exist && std::fs::read_to_string(&stamp).ok().as_deref() == Some(key.as_str()) {
        step("Xen's tools are up to date (libxenctrl, xen-access)");
        return Ok(tools);
    }

    let changed = sync_sources(&source, &tree)?;
    step(&format!(
        "tools tree: {changed} files changed from the patched source"
    ));
    configure(sh, &tree, &dir.join("config.key"))?;

    let jobs = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .to_string();
    let log = dir.join("build.log");
    let _ = std::fs::remove_file(&log);
    step("make -C tools/include");
    make(sh, &tree, &["-C", "tools/include"], &jobs, &log)?;
    for library in LIBRARIES {
        step(&format!("make -C tools/libs/{library}"));
        make(
            sh,
            &tree,
            &["-C", &format!("tools/libs/{library}")],
            &jobs,
            &log,
        )?;
    }
    step("make -C tools/misc xen-access");
    make(sh, &tree, &["-C", "tools/misc", "xen-access"], &jobs, &log)?;

    std::fs::create_dir_all(&out)?;
    for ((directory, name), (_, to)) in REPLACED_LIBRARIES.iter().zip(&tools.libraries) {
        // The soname is a symlink to the versioned file; dom0 gets the file under the soname.
        let built = std::fs::canonicalize(tree.join("tools/libs").join(directory).join(name))
            .with_context(|| format!("the tools build made no {name}"))?;
        std::fs::copy(&built, to)?;
    }
    std::fs::copy(tree.join("tools/misc/xen-access"), &tools.xen_access)?;
    for (name, binary) in &tools.programs {
        step(&format!(
            "cc xtask/c/{name}.c (against the patched libxenctrl)"
        ));
        compile_c(sh, &tree, &c_dir.join(format!("{name}.c")), binary)?;
    }
    std::fs::write(&stamp, &key)?;
    Ok(tools)
}

/// Copies the source files of the hypervisor's tree (its manifest: sources only, no build
/// outputs) into `tree`, writing only files whose bytes differ and removing files the source
/// no longer has. Returns how many files changed.
fn sync_sources(source: &Path, tree: &Path) -> Result<usize> {
    let manifest = std::fs::read_to_string(source.join(xen_build::SOURCE_MANIFEST))
        .context("the hypervisor's tree has no source manifest")?;
    let new: BTreeSet<&str> = manifest.lines().filter(|line| !line.is_empty()).collect();
    let own_manifest = tree.join(xen_build::SOURCE_MANIFEST);
    let old_text = std::fs::read_to_string(&own_manifest).unwrap_or_default();
    let old: BTreeSet<&str> = old_text.lines().collect();
    let mut changed = 0;
    for relative in &new {
        let from = source.join(relative);
        let to = tree.join(relative);
        let meta = std::fs::symlink_metadata(&from)?;
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if xen_build::sync_file(&from, &to, meta.file_type().is_symlink())? {
            changed += 1;
        }
    }
    for gone in old.difference(&new) {
        let _ = std::fs::remove_file(tree.join(gone));
        changed += 1;
    }
    std::fs::write(&own_manifest, manifest)?;
    Ok(changed)
}

/// Debian's source ships no configure scripts (its patches delete them): autoconf makes them,
/// with config.sub and config.guess from the host, as Debian's build does. Then configure,
/// once per set of arguments.
fn configure(sh: &Shell, tree: &Path, stamp: &Path) -> Result<()> {
    let key = hex(&Sha256::digest(CONFIGURE_ARGS.join(" ").as_bytes()));
    if tree.join("config/Tools.mk").exists()
        && std::fs::read_to_string(stamp).ok().as_deref() == Some(key.as_str())
    {
        return Ok(());
    }
    step("autoconf and ./configure for the tools (once)");
    for file in ["config.sub", "config.guess"] {
        let from = Path::new("/usr/share/misc").join(file);
        if !from.exists() {
            bail!(
                "{} is missing: install autotools-dev (a host prerequisite)",
                from.display()
            );
        }
        std::fs::copy(&from, tree.join(file))?;
    }
    {
        let _dir = sh.push_dir(tree);
        quietly(cmd!(sh, "autoconf -f")).context("autoconf (top level)")?;
    }
    {
        let _dir = sh.push_dir(tree.join("tools"));
        quietly(cmd!(sh, "autoconf -f")).context("autoconf (tools)")?;
        if !tree.join("tools/config.h.in").exists() {
            quietly(cmd!(sh, "autoheader")).context("autoheader (tools)")?;
        }
    }
    let _dir = sh.push_dir(tree);
    let args = CONFIGURE_ARGS;
    // The Xen build fetches nothing with these set (as Debian's rules do).
    quietly(
        cmd!(sh, "./configure {args...}")
            .env("WGET", "/bin/false")
            .env("GIT", "/bin/false"),
    )
    .context("configuring Xen's tools")?;
    std::fs::write(stamp, key)?;
    Ok(())
}

/// `make` in the tools tree, its output appended to `log`; on failure the error carries the
/// last lines.
fn make(sh: &Shell, tree: &Path, args: &[&str], jobs: &str, log: &Path) -> Result<()> {
    let _dir = sh.push_dir(tree);
    let output = cmd!(sh, "make -j{jobs} {args...}")
        .env("WGET", "/bin/false")
        .env("GIT", "/bin/false")
        .quiet()
        .ignore_status()
        .output()?;
    let mut text = std::fs::read(log).unwrap_or_default();
    text.extend_from_slice(&output.stdout);
    text.extend_from_slice(&output.stderr);
    std::fs::write(log, &text)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        bail!(
            "make {} failed (full log: {}):\n{}",
            args.join(" "),
            log.display(),
            lines[lines.len().saturating_sub(25)..].join("\n")
        );
    }
    Ok(())
}

/// Builds one of our C programs against the tools tree's headers and libraries. The
/// libraries it loads in dom0 are Debian's, but for libxenctrl, which is ours.
fn compile_c(sh: &Shell, tree: &Path, source: &Path, binary: &Path) -> Result<()> {
    let include = tree.join("tools/include");
    let libs = tree.join("tools/libs");
    let ctrl = libs.join("ctrl");
    let evtchn = libs.join("evtchn");
    let foreignmemory = libs.join("foreignmemory");
    let mut rpath_link = Vec::new();
    for library in LIBRARIES {
        rpath_link.push(format!("-Wl,-rpath-link,{}", libs.join(library).display()));
    }
    quietly(cmd!(
        sh,
        "gcc -O2 -Wall -Werror -std=gnu11 -D__XEN_TOOLS__ -I{include} -o {binary} {source} -L{ctrl} -L{evtchn} -L{foreignmemory} -lxenctrl -lxenevtchn -lxenforeignmemory {rpath_link...}"
    ))
    .with_context(|| format!("compiling {}", source.display()))
}
