//! Raw calls of the control interface as a caller may get them wrong: every field chosen
//! by the caller, the outcome as `Ok(value)` or the positive errno. Shared by
//! `robust/bad-input` and `robust/fuzz`. The ABI is Xen 4.17's (`public/memory.h`,
//! `public/domctl.h`, `public/vm_event.h`).

use libxc::domctl::{self, Domctl};
use libxc::memory::{self, MemAccessOp, MemAcquireResource};
use libxc::privcmd::{hypercall, Privcmd};
use libxc::zerocopy::{FromBytes, Immutable, IntoBytes};
use libxc::DomId;

// errno values (xen/include/public/errno.h, as Linux passes them through).
pub const EPERM: i32 = 1;
pub const ENOENT: i32 = 2;
pub const ESRCH: i32 = 3;
pub const EACCES: i32 = 13;
pub const EFAULT: i32 = 14;
pub const EBUSY: i32 = 16;
pub const ENODEV: i32 = 19;
pub const EINVAL: i32 = 22;
pub const ENOSYS: i32 = 38;
pub const EOPNOTSUPP: i32 = 95;

// XEN_VM_EVENT_* (public/domctl.h; ATTACH is patch 0006).
pub const ENABLE: u32 = 0;
pub const DISABLE: u32 = 1;
pub const RESUME: u32 = 2;
pub const GET_VERSION: u32 = 3;
pub const ATTACH: u32 = 4;
// XEN_DOMCTL_VM_EVENT_OP_* modes.
pub const PAGING: u32 = 1;
pub const MONITOR: u32 = 2;
pub const SHARING: u32 = 3;

// XENMEM_access_op_* (public/memory.h).
pub const SET_ACCESS: u8 = 0;
pub const GET_ACCESS: u8 = 1;
pub const SET_ACCESS_MULTI: u8 = 4;

// XEN_DOMCTL_* commands (public/domctl.h).
pub const DOMCTL_SET_ACCESS_REQUIRED: u32 = 64;
pub const DOMCTL_MONITOR_OP: u32 = 77;
// XEN_DOMCTL_MONITOR_OP_* and events.
pub const MONITOR_OP_ENABLE: u32 = 0;
pub const MONITOR_OP_DISABLE: u32 = 1;
pub const MONITOR_OP_GET_CAPABILITIES: u32 = 2;
pub const MONITOR_EVENT_WRITE_CTRLREG: u32 = 0;
pub const MONITOR_EVENT_MEM_ACCESS: u32 = 13;

/// `DOMID_INVALID` (public/xen.h): the domain of "no domain" domctls.
pub const DOMID_INVALID: DomId = DomId(0x7ff4);

/// A page no process maps: Xen's copy from it fails.
pub const UNMAPPED: u64 = 0x1000;

/// The outcome of one call: `Ok` or the positive errno (-1 when not even the buffer came).
pub type Outcome = Result<u64, i32>;

fn outcome(result: libxc::Result<u64>) -> Outcome {
    result.map_err(|error| error.errno.map_or(-1, |errno| errno as i32))
}

/// `xen_domctl_monitor_op`.
#[repr(C)]
#[derive(Clone, Copy, Default, FromBytes, IntoBytes, Immutable)]
#[zerocopy(crate = "libxc::zerocopy")]
pub struct MonitorOp {
    pub op: u32,
    pub event: u32,
    pub index: u8,
    pub sync: u8,
    pub onchangeonly: u8,
    pub pad: [u8; 5],
    pub bitmask: u64,
}

/// `xen_domctl_vm_event_op`: op, mode, then the union (its first word is the port).
#[repr(C)]
#[derive(Clone, Copy, Default, FromBytes, IntoBytes, Immutable)]
#[zerocopy(crate = "libxc::zerocopy")]
pub struct VmEventOp {
    pub op: u32,
    pub mode: u32,
    pub port: u32,
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
    let payload = VmEventOp { op, mode, port: 0 };
    let envelope = Domctl::new(domctl::VM_EVENT_OP, domain, &payload);
    domctl::call(privcmd, "vm_event_op", envelope)
        .map(|done| u64::from(done.payload::<VmEventOp>().port))
        .map_err(|error| error.errno.map_or(-1, |errno| errno as i32))
}

/// `XEN_DOMCTL_monitor_op`: `Ok` with the `event` field (the capabilities for
/// GET_CAPABILITIES).
pub fn monitor_op(privcmd: &Privcmd, domain: DomId, op: u32, event: u32) -> Outcome {
    let payload = MonitorOp {
        op,
        event,
        ..MonitorOp::default()
    };
    let envelope = Domctl::new(DOMCTL_MONITOR_OP, domain, &payload);
    domctl::call(privcmd, "monitor_op", envelope)
        .map(|done| u64::from(done.payload::<MonitorOp>().event))
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
            op.pfn_list = buffer.address_at(FRAMES_AT);
            op.access_list = buffer.address_at(ACCESSES_AT);
        }
        Some(Lists::Misaligned(entries)) => {
            for (index, (frame, access)) in entries.iter().take(MAX_ENTRIES - 1).enumerate() {
                buffer.write_at(FRAMES_AT + 3 + 8 * index, frame);
                buffer.write_at(ACCESSES_AT + 1 + index, access);
            }
            op.pfn_list = buffer.address_at(FRAMES_AT + 3);
            op.access_list = buffer.address_at(ACCESSES_AT + 1);
        }
        Some(Lists::UnmappedAccess(frame)) => {
            buffer.write_at(FRAMES_AT, &frame);
            op.pfn_list = buffer.address_at(FRAMES_AT);
            op.access_list = UNMAPPED;
        }
        Some(Lists::At { frames, accesses }) => {
            op.pfn_list = frames;
            op.access_list = accesses;
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
    request.frame_list = match list {
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
        kind: memory::RESOURCE_VM_EVENT_RING,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layouts_match_xen_4_17() {
        // struct xen_domctl_monitor_op: the mov_to_cr member of the union (index, sync,
        // onchangeonly, pad[5], bitmask) right after op and event.
        assert_eq!(size_of::<MonitorOp>(), 24);
        assert_eq!(offset_of!(MonitorOp, event), 4);
        assert_eq!(offset_of!(MonitorOp, index), 8);
        assert_eq!(offset_of!(MonitorOp, onchangeonly), 10);
        assert_eq!(offset_of!(MonitorOp, bitmask), 16);
        // struct xen_domctl_vm_event_op up to the union's first word.
        assert_eq!(size_of::<VmEventOp>(), 12);
        assert_eq!(offset_of!(VmEventOp, port), 8);
    }
}
