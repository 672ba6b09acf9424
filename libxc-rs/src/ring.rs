//! The vm_event ring, listener side: `xen/include/public/vm_event.h` (the request and response
//! layout, `struct vm_event_st`) and `xen/include/public/io/ring.h` (`DEFINE_RING_TYPES`, the
//! `BACK_RING_*` and `RING_*` macros), used the way `tools/misc/xen-access.c` does in
//! `get_request` and `put_response`.
//!
//! Xen is the FRONT end of the ring (`vm_event_put_request` produces requests,
//! `vm_event_get_response` consumes responses); the listener is the BACK end: it takes
//! requests and puts one response for each. A 4096-byte page holds the 64-byte shared header
//! ([`SringHeader`]) then [`RING_SIZE`] = 8 entries of 400 bytes ([`VmEvent`]): 10 would fit,
//! and `__RD32` rounds the count down to a power of two so an index maps to a slot with
//! `idx & (RING_SIZE - 1)`. Indexes are free-running `u32`s that wrap; all arithmetic on them
//! wraps.
//!
//! Ordering follows `io/ring.h`: the shared indexes are read and written as single `u32`s
//! (atomics, which compile to plain moves on x86), entries are copied with volatile accesses
//! (`RING_COPY_REQUEST`), and `xen_rmb`/`xen_wmb`/`xen_mb` become acquire, release and
//! sequentially consistent fences.
//!
//! # Corrupt indexes
//!
//! Xen is trusted, but a wrong page or a bug must not make the listener read out of bounds
//! or spin. Entry addresses are always masked into the page, so no index can make
//! [`BackRing`] read outside it. An index Xen's flow control can never produce
//! (`req_prod - req_cons > RING_SIZE`, which includes `req_prod` moving backwards, or
//! `RING_REQUEST_PROD_OVERFLOW`: `req_prod - rsp_prod_pvt > RING_SIZE`) marks the ring
//! corrupt. Corrupt is sticky: from then on [`BackRing::pending_requests`] is 0,
//! [`BackRing::take_request`] is `None` and [`BackRing::final_check_for_requests`] is false,
//! so an event loop drains nothing and stops; [`BackRing::corrupt`] tells it why. Responses
//! to requests already taken may still be put and pushed (their vCPUs are paused waiting
//! for them). The listener should then disable monitoring, which frees the ring.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{offset_of, size_of};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};

use xen_abi::{vm_event_mem_access, vm_event_regs_x86, vm_event_sring, vm_event_st};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::abi::same_layout;
use crate::frame::{AccessFrame, FrameKind};
use crate::monitor::RingMapping;

/// `VM_EVENT_INTERFACE_VERSION`: the `version` of every request of Xen
/// 4.17, and what a response must carry.
pub const VM_EVENT_INTERFACE_VERSION: u32 = xen_abi::VM_EVENT_INTERFACE_VERSION;

/// `VM_EVENT_FLAG_VCPU_PAUSED`: in a request, the vCPU is paused; in a
/// response, unpause it.
pub const VM_EVENT_FLAG_VCPU_PAUSED: u32 = xen_abi::VM_EVENT_FLAG_VCPU_PAUSED;
/// `VM_EVENT_FLAG_FOREIGN`: the event was raised by another domain than
/// the monitored one.
pub const VM_EVENT_FLAG_FOREIGN: u32 = xen_abi::VM_EVENT_FLAG_FOREIGN;
/// `VM_EVENT_FLAG_EMULATE`: in a response, emulate the faulting instruction.
pub const VM_EVENT_FLAG_EMULATE: u32 = xen_abi::VM_EVENT_FLAG_EMULATE;
/// `VM_EVENT_FLAG_EMULATE_NOWRITE`: with EMULATE, discard the writes.
pub const VM_EVENT_FLAG_EMULATE_NOWRITE: u32 = xen_abi::VM_EVENT_FLAG_EMULATE_NOWRITE;
/// `VM_EVENT_FLAG_TOGGLE_SINGLESTEP`: in a response, toggle singlestepping.
pub const VM_EVENT_FLAG_TOGGLE_SINGLESTEP: u32 = xen_abi::VM_EVENT_FLAG_TOGGLE_SINGLESTEP;
/// `VM_EVENT_FLAG_SET_EMUL_READ_DATA`: with EMULATE, the data reads return.
pub const VM_EVENT_FLAG_SET_EMUL_READ_DATA: u32 = xen_abi::VM_EVENT_FLAG_SET_EMUL_READ_DATA;
/// `VM_EVENT_FLAG_DENY`: in a response, deny the pending write.
pub const VM_EVENT_FLAG_DENY: u32 = xen_abi::VM_EVENT_FLAG_DENY;
/// `VM_EVENT_FLAG_ALTERNATE_P2M`: `altp2m_idx` is meaningful.
pub const VM_EVENT_FLAG_ALTERNATE_P2M: u32 = xen_abi::VM_EVENT_FLAG_ALTERNATE_P2M;
/// `VM_EVENT_FLAG_SET_REGISTERS`: in a response, load the registers given.
pub const VM_EVENT_FLAG_SET_REGISTERS: u32 = xen_abi::VM_EVENT_FLAG_SET_REGISTERS;
/// `VM_EVENT_FLAG_SET_EMUL_INSN_DATA`: with EMULATE, the instruction bytes.
pub const VM_EVENT_FLAG_SET_EMUL_INSN_DATA: u32 = xen_abi::VM_EVENT_FLAG_SET_EMUL_INSN_DATA;
/// `VM_EVENT_FLAG_GET_NEXT_INTERRUPT`: report the next interrupt.
pub const VM_EVENT_FLAG_GET_NEXT_INTERRUPT: u32 = xen_abi::VM_EVENT_FLAG_GET_NEXT_INTERRUPT;
/// `VM_EVENT_FLAG_FAST_SINGLESTEP`: singlestep in another altp2m view.
pub const VM_EVENT_FLAG_FAST_SINGLESTEP: u32 = xen_abi::VM_EVENT_FLAG_FAST_SINGLESTEP;
/// `VM_EVENT_FLAG_NESTED_P2M`: the event happened in a nested guest.
pub const VM_EVENT_FLAG_NESTED_P2M: u32 = xen_abi::VM_EVENT_FLAG_NESTED_P2M;
/// `VM_EVENT_FLAG_RESET_VMTRACE`: in a response, reset the vmtrace buffer.
pub const VM_EVENT_FLAG_RESET_VMTRACE: u32 = xen_abi::VM_EVENT_FLAG_RESET_VMTRACE;
/// `VM_EVENT_FLAG_RESET_FORK_STATE`: in a response, reset a fork's vCPU.
pub const VM_EVENT_FLAG_RESET_FORK_STATE: u32 = xen_abi::VM_EVENT_FLAG_RESET_FORK_STATE;
/// `VM_EVENT_FLAG_RESET_FORK_MEMORY`: in a response, reset a fork's memory.
pub const VM_EVENT_FLAG_RESET_FORK_MEMORY: u32 = xen_abi::VM_EVENT_FLAG_RESET_FORK_MEMORY;
/// `VM_EVENT_FLAG_RESPONSE_REFUSED` (our patch 0013): in a request, the
/// vCPU's previous response asked for something Xen cannot do for this domain (for PV:
/// EMULATE and its variants, SET_REGISTERS, singlestep, altp2m, next interrupt, vmtrace);
/// the vCPU resumed without it, so this request may report the same access again.
pub const VM_EVENT_FLAG_RESPONSE_REFUSED: u32 = xen_abi::VM_EVENT_FLAG_RESPONSE_REFUSED;

