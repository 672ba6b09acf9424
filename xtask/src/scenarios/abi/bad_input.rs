//! `abi/bad-input`: dom0 callers get a clear error and nothing breaks.
//!
//! A table of wrong calls against the control interface, each with the errno Xen must give,
//! read from Xen 4.17's source (the function deciding it is named in the comment of each
//! row): wrong, self (dom0) and special domains, HVM-only calls on a PV guest, invalid
//! operations, modes and access values, bad counts, bad resource requests and buffers Xen
//! cannot read, `XEN_VM_EVENT_ATTACH` without a ring and with a listener bound. The first
//! half runs against the test guest unmonitored, the second with its monitor ring enabled.
//! The guest keeps running throughout.
//!
//! Host checks: every call failed with its errno, the guest's heartbeat went on, and Xen
//! printed no warning.

use std::time::Duration;

use anyhow::{ensure, Result};
use libxc::domctl::{self, Domctl};
use libxc::evtchn::Evtchn;
use libxc::memory::{self, set_mem_access_raw, AccessTarget, MemAccessOp, MemAcquireResource};
use libxc::monitor::{
    monitor_attach, monitor_disable, monitor_enable, vm_event_op_raw, RingMapping,
};
use libxc::privcmd::{hypercall, Plain, Privcmd};
use libxc::xenstore::resolve_domain;
use libxc::{DomId, Errno};

use crate::scenarios::dom0::GuestConfig;
use crate::scenarios::{Dom0, HostView, Scenario};

pub const SCENARIO: Scenario = Scenario {
    name: "abi/bad-input",
    in_dom0,
    on_host,
};

const GUEST: &str = "bad-input";
const NOBODY: DomId = DomId(999);
const DOM0: DomId = DomId(0);

/// What a call must do: succeed ([`SUCCEEDS`]) or fail with this errno (Xen's
/// xen/include/public/errno.h values, which Linux passes through and libxc-rs reads as
/// `Errno`).
type Expected = Option<Errno>;
const SUCCEEDS: Expected = None;
const EPERM: Expected = Some(Errno::EPERM);
const ESRCH: Expected = Some(Errno::ESRCH);
const EACCES: Expected = Some(Errno::EACCES);
const EFAULT: Expected = Some(Errno::EFAULT);
const EBUSY: Expected = Some(Errno::EBUSY);
const ENODEV: Expected = Some(Errno::ENODEV);
const EINVAL: Expected = Some(Errno::EINVAL);
const ENOSYS: Expected = Some(Errno::ENOSYS);
const ENOENT: Expected = Some(Errno::ENOENT);
const EOPNOTSUPP: Expected = Some(Errno::EOPNOTSUPP);

// XEN_VM_EVENT_* and XEN_DOMCTL_VM_EVENT_OP_* (public/domctl.h).
const ENABLE: u32 = 0;
const DISABLE: u32 = 1;
const RESUME: u32 = 2;
const GET_VERSION: u32 = 3;
const ATTACH: u32 = 4;
const MONITOR: u32 = 2;
const PAGING: u32 = 1;

/// A page no process maps: Xen's copy from it fails.
const UNMAPPED: u64 = 0x1000;

/// How a call failed: with an errno, or otherwise (no errno, or a wrong answer), which no
/// expected outcome matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    Errno(Errno),
    Otherwise,
}

impl From<&libxc::Error> for Failed {
    fn from(error: &libxc::Error) -> Failed {
        error.errno.map_or(Failed::Otherwise, Failed::Errno)
    }
}

/// The outcome of one call.
type Outcome = Result<(), Failed>;

fn errno<T>(result: libxc::Result<T>) -> Outcome {
    result.map(drop).map_err(|error| Failed::from(&error))
}

struct Table {
    rows: String,
    count: usize,
}

