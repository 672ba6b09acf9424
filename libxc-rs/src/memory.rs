//! `XENMEM_*` operations (`xen/include/public/memory.h`) a listener needs: access rights
//! (`XENMEM_access_op`) and resource frames (`XENMEM_acquire_resource`).

use xen_abi::{__guest_handle_const_uint64, __guest_handle_const_uint8, __guest_handle_xen_pfn_t};

use crate::abi::{u16_of, u8_of};
use crate::access::Access;
use crate::error::{Error, Result};
use crate::frame::{AccessFrame, FrameKind, FrameNumber, Gfn, Mfn, Pfn};
use crate::privcmd::{hypercall, Privcmd};
use crate::DomId;

/// `XENMEM_populate_physmap`
pub const POPULATE_PHYSMAP: u64 = xen_abi::XENMEM_populate_physmap as u64;
/// `XENMEM_access_op`
pub const ACCESS_OP: u64 = xen_abi::XENMEM_access_op as u64;
/// `XENMEM_acquire_resource`
pub const ACQUIRE_RESOURCE: u64 = xen_abi::XENMEM_acquire_resource as u64;
/// `XENMEM_access_op_set_access`
pub const ACCESS_OP_SET_ACCESS: u8 = u8_of(xen_abi::XENMEM_access_op_set_access);
/// `XENMEM_access_op_get_access`
pub const ACCESS_OP_GET_ACCESS: u8 = u8_of(xen_abi::XENMEM_access_op_get_access);
/// `XENMEM_resource_vm_event_ring` (added by this project's Xen series).
pub const RESOURCE_VM_EVENT_RING: u16 = u16_of(xen_abi::XENMEM_resource_vm_event_ring);

/// `struct xen_mem_access_op`, as bindgen generates it (its guest handles hold the lists'
/// addresses in `p`).
pub use xen_abi::xen_mem_access_op as MemAccessOp;
/// `struct xen_mem_acquire_resource`, as generated (`type` is `type_`).
pub use xen_abi::xen_mem_acquire_resource as MemAcquireResource;
/// `struct xen_memory_reservation`, as generated.
pub use xen_abi::xen_memory_reservation as MemoryReservation;

/// `xc_domain_populate_physmap_exact` for a PV domain: gives it `count` new pages (at the
/// guest frame numbers `first_pfn ..`, which a PV guest's P2M must then name) and returns
/// their machine frames, as Xen hands them to a non-translated domain.
pub fn populate_physmap(
    privcmd: &Privcmd,
    domain: DomId,
    first_pfn: Pfn,
    count: usize,
) -> Result<Vec<Mfn>> {
    const LIST_OFFSET: usize = 2048;
    let name = format!(
        "XENMEM_populate_physmap(domain {}, {count} pages)",
        domain.0
    );
    if count == 0 || count > LIST_OFFSET / 8 {
        return Err(Error::invalid(&name, "between 1 and 256 pages at a time"));
    }
    let mut buffer = privcmd.buffer(1)?;
    for index in 0..count {
        buffer.write_at(LIST_OFFSET + index * 8, &(first_pfn.0 + index as u64));
    }
    let extent_start = buffer.address_at(LIST_OFFSET);
    buffer.write(&MemoryReservation {
        extent_start: __guest_handle_xen_pfn_t { p: extent_start },
        nr_extents: count as u64,
        domid: domain.0,
        ..MemoryReservation::default()
    });
    // SAFETY: the reservation and its extent list are in the buffer.
    let done = unsafe { memory_op(privcmd, &name, POPULATE_PHYSMAP, buffer.address()) }?;
    if done != count as u64 {
        return Err(Error::invalid(
            &name,
            format!("Xen gave {done} pages (out of memory or over maxmem?)"),
        ));
    }
    Ok((0..count)
        .map(|index| Mfn(buffer.read_at::<u64>(LIST_OFFSET + index * 8)))
        .collect())
}

