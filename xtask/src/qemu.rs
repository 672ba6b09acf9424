//! Booting the nested system: Xen (our build) with Debian's dom0 kernel and our initramfs,
//! under QEMU with TCG (KVM cannot run Xen on these machines), watched the whole time.
//!
//! The watchdog reads the serial log as it grows. It ends QEMU on a Xen panic, an assertion,
//! a BUG, a fatal trap or a dom0 oops, on the overall deadline, and when dom0 does not reach
//! userspace in time (then it first asks Xen for a state dump through debug keys, so the hang
//! can be diagnosed). QEMU is killed when the handle is dropped, whatever happened: it is
//! never left running. Dom0 ends a normal run by writing to the isa-debug-exit port.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Dom0's kernel command line; everything after `--` goes to init (the agent).
const DOM0_CMDLINE: &str = "console=hvc0 earlyprintk=xen rdinit=/usr/bin/xtask -- dom0-agent";
const XEN_CMDLINE: &str = "console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M \
    dom0_max_vcpus=2 loglvl=all guest_loglvl=all console_timestamps=boot conring_size=1m";

/// Lines on the serial console that mean Xen or dom0 is broken.
const CRASH_MARKERS: &[&str] = &[
    "Panic on CPU",
    "Assertion '",
    "FATAL PAGE FAULT",
    "FATAL TRAP",
    "Xen BUG at",
    "Kernel panic - not syncing",
    "BUG: ",
    "Oops: ",
    "general protection fault:",
    "Reboot in five seconds",
];

/// The line the agent prints first, proving dom0 reached userspace.
pub const USERSPACE_MARKER: &str = "E2E-PHASE dom0-userspace";
/// Dom0 normally reaches userspace in 13-20 s under TCG.
const BOOT_DEADLINE: Duration = Duration::from_secs(150);
/// isa-debug-exit makes QEMU exit with (value << 1) | 1.
pub const EXIT_AGENT_COMPLETED: i32 = (0x10 << 1) | 1;
pub const EXIT_AGENT_FAILED: i32 = (0x11 << 1) | 1;

pub struct Machine<'a> {
    pub xen: &'a Path,
    pub dom0_kernel: &'a Path,
    pub dom0_initramfs: &'a Path,
    pub exchange_disk: &'a Path,
    /// Where the serial log, QEMU's own output and its command line go.
    pub run_dir: &'a Path,
    pub timeout: Option<Duration>,
    /// The serial line on this terminal (a dom0 shell) instead of a socket.
    pub interactive: bool,
}

/// How a boot ended.
#[derive(Debug)]
pub enum Ending {
    /// The agent wrote to the exit port; `completed` is false when it reported failure.
    Agent { completed: bool },
    /// The watchdog stopped QEMU.
    Stopped { reason: String, boot_hang: bool },
    /// QEMU exited by itself in some other way.
    QemuExited { code: Option<i32> },
}

pub struct Boot {
    pub ending: Ending,
    pub serial_log: PathBuf,
}