impl Table {
    /// Records a call; `expected` and `got` are written as `ok` or the errno's name
    /// (`wrong` for a failure without one), so the host compares words.
    fn row(&mut self, name: &str, expected: Expected, got: Outcome) {
        let expected = match expected {
            None => "ok".to_string(),
            Some(errno) => format!("{errno:?}"),
        };
        let got = match got {
            Ok(()) => "ok".to_string(),
            Err(Failed::Errno(errno)) => format!("{errno:?}"),
            Err(Failed::Otherwise) => "wrong".to_string(),
        };
        self.count += 1;
        self.rows.push_str(&format!(
            "{:2} {name}: expected={expected} got={got}\n",
            self.count
        ));
    }
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct AccessRequired {
    access_required: u8,
}
// SAFETY: an integer.
unsafe impl Plain for AccessRequired {}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct MonitorOp {
    op: u32,
    event: u32,
    index: u8,
    sync: u8,
    onchangeonly: u8,
    pad: [u8; 5],
    bitmask: u64,
}
// SAFETY: integers only.
unsafe impl Plain for MonitorOp {}

/// `struct xen_hvm_param` (public/hvm/hvm_op.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct HvmParam {
    domid: u16,
    pad: u16,
    index: u32,
    value: u64,
}
// SAFETY: integers only.
unsafe impl Plain for HvmParam {}

fn domctl_call<T: Plain>(privcmd: &Privcmd, cmd: u32, domain: DomId, payload: &T) -> Outcome {
    errno(domctl::call(
        privcmd,
        "domctl",
        Domctl::new(cmd, domain, payload),
    ))
}

fn access_op(privcmd: &Privcmd, op: MemAccessOp) -> Outcome {
    let mut buffer = privcmd.buffer(1).map_err(|_| Failed::Otherwise)?;
    buffer.write(&op);
    // SAFETY: the buffer holds a whole xen_mem_access_op; list handles are 0 or point into
    // the same buffer.
    errno(unsafe { memory::memory_op(privcmd, "access_op", memory::ACCESS_OP, buffer.address()) })
}

fn acquire(privcmd: &Privcmd, request: MemAcquireResource, list: bool) -> Outcome {
    let mut buffer = privcmd.buffer(1).map_err(|_| Failed::Otherwise)?;
    let mut request = request;
    if list {
        request.frame_list = buffer.address_at(2048);
    }
    buffer.write(&request);
    // SAFETY: the buffer holds the struct and, at 2048, room for the frames asked.
    errno(unsafe {
        memory::memory_op(
            privcmd,
            "acquire",
            memory::ACQUIRE_RESOURCE,
            buffer.address(),
        )
    })
}

fn ring_request(domain: DomId) -> MemAcquireResource {
    MemAcquireResource {
        domid: domain.0,
        kind: memory::RESOURCE_VM_EVENT_RING,
        id: MONITOR,
        nr_frames: 1,
        ..MemAcquireResource::default()
    }
}

