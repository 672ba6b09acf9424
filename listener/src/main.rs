//! `listener`: the dom0 command-line mem_access listener, Xen's `xen-access` done well. It
//! switches monitoring on for a guest, sets access rights, answers events from the ring and
//! writes the trace as JSON lines.
//!
//! No commands exist yet: they arrive with the monitor ABI. The binary is already shipped in
//! the nested dom0 so the harness's path to it is proven.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "listener",
    version,
    about = "mem_access listener for Xen PV guests (no commands yet)"
)]
struct Cli {}

fn main() {
    Cli::parse();
}
