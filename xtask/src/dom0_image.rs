//! The dom0 initramfs: Debian's kernel modules and Xen toolstack (same version as the
//! hypervisor source), busybox, and our own programs: this very binary as dom0's init (the
//! agent that runs the scenarios), the listener, the test guest kernel and the 32-bit PV
//! kernel xtask writes itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::debian::DebianRoot;
use crate::initramfs::Tree;
use crate::layout::{Layout, XEN_SERIES};
use crate::progress::step;
use crate::xen_tools::XenTools;

/// Where the agent (this binary) sits in dom0; the kernel starts it as init.
pub const AGENT_PATH: &str = "/usr/bin/xtask";
/// Where the test guest's kernel sits in dom0.
pub const TEST_GUEST_PATH: &str = "/boot/test-guest";
/// Where the 32-bit PV kernel of `abi/pv32-refused` sits in dom0 ([`crate::pv32_kernel`]).
pub const PV32_GUEST_PATH: &str = "/boot/pv32-guest";
/// Where the listener sits in dom0.
pub const LISTENER_PATH: &str = "/usr/bin/listener";
/// The module load order the agent follows (dependencies first).
pub const MODULES_ORDER_PATH: &str = "/etc/modules.order";

/// Kernel modules dom0 needs: the Xen device drivers for the toolstack and virtio-blk for
/// the exchange disk. Their dependencies are added from each module's `.modinfo`.
const MODULES: &[&str] = &[
    "xen-evtchn",
    "xen-privcmd",
    "xenfs",
    "xen-gntdev",
    "xen-gntalloc",
    "virtio_pci",
    "virtio_blk",
];

/// Toolstack programs, copied from the package's private bin directory (not the wrapper
/// symlinks in /usr/sbin).
const XEN_PROGRAMS: &[&str] = &[
    "xl",
    "xenstored",
    "xenconsoled",
    "xen-init-dom0",
    "xenstore-control",
    "xen-access",
    "xenperf",
];

const XL_CONF: &str = "autoballoon=\"off\"\nlockfile=\"/run/lock/xl\"\n";

/// Our programs, built on the host.
pub struct OurPrograms {
    pub agent: PathBuf,
    pub listener: PathBuf,
    pub test_guest: PathBuf,
    /// libxenctrl and xen-access from our series, in place of Debian's, and our C programs.
    pub tools: XenTools,
}

/// Builds the dom0 initramfs when anything in it changed; returns its path.
pub fn build(
    sh: &Shell,
    layout: &Layout,
    debian: &DebianRoot,
    ours: &OurPrograms,
) -> Result<PathBuf> {
    let dir = layout.dom0();
    std::fs::create_dir_all(&dir)?;
    let mut tree = Tree::default();
    skeleton(&mut tree);
    tree.host_file("/bin/busybox", &debian.root.join("bin/busybox"), 0o755);

    let mut elves = Vec::new();
    let xen_bin = format!("/usr/lib/xen-{XEN_SERIES}/bin");
    for program in XEN_PROGRAMS {
        let source = match *program {
            "xen-access" => ours.tools.xen_access.clone(),
            _ => debian.xen_bin().join(program),
        };
        tree.host_file(&format!("{xen_bin}/{program}"), &source, 0o755);
        elves.push(source);
    }
    for (path, source) in [(AGENT_PATH, &ours.agent), (LISTENER_PATH, &ours.listener)] {
        tree.host_file(path, source, 0o755);
        elves.push(source.clone());
    }
    for (name, binary) in &ours.tools.programs {
        tree.host_file(&format!("/usr/bin/{name}"), binary, 0o755);
        elves.push(binary.clone());
    }
    tree.host_file(TEST_GUEST_PATH, &ours.test_guest, 0o644);
    tree.contents(PV32_GUEST_PATH, crate::pv32_kernel::image(), 0o644);
    add_libraries(sh, &mut tree, debian, &elves)?;
    // Ours replace Debian's builds of the same libraries (same version, our series on top).
    for (name, library) in &ours.tools.libraries {
        tree.host_file(&format!("/lib/x86_64-linux-gnu/{name}"), library, 0o755);
    }
    add_modules(&mut tree, debian)?;

    let image = dir.join("dom0-initramfs.cpio.zst");
    let stamp = dir.join("dom0-initramfs.key");
    let key = tree.key()?;
    if image.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(key.as_str()) {
        step("dom0 initramfs is up to date");
        return Ok(image);
    }
    step("writing the dom0 initramfs");
    tree.write_zstd(&image)?;
    std::fs::write(&stamp, key)?;
    let size = std::fs::metadata(&image)?.len();
    step(&format!("dom0 initramfs: {} MiB", size >> 20));
    Ok(image)
}

