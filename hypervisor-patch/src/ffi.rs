//! The C boundary. Xen calls the `pvma_*` functions exported here directly (never through a
//! function pointer: Xen runs with CET-IBT); the module calls the `pvma_glue_*` services of
//! `xen/arch/x86/mm/pv-mem-access/glue.c`. Every declaration here has its twin in
//! `xen/arch/x86/include/asm/pv-mem-access.h` (added by the patch series); a host test
//! compares the two so they cannot drift.
//!
//! Each exported function is a thin trampoline over safe Rust.

use crate::access::{validate_for_pv, PageAccess};
use crate::{Errno, BANNER};

/// How many numbers [`pvma_glue_log`] prints at most.
pub const LOG_MAX_NUMBERS: usize = 4;

extern "C" {
    /// Prints `length` bytes of `message`, then `count` numbers from `numbers` (at most
    /// [`LOG_MAX_NUMBERS`]) in hexadecimal, on one console line.
    pub fn pvma_glue_log(message: *const u8, length: usize, numbers: *const u64, count: usize);

    /// Panics Xen, naming the Rust file and line that panicked.
    pub fn pvma_glue_panic(file: *const u8, length: usize, line: u32) -> !;
}

/// Called once from Xen's initcalls: announces the module on the console.
#[no_mangle]
pub extern "C" fn pvma_module_init() {
    crate::xen::log(BANNER, &[]);
}

/// `XENMEM_access_op` for a PV domain: the `p2m_access_t` a raw `xenmem_access_t` stands for
/// (`default` resolved to `domain_default`, itself a `p2m_access_t`), or a negative errno.
#[no_mangle]
pub extern "C" fn pvma_check_access(access: u32, domain_default: u32) -> i32 {
    let Some(domain_default) = PageAccess::from_p2m(domain_default) else {
        return Errno::EINVAL.to_raw();
    };
    match validate_for_pv(access, domain_default) {
        Ok(access) => access as i32,
        Err(errno) => errno.to_raw(),
    }
}

/// A Rust panic becomes a Xen panic naming the file and line. The message is dropped: it
/// would need `core::fmt`.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let (file, line) = match info.location() {
        Some(location) => (location.file(), location.line()),
        None => ("<unknown>", 0),
    };
    // SAFETY: `file` is a live string for the call; the glue only reads it and never
    // returns.
    unsafe { pvma_glue_panic(file.as_ptr(), file.len(), line) }
}
