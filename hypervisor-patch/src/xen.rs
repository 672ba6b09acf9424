//! Safe wrappers over the services Xen's C glue gives the module (see [`crate::ffi`]).

use crate::ffi;

/// Logs `message` on Xen's console (at the default level), followed by up to four numbers
/// in hexadecimal. No formatting happens in Rust: the glue's `printk` does it.
pub fn log(message: &str, numbers: &[u64]) {
    let count = numbers.len().min(ffi::LOG_MAX_NUMBERS);
    // SAFETY: both pointers come from live slices and are read for the lengths given, during
    // the call only; the glue never keeps them.
    unsafe { ffi::pvma_glue_log(message.as_ptr(), message.len(), numbers.as_ptr(), count) }
}
