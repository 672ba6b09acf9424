//! `/dev/xen/evtchn`: event channels between dom0 and Xen's side of a ring, as libxenevtchn
//! uses the device. Reading the device yields the ports that fired (as `u32`s); writing a port
//! back unmasks it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use crate::error::{Error, Result};
use crate::ioctl::{
    evtchn_bind_interdomain, evtchn_notify, evtchn_unbind, EvtchnBindInterdomain, EvtchnPortArg,
};
use crate::DomId;

/// An event channel port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EvtchnPort(pub u32);

/// An open event-channel device; ports bound through it are closed with it.
pub struct Evtchn {
    file: File,
}

impl Evtchn {
    /// Opens `/dev/xen/evtchn`.
    pub fn open() -> Result<Evtchn> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/xen/evtchn")
            .map_err(|error| {
                Error::from_io("open /dev/xen/evtchn", &error, " (is xen-evtchn loaded?)")
            })?;
        Ok(Evtchn { file })
    }

    /// Makes [`Evtchn::pending`] fail with `EAGAIN` instead of waiting, for an event loop that
    /// waits on the file descriptor itself.
    pub fn set_nonblocking(&self) -> Result<()> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = fcntl(self.file.as_raw_fd(), FcntlArg::F_GETFL)
            .map_err(|errno| Error::from_errno("fcntl(F_GETFL) /dev/xen/evtchn", errno))?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(self.file.as_raw_fd(), FcntlArg::F_SETFL(flags))
            .map_err(|errno| Error::from_errno("fcntl(F_SETFL) /dev/xen/evtchn", errno))?;
        Ok(())
    }

    /// Binds a local port to `remote_port` of `domain`; returns the local port.
    pub fn bind_interdomain(&self, domain: DomId, remote_port: EvtchnPort) -> Result<EvtchnPort> {
        let argument = EvtchnBindInterdomain {
            remote_domain: u32::from(domain.0),
            remote_port: remote_port.0,
        };
        // SAFETY: the event-channel device and its request's argument, alive for the call.
        let port = unsafe { evtchn_bind_interdomain(self.file.as_raw_fd(), &argument) }
            .map_err(|errno| Error::from_errno("IOCTL_EVTCHN_BIND_INTERDOMAIN", errno))?;
        // Not negative: Linux returns a negative result as the errno.
        Ok(EvtchnPort(port as u32))
    }

    /// Closes a local port.
    pub fn unbind(&self, port: EvtchnPort) -> Result<()> {
        let argument = EvtchnPortArg { port: port.0 };
        // SAFETY: the event-channel device and its request's argument, alive for the call.
        unsafe { evtchn_unbind(self.file.as_raw_fd(), &argument) }
            .map(drop)
            .map_err(|errno| Error::from_errno("IOCTL_EVTCHN_UNBIND", errno))
    }

    /// Signals the other end of a local port.
    pub fn notify(&self, port: EvtchnPort) -> Result<()> {
        let argument = EvtchnPortArg { port: port.0 };
        // SAFETY: the event-channel device and its request's argument, alive for the call.
        unsafe { evtchn_notify(self.file.as_raw_fd(), &argument) }
            .map(drop)
            .map_err(|errno| Error::from_errno("IOCTL_EVTCHN_NOTIFY", errno))
    }

    /// Waits for (or, if the fd is readable, takes) the next port that fired.
    pub fn pending(&self) -> Result<EvtchnPort> {
        let mut bytes = [0u8; 4];
        (&self.file)
            .read_exact(&mut bytes)
            .map_err(|error| io_error("read /dev/xen/evtchn", error))?;
        Ok(EvtchnPort(u32::from_ne_bytes(bytes)))
    }

    /// Unmasks a port after its event was handled, so it can fire again.
    pub fn unmask(&self, port: EvtchnPort) -> Result<()> {
        (&self.file)
            .write_all(&port.0.to_ne_bytes())
            .map_err(|error| io_error("write /dev/xen/evtchn", error))
    }
}

impl AsFd for Evtchn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

fn io_error(operation: &str, error: std::io::Error) -> Error {
    Error::from_io(operation, &error, "")
}
