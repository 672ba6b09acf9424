//! The typed arguments of the hypercalls: wrappers of Xen's public structures (their
//! layouts are `xen_sys`'s) that the patterns build, and the ids they carry. The
//! structures only the wrappers of `calls` fill (`evtchn_*`, `sched_*`) are
//! `xen_sys`'s own, used there directly. What `xen_sys` lacks is `xen_abi`'s, under the
//! names the guest gives it.

use core::mem::{offset_of, size_of};

use super::abi::*;

pub use xen_abi::{
    gnttab_map_grant_ref as GnttabMapGrantRef, gnttab_unmap_grant_ref as GnttabUnmapGrantRef,
    vcpu_runstate_info as RunstateInfo, xen_domctl as Domctl, xen_mem_access_op as MemAccessOp,
    xen_mem_acquire_resource as MemAcquireResource, xen_memory_reservation as XenMemoryReservation,
    xencons_interface as XenconsInterface, UVMF_INVLPG,
};

/// Bytes of `xen_extraversion_t`, the string `XENVER_extraversion` fills (16).
pub const XEN_EXTRAVERSION_LEN: usize = size_of::<xen_abi::xen_extraversion_t>();

/// Bytes of [`RunstateInfo`] (48).
pub const RUNSTATE_SIZE: usize = size_of::<RunstateInfo>();

/// Bytes of [`XenconsInterface`]'s `in` ring (guest input, unused here).
pub const IN_RING_SIZE: u32 =
    (offset_of!(XenconsInterface, out) - offset_of!(XenconsInterface, in_)) as u32;

/// Bytes of [`XenconsInterface`]'s `out` ring: the header's `char out[2048]`, followed by
/// the indexes.
pub const OUT_RING_SIZE: u32 =
    (offset_of!(XenconsInterface, in_cons) - offset_of!(XenconsInterface, out)) as u32;

// Masking a free-running index (`MASK_XENCONS_IDX`) needs a power of two.
const _: () = assert!(OUT_RING_SIZE.is_power_of_two() && IN_RING_SIZE.is_power_of_two());

/// A read-write host mapping of `(dom, ref_)` at virtual address `host_addr`
/// (`GNTMAP_host_map`, no `GNTMAP_contains_pte`): `GNTTABOP_map_grant_ref`'s argument.
pub const fn grant_host_map(host_addr: u64, dom: DomId, ref_: u32) -> GnttabMapGrantRef {
    GnttabMapGrantRef {
        host_addr,
        flags: xen_abi::GNTMAP_host_map,
        ref_,
        dom: dom.0,
        status: 0,
        handle: 0,
        dev_bus_addr: 0,
    }
}

/// Whether a runstate reading's `state` is `RUNSTATE_running`.
pub fn runstate_running(info: &RunstateInfo) -> bool {
    u32::try_from(info.state) == Ok(xen_abi::RUNSTATE_running)
}

/// A domain id (`domid_t`, a `uint16_t`), including Xen's reserved ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomId(pub u16);

impl DomId {
    /// The control domain.
    pub const DOM0: Self = Self(0);
    /// `DOMID_SELF` (`xen.h`).
    pub const SELF: Self = Self::reserved(xen_abi::DOMID_SELF);
    /// `DOMID_XEN` (`xen.h`): owner of Xen's own pages; as a foreign domain "only
    /// permitted if the caller is privileged".
    pub const XEN: Self = Self::reserved(xen_abi::DOMID_XEN);
    /// `DOMID_INVALID` (`xen.h`): no domain's.
    pub const INVALID: Self = Self::reserved(xen_abi::DOMID_INVALID);

    /// One of `xen.h`'s reserved ids (`xen_mk_uint`s, so `u32`s that fit a `domid_t`).
    const fn reserved(id: u32) -> Self {
        assert!(id >= xen_abi::DOMID_FIRST_RESERVED && id <= xen_abi::DOMID_MASK);
        Self(id as u16)
    }
}

/// One request of an `mmu_update` batch: `struct mmu_update` (`xen.h`, as
/// `xen_sys::mmu_update`), built by its command. Reads its fields through `Deref`.
#[repr(transparent)]
#[derive(Clone, Copy, Debug)]
pub struct MmuUpdate(xen_sys::mmu_update);

impl MmuUpdate {
    /// `MMU_NORMAL_PT_UPDATE`: a checked `*entry_maddr = val`. `entry_maddr` is the
    /// machine address of an 8-byte aligned page-table entry.
    pub const fn normal_pt_update(entry_maddr: u64, val: u64) -> Self {
        Self(xen_sys::mmu_update {
            ptr: entry_maddr | xen_sys::MMU_NORMAL_PT_UPDATE as u64,
            val,
        })
    }

