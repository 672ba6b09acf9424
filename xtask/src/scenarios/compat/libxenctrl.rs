//! `compat/libxenctrl`: libxenctrl's monitor and mem_access calls on a PV guest, made by a C
//! program written against the patched libxenctrl (`xtask/c/compat-libxenctrl.c`).
//!
//! The guest runs `pattern=write-sweep` and waits for GO. The program enables the monitor
//! ring (`xc_monitor_enable`: ring mapped, its event channel bound), checks the capabilities
//! (mem_access for PV), maps the ring again the standard way (`xenforeignmemory_map_resource`,
//! which must give the same page), sets the default access rx and buffer page 0's frame rw with the
//! `_mfn` calls and reads them back (the default, page 0 rw, page 1 rx), then page 1 r in a
//! batch with page 0 (`xc_set_mem_access_multi_mfn`), read back. Then dom0 lets the
//! guest go; the program answers every event (each frame relaxed to rwx; the first batch
//! resumed with `xc_monitor_resume`, later ones by event channel) until the guest has
//! powered off, puts the default back to rwx and disables the ring.
//!
//! Host checks: every step succeeded; each buffer page the guest wrote raised an event
//! naming its machine frame (the guest's `FRAMES` line), but page 0 (rw) none; afterwards
//! `listener status` says monitoring off.

use std::fs::File;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use libxc::xenstore::resolve_domain;
use test_guest::patterns::{PatternDone, Ready};

use super::wait_for_output;
use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::events::run::{release, wait, GO};
use crate::scenarios::events::trace::{hex, Account};
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "compat/libxenctrl",
    in_dom0,
    on_host,
};

const GUEST: &str = "compat-libxenctrl";
const OUTPUT: &str = "/tmp/compat-libxenctrl.out";
const ERRORS: &str = "/tmp/compat-libxenctrl.err";

/// Every step the program must report `ok`.
const STEPS: &[&str] = &[
    "capabilities",
    "enable",
    "ring",
    "map-resource",
    "evtchn",
    "set-default",
    "set-frame",
    "get-default",
    "get-frame",
    "get-default-frame",
    "set-multi",
    "get-multi-rw",
    "get-multi-r",
    "relaxed",
    "resume",
    "events",
    "reset-default",
    "disable",
];

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let guest = dom0.create_guest(&GuestConfig {
        name: GUEST,
        memory_mib: 64,
        vcpus: 1,
        cmdline: "pattern=write-sweep",
    })?;
    let result = (|| -> Result<()> {
        let go_pfn = guest.wait_for::<Ready>(Duration::from_secs(60))?.go_pfn;
        let frames = guest.frames()?;
        ensure!(frames.len() >= 2, "the guest's FRAMES line is short");
        let domid = resolve_domain(GUEST)?.0;
        let mut child = Command::new("compat-libxenctrl")
            .args([
                domid.to_string(),
                format!("{:#x}", frames[0]),
                format!("{:#x}", frames[1]),
                "300".to_string(),
            ])
            .stdout(File::create(OUTPUT)?)
            .stderr(File::create(ERRORS)?)
            .spawn()
            .context("starting compat-libxenctrl")?;
        let setup = wait_for_output(
            &mut child,
            std::path::Path::new(OUTPUT),
            "SETUP-DONE",
            Duration::from_secs(60),
        );
        let driven = match setup {
            Ok(true) => release(GUEST, go_pfn, GO)
                .and_then(|_| guest.wait_for::<PatternDone>(Duration::from_secs(240)))
                .and_then(|_| guest.wait_for_shutdown(Duration::from_secs(120)))
                .map(drop),
            // It stopped before: its output says why.
            Ok(false) => Ok(()),
            Err(error) => Err(error),
        };
        let status = wait(&mut child, Duration::from_secs(120));
        dom0.save("output.txt", std::fs::read(OUTPUT)?)?;
        dom0.save("stderr.txt", std::fs::read(ERRORS)?)?;
        dom0.save(
            "exit.txt",
            format!("exit={}\n", status.as_ref().map_or(-1, |s| *s)),
        )?;
        dom0.save(
            "status-after.txt",
            dom0.run("listener", &["status", "--domain", GUEST])?,
        )?;
        driven.and(status.map(drop))
    })();
    let saved = guest.save_console();
    let destroyed = guest.destroy(Duration::from_secs(30));
    result.and(saved).and(destroyed)
}

