//! The wrong calls dom0 makes, each with the errno read from Xen 4.17's source with our
//! patches (the deciding function is named in each row's comment).
//!
//! `XEN_DOMCTL_vm_event_op` other than GET_VERSION with `DOMID_INVALID`: `do_domctl` passes
//! `d = NULL` for that domain (so that GET_VERSION needs no domain) and the dummy XSM policy
//! lets the control domain through; Debian's 4.17 then read `d->is_dying` and took a fatal
//! page fault (found by this scenario). Patch 0001 backports upstream's fix: -ESRCH.

use libxc::memory::{MemAccessOp, MemAcquireResource};
use libxc::DomId;
use libxc::FrameKind;

use super::super::raw::{self as r, FrameList, Lists};
use super::state::Checker;

/// A domain no one has.
pub const NOBODY: DomId = DomId(999);
const DOM0: DomId = DomId(0);

/// A `XENMEM_access_op` naming machine frames (`XENMEM_access_op_mfn`), as every call on a PV
/// domain must: what is checked here is what comes after (`compat/pfn-refused` checks the
/// call without it).
fn op(op: u8, domain: DomId, pfn: u64, nr: u32, access: u8) -> MemAccessOp {
    MemAccessOp {
        op: FrameKind::Mfn.op(op),
        access,
        domid: domain.0,
        nr,
        pfn,
        ..MemAccessOp::default()
    }
}

/// Every operation against domains that are not a monitorable guest: dom0 itself (its own
/// domain: `rcu_lock_remote_domain_by_id`, `vm_event_domctl`, `monitor_domctl` and
/// `XEN_DOMCTL_set_access_required` refuse it) and ids Xen's domain hash does not hold.
pub fn special_domains(c: &mut Checker) {
    let domains: [(&str, DomId, i32, i32); 5] = [
        // (name, domain, errno of the memory ops, errno of vm_event / monitor domctls)
        ("dom0 itself", DOM0, r::EPERM, r::EINVAL),
        ("DOMID_SELF", DomId::SELF, r::ESRCH, r::ESRCH),
        ("DOMID_XEN", DomId::XEN, r::ESRCH, r::ESRCH),
        ("DOMID_INVALID", r::DOMID_INVALID, r::ESRCH, r::ESRCH),
        ("no such domain", NOBODY, r::ESRCH, r::ESRCH),
    ];
    for (name, domain, memory, vm_event) in domains {
        // mem_access_memop: rcu_lock_live_remote_domain_by_id (no such domain: -ESRCH; the
        // caller's own: -EPERM), before the operation is even looked at.
        c.row(&format!("get default access, {name}"), &[memory], |p| {
            r::access_op(p, op(r::GET_ACCESS, domain, !0, 0, 0), None, 0)
        });
        c.row(&format!("set default access rx, {name}"), &[memory], |p| {
            r::access_op(p, op(r::SET_ACCESS, domain, !0, 0, 5), None, 0)
        });
        c.row(
            &format!("get access of frame 0x1000, {name}"),
            &[memory],
            |p| r::access_op(p, op(r::GET_ACCESS, domain, 0x1000, 0, 0), None, 0),
        );
        c.row(
            &format!("set_access_multi of 1 frame, {name}"),
            &[memory],
            |p| {
                let lists = Lists::Entries(&[(0x1000, 5)]);
                r::access_op(p, op(r::SET_ACCESS_MULTI, domain, 0, 1, 0), Some(lists), 0)
            },
        );
        c.row(&format!("access op 99, {name}"), &[memory], |p| {
            r::access_op(p, op(99, domain, 0, 0, 0), None, 0)
        });
        // acquire_resource: rcu_lock_remote_domain_by_id, as above.
        c.row(&format!("acquire ring, {name}"), &[memory], |p| {
            r::acquire(p, r::ring_request(domain), FrameList::Buffer).map(|_| 0)
        });
        // monitor_domctl: current->domain == d gives -EPERM; do_domctl's
        // rcu_lock_domain_by_id -ESRCH for the others (DOMID_INVALID is only special for
        // vm_event_op).
        let monitor = if domain == DOM0 { r::EPERM } else { r::ESRCH };
        c.row(
            &format!("monitor get_capabilities, {name}"),
            &[monitor],
            |p| r::monitor_op(p, domain, r::MONITOR_OP_GET_CAPABILITIES, 0),
        );
        c.row(
            &format!("monitor enable mem_access, {name}"),
            &[monitor],
            |p| r::monitor_op(p, domain, r::MONITOR_OP_ENABLE, r::MONITOR_EVENT_MEM_ACCESS),
        );
        // do_domctl XEN_DOMCTL_set_access_required: current->domain == d: -EPERM.
        c.row(&format!("set access_required, {name}"), &[monitor], |p| {
            r::set_access_required(p, domain, 1)
        });
        // vm_event_domctl: d == current->domain gives -EINVAL; do_domctl -ESRCH; no
        // domain at all (DOMID_INVALID) -ESRCH (patch 0001, see the module's comment).
        for (op_name, vm_op) in [
            ("enable", r::ENABLE),
            ("disable", r::DISABLE),
            ("resume", r::RESUME),
            ("attach", r::ATTACH),
        ] {
            c.row(&format!("vm_event {op_name}, {name}"), &[vm_event], |p| {
                r::vm_event(p, domain, vm_op, r::MONITOR)
            });
        }
    }
    // Not an error: the version every listener checks first, asked with DOMID_INVALID as
    // libxc does (vm_event_domctl answers before it looks at the domain).
    c.row_where(
        "vm_event get_version (DOMID_INVALID) is 7",
        &[0],
        |p| r::vm_event(p, r::DOMID_INVALID, r::GET_VERSION, r::MONITOR),
        |version| version == 7,
    );
}

