//! `listener`: the dom0 command-line mem_access listener, Xen's `xen-access` done well.
//!
//! Commands control monitoring of a domain (enable, disable, status), its access rights
//! (set-access, get-access, access-required) and, with `monitor`, answer its events and
//! write them as a trace.
//!
//! Exit status: 0 done (also when the domain already was in the state asked for), 1 Xen or
//! the kernel refused (the message names the operation and the errno), 2 bad command line;
//! `monitor` also 3 (stopped by a signal) and 4 (the domain went).

mod commands;
mod frames;
mod monitor;
mod pages;
mod ring_state;
mod trace;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use libxc::Access;

#[derive(Parser)]
#[command(
    name = "listener",
    version,
    about = "mem_access listener for Xen PV (and HVM) guests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The domain a command acts on.
#[derive(Args)]
struct DomainArg {
    /// The domain: its id, or its name as `xl list` shows it.
    #[arg(long, short, value_name = "DOMAIN")]
    domain: String,
}

#[derive(Subcommand)]
enum Command {
    /// Switch mem_access monitoring on: Xen creates the event ring (for a PV guest, a page
    /// only dom0 can map) and, for PV, runs the guest on shadow page tables.
    Enable(DomainArg),
    /// Switch monitoring off: the ring goes and a PV guest leaves shadow paging (unless
    /// log-dirty still needs it).
    Disable(DomainArg),
    /// Show whether the domain is monitored, whether a listener is attached to its ring, its
    /// default access and its shadow pool.
    Status(DomainArg),
    /// Set an access right: for the domain's default, or for guest frames.
    SetAccess(SetAccessArgs),
    /// Show an access right: the domain's default, or a guest frame's.
    GetAccess(GetAccessArgs),
    /// With no listener, crash the domain on a violation (on) or relax the page to rwx (off,
    /// Xen's default).
    AccessRequired(AccessRequiredArgs),
    /// Monitor the domain: answer its mem_access events and write them as a trace (JSON lines
    /// or text), until --count, --timeout, Ctrl-C / SIGTERM or the domain's end; then leave it
    /// unmonitored. A ring whose listener died is taken over (the requests it left answered
    /// first, flagged recovered).
    Monitor(MonitorArgs),
}

/// Which accesses raise events, as xen-access's modes: the default access that traps them.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Mode {
    /// Writes (default access rx).
    Write,
    /// Instruction fetches (default access rw).
    Exec,
    /// Reads; x86 page tables cannot trap reads alone, so every access (default access n).
    Read,
    /// Every access (default access n).
    Any,
}

impl Mode {
    /// The name on the command line, for the trace's header.
    fn name(self) -> &'static str {
        match self {
            Mode::Write => "write",
            Mode::Exec => "exec",
            Mode::Read => "read",
            Mode::Any => "any",
        }
    }
}

#[derive(Args)]
struct MonitorArgs {
    #[command(flatten)]
    domain: DomainArg,
    /// The default access while monitoring (overrides --mode).
    #[arg(long, value_name = "ACCESS")]
    default_access: Option<Access>,
    /// Which accesses raise events.
    #[arg(long, value_enum, default_value = "write")]
    mode: Mode,
    /// The access of one page, by guest frame number (0x for hex), applied after the default
    /// access (repeatable; a later one for the same page wins). For a PV guest the pfn is
    /// translated through the P2M the guest publishes, and w, x and wx are refused.
    #[arg(long = "access", value_name = "PFN=ACCESS", value_parser = pages::parse_request)]
    access: Vec<pages::PageRequest>,
    /// The trace: JSON lines (for programs) or text (one line of words per record).
    #[arg(long, value_enum, default_value = "jsonl")]
    format: trace::Format,
    /// After an event: give the page rwx (relax, as xen-access does), leave it (keep), or
    /// ask Xen to emulate the access once (emulate; for PV, Xen refuses it and the same
    /// access comes back flagged response_refused, which is then relaxed).
    #[arg(long, value_enum, default_value = "relax")]
    on_event: monitor::OnEvent,
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Write the trace here instead of standard output.
    #[arg(long, value_name = "FILE")]
    output: Option<std::path::PathBuf>,
    /// At the end, write here (JSON) where the answer path's time went: wake-ups, events,
    /// and nanoseconds spent draining the ring, relaxing pages, writing the trace and
    /// notifying Xen.
    #[arg(long, value_name = "FILE")]
    timings: Option<std::path::PathBuf>,
}

#[derive(Args)]
struct AccessRequiredArgs {
    #[command(flatten)]
    domain: DomainArg,
    /// on or off.
    #[arg(value_name = "on|off", value_parser = ["on", "off"])]
    state: String,
}

#[derive(Args)]
struct SetAccessArgs {
    #[command(flatten)]
    domain: DomainArg,
    #[command(flatten)]
    target: TargetArgs,
    /// n, r, w, rw, x, rx, wx, rwx, rx2rw, n2rwx or default (for PV: not w, x or wx, which
    /// x86 page tables cannot express).
    #[arg(value_name = "ACCESS")]
    access: Access,
}

#[derive(Args)]
struct GetAccessArgs {
    #[command(flatten)]
    domain: DomainArg,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// The domain's default access (what every page without its own follows).
    #[arg(long)]
    default: bool,
    /// A guest frame number (repeatable for set-access); for a PV guest it is translated
    /// through the P2M the guest publishes.
    #[arg(long, value_name = "PFN", value_parser = parse_number)]
    pfn: Vec<u64>,
    /// A machine frame of a PV guest, as Xen names them (repeatable for set-access).
    #[arg(long, value_name = "MFN", value_parser = parse_number)]
    mfn: Vec<u64>,
}