/// Every `VM_EVENT_FLAG_*` of Xen 4.17 with its name in the header, lower case and without
/// the prefix (`vcpu_paused`), in bit order: so traces and messages name flags the way
/// `vm_event.h` does, from one table (with our patches' flags).
pub const VM_EVENT_FLAG_NAMES: [(u32, &str); 17] = [
    (VM_EVENT_FLAG_VCPU_PAUSED, "vcpu_paused"),
    (VM_EVENT_FLAG_FOREIGN, "foreign"),
    (VM_EVENT_FLAG_EMULATE, "emulate"),
    (VM_EVENT_FLAG_EMULATE_NOWRITE, "emulate_nowrite"),
    (VM_EVENT_FLAG_TOGGLE_SINGLESTEP, "toggle_singlestep"),
    (VM_EVENT_FLAG_SET_EMUL_READ_DATA, "set_emul_read_data"),
    (VM_EVENT_FLAG_DENY, "deny"),
    (VM_EVENT_FLAG_ALTERNATE_P2M, "alternate_p2m"),
    (VM_EVENT_FLAG_SET_REGISTERS, "set_registers"),
    (VM_EVENT_FLAG_SET_EMUL_INSN_DATA, "set_emul_insn_data"),
    (VM_EVENT_FLAG_GET_NEXT_INTERRUPT, "get_next_interrupt"),
    (VM_EVENT_FLAG_FAST_SINGLESTEP, "fast_singlestep"),
    (VM_EVENT_FLAG_NESTED_P2M, "nested_p2m"),
    (VM_EVENT_FLAG_RESET_VMTRACE, "reset_vmtrace"),
    (VM_EVENT_FLAG_RESET_FORK_STATE, "reset_fork_state"),
    (VM_EVENT_FLAG_RESET_FORK_MEMORY, "reset_fork_memory"),
    (VM_EVENT_FLAG_RESPONSE_REFUSED, "response_refused"),
];

/// `VM_EVENT_REASON_MEM_ACCESS`: a memory access violation.
pub const VM_EVENT_REASON_MEM_ACCESS: u32 = xen_abi::VM_EVENT_REASON_MEM_ACCESS;

/// `MEM_ACCESS_R`: the violation was a read.
pub const MEM_ACCESS_R: u32 = xen_abi::MEM_ACCESS_R;
/// `MEM_ACCESS_W`: the violation was a write.
pub const MEM_ACCESS_W: u32 = xen_abi::MEM_ACCESS_W;
/// `MEM_ACCESS_X`: the violation was an instruction fetch.
pub const MEM_ACCESS_X: u32 = xen_abi::MEM_ACCESS_X;
/// `MEM_ACCESS_GLA_VALID`: `MemAccess::gla` holds a guest linear address.
pub const MEM_ACCESS_GLA_VALID: u32 = xen_abi::MEM_ACCESS_GLA_VALID;
/// `MEM_ACCESS_FAULT_WITH_GLA`: the violation was the access to the gla.
pub const MEM_ACCESS_FAULT_WITH_GLA: u32 = xen_abi::MEM_ACCESS_FAULT_WITH_GLA;
/// `MEM_ACCESS_FAULT_IN_GPT`: the violation happened while walking the
/// guest's page tables to translate the gla.
pub const MEM_ACCESS_FAULT_IN_GPT: u32 = xen_abi::MEM_ACCESS_FAULT_IN_GPT;
/// `MEM_ACCESS_FAULT_HYPERCALL` (our patch 0022): the violation is a
/// write a hypercall was about to make for the guest (PV: `mmu_update`,
/// `update_va_mapping`, `update_descriptor`, `MMUEXT_CLEAR_PAGE`, `MMUEXT_COPY_PAGE`);
/// `MemAccess::offset` says where in the frame, `MemAccess::gla` is not valid. The
/// hypercall is restarted once the vCPU is released.
pub const MEM_ACCESS_FAULT_HYPERCALL: u32 = xen_abi::MEM_ACCESS_FAULT_HYPERCALL;
/// `MEM_ACCESS_GFN_IS_MFN` (our patch 0015): `MemAccess::gfn` holds a
/// machine frame number, as in every request about a PV domain.
pub const MEM_ACCESS_GFN_IS_MFN: u32 = xen_abi::MEM_ACCESS_GFN_IS_MFN;

/// Every `MEM_ACCESS_*` flag of Xen 4.17 (and of our patches) with its name (lower case,
/// no prefix), in bit order, as [`VM_EVENT_FLAG_NAMES`].
pub const MEM_ACCESS_FLAG_NAMES: [(u32, &str); 8] = [
    (MEM_ACCESS_R, "r"),
    (MEM_ACCESS_W, "w"),
    (MEM_ACCESS_X, "x"),
    (MEM_ACCESS_GLA_VALID, "gla_valid"),
    (MEM_ACCESS_FAULT_WITH_GLA, "fault_with_gla"),
    (MEM_ACCESS_FAULT_IN_GPT, "fault_in_gpt"),
    (MEM_ACCESS_FAULT_HYPERCALL, "fault_hypercall"),
    (MEM_ACCESS_GFN_IS_MFN, "gfn_is_mfn"),
];