/// Wrong calls against the test guest while it has no ring, and against the other guest.
pub fn unmonitored(c: &mut Checker, guest: DomId, frame: u64) {
    // mem_access_memop answers get_access for a PV domain without a ring (patch 0017),
    // pv_mem_access_get_access: the default; a never-monitored domain's own frame has the
    // default too (rwx).
    c.row_where(
        "get default access, no ring, is rwx",
        &[0],
        |p| r::access_op(p, op(r::GET_ACCESS, guest, !0, 0, 0), None, 0),
        |access| access == 7,
    );
    c.row_where(
        "get access of the guest's frame, never monitored, is rwx",
        &[0],
        |p| r::access_op(p, op(r::GET_ACCESS, guest, frame, 0, 0), None, 0),
        |access| access == 7,
    );
    // get_owned_frame, without a ring as with one.
    c.row(
        "get access of a frame beyond RAM, no ring",
        &[r::EINVAL],
        |p| r::access_op(p, op(r::GET_ACCESS, guest, 1 << 40, 0, 0), None, 0),
    );
    // Every other op still needs a ring: !vm_event_check_ring gives -ENODEV.
    c.row("set default access rx, no ring", &[r::ENODEV], |p| {
        r::access_op(p, op(r::SET_ACCESS, guest, !0, 0, 5), None, 0)
    });
    c.row(
        "set access r on the guest's frame, no ring",
        &[r::ENODEV],
        |p| r::access_op(p, op(r::SET_ACCESS, guest, frame, 1, 1), None, 0),
    );
    c.row("set_access_multi, no ring", &[r::ENODEV], |p| {
        let lists = Lists::Entries(&[(frame, 1)]);
        r::access_op(p, op(r::SET_ACCESS_MULTI, guest, 0, 1, 0), Some(lists), 0)
    });
    c.row("access op 99, no ring", &[r::ENODEV], |p| {
        r::access_op(p, op(99, guest, 0, 0, 0), None, 0)
    });
    // vm_event_domctl MONITOR/DISABLE: no ring, rc stays -EINVAL.
    c.row("vm_event disable, no ring", &[r::EINVAL], |p| {
        r::vm_event(p, guest, r::DISABLE, r::MONITOR)
    });
    // vm_event_resume: !vm_event_check_ring.
    c.row("vm_event resume, no ring", &[r::ENODEV], |p| {
        r::vm_event(p, guest, r::RESUME, r::MONITOR)
    });
    // vm_event_attach: !vm_event_check_ring.
    c.row("vm_event attach, no ring", &[r::ENODEV], |p| {
        r::vm_event(p, guest, r::ATTACH, r::MONITOR)
    });
    // vm_event_domctl: unknown op in the MONITOR switch.
    c.row("vm_event op 7, monitor", &[r::ENOSYS], |p| {
        r::vm_event(p, guest, 7, r::MONITOR)
    });
    // vm_event_domctl: CONFIG_MEM_PAGING and CONFIG_MEM_SHARING are off (our .config): the
    // PAGING and SHARING cases are not compiled, -ENOSYS from the mode switch; so for any
    // unknown mode.
    for (mode_name, mode) in [("paging", r::PAGING), ("sharing", r::SHARING), ("9", 9)] {
        for (op_name, vm_op) in [("enable", r::ENABLE), ("attach", r::ATTACH)] {
            c.row(
                &format!("vm_event {op_name}, mode {mode_name}"),
                &[r::ENOSYS],
                |p| r::vm_event(p, guest, vm_op, mode),
            );
        }
    }
    // do_domctl: interface_version != XEN_DOMCTL_INTERFACE_VERSION.
    c.row("domctl, old interface version", &[r::EACCES], |p| {
        let mut old = libxc::domctl::Domctl::new(
            libxc::domctl::VM_EVENT_OP,
            guest,
            &[r::ENABLE, r::MONITOR, 0],
        );
        old.interface_version = 0x14;
        r::domctl_envelope(p, old)
    });
    // vm_event_acquire_resource: no ring published yet.
    c.row("acquire ring, no ring", &[r::ENOENT], |p| {
        r::acquire(p, r::ring_request(guest), FrameList::Buffer).map(|_| 0)
    });
    // acquire_resource with a null list: the size, vm_event_resource_max_frames: 1 for a
    // PV domain's monitor ring, ring or not.
    c.row_where(
        "acquire ring, null list: size is 1",
        &[0],
        |p| {
            let request = MemAcquireResource {
                nr_frames: 0,
                ..r::ring_request(guest)
            };
            r::acquire(p, request, FrameList::Null).map(|(size, _)| u64::from(size))
        },
        |size| size == 1,
    );
    // acquire_resource: a null list with nr_frames != 0.
    c.row("acquire ring, null list, 1 frame", &[r::EINVAL], |p| {
        r::acquire(p, r::ring_request(guest), FrameList::Null).map(|_| 0)
    });
    // hvm.c hvmop_get_param refuses a PV domain (HVM-only).
    c.row(
        "HVMOP_get_param(MONITOR_RING_PFN) on PV",
        &[r::EINVAL],
        |p| {
            let mut buffer = p.buffer(1).map_err(|_| -1)?;
            // struct xen_hvm_param { domid_t domid; uint16_t pad; uint32_t index; uint64_t value; }
            buffer.write(&[u32::from(guest.0), 28, 0, 0]);
            // SAFETY: the buffer holds a whole xen_hvm_param.
            unsafe { p.hypercall("hvm_op", 34, [1, buffer.address(), 0, 0, 0]) }
                .map_err(|error| error.errno.map_or(-1, |errno| errno as i32))
        },
    );
    // monitor_domctl GET_CAPABILITIES: a PV domain reports mem_access (patch 0020) only.
    c.row_where(
        "monitor get_capabilities on PV is mem_access only",
        &[0],
        |p| r::monitor_op(p, guest, r::MONITOR_OP_GET_CAPABILITIES, 0),
        |caps| caps == 1 << r::MONITOR_EVENT_MEM_ACCESS,
    );
    // monitor_domctl: events outside arch_monitor_get_capabilities: -EOPNOTSUPP.
    c.row(
        "monitor enable write_ctrlreg on PV",
        &[r::EOPNOTSUPP],
        |p| {
            r::monitor_op(
                p,
                guest,
                r::MONITOR_OP_ENABLE,
                r::MONITOR_EVENT_WRITE_CTRLREG,
            )
        },
    );
    c.row(
        "monitor disable write_ctrlreg on PV",
        &[r::EOPNOTSUPP],
        |p| {
            r::monitor_op(
                p,
                guest,
                r::MONITOR_OP_DISABLE,
                r::MONITOR_EVENT_WRITE_CTRLREG,
            )
        },
    );
    // monitor_domctl: event > 31.
    c.row("monitor enable event 32", &[r::EINVAL], |p| {
        r::monitor_op(p, guest, r::MONITOR_OP_ENABLE, 32)
    });
    // arch_monitor_domctl_op: unknown op.
    c.row("monitor op 99", &[r::EOPNOTSUPP], |p| {
        r::monitor_op(p, guest, 99, 0)
    });
    // arch_monitor_domctl_event: mem_access is a capability only, enabling it changes
    // nothing (patch 0020).
    c.row("monitor enable mem_access (a capability)", &[0], |p| {
        r::monitor_op(p, guest, r::MONITOR_OP_ENABLE, r::MONITOR_EVENT_MEM_ACCESS)
    });
}

