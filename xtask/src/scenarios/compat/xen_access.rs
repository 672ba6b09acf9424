//! `compat/xen-access`: Xen's `xen-access` (patched by the series: the `_mfn` calls, the
//! default access only, events printed with their machine frame and the guest's frame)
//! monitors a PV test guest in its `write` and `exec` modes.
//!
//! The guest runs `pattern=write-sweep` (write mode: default rx) or `pattern=exec` (exec
//! mode: default rw) and waits for GO; `xen-access [-m] DOMID MODE` is started (`-m`, the
//! listener required, in write mode), and once `listener
//! status` shows its default access in force dom0 lets the guest go. xen-access reports the
//! first write (exec) of every page, relaxes it and answers; when the guest has powered off
//! it is stopped with SIGTERM (its teardown: default rwx, ring disabled).
//!
//! Host checks: each buffer page the guest wrote (executed) has a `PAGE ACCESS` line with the
//! access, its machine frame (the guest's `FRAMES` line) and its pfn (through the guest's
//! P2M); the guest finished; xen-access exited 0; `listener status` says monitoring off.
//! Without `XENMEM_access_op_mfn` in the booted Xen, xen-access enables the ring and binds
//! its event channel, then stops at the default access (Xen refuses the call): that, and
//! monitoring off afterwards, is all that is checked.

use std::fs::File;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use libxc::xenstore::resolve_domain;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use test_guest::patterns::{PatternDone, Ready};

use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::events::run::{release, wait, GO};
use crate::scenarios::events::trace::{hex, Account, BUFFER_PFN};
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "compat/xen-access",
    in_dom0,
    on_host,
};

/// The modes run: (xen-access mode, the guest's pattern, the default access it sets, the
/// access letter its events carry). The write mode runs with `-m` (access_required).
const MODES: &[(&str, &str, &str, char)] = &[
    ("write", "pattern=write-sweep", "rx", 'w'),
    ("exec", "pattern=exec", "rw", 'x'),
];

fn in_dom0(dom0: &Dom0) -> Result<()> {
    for (mode, pattern, default, _) in MODES {
        run_mode(dom0, mode, pattern, default).with_context(|| format!("mode {mode}"))?;
    }
    Ok(())
}

fn run_mode(dom0: &Dom0, mode: &str, pattern: &str, default: &str) -> Result<()> {
    let name = format!("compat-xa-{mode}");
    let guest = dom0.create_guest(&GuestConfig {
        name: &name,
        memory_mib: 64,
        vcpus: 1,
        cmdline: pattern,
    })?;
    let result = (|| -> Result<()> {
        let go_pfn = guest.wait_for::<Ready>(Duration::from_secs(60))?.go_pfn;
        let domid = resolve_domain(&name)?.0;
        let output = format!("/tmp/xen-access-{mode}.out");
        let errors = format!("/tmp/xen-access-{mode}.err");
        let required: &[&str] = if mode == "write" { &["-m"] } else { &[] };
        let mut child = Command::new("xen-access")
            .args(required)
            .args([domid.to_string(), mode.to_string()])
            .stdout(File::create(&output)?)
            .stderr(File::create(&errors)?)
            .spawn()
            .context("starting xen-access")?;
        // Its default access in force (or xen-access gone): then the guest may go.
        let wanted = format!("default access: {default}\n");
        let deadline = Instant::now() + Duration::from_secs(60);
        let monitoring = loop {
            if child.try_wait()?.is_some() {
                break false;
            }
            let status = dom0
                .run("listener", &["status", "--domain", &name])
                .unwrap_or_default();
            if status.contains(&wanted) {
                break true;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("xen-access set no default access {default} within 60s: {status}");
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let driven = if monitoring {
            release(&name, go_pfn, GO)
                .and_then(|_| guest.wait_for::<PatternDone>(Duration::from_secs(240)))
                .and_then(|_| guest.wait_for_shutdown(Duration::from_secs(120)))
                .map(drop)
        } else {
            Ok(())
        };
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let status = wait(&mut child, Duration::from_secs(60));
        dom0.save(&format!("{mode}.out"), std::fs::read(&output)?)?;
        dom0.save(&format!("{mode}.err"), std::fs::read(&errors)?)?;
        dom0.save(
            &format!("{mode}.exit"),
            format!("exit={}\n", status.as_ref().map_or(-1, |s| *s)),
        )?;
        dom0.save(
            &format!("{mode}.status-after"),
            dom0.run("listener", &["status", "--domain", &name])?,
        )?;
        driven.and(status.map(drop))
    })();
    let saved = dom0.save(&format!("{mode}.console"), guest.console());
    let destroyed = guest.destroy(Duration::from_secs(30));
    result.and(saved).and(destroyed)
}

/// One `PAGE ACCESS` line of a PV guest:
/// `PAGE ACCESS: -w- for MFN 1a2b3 PFN 205 (offset 000010) gla ... (vcpu 0 [p])`.
#[derive(Debug, PartialEq)]
struct PageAccess {
    access: String,
    mfn: u64,
    pfn: Option<u64>,
}

fn page_accesses(output: &str) -> Result<Vec<PageAccess>> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix("PAGE ACCESS: "))
        .map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let after = |key: &str| {
                words
                    .iter()
                    .position(|word| *word == key)
                    .and_then(|at| words.get(at + 1).copied())
                    .with_context(|| format!("no {key} in PAGE ACCESS: {rest}"))
            };
            let pfn = after("PFN")?;
            Ok(PageAccess {
                access: words.first().unwrap_or(&"").to_string(),
                mfn: hex(after("MFN")?)?,
                pfn: if pfn == "unknown" {
                    None
                } else {
                    Some(hex(pfn)?)
                },
            })
        })
        .collect()
}