/// The program's `STEP name ok|FAIL ...` lines: (name, ok, the rest).
fn steps(output: &str) -> Vec<(&str, bool, &str)> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix("STEP "))
        .filter_map(|rest| {
            let mut words = rest.splitn(3, ' ');
            let name = words.next()?;
            let verdict = words.next()?;
            Some((name, verdict == "ok", words.next().unwrap_or("")))
        })
        .collect()
}

/// The value of `key=` in a line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

fn on_host(view: &HostView) -> Result<()> {
    let output = view.read("output.txt")?;
    let stderr = view.read("stderr.txt").unwrap_or_default();
    let context = || format!("its output:\n{output}\nits stderr:\n{stderr}");
    let steps = steps(&output);
    if let Some((name, _, rest)) = steps.iter().find(|(_, ok, _)| !ok) {
        anyhow::bail!("step {name} failed: {rest}; {}", context());
    }
    for wanted in STEPS {
        ensure!(
            steps.iter().any(|(name, _, _)| name == wanted),
            "the program did not report step {wanted}; {}",
            context()
        );
    }
    let summary = output
        .lines()
        .find_map(|line| line.strip_prefix("SUMMARY "))
        .with_context(context)?;
    ensure!(
        summary.starts_with("ok "),
        "SUMMARY {summary}; {}",
        context()
    );
    let exit = view.read("exit.txt")?;
    ensure!(exit.trim() == "exit=0", "compat-libxenctrl: {exit}");

    ensure!(
        field(summary, "api") == Some("mfn"),
        "SUMMARY {summary}: not through the _mfn calls"
    );

    let account = Account::parse(&view.read("guest-console.log")?)?;
    ensure!(account.done, "the guest did not finish its pattern");
    let events: Vec<(String, u64, bool)> = output
        .lines()
        .filter(|line| line.starts_with("EVENT "))
        .map(|line| -> Result<(String, u64, bool)> {
            Ok((
                field(line, "access").context("no access")?.to_string(),
                hex(field(line, "mfn").context("no mfn")?)?,
                field(line, "gfn_is_mfn") == Some("1"),
            ))
        })
        .collect::<Result<_>>()?;
    for touch in account.touches.iter().filter(|touch| touch.access == 'w') {
        let frame = *account
            .frames
            .get(touch.page as usize)
            .with_context(|| format!("no frame for page {}", touch.page))?;
        let reported = events
            .iter()
            .any(|(access, mfn, _)| *mfn == frame && access.contains('w'));
        if touch.page == 0 {
            ensure!(
                !reported,
                "page 0 (rw) raised a write event (mfn {frame:#x})"
            );
        } else {
            ensure!(
                reported,
                "the guest's write to page {} (mfn {frame:#x}) raised no event; {}",
                touch.page,
                context()
            );
        }
    }
    ensure!(
        events.iter().all(|(_, _, flagged)| *flagged),
        "an event without MEM_ACCESS_GFN_IS_MFN"
    );

    let status = view.read("status-after.txt")?;
    ensure!(
        status.contains("monitoring off"),
        "after the program: {status}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_fields_are_read_from_the_program_output() {
        let output = "STEP enable ok port=5\nINFO x\nSTEP get-frame FAIL errno=38 (x)\n\
                      EVENT vcpu=0 access=-w- mfn=0x1a2b\n";
        let steps = steps(output);
        assert_eq!(steps[0], ("enable", true, "port=5"));
        assert_eq!(steps[1], ("get-frame", false, "errno=38 (x)"));
        assert_eq!(
            field("EVENT vcpu=0 access=-w- mfn=0x1a2b", "mfn"),
            Some("0x1a2b")
        );
        assert_eq!(field("EVENT vcpu=0", "mfn"), None);
    }
}
