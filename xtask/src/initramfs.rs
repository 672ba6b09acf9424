//! An initramfs described in memory and written as a newc cpio archive, compressed with
//! zstd. Describing the tree instead of staging it in a directory means no root-only `mknod`,
//! no stale files from an earlier build, and a cache key computed from exactly what goes in.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

enum Node {
    Directory,
    /// A host file copied in, with the given permission bits.
    HostFile {
        source: PathBuf,
        mode: u32,
    },
    Contents {
        data: Vec<u8>,
        mode: u32,
    },
    Symlink {
        target: String,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
}

/// The files of an initramfs, by absolute path inside it.
#[derive(Default)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

impl Tree {
    pub fn directory(&mut self, path: &str) {
        let path = normalise(path);
        let mut prefix = String::new();
        for part in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            self.nodes.entry(prefix.clone()).or_insert(Node::Directory);
        }
    }

    fn insert(&mut self, path: &str, node: Node) {
        let path = normalise(path);
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.directory(parent);
        }
        self.nodes.insert(path, node);
    }

    pub fn host_file(&mut self, path: &str, source: &Path, mode: u32) {
        let source = source.to_path_buf();
        self.insert(path, Node::HostFile { source, mode });
    }

    pub fn contents(&mut self, path: &str, data: impl Into<Vec<u8>>, mode: u32) {
        let data = data.into();
        self.insert(path, Node::Contents { data, mode });
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        let target = target.to_string();
        self.insert(path, Node::Symlink { target });
    }

    pub fn char_device(&mut self, path: &str, major: u32, minor: u32) {
        self.insert(path, Node::CharDevice { major, minor });
    }

    /// A digest of everything the archive would contain.
    pub fn key(&self) -> Result<String> {
        let mut hash = Sha256::new();
        for (path, node) in &self.nodes {
            hash.update(path.as_bytes());
            hash.update([0]);
            match node {
                Node::Directory => hash.update(b"d"),
                Node::HostFile { source, mode } => {
                    hash.update(format!("f{mode:o}"));
                    hash.update(
                        std::fs::read(source)
                            .with_context(|| format!("reading {}", source.display()))?,
                    );
                }
                Node::Contents { data, mode } => {
                    hash.update(format!("f{mode:o}"));
                    hash.update(data);
                }
                Node::Symlink { target } => hash.update(format!("l{target}")),
                Node::CharDevice { major, minor } => hash.update(format!("c{major}:{minor}")),
            }
        }
        Ok(crate::xen_build::hex(&hash.finalize()))
    }

    /// Writes the archive, compressed by the `zstd` program, to `output`.
    pub fn write_zstd(&self, output: &Path) -> Result<()> {
        let file = std::fs::File::create(output)?;
        let mut zstd = Command::new("zstd")
            .args(["-q", "-3", "-T0", "-c"])
            .stdin(Stdio::piped())
            .stdout(file)
            .spawn()
            .context("running zstd")?;
        let stdin = zstd.stdin.take().context("zstd's stdin")?;
        let mut writer = std::io::BufWriter::new(stdin);
        self.write_cpio(&mut writer)?;
        writer.flush()?;
        drop(writer);
        if !zstd.wait()?.success() {
            bail!("zstd failed writing {}", output.display());
        }
        Ok(())
    }

    fn write_cpio<W: Write>(&self, mut out: W) -> Result<()> {
        use cpio::newc::{Builder, ModeFileType};
        for (inode, (path, node)) in (1u32..).zip(&self.nodes) {
            let header = Builder::new(path).ino(inode).uid(0).gid(0);
            let (header, data): (Builder, Vec<u8>) = match node {
                Node::Directory => (
                    header
                        .mode(0o755)
                        .set_mode_file_type(ModeFileType::Directory)
                        .nlink(2),
                    Vec::new(),
                ),
                Node::HostFile { source, mode } => (
                    header.mode(*mode).set_mode_file_type(ModeFileType::Regular),
                    std::fs::read(source)
                        .with_context(|| format!("reading {}", source.display()))?,
                ),
                Node::Contents { data, mode } => (
                    header.mode(*mode).set_mode_file_type(ModeFileType::Regular),
                    data.clone(),
                ),
                Node::Symlink { target } => (
                    header.mode(0o777).set_mode_file_type(ModeFileType::Symlink),
                    target.as_bytes().to_vec(),
                ),
                Node::CharDevice { major, minor } => (
                    header
                        .mode(0o600)
                        .set_mode_file_type(ModeFileType::Char)
                        .rdev_major(*major)
                        .rdev_minor(*minor),
                    Vec::new(),
                ),
            };
            let size = u32::try_from(data.len()).context("file too large for cpio")?;
            let mut writer = header.write(&mut out, size);
            writer.write_all(&data)?;
            writer.finish()?;
        }
        cpio::newc::trailer(&mut out)?;
        Ok(())
    }
}

fn normalise(path: &str) -> String {
    path.trim_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_created_and_listed_first() {
        let mut tree = Tree::default();
        tree.contents("/usr/lib/x/file", "hi", 0o644);
        let paths: Vec<&str> = tree.nodes.keys().map(String::as_str).collect();
        assert_eq!(paths, ["usr", "usr/lib", "usr/lib/x", "usr/lib/x/file"]);
    }

    #[test]
    fn archive_holds_device_nodes_and_ends_with_trailer() {
        let mut tree = Tree::default();
        tree.char_device("/dev/console", 5, 1);
        let mut bytes = Vec::new();
        tree.write_cpio(&mut bytes).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("070701"));
        // dev/console: mode 020600, rdev 5:1.
        assert!(
            text.contains("000021800"),
            "char device mode missing: {text}"
        );
        assert!(text.contains("TRAILER!!!"));
    }

    #[test]
    fn key_changes_with_contents() {
        let mut one = Tree::default();
        one.contents("/a", "1", 0o644);
        let mut two = Tree::default();
        two.contents("/a", "2", 0o644);
        assert_ne!(one.key().unwrap(), two.key().unwrap());
    }
}