fn unmonitored(privcmd: &Privcmd, guest: DomId, table: &mut Table) {
    let set_default = |domain: DomId, access: u8| {
        errno(set_mem_access_raw(
            privcmd,
            domain,
            AccessTarget::Default,
            access,
        ))
    };
    // domctl.c do_domctl: rcu_lock_domain_by_id fails.
    table.row(
        "vm_event enable, no such domain",
        ESRCH,
        errno(vm_event_op_raw(privcmd, NOBODY, ENABLE, MONITOR)),
    );
    // vm_event_domctl: d == current->domain.
    table.row(
        "vm_event enable, dom0 itself",
        EINVAL,
        errno(vm_event_op_raw(privcmd, DOM0, ENABLE, MONITOR)),
    );
    // rcu_lock_domain_by_id knows no DOMID_SELF / DOMID_XEN.
    table.row(
        "vm_event enable, DOMID_SELF",
        ESRCH,
        errno(vm_event_op_raw(privcmd, DomId::SELF, ENABLE, MONITOR)),
    );
    table.row(
        "vm_event enable, DOMID_XEN",
        ESRCH,
        errno(vm_event_op_raw(privcmd, DomId::XEN, ENABLE, MONITOR)),
    );
    // vm_event_domctl: unknown op in the MONITOR switch.
    table.row(
        "vm_event op 7, monitor",
        ENOSYS,
        errno(vm_event_op_raw(privcmd, guest, 7, MONITOR)),
    );
    // vm_event_domctl: unknown mode.
    table.row(
        "vm_event enable, mode 9",
        ENOSYS,
        errno(vm_event_op_raw(privcmd, guest, ENABLE, 9)),
    );
    // vm_event_domctl MONITOR/DISABLE: no ring, rc stays -EINVAL.
    table.row(
        "vm_event disable, not monitored",
        EINVAL,
        errno(vm_event_op_raw(privcmd, guest, DISABLE, MONITOR)),
    );
    // vm_event_resume: !vm_event_check_ring.
    table.row(
        "vm_event resume, not monitored",
        ENODEV,
        errno(vm_event_op_raw(privcmd, guest, RESUME, MONITOR)),
    );
    // do_domctl: interface_version != XEN_DOMCTL_INTERFACE_VERSION.
    let mut old = Domctl::new(domctl::VM_EVENT_OP, guest, &[ENABLE, MONITOR, 0]);
    old.interface_version = 0x14;
    table.row(
        "domctl, old interface version",
        EACCES,
        errno(domctl::call(privcmd, "old", old)),
    );
    // mem_access_memop: !vm_event_check_ring(d->vm_event_monitor).
    table.row(
        "set default access, not monitored",
        ENODEV,
        set_default(guest, 7),
    );
    // ... except reading a PV domain's rights, which needs no ring (patch 0015: they stay
    // in force without one, as an HVM p2m's do).
    table.row(
        "get default access, not monitored (PV: answered)",
        SUCCEEDS,
        errno(memory::get_mem_access(privcmd, guest, None)),
    );
    // vm_event_attach: no ring to take over.
    table.row(
        "vm_event attach, not monitored",
        ENODEV,
        errno(vm_event_op_raw(privcmd, guest, ATTACH, MONITOR)),
    );
    // rcu_lock_remote_domain_by_id: own domain / none.
    table.row(
        "set default access, dom0 itself",
        EPERM,
        set_default(DOM0, 7),
    );
    table.row(
        "set default access, no such domain",
        ESRCH,
        set_default(NOBODY, 7),
    );
    // vm_event_acquire_resource: no ring published.
    table.row(
        "acquire ring, not monitored",
        ENOENT,
        acquire(privcmd, ring_request(guest), true),
    );
    table.row(
        "acquire ring, dom0 itself",
        EPERM,
        acquire(privcmd, ring_request(DOM0), true),
    );
    table.row(
        "acquire ring, no such domain",
        ESRCH,
        acquire(privcmd, ring_request(NOBODY), true),
    );
    // HVM-only: hvm.c hvmop_get_param refuses a PV domain.
    table.row("HVMOP_get_param on PV", EINVAL, {
        let mut buffer = privcmd.buffer(1).map_err(|_| Failed::Otherwise);
        match &mut buffer {
            Ok(buffer) => {
                buffer.write(&HvmParam {
                    domid: guest.0,
                    index: 28, // HVM_PARAM_MONITOR_RING_PFN
                    ..HvmParam::default()
                });
                // SAFETY: the buffer holds a whole xen_hvm_param.
                errno(unsafe { privcmd.hypercall("hvm_op", 34, [1, buffer.address(), 0, 0, 0]) })
            }
            Err(errno) => Err(*errno),
        }
    });
    // monitor_domctl GET_CAPABILITIES: a PV domain reports mem_access (patch 0017) and
    // nothing else.
    table.row(
        "monitor_op get_capabilities on PV is mem_access only",
        SUCCEEDS,
        match libxc::monitor::monitor_get_capabilities(privcmd, guest) {
            Ok(capabilities) if capabilities == 1 << libxc::monitor::MONITOR_EVENT_MEM_ACCESS => {
                Ok(())
            }
            // A wrong mask cannot pass as a success.
            Ok(_) => Err(Failed::Otherwise),
            Err(error) => Err(Failed::from(&error)),
        },
    );
    // HVM-only: monitor_domctl refuses events outside arch_monitor_get_capabilities.
    table.row(
        "monitor_op enable write_ctrlreg on PV",
        EOPNOTSUPP,
        domctl_call(
            privcmd,
            77,
            guest,
            &MonitorOp {
                op: 0,
                event: 0,
                ..MonitorOp::default()
            },
        ),
    );
    // do_domctl XEN_DOMCTL_set_access_required: current->domain == d / no domain.
    table.row(
        "set access_required, dom0 itself",
        EPERM,
        domctl_call(privcmd, 64, DOM0, &AccessRequired { access_required: 1 }),
    );
    table.row(
        "set access_required, no such domain",
        ESRCH,
        domctl_call(privcmd, 64, NOBODY, &AccessRequired { access_required: 1 }),
    );
}

