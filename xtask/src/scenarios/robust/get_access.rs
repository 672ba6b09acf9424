//! `robust/get-access`: a PV domain's access rights read back whether or not a listener
//! monitors it, as HVM's rules give them (`p2m_get_mem_access`: the default for `~0`, else
//! the frame's own access, else the default), through libxc-rs and `listener get-access`.
//!
//! One guest in its heartbeat mode, paused while it is read (with no ring, Xen would relax
//! each page it writes), at each step: never monitored (default rwx, a
//! frame rwx); monitored, after default rx and one frame rw (that frame rw, another rx);
//! after `listener disable` (rights stay in force without a ring: the same answers); after
//! a new default r set while monitored again (it supersedes the frame's own access), and
//! once more after disabling. Then a frame of another guest (EPERM) and a frame number that
//! is no RAM (EINVAL). The guest's heartbeat goes on throughout.
//!
//! Host checks: every answer, from both, is the one in [`EXPECTED`].

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use libxc::memory::get_mem_access_mfn;
use libxc::privcmd::Privcmd;
use libxc::xenstore::resolve_domain;
use libxc::{DomId, Mfn};

use super::Counters;
use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "robust/get-access",
    in_dom0,
    on_host,
};

const GUEST: &str = "get-access";
const OTHER: &str = "get-access-other";

/// A machine frame far beyond any RAM of the nested machine.
const NOT_RAM: u64 = 1 << 40;

/// What is read at each step: the default, the frame given its own access, another frame.
const TARGETS: [&str; 3] = ["default", "frame", "other-frame"];

/// Each step and the answers for [`TARGETS`].
const EXPECTED: &[(&str, [&str; 3])] = &[
    ("never-monitored", ["rwx", "rwx", "rwx"]),
    ("monitored", ["rx", "rw", "rx"]),
    ("disabled", ["rx", "rw", "rx"]),
    ("new-default", ["r", "r", "r"]),
    ("new-default-disabled", ["r", "r", "r"]),
];

/// The errno named in an error's text (`... (EPERM: Operation not permitted)`), or `?`.
fn errno_in(text: &str) -> String {
    text.split('(')
        .filter_map(|part| part.split(':').next())
        .find(|word| {
            word.len() > 1 && word.starts_with('E') && word.chars().all(|c| c.is_ascii_uppercase())
        })
        .unwrap_or("?")
        .to_string()
}

/// One reading, as a word: the access, or `error-<ERRNO>`.
fn word(result: Result<String>) -> String {
    match result {
        Ok(access) => access,
        Err(error) => format!("error-{}", errno_in(&format!("{error:#}"))),
    }
}

struct Reader<'a> {
    dom0: &'a Dom0,
    privcmd: Privcmd,
    domid: DomId,
    lines: String,
}