fn on_host(view: &HostView) -> Result<()> {
    for (mode, _, _, letter) in MODES {
        check_mode(view, mode, *letter).with_context(|| format!("mode {mode}"))?;
    }
    Ok(())
}

fn check_mode(view: &HostView, mode: &str, letter: char) -> Result<()> {
    let output = view.read(&format!("{mode}.out"))?;
    let errors = view.read(&format!("{mode}.err"))?;
    let context = || format!("xen-access's stdout:\n{output}\nits stderr:\n{errors}");
    let status = view.read(&format!("{mode}.status-after"))?;
    ensure!(
        status.contains("monitoring off"),
        "monitoring is still on after xen-access: {status}"
    );
    // The ring enabled and its event channel bound: init got as far as max_gpfn.
    ensure!(
        errors.contains("max_gpfn = "),
        "xen-access did not get its ring: {}",
        context()
    );
    let exit = view.read(&format!("{mode}.exit"))?;
    ensure!(exit.trim() == "exit=0", "xen-access: {exit}; {}", context());
    let account = Account::parse(&view.read(&format!("{mode}.console"))?)?;
    ensure!(account.done, "the guest did not finish its pattern");
    let events = page_accesses(&output)?;
    let mut checked = 0;
    for touch in account
        .touches
        .iter()
        .filter(|touch| touch.access == letter)
    {
        let frame = *account
            .frames
            .get(touch.page as usize)
            .with_context(|| format!("no frame for page {}", touch.page))?;
        let event = events
            .iter()
            .find(|event| event.mfn == frame)
            .with_context(|| {
                format!(
                    "no PAGE ACCESS line for page {} (mfn {frame:#x}); {}",
                    touch.page,
                    context()
                )
            })?;
        ensure!(
            event.access.contains(letter),
            "page {}: {event:?}, expected {letter}",
            touch.page
        );
        ensure!(
            event.pfn == Some(BUFFER_PFN + touch.page),
            "page {}: PFN {:?}, the guest's is {:#x}",
            touch.page,
            event.pfn,
            BUFFER_PFN + touch.page
        );
        checked += 1;
    }
    ensure!(checked > 0, "the guest reported no {letter} touch");
    ensure!(
        events.iter().all(|event| event.pfn.is_some()),
        "a PAGE ACCESS line without a PFN: {}",
        context()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_access_lines_give_access_mfn_and_pfn() {
        let output = "Got event from Xen\n\
            PAGE ACCESS: -w- for MFN 1a2b3 PFN 205 (offset 000010) gla 0000000000205010 \
            (valid: y; fault in gpt: n; fault with gla: y) (vcpu 0 [p])\n\
            PAGE ACCESS: --x for MFN 42 PFN unknown (offset 000000) gla 0 (vcpu 0 [p])\n";
        assert_eq!(
            page_accesses(output).unwrap(),
            [
                PageAccess {
                    access: "-w-".into(),
                    mfn: 0x1a2b3,
                    pfn: Some(0x205)
                },
                PageAccess {
                    access: "--x".into(),
                    mfn: 0x42,
                    pfn: None
                }
            ]
        );
    }
}
