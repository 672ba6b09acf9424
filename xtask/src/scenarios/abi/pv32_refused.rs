//! `abi/pv32-refused`: Xen refuses to monitor a 32-bit PV guest, and says why.
//!
//! PV mem_access covers 64-bit PV guests only: a request's registers and Xen's walks of the
//! guest's page tables are a 64-bit guest's. Patch 0011 makes `pv_mem_access_enable()`
//! answer `-EOPNOTSUPP` for `is_pv_32bit_domain(d)`, after `vm_event_enable()` made the ring,
//! which the same path then takes down again; libxc-rs's `monitor_enable` turns that errno
//! into an explanation naming 32-bit guests.
//!
//! The guest is [`crate::pv32_kernel`]'s: an i386 PAE kernel that only yields, through
//! `int $0x82`. Steps: Xen offers 32-bit PV (`xen-3.0-x86_32p` in `xl info`'s `xen_caps`,
//! which needs `CONFIG_PV32` and no CET), the guest is created and runs as a 32-bit PV domain
//! (`XEN_DOMCTL_get_address_size` answers 32; `xl list` shows it neither crashed nor shut
//! down, its CPU time growing), then:
//! - libxc-rs `monitor_enable`: `EOPNOTSUPP`, its reason naming 32-bit guests;
//! - `listener enable`: exit 1, the same explanation on standard error;
//! - `listener monitor --timeout 5`: exit 1, the same explanation, no trace header;
//! - afterwards nothing is left: `listener status` says monitoring off with a 0 MiB shadow
//!   pool, `XEN_VM_EVENT_ATTACH` finds no ring (`ENODEV`), and the guest still runs.
//!
//! The dom0 half records; the host half asserts on `facts.txt` and `transcript.txt`.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use libxc::domctl::{self, Domctl};
use libxc::monitor::{monitor_attach, monitor_enable, shadow_allocation_mib};
use libxc::privcmd::Privcmd;
use libxc::xenstore::resolve_domain;
use libxc::DomId;

use crate::dom0_image::PV32_GUEST_PATH;
use crate::scenarios::dom0::Guest;
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "abi/pv32-refused",
    in_dom0,
    on_host,
};

const GUEST: &str = "pv32";

/// The 32-bit PV guest's xl configuration; shutdown leaves it in place for a look.
fn xl_config() -> String {
    format!(
        "name = \"{GUEST}\"\ntype = \"pv\"\nkernel = \"{PV32_GUEST_PATH}\"\nmemory = 32\n\
         vcpus = 1\non_poweroff = \"preserve\"\non_crash = \"preserve\"\n\
         on_reboot = \"preserve\"\n"
    )
}

/// The guest's width in bits, as Xen knows it.
fn address_size(privcmd: &Privcmd, domid: DomId) -> Result<u32> {
    let done = domctl::call(
        privcmd,
        "XEN_DOMCTL_get_address_size",
        Domctl::new(
            xen_abi::XEN_DOMCTL_get_address_size,
            domid,
            &xen_abi::xen_domctl_address_size::default(),
        ),
    )?;
    Ok(done.payload::<xen_abi::xen_domctl_address_size>().size)
}

