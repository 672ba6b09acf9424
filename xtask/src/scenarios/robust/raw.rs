//! Raw calls of the control interface as a caller may get them wrong: every field chosen
//! by the caller, the outcome as `Ok(value)` or the positive errno. Shared by
//! `robust/bad-input` and `robust/fuzz`. Xen's numbers and layouts are the generated ones
//! of `xen-abi` (from the patched headers); the short names here only keep the tables
//! readable.

use libxc::domctl::{self, Domctl};
use libxc::memory::{self, MemAccessOp, MemAcquireResource};
use libxc::privcmd::{hypercall, Privcmd};
use libxc::zerocopy::{Immutable, IntoBytes};
use libxc::{DomId, Errno};
use xen_abi::xen_domctl_monitor_op;

// errno values as Linux's privcmd passes Xen's through (the same numbers on x86).
pub const EPERM: i32 = Errno::EPERM as i32;
pub const ENOENT: i32 = Errno::ENOENT as i32;
pub const ESRCH: i32 = Errno::ESRCH as i32;
pub const EACCES: i32 = Errno::EACCES as i32;
pub const EFAULT: i32 = Errno::EFAULT as i32;
pub const EBUSY: i32 = Errno::EBUSY as i32;
pub const ENODEV: i32 = Errno::ENODEV as i32;
pub const EINVAL: i32 = Errno::EINVAL as i32;
pub const ENOSYS: i32 = Errno::ENOSYS as i32;
pub const EOPNOTSUPP: i32 = Errno::EOPNOTSUPP as i32;

// XEN_VM_EVENT_* (ATTACH is patch 0006) and the XEN_DOMCTL_VM_EVENT_OP_* modes.
pub use xen_abi::{
    XEN_DOMCTL_VM_EVENT_OP_MONITOR as MONITOR, XEN_DOMCTL_VM_EVENT_OP_PAGING as PAGING,
    XEN_DOMCTL_VM_EVENT_OP_SHARING as SHARING, XEN_VM_EVENT_ATTACH as ATTACH,
    XEN_VM_EVENT_DISABLE as DISABLE, XEN_VM_EVENT_ENABLE as ENABLE,
    XEN_VM_EVENT_GET_VERSION as GET_VERSION, XEN_VM_EVENT_RESUME as RESUME,
};

// XENMEM_access_op_* (as libxc-rs narrows them to the op field's uint8_t).
pub use libxc::memory::{
    ACCESS_OP_GET_ACCESS as GET_ACCESS, ACCESS_OP_SET_ACCESS as SET_ACCESS,
    ACCESS_OP_SET_ACCESS_MULTI as SET_ACCESS_MULTI,
};

// XEN_DOMCTL_* commands, XEN_DOMCTL_MONITOR_OP_* and events.
pub use xen_abi::{
    XEN_DOMCTL_monitor_op as DOMCTL_MONITOR_OP,
    XEN_DOMCTL_set_access_required as DOMCTL_SET_ACCESS_REQUIRED,
    XEN_DOMCTL_MONITOR_EVENT_MEM_ACCESS as MONITOR_EVENT_MEM_ACCESS,
    XEN_DOMCTL_MONITOR_EVENT_WRITE_CTRLREG as MONITOR_EVENT_WRITE_CTRLREG,
    XEN_DOMCTL_MONITOR_OP_DISABLE as MONITOR_OP_DISABLE,
    XEN_DOMCTL_MONITOR_OP_ENABLE as MONITOR_OP_ENABLE,
    XEN_DOMCTL_MONITOR_OP_GET_CAPABILITIES as MONITOR_OP_GET_CAPABILITIES,
};

/// `DOMID_INVALID`: the domain of "no domain" domctls.
pub const DOMID_INVALID: DomId = DomId::INVALID;

/// A page no process maps: Xen's copy from it fails.
pub const UNMAPPED: u64 = 0x1000;

/// The outcome of one call: `Ok` or the positive errno (-1 when not even the buffer came).
pub type Outcome = Result<u64, i32>;