/// Frames the second half names.
struct Frames {
    /// One of the guest's own buffer frames.
    own: u64,
    /// A buffer frame of another guest.
    other: u64,
    /// The guest's monitor ring, owned by Xen.
    ring: u64,
}

/// XENMEM_access_op_set_access_multi of one (frame, access), or with lists Xen cannot read.
fn multi(privcmd: &Privcmd, guest: DomId, entry: Option<(u64, u8)>) -> Outcome {
    let mut buffer = privcmd.buffer(1).map_err(|_| Failed::Otherwise)?;
    let (pfn_list, access_list) = match entry {
        Some((frame, access)) => {
            buffer.write_at(1024, &frame);
            buffer.write_at(2048, &[access, 0, 0, 0, 0, 0, 0, 0]);
            (buffer.address_at(1024), buffer.address_at(2048))
        }
        None => (UNMAPPED, UNMAPPED),
    };
    buffer.write(&MemAccessOp {
        op: 4, // XENMEM_access_op_set_access_multi
        domid: guest.0,
        nr: 1,
        pfn_list,
        access_list,
        ..MemAccessOp::default()
    });
    // SAFETY: the op is in the buffer; its lists point into the buffer or nowhere mapped.
    errno(unsafe { memory::memory_op(privcmd, "access_op", memory::ACCESS_OP, buffer.address()) })
}