/// The guest's state and CPU seconds from `xl list`.
fn xl_state(dom0: &Dom0) -> Result<(String, f64)> {
    let listing = dom0.run("xl", &["list", GUEST])?;
    let line = listing
        .lines()
        .nth(1)
        .with_context(|| format!("xl list shows no {GUEST}: {listing}"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    ensure!(words.len() >= 6, "unexpected xl list line {line:?}");
    let time = words[5]
        .parse()
        .with_context(|| format!("CPU time in {line:?}"))?;
    Ok((words[4].to_string(), time))
}

/// Runs `listener ARGS --domain GUEST` and records its exit status and both outputs.
fn listener(transcript: &mut String, args: &[&str]) -> Result<()> {
    let output = Command::new("listener")
        .args(args)
        .args(["--domain", GUEST])
        .output()
        .context("running listener")?;
    let status = output
        .status
        .code()
        .map_or_else(|| format!("{}", output.status), |code| code.to_string());
    transcript.push_str(&format!("$ listener {}\nexit {status}\n", args.join(" ")));
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        for line in String::from_utf8_lossy(bytes).lines() {
            transcript.push_str(&format!("{stream}: {line}\n"));
        }
    }
    Ok(())
}

/// `name = value` lines for the host half.
struct Facts(String);

impl Facts {
    fn add(&mut self, name: &str, value: impl std::fmt::Display) {
        self.0.push_str(&format!("{name} = {value}\n"));
    }
}

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let mut facts = Facts(String::new());
    let info = dom0.run("xl", &["info"])?;
    let caps = info
        .lines()
        .find_map(|line| line.strip_prefix("xen_caps"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, caps)| caps.trim().to_string())
        .context("xl info has no xen_caps")?;
    facts.add("xen_caps", &caps);
    if !caps.split_whitespace().any(|cap| cap == "xen-3.0-x86_32p") {
        dom0.save("facts.txt", &facts.0)?;
        bail!(
            "Xen runs no 32-bit PV guest (xen_caps: {caps}): it needs CONFIG_PV32 \
             (xtask/src/xen_build.rs), no pv=no-32 and no CET (see xl dmesg)"
        );
    }

    let privcmd = Privcmd::open()?;
    let guest = Guest::create_from_xl(dom0, GUEST, &xl_config())?;
    let mut transcript = String::new();
    let result = (|| -> Result<()> {
        let domid = resolve_domain(GUEST)?;
        facts.add("address_size", address_size(&privcmd, domid)?);
        let (state, before) = xl_state(dom0)?;
        std::thread::sleep(Duration::from_secs(2));
        let (_, after) = xl_state(dom0)?;
        facts.add("state_before", state);
        facts.add("cpu_seconds_grew", after > before);

        match monitor_enable(&privcmd, domid) {
            Ok(port) => facts.add("libxc_enable", format!("ok port {}", port.0)),
            Err(error) => {
                facts.add(
                    "libxc_enable_errno",
                    error.errno.map_or("none".into(), |e| format!("{e:?}")),
                );
                facts.add("libxc_enable_error", error);
            }
        }
        listener(&mut transcript, &["enable"])?;
        let trace = dom0.dir().join("trace.jsonl");
        let trace_arg = trace.to_string_lossy().into_owned();
        listener(
            &mut transcript,
            &["monitor", "--timeout", "5", "--output", &trace_arg],
        )?;
        let trace_text = std::fs::read_to_string(&trace).unwrap_or_default();
        facts.add("trace_lines", trace_text.lines().count());
        listener(&mut transcript, &["status"])?;
        facts.add("shadow_pool_mib", shadow_allocation_mib(&privcmd, domid)?);
        match monitor_attach(&privcmd, domid) {
            Ok(port) => facts.add("attach", format!("ok port {}", port.0)),
            Err(error) => facts.add(
                "attach_errno",
                error.errno.map_or("none".into(), |e| format!("{e:?}")),
            ),
        }
        let (state, _) = xl_state(dom0)?;
        facts.add("state_after", state);
        Ok(())
    })();
    dom0.save("transcript.txt", &transcript)?;
    dom0.save("facts.txt", &facts.0)?;
    dom0.save("state.txt", dom0.run("xl", &["list"])?)?;
    guest.destroy(Duration::from_secs(30))?;
    result
}

/// The facts' value of `name`.
fn fact<'a>(facts: &'a str, name: &str) -> Result<&'a str> {
    facts
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(" = "))
        .with_context(|| format!("facts.txt has no {name}: {facts}"))
}

/// The recorded run of `listener COMMAND ...`: its exit status and its stdout and stderr
/// lines.
fn command<'a>(transcript: &'a str, command: &str) -> Result<(&'a str, Vec<&'a str>)> {
    let mut lines = transcript.lines();
    lines
        .find(|line| {
            line.strip_prefix("$ listener ")
                .and_then(|rest| rest.strip_prefix(command))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
        })
        .with_context(|| format!("the transcript has no `listener {command}`"))?;
    let status = lines
        .next()
        .and_then(|line| line.strip_prefix("exit "))
        .with_context(|| format!("no exit status after `listener {command}`"))?;
    let output = lines.take_while(|line| !line.starts_with("$ ")).collect();
    Ok((status, output))
}