fn outcome(result: libxc::Result<u64>) -> Outcome {
    result.map_err(|error| error.errno.map_or(-1, |errno| errno as i32))
}

/// Any domctl: `Ok` with the union's first 32-bit word.
pub fn domctl<T: IntoBytes + Immutable>(
    privcmd: &Privcmd,
    cmd: u32,
    domain: DomId,
    payload: &T,
) -> Outcome {
    domctl_envelope(privcmd, Domctl::new(cmd, domain, payload))
}

/// A domctl whose envelope the caller built (e.g. with a wrong interface version).
pub fn domctl_envelope(privcmd: &Privcmd, envelope: Domctl) -> Outcome {
    domctl::call(privcmd, "domctl", envelope)
        .map(|done| u64::from(done.payload::<u32>()))
        .map_err(|error| error.errno.map_or(-1, |errno| errno as i32))
}

/// `XEN_DOMCTL_vm_event_op`: `Ok` with the port (ENABLE, ATTACH) or the version.
pub fn vm_event(privcmd: &Privcmd, domain: DomId, op: u32, mode: u32) -> Outcome {
    outcome(libxc::monitor::vm_event_op_raw(privcmd, domain, op, mode).map(u64::from))
}

/// `XEN_DOMCTL_monitor_op`: `Ok` with the `event` field (the capabilities for
/// GET_CAPABILITIES).
pub fn monitor_op(privcmd: &Privcmd, domain: DomId, op: u32, event: u32) -> Outcome {
    let payload = xen_domctl_monitor_op {
        op,
        event,
        ..xen_domctl_monitor_op::default()
    };
    let envelope = Domctl::new(DOMCTL_MONITOR_OP, domain, &payload);
    domctl::call(privcmd, "monitor_op", envelope)
        .map(|done| u64::from(done.payload::<xen_domctl_monitor_op>().event))
        .map_err(|error| error.errno.map_or(-1, |errno| errno as i32))
}

/// `XEN_DOMCTL_set_access_required`.
pub fn set_access_required(privcmd: &Privcmd, domain: DomId, required: u8) -> Outcome {
    domctl(privcmd, DOMCTL_SET_ACCESS_REQUIRED, domain, &[required])
}