fn skeleton(tree: &mut Tree) {
    for dir in [
        "/bin",
        "/sbin",
        "/usr/bin",
        "/usr/sbin",
        "/proc",
        "/sys",
        "/run",
        "/tmp",
        "/out",
        "/root",
        "/var/lib/xen",
        "/var/lib/xenstored",
        "/var/log/xen/console",
    ] {
        tree.directory(dir);
    }
    tree.symlink("/var/run", "../run");
    // The kernel opens /dev/console for init before devtmpfs is mounted.
    tree.char_device("/dev/console", 5, 1);
    tree.char_device("/dev/null", 1, 3);
    tree.contents("/etc/xen/xl.conf", XL_CONF, 0o644);
    tree.contents("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644);
}

/// Shared libraries of `elves`, resolved by the unpacked glibc's own dynamic loader against
/// the unpacked tree, so dom0 gets Debian's libraries and never the host's.
fn add_libraries(
    sh: &Shell,
    tree: &mut Tree,
    debian: &DebianRoot,
    elves: &[PathBuf],
) -> Result<()> {
    let ld_so = debian.ld_so();
    let library_path = format!(
        "{0}/lib/x86_64-linux-gnu:{0}/usr/lib/x86_64-linux-gnu",
        debian.root.display()
    );
    let mut libraries = BTreeMap::new();
    for elf in elves {
        let listing = cmd!(sh, "{ld_so} --library-path {library_path} --list {elf}")
            .quiet()
            .read()
            .with_context(|| format!("resolving the libraries of {}", elf.display()))?;
        for line in listing.lines() {
            let Some((name, rest)) = line.trim().split_once(" => ") else {
                continue;
            };
            let path = rest.split(" (").next().unwrap_or("").trim();
            if path == "not found" {
                bail!(
                    "{} needs {name}, which no dom0 package provides",
                    elf.display()
                );
            }
            if path.starts_with('/') && path.starts_with(&*debian.root.to_string_lossy()) {
                libraries.insert(name.to_string(), PathBuf::from(path));
            }
        }
    }
    // glibc loads libgcc_s at run time for pthread_cancel; no listing shows it.
    libraries.insert(
        "libgcc_s.so.1".into(),
        debian.root.join("lib/x86_64-linux-gnu/libgcc_s.so.1"),
    );
    for (name, path) in libraries {
        let path = std::fs::canonicalize(&path)?;
        tree.host_file(&format!("/lib/x86_64-linux-gnu/{name}"), &path, 0o755);
    }
    let ld_so = std::fs::canonicalize(ld_so)?;
    tree.host_file("/lib64/ld-linux-x86-64.so.2", &ld_so, 0o755);
    tree.host_file("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", &ld_so, 0o755);
    Ok(())
}

/// Adds [`MODULES`] and their dependencies, and the order to load them in. Debian's kernel
/// package ships no modules.dep and the host has no kmod: dependencies come from the
/// `depends=` string in each module's `.modinfo` section.
fn add_modules(tree: &mut Tree, debian: &DebianRoot) -> Result<()> {
    let mut index = BTreeMap::new();
    let mut stack = vec![debian.modules()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                if let Some(stem) = name.strip_suffix(".ko") {
                    index.insert(stem.replace('-', "_"), path.clone());
                }
            }
        }
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for module in MODULES {
        add_module(module, &index, &mut seen, &mut order)?;
    }
    let mut listing = String::new();
    for path in &order {
        let inside = Path::new("/").join(path.strip_prefix(&debian.root)?);
        let inside = inside.to_string_lossy();
        tree.host_file(&inside, path, 0o644);
        listing.push_str(&inside);
        listing.push('\n');
    }
    tree.contents(MODULES_ORDER_PATH, listing, 0o644);
    Ok(())
}

fn add_module(
    name: &str,
    index: &BTreeMap<String, PathBuf>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<PathBuf>,
) -> Result<()> {
    let key = name.replace('-', "_");
    if !seen.insert(key.clone()) {
        return Ok(());
    }
    let path = index
        .get(&key)
        .with_context(|| format!("kernel module {name} is not in the kernel package"))?;
    for dependency in module_dependencies(&std::fs::read(path)?) {
        add_module(&dependency, index, seen, order)?;
    }
    order.push(path.clone());
    Ok(())
}

/// The names in a module's `depends=` modinfo string.
fn module_dependencies(module: &[u8]) -> Vec<String> {
    module
        .split(|&byte| byte == 0)
        .find_map(|field| field.strip_prefix(b"depends="))
        .map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .filter(|name| !name.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::module_dependencies;

    #[test]
    fn dependencies_come_from_the_modinfo_string() {
        let module = b"\x7fELF...\0license=GPL\0depends=virtio,virtio_ring\0intree=Y\0";
        assert_eq!(module_dependencies(module), ["virtio", "virtio_ring"]);
        let standalone = b"\0depends=\0name=xenfs\0";
        assert!(module_dependencies(standalone).is_empty());
    }
}
