//! [`Hypervisor`], what makes hypercalls, and the typed wrappers generic over it.

use super::*;

/// Something that makes hypercalls: Xen through its hypercall page in the guest, the
/// fake Xen of `crate::fake_xen` in host tests.
pub trait Hypervisor {
    /// Makes `call` and returns Xen's raw result (`rax`).
    ///
    /// # Safety
    ///
    /// Every argument that is a pointer must be valid, for the whole call, for what
    /// Xen does with it for this hypercall (read or write the argument structure or
    /// buffer).
    unsafe fn hypercall(&self, call: Hypercall) -> i64;
}

/// The address of `value`, as a hypercall argument.
fn arg_ptr<T>(value: &T) -> u64 {
    core::ptr::from_ref(value) as u64
}

/// The address of `value`, as a hypercall argument Xen may write through.
fn arg_ptr_mut<T>(value: &mut T) -> u64 {
    core::ptr::from_mut(value) as u64
}

/// A batch length as `mmu_update`'s and `mmuext_op`'s `unsigned int count`:
/// below [`MMU_UPDATE_PREEMPTED`], which Xen reads as its own continuation.
pub(super) fn batch_count(len: usize) -> Result<u32, XenError> {
    u32::try_from(len)
        .ok()
        .filter(|&count| count < MMU_UPDATE_PREEMPTED)
        .ok_or(XenError::EINVAL)
}

