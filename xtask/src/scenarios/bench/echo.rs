//! The floor any event through dom0 pays: a dom0 process that answers each notification
//! from the guest's event channel with one back, and nothing else. The guest times the
//! round trips (`pattern=bench-pingpong`); a sync mem_access event is the same trip plus
//! the ring and the listener's work.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use libxc::evtchn::{Evtchn, EvtchnPort};
use libxc::DomId;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// An echo thread bound to one of a guest's ports; stops when dropped.
pub struct Echo {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<u64>>>,
}

impl Echo {
    /// Binds to `port` of `domain` (an unbound port the guest allocated for dom0) and echoes
    /// every notification.
    pub fn start(domain: DomId, port: u32) -> Result<Echo> {
        let evtchn = Evtchn::open()?;
        let local = evtchn.bind_interdomain(domain, EvtchnPort(port))?;
        // Binding marks the new local port pending once: take that notification without
        // answering it, or a late answer could end the guest's first round early.
        let mut fds = [PollFd::new(evtchn.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(1000u16)).context("poll /dev/xen/evtchn")? > 0 {
            let port = evtchn.pending()?;
            evtchn.unmask(port)?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || echo(&evtchn, local, &stopping));
        Ok(Echo {
            stop,
            thread: Some(thread),
        })
    }

    fn finish(&mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow::anyhow!("the echo thread panicked"))?,
            None => Ok(0),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Blocks in `read` for the next notification (the fastest wake-up dom0 has), answers it,
/// and looks at `stop` at least every 100 ms.
fn echo(evtchn: &Evtchn, local: EvtchnPort, stop: &AtomicBool) -> Result<u64> {
    let mut answered = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(evtchn.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(100u16)).context("poll /dev/xen/evtchn")?;
        if ready == 0 {
            continue;
        }
        let port = evtchn.pending()?;
        evtchn.unmask(port)?;
        evtchn.notify(local)?;
        answered += 1;
    }
    Ok(answered)
}

/// The port of the guest's [`ECHO-PORT`](test_guest::bench_ops::EchoPort) line.
pub fn echo_port(console: &str) -> Result<u32> {
    use test_guest::lines::Line;
    Ok(test_guest::bench_ops::EchoPort::find(console)
        .context("no ECHO-PORT line")?
        .port)
}
