//! Debian binary packages for dom0: the kernel and its modules, Xen's toolstack at the pinned
//! version, busybox and the shared libraries they need. Downloaded once with `apt-get
//! download` (nothing is installed on the host) and unpacked into one tree.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::host::is_root;
use crate::layout::{Layout, XEN_DEB_VERSION};
use crate::progress::step;

/// Toolstack packages, all pinned to [`XEN_DEB_VERSION`] (libxenctrl, libxenguest and
/// libxenlight live in libxenmisc on bookworm).
const XEN_PACKAGES: &[&str] = &[
    "xen-utils-4.17",
    "xen-utils-common",
    "xenstore-utils",
    "libxenmisc4.17",
    "libxenstore4",
    "libxengnttab1",
    "libxenevtchn1",
    "libxendevicemodel1",
    "libxenforeignmemory1",
    "libxencall1",
    "libxentoollog1",
    "libxentoolcore1",
    "libxenhypfs1",
];

/// Everything else dom0 needs, at apt's candidate version (the kernel is added separately).
const OTHER_PACKAGES: &[&str] = &[
    "busybox-static",
    "libc6",
    "libgcc-s1",
    "libyajl2",
    "libncurses6",
    "libtinfo6",
    "libext2fs2",
    "libcom-err2",
    "liblzma5",
    "libuuid1",
    "libzstd1",
    "zlib1g",
];

/// The unpacked packages.
pub struct DebianRoot {
    pub root: PathBuf,
    /// The kernel release, e.g. `6.1.0-56-amd64`.
    pub kernel_release: String,
}

impl DebianRoot {
    pub fn vmlinuz(&self) -> PathBuf {
        self.root
            .join(format!("boot/vmlinuz-{}", self.kernel_release))
    }

    pub fn modules(&self) -> PathBuf {
        self.root
            .join(format!("lib/modules/{}", self.kernel_release))
    }

    pub fn xen_bin(&self) -> PathBuf {
        self.root.join("usr/lib/xen-4.17/bin")
    }

    pub fn ld_so(&self) -> PathBuf {
        self.root.join("lib64/ld-linux-x86-64.so.2")
    }
}

/// Downloads (once) and unpacks (when the set of packages changed) dom0's packages.
pub fn prepare(sh: &Shell, layout: &Layout) -> Result<DebianRoot> {
    let debs = layout.debs();
    std::fs::create_dir_all(&debs)?;
    let kernel_package = resolve_kernel_package(sh, &debs)?;
    let kernel_release = kernel_package
        .strip_prefix("linux-image-")
        .context("unexpected kernel package name")?
        .to_string();

    let mut wanted: Vec<String> = XEN_PACKAGES
        .iter()
        .filter(|name| !have_deb(&debs, name, Some(XEN_DEB_VERSION)))
        .map(|name| format!("{name}={XEN_DEB_VERSION}"))
        .collect();
    wanted.extend(
        OTHER_PACKAGES
            .iter()
            .copied()
            .chain([kernel_package.as_str()])
            .filter(|name| !have_deb(&debs, name, None))
            .map(str::to_string),
    );
    if wanted.is_empty() {
        step("all dom0 packages are cached");
    } else {
        step(&format!("downloading {} packages", wanted.len()));
        download(sh, &debs, &wanted)?;
    }

    let root = layout.debian_root();
    let mut deb_files: Vec<String> = std::fs::read_dir(&debs)?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".deb"))
        .collect();
    deb_files.sort();
    let stamp = deb_files.join("\n");
    let stamp_file = root.join(".unpacked-from");
    if std::fs::read_to_string(&stamp_file).ok().as_deref() != Some(stamp.as_str()) {
        step(&format!("unpacking {} packages", deb_files.len()));
        if root.exists() {
            std::fs::remove_dir_all(&root)?;
        }
        std::fs::create_dir_all(&root)?;
        for deb in &deb_files {
            let path = debs.join(deb);
            cmd!(sh, "dpkg-deb -x {path} {root}").quiet().run()?;
        }
        std::fs::write(&stamp_file, &stamp)?;
    }
    let unpacked = DebianRoot {
        root,
        kernel_release,
    };
    for needed in [
        unpacked.vmlinuz(),
        unpacked.modules(),
        unpacked.xen_bin().join("xl"),
        unpacked.ld_so(),
    ] {
        if !needed.exists() {
            bail!(
                "the unpacked packages lack {}; remove {} to start over",
                needed.display(),
                layout.debs().display()
            );
        }
    }
    Ok(unpacked)
}

/// The kernel package `linux-image-amd64` depends on, resolved once and then cached: it moves
/// with security updates, and one project checkout should keep booting the same kernel.
fn resolve_kernel_package(sh: &Shell, debs: &Path) -> Result<String> {
    let cached = debs.join("kernel-package.txt");
    if let Ok(name) = std::fs::read_to_string(&cached) {
        return Ok(name.trim().to_string());
    }
    let find = |sh: &Shell| -> Option<String> {
        let depends = cmd!(sh, "apt-cache depends linux-image-amd64")
            .quiet()
            .ignore_stderr()
            .read()
            .ok()?;
        depends.lines().find_map(|line| {
            let name = line.trim().strip_prefix("Depends: ")?;
            (name.starts_with("linux-image-6.1.") && name.ends_with("-amd64"))
                .then(|| name.to_string())
        })
    };
    let name = match find(sh) {
        Some(name) => name,
        None => {
            refresh_package_lists(sh)?;
            find(sh).context("apt-cache cannot resolve linux-image-amd64's kernel package")?
        }
    };
    std::fs::write(&cached, &name)?;
    step(&format!("dom0 kernel: {name}"));
    Ok(name)
}

fn have_deb(debs: &Path, name: &str, version: Option<&str>) -> bool {
    // Debian file names escape the epoch colon; our pinned versions have none.
    let prefix = match version {
        Some(version) => format!("{name}_{version}_"),
        None => format!("{name}_"),
    };
    std::fs::read_dir(debs)
        .map(|dir| {
            dir.filter_map(|entry| entry.ok())
                .any(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        })
        .unwrap_or(false)
}

fn download(sh: &Shell, debs: &Path, wanted: &[String]) -> Result<()> {
    let _dir = sh.push_dir(debs);
    let attempt = |sh: &Shell| -> Result<()> {
        let output = cmd!(
            sh,
            "apt-get -q -o APT::Sandbox::User=root download {wanted...}"
        )
        .quiet()
        .ignore_status()
        .output()?;
        if output.status.success() {
            return Ok(());
        }
        // apt names each package it could not get; its first error says why.
        let errors = String::from_utf8_lossy(&output.stderr).into_owned();
        let first = errors
            .lines()
            .find(|line| line.starts_with("E: "))
            .unwrap_or("apt-get download failed");
        bail!(
            "cannot download dom0's packages from Debian's archive ({first}); \
             does this machine reach it, and does it still hold xen {XEN_DEB_VERSION}?"
        )
    };
    if attempt(sh).is_err() {
        step("apt-get download failed; refreshing the package lists and trying again");
        refresh_package_lists(sh)?;
        attempt(sh)?;
    }
    Ok(())
}

/// `apt-get update`, or a clear error when that needs root.
pub fn refresh_package_lists(sh: &Shell) -> Result<()> {
    if !is_root() {
        bail!("the package lists are out of date; as root, run: apt-get update");
    }
    crate::progress::quietly(cmd!(sh, "apt-get update -qq"))
        .context("apt-get update failed: does this machine reach Debian's package archive?")
}
