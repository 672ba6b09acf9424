//! Host prerequisites: the Debian packages the harness runs (QEMU, Xen's build dependencies),
//! a `deb-src` entry so `apt-get source` can fetch Xen, and the Rust target of the guest.
//!
//! As root with package access they are installed; otherwise the exact command that would
//! fix the machine is printed and the run stops.

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::progress::step;

/// Debian packages the host needs, and the command each one provides (for the message).
const HOST_PACKAGES: &[&str] = &[
    "qemu-system-x86", // the nested machine
    "zstd",            // initramfs compression
    "bison",           // Xen's Kconfig
    "flex",
    "python3",  // Xen's build scripts
    "dpkg-dev", // apt-get source, dpkg-source
    "xz-utils",
    "make",
    "gcc",
    "libc6-dev",
    "binutils", // strip, objdump
    "patch",    // our patch series
    // Xen's tools (libxenctrl, xen-access): autoconf for the configure scripts Debian's
    // source leaves out, and what configure insists on even for a minimal build.
    "autoconf",
    "autotools-dev", // config.sub, config.guess
    "pkg-config",
    "python3-dev",
    "libyajl-dev",
    "uuid-dev",
    "libncurses-dev",
    "zlib1g-dev",
    "liblzma-dev",
    "acpica-tools", // iasl
    "libclang-dev", // bindgen, for xen-abi's bindings (cargo xtask codegen)
];

/// The target the test guest (and later the hypervisor module) is built for.
pub const BARE_METAL_TARGET: &str = "x86_64-unknown-none";

const DEB_SRC_FILE: &str = "/etc/apt/sources.list.d/pv-mem-access-src.sources";

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Makes sure everything the build and the boot need is on this machine.
pub fn ensure_prerequisites(sh: &Shell) -> Result<()> {
    let missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .copied()
        .filter(|package| !package_installed(sh, package))
        .collect();
    let need_deb_src = !deb_src_configured()?;
    if !missing.is_empty() || need_deb_src {
        if !is_root() {
            let mut fix = String::new();
            if need_deb_src {
                fix.push_str(&format!(
                    "  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > {DEB_SRC_FILE}\n"
                ));
            }
            fix.push_str("  apt-get update\n");
            if !missing.is_empty() {
                fix.push_str(&format!("  apt-get install -y {}\n", missing.join(" ")));
            }
            bail!("host prerequisites are missing and this is not root; as root, run:\n{fix}");
        }
        if need_deb_src {
            add_deb_src()?;
        }
        step("apt-get update");
        cmd!(sh, "apt-get update -qq")
            .run()
            .context("apt-get update failed: does this machine reach Debian's packages?")?;
        if !missing.is_empty() {
            step(&format!("installing {}", missing.join(" ")));
            let missing_list = &missing;
            cmd!(
                sh,
                "apt-get install -y -qq --no-install-recommends {missing_list...}"
            )
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()
            .with_context(|| format!("apt-get install {} failed", missing.join(" ")))?;
        }
    }
    ensure_rust_target(sh)
}

fn package_installed(sh: &Shell, package: &str) -> bool {
    let format = "-f=${Status}";
    cmd!(sh, "dpkg-query -W {format} {package}")
        .quiet()
        .ignore_stderr()
        .read()
        .map(|status| status.ends_with(" installed"))
        .unwrap_or(false)
}

/// True when some apt source already offers source packages.
fn deb_src_configured() -> Result<bool> {
    let mut files = vec![std::path::PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(dir.filter_map(|entry| entry.ok().map(|entry| entry.path())));
    }
    Ok(files.iter().any(|file| {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        text.lines().any(|line| {
            let line = line.trim();
            line.starts_with("deb-src ")
                || (line.starts_with("Types:") && line.split_whitespace().any(|t| t == "deb-src"))
        })
    }))
}

/// Adds a deb-src twin of the machine's Debian sources (deb822 or one-line format).
fn add_deb_src() -> Result<()> {
    let deb822 = std::path::Path::new("/etc/apt/sources.list.d/debian.sources");
    if deb822.exists() {
        let text = std::fs::read_to_string(deb822)?;
        let src = text
            .lines()
            .map(|line| {
                if line.trim() == "Types: deb" {
                    "Types: deb-src"
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(DEB_SRC_FILE, src + "\n")?;
    } else {
        let list = std::fs::read_to_string("/etc/apt/sources.list")
            .context("no Debian apt sources found to derive a deb-src entry from")?;
        let src: Vec<String> = list
            .lines()
            .filter(|line| line.starts_with("deb "))
            .map(|line| line.replacen("deb ", "deb-src ", 1))
            .collect();
        std::fs::write(
            "/etc/apt/sources.list.d/pv-mem-access-src.list",
            src.join("\n") + "\n",
        )?;
    }
    step("added a deb-src entry for apt-get source");
    Ok(())
}

fn ensure_rust_target(sh: &Shell) -> Result<()> {
    let installed = cmd!(sh, "rustup target list --installed")
        .quiet()
        .read()
        .unwrap_or_default();
    if !installed.lines().any(|line| line == BARE_METAL_TARGET) {
        step(&format!("rustup target add {BARE_METAL_TARGET}"));
        cmd!(sh, "rustup target add {BARE_METAL_TARGET}")
            .run()
            .context("rustup could not add the bare-metal target")?;
    }
    Ok(())
}