/// Whether an `xl list` state (`rbpsRd`) is a domain running or blocked: not paused, shut
/// down or dying.
fn running(state: &str) -> bool {
    state.len() == 6 && &state[2..] == "----"
}

/// The words every refusal must carry: libxc-rs's explanation of EOPNOTSUPP.
fn check_refusal(what: &str, text: &str) -> Result<()> {
    ensure!(
        text.contains("32-bit") && text.contains("EOPNOTSUPP"),
        "{what} does not explain the refusal of a 32-bit guest: {text}"
    );
    Ok(())
}

fn on_host(view: &HostView) -> Result<()> {
    let facts = view.read("facts.txt")?;
    ensure!(
        fact(&facts, "xen_caps")?.contains("xen-3.0-x86_32p"),
        "Xen offers no 32-bit PV guests: {facts}"
    );
    ensure!(
        fact(&facts, "address_size")? == "32",
        "the guest is not a 32-bit PV domain: {facts}"
    );
    let state = fact(&facts, "state_before")?;
    ensure!(
        running(state),
        "the 32-bit guest did not keep running (state {state})"
    );
    ensure!(
        fact(&facts, "cpu_seconds_grew")? == "true",
        "the 32-bit guest did not run (its CPU time stood still)"
    );

    // libxc-rs, directly.
    ensure!(
        fact(&facts, "libxc_enable_errno")? == "EOPNOTSUPP",
        "monitor_enable on a 32-bit guest: {facts}"
    );
    check_refusal(
        "monitor_enable's error",
        fact(&facts, "libxc_enable_error")?,
    )?;

    // The listener, as a person runs it.
    let transcript = view.read("transcript.txt")?;
    for name in ["enable", "monitor"] {
        let (status, output) = command(&transcript, name)?;
        ensure!(
            status == "1",
            "`listener {name}` on a 32-bit guest exited {status}: {output:?}"
        );
        let stderr: Vec<&str> = output
            .iter()
            .filter_map(|line| line.strip_prefix("stderr: "))
            .collect();
        check_refusal(&format!("`listener {name}`"), &stderr.join("\n"))?;
        ensure!(
            !output
                .iter()
                .any(|line| line.starts_with("stdout: ") && line.contains("enabled")),
            "`listener {name}` says monitoring was enabled: {output:?}"
        );
    }
    ensure!(
        fact(&facts, "trace_lines")? == "0",
        "`listener monitor` wrote a trace for a guest it could not monitor"
    );

    // Nothing left behind.
    let (status, output) = command(&transcript, "status")?;
    ensure!(
        status == "0",
        "`listener status` exited {status}: {output:?}"
    );
    ensure!(
        output
            .iter()
            .any(|line| line.starts_with("stdout: domain ") && line.ends_with(": monitoring off")),
        "`listener status` does not say monitoring off: {output:?}"
    );
    ensure!(
        output.contains(&"stdout: shadow pool: 0 MiB"),
        "the refused guest kept a shadow pool: {output:?}"
    );
    ensure!(
        fact(&facts, "shadow_pool_mib")? == "0",
        "shadow pool after the refusals: {facts}"
    );
    ensure!(
        fact(&facts, "attach_errno")? == "ENODEV",
        "a monitor ring is left after the refusals: {facts}"
    );
    let state = fact(&facts, "state_after")?;
    ensure!(
        running(state),
        "the 32-bit guest stopped after the refusals (state {state})"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_found_with_their_status_and_output() {
        let transcript = "$ listener enable\nexit 1\nstderr: listener: no\n\
                          $ listener monitor --timeout 5 --output /out/t\nexit 1\n\
                          stderr: warning\nstderr: listener: no\n$ listener status\nexit 0\n\
                          stdout: domain 3: monitoring off\n";
        let (status, output) = command(transcript, "enable").unwrap();
        assert_eq!((status, output), ("1", vec!["stderr: listener: no"]));
        let (status, output) = command(transcript, "monitor").unwrap();
        assert_eq!(status, "1");
        assert_eq!(output.len(), 2);
        let (status, output) = command(transcript, "status").unwrap();
        assert_eq!((status, output.len()), ("0", 1));
        assert!(command(transcript, "disable").is_err());
        assert!(command(transcript, "mon").is_err());
    }

    #[test]
    fn only_running_or_blocked_domains_run() {
        assert!(running("r-----"));
        assert!(running("-b----"));
        assert!(!running("--p---"));
        assert!(!running("---sc-"));
        assert!(!running("-----d"));
        assert!(!running(""));
    }

    /// What the first passing run in the nested Xen recorded.
    const FACTS: &str = r#"xen_caps = xen-3.0-x86_64 xen-3.0-x86_32p hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64
address_size = 32
state_before = r-----
cpu_seconds_grew = true
libxc_enable_errno = EOPNOTSUPP
libxc_enable_error = XEN_DOMCTL_vm_event_op(ENABLE, MONITOR) on domain 2 failed: Xen cannot monitor this domain: PV mem_access covers 64-bit PV guests (32-bit ones are refused), HVM needs the domain's monitor ring page (EOPNOTSUPP: Operation not supported on transport endpoint)
trace_lines = 0
shadow_pool_mib = 0
attach_errno = ENODEV
state_after = r-----
"#;
    const TRANSCRIPT: &str = r#"$ listener enable
exit 1
stderr: listener: XEN_DOMCTL_vm_event_op(ENABLE, MONITOR) on domain 2 failed: Xen cannot monitor this domain: PV mem_access covers 64-bit PV guests (32-bit ones are refused), HVM needs the domain's monitor ring page (EOPNOTSUPP: Operation not supported on transport endpoint)
$ listener monitor --timeout 5 --output /out/abi/pv32-refused/trace.jsonl
exit 1
stderr: listener: warning: reading the P2M of domain 2 failed: the guest published no usable P2M (max_pfn 0x0, frame list list 0x0): events will have a null pfn
stderr: listener: XEN_DOMCTL_vm_event_op(ENABLE, MONITOR) on domain 2 failed: Xen cannot monitor this domain: PV mem_access covers 64-bit PV guests (32-bit ones are refused), HVM needs the domain's monitor ring page (EOPNOTSUPP: Operation not supported on transport endpoint)
$ listener status
exit 0
stdout: domain 2: monitoring off
stdout: shadow pool: 0 MiB
stdout: monitor events: mem_access
"#;

    /// Runs the host half on a copy of those results with `change` applied to one file.
    fn host_half(file: &str, change: impl Fn(&str) -> String) -> Result<()> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static RUNS: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xtask-pv32-refused-{}-{}",
            std::process::id(),
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        for (name, text) in [("facts.txt", FACTS), ("transcript.txt", TRANSCRIPT)] {
            let text = if name == file {
                change(text)
            } else {
                text.to_string()
            };
            std::fs::write(dir.join(name), text)?;
        }
        let view = HostView {
            serial_log: dir.join("serial.log"),
            dir: dir.clone(),
        };
        let result = on_host(&view);
        std::fs::remove_dir_all(&dir)?;
        result
    }

    #[test]
    fn the_host_half_passes_the_recorded_run_and_fails_changed_ones() {
        host_half("", str::to_string).unwrap();
        let fails = |file: &str, from: &str, to: &str| {
            let error = host_half(file, |text| {
                assert!(text.contains(from), "the recorded {file} has no {from:?}");
                text.replace(from, to)
            });
            assert!(error.is_err(), "{file}: {from} -> {to} passed");
        };
        fails("facts.txt", "address_size = 32", "address_size = 64");
        fails("facts.txt", "attach_errno = ENODEV", "attach = ok port 5");
        fails("facts.txt", "shadow_pool_mib = 0", "shadow_pool_mib = 2");
        fails("facts.txt", "state_after = r-----", "state_after = ---sc-");
        fails(
            "facts.txt",
            "libxc_enable_errno = EOPNOTSUPP",
            "libxc_enable_errno = EINVAL",
        );
        fails("transcript.txt", "exit 1", "exit 0");
        fails("transcript.txt", "(32-bit ones", "(ones");
        fails("transcript.txt", ": monitoring off", ": monitoring on");
    }
}