/// Kills QEMU when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Machine<'_> {
    fn command(&self, serial_log: &Path, socket: &Path) -> Command {
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args(["-machine", "q35", "-accel", "tcg", "-cpu", "qemu64"])
            .args(["-m", "3072", "-smp", "2", "-display", "none", "-no-reboot"]);
        let log = serial_log.display();
        if self.interactive {
            qemu.args(["-monitor", "none"])
                .arg("-chardev")
                .arg(format!("stdio,id=ser0,signal=off,logfile={log}"));
        } else {
            qemu.args(["-monitor", "none"]).arg("-chardev").arg(format!(
                "socket,id=ser0,path={},server=on,wait=off,logfile={log}",
                socket.display()
            ));
        }
        qemu.args(["-serial", "chardev:ser0"])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
            .arg("-drive")
            .arg(format!(
                "file={},format=raw,if=none,id=exchange",
                self.exchange_disk.display()
            ))
            .args(["-device", "virtio-blk-pci,drive=exchange"])
            .arg("-kernel")
            .arg(self.xen)
            .args(["-append", XEN_CMDLINE])
            .arg("-initrd")
            .arg(format!(
                "{} {DOM0_CMDLINE},{}",
                self.dom0_kernel.display(),
                self.dom0_initramfs.display()
            ));
        qemu
    }

    /// Boots once and watches until the end; `on_line` sees every serial line.
    pub fn boot(&self, mut on_line: impl FnMut(&str)) -> Result<Boot> {
        std::fs::create_dir_all(self.run_dir)?;
        let serial_log = self.run_dir.join("serial.log");
        let socket = self.run_dir.join("serial.sock");
        let _ = std::fs::remove_file(&socket);
        std::fs::write(&serial_log, b"")?;
        let mut command = self.command(&serial_log, &socket);
        let shown = format!("{command:?}");
        std::fs::write(self.run_dir.join("qemu-cmdline.txt"), &shown)?;
        if self.interactive {
            command.stdin(Stdio::inherit()).stdout(Stdio::inherit());
        } else {
            let log = std::fs::File::create(self.run_dir.join("qemu.log"))?;
            command
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
        }
        let start = Instant::now();
        let mut qemu = Running(command.spawn().context("starting qemu-system-x86_64")?);
        let mut reader = SerialReader::new(&serial_log);
        let mut userspace = false;
        let ending = loop {
            std::thread::sleep(Duration::from_millis(250));
            let mut crash = None;
            for line in reader.new_lines()? {
                userspace |= line.contains(USERSPACE_MARKER);
                if crash.is_none() && CRASH_MARKERS.iter().any(|m| line.contains(m)) {
                    crash = Some(line.clone());
                }
                on_line(&line);
            }
            if let Some(exit) = qemu.0.try_wait()? {
                // Flush the last lines before judging.
                for line in reader.new_lines()? {
                    on_line(&line);
                }
                break match exit.code() {
                    Some(EXIT_AGENT_COMPLETED) => Ending::Agent { completed: true },
                    Some(EXIT_AGENT_FAILED) => Ending::Agent { completed: false },
                    code => Ending::QemuExited { code },
                };
            }
            if let Some(line) = crash {
                // Let the rest of the message reach the log before stopping the machine.
                std::thread::sleep(Duration::from_secs(2));
                let mut context = vec![line.trim().to_string()];
                for more in reader.new_lines()?.into_iter().take(3) {
                    on_line(&more);
                    context.push(more.trim().to_string());
                }
                break Ending::Stopped {
                    reason: format!("crash on the serial console: {}", context.join(" | ")),
                    boot_hang: false,
                };
            }
            let elapsed = start.elapsed();
            if let Some(limit) = self.timeout {
                if elapsed > limit {
                    self.dump_state(&socket);
                    break Ending::Stopped {
                        reason: format!("time-out: the run took more than {}s", limit.as_secs()),
                        boot_hang: false,
                    };
                }
            }
            if !userspace && !self.interactive && elapsed > BOOT_DEADLINE {
                self.dump_state(&socket);
                break Ending::Stopped {
                    reason: format!(
                        "dom0 did not reach userspace in {}s (Xen state dumped to the serial log)",
                        BOOT_DEADLINE.as_secs()
                    ),
                    boot_hang: true,
                };
            }
        };
        drop(qemu);
        for line in reader.new_lines()? {
            on_line(&line);
        }
        Ok(Boot { ending, serial_log })
    }

    /// Asks Xen for its state through debug keys on the serial line (Ctrl-A three times
    /// switches input to Xen): `0` dom0's vCPUs, `d` every CPU's registers and stack, `q` the
    /// domains.
    fn dump_state(&self, socket: &Path) {
        if self.interactive {
            return;
        }
        let Ok(mut serial) = UnixStream::connect(socket) else {
            return;
        };
        let _ = serial.write_all(b"\x01\x01\x01");
        for key in [b"0", b"d", b"q"] {
            std::thread::sleep(Duration::from_millis(700));
            let _ = serial.write_all(key);
        }
        std::thread::sleep(Duration::from_secs(3));
    }
}

/// Reads whole lines appended to the serial log since the last call.
struct SerialReader {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl SerialReader {
    fn new(path: &Path) -> SerialReader {
        SerialReader {
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
        }
    }

    fn new_lines(&mut self) -> Result<Vec<String>> {
        let mut file = std::fs::File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            lines.push(text.trim_end_matches(['\r', '\n']).to_string());
        }
        Ok(lines)
    }
}