    /// `MMU_MACHPHYS_UPDATE`: set the M2P entry of machine frame `mfn` to `pfn`, as a
    /// PV kernel must after it gives a pseudo-physical frame a new machine frame.
    pub const fn machphys_update(mfn: u64, pfn: u64) -> Self {
        Self(xen_sys::mmu_update {
            ptr: (mfn << 12) | xen_sys::MMU_MACHPHYS_UPDATE as u64,
            val: pfn,
        })
    }
}

impl core::ops::Deref for MmuUpdate {
    type Target = xen_sys::mmu_update;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl PartialEq for MmuUpdate {
    fn eq(&self, other: &Self) -> bool {
        (self.ptr, self.val) == (other.ptr, other.val)
    }
}

impl Eq for MmuUpdate {}

/// One operation of an `mmuext_op` batch: `struct mmuext_op` (`xen.h`, as
/// `xen_sys::mmuext_op`), built by its command; `arg2` is unused by the commands here
/// (0).
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct MmuextOp(xen_sys::mmuext_op);

impl MmuextOp {
    /// Command `cmd` (`MMUEXT_*`) with `arg1` (a machine frame or a linear address:
    /// the union's two members are both `unsigned long`).
    const fn new(cmd: u32, arg1: u64) -> Self {
        Self(xen_sys::mmuext_op {
            cmd,
            arg1: xen_sys::mmuext_op__bindgen_ty_1 { mfn: arg1 },
            arg2: xen_sys::mmuext_op__bindgen_ty_2 { src_mfn: 0 },
        })
    }

    /// `MMUEXT_PIN_L1_TABLE` of machine frame `mfn`.
    pub const fn pin_l1_table(mfn: u64) -> Self {
        Self::new(xen_sys::MMUEXT_PIN_L1_TABLE, mfn)
    }

    /// `MMUEXT_UNPIN_TABLE` of machine frame `mfn`.
    pub const fn unpin_table(mfn: u64) -> Self {
        Self::new(xen_sys::MMUEXT_UNPIN_TABLE, mfn)
    }

    /// `MMUEXT_INVLPG_LOCAL` of virtual address `va`.
    pub const fn invlpg_local(va: u64) -> Self {
        Self::new(xen_sys::MMUEXT_INVLPG_LOCAL, va)
    }

    /// The command (`MMUEXT_*`).
    pub const fn cmd(&self) -> u32 {
        self.0.cmd
    }

    /// `arg1`: the machine frame or linear address.
    pub const fn arg1(&self) -> u64 {
        // SAFETY: both members of the union are `unsigned long` (u64) at offset 0, and
        // every constructor writes it: any bit pattern is a valid u64.
        unsafe { self.0.arg1.mfn }
    }
}

impl core::fmt::Debug for MmuextOp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MmuextOp")
            .field("cmd", &self.cmd())
            .field("arg1", &self.arg1())
            .finish()
    }
}

impl PartialEq for MmuextOp {
    fn eq(&self, other: &Self) -> bool {
        // `arg2` is 0 in every op built here.
        (self.cmd(), self.arg1()) == (other.cmd(), other.arg1())
    }
}

impl Eq for MmuextOp {}

/// An event channel port (`evtchn_port_t`, a `uint32_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvtchnPort(pub u32);

/// A vCPU id, as `VCPUOP_*` take it (`unsigned int vcpuid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuId(pub u32);

/// Why the domain shuts down (`SHUTDOWN_*` in `sched.h`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// `SHUTDOWN_poweroff`: "Domain exited normally. Clean up and kill."
    Poweroff = xen_sys::SHUTDOWN_poweroff,
    /// `SHUTDOWN_crash`: "Tell controller we've crashed."
    Crash = xen_sys::SHUTDOWN_crash,
}

/// One hypercall of a [`multicall`](super::multicall) batch: `struct multicall_entry`
/// (`xen.h`, as `xen_sys::multicall_entry`). Reads and writes its fields (`op`,
/// `result`, `args`) through `Deref`.
#[repr(transparent)]
#[derive(Clone, Copy, Debug)]
pub struct MulticallEntry(xen_sys::multicall_entry);

impl MulticallEntry {
    /// The batch entry for `call` (its number and five arguments; the sixth is unused
    /// by the hypercalls here), result 0.
    pub const fn new(call: Hypercall) -> Self {
        let [a0, a1, a2, a3, a4] = call.args;
        Self(xen_sys::multicall_entry {
            op: call.nr.get() as u64,
            result: 0,
            args: [a0, a1, a2, a3, a4, 0],
        })
    }

    /// The entry's result as a hypercall's: an error when negative.
    pub const fn check(&self) -> Result<u64, XenError> {
        XenError::check(self.0.result as i64)
    }
}

impl core::ops::Deref for MulticallEntry {
    type Target = xen_sys::multicall_entry;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl core::ops::DerefMut for MulticallEntry {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