/// `HYPERVISOR_update_va_mapping(va, val, flags)`: a checked write of `val` into the
/// L1 entry that maps `va` in the current page tables (`do_update_va_mapping`,
/// `xen/arch/x86/mm.c`), then the TLB flush `flags` asks for.
///
/// # Safety
///
/// Xen changes what `va` shows: unless `val` maps the same frame as before, nothing
/// Rust relies on may live in that page (no reference into it, no value read through
/// it that must stay the same) until the original entry is back.
pub unsafe fn update_va_mapping<H: Hypervisor + ?Sized>(
    hv: &H,
    va: u64,
    val: u64,
    flags: u64,
) -> Result<(), XenError> {
    let call = Hypercall::new(HypercallNr::UPDATE_VA_MAPPING, [va, val, flags, 0, 0]);
    // SAFETY: no pointer arguments: Xen reads no memory of the caller for this call
    // (it walks the page tables to the entry for `va`); the change of mapping is this
    // fn's contract.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_mmu_update(reqs, count, &done, foreigndom)`: applies `reqs` in order,
/// stopping at the first that fails. Returns how many were done (all of them on
/// success); on failure Xen's error. `foreigndom` names the expected owner of the
/// frames new L1 entries map (`DomId::SELF` for the caller); the page tables are
/// the caller's own (PFD bits 31:16 = 0).
///
/// # Safety
///
/// Every request must change only entries Rust does not rely on: an L1 entry as in
/// [`update_va_mapping`], no higher-level entry or M2P entry the kernel uses.
pub unsafe fn mmu_update<H: Hypervisor + ?Sized>(
    hv: &H,
    reqs: &[MmuUpdate],
    foreigndom: DomId,
) -> Result<u32, XenError> {
    // SAFETY: as the caller promises; Xen only reads the `mmu_update` structures.
    unsafe { batch(hv, HypercallNr::MMU_UPDATE, reqs, foreigndom) }
}

/// `HYPERVISOR_mmuext_op(ops, count, &done, foreigndom)`: applies `ops` in order,
/// stopping at the first that fails. Returns how many were done; on failure Xen's
/// error.
///
/// # Safety
///
/// The ops must not change page tables or mappings Rust relies on (no
/// `MMUEXT_NEW_BASEPTR`, no unpinning a table in use). Pinning or unpinning a frame
/// the kernel does not use as a page table, and TLB flushes, are fine.
pub unsafe fn mmuext_op<H: Hypervisor + ?Sized>(
    hv: &H,
    ops: &[MmuextOp],
    foreigndom: DomId,
) -> Result<u32, XenError> {
    // SAFETY: as the caller promises; Xen only reads the `mmuext_op` structures.
    unsafe { batch(hv, HypercallNr::MMUEXT_OP, ops, foreigndom) }
}

/// The shared calling convention of `mmu_update` and `mmuext_op`: `(items, count, &done,
/// foreigndom)`. Returns how many were done; on failure Xen's error.
///
/// # Safety
///
/// `nr` takes a list of `T` and the caller's contract for it holds for `items`.
unsafe fn batch<H: Hypervisor + ?Sized, T>(
    hv: &H,
    nr: HypercallNr,
    items: &[T],
    foreigndom: DomId,
) -> Result<u32, XenError> {
    let count = batch_count(items.len())?;
    let mut done: u32 = 0;
    let call = Hypercall::new(
        nr,
        [
            items.as_ptr() as u64,
            u64::from(count),
            arg_ptr_mut(&mut done),
            u64::from(foreigndom.0),
            0,
        ],
    );
    // SAFETY: `items` is `count` live structures Xen only reads (as the caller
    // promises); `done` is a live `unsigned int` Xen may write.
    let ret = unsafe { hv.hypercall(call) };
    XenError::check(ret).map(|_| done)
}

/// `HYPERVISOR_multicall(calls, nr_calls)`: Xen makes each hypercall of the batch in
/// order and writes its result into its entry (`do_multicall`, `xen/common/multicall.c`).
/// `Err` only when the batch itself fails; each call's own result is its entry's
/// [`MulticallEntry::check`]. A call Xen preempts (a continuation) is finished before
/// the next one starts, so a batch is as a sequence of the same hypercalls; Xen may
/// rewrite an entry's arguments meanwhile (the continuation's), hence `&mut`.
///
/// # Safety
///
/// Every entry must be a hypercall whose own safety contract holds (its pointer
/// arguments valid for what Xen does with them, for the whole batch).
pub unsafe fn multicall<H: Hypervisor + ?Sized>(
    hv: &H,
    calls: &mut [MulticallEntry],
) -> Result<(), XenError> {
    // `nr_calls` is an `uint32_t`.
    let count = u32::try_from(calls.len()).map_err(|_| XenError::EINVAL)?;
    let call = Hypercall::new(
        HypercallNr::MULTICALL,
        [calls.as_mut_ptr() as u64, u64::from(count), 0, 0, 0],
    );
    // SAFETY: `calls` is `count` live entries Xen reads and writes (results, and the
    // arguments of a continuation); what each call does with its own arguments is
    // this fn's contract.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_grant_table_op(GNTTABOP_map_grant_ref, op, 1)`. `Err` only when the
/// hypercall itself fails; the mapping's own result is `op.status` (`GNTST_*`), and
/// on success `op.handle` unmaps it.
///
/// # Safety
///
/// With `GNTMAP_host_map` Xen replaces the mapping at `op.host_addr`: as for
/// [`update_va_mapping`], nothing Rust relies on may live in that page.
pub unsafe fn gnttab_map_grant_ref<H: Hypervisor + ?Sized>(
    hv: &H,
    op: &mut GnttabMapGrantRef,
) -> Result<(), XenError> {
    let call = Hypercall::new(
        HypercallNr::GRANT_TABLE_OP,
        [
            u64::from(xen_abi::GNTTABOP_map_grant_ref),
            arg_ptr_mut(op),
            1,
            0,
            0,
        ],
    );
    // SAFETY: the only pointer is `op`, one live `gnttab_map_grant_ref` that Xen
    // reads and writes back (its OUT fields).
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_grant_table_op(GNTTABOP_unmap_grant_ref, op, 1)`. `Err` only when the
/// hypercall itself fails; the unmapping's own result is `op.status`. For a PV host
/// mapping Xen clears the L1 entry at `op.host_addr` (it does not put back what was
/// mapped there before).
///
/// # Safety
///
/// Nothing may access the page at `op.host_addr` until something is mapped there
/// again.
pub unsafe fn gnttab_unmap_grant_ref<H: Hypervisor + ?Sized>(
    hv: &H,
    op: &mut GnttabUnmapGrantRef,
) -> Result<(), XenError> {
    let call = Hypercall::new(
        HypercallNr::GRANT_TABLE_OP,
        [
            u64::from(xen_abi::GNTTABOP_unmap_grant_ref),
            arg_ptr_mut(op),
            1,
            0,
            0,
        ],
    );
    // SAFETY: the only pointer is `op`, one live `gnttab_unmap_grant_ref` that Xen
    // reads and writes back (`status`).
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_event_channel_op(EVTCHNOP_send, &(evtchn_send_t){ port })`: notifies
/// the other end of `port`.
pub fn evtchn_send<H: Hypervisor + ?Sized>(hv: &H, port: EvtchnPort) -> Result<(), XenError> {
    let send = xen_sys::evtchn_send { port: port.0 };
    let call = Hypercall::new(
        HypercallNr::EVENT_CHANNEL_OP,
        [u64::from(xen_sys::EVTCHNOP_send), arg_ptr(&send), 0, 0, 0],
    );
    // SAFETY: the only pointer is `send`, a live `evtchn_send` Xen only reads.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_event_channel_op(EVTCHNOP_alloc_unbound, &(evtchn_alloc_unbound_t){
/// DOMID_SELF, remote, 0 })`: a new port of this domain, unbound, which domain `remote`
/// may bind (`evtchn_alloc_unbound`, `xen/common/event_channel.c`). Its notifications
/// go to vCPU 0.
pub fn evtchn_alloc_unbound<H: Hypervisor + ?Sized>(
    hv: &H,
    remote: DomId,
) -> Result<EvtchnPort, XenError> {
    let mut alloc = xen_sys::evtchn_alloc_unbound {
        dom: DomId::SELF.0,
        remote_dom: remote.0,
        port: 0,
    };
    let call = Hypercall::new(
        HypercallNr::EVENT_CHANNEL_OP,
        [
            u64::from(xen_sys::EVTCHNOP_alloc_unbound),
            arg_ptr_mut(&mut alloc),
            0,
            0,
            0,
        ],
    );
    // SAFETY: the only pointer is `alloc`, a live `evtchn_alloc_unbound` that Xen reads
    // and writes back (`port`).
    XenError::check(unsafe { hv.hypercall(call) })?;
    Ok(EvtchnPort(alloc.port))
}

/// `HYPERVISOR_sched_op(SCHEDOP_poll, &(sched_poll_t){ ports, 1, timeout })`: blocks
/// this vCPU until `port` is pending or Xen's system time reaches `timeout_ns` (0: no
/// timeout); returns at once if the port already is pending (`do_poll`,
/// `xen/common/sched/core.c`). A masked port wakes its pollers too, and polling
/// delivers no upcall. Success says nothing about which happened: the caller
/// checks the port's pending bit.
pub fn sched_poll<H: Hypervisor + ?Sized>(
    hv: &H,
    port: EvtchnPort,
    timeout_ns: u64,
) -> Result<(), XenError> {
    let ports = [port.0];
    let poll = xen_sys::sched_poll {
        // Xen only reads the array (the handle is not `const` in `sched.h`).
        ports: ports.as_ptr().cast_mut(),
        nr_ports: 1,
        timeout: timeout_ns,
    };
    let call = Hypercall::new(
        HypercallNr::SCHED_OP,
        [u64::from(xen_sys::SCHEDOP_poll), arg_ptr(&poll), 0, 0, 0],
    );
    // SAFETY: the pointers are `poll`, a live `sched_poll` Xen only reads, and, inside
    // it, `ports`, one live port Xen only reads.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_sched_op(SCHEDOP_shutdown, &(sched_shutdown_t){ reason })`. On
/// success the domain is shutting down and this vCPU is not scheduled again, so the
/// caller rarely sees the return.
pub fn sched_shutdown<H: Hypervisor + ?Sized>(
    hv: &H,
    reason: ShutdownReason,
) -> Result<(), XenError> {
    let shutdown = xen_sys::sched_shutdown {
        reason: reason as u32,
    };
    let call = Hypercall::new(
        HypercallNr::SCHED_OP,
        [
            u64::from(xen_sys::SCHEDOP_shutdown),
            arg_ptr(&shutdown),
            0,
            0,
            0,
        ],
    );
    // SAFETY: the only pointer is `shutdown`, a live `sched_shutdown` Xen only reads.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_sched_op(SCHEDOP_yield, NULL)`: lets other vCPUs (xenconsoled's in
/// dom0) run.
///
/// Unlike `SCHEDOP_block`, yielding leaves event delivery masked: this kernel
/// registers no event callback, so an unmasked upcall would crash it.
pub fn sched_yield<H: Hypervisor + ?Sized>(hv: &H) -> Result<(), XenError> {
    let call = Hypercall::new(
        HypercallNr::SCHED_OP,
        [u64::from(xen_sys::SCHEDOP_yield), 0, 0, 0, 0],
    );
    // SAFETY: no pointer arguments (the NULL argument is not dereferenced).
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_vcpu_op(VCPUOP_is_up, vcpu, NULL)`: whether `vcpu` is up;
/// `Err(XenError::ENOENT)` when the domain has no such vCPU.
pub fn vcpu_is_up<H: Hypervisor + ?Sized>(hv: &H, vcpu: VcpuId) -> Result<bool, XenError> {
    let call = Hypercall::new(
        HypercallNr::VCPU_OP,
        [u64::from(xen_abi::VCPUOP_is_up), u64::from(vcpu.0), 0, 0, 0],
    );
    // SAFETY: no pointer arguments.
    XenError::check(unsafe { hv.hypercall(call) }).map(|up| up != 0)
}

/// Counts the domain's vCPUs (up or down): asks `VCPUOP_is_up` for ids 0, 1, ...
/// until Xen answers `-ENOENT`, trying at most `max` ids. Any other error is
/// returned.
pub fn count_vcpus<H: Hypervisor + ?Sized>(hv: &H, max: u32) -> Result<u32, XenError> {
    for id in 0..max {
        match vcpu_is_up(hv, VcpuId(id)) {
            Ok(_) => {}
            Err(XenError::ENOENT) => return Ok(id),
            Err(e) => return Err(e),
        }
    }
    Ok(max)
}

/// `HYPERVISOR_xen_version(XENVER_extraversion, buf)`: Xen copies its 16-byte extra
/// version string (`xen_extra_version()`, NUL-padded) to `buf` (`do_xen_version`,
/// `xen/common/kernel.c`). Returns Xen's raw result: 0, or `-EFAULT` when the copy to
/// `buf` failed. The raw value is what the `xen-copy` pattern reports.
///
/// # Safety
///
/// `buf` must be valid for writes of [`XEN_EXTRAVERSION_LEN`] bytes, and nothing Rust
/// relies on may be there (Xen writes it behind the compiler's back).
pub unsafe fn xen_version_extraversion<H: Hypervisor + ?Sized>(hv: &H, buf: *mut u8) -> i64 {
    let call = Hypercall::new(
        HypercallNr::XEN_VERSION,
        [u64::from(xen_abi::XENVER_extraversion), buf as u64, 0, 0, 0],
    );
    // SAFETY: the only pointer is `buf`, writable for the 16 bytes Xen copies (this
    // fn's contract).
    unsafe { hv.hypercall(call) }
}

/// `HYPERVISOR_vm_assist(VMASST_CMD_enable, type)`: turns on one of Xen's assists for
/// the whole domain.
pub fn vm_assist_enable<H: Hypervisor + ?Sized>(hv: &H, assist: u64) -> Result<(), XenError> {
    let call = Hypercall::new(
        HypercallNr::VM_ASSIST,
        [u64::from(xen_sys::VMASST_CMD_enable), assist, 0, 0, 0],
    );
    // SAFETY: no pointer arguments. The assists change how Xen treats later faults
    // (writable page tables: it emulates writes to L1 tables instead of reflecting
    // the fault), not any memory Rust relies on.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_console_io(CONSOLEIO_write, len, bytes)`: writes to Xen's own
/// console. Xen allows it to a domU only when built with `CONFIG_VERBOSE_DEBUG`
/// (the default of a debug build; `xsm_console_io`), otherwise `-EPERM`.
pub fn console_io_write<H: Hypervisor + ?Sized>(hv: &H, bytes: &[u8]) -> Result<(), XenError> {
    // `count` is an `unsigned int`: split anything longer (never happens in practice).
    for chunk in bytes.chunks(u32::MAX as usize) {
        let call = Hypercall::new(
            HypercallNr::CONSOLE_IO,
            [
                u64::from(xen_sys::CONSOLEIO_write),
                chunk.len() as u64,
                chunk.as_ptr() as u64,
                0,
                0,
            ],
        );
        // SAFETY: the pointer is `chunk`, valid for `chunk.len()` bytes that Xen only
        // reads.
        XenError::check(unsafe { hv.hypercall(call) })?;
    }
    Ok(())
}