fn monitored(privcmd: &Privcmd, guest: DomId, frames: &Frames, table: &mut Table) {
    let set = |target: AccessTarget, access: u8| {
        errno(set_mem_access_raw(privcmd, guest, target, access))
    };
    // vm_event_enable: *p_ved != NULL.
    table.row(
        "vm_event enable, already monitored",
        EBUSY,
        errno(monitor_enable(privcmd, guest)),
    );
    // vm_event_attach: the ring's event channel has no listener bound (this scenario
    // enabled the ring and bound nothing): its port, nothing changed.
    table.row(
        "vm_event attach, no listener bound",
        SUCCEEDS,
        errno(vm_event_op_raw(privcmd, guest, ATTACH, MONITOR)),
    );
    // ... and -EBUSY once a listener has bound it (closed again with the device).
    let bound = Evtchn::open().and_then(|evtchn| {
        let port = monitor_attach(privcmd, guest)?;
        let local = evtchn.bind_interdomain(guest, port)?;
        Ok((evtchn, local))
    });
    table.row(
        "vm_event attach, a listener bound",
        EBUSY,
        match &bound {
            Ok(_) => errno(vm_event_op_raw(privcmd, guest, ATTACH, MONITOR)),
            Err(error) => Err(Failed::from(error)),
        },
    );
    drop(bound);
    // pvma_check_access (XenmemAccess::from_raw): not an access value.
    table.row(
        "set default access 11",
        EINVAL,
        set(AccessTarget::Default, 11),
    );
    table.row(
        "set default access 255",
        EINVAL,
        set(AccessTarget::Default, 255),
    );
    // pvma_check_access: x86 page tables cannot express w, x, wx.
    table.row(
        "set default access w",
        EOPNOTSUPP,
        set(AccessTarget::Default, 2),
    );
    table.row(
        "set default access x",
        EOPNOTSUPP,
        set(AccessTarget::Default, 4),
    );
    table.row(
        "set default access wx",
        EOPNOTSUPP,
        set(AccessTarget::Default, 6),
    );
    let frame = |first: u64| AccessTarget::Frames { first, count: 1 };
    // get_owned_frame: RAM owned by someone else (Xen owns the ring page, through dom_xen).
    table.row(
        "set access, Xen's frame (the ring)",
        EPERM,
        set(frame(frames.ring), 5),
    );
    table.row(
        "set access, another guest's frame",
        EPERM,
        set(frame(frames.other), 5),
    );
    table.row(
        "get access, another guest's frame",
        EPERM,
        errno(memory::get_mem_access(privcmd, guest, Some(frames.other))),
    );
    // get_owned_frame: no RAM has that number.
    table.row(
        "set access, frame beyond RAM",
        EINVAL,
        set(frame(1 << 36), 5),
    );
    table.row(
        "get access, frame beyond RAM",
        EINVAL,
        errno(memory::get_mem_access(privcmd, guest, Some(u64::MAX - 1))),
    );
    // pvma_check_access for a frame of the guest's own.
    table.row(
        "set access w on the guest's frame",
        EOPNOTSUPP,
        set(frame(frames.own), 2),
    );
    table.row(
        "set access 11 on the guest's frame",
        EINVAL,
        set(frame(frames.own), 11),
    );
    // mem_access_memop for PV: nr 0 with a frame / a range of machine frames.
    table.row(
        "set access, count 0",
        EINVAL,
        set(
            AccessTarget::Frames {
                first: frames.own,
                count: 0,
            },
            5,
        ),
    );
    table.row(
        "set access, count 2",
        EOPNOTSUPP,
        set(
            AccessTarget::Frames {
                first: frames.own,
                count: 2,
            },
            5,
        ),
    );
    table.row(
        "set access, count 2^32-1",
        EOPNOTSUPP,
        set(
            AccessTarget::Frames {
                first: frames.own,
                count: u32::MAX,
            },
            5,
        ),
    );
    // pv_mem_access_set_access_multi: lists Xen cannot read, a bad access, a foreign frame.
    table.row(
        "set_access_multi, unmapped lists",
        EFAULT,
        multi(privcmd, guest, None),
    );
    table.row(
        "set_access_multi, access 11",
        EINVAL,
        multi(privcmd, guest, Some((frames.own, 11))),
    );
    table.row(
        "set_access_multi, another guest's frame",
        EPERM,
        multi(privcmd, guest, Some((frames.other, 5))),
    );
    // mem_access_memop: default case.
    table.row(
        "access op 99",
        ENOSYS,
        access_op(
            privcmd,
            MemAccessOp {
                op: 99,
                domid: guest.0,
                ..MemAccessOp::default()
            },
        ),
    );
    // copy_from_guest of the argument fails.
    // SAFETY: Xen reads nothing from, and writes nothing to, an unmapped address.
    table.row(
        "access op, unmapped argument",
        EFAULT,
        errno(unsafe { memory::memory_op(privcmd, "access_op", memory::ACCESS_OP, UNMAPPED) }),
    );
    // SAFETY: as above.
    table.row(
        "domctl, unmapped argument",
        EFAULT,
        errno(unsafe { privcmd.hypercall("domctl", hypercall::DOMCTL, [UNMAPPED, 0, 0, 0, 0]) }),
    );
    // acquire_resource: pad != 0.
    table.row(
        "acquire ring, pad 1",
        EINVAL,
        acquire(
            privcmd,
            MemAcquireResource {
                pad: 1,
                ..ring_request(guest)
            },
            true,
        ),
    );
    // acquire_resource: frame + nr_frames beyond the resource's one frame.
    table.row(
        "acquire ring, frame 1",
        EINVAL,
        acquire(
            privcmd,
            MemAcquireResource {
                frame: 1,
                ..ring_request(guest)
            },
            true,
        ),
    );
    // resource_max_frames: unknown type gives -EOPNOTSUPP through _acquire_resource.
    table.row(
        "acquire resource type 99",
        EOPNOTSUPP,
        acquire(
            privcmd,
            MemAcquireResource {
                kind: 99,
                ..ring_request(guest)
            },
            true,
        ),
    );
    // vm_event_resource_max_frames: only the MONITOR ring: 0 frames, -EINVAL.
    table.row(
        "acquire ring, id paging",
        EINVAL,
        acquire(
            privcmd,
            MemAcquireResource {
                id: PAGING,
                ..ring_request(guest)
            },
            true,
        ),
    );
    // acquire_resource: copying the frames to an unmapped list fails.
    table.row(
        "acquire ring, unmapped frame list",
        EFAULT,
        acquire(
            privcmd,
            MemAcquireResource {
                frame_list: UNMAPPED,
                ..ring_request(guest)
            },
            false,
        ),
    );
    // Not an error: the version every listener checks first.
    table.row(
        "vm_event get_version is 7",
        SUCCEEDS,
        match vm_event_op_raw(privcmd, DomId(0x7ff4), GET_VERSION, MONITOR) {
            Ok(7) => Ok(()),
            Ok(_) => Err(Failed::Otherwise),
            Err(error) => Err(Failed::from(&error)),
        },
    );
}