/// Where a page's access is set or read: frames named as `F` says ([`Gfn`] for an HVM
/// guest, [`Mfn`] for a PV one), or the domain's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessTarget<F> {
    /// The default every page without an access of its own follows.
    Default,
    /// Frames `first .. first + count`.
    Frames {
        /// The first frame.
        first: F,
        /// How many frames.
        count: u32,
    },
}

impl<F> AccessTarget<F> {
    /// One frame.
    pub const fn frame(frame: F) -> AccessTarget<F> {
        AccessTarget::Frames {
            first: frame,
            count: 1,
        }
    }
}

/// `HYPERVISOR_memory_op(cmd, argument)`.
///
/// # Safety
///
/// `argument` must be the address of a hypercall buffer holding the struct `cmd` takes, whose
/// own pointers also point into hypercall buffers, or an address Xen cannot access at all
/// (it then fails with `EFAULT` and writes nothing).
pub unsafe fn memory_op(privcmd: &Privcmd, name: &str, cmd: u64, argument: u64) -> Result<u64> {
    // SAFETY: as the caller promises.
    unsafe { privcmd.hypercall(name, hypercall::MEMORY_OP, [cmd, argument, 0, 0, 0]) }
}

/// `xc_set_mem_access`: sets `access` on `target` of an HVM `domain` (gfns).
pub fn set_mem_access(
    privcmd: &Privcmd,
    domain: DomId,
    target: AccessTarget<Gfn>,
    access: Access,
) -> Result<()> {
    set_access(privcmd, domain, target, access)
}

/// `xc_set_mem_access_mfn`: sets `access` on `target` of a PV `domain` (machine frames).
pub fn set_mem_access_mfn(
    privcmd: &Privcmd,
    domain: DomId,
    target: AccessTarget<Mfn>,
    access: Access,
) -> Result<()> {
    set_access(privcmd, domain, target, access)
}

/// [`set_mem_access`] with frames of either kind.
pub fn set_access<F: FrameNumber>(
    privcmd: &Privcmd,
    domain: DomId,
    target: AccessTarget<F>,
    access: Access,
) -> Result<()> {
    set_mem_access_raw(privcmd, domain, target, access as u8)
}

/// [`set_access`] on one frame of a kind known only at run time (a ring's request).
pub fn set_frame_access(
    privcmd: &Privcmd,
    domain: DomId,
    frame: AccessFrame,
    access: Access,
) -> Result<()> {
    match frame {
        AccessFrame::Gfn(gfn) => set_access(privcmd, domain, AccessTarget::frame(gfn), access),
        AccessFrame::Mfn(mfn) => set_access(privcmd, domain, AccessTarget::frame(mfn), access),
    }
}

/// [`set_access`] on the default of a domain whose kind is known only at run time.
pub fn set_default_access(
    privcmd: &Privcmd,
    domain: DomId,
    kind: FrameKind,
    access: Access,
) -> Result<()> {
    match kind {
        FrameKind::Gfn => set_access::<Gfn>(privcmd, domain, AccessTarget::Default, access),
        FrameKind::Mfn => set_access::<Mfn>(privcmd, domain, AccessTarget::Default, access),
    }
}

/// [`set_mem_access`] with frames of either kind and any raw access value, for tests of
/// Xen's checks.
pub fn set_mem_access_raw<F: FrameNumber>(
    privcmd: &Privcmd,
    domain: DomId,
    target: AccessTarget<F>,
    access: u8,
) -> Result<()> {
    let (pfn, nr) = match target {
        AccessTarget::Default => (!0, 0),
        AccessTarget::Frames { first, count } => (first.number(), count),
    };
    let mut buffer = privcmd.buffer(1)?;
    buffer.write(&MemAccessOp {
        op: F::KIND.op(ACCESS_OP_SET_ACCESS),
        access,
        domid: domain.0,
        nr,
        pfn,
        ..MemAccessOp::default()
    });
    // SAFETY: the buffer holds a whole xen_mem_access_op without pointers.
    unsafe {
        memory_op(
            privcmd,
            &format!("XENMEM_access_op(set_access, domain {})", domain.0),
            ACCESS_OP,
            buffer.address(),
        )
    }
    .map(drop)
}

