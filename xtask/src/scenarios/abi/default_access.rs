//! `abi/default-access`: the default access and per-frame access, through the listener.
//!
//! With monitoring on: default rx, so the guest's buffer frames read rx; one frame set rw
//! reads rw while the others stay rx; a new default r supersedes the rw frame too (the
//! generation counter); guest frames named by pfn go through the P2M the guest publishes
//! (pfn 0x200 is the buffer's first page); a frame set n2rwx afterwards reads n2rwx; and a page the guest gains
//! after that (dom0 populates one more frame for it) reads r; access_required can be switched
//! on and off for the PV guest. Frames are named `<f0>`,
//! `<f1>`, ... in the transcript, since their machine numbers differ between runs.
//!
//! Host checks: the transcript, line by line.

use std::time::Duration;

use anyhow::{Context, Result};
use libxc::memory::populate_physmap;
use libxc::privcmd::Privcmd;
use libxc::xenstore::resolve_domain;
use libxc::Pfn;
use test_guest::workload::BUFFER_GFN;

use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::transcript::{Lines, Transcript};
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "abi/default-access",
    in_dom0,
    on_host,
};

const GUEST: &str = "default-access";

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let guest = dom0.create_guest(&GuestConfig::heartbeat(GUEST))?;
    let buffer = guest.frames()?;
    guest.wait_for_heartbeat(0, Duration::from_secs(60))?;
    let mut t = Transcript::new(dom0, GUEST);
    let hex = |frame: u64| format!("{frame:#x}");
    let [f0, f1, f2] = [hex(buffer[0]), hex(buffer[1]), hex(buffer[2])];
    for (index, frame) in [&f0, &f1, &f2].into_iter().enumerate() {
        t.name(frame, &format!("<f{index}>"));
    }
    // Nobody answers events here: the guest stays paused while its pages are restricted,
    // else its next write would wait for an answer for good (as an HVM guest would).
    dom0.run("xl", &["pause", GUEST])?;
    let result = (|| -> Result<()> {
        t.listener(&["enable"])?;
        t.listener(&["set-access", "--default", "rx"])?;
        t.listener(&["get-access", "--mfn", &f0, "--mfn", &f1, "--mfn", &f2])?;
        t.listener(&["set-access", "--mfn", &f1, "rw"])?;
        t.listener(&["get-access", "--mfn", &f0, "--mfn", &f1])?;
        t.listener(&["set-access", "--default", "r"])?;
        t.listener(&["get-access", "--mfn", &f0, "--mfn", &f1])?;
        // The same frames named by guest frame, through the P2M the guest publishes.
        let (p0, p1) = (hex(BUFFER_GFN), hex(BUFFER_GFN + 1));
        t.listener(&["get-access", "--pfn", &p0])?;
        t.listener(&["set-access", "--pfn", &p1, "rx"])?;
        t.listener(&["get-access", "--mfn", &f1])?;
        t.listener(&["set-access", "--mfn", &f2, "n2rwx"])?;
        t.listener(&["get-access", "--mfn", &f1, "--mfn", &f2])?;
        // A page the guest gains now: one frame past its 64 MiB.
        let privcmd = Privcmd::open()?;
        let gained = populate_physmap(&privcmd, resolve_domain(GUEST)?, Pfn(64 * 256), 1)
            .context("giving the guest one more page")?[0];
        let gained = hex(gained.0);
        t.name(&gained, "<gained>");
        t.listener(&["get-access", "--mfn", &gained])?;
        t.listener(&["access-required", "on"])?;
        t.listener(&["access-required", "off"])?;
        t.listener(&["set-access", "--default", "rwx"])?;
        t.listener(&["disable"])?;
        Ok(())
    })();
    let unpaused = dom0.run("xl", &["unpause", GUEST]);
    guest.wait_for_heartbeat(guest.heartbeat(), Duration::from_secs(60))?;
    t.save()?;
    guest.save_console()?;
    result.and(unpaused.map(drop))
}

fn on_host(view: &HostView) -> Result<()> {
    let transcript = view.read("transcript.txt")?;
    let mut lines = Lines::new(&transcript);
    lines.expect(&["$ listener enable"])?;
    lines.next()?; // monitoring enabled (port varies)
    lines.expect(&[
        "$ listener set-access --default rx",
        "default access set to rx",
        "$ listener get-access --mfn <f0> --mfn <f1> --mfn <f2>",
        "mfn <f0> access rx",
        "mfn <f1> access rx",
        "mfn <f2> access rx",
        "$ listener set-access --mfn <f1> rw",
        "mfn <f1> access set to rw",
        "$ listener get-access --mfn <f0> --mfn <f1>",
        "mfn <f0> access rx",
        "mfn <f1> access rw",
        "$ listener set-access --default r",
        "default access set to r",
        "$ listener get-access --mfn <f0> --mfn <f1>",
        "mfn <f0> access r",
        "mfn <f1> access r",
        "$ listener get-access --pfn 0x200",
        "pfn 0x200 access r",
        "$ listener set-access --pfn 0x201 rx",
        "pfn 0x201 access set to rx",
        "$ listener get-access --mfn <f1>",
        "mfn <f1> access rx",
        "$ listener set-access --mfn <f2> n2rwx",
        "mfn <f2> access set to n2rwx",
        "$ listener get-access --mfn <f1> --mfn <f2>",
        "mfn <f1> access rx",
        "mfn <f2> access n2rwx",
        "$ listener get-access --mfn <gained>",
        "mfn <gained> access r",
        "$ listener access-required on",
        "access_required on",
        "$ listener access-required off",
        "access_required off",
        "$ listener set-access --default rwx",
        "default access set to rwx",
        "$ listener disable",
        "monitoring disabled",
    ])?;
    anyhow::ensure!(lines.at_end(), "the transcript goes on");
    Ok(())
}
