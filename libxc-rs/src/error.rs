//! Errors: the operation that failed, the errno Xen or the kernel gave, and a human reason.

use std::fmt;

use nix::errno::Errno;

/// A failed operation on Xen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What was attempted, e.g. `XEN_DOMCTL_vm_event_op(ENABLE, monitor)`.
    pub operation: String,
    /// The errno Xen or the kernel gave, when the failure carried one (compare with
    /// `Errno::EBUSY` and friends rather than numbers).
    pub errno: Option<Errno>,
    /// What it means here, for a person.
    pub reason: String,
}

impl Error {
    /// An error from a system call or hypercall that returned `errno`.
    pub fn from_errno(operation: impl Into<String>, errno: Errno) -> Error {
        Error {
            operation: operation.into(),
            errno: Some(errno),
            reason: errno.desc().to_string(),
        }
    }

    /// An error from the standard library's I/O (opening a device, reading it), with the
    /// errno it carried if any, and `hint` added to its reason.
    pub fn from_io(operation: impl Into<String>, error: &std::io::Error, hint: &str) -> Error {
        Error {
            operation: operation.into(),
            errno: error.raw_os_error().map(Errno::from_raw),
            reason: format!("{error}{hint}"),
        }
    }

    /// Whether the failure carried `errno`.
    pub fn is(&self, errno: Errno) -> bool {
        self.errno == Some(errno)
    }

    /// An error found before anything was asked of Xen (bad argument, wrong layout).
    pub fn invalid(operation: impl Into<String>, reason: impl Into<String>) -> Error {
        Error {
            operation: operation.into(),
            errno: None,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errno {
            Some(errno) => write!(f, "{} failed: {} ({})", self.operation, self.reason, errno),
            None => write!(f, "{} failed: {}", self.operation, self.reason),
        }
    }
}

impl std::error::Error for Error {}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