/// `struct vm_event_mem_access`: the `u.mem_access` member of a request (as large as the
/// whole union `u`), as generated from the header: `gfn` (the machine frame when `flags`
/// has [`MEM_ACCESS_GFN_IS_MFN`], as for every PV domain), `offset` (of the access within
/// the frame), `gla` (valid if `flags` has [`MEM_ACCESS_GLA_VALID`]), `flags`
/// (`MEM_ACCESS_*`).
pub type MemAccess = vm_event_mem_access;

/// `struct vm_event_x86_selector_reg`: `uint32_t limit : 20; uint32_t ar : 12;`, which gcc
/// allocates from the least significant bit on x86. [`RegsX86`]'s selectors are the
/// generated struct, whose `limit()` and `ar()` read the same bits; this is the same word
/// as a number.
#[repr(transparent)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
pub struct SelectorReg(pub u32);

impl SelectorReg {
    /// The 20-bit limit (shifted right by 12 when the granularity bit of `ar` is set).
    pub fn limit(self) -> u32 {
        self.0 & 0xf_ffff
    }

    /// The 12 access-rights bits.
    pub fn ar(self) -> u32 {
        self.0 >> 20
    }
}

/// `struct vm_event_regs_x86`: the `data.regs.x86` member of a request (as large as the
/// whole union `data`), as generated from the header.
pub type RegsX86 = vm_event_regs_x86;

/// `struct vm_event_st` (`vm_event_request_t`, `vm_event_response_t`): one ring entry.
///
/// The unions are given as the members a mem_access listener uses; each member is as large
/// as its union, so the layout is the header's (400 bytes). Other reasons' members alias
/// the same bytes.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
pub struct VmEvent {
    /// [`VM_EVENT_INTERFACE_VERSION`].
    pub version: u32,
    /// `VM_EVENT_FLAG_*`.
    pub flags: u32,
    /// `VM_EVENT_REASON_*`.
    pub reason: u32,
    /// The vCPU that raised the event.
    pub vcpu_id: u32,
    /// The altp2m view (request and response).
    pub altp2m_idx: u16,
    /// Padding.
    pub _pad: [u16; 3],
    /// `u.mem_access` (the union `u`), meaningful for [`VM_EVENT_REASON_MEM_ACCESS`].
    pub mem_access: MemAccess,
    /// `data.regs.x86` (the union `data`): the vCPU's registers at the event.
    pub regs: RegsX86,
}

impl VmEvent {
    /// The response to this request, built as xen-access builds it: the current version,
    /// the same vCPU and reason, [`VM_EVENT_FLAG_VCPU_PAUSED`] kept (so Xen unpauses the
    /// vCPU), and for a mem_access event the same `u.mem_access`.
    pub fn response(&self) -> VmEvent {
        let mut response = VmEvent {
            version: VM_EVENT_INTERFACE_VERSION,
            flags: self.flags & VM_EVENT_FLAG_VCPU_PAUSED,
            reason: self.reason,
            vcpu_id: self.vcpu_id,
            ..VmEvent::default()
        };
        if self.reason == VM_EVENT_REASON_MEM_ACCESS {
            response.mem_access = self.mem_access;
        }
        response
    }

    /// The frame a mem_access request names, typed by what Xen says it is (a machine frame
    /// with [`MEM_ACCESS_GFN_IS_MFN`], as for every PV domain; else a gfn); `None` for
    /// another reason, whose union member holds no frame.
    pub fn access_frame(&self) -> Option<AccessFrame> {
        let kind = match self.mem_access.flags & MEM_ACCESS_GFN_IS_MFN {
            0 => FrameKind::Gfn,
            _ => FrameKind::Mfn,
        };
        (self.reason == VM_EVENT_REASON_MEM_ACCESS)
            .then(|| AccessFrame::new(kind, self.mem_access.gfn))
    }
}

/// The shared header of `struct vm_event_sring` (`DEFINE_RING_TYPES`), 64 bytes; the
/// entries follow it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable)]
pub struct SringHeader {
    /// Requests produced (written by Xen).
    pub req_prod: u32,
    /// Xen notifies when `req_prod` passes this (written by the listener).
    pub req_event: u32,
    /// Responses produced (written by the listener).
    pub rsp_prod: u32,
    /// The listener notifies when `rsp_prod` passes this (written by Xen).
    pub rsp_event: u32,
    /// `union { .. } pvt` (4 bytes) and `uint8_t __pad[44]`.
    pub pad: [u8; 48],
}

/// Bytes of the ring's shared page.
pub const RING_PAGE_SIZE: usize = 4096;

/// Where the entries start: `offsetof(struct vm_event_sring, ring)`.
const ENTRIES_OFFSET: usize = offset_of!(vm_event_sring, ring);

/// Entries in a one-page ring: `__CONST_RING_SIZE(vm_event, 4096)` =
/// `__RD32((4096 - 64) / 400)` = `__RD32(10)` = 8.
pub const RING_SIZE: u32 =
    round_down_power_of_two(((RING_PAGE_SIZE - ENTRIES_OFFSET) / size_of::<VmEvent>()) as u32);

/// `__RD32`: rounds a non-zero `n` down to a power of two.
const fn round_down_power_of_two(n: u32) -> u32 {
    1 << (31 - n.leading_zeros())
}

same_layout!(SringHeader, [u8; ENTRIES_OFFSET], {});
same_layout!(VmEvent, vm_event_st, {
    version => version,
    flags => flags,
    reason => reason,
    vcpu_id => vcpu_id,
    altp2m_idx => altp2m_idx,
    _pad => _pad,
    mem_access => u,
    regs => data,
});
same_layout!(SelectorReg, xen_abi::vm_event_x86_selector_reg, {});
// The header's fields, where vm_event_sring has them.
const _: () = {
    assert!(offset_of!(SringHeader, req_prod) == offset_of!(vm_event_sring, req_prod));
    assert!(offset_of!(SringHeader, req_event) == offset_of!(vm_event_sring, req_event));
    assert!(offset_of!(SringHeader, rsp_prod) == offset_of!(vm_event_sring, rsp_prod));
    assert!(offset_of!(SringHeader, rsp_event) == offset_of!(vm_event_sring, rsp_event));
    assert!(offset_of!(SringHeader, pad) == offset_of!(vm_event_sring, pvt));
};
const _: () = assert!(ENTRIES_OFFSET + RING_SIZE as usize * size_of::<VmEvent>() <= RING_PAGE_SIZE);

