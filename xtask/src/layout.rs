//! Where things live: the workspace, the caches under `target/xtask/` and the results under
//! `target/e2e/` and `target/vm/`. Everything the harness downloads or builds is kept under
//! `target/`, so a clean clone starts cold and `cargo clean` forgets it all.

use std::path::{Path, PathBuf};

/// The pinned Debian version of Xen: the hypervisor source we patch and the dom0 toolstack
/// binaries come from this one version, so their ABI matches.
pub const XEN_DEB_VERSION: &str = "4.17.5+72-g01140da4e8-1";
/// The Xen release series of that version (install paths such as `/usr/lib/xen-4.17`).
pub const XEN_SERIES: &str = "4.17";
/// Added to Xen's version string, so `xl info` on a running system shows it is ours.
pub const XEN_VENDOR_VERSION: &str = "-pv-memaccess";
/// Xen's extra version with ours appended, as `xl info` shows it in `xen_extra`.
pub const XEN_EXTRA_VERSION: &str = ".5-pv-memaccess";

// XENVER_extraversion hands out a char[16] (xen_extraversion_t): a longer string is cut.
const _: () = assert!(XEN_EXTRA_VERSION.len() < 16);

/// Paths of the workspace and its caches.
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new() -> Layout {
        // CARGO_MANIFEST_DIR is xtask/; the workspace root is its parent.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives inside the workspace")
            .to_path_buf();
        Layout { root }
    }

    pub fn target(&self) -> PathBuf {
        self.root.join("target")
    }

    /// Caches of downloads and builds.
    pub fn cache(&self) -> PathBuf {
        self.target().join("xtask")
    }

    pub fn debs(&self) -> PathBuf {
        self.cache().join("debs")
    }

    /// All downloaded binary packages unpacked into one tree.
    pub fn debian_root(&self) -> PathBuf {
        self.cache().join("debian-root")
    }

    pub fn xen(&self) -> PathBuf {
        self.cache().join("xen")
    }

    pub fn dom0(&self) -> PathBuf {
        self.cache().join("dom0")
    }

    pub fn patches(&self) -> PathBuf {
        self.root.join("hypervisor-patch").join("patches")
    }

    pub fn e2e_results(&self) -> PathBuf {
        self.target().join("e2e")
    }

    pub fn vm_results(&self) -> PathBuf {
        self.target().join("vm")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn extra_version_is_the_release_with_our_suffix() {
        assert_eq!(
            super::XEN_EXTRA_VERSION,
            format!(".5{}", super::XEN_VENDOR_VERSION)
        );
        assert!(super::XEN_DEB_VERSION.starts_with("4.17.5"));
    }
}
