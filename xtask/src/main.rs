//! Project automation (`cargo xtask ...`), in the cargo-xtask convention.
//!
//! This file only parses the command line and dispatches: each subcommand lives in a module
//! of its own. The same binary is also the dom0 agent: the dom0 initramfs starts it as its
//! init with `dom0-agent`, so the code that runs scenarios inside the nested system and the
//! code that checks their results on the host are one program and cannot drift apart.

mod agent;
mod bench;
mod ci;
mod codegen;
mod debian;
mod dom0_image;
mod e2e;
mod exchange;
mod host;
mod hv_module;
mod initramfs;
mod layout;
mod progress;
mod pv32_kernel;
mod qemu;
mod scenarios;
mod vm;
mod xen_build;
mod xen_log;
mod xen_tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Build, boot and test PV mem_access on nested Xen"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build Xen, dom0 and the test guest, boot them under QEMU and run the scenarios.
    E2e(e2e::Options),
    /// Measure what monitoring costs (one boot, release Xen, 5 runs): `target/bench/`.
    Bench(bench::Options),
    /// Boot the same system and give a dom0 shell (or run a script in dom0).
    Vm(VmArgs),
    /// Everything CI runs: fmt, clippy, host tests, then the end-to-end scenarios.
    Ci,
    /// Build the Rust module Xen links and check its object (or check the object given).
    CheckHvObject {
        /// An object to check instead of building the module.
        object: Option<PathBuf>,
    },
    /// Generate Xen's ABI bindings (xen-abi/src/generated.rs) from the patched tree's headers;
    /// `--check` fails if the committed file differs (`ci` runs it).
    Codegen(codegen::Options),
    /// Build the hypervisor without HVM (PV mem_access needs none of it); `ci` runs it too.
    BuildXenWithoutHvm,
    /// Internal: the init process of the nested dom0 (never run this on the host).
    #[command(hide = true)]
    Dom0Agent,
}

#[derive(clap::Args)]
struct VmArgs {
    /// Run this shell script in dom0 and exit with its status, instead of a shell.
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
    /// Put a host file into dom0: HOST_PATH=DOM0_PATH (repeatable).
    #[arg(long, value_name = "HOST_PATH=DOM0_PATH")]
    add: Vec<String>,
    /// Wall-clock limit for the whole boot, in seconds (default: none for a shell).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::E2e(options) => e2e::run(&options),
        Command::Bench(options) => bench::run(&options),
        Command::Vm(args) => vm::run(args.script, &args.add, args.timeout),
        Command::Ci => ci::run(),
        Command::CheckHvObject { object } => hv_module::check_command(object.as_deref()),
        Command::Codegen(options) => codegen::run(&options),
        Command::BuildXenWithoutHvm => ci::build_xen_without_hvm().map(|()| ExitCode::SUCCESS),
        Command::Dom0Agent => agent::run(),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
