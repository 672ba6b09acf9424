//! The typed arguments of the hypercalls: Xen's public structures, `#[repr(C)]`, and
//! the ids they carry.

use super::abi::*;

/// A domain id (`domid_t`, a `uint16_t`), including Xen's reserved ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomId(pub u16);

impl DomId {
    /// The control domain.
    pub const DOM0: Self = Self(0);
    /// `#define DOMID_SELF           xen_mk_uint(0x7FF0)` (`xen.h`).
    pub const SELF: Self = Self(0x7FF0);
    /// `#define DOMID_XEN            xen_mk_uint(0x7FF2)` (`xen.h`): owner of Xen's
    /// own pages; as a foreign domain "only permitted if the caller is privileged".
    pub const XEN: Self = Self(0x7FF2);
}

/// `struct mmu_update { uint64_t ptr; uint64_t val; };` (`xen.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmuUpdate {
    /// Machine address of the page-table entry, with the `MMU_*` command in bits 1:0.
    pub ptr: u64,
    /// New contents of the entry.
    pub val: u64,
}

impl MmuUpdate {
    /// `MMU_NORMAL_PT_UPDATE`: a checked `*entry_maddr = val`. `entry_maddr` is the
    /// machine address of an 8-byte aligned page-table entry.
    pub const fn normal_pt_update(entry_maddr: u64, val: u64) -> Self {
        Self {
            ptr: entry_maddr | MMU_NORMAL_PT_UPDATE,
            val,
        }
    }

    /// `MMU_MACHPHYS_UPDATE`: set the M2P entry of machine frame `mfn` to `pfn`, as a
    /// PV kernel must after it gives a pseudo-physical frame a new machine frame.
    pub const fn machphys_update(mfn: u64, pfn: u64) -> Self {
        Self {
            ptr: (mfn << 12) | MMU_MACHPHYS_UPDATE,
            val: pfn,
        }
    }
}

/// `struct mmuext_op` (`xen.h`) for a 64-bit guest: `unsigned int cmd`, then the
/// unions `arg1` (`xen_pfn_t mfn` / `unsigned long linear_addr`) and `arg2`
/// (`nr_ents` / `vcpumask` / `src_mfn`), both 8 bytes, at offsets 8 and 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmuextOp {
    /// `MMUEXT_*`.
    pub cmd: u32,
    /// `arg1`: a machine frame or a linear address, depending on `cmd`.
    pub arg1: u64,
    /// `arg2`: unused by the commands here (0).
    pub arg2: u64,
}

impl MmuextOp {
    /// `MMUEXT_PIN_L1_TABLE` of machine frame `mfn`.
    pub const fn pin_l1_table(mfn: u64) -> Self {
        Self {
            cmd: MMUEXT_PIN_L1_TABLE,
            arg1: mfn,
            arg2: 0,
        }
    }

    /// `MMUEXT_UNPIN_TABLE` of machine frame `mfn`.
    pub const fn unpin_table(mfn: u64) -> Self {
        Self {
            cmd: MMUEXT_UNPIN_TABLE,
            arg1: mfn,
            arg2: 0,
        }
    }

    /// `MMUEXT_INVLPG_LOCAL` of virtual address `va`.
    pub const fn invlpg_local(va: u64) -> Self {
        Self {
            cmd: MMUEXT_INVLPG_LOCAL,
            arg1: va,
            arg2: 0,
        }
    }
}

/// `struct gnttab_map_grant_ref` (`grant_table.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GnttabMapGrantRef {
    /// IN: where to map (a virtual address of the caller with `GNTMAP_host_map`).
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN: the grant reference, in the granting domain's table.
    pub ref_: u32,
    /// IN: the granting domain.
    pub dom: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: the handle that unmaps it.
    pub handle: u32,
    /// OUT: the bus address, with `GNTMAP_device_map`.
    pub dev_bus_addr: u64,
}

impl GnttabMapGrantRef {
    /// A read-write host mapping of `(dom, ref_)` at virtual address `host_addr`.
    pub const fn host_map(host_addr: u64, dom: DomId, ref_: u32) -> Self {
        Self {
            host_addr,
            flags: GNTMAP_HOST_MAP,
            ref_,
            dom: dom.0,
            status: GNTST_OKAY,
            handle: 0,
            dev_bus_addr: 0,
        }
    }
}

/// `struct gnttab_unmap_grant_ref` (`grant_table.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GnttabUnmapGrantRef {
    /// IN: the host mapping's virtual address (0: none).
    pub host_addr: u64,
    /// IN: the device mapping's bus address (0: none).
    pub dev_bus_addr: u64,
    /// IN: the handle `GNTTABOP_map_grant_ref` returned.
    pub handle: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
}

/// An event channel port (`evtchn_port_t`, a `uint32_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvtchnPort(pub u32);

/// A vCPU id, as `VCPUOP_*` take it (`unsigned int vcpuid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuId(pub u32);

/// Why the domain shuts down (`SHUTDOWN_*` in `sched.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// `#define SHUTDOWN_poweroff   0  /* Domain exited normally. Clean up and kill. */`
    Poweroff = 0,
    /// `#define SHUTDOWN_crash      3  /* Tell controller we've crashed.             */`
    Crash = 3,
}

/// `struct sched_shutdown { unsigned int reason; };` (`sched.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedShutdown {
    /// `SHUTDOWN_*`.
    pub reason: u32,
}

/// `struct evtchn_send { evtchn_port_t port; };` (`event_channel.h`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvtchnSend {
    /// The local port to notify through.
    pub port: u32,
}

/// `struct evtchn_alloc_unbound { domid_t dom, remote_dom; evtchn_port_t port; }`
/// (`event_channel.h`): 8 bytes, `port` at 4.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvtchnAllocUnbound {
    /// The domain the port is allocated in (`DOMID_SELF`).
    pub dom: u16,
    /// The domain that may bind the port's other end.
    pub remote_dom: u16,
    /// Out: the new port.
    pub port: u32,
}

/// `struct sched_poll { XEN_GUEST_HANDLE(evtchn_port_t) ports; unsigned int nr_ports;
/// uint64_t timeout; }` (`sched.h`): 24 bytes, `nr_ports` at 8, `timeout` at 16.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedPoll {
    /// Address of the array of ports.
    pub ports: u64,
    /// How many ports the array holds.
    pub nr_ports: u32,
    /// Padding (the handle and `timeout` are 8-byte aligned).
    pub pad: u32,
    /// Absolute Xen system time (ns) to wake up at anyway; 0 for none.
    pub timeout: u64,
}

/// `struct multicall_entry { xen_ulong_t op, result; xen_ulong_t args[6]; }` (`xen.h`),
/// 64 bytes for a 64-bit guest: one hypercall of a [`multicall`](super::multicall) batch.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulticallEntry {
    /// The hypercall number.
    pub op: u64,
    /// OUT: what the hypercall returned (as `rax` would hold it).
    pub result: u64,
    /// Its arguments; the sixth is unused by the hypercalls here.
    pub args: [u64; 6],
}

impl MulticallEntry {
    /// The batch entry for `call` (its number and five arguments), result 0.
    pub const fn new(call: Hypercall) -> Self {
        let [a0, a1, a2, a3, a4] = call.args;
        Self {
            op: call.nr.get() as u64,
            result: 0,
            args: [a0, a1, a2, a3, a4, 0],
        }
    }

    /// The entry's result as a hypercall's: an error when negative.
    pub const fn check(&self) -> Result<u64, XenError> {
        XenError::check(self.result as i64)
    }
}
