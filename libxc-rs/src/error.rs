//! Errors: the operation that failed, the errno Xen or the kernel gave, and a human reason.

use std::fmt;

/// A failed operation on Xen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What was attempted, e.g. `XEN_DOMCTL_vm_event_op(ENABLE, monitor)`.
    pub operation: String,
    /// The positive errno value (`EPERM` = 1 ...), when the failure carried one.
    pub errno: Option<i32>,
    /// What it means here, for a person.
    pub reason: String,
}

impl Error {
    /// An error from a system call or hypercall that returned `errno`.
    pub fn from_errno(operation: impl Into<String>, errno: nix::errno::Errno) -> Error {
        Error {
            operation: operation.into(),
            errno: Some(errno as i32),
            reason: errno.desc().to_string(),
        }
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
            Some(errno) => write!(
                f,
                "{} failed: {} ({})",
                self.operation,
                self.reason,
                nix::errno::Errno::from_raw(errno)
            ),
            None => write!(f, "{} failed: {}", self.operation, self.reason),
        }
    }
}

impl std::error::Error for Error {}

/// Results of this crate.
pub type Result<T> = std::result::Result<T, Error>;