/// [`BackRing::put_response`] was called with no request awaiting a response: every request
/// taken has had one, and the next slot may hold a request Xen has not had answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingFull;

impl fmt::Display for RingFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("vm_event ring: no request awaits a response")
    }
}

impl std::error::Error for RingFull {}

/// The page of a ring made by [`BackRing::new_owned`].
#[repr(C, align(4096))]
struct OwnedPage([u8; RING_PAGE_SIZE]);

/// The back end of a vm_event ring (`vm_event_back_ring_t`): takes Xen's requests and puts
/// the listener's responses.
///
/// The ring borrows the [`RingMapping`] its page belongs to (`'m`), so the mapping outlives
/// it; a ring on a page of its own ([`BackRing::new_owned`]) is `BackRing<'static>`.
///
/// # Invariants
///
/// `page` is valid for reads and writes of [`RING_PAGE_SIZE`] bytes, aligned to 8, for the
/// life of the ring (`'m`), and only Xen (or the test's front end) and this ring access it;
/// when `owned`, it is an [`OwnedPage`] from `Box::into_raw`, freed on drop.
/// `req_cons - rsp_prod_pvt` (wrapping) is at most [`RING_SIZE`].
///
/// # Example
///
/// A listener's loop; here on an owned page, where a listener uses
/// `BackRing::new(&mut mapping)` over its [`RingMapping`].
///
/// ```
/// use libxc::ring::{BackRing, VM_EVENT_INTERFACE_VERSION};
///
/// let mut ring = BackRing::new_owned();
/// loop {
///     while let Some(request) = ring.take_request() {
///         assert_eq!(request.version, VM_EVENT_INTERFACE_VERSION);
///         ring.put_response(&request.response())
///             .expect("one response per request taken");
///     }
///     if ring.push_responses() {
///         // Notify Xen on the ring's event channel.
///     }
///     if !ring.final_check_for_requests() {
///         break; // A listener waits on the event channel here, then loops.
///     }
/// }
/// assert!(!ring.corrupt());
/// ```
#[derive(Debug)]
pub struct BackRing<'m> {
    page: NonNull<u8>,
    req_cons: u32,
    rsp_prod_pvt: u32,
    corrupt: Cell<bool>,
    owned: bool,
    /// The mapping `page` belongs to, borrowed exclusively for the ring's life.
    mapping: PhantomData<&'m mut RingMapping>,
}

// SAFETY: the ring owns its view of the page (or the page itself); the page is process-wide
// memory, usable from any thread.
unsafe impl Send for BackRing<'_> {}

impl<'m> BackRing<'m> {
    /// Attaches to the monitor ring `mapping` maps: `BACK_RING_ATTACH` at the shared
    /// `rsp_prod`.
    ///
    /// On a fresh ring (`SHARED_RING_INIT`, as Xen leaves it) that is `BACK_RING_INIT`.
    /// On a ring a previous listener used, requests it took but never answered are
    /// delivered again: their vCPUs are still paused waiting for a response. Whatever the
    /// page holds (a ring disabled and its page reused meanwhile), the ring reads and writes
    /// only inside it (see "Corrupt indexes" in the module's documentation).
    ///
    /// The mapping is borrowed exclusively: nothing else in this process reaches the page
    /// through it while the ring exists. (Two rings on two mappings of the same frame would
    /// take the same requests, as two listeners would: map a domain's ring once.)
    pub fn new(mapping: &'m mut RingMapping) -> BackRing<'m> {
        // SAFETY: a RingMapping maps its one page read-write, page-aligned, for as long as it
        // lives, which the borrow `'m` covers; the borrow is exclusive, so this ring is the
        // page's only user in this process.
        unsafe { BackRing::attach(mapping.as_ptr()) }
    }

    /// [`BackRing::new`] on a raw page.
    ///
    /// # Safety
    ///
    /// `page` must be valid for reads and writes of [`RING_PAGE_SIZE`] bytes, aligned to 8,
    /// for `'m`, and nothing else in this process may access it while the ring exists.
    ///
    /// # Panics
    ///
    /// If `page` is null or misaligned.
    unsafe fn attach(page: *mut u8) -> BackRing<'m> {
        let page = NonNull::new(page).expect("vm_event ring page is null");
        assert!(
            page.as_ptr().align_offset(8) == 0,
            "vm_event ring page is misaligned"
        );
        let mut ring = BackRing {
            page,
            req_cons: 0,
            rsp_prod_pvt: 0,
            corrupt: Cell::new(false),
            owned: false,
            mapping: PhantomData,
        };
        let start = ring
            .index(offset_of!(SringHeader, rsp_prod))
            .load(Ordering::Relaxed);
        ring.req_cons = start;
        ring.rsp_prod_pvt = start;
        ring
    }

    /// The start of the shared page.
    pub fn page(&self) -> *mut u8 {
        self.page.as_ptr()
    }

    /// `req_cons`: requests taken so far (free-running).
    pub fn req_cons(&self) -> u32 {
        self.req_cons
    }

    /// `rsp_prod_pvt`: responses put so far (free-running), published or not.
    pub fn rsp_prod_pvt(&self) -> u32 {
        self.rsp_prod_pvt
    }

    /// A snapshot of the shared header, for diagnostics.
    pub fn header(&self) -> SringHeader {
        let load = |offset| self.index(offset).load(Ordering::Relaxed);
        let mut header = SringHeader {
            req_prod: load(offset_of!(SringHeader, req_prod)),
            req_event: load(offset_of!(SringHeader, req_event)),
            rsp_prod: load(offset_of!(SringHeader, rsp_prod)),
            rsp_event: load(offset_of!(SringHeader, rsp_event)),
            pad: [0; 48],
        };
        for (i, byte) in header.pad.iter_mut().enumerate() {
            // SAFETY: bytes 16..64 of the page (type invariant); a volatile read of a value
            // Xen does not change.
            *byte = unsafe { self.page.as_ptr().add(16 + i).read_volatile() };
        }
        header
    }

    /// Whether a shared index was found impossible (see the module's documentation). Sticky.
    pub fn corrupt(&self) -> bool {
        self.corrupt.get()
    }