fn in_dom0(dom0: &Dom0) -> Result<()> {
    let guest = dom0.create_guest(&GuestConfig::heartbeat(GUEST))?;
    let privcmd = Privcmd::open()?;
    let domid = resolve_domain(GUEST)?;
    let mut beat = guest.wait_for_heartbeat(0, Duration::from_secs(60))?;
    let mut table = Table {
        rows: String::new(),
        count: 0,
    };
    unmonitored(&privcmd, domid, &mut table);
    let other = dom0.create_guest(&GuestConfig {
        name: "bad-input-other",
        memory_mib: 32,
        vcpus: 1,
        cmdline: "heartbeat",
    })?;
    monitor_enable(&privcmd, domid)?;
    let frames = Frames {
        own: guest.frames()?[0],
        other: other.frames()?[0],
        ring: RingMapping::map(&privcmd, domid)?.frame,
    };
    monitored(&privcmd, domid, &frames, &mut table);
    drop(other);
    monitor_disable(&privcmd, domid)?;
    dom0.save("calls.txt", &table.rows)?;
    beat = guest.wait_for_heartbeat(beat, Duration::from_secs(60))?;
    dom0.save("heartbeat.txt", format!("{beat}\n"))?;
    guest.save_console()?;
    Ok(())
}

fn on_host(view: &HostView) -> Result<()> {
    let calls = view.read("calls.txt")?;
    let rows: Vec<&str> = calls.lines().collect();
    ensure!(rows.len() >= 40, "only {} bad calls were made", rows.len());
    let wrong: Vec<&str> = rows
        .iter()
        .copied()
        .filter(|row| {
            let expected = row
                .split(" expected=")
                .nth(1)
                .and_then(|r| r.split(' ').next());
            let got = row.split(" got=").nth(1);
            expected != got
        })
        .collect();
    ensure!(
        wrong.is_empty(),
        "calls with the wrong outcome:\n{}",
        wrong.join("\n")
    );
    let serial = view.serial()?;
    ensure!(!serial.contains("Xen WARN"), "Xen printed a warning");
    ensure!(
        !view.read("guest-console.log")?.contains("TEST-GUEST FAIL"),
        "the guest reported a failure"
    );
    Ok(())
}