/// Lists for `set_access_multi`.
#[derive(Clone, Copy, Debug)]
pub enum Lists<'a> {
    /// Both lists in the hypercall buffer, these entries.
    Entries(&'a [(u64, u8)]),
    /// The frames in the buffer, the access list at an address Xen cannot read.
    UnmappedAccess(u64),
    /// Both at these addresses.
    At { frames: u64, accesses: u64 },
    /// These entries in the buffer, both lists at odd addresses (frames 3 bytes, accesses 1
    /// byte past where they would be).
    Misaligned(&'a [(u64, u8)]),
}

/// Where in the buffer the lists go: 8-byte frames from 1024, accesses from 3072 (room for
/// 128 entries each, in the one page).
const FRAMES_AT: usize = 1024;
const ACCESSES_AT: usize = 3072;
pub const MAX_ENTRIES: usize = 128;

/// `XENMEM_access_op` with any fields; `sub_op_bits` go into the command's high bits (what
/// Xen's continuations use). `Ok(access)` for a successful get_access.
pub fn access_op(
    privcmd: &Privcmd,
    op: MemAccessOp,
    lists: Option<Lists>,
    sub_op_bits: u64,
) -> Outcome {
    let mut buffer = privcmd.buffer(1).map_err(|_| -1)?;
    let mut op = op;
    match lists {
        None => {}
        Some(Lists::Entries(entries)) => {
            for (index, (frame, access)) in entries.iter().take(MAX_ENTRIES).enumerate() {
                buffer.write_at(FRAMES_AT + 8 * index, frame);
                buffer.write_at(ACCESSES_AT + index, access);
            }
            op.pfn_list.p = buffer.address_at(FRAMES_AT);
            op.access_list.p = buffer.address_at(ACCESSES_AT);
        }
        Some(Lists::Misaligned(entries)) => {
            for (index, (frame, access)) in entries.iter().take(MAX_ENTRIES - 1).enumerate() {
                buffer.write_at(FRAMES_AT + 3 + 8 * index, frame);
                buffer.write_at(ACCESSES_AT + 1 + index, access);
            }
            op.pfn_list.p = buffer.address_at(FRAMES_AT + 3);
            op.access_list.p = buffer.address_at(ACCESSES_AT + 1);
        }
        Some(Lists::UnmappedAccess(frame)) => {
            buffer.write_at(FRAMES_AT, &frame);
            op.pfn_list.p = buffer.address_at(FRAMES_AT);
            op.access_list.p = UNMAPPED;
        }
        Some(Lists::At { frames, accesses }) => {
            op.pfn_list.p = frames;
            op.access_list.p = accesses;
        }
    }
    buffer.write(&op);
    // SAFETY: the buffer holds a whole xen_mem_access_op; its lists point into the same
    // buffer or where the caller chose (Xen checks guest addresses and fails with EFAULT;
    // a list within this process's own hypercall buffer is the only memory it may write,
    // and set_access_multi only reads the lists).
    let result = outcome(unsafe {
        memory::memory_op(
            privcmd,
            "access_op",
            memory::ACCESS_OP | sub_op_bits,
            buffer.address(),
        )
    });
    result.map(|value| {
        if op.op & !memory::ACCESS_OP_MFN == GET_ACCESS {
            u64::from(buffer.read::<MemAccessOp>().access)
        } else {
            value
        }
    })
}

/// The frame list of `acquire`.
#[derive(Clone, Copy, Debug)]
pub enum FrameList {
    /// Room for 256 frames in the hypercall buffer.
    Buffer,
    /// A null handle (asks the resource's size).
    Null,
    /// Any address.
    At(u64),
}

/// `XENMEM_acquire_resource`: `Ok` with `nr_frames` as Xen left it (the size for a null
/// list) and the first frame (0 when none came back).
pub fn acquire(
    privcmd: &Privcmd,
    request: MemAcquireResource,
    list: FrameList,
) -> Result<(u32, u64), i32> {
    let mut buffer = privcmd.buffer(1).map_err(|_| -1)?;
    let mut request = request;
    request.frame_list.p = match list {
        FrameList::Buffer => buffer.address_at(2048),
        FrameList::Null => 0,
        FrameList::At(address) => address,
    };
    buffer.write(&request);
    // SAFETY: the buffer holds the struct and, at 2048, room for 256 frames; Xen writes
    // at most nr_frames of them there, and the callers that use the buffer's list ask for
    // no more than that (Xen refuses more than the ring's one frame before writing).
    outcome(unsafe {
        memory::memory_op(
            privcmd,
            "acquire",
            memory::ACQUIRE_RESOURCE,
            buffer.address(),
        )
    })?;
    let done: MemAcquireResource = buffer.read();
    let first = match list {
        FrameList::Buffer => buffer.read_at::<u64>(2048),
        _ => 0,
    };
    Ok((done.nr_frames, first))
}

/// The request for the monitor ring of `domain`.
pub fn ring_request(domain: DomId) -> MemAcquireResource {
    MemAcquireResource {
        domid: domain.0,
        type_: memory::RESOURCE_VM_EVENT_RING,
        id: MONITOR,
        nr_frames: 1,
        ..MemAcquireResource::default()
    }
}

/// A hypercall whose only argument is an address Xen cannot read.
pub fn unmapped_argument(privcmd: &Privcmd, op: u64, cmd: Option<u64>) -> Outcome {
    let args = match cmd {
        Some(cmd) => [cmd, UNMAPPED, 0, 0, 0],
        None => [UNMAPPED, 0, 0, 0, 0],
    };
    // SAFETY: Xen reads nothing from, and writes nothing to, an unmapped address.
    outcome(unsafe { privcmd.hypercall("unmapped", op, args) })
}

/// The hypercall numbers `unmapped_argument` takes.
pub const MEMORY_OP: u64 = hypercall::MEMORY_OP;
pub const DOMCTL: u64 = hypercall::DOMCTL;
