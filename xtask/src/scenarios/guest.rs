//! Test guests from dom0's side: an xl configuration for the test-guest kernel, creation,
//! waiting on its console (as xenconsoled logs it) and on its shutdown.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use test_guest::lines::{self, Line};

use super::Dom0;
use crate::dom0_image::TEST_GUEST_PATH;

/// How a test guest is created.
pub struct GuestConfig<'a> {
    pub name: &'a str,
    pub memory_mib: u32,
    pub vcpus: u32,
    /// The guest's command line: it selects what the guest does.
    pub cmdline: &'a str,
}

impl<'a> GuestConfig<'a> {
    /// The usual guest of the abi scenarios: 64 MiB, one vCPU, running its workload again and
    /// again (`heartbeat`) until it is destroyed.
    pub fn heartbeat(name: &'a str) -> GuestConfig<'a> {
        GuestConfig {
            name,
            memory_mib: 64,
            vcpus: 1,
            cmdline: "heartbeat",
        }
    }

    /// The xl configuration. Shutdown leaves the domain in place so its state and shutdown
    /// reason can be read; the scenario destroys it. `maxmem` leaves room for 8 MiB more, so
    /// dom0 can give the guest pages later.
    fn xl_config(&self) -> String {
        format!(
            "name = \"{}\"\ntype = \"pv\"\nkernel = \"{TEST_GUEST_PATH}\"\nmemory = {}\n\
             maxmem = {}\nvcpus = {}\nextra = \"{}\"\non_poweroff = \"preserve\"\n\
             on_crash = \"preserve\"\non_reboot = \"preserve\"\n",
            self.name,
            self.memory_mib,
            self.memory_mib + 8,
            self.vcpus,
            self.cmdline
        )
    }
}

/// How a domain stopped, from the state column of `xl list`.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Shutdown {
    Poweroff,
    Reboot,
    Suspend,
    Crash,
    Watchdog,
    SoftReset,
}

impl Shutdown {
    /// Reads the `xl list` state (`rbpsRd`: running, blocked, paused, shut down, reason,
    /// dying); `None` while the domain has not shut down.
    pub fn from_xl_state(state: &str) -> Option<Shutdown> {
        let flags = state.as_bytes();
        if flags.len() != 6 || flags[3] != b's' {
            return None;
        }
        // xl_info.c: shutdown_reason_letters[] = "-rscwS"
        Some(match flags[4] {
            b'-' => Shutdown::Poweroff,
            b'r' => Shutdown::Reboot,
            b's' => Shutdown::Suspend,
            b'c' => Shutdown::Crash,
            b'w' => Shutdown::Watchdog,
            _ => Shutdown::SoftReset,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Shutdown::Poweroff => "poweroff",
            Shutdown::Reboot => "reboot",
            Shutdown::Suspend => "suspend",
            Shutdown::Crash => "crash",
            Shutdown::Watchdog => "watchdog",
            Shutdown::SoftReset => "soft_reset",
        }
    }
}

/// A running (or shut down) test guest.
pub struct Guest<'a> {
    dom0: &'a Dom0,
    pub name: String,
}

