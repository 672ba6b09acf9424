//! `listener/lifecycle`: `listener monitor` always leaves the guest unmonitored, whatever
//! stops it, and says why in its exit status and trace.
//!
//! Three runs against a guest in its heartbeat mode, with `--mode write` (the whole guest rx:
//! its buffer writes raise events all the time, so every stop happens with events in
//! flight): stopped by `--timeout` (exit 0), by SIGTERM (exit 3), and by the guest's
//! destruction (exit 4). After the first two, `listener status` must say monitoring is off
//! and the guest's heartbeat must go on (no vCPU left paused).
//!
//! Host checks: the exit statuses, the header (trace format 1, the domain, our Xen version)
//! and end line (reason, as many events as the trace holds, at least one) of each trace,
//! and the statuses.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use listener::record::{Record, FORMAT_VERSION};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::layout::XEN_EXTRA_VERSION;
use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::events::run::{start_listener, wait};
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "listener/lifecycle",
    in_dom0,
    on_host,
};

const GUEST: &str = "lifecycle";

/// Starts `listener monitor --mode write` writing its trace to `trace`.
fn start(trace: &str, extra: &[&str]) -> Result<std::process::Child> {
    let mut options = vec!["--mode", "write"];
    options.extend(extra);
    start_listener(GUEST, trace, &options)
}

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let guest = dom0.create_guest(&GuestConfig::heartbeat(GUEST))?;
    guest.wait_for_heartbeat(0, Duration::from_secs(60))?;
    let mut report = String::new();

    let mut child = start("/tmp/timeout.jsonl", &["--timeout", "3"])?;
    report += &format!(
        "timeout exit={}\n",
        wait(&mut child, Duration::from_secs(30))?
    );
    report += &dom0.run("listener", &["status", "--domain", GUEST])?;
    guest.wait_for_heartbeat(guest.heartbeat(), Duration::from_secs(60))?;
    report += "heartbeat goes on\n";

    let mut child = start("/tmp/signal.jsonl", &[])?;
    std::thread::sleep(Duration::from_secs(3));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM)?;
    report += &format!(
        "signal exit={}\n",
        wait(&mut child, Duration::from_secs(30))?
    );
    report += &dom0.run("listener", &["status", "--domain", GUEST])?;
    guest.wait_for_heartbeat(guest.heartbeat(), Duration::from_secs(60))?;
    report += "heartbeat goes on\n";

    // The same in words: `--format text`.
    let mut child = start("/tmp/text.txt", &["--timeout", "3", "--format", "text"])?;
    report += &format!("text exit={}\n", wait(&mut child, Duration::from_secs(30))?);
    dom0.save("text.txt", std::fs::read("/tmp/text.txt")?)?;

    let mut child = start("/tmp/gone.jsonl", &[])?;
    std::thread::sleep(Duration::from_secs(3));
    guest.destroy(Duration::from_secs(30))?;
    report += &format!(
        "domain-gone exit={}\n",
        wait(&mut child, Duration::from_secs(30))?
    );

    for name in ["timeout", "signal", "gone"] {
        dom0.save(
            &format!("{name}.jsonl"),
            std::fs::read(format!("/tmp/{name}.jsonl"))?,
        )?;
    }
    dom0.save("report.txt", report)
}

fn on_host(view: &HostView) -> Result<()> {
    check_text_trace(&view.read("text.txt")?)?;
    let report = view.read("report.txt")?;
    let lines: Vec<&str> = report
        .lines()
        .map(|line| {
            line.split_once(": ")
                .filter(|(head, _)| head.starts_with("domain "))
                .map_or(line, |(_, rest)| rest)
        })
        .collect();
    let expected = [
        "timeout exit=0",
        "monitoring off",
        "shadow pool: 0 MiB",
        "monitor events: mem_access",
        "heartbeat goes on",
        "signal exit=3",
        "monitoring off",
        "shadow pool: 0 MiB",
        "monitor events: mem_access",
        "heartbeat goes on",
        "text exit=0",
        "domain-gone exit=4",
    ];
    ensure!(lines == expected, "expected {expected:?}, got {lines:?}");
    for (file, reason) in [
        ("timeout", "timeout"),
        ("signal", "signal"),
        ("gone", "domain-gone"),
    ] {
        let trace = view.read(&format!("{file}.jsonl"))?;
        let records: Vec<Record> = trace
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()
            .with_context(|| format!("{file}.jsonl is not the listener's records"))?;
        let (Some(Record::Header(header)), Some(Record::End(end))) =
            (records.first(), records.last())
        else {
            bail!("{file}.jsonl does not go from a header to an end record");
        };
        ensure!(header.version == FORMAT_VERSION, "{file}: {header:?}");
        ensure!(
            header.xen_version.ends_with(XEN_EXTRA_VERSION),
            "{file}: not our Xen: {header:?}"
        );
        let events = records.len() as u64 - 2;
        ensure!(
            end.reason == reason && end.events == events,
            "{file}: {end:?} after {events} events"
        );
        ensure!(
            events > 0,
            "{file}: no events from a guest writing rx pages"
        );
    }
    Ok(())
}

/// `--format text`: a header sentence, one `#N vcpuV ...` line per event, an end sentence.
fn check_text_trace(text: &str) -> Result<()> {
    let lines: Vec<&str> = text.lines().collect();
    let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
        bail!("the text trace is empty");
    };
    ensure!(
        first.starts_with("domain ")
            && first.contains(&format!(
                " monitored on Xen 4.17{XEN_EXTRA_VERSION}: mode write"
            )),
        "text header: {first}"
    );
    let events = &lines[1..lines.len() - 1];
    ensure!(!events.is_empty(), "no events in the text trace:\n{text}");
    for (index, line) in events.iter().enumerate() {
        ensure!(
            line.starts_with(&format!("#{} vcpu0 w pfn=0x", index + 1))
                && line.ends_with("-> relax"),
            "text event: {line}"
        );
    }
    ensure!(
        last.starts_with(&format!(
            "stopped by the timeout after {} events",
            events.len()
        )),
        "text end: {last}"
    );
    Ok(())
}
