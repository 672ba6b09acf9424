//! Snapshots of rendered traces, in insta's format under `snapshots/` next to this file, so
//! `cargo insta review` shows a changed trace to accept or reject.
//!
//! insta is used the ordinary way: its assertion panics on a mismatch (after writing the
//! pending `.snap.new`, except where `INSTA_UPDATE=no`, as `cargo xtask ci` sets it: nothing is
//! ever accepted there), and the panic becomes this scenario's failure.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

fn directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scenarios/events/snapshots")
}

/// Passes when `text` is the committed snapshot `name`; else fails, and leaves the new text
/// pending for review (unless `INSTA_UPDATE=no`).
pub fn check(name: &str, text: &str) -> Result<()> {
    let compared = std::panic::catch_unwind(|| {
        insta::with_settings!({ snapshot_path => directory(), omit_expression => true }, {
            insta::assert_snapshot!(name, text);
        });
    });
    if compared.is_err() {
        bail!(
            "the trace differs from its snapshot {name} (xtask/src/scenarios/events/snapshots/); \
             review it with `cargo insta review` (cargo install cargo-insta), accept only if \
             right:\n{text}"
        );
    }
    Ok(())
}