/// Frames the monitored half names.
pub struct Frames {
    /// A frame of the guest it never touches (its access is read back as `r`).
    pub own: u64,
    /// A buffer frame of the other guest.
    pub other: u64,
    /// The guest's monitor ring, owned by Xen.
    pub ring: u64,
}

/// Wrong calls against the test guest with its ring enabled (no listener bound).
pub fn monitored(c: &mut Checker, guest: DomId, other: DomId, frames: &Frames) {
    let set = |target: u64, nr: u32, access: u8| op(r::SET_ACCESS, guest, target, nr, access);
    // vm_event_enable: *p_ved != NULL.
    c.row("vm_event enable, already monitored", &[r::EBUSY], |p| {
        r::vm_event(p, guest, r::ENABLE, r::MONITOR)
    });
    // vm_event_domctl PAGING: not compiled in, even with a monitor ring.
    c.row(
        "vm_event disable, mode paging, monitored",
        &[r::ENOSYS],
        |p| r::vm_event(p, guest, r::DISABLE, r::PAGING),
    );
    // vm_event_resume with nothing on the ring: nothing to do.
    c.row("vm_event resume, empty ring", &[0], |p| {
        r::vm_event(p, guest, r::RESUME, r::MONITOR)
    });
    // pvma_check_access (XenmemAccess::from_raw): not an access value (10, `default`, is one:
    // it resolves to the current default).
    for access in [11, 12, 255] {
        c.row(&format!("set default access {access}"), &[r::EINVAL], |p| {
            r::access_op(p, set(!0, 0, access), None, 0)
        });
    }
    // pvma_check_access: x86 page tables cannot express w, x, wx.
    for (name, access) in [("w", 2), ("x", 4), ("wx", 6)] {
        c.row(
            &format!("set default access {name}"),
            &[r::EOPNOTSUPP],
            |p| r::access_op(p, set(!0, 0, access), None, 0),
        );
        c.row(
            &format!("set access {name} on the guest's frame"),
            &[r::EOPNOTSUPP],
            |p| r::access_op(p, set(frames.own, 1, access), None, 0),
        );
    }
    c.row("set access 11 on the guest's frame", &[r::EINVAL], |p| {
        r::access_op(p, set(frames.own, 1, 11), None, 0)
    });
    // get_owned_frame: RAM owned by someone else (Xen owns the ring page, through dom_xen).
    c.row("set access, Xen's frame (the ring)", &[r::EPERM], |p| {
        r::access_op(p, set(frames.ring, 1, 5), None, 0)
    });
    c.row("get access, Xen's frame (the ring)", &[r::EPERM], |p| {
        r::access_op(p, op(r::GET_ACCESS, guest, frames.ring, 0, 0), None, 0)
    });
    c.row("set access, another guest's frame", &[r::EPERM], |p| {
        r::access_op(p, set(frames.other, 1, 5), None, 0)
    });
    c.row("get access, another guest's frame", &[r::EPERM], |p| {
        r::access_op(p, op(r::GET_ACCESS, guest, frames.other, 0, 0), None, 0)
    });
    // get_owned_frame: !mfn_valid.
    c.row("set access, frame beyond RAM", &[r::EINVAL], |p| {
        r::access_op(p, set(1 << 36, 1, 5), None, 0)
    });
    c.row("get access, frame beyond RAM", &[r::EINVAL], |p| {
        r::access_op(p, op(r::GET_ACCESS, guest, u64::MAX - 1, 0, 0), None, 0)
    });
    // mem_access_memop for PV: nr 0 with a frame / a range of machine frames.
    c.row("set access, count 0", &[r::EINVAL], |p| {
        r::access_op(p, set(frames.own, 0, 5), None, 0)
    });
    c.row("set access, count 2", &[r::EOPNOTSUPP], |p| {
        r::access_op(p, set(frames.own, 2, 5), None, 0)
    });
    c.row("set access, count 2^32-1", &[r::EOPNOTSUPP], |p| {
        r::access_op(p, set(frames.own, u32::MAX, 5), None, 0)
    });
    // mem_access_memop get_access: the command's continuation bits must be 0: -ENOSYS.
    c.row("get access with continuation bits", &[r::ENOSYS], |p| {
        r::access_op(p, op(r::GET_ACCESS, guest, !0, 0, 0), None, 1 << 6)
    });
    // Readable: the guest's frame has the access set up before (r).
    c.row_where(
        "get access of the guest's frame is r",
        &[0],
        |p| r::access_op(p, op(r::GET_ACCESS, guest, frames.own, 0, 0), None, 0),
        |access| access == 1,
    );
    // pv_mem_access_set_access_multi: lists Xen cannot read, a bad access, foreign or
    // non-RAM frames: the first entry fails, nothing is set.
    let multi = |nr: u32| op(r::SET_ACCESS_MULTI, guest, 0, nr, 0);
    c.row("set_access_multi, unmapped lists", &[r::EFAULT], |p| {
        let lists = Lists::At {
            frames: r::UNMAPPED,
            accesses: r::UNMAPPED,
        };
        r::access_op(p, multi(1), Some(lists), 0)
    });
    c.row(
        "set_access_multi, unmapped access list",
        &[r::EFAULT],
        |p| r::access_op(p, multi(1), Some(Lists::UnmappedAccess(frames.own)), 0),
    );
    c.row(
        "set_access_multi, unmapped lists, count 2^32-1",
        &[r::EFAULT],
        |p| {
            let lists = Lists::At {
                frames: r::UNMAPPED,
                accesses: r::UNMAPPED,
            };
            r::access_op(p, multi(u32::MAX), Some(lists), 0)
        },
    );
    for (name, entry, errno) in [
        ("access 11", (frames.own, 11), r::EINVAL),
        ("access w", (frames.own, 2), r::EOPNOTSUPP),
        ("another guest's frame", (frames.other, 5), r::EPERM),
        ("Xen's frame", (frames.ring, 5), r::EPERM),
        ("frame beyond RAM", (1 << 40, 5), r::EINVAL),
    ] {
        c.row(&format!("set_access_multi, {name}"), &[errno], |p| {
            r::access_op(p, multi(1), Some(Lists::Entries(&[entry])), 0)
        });
    }
    // set_access_multi of nothing: the loop does not run.
    c.row("set_access_multi, count 0", &[0], |p| {
        r::access_op(p, multi(0), Some(Lists::Entries(&[])), 0)
    });
    // mem_access_memop: default case.
    c.row("access op 99", &[r::ENOSYS], |p| {
        r::access_op(p, op(99, guest, 0, 0, 0), None, 0)
    });
    c.row("access op 2 (a retired op)", &[r::ENOSYS], |p| {
        r::access_op(p, op(2, guest, 0, 0, 0), None, 0)
    });
    // copy_from_guest of the argument fails.
    c.row("access op, unmapped argument", &[r::EFAULT], |p| {
        r::unmapped_argument(p, r::MEMORY_OP, Some(libxc::memory::ACCESS_OP))
    });
    c.row("domctl, unmapped argument", &[r::EFAULT], |p| {
        r::unmapped_argument(p, r::DOMCTL, None)
    });
    c.row("acquire, unmapped argument", &[r::EFAULT], |p| {
        r::unmapped_argument(p, r::MEMORY_OP, Some(libxc::memory::ACQUIRE_RESOURCE))
    });
    let acquire = |request: MemAcquireResource, list: FrameList| {
        move |p: &libxc::privcmd::Privcmd| r::acquire(p, request, list).map(|_| 0)
    };
    let ring = r::ring_request(guest);
    // acquire_resource: pad != 0; frame or frame + nr_frames beyond 32 bits.
    c.row(
        "acquire ring, pad 1",
        &[r::EINVAL],
        acquire(MemAcquireResource { pad: 1, ..ring }, FrameList::Buffer),
    );
    c.row(
        "acquire ring, frame 2^32",
        &[r::EINVAL],
        acquire(
            MemAcquireResource {
                frame: 1 << 32,
                ..ring
            },
            FrameList::Buffer,
        ),
    );
    c.row(
        "acquire ring, frame 2^32-1 + 1 frame",
        &[r::EINVAL],
        acquire(
            MemAcquireResource {
                frame: u64::from(u32::MAX),
                ..ring
            },
            FrameList::Buffer,
        ),
    );
    // vm_event_acquire_resource: frame != 0, nr_frames != 1.
    c.row(
        "acquire ring, frame 1",
        &[r::EINVAL],
        acquire(MemAcquireResource { frame: 1, ..ring }, FrameList::Buffer),
    );
    c.row(
        "acquire ring, 2 frames",
        &[r::EINVAL],
        acquire(
            MemAcquireResource {
                nr_frames: 2,
                ..ring
            },
            FrameList::Buffer,
        ),
    );
    // acquire_resource: start_extent >= nr_frames, or nr_frames > UINT_MAX >> 6.
    c.row(
        "acquire ring, 0 frames",
        &[r::EINVAL],
        acquire(
            MemAcquireResource {
                nr_frames: 0,
                ..ring
            },
            FrameList::Buffer,
        ),
    );
    c.row(
        "acquire ring, 2^32-1 frames",
        &[r::EINVAL],
        acquire(
            MemAcquireResource {
                nr_frames: u32::MAX,
                ..ring
            },
            FrameList::Buffer,
        ),
    );
    // resource_max_frames: unknown type gives -EOPNOTSUPP through _acquire_resource.
    c.row(
        "acquire resource type 99",
        &[r::EOPNOTSUPP],
        acquire(MemAcquireResource { type_: 99, ..ring }, FrameList::Buffer),
    );
    // vm_event_resource_max_frames: only the MONITOR ring: 0 frames, -EINVAL.
    c.row(
        "acquire ring, id paging",
        &[r::EINVAL],
        acquire(
            MemAcquireResource {
                id: r::PAGING,
                ..ring
            },
            FrameList::Buffer,
        ),
    );
    c.row(
        "acquire ring, id 99",
        &[r::EINVAL],
        acquire(MemAcquireResource { id: 99, ..ring }, FrameList::Buffer),
    );
    // acquire_resource: copying the frame to an unmapped list fails.
    c.row(
        "acquire ring, unmapped frame list",
        &[r::EFAULT],
        acquire(ring, FrameList::At(r::UNMAPPED)),
    );
    // The ring itself, acquired again: the same frame (a second listener could map it).
    c.row_where(
        "acquire ring again gives the same frame",
        &[0],
        |p| r::acquire(p, ring, FrameList::Buffer).map(|(_, frame)| frame),
        |frame| frame == frames.ring,
    );
    // The other guest has no ring.
    c.row(
        "acquire ring of the other guest, no ring",
        &[r::ENOENT],
        acquire(r::ring_request(other), FrameList::Buffer),
    );
    c.row("vm_event attach, other guest, no ring", &[r::ENODEV], |p| {
        r::vm_event(p, other, r::ATTACH, r::MONITOR)
    });
    c.row(
        "set default access on the other guest, no ring",
        &[r::ENODEV],
        |p| r::access_op(p, op(r::SET_ACCESS, other, !0, 0, 5), None, 0),
    );
}

/// Reads after the ring went (the guest was monitored, its default set back to rwx).
pub fn after_the_ring(c: &mut Checker, guest: DomId, frame: u64) {
    // get_access answers without a ring (patch 0017): the default set back to rwx, which
    // superseded the frame's r.
    c.row_where(
        "get default access after the ring went",
        &[0],
        |p| r::access_op(p, op(r::GET_ACCESS, guest, !0, 0, 0), None, 0),
        |access| access == 7,
    );
    c.row_where(
        "get access of the guest's frame after the ring went",
        &[0],
        |p| r::access_op(p, op(r::GET_ACCESS, guest, frame, 0, 0), None, 0),
        |access| access == 7,
    );
    // Setting still needs a ring: -ENODEV.
    c.row(
        "set default access after the ring went",
        &[r::ENODEV],
        |p| r::access_op(p, op(r::SET_ACCESS, guest, !0, 0, 5), None, 0),
    );
}
