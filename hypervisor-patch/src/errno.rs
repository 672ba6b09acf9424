//! Errors as Xen's hypercalls return them: a negative errno.

/// A negative errno value, as Xen's hypercalls return them (`xen/include/public/errno.h`).
///
/// # Invariants
///
/// The value is negative: it is only built from the named constants.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
pub struct Errno(i32);

impl Errno {
    /// `-ENOENT` (2): no such entry.
    pub const ENOENT: Errno = Errno(-2);
    /// `-EAGAIN` (11): try again (after a refill).
    pub const EAGAIN: Errno = Errno(-11);
    /// `-ENOMEM` (12): out of memory.
    pub const ENOMEM: Errno = Errno(-12);
    /// `-EINVAL` (22): invalid argument.
    pub const EINVAL: Errno = Errno(-22);
    /// `-EOPNOTSUPP` (95): operation not supported.
    pub const EOPNOTSUPP: Errno = Errno(-95);

    /// The raw negative value, for the `extern "C"` trampoline that returns it to Xen.
    pub const fn to_raw(self) -> i32 {
        self.0
    }
}