    /// Requests that may be taken now: `XEN_RING_NR_UNCONSUMED_REQUESTS`, the smaller of the
    /// requests Xen published and the requests that can still be answered. 0 once corrupt.
    pub fn pending_requests(&self) -> u32 {
        if self.corrupt.get() {
            return 0;
        }
        let req_prod = self
            .index(offset_of!(SringHeader, req_prod))
            .load(Ordering::Relaxed);
        let published = req_prod.wrapping_sub(self.req_cons);
        if published > RING_SIZE || req_prod.wrapping_sub(self.rsp_prod_pvt) > RING_SIZE {
            self.corrupt.set(true);
            return 0;
        }
        let answerable = RING_SIZE - self.req_cons.wrapping_sub(self.rsp_prod_pvt);
        published.min(answerable)
    }

    /// Takes the next request (xen-access's `get_request`): a volatile copy of entry
    /// `req_cons`, read after an acquire fence (`xen_rmb`), then `req_cons` advances. `None`
    /// when nothing is pending or the ring is corrupt.
    ///
    /// `req_event` is left to [`BackRing::final_check_for_requests`]; Xen 4.17 notifies on
    /// every request whatever it holds.
    pub fn take_request(&mut self) -> Option<VmEvent> {
        if self.pending_requests() == 0 {
            return None;
        }
        // Entries are read only after req_prod says they are there.
        fence(Ordering::Acquire);
        // SAFETY: slot() is inside the page, aligned to 8 (type invariant); any bits are a
        // VmEvent (FromBytes).
        let request = unsafe { self.slot(self.req_cons).read_volatile() };
        self.req_cons = self.req_cons.wrapping_add(1);
        Some(request)
    }

    /// Puts `response` in entry `rsp_prod_pvt` and advances it; Xen sees it after
    /// [`BackRing::push_responses`]. Fails when every request taken has been answered.
    pub fn put_response(&mut self, response: &VmEvent) -> Result<(), RingFull> {
        if self.req_cons == self.rsp_prod_pvt {
            return Err(RingFull);
        }
        // SAFETY: slot() is inside the page, aligned to 8 (type invariant); the slot held a
        // request already taken, which Xen does not touch until it consumes this response.
        unsafe { self.slot(self.rsp_prod_pvt).write_volatile(*response) };
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Publishes the responses put so far: `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`. A release
    /// fence (`xen_wmb`), the shared `rsp_prod` set, a full fence (`xen_mb`), then whether
    /// Xen asked to be notified: the new responses passed its `rsp_event`
    /// (`vm_event_get_response` sets it to `rsp_cons + 1`, then takes its lock, a full
    /// barrier on x86, before it re-reads `rsp_prod`). xen-access notifies after every batch
    /// whatever this says; that is also correct, only costlier.
    pub fn push_responses(&mut self) -> bool {
        let rsp_prod = self.index(offset_of!(SringHeader, rsp_prod));
        let old = rsp_prod.load(Ordering::Relaxed);
        let new = self.rsp_prod_pvt;
        fence(Ordering::Release);
        rsp_prod.store(new, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let rsp_event = self
            .index(offset_of!(SringHeader, rsp_event))
            .load(Ordering::Relaxed);
        new.wrapping_sub(rsp_event) < new.wrapping_sub(old)
    }

    /// Whether requests are pending, asking Xen to notify on the next one first when none
    /// are: `RING_FINAL_CHECK_FOR_REQUESTS` (`req_event = req_cons + 1`, a full fence, check
    /// again). Call before sleeping on the event channel. False once corrupt.
    pub fn final_check_for_requests(&mut self) -> bool {
        if self.pending_requests() > 0 {
            return true;
        }
        if self.corrupt.get() {
            return false;
        }
        self.index(offset_of!(SringHeader, req_event))
            .store(self.req_cons.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.pending_requests() > 0
    }

    /// The shared index at byte `offset` of the header.
    fn index(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset + size_of::<u32>() <= ENTRIES_OFFSET);
        // SAFETY: inside the page and aligned to 4 (type invariant); the page outlives
        // `self`; Xen accesses the index only as a whole u32.
        unsafe { AtomicU32::from_ptr(self.page.as_ptr().add(offset).cast()) }
    }

    /// The entry for free-running index `idx`: `RING_GET_REQUEST` / `RING_GET_RESPONSE`.
    fn slot(&self, idx: u32) -> *mut VmEvent {
        let slot = (idx & (RING_SIZE - 1)) as usize;
        // SAFETY: ENTRIES_OFFSET + slot * 400 + 400 <= RING_PAGE_SIZE (asserted at compile
        // time), so the pointer stays inside the page.
        unsafe {
            self.page
                .as_ptr()
                .add(ENTRIES_OFFSET + slot * size_of::<VmEvent>())
                .cast()
        }
    }
}

impl BackRing<'static> {
    /// A ring on a zeroed page of its own, initialised with `SHARED_RING_INIT`: for tests and
    /// simulations, which play Xen's part through [`BackRing::page`].
    pub fn new_owned() -> BackRing<'static> {
        let page = Box::into_raw(Box::new(OwnedPage([0; RING_PAGE_SIZE]))).cast::<u8>();
        let header = SringHeader {
            req_prod: 0,
            req_event: 1,
            rsp_prod: 0,
            rsp_event: 1,
            pad: [0; 48],
        };
        // SAFETY: a fresh, page-aligned allocation nobody else knows of.
        unsafe { page.cast::<SringHeader>().write(header) };
        // SAFETY: as above; the ring frees it on drop (owned is set below).
        let mut ring = unsafe { BackRing::attach(page) };
        ring.owned = true;
        ring
    }
}