/// `XENMEM_access_op_set_access_multi`
pub const ACCESS_OP_SET_ACCESS_MULTI: u8 = u8_of(xen_abi::XENMEM_access_op_set_access_multi);
/// `XENMEM_access_op_mfn` (our patch 0012): OR'ed into the op, the frames are
/// machine frames. Required for a PV domain, refused for an HVM one (`EOPNOTSUPP` either
/// way), so a frame number is never taken for the other kind.
pub const ACCESS_OP_MFN: u8 = u8_of(xen_abi::XENMEM_access_op_mfn);

/// `xc_set_mem_access_multi`: sets `accesses[i]` on `frames[i]` (gfns) of an HVM `domain` in
/// one hypercall (Xen continues it as it needs to).
pub fn set_mem_access_multi(
    privcmd: &Privcmd,
    domain: DomId,
    frames: &[Gfn],
    accesses: &[Access],
) -> Result<()> {
    set_access_multi(privcmd, domain, frames, accesses)
}

/// `xc_set_mem_access_multi_mfn`: [`set_mem_access_multi`] for a PV `domain`, whose frames
/// are machine frames.
pub fn set_mem_access_multi_mfn(
    privcmd: &Privcmd,
    domain: DomId,
    frames: &[Mfn],
    accesses: &[Access],
) -> Result<()> {
    set_access_multi(privcmd, domain, frames, accesses)
}

/// [`set_mem_access_multi`] with frames of either kind.
pub fn set_access_multi<F: FrameNumber>(
    privcmd: &Privcmd,
    domain: DomId,
    frames: &[F],
    accesses: &[Access],
) -> Result<()> {
    let name = format!(
        "XENMEM_access_op(set_access_multi, domain {}, {} frames)",
        domain.0,
        frames.len()
    );
    let count = u32::try_from(frames.len())
        .ok()
        .filter(|_| frames.len() == accesses.len())
        .ok_or_else(|| Error::invalid(&name, "one access per frame, at most 2^32-1 frames"))?;
    // The op, then the frame list (8-byte aligned), then the access list, in one buffer.
    let frames_at = 64;
    let accesses_at = frames_at + 8 * frames.len();
    let pages = (accesses_at + frames.len()).div_ceil(4096);
    let mut buffer = privcmd.buffer(pages)?;
    for (index, frame) in frames.iter().enumerate() {
        buffer.write_at(frames_at + 8 * index, &frame.number());
    }
    for (index, access) in accesses.iter().enumerate() {
        buffer.write_at(accesses_at + index, &(*access as u8));
    }
    let (pfn_list, access_list) = (buffer.address_at(frames_at), buffer.address_at(accesses_at));
    buffer.write(&MemAccessOp {
        op: F::KIND.op(ACCESS_OP_SET_ACCESS_MULTI),
        domid: domain.0,
        nr: count,
        pfn_list: __guest_handle_const_uint64 { p: pfn_list },
        access_list: __guest_handle_const_uint8 { p: access_list },
        ..MemAccessOp::default()
    });
    // SAFETY: the op and both lists (count entries each) are in the buffer.
    unsafe { memory_op(privcmd, &name, ACCESS_OP, buffer.address()) }.map(drop)
}

/// `xc_get_mem_access`: the access of one gfn of an HVM `domain`, or (`gfn` `None`) its
/// default.
pub fn get_mem_access(privcmd: &Privcmd, domain: DomId, gfn: Option<Gfn>) -> Result<Access> {
    get_access(privcmd, domain, gfn)
}