impl<'a> Guest<'a> {
    pub fn create(dom0: &'a Dom0, config: &GuestConfig) -> Result<Guest<'a>> {
        Guest::create_from_xl(dom0, config.name, &config.xl_config())
    }

    /// Creates the domain `name` that the xl configuration `xl_config` describes (another
    /// kernel than the test guest's).
    pub fn create_from_xl(dom0: &'a Dom0, name: &str, xl_config: &str) -> Result<Guest<'a>> {
        let path = format!("/run/{name}.cfg");
        std::fs::write(&path, xl_config)?;
        dom0.save("guest.cfg", xl_config)?;
        dom0.run("xl", &["create", &path])
            .with_context(|| format!("creating guest {name}"))?;
        Ok(Guest {
            dom0,
            name: name.to_string(),
        })
    }

    /// The guest's console as xenconsoled logs it.
    pub fn console_log(&self) -> PathBuf {
        PathBuf::from(format!("/var/log/xen/console/guest-{}.log", self.name))
    }

    pub fn console(&self) -> String {
        std::fs::read(self.console_log())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Waits until a console line reads as a `T` (a guest line type, whose doc is the line's
    /// format); returns the first.
    pub fn wait_for<T: for<'l> Line<'l>>(&self, timeout: Duration) -> Result<T> {
        self.wait_for_parsed(std::any::type_name::<T>(), |body| T::parse(body), timeout)
    }

    /// Waits until a console line reads as a `T` that `wanted` accepts; returns the first.
    pub fn wait_for_matching<T: for<'l> Line<'l>>(
        &self,
        wanted: impl Fn(&T) -> bool,
        timeout: Duration,
    ) -> Result<T> {
        let parse = |body: &str| T::parse(body).filter(|line| wanted(line));
        self.wait_for_parsed(std::any::type_name::<T>(), parse, timeout)
    }

    /// Waits until `parse` reads a complete guest line (the text after its `TEST-GUEST `
    /// prefix); returns what it read from the first. `what` names the line in the error.
    pub fn wait_for_parsed<T>(
        &self,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
        timeout: Duration,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = first_parsed(&self.console(), &parse) {
                return Ok(line);
            }
            if Instant::now() > deadline {
                bail!(
                    "the guest printed no {what} line (as wanted) in {}s (its console: {})",
                    timeout.as_secs(),
                    self.console_log().display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The machine frames of the guest's buffer pages, from its
    /// [`FRAMES`](test_guest::lines::Frames) line.
    pub fn frames(&self) -> Result<Vec<u64>> {
        Ok(self
            .wait_for::<lines::Frames>(Duration::from_secs(60))?
            .mfns
            .to_vec())
    }

    /// Every machine frame of the guest, in pfn order, from its
    /// [`P2M`](test_guest::lines::P2mRun) lines (the guest prints them when its command line
    /// has `p2m`, before its DONE line).
    pub fn all_frames(&self) -> Result<Vec<u64>> {
        self.wait_for::<lines::Done>(Duration::from_secs(120))?;
        self.p2m_frames()
    }

    /// The frames of the [`P2M`](test_guest::lines::P2mRun) lines printed so far (a guest
    /// running a pattern prints them before its `READY` line, and never a `DONE`).
    pub fn p2m_frames(&self) -> Result<Vec<u64>> {
        p2m_frames(&self.console())
    }

    /// The highest [`HEARTBEAT`](test_guest::lines::Heartbeat) so far (0 before the first).
    pub fn heartbeat(&self) -> u64 {
        lines::bodies(&self.console())
            .filter_map(lines::Heartbeat::parse)
            .map(|line| line.beat)
            .max()
            .unwrap_or(0)
    }

    /// Waits until the guest's heartbeat passes `after`; returns the new one.
    pub fn wait_for_heartbeat(&self, after: u64, timeout: Duration) -> Result<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let beat = self.heartbeat();
            if beat > after {
                return Ok(beat);
            }
            if Instant::now() > deadline {
                bail!(
                    "the guest's heartbeat stayed at {after} for {}s (its console: {})",
                    timeout.as_secs(),
                    self.console_log().display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the domain has shut down; returns why.
    pub fn wait_for_shutdown(&self, timeout: Duration) -> Result<Shutdown> {
        let deadline = Instant::now() + timeout;
        loop {
            let listing = self.dom0.run("xl", &["list", &self.name])?;
            let state = listing
                .lines()
                .nth(1)
                .and_then(|line| line.split_whitespace().nth(4))
                .unwrap_or("");
            if let Some(reason) = Shutdown::from_xl_state(state) {
                return Ok(reason);
            }
            if Instant::now() > deadline {
                bail!(
                    "guest {} did not shut down in {}s (state {state})",
                    self.name,
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Destroys the domain now and waits until Xen no longer lists it.
    pub fn destroy(&self, timeout: Duration) -> Result<()> {
        self.dom0.run("xl", &["destroy", &self.name])?;
        let deadline = Instant::now() + timeout;
        while self.dom0.run("xl", &["domid", &self.name]).is_ok() {
            if Instant::now() > deadline {
                bail!(
                    "guest {} still exists {}s after xl destroy",
                    self.name,
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Keeps the guest's console among the scenario's results.
    pub fn save_console(&self) -> Result<()> {
        self.dom0.save("guest-console.log", self.console())
    }
}

/// A scenario never leaves its guest behind, whichever way it ends.
impl Drop for Guest<'_> {
    fn drop(&mut self) {
        let _ = self.dom0.run("xl", &["destroy", &self.name]);
    }
}

/// What `parse` reads from the first line of `console` it reads, of the complete lines
/// only (ended by a newline: the guest may be halfway through the last one, which could
/// read as a line with a shorter number).
fn first_parsed<T>(console: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    let complete = &console[..console.rfind('\n').map_or(0, |end| end + 1)];
    lines::bodies(complete).find_map(parse)
}

/// The frames of the [`P2M`](test_guest::lines::P2mRun) lines of `console`, which must
/// follow each other in pfn order from pfn 0.
fn p2m_frames(console: &str) -> Result<Vec<u64>> {
    let mut frames = Vec::new();
    for body in lines::bodies(console) {
        if !body.starts_with("P2M ") {
            continue;
        }
        let run = lines::P2mRun::parse(body).with_context(|| format!("bad P2M line {body:?}"))?;
        if run.pfn != frames.len() as u64 {
            bail!("the P2M runs skip or repeat pfn {:#x}", run.pfn);
        }
        frames.extend(run.mfn..run.mfn + run.count);
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::{first_parsed, p2m_frames, Shutdown};
    use test_guest::bench_ops::Sweep;
    use test_guest::lines::Line;

    #[test]
    fn xl_states_give_shutdown_reasons() {
        assert_eq!(Shutdown::from_xl_state("-b----"), None);
        assert_eq!(Shutdown::from_xl_state("r-----"), None);
        assert_eq!(Shutdown::from_xl_state("---s--"), Some(Shutdown::Poweroff));
        assert_eq!(Shutdown::from_xl_state("---sc-"), Some(Shutdown::Crash));
        assert_eq!(Shutdown::from_xl_state("---sr-"), Some(Shutdown::Reboot));
        assert_eq!(Shutdown::from_xl_state(""), None);
    }

    #[test]
    fn p2m_runs_join_in_pfn_order() {
        let console = "TEST-GUEST P2M-PUBLISHED max_pfn=0x5 fll=0x9\n\
                       TEST-GUEST P2M pfn=0x0 mfn=0x100 count=3\n\
                       TEST-GUEST P2M pfn=0x3 mfn=0x200 count=2\n";
        assert_eq!(
            p2m_frames(console).unwrap(),
            [0x100, 0x101, 0x102, 0x200, 0x201]
        );
        let gap =
            "TEST-GUEST P2M pfn=0x0 mfn=0x100 count=3\nTEST-GUEST P2M pfn=0x4 mfn=0x1 count=1\n";
        assert!(p2m_frames(gap).is_err());
        assert!(p2m_frames("TEST-GUEST P2M pfn=0x0 mfn=0x100\n").is_err());
    }

    #[test]
    fn only_complete_lines_are_read() {
        let parse = |body: &str| Sweep::parse(body).map(|sweep| sweep.ns);
        let partial =
            "TEST-GUEST READY go-pfn=0x2f0 phase=2\nTEST-GUEST SWEEP phase=2 tsc=4321 ns=14";
        assert_eq!(first_parsed(partial, parse), None);
        assert_eq!(first_parsed(&format!("{partial}40\n"), parse), Some(1440));
        assert_eq!(first_parsed(&format!("{partial}40\r\n"), parse), Some(1440));
        assert_eq!(first_parsed("", parse), None);
    }
}
