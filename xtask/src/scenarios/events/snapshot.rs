//! Snapshots of rendered traces, in insta's format under `snapshots/` next to this file, so
//! `cargo insta review` shows a changed trace to accept or reject.
//!
//! xtask is built with `panic = "abort"`, so insta's asserting macro cannot be used as is (it
//! panics on a mismatch): the committed snapshot is compared here, and on a mismatch insta is
//! only asked to write the pending `.snap.new` (`INSTA_FORCE_PASS`), which it does not do on
//! CI, where nothing is ever accepted.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

fn directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scenarios/events/snapshots")
}

/// The committed snapshot's text, if any.
fn committed(name: &str) -> Option<String> {
    let file = directory().join(format!("xtask__scenarios__events__snapshot__{name}.snap"));
    let snapshot = insta::Snapshot::from_file(&file).ok()?;
    Some(snapshot.contents().as_text()?.to_string())
}

/// Passes when `text` is the committed snapshot `name`; else fails, and leaves the new text
/// pending for review (not on CI).
pub fn check(name: &str, text: &str) -> Result<()> {
    if committed(name).as_deref() == Some(text.trim_end()) {
        return Ok(());
    }
    std::env::set_var("INSTA_FORCE_PASS", "1");
    insta::with_settings!({ snapshot_path => directory(), omit_expression => true }, {
        insta::assert_snapshot!(name, text);
    });
    bail!(
        "the trace differs from its snapshot {name} (xtask/src/scenarios/events/snapshots/); \
         review it with `cargo insta review` (cargo install cargo-insta), accept only if right:\n{text}"
    )
}