/// `xc_get_mem_access_mfn`: the access of one machine frame of a PV `domain`, or (`mfn`
/// `None`) its default.
pub fn get_mem_access_mfn(privcmd: &Privcmd, domain: DomId, mfn: Option<Mfn>) -> Result<Access> {
    get_access(privcmd, domain, mfn)
}

/// [`get_mem_access`] with a frame of either kind.
pub fn get_access<F: FrameNumber>(
    privcmd: &Privcmd,
    domain: DomId,
    frame: Option<F>,
) -> Result<Access> {
    let mut buffer = privcmd.buffer(1)?;
    buffer.write(&MemAccessOp {
        op: F::KIND.op(ACCESS_OP_GET_ACCESS),
        domid: domain.0,
        pfn: frame.map_or(!0, F::number),
        ..MemAccessOp::default()
    });
    // SAFETY: the buffer holds a whole xen_mem_access_op without pointers.
    unsafe {
        memory_op(
            privcmd,
            &format!("XENMEM_access_op(get_access, domain {})", domain.0),
            ACCESS_OP,
            buffer.address(),
        )
    }?;
    let raw = buffer.read::<MemAccessOp>().access;
    Access::from_raw(raw).ok_or_else(|| {
        Error::invalid(
            "XENMEM_access_op(get_access)",
            format!("Xen returned {raw}, not an access value"),
        )
    })
}

/// [`get_access`] of one frame of a kind known only at run time, or (`None`) of the default
/// of a domain whose frames are of `kind`.
pub fn get_access_of(
    privcmd: &Privcmd,
    domain: DomId,
    kind: FrameKind,
    frame: Option<AccessFrame>,
) -> Result<Access> {
    match (kind, frame) {
        (_, Some(AccessFrame::Gfn(gfn))) => get_access(privcmd, domain, Some(gfn)),
        (_, Some(AccessFrame::Mfn(mfn))) => get_access(privcmd, domain, Some(mfn)),
        (FrameKind::Gfn, None) => get_access::<Gfn>(privcmd, domain, None),
        (FrameKind::Mfn, None) => get_access::<Mfn>(privcmd, domain, None),
    }
}

/// `xenforeignmemory_map_resource`'s first half: the machine frames of resource `kind`/`id`
/// of `domain`, as Xen hands them to a PV caller.
pub fn acquire_resource_frames(
    privcmd: &Privcmd,
    domain: DomId,
    kind: u16,
    id: u32,
) -> Result<Vec<Mfn>> {
    let name = format!(
        "XENMEM_acquire_resource(type {kind}, id {id}, domain {})",
        domain.0
    );
    let mut buffer = privcmd.buffer(1)?;
    // First ask the size (a null frame list), then for the frames.
    buffer.write(&MemAcquireResource {
        domid: domain.0,
        type_: kind,
        id,
        ..MemAcquireResource::default()
    });
    // SAFETY: the buffer holds a whole xen_mem_acquire_resource with a null frame list.
    unsafe { memory_op(privcmd, &name, ACQUIRE_RESOURCE, buffer.address()) }?;
    let count = buffer.read::<MemAcquireResource>().nr_frames;
    const LIST_OFFSET: usize = 2048;
    if count == 0 || count as usize > LIST_OFFSET / 8 {
        return Err(Error::invalid(&name, format!("Xen reports {count} frames")));
    }
    let frame_list = buffer.address_at(LIST_OFFSET);
    buffer.write(&MemAcquireResource {
        domid: domain.0,
        type_: kind,
        id,
        nr_frames: count,
        frame_list: __guest_handle_xen_pfn_t { p: frame_list },
        ..MemAcquireResource::default()
    });
    // SAFETY: the struct and its frame list (room for `count` frames) are in the buffer.
    unsafe { memory_op(privcmd, &name, ACQUIRE_RESOURCE, buffer.address()) }?;
    Ok((0..count as usize)
        .map(|index| Mfn(buffer.read_at::<u64>(LIST_OFFSET + index * 8)))
        .collect())
}