impl Drop for BackRing<'_> {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: an owned ring's page came from Box::into_raw of an OwnedPage (type
            // invariant) and is freed only here.
            drop(unsafe { Box::from_raw(self.page.as_ptr().cast::<OwnedPage>()) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Xen's side, as `xen/common/vm_event.c` drives it: `vm_event_put_request` and
    /// `vm_event_get_response` over a `vm_event_front_ring_t`.
    struct Front {
        page: *mut u8,
        req_prod_pvt: u32,
        rsp_cons: u32,
    }

    impl Front {
        /// `FRONT_RING_ATTACH` at the shared `req_prod` (0 on a fresh ring).
        fn attach(ring: &BackRing) -> Front {
            let page = ring.page();
            let start = ring.header().req_prod;
            Front {
                page,
                req_prod_pvt: start,
                rsp_cons: start,
            }
        }

        fn index(&self, offset: usize) -> &AtomicU32 {
            // SAFETY: the BackRing this front was attached to keeps the page alive while the
            // test uses both; the index is inside it and aligned.
            unsafe { AtomicU32::from_ptr(self.page.add(offset).cast()) }
        }

        fn slot(&self, idx: u32) -> *mut VmEvent {
            let offset = ENTRIES_OFFSET + (idx & (RING_SIZE - 1)) as usize * size_of::<VmEvent>();
            // SAFETY: inside the page, as BackRing::slot.
            unsafe { self.page.add(offset).cast() }
        }

        /// `RING_FREE_REQUESTS`.
        fn free_requests(&self) -> u32 {
            RING_SIZE - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
        }

        /// `vm_event_put_request` (whose callers reserved a slot first): copy to
        /// `RING_GET_REQUEST(req_prod_pvt)`, advance, `RING_PUSH_REQUESTS`. False when full.
        fn put_request(&mut self, request: &VmEvent) -> bool {
            if !self.produce(request) {
                return false;
            }
            fence(Ordering::Release);
            self.index(offset_of!(SringHeader, req_prod))
                .store(self.req_prod_pvt, Ordering::Relaxed);
            true
        }

        /// Copies a request without publishing it.
        fn produce(&mut self, request: &VmEvent) -> bool {
            if self.free_requests() == 0 {
                return false;
            }
            // SAFETY: a free slot inside the page; the back end reads it only once published.
            unsafe { self.slot(self.req_prod_pvt).write_volatile(*request) };
            self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
            true
        }

        /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`.
        fn push_requests_and_check_notify(&mut self) -> bool {
            let req_prod = self.index(offset_of!(SringHeader, req_prod));
            let old = req_prod.load(Ordering::Relaxed);
            let new = self.req_prod_pvt;
            fence(Ordering::Release);
            req_prod.store(new, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            let req_event = self
                .index(offset_of!(SringHeader, req_event))
                .load(Ordering::Relaxed);
            new.wrapping_sub(req_event) < new.wrapping_sub(old)
        }

        /// `vm_event_get_response`: copy, advance, `rsp_event = rsp_cons + 1`.
        fn get_response(&mut self) -> Option<VmEvent> {
            let rsp_prod = self
                .index(offset_of!(SringHeader, rsp_prod))
                .load(Ordering::Relaxed);
            if rsp_prod == self.rsp_cons {
                return None;
            }
            fence(Ordering::Acquire);
            // SAFETY: a published response inside the page.
            let response = unsafe { self.slot(self.rsp_cons).read_volatile() };
            self.rsp_cons = self.rsp_cons.wrapping_add(1);
            self.index(offset_of!(SringHeader, rsp_event))
                .store(self.rsp_cons.wrapping_add(1), Ordering::Relaxed);
            Some(response)
        }

        /// Overwrites a shared index, as a bug or a wrong page would.
        fn poke(&self, offset: usize, value: u32) {
            self.index(offset).store(value, Ordering::Relaxed);
        }
    }

    /// A ring whose shared indexes all start at `start`, as after `start` round trips:
    /// `SHARED_RING_INIT` moved along, then `BACK_RING_ATTACH` and `FRONT_RING_ATTACH`.
    fn ring_at(start: u32) -> (BackRing<'static>, Front) {
        let mut ring = BackRing::new_owned();
        let front = Front::attach(&ring);
        front.poke(offset_of!(SringHeader, req_prod), start);
        front.poke(offset_of!(SringHeader, rsp_prod), start);
        front.poke(offset_of!(SringHeader, req_event), start.wrapping_add(1));
        front.poke(offset_of!(SringHeader, rsp_event), start.wrapping_add(1));
        (ring.req_cons, ring.rsp_prod_pvt) = (start, start);
        let front = Front::attach(&ring);
        (ring, front)
    }

    /// A mem_access request for frame `gfn` on vCPU `vcpu`, the vCPU paused.
    fn request(gfn: u64, vcpu: u32) -> VmEvent {
        VmEvent {
            version: VM_EVENT_INTERFACE_VERSION,
            flags: VM_EVENT_FLAG_VCPU_PAUSED,
            reason: VM_EVENT_REASON_MEM_ACCESS,
            vcpu_id: vcpu,
            mem_access: MemAccess {
                gfn,
                offset: 0x123,
                gla: 0xffff_8000_0000_0123,
                flags: MEM_ACCESS_W | MEM_ACCESS_GLA_VALID | MEM_ACCESS_FAULT_WITH_GLA,
                _pad: 0,
            },
            regs: RegsX86 {
                rip: 0xffff_ffff_8100_0000 + gfn,
                cr3: 0x1234_5000,
                ..RegsX86::default()
            },
            ..VmEvent::default()
        }
    }

    #[test]
    fn a_one_page_ring_holds_eight_entries() {
        // __CONST_RING_SIZE(vm_event, 4096) = __RD32((4096 - 64) / 400) = __RD32(10).
        assert_eq!(RING_SIZE, 8);
    }

    #[test]
    fn flag_name_tables_name_each_bit_once_in_order() {
        for (index, (bit, _)) in VM_EVENT_FLAG_NAMES.iter().enumerate() {
            assert_eq!(*bit, 1 << index);
        }
        for (index, (bit, _)) in MEM_ACCESS_FLAG_NAMES.iter().enumerate() {
            assert_eq!(*bit, 1 << index);
        }
        assert_eq!(VM_EVENT_FLAG_NAMES[0].1, "vcpu_paused");
        assert_eq!(MEM_ACCESS_FLAG_NAMES[5].1, "fault_in_gpt");
        assert_eq!(
            MEM_ACCESS_FLAG_NAMES[6],
            (MEM_ACCESS_FAULT_HYPERCALL, "fault_hypercall")
        );
    }

    #[test]
    fn selector_bitfields_split_as_gcc_allocates_them() {
        // gcc stored { .limit = 0xabcde, .ar = 0x123 } as 0x123abcde.
        let selector = SelectorReg(0x123a_bcde);
        assert_eq!(selector.limit(), 0xa_bcde);
        assert_eq!(selector.ar(), 0x123);
        // And as bindgen's accessors of the header's bitfields read the same word.
        let generated =
            xen_abi::vm_event_x86_selector_reg::read_from_bytes(&0x123a_bcde_u32.to_ne_bytes())
                .unwrap();
        assert_eq!((generated.limit(), generated.ar()), (0xa_bcde, 0x123));
    }

    #[test]
    fn a_fresh_ring_is_as_shared_ring_init_leaves_it() {
        let ring = BackRing::new_owned();
        let header = ring.header();
        assert_eq!((header.req_prod, header.req_event), (0, 1));
        assert_eq!((header.rsp_prod, header.rsp_event), (0, 1));
        assert_eq!((ring.req_cons(), ring.rsp_prod_pvt()), (0, 0));
        assert_eq!(ring.pending_requests(), 0);
        assert_eq!(ring.page().align_offset(RING_PAGE_SIZE), 0);
    }

    #[test]
    fn one_request_and_its_response_round_trip() {
        let mut ring = BackRing::new_owned();
        let mut xen = Front::attach(&ring);
        let sent = request(0x42, 1);
        assert!(xen.put_request(&sent));

        assert_eq!(ring.pending_requests(), 1);
        let taken = ring.take_request().expect("a request");
        assert_eq!(taken, sent);
        assert_eq!(ring.take_request(), None);

        let response = taken.response();
        assert_eq!(response.flags, VM_EVENT_FLAG_VCPU_PAUSED);
        assert_eq!(response.mem_access, sent.mem_access);
        assert_eq!(response.regs, RegsX86::default());
        assert_eq!(ring.put_response(&response), Ok(()));
        assert_eq!(xen.get_response(), None, "not published yet");
        assert!(
            ring.push_responses(),
            "rsp_event is 1: Xen wants the first response"
        );
        assert_eq!(xen.get_response(), Some(response));
        assert_eq!(ring.header().rsp_event, 2);
        assert!(!ring.corrupt());
    }

    #[test]
    fn a_response_needs_a_request_taken() {
        let mut ring = BackRing::new_owned();
        let mut xen = Front::attach(&ring);
        assert_eq!(ring.put_response(&VmEvent::default()), Err(RingFull));
        assert!(xen.put_request(&request(1, 0)));
        assert_eq!(ring.put_response(&VmEvent::default()), Err(RingFull));
        let taken = ring.take_request().expect("a request");
        assert_eq!(ring.put_response(&taken.response()), Ok(()));
        assert_eq!(ring.put_response(&taken.response()), Err(RingFull));
    }

    #[test]
    fn indexes_wrap_past_u32_max() {
        let start = u32::MAX - 2;
        let (mut ring, mut xen) = ring_at(start);
        assert_eq!(ring.req_cons(), start);
        for gfn in 0..6 {
            assert!(xen.put_request(&request(gfn, 0)));
        }
        assert_eq!(ring.pending_requests(), 6);
        for gfn in 0..6 {
            let taken = ring.take_request().expect("a request");
            assert_eq!(taken.mem_access.gfn, gfn);
            ring.put_response(&taken.response()).expect("room");
        }
        ring.push_responses();
        assert_eq!(ring.req_cons(), 3, "wrapped from u32::MAX - 2 by 6");
        assert_eq!(ring.header().rsp_prod, 3);
        for gfn in 0..6 {
            assert_eq!(xen.get_response().expect("a response").mem_access.gfn, gfn);
        }
        assert_eq!(xen.get_response(), None);
        assert!(!ring.corrupt());
    }

    #[test]
    fn a_full_ring_holds_eight_until_responses_are_consumed() {
        let (mut ring, mut xen) = ring_at(u32::MAX - 3);
        for gfn in 0..8 {
            assert!(xen.put_request(&request(gfn, 0)), "request {gfn}");
        }
        assert_eq!(xen.free_requests(), 0);
        assert!(!xen.put_request(&request(8, 0)), "no ninth slot");
        assert_eq!(ring.pending_requests(), 8);

        let taken: Vec<VmEvent> = std::iter::from_fn(|| ring.take_request()).collect();
        assert_eq!(taken.len(), 8);
        assert_eq!(ring.pending_requests(), 0);
        assert_eq!(
            xen.free_requests(),
            0,
            "taking frees nothing: Xen waits for responses"
        );

        for event in &taken[..3] {
            ring.put_response(&event.response()).expect("room");
        }
        assert_eq!(xen.free_requests(), 0, "unpublished responses free nothing");
        ring.push_responses();
        assert_eq!(xen.free_requests(), 0, "published but not consumed");
        while xen.get_response().is_some() {}
        assert_eq!(xen.free_requests(), 3);

        for event in &taken[3..] {
            ring.put_response(&event.response()).expect("room");
        }
        assert_eq!(ring.put_response(&taken[0].response()), Err(RingFull));
        ring.push_responses();
        while xen.get_response().is_some() {}
        assert_eq!(xen.free_requests(), 8);
        assert!(!ring.corrupt());
    }

    #[test]
    fn taking_stops_at_requests_that_could_not_be_answered() {
        let (mut ring, mut xen) = ring_at(0);
        for gfn in 0..8 {
            assert!(xen.put_request(&request(gfn, 0)));
        }
        for _ in 0..5 {
            ring.take_request().expect("a request");
        }
        // XEN_RING_NR_UNCONSUMED_REQUESTS: min(8 - 5 published, 8 - 5 answerable).
        assert_eq!(ring.pending_requests(), 3);
    }

    #[test]
    fn push_notifies_only_when_xen_asked() {
        let (mut ring, mut xen) = ring_at(u32::MAX);
        for gfn in 0..4 {
            assert!(xen.put_request(&request(gfn, 0)));
        }
        let taken: Vec<VmEvent> = std::iter::from_fn(|| ring.take_request()).collect();

        assert!(!ring.push_responses(), "nothing new: no notification");
        ring.put_response(&taken[0].response()).expect("room");
        assert!(ring.push_responses(), "passes rsp_event = start + 1");
        ring.put_response(&taken[1].response()).expect("room");
        assert!(
            !ring.push_responses(),
            "Xen has not consumed the first yet: rsp_event is behind, no new notification"
        );
        assert!(xen.get_response().is_some());
        assert!(xen.get_response().is_some());
        ring.put_response(&taken[2].response()).expect("room");
        ring.put_response(&taken[3].response()).expect("room");
        assert!(
            ring.push_responses(),
            "Xen caught up and set rsp_event = rsp_cons + 1"
        );
    }

    #[test]
    fn final_check_asks_for_a_notification_before_sleeping() {
        let (mut ring, mut xen) = ring_at(u32::MAX - 1);
        assert!(xen.produce(&request(7, 0)));
        assert!(
            xen.push_requests_and_check_notify(),
            "req_event = start + 1"
        );
        assert!(ring.final_check_for_requests(), "a request is pending");
        ring.take_request().expect("a request");

        assert!(xen.produce(&request(8, 0)));
        assert!(
            !xen.push_requests_and_check_notify(),
            "req_event not moved since: no notification asked"
        );
        assert!(ring.final_check_for_requests(), "the re-check finds it");
        ring.take_request().expect("a request");

        assert!(!ring.final_check_for_requests(), "nothing pending");
        assert_eq!(ring.header().req_event, ring.req_cons().wrapping_add(1));
        assert!(xen.produce(&request(9, 0)));
        assert!(
            xen.push_requests_and_check_notify(),
            "the next request notifies"
        );
        assert_eq!(ring.take_request().map(|r| r.mem_access.gfn), Some(9));
    }

    #[test]
    fn a_req_prod_jump_marks_the_ring_corrupt() {
        let (mut ring, mut xen) = ring_at(u32::MAX - 1);
        assert!(xen.put_request(&request(1, 0)));
        let taken = ring.take_request().expect("a request");
        let req_prod = ring.header().req_prod;
        xen.poke(
            offset_of!(SringHeader, req_prod),
            req_prod.wrapping_add(1000),
        );

        assert_eq!(ring.pending_requests(), 0);
        assert!(ring.corrupt());
        assert_eq!(ring.take_request(), None);
        assert!(!ring.final_check_for_requests());

        // Sticky, even once the index looks sane again; the taken request can be answered.
        xen.poke(offset_of!(SringHeader, req_prod), req_prod.wrapping_add(1));
        assert_eq!(ring.take_request(), None);
        assert_eq!(ring.put_response(&taken.response()), Ok(()));
        ring.push_responses();
        assert_eq!(xen.get_response().map(|r| r.mem_access.gfn), Some(1));
    }

    #[test]
    fn a_req_prod_moving_backwards_marks_the_ring_corrupt() {
        let (mut ring, mut xen) = ring_at(3);
        for gfn in 0..2 {
            assert!(xen.put_request(&request(gfn, 0)));
        }
        ring.take_request().expect("a request");
        ring.take_request().expect("a request");
        // Behind req_cons but not behind rsp_prod_pvt: only the first check catches it.
        xen.poke(offset_of!(SringHeader, req_prod), 4);
        assert_eq!(ring.pending_requests(), 0);
        assert!(ring.corrupt());
    }

    #[test]
    fn request_prod_overflow_marks_the_ring_corrupt() {
        let (mut ring, mut xen) = ring_at(0);
        for gfn in 0..8 {
            assert!(xen.put_request(&request(gfn, 0)));
        }
        for _ in 0..8 {
            ring.take_request().expect("a request");
        }
        // Nine requests beyond the responses: RING_REQUEST_PROD_OVERFLOW, though only one
        // is beyond req_cons.
        xen.poke(offset_of!(SringHeader, req_prod), 9);
        assert_eq!(ring.take_request(), None);
        assert!(ring.corrupt());
    }

    #[test]
    fn attaching_to_a_used_ring_delivers_unanswered_requests_again() {
        let (mut first, mut xen) = ring_at(u32::MAX - 1);
        for gfn in 0..3 {
            assert!(xen.put_request(&request(gfn, 0)));
        }
        let taken = first.take_request().expect("a request");
        first.put_response(&taken.response()).expect("room");
        first.push_responses();
        first.take_request().expect("a request"); // Taken, never answered.

        // SAFETY: `first` keeps the page alive and is not used again.
        let mut second = unsafe { BackRing::attach(first.page()) };
        let gfns: Vec<u64> = std::iter::from_fn(|| second.take_request())
            .map(|r| r.mem_access.gfn)
            .collect();
        assert_eq!(gfns, [1, 2]);
    }

    #[test]
    fn order_is_kept_across_many_wraps() {
        let (mut ring, mut xen) = ring_at(u32::MAX - 100);
        let (mut sent, mut received) = (0u64, 0u64);
        for round in 0..200u64 {
            let batch = round % 9; // 0..=8 requests: empty, partial and full rings.
            for _ in 0..batch {
                if xen.put_request(&request(sent, (sent % 4) as u32)) {
                    sent += 1;
                }
            }
            while let Some(taken) = ring.take_request() {
                assert_eq!(taken.mem_access.gfn, received, "FIFO");
                received += 1;
                ring.put_response(&taken.response()).expect("room");
                if received % 3 == 0 {
                    ring.push_responses();
                }
            }
            ring.push_responses();
            while let Some(response) = xen.get_response() {
                assert_eq!(response.vcpu_id, (response.mem_access.gfn % 4) as u32);
            }
        }
        assert_eq!(received, sent);
        assert!(sent > 700, "sent {sent}");
        assert!(!ring.corrupt());
    }

    #[test]
    fn a_concurrent_front_end_sees_every_response_in_order() {
        const EVENTS: u64 = 20_000;
        let (mut ring, xen) = ring_at(u32::MAX - 5);
        // The page outlives the scope (`ring` owns it); the front end gets its address.
        let (page, start) = (xen.page as usize, xen.req_prod_pvt);
        let deadline = Instant::now() + Duration::from_secs(30);
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut xen = Front {
                    page: page as *mut u8,
                    req_prod_pvt: start,
                    rsp_cons: start,
                };
                let (mut sent, mut answered) = (0, 0);
                while answered < EVENTS {
                    assert!(Instant::now() < deadline, "front end stuck at {answered}");
                    if sent < EVENTS && xen.put_request(&request(sent, 0)) {
                        sent += 1;
                    }
                    if let Some(response) = xen.get_response() {
                        assert_eq!(response.mem_access.gfn, answered, "responses in order");
                        answered += 1;
                    }
                    std::hint::spin_loop();
                }
            });
            let mut received = 0;
            while received < EVENTS {
                assert!(Instant::now() < deadline, "back end stuck at {received}");
                while let Some(taken) = ring.take_request() {
                    assert_eq!(taken.mem_access.gfn, received, "requests in order");
                    assert_eq!(
                        taken.regs.rip,
                        0xffff_ffff_8100_0000 + received,
                        "torn copy"
                    );
                    received += 1;
                    ring.put_response(&taken.response()).expect("room");
                }
                ring.push_responses();
                std::thread::yield_now();
            }
        });
        assert!(!ring.corrupt());
    }
}