impl Reader<'_> {
    /// Reads `mfn` (None: the default) through libxc-rs and through `listener get-access`.
    fn read(&mut self, label: &str, mfn: Option<u64>) {
        let libxc = word(
            get_mem_access_mfn(&self.privcmd, self.domid, mfn.map(Mfn))
                .map(|access| access.to_string())
                .map_err(Into::into),
        );
        let target = match mfn {
            None => vec!["--default".to_string()],
            Some(mfn) => vec!["--mfn".to_string(), format!("{mfn:#x}")],
        };
        let mut args = vec!["get-access", "--domain", GUEST];
        args.extend(target.iter().map(String::as_str));
        let listener = word(self.dom0.run("listener", &args).and_then(|out| {
            out.split_whitespace()
                .last()
                .map(str::to_string)
                .context("listener get-access said nothing")
        }));
        self.lines += &format!("{label} libxc={libxc} listener={listener}\n");
    }
}

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let guest = dom0.create_guest(&GuestConfig {
        memory_mib: 32,
        ..GuestConfig::heartbeat(GUEST)
    })?;
    let other = dom0.create_guest(&GuestConfig {
        memory_mib: 32,
        ..GuestConfig::heartbeat(OTHER)
    })?;
    let frames = guest.frames()?;
    let (frame, other_frame) = (frames[0], frames[1]);
    let foreign = other.frames()?[0];
    let mut beat = guest.wait_for_heartbeat(0, Duration::from_secs(60))?;
    let mut reader = Reader {
        dom0,
        privcmd: Privcmd::open()?,
        domid: resolve_domain(GUEST)?,
        lines: String::new(),
    };
    let listener = |args: &[&str]| -> Result<String> {
        let mut full = args.to_vec();
        full.extend(["--domain", GUEST]);
        dom0.run("listener", &full)
    };
    let frame_arg = format!("{frame:#x}");
    // Paused while the rights are read: a running guest would write its buffer, and with no
    // ring Xen relaxes each page it writes to rwx (a right changed under the reading).
    dom0.run("xl", &["pause", GUEST])?;
    let step = |reader: &mut Reader, name: &str| {
        for (target, mfn) in TARGETS.iter().zip([None, Some(frame), Some(other_frame)]) {
            reader.read(&format!("{name} {target}"), mfn);
        }
    };
    step(&mut reader, "never-monitored");
    listener(&["enable"])?;
    listener(&["set-access", "--default", "rx"])?;
    listener(&["set-access", "--mfn", &frame_arg, "rw"])?;
    step(&mut reader, "monitored");
    listener(&["disable"])?;
    step(&mut reader, "disabled");
    listener(&["enable"])?;
    listener(&["set-access", "--default", "r"])?;
    step(&mut reader, "new-default");
    listener(&["disable"])?;
    step(&mut reader, "new-default-disabled");
    reader.read("foreign frame", Some(foreign));
    reader.read("not-ram frame", Some(NOT_RAM));
    dom0.run("xl", &["unpause", GUEST])?;
    // The guest runs on (its pages r now: Xen relaxes each it writes, with no ring).
    beat = guest.wait_for_heartbeat(beat, Duration::from_secs(60))?;
    dom0.save("answers.txt", &reader.lines)?;
    dom0.save("heartbeat.txt", format!("{beat}\n"))?;
    guest.save_console()?;
    drop(other);
    Counters::default().save(dom0)
}

fn on_host(view: &HostView) -> Result<()> {
    let answers = view.read("answers.txt")?;
    let mut wanted = Vec::new();
    for (step, accesses) in EXPECTED {
        for (target, access) in TARGETS.iter().zip(accesses) {
            wanted.push(format!("{step} {target} libxc={access} listener={access}"));
        }
    }
    wanted.push("foreign frame libxc=error-EPERM listener=error-EPERM".into());
    wanted.push("not-ram frame libxc=error-EINVAL listener=error-EINVAL".into());
    let got: Vec<&str> = answers.lines().collect();
    let wrong: Vec<String> = wanted
        .iter()
        .zip(got.iter().copied().chain(std::iter::repeat("(missing)")))
        .filter(|(wanted, got)| wanted != got)
        .map(|(wanted, got)| format!("  expected `{wanted}`, got `{got}`"))
        .collect();
    ensure!(
        wrong.is_empty() && got.len() == wanted.len(),
        "wrong answers:\n{}",
        wrong.join("\n")
    );
    ensure!(
        !view.read("guest-console.log")?.contains("TEST-GUEST FAIL"),
        "the guest reported a failure"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_are_found_in_error_texts() {
        assert_eq!(
            errno_in("XENMEM_access_op(get_access) failed: Operation not permitted (EPERM: Operation not permitted)"),
            "EPERM"
        );
        assert_eq!(
            errno_in("listener: mfn 0x10 (EINVAL: Invalid argument)"),
            "EINVAL"
        );
        assert_eq!(errno_in("no errno here (really)"), "?");
    }
}
