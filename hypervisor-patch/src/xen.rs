//! Safe wrappers over the services Xen's C glue gives the module (see [`crate::ffi`]).

use crate::ffi;

/// `bytes` of zeroed memory from Xen's allocator, or null.
pub fn alloc_zeroed(bytes: usize) -> *mut u8 {
    // SAFETY: the glue only allocates; any size is accepted (0 or too large gives null).
    unsafe { ffi::pvma_glue_alloc(bytes) }
}

/// Returns memory [`alloc_zeroed`] gave (null is ignored).
///
/// # Safety
///
/// `ptr` is null or came from [`alloc_zeroed`], and nothing uses that memory any more.
pub unsafe fn free(ptr: *mut u8) {
    // SAFETY: as the caller promises; Xen's xfree ignores null.
    unsafe { ffi::pvma_glue_free(ptr) }
}

/// Logs `message` on Xen's console (at the default level), followed by up to four numbers
/// in hexadecimal. No formatting happens in Rust: the glue's `printk` does it.
pub fn log(message: &str, numbers: &[u64]) {
    let count = numbers.len().min(ffi::LOG_MAX_NUMBERS);
    // SAFETY: both pointers come from live slices and are read for the lengths given, during
    // the call only; the glue never keeps them.
    unsafe { ffi::pvma_glue_log(message.as_ptr(), message.len(), numbers.as_ptr(), count) }
}
