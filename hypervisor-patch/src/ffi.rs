//! The C boundary. Xen calls the `pvma_*` functions exported here directly (never through a
//! function pointer: Xen runs with CET-IBT); the module calls the `pvma_glue_*` services of
//! `xen/arch/x86/mm/pv-mem-access/glue.c`. Every declaration here has its twin in
//! `xen/arch/x86/include/asm/pv-mem-access.h` (added by the patch series); a host test
//! compares the two so they cannot drift.
//!
//! Each exported function is a thin trampoline over safe Rust. Those that take a
//! `struct pvma_tracker *` are `unsafe`: they trust C with that pointer; C sees no
//! difference, the symbols and their ABI are the same.
//!
//! # Tracker pointers
//!
//! What every `pvma_tracker_*` function taking a `struct pvma_tracker *tracker` requires of
//! C, which `asm/pv-mem-access.h` asks for and `glue.c` does: `tracker` is null, or points
//! to [`pvma_tracker_size`] bytes that C allocated zeroed and 8-byte aligned (an empty
//! tracker), that only these functions have written since, and that are not freed; and C
//! holds the tracker's lock for the whole call, so nothing else reads or writes the state
//! meanwhile.

use crate::access::{fault_action, validate_for_pv, AccessKind, PageAccess};
use crate::domain_tracker::{self, TrackerState};
use crate::{Errno, BANNER};

/// How many numbers [`pvma_glue_log`] prints at most.
pub const LOG_MAX_NUMBERS: usize = 4;

extern "C" {
    /// Prints `length` bytes of `message`, then `count` numbers from `numbers` (at most
    /// [`LOG_MAX_NUMBERS`]) in hexadecimal, on one console line.
    pub fn pvma_glue_log(message: *const u8, length: usize, numbers: *const u64, count: usize);

    /// Zeroed memory from Xen's allocator (cache-line aligned), or null.
    pub fn pvma_glue_alloc(bytes: usize) -> *mut u8;

    /// Frees memory from [`pvma_glue_alloc`].
    pub fn pvma_glue_free(ptr: *mut u8);
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

/// One guest access that faulted on a page whose access is `access` (a `p2m_access_t`),
/// classified by its x86 page-fault `error_code`: the action (`PVMA_FAULT_*`) in bits 0-7,
/// the page's access afterwards in bits 8-15. An access value Xen never stores is treated as
/// `n` (the most restrictive).
#[no_mangle]
pub extern "C" fn pvma_fault_decide(
    access: u32,
    error_code: u32,
    listener: bool,
    access_required: bool,
) -> u32 {
    let access = PageAccess::from_p2m(access).unwrap_or(PageAccess::N);
    let kind = AccessKind::from_pf_error_code(error_code);
    let (action, after) = fault_action(access, kind, listener, access_required);
    action as u32 | (after as u32) << 8
}

/// `PVMA_L1_PRESENT`: the shadow L1 entry may be present.
pub const L1_PRESENT: u32 = 1 << 0;
/// `PVMA_L1_WRITABLE`: the shadow L1 entry may be writable.
pub const L1_WRITABLE: u32 = 1 << 1;
/// `PVMA_L1_NO_EXECUTE`: the shadow L1 entry must be no-execute.
pub const L1_NO_EXECUTE: u32 = 1 << 2;

/// The shadow L1 permissions that enforce `access` (a `p2m_access_t`): `PVMA_L1_*` bits. An
/// access value Xen never stores gets the most restrictive bits.
#[no_mangle]
pub extern "C" fn pvma_l1_rights(access: u32) -> u32 {
    let bits = PageAccess::from_p2m(access)
        .unwrap_or(PageAccess::N)
        .l1_bits();
    let flag = |on: bool, bit: u32| if on { bit } else { 0 };
    flag(bits.present, L1_PRESENT)
        | flag(bits.writable, L1_WRITABLE)
        | flag(bits.no_execute, L1_NO_EXECUTE)
}

/// Bytes C allocates (zeroed) for one domain's `struct pvma_tracker`.
#[no_mangle]
pub extern "C" fn pvma_tracker_size() -> usize {
    domain_tracker::SIZE
}

/// The state behind a `struct pvma_tracker *`, or `None` for null.
///
/// # Safety
///
/// `tracker` is as the module's [tracker pointers](self#tracker-pointers) say, for all of
/// `'a` (one call from C).
unsafe fn state<'a>(tracker: *mut TrackerState) -> Option<&'a mut TrackerState> {
    // SAFETY: null or a valid, aligned state no one else uses during the call (the
    // caller's promise): the only reference to it while `'a` lasts.
    unsafe { tracker.as_mut() }
}

/// 0 or the negative errno of a result.
fn status(result: Result<(), Errno>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(errno) => errno.to_raw(),
    }
}

/// Sets the access (a `p2m_access_t`) of a machine frame, listener context: may allocate.
/// 0, `-ENOMEM` (nothing changed) or `-EINVAL`.
///
/// # Safety
///
/// `tracker` is null or C's live tracker, whose lock C holds for the call: see
/// [tracker pointers](self#tracker-pointers).
#[no_mangle]
pub unsafe extern "C" fn pvma_tracker_set(
    tracker: *mut TrackerState,
    mfn: u64,
    access: u32,
) -> i32 {
    // SAFETY: `tracker` as this function's caller promises (# Safety).
    let (Some(state), Some(access)) = (unsafe { state(tracker) }, PageAccess::from_p2m(access))
    else {
        return Errno::EINVAL.to_raw();
    };
    status(domain_tracker::set(state, mfn, access))
}

