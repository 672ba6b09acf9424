//! `compat/*`: what existing tools meet on a PV guest. Calls made the HVM way are refused,
//! never reinterpreted (`pfn_refused`); and Xen's own libxenctrl and `xen-access`, patched by
//! the series' tools patches (built by `xen_tools.rs` and put into dom0 in place of
//! Debian's), monitor a PV test guest: a C program written against libxenctrl
//! (`xtask/c/compat-libxenctrl.c`) and `xen-access` in its `write` and `exec` modes.

pub mod libxenctrl;
pub mod pfn_refused;
pub mod xen_access;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Waits until `path` holds `needle` (true) or `child` exited without writing it (false).
pub fn wait_for_output(
    child: &mut Child,
    path: &Path,
    needle: &str,
    limit: Duration,
) -> Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        if std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle)) {
            return Ok(true);
        }
        if child.try_wait()?.is_some() {
            return Ok(std::fs::read_to_string(path).is_ok_and(|text| text.contains(needle)));
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not show {needle:?} within {}s",
                path.display(),
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
