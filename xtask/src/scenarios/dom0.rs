//! What a scenario's dom0 half works with: its output directory and the commands of dom0.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub use super::guest::{Guest, GuestConfig};

/// A scenario's view of dom0.
pub struct Dom0 {
    out: PathBuf,
}

impl Dom0 {
    pub fn new(out: &Path) -> Dom0 {
        Dom0 {
            out: out.to_path_buf(),
        }
    }

    /// Runs a dom0 program; its standard output, or an error with its standard error.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        crate::agent::output(program, args)
    }

    /// The scenario's output directory (what `save` wrote is there).
    pub fn dir(&self) -> &Path {
        &self.out
    }

    /// Keeps a file among the scenario's results.
    pub fn save(&self, name: &str, contents: impl AsRef<[u8]>) -> Result<()> {
        let path = self.out.join(name);
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
    }

    /// Creates a PV guest running the test guest kernel.
    pub fn create_guest(&self, config: &GuestConfig) -> Result<Guest<'_>> {
        Guest::create(self, config)
    }
}