/// The fault path's conversion of a machine frame to `access`: never allocates. 0, `-EAGAIN`
/// (the reserve is empty: nothing changed, refill and retry) or `-EINVAL`.
///
/// # Safety
///
/// `tracker` is null or C's live tracker, whose lock C holds for the call: see
/// [tracker pointers](self#tracker-pointers).
#[no_mangle]
pub unsafe extern "C" fn pvma_tracker_relax(
    tracker: *mut TrackerState,
    mfn: u64,
    access: u32,
) -> i32 {
    // SAFETY: `tracker` as this function's caller promises (# Safety).
    let (Some(state), Some(access)) = (unsafe { state(tracker) }, PageAccess::from_p2m(access))
    else {
        return Errno::EINVAL.to_raw();
    };
    status(domain_tracker::relax(state, mfn, access))
}

/// Tops the tracker's reserve up, outside the fault path: 0 or `-ENOMEM`.
///
/// # Safety
///
/// `tracker` is null or C's live tracker, whose lock C holds for the call: see
/// [tracker pointers](self#tracker-pointers).
#[no_mangle]
pub unsafe extern "C" fn pvma_tracker_refill(tracker: *mut TrackerState) -> i32 {
    // SAFETY: `tracker` as this function's caller promises (# Safety).
    let Some(state) = (unsafe { state(tracker) }) else {
        return Errno::EINVAL.to_raw();
    };
    status(state.refill().map_err(domain_tracker::errno))
}

/// The access of a machine frame set since the last default, or `-ENOENT`.
///
/// # Safety
///
/// `tracker` is null or C's live tracker, whose lock C holds for the call: see
/// [tracker pointers](self#tracker-pointers).
#[no_mangle]
pub unsafe extern "C" fn pvma_tracker_get(tracker: *mut TrackerState, mfn: u64) -> i32 {
    // SAFETY: `tracker` as this function's caller promises (# Safety).
    match unsafe { state(tracker) }.map(|state| state.lookup(mfn)) {
        Some(Some(access)) => access as i32,
        Some(None) => Errno::ENOENT.to_raw(),
        None => Errno::EINVAL.to_raw(),
    }
}

/// Forgets a machine frame (it left the domain).
///
/// # Safety
///
/// `tracker` is null or C's live tracker, whose lock C holds for the call: see
/// [tracker pointers](self#tracker-pointers).
#[no_mangle]
pub unsafe extern "C" fn pvma_tracker_forget(tracker: *mut TrackerState, mfn: u64) {
    // SAFETY: `tracker` as this function's caller promises (# Safety).
    if let Some(state) = unsafe { state(tracker) } {
        state.forget(mfn);
    }
}

/// A new default supersedes every per-frame access, in O(1), after the reserve is sized for
/// `frames` pages that may need relaxing (0 for an `rwx` default): 0 or `-ENOMEM` (nothing
/// changed).
///
/// # Safety
///
/// `tracker` is null or C's live tracker, whose lock C holds for the call: see
/// [tracker pointers](self#tracker-pointers).
#[no_mangle]
pub unsafe extern "C" fn pvma_tracker_set_default(tracker: *mut TrackerState, frames: u64) -> i32 {
    // SAFETY: `tracker` as this function's caller promises (# Safety).
    let Some(state) = (unsafe { state(tracker) }) else {
        return Errno::EINVAL.to_raw();
    };
    status(state.set_default(frames).map_err(domain_tracker::errno))
}

/// How many machine frames have an access of their own since the last default.
///
/// # Safety
///
/// `tracker` is null or C's live tracker, whose lock C holds for the call: see
/// [tracker pointers](self#tracker-pointers).
#[no_mangle]
pub unsafe extern "C" fn pvma_tracker_live(tracker: *mut TrackerState) -> u32 {
    // SAFETY: `tracker` as this function's caller promises (# Safety).
    unsafe { state(tracker) }.map_or(0, |state| u32::try_from(state.live()).unwrap_or(u32::MAX))
}

/// Frees every node of the tracker; it is empty afterwards.
///
/// # Safety
///
/// `tracker` is null or C's live tracker, whose lock C holds for the call: see
/// [tracker pointers](self#tracker-pointers).
#[no_mangle]
pub unsafe extern "C" fn pvma_tracker_destroy(tracker: *mut TrackerState) {
    // SAFETY: `tracker` as this function's caller promises (# Safety).
    if let Some(state) = unsafe { state(tracker) } {
        state.destroy();
    }
}

/// The module has no reachable panic, by construction: the panic handler calls a function
/// nobody defines, so if the optimiser leaves any path to a panic in the linked object, Xen
/// fails to link (and `cargo xtask check-hv-object` names the symbol first). A panic in Xen
/// would be a host crash, so it must not be possible, not merely reported.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    extern "C" {
        /// Deliberately undefined: see [`panic`].
        fn pvma_rust_panic_is_reachable() -> !;
    }
    // SAFETY: never linked; the symbol exists only to break the link if this is reachable.
    unsafe { pvma_rust_panic_is_reachable() }
}