impl TargetArgs {
    fn frames(&self) -> commands::Frames<'_> {
        if !self.mfn.is_empty() {
            commands::Frames::Machine(&self.mfn)
        } else if !self.pfn.is_empty() {
            commands::Frames::Guest(&self.pfn)
        } else {
            commands::Frames::Default
        }
    }
}

/// Decimal, or hexadecimal with 0x.
fn parse_number(text: &str) -> Result<u64, String> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|error| format!("{text:?} is not a number: {error}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Monitor(args) = cli.command {
        return monitor(args);
    }
    let result = match cli.command {
        Command::Monitor(_) => unreachable!("handled above"),
        Command::Enable(domain) => commands::enable(&domain.domain),
        Command::Disable(domain) => commands::disable(&domain.domain),
        Command::Status(domain) => commands::status(&domain.domain),
        Command::SetAccess(args) => {
            commands::set_access(&args.domain.domain, args.target.frames(), args.access)
        }
        Command::GetAccess(args) => commands::get_access(&args.domain.domain, args.target.frames()),
        Command::AccessRequired(args) => {
            commands::access_required(&args.domain.domain, args.state == "on")
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("listener: {error}");
            ExitCode::from(1)
        }
    }
}

fn monitor(args: MonitorArgs) -> ExitCode {
    let default_access = args.default_access.unwrap_or(match args.mode {
        Mode::Write => Access::Rx,
        Mode::Exec => Access::Rw,
        Mode::Read | Mode::Any => Access::N,
    });
    let timeout = match args.timeout.map(std::time::Duration::try_from_secs_f64) {
        Some(Err(_)) => {
            eprintln!("listener: --timeout must be a positive number of seconds");
            return ExitCode::from(2);
        }
        Some(Ok(timeout)) => Some(timeout),
        None => None,
    };
    let options = monitor::Options {
        domain: args.domain.domain,
        mode: args.mode.name(),
        default_access,
        pages: args.access,
        format: args.format,
        on_event: args.on_event,
        count: args.count,
        timeout,
        output: args.output,
        timings: args.timings,
    };
    match monitor::run(options) {
        Ok(stop) => ExitCode::from(stop.exit_code()),
        Err(error) => {
            eprintln!("listener: {error}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn targets_and_accesses_parse() {
        let cli = Cli::try_parse_from([
            "listener",
            "set-access",
            "-d",
            "guest",
            "--pfn",
            "0x10",
            "--pfn",
            "3",
            "rx",
        ])
        .unwrap();
        let Command::SetAccess(args) = cli.command else {
            panic!("not set-access")
        };
        assert_eq!(args.target.pfn, [16, 3]);
        assert_eq!(args.access, Access::Rx);
        assert!(
            Cli::try_parse_from(["listener", "set-access", "-d", "1", "--default", "rwxx"])
                .is_err()
        );
        assert!(Cli::try_parse_from([
            "listener",
            "get-access",
            "-d",
            "1",
            "--mfn",
            "7",
            "--pfn",
            "1"
        ])
        .is_err());
        let cli =
            Cli::try_parse_from(["listener", "get-access", "-d", "1", "--mfn", "0x7"]).unwrap();
        let Command::GetAccess(args) = cli.command else {
            panic!("not get-access")
        };
        assert!(matches!(
            args.target.frames(),
            commands::Frames::Machine([7])
        ));
        assert!(Cli::try_parse_from(["listener", "set-access", "-d", "1", "rx"]).is_err());
        assert!(Cli::try_parse_from([
            "listener",
            "get-access",
            "-d",
            "1",
            "--default",
            "--pfn",
            "1"
        ])
        .is_err());
    }

    #[test]
    fn monitor_takes_page_accesses_and_a_format() {
        let cli = Cli::try_parse_from([
            "listener", "monitor", "-d", "guest", "--access", "0x200=rw", "--access", "7=n",
        ])
        .unwrap();
        let Command::Monitor(args) = cli.command else {
            panic!("not monitor")
        };
        let pages: Vec<(u64, Access)> = args.access.iter().map(|p| (p.pfn, p.access)).collect();
        assert_eq!(pages, [(0x200, Access::Rw), (7, Access::N)]);
        assert_eq!(args.format, trace::Format::Jsonl);
        let cli =
            Cli::try_parse_from(["listener", "monitor", "-d", "1", "--format", "text"]).unwrap();
        let Command::Monitor(args) = cli.command else {
            panic!("not monitor")
        };
        assert_eq!(args.format, trace::Format::Text);
    }

    #[test]
    fn bad_page_accesses_are_refused_naming_the_argument() {
        for (value, why) in [
            ("0x200", "PFN=ACCESS"),
            ("0x200=rwxx", "unknown access"),
            ("0xzz=rw", "bad pfn"),
        ] {
            let error =
                match Cli::try_parse_from(["listener", "monitor", "-d", "1", "--access", value]) {
                    Ok(_) => panic!("{value} accepted"),
                    Err(error) => error.to_string(),
                };
            assert!(error.contains("--access <PFN=ACCESS>"), "{error}");
            assert!(error.contains(value) && error.contains(why), "{error}");
        }
        assert!(
            Cli::try_parse_from(["listener", "monitor", "-d", "1", "--format", "xml"]).is_err()
        );
    }
}
