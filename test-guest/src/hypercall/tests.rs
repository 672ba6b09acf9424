use super::calls::batch_count;
use super::*;
use crate::fake_xen::{read, write, FakeXen};
use std::cell::RefCell;
use std::vec::Vec;

#[test]
fn multicall_entries_marshal_their_call() {
    let entry = MulticallEntry::new(Hypercall::new(
        HypercallNr::MMU_UPDATE,
        [0x1000, 1, 0x2000, 0x7ff0, 0],
    ));
    assert_eq!(entry.op, 1);
    assert_eq!(entry.args, [0x1000, 1, 0x2000, 0x7ff0, 0, 0]);
    assert_eq!(entry.check(), Ok(0));
    let mut failed = entry;
    failed.result = -22i64 as u64;
    assert_eq!(failed.check(), Err(XenError::EINVAL));
}

#[test]
fn multicall_passes_the_batch_and_its_length() {
    let recorder = FakeXen::new(|_| 0);
    let mut batch = [MulticallEntry::new(Hypercall::new(
        HypercallNr::UPDATE_VA_MAPPING,
        [0x2c_5000, 0, u64::from(UVMF_INVLPG), 0, 0],
    )); 2];
    // SAFETY: the recorder reads nothing.
    assert_eq!(unsafe { multicall(&recorder, &mut batch) }, Ok(()));
    let calls = recorder.calls();
    assert_eq!(calls[0].nr, HypercallNr::MULTICALL);
    assert_eq!(calls[0].args[..2], [batch.as_ptr() as u64, 2]);
}

#[test]
fn entries_are_32_bytes_apart_inside_the_page() {
    let at = |nr| Hypercall::new(nr, [0; 5]).entry_offset();
    assert_eq!(at(HypercallNr::CONSOLE_IO), 18 * 32);
    assert_eq!(at(HypercallNr::VCPU_OP), 768);
    assert_eq!(at(HypercallNr::SCHED_OP), 928);
    assert_eq!(at(HypercallNr::EVENT_CHANNEL_OP), 1024);
    assert_eq!(at(HypercallNr::MMU_UPDATE), 32);
    assert_eq!(at(HypercallNr::UPDATE_VA_MAPPING), 14 * 32);
    assert_eq!(at(HypercallNr::GRANT_TABLE_OP), 640);
    assert_eq!(at(HypercallNr::MMUEXT_OP), 832);
    assert_eq!(at(HypercallNr::MEMORY_OP), 384);
    assert_eq!(at(HypercallNr::XEN_VERSION), 544);
    assert_eq!(at(HypercallNr::VM_ASSIST), 672);
    for nr in [
        HypercallNr::MMU_UPDATE,
        HypercallNr::MEMORY_OP,
        HypercallNr::XEN_VERSION,
        HypercallNr::VM_ASSIST,
        HypercallNr::UPDATE_VA_MAPPING,
        HypercallNr::CONSOLE_IO,
        HypercallNr::GRANT_TABLE_OP,
        HypercallNr::VCPU_OP,
        HypercallNr::MMUEXT_OP,
        HypercallNr::SCHED_OP,
        HypercallNr::EVENT_CHANNEL_OP,
    ] {
        assert!(at(nr) + HYPERCALL_ENTRY_SIZE <= HYPERCALL_PAGE_SIZE);
    }
}

#[test]
fn arguments_go_in_rdi_rsi_rdx_r10_r8() {
    let call = Hypercall::new(HypercallNr::SCHED_OP, [1, 2, 3, 4, 5]);
    assert_eq!(
        call.registers(),
        Registers {
            rdi: 1,
            rsi: 2,
            rdx: 3,
            r10: 4,
            r8: 5
        }
    );
}

#[test]
fn check_splits_negative_errno() {
    assert_eq!(XenError::check(0), Ok(0));
    assert_eq!(XenError::check(7), Ok(7));
    assert_eq!(XenError::check(-2), Err(XenError::ENOENT));
    assert_eq!(XenError::check(-38), Err(XenError::ENOSYS));
}

#[test]
fn shutdown_passes_reason_by_pointer() {
    let reasons = RefCell::new(Vec::new());
    let hv = FakeXen::new(|call: &Hypercall| {
        // SAFETY: `sched_shutdown` passes a live `sched_shutdown` (one `u32`).
        reasons
            .borrow_mut()
            .push(unsafe { read::<u32>(call.args[1]) });
        0
    });
    assert_eq!(sched_shutdown(&hv, ShutdownReason::Poweroff), Ok(()));
    assert_eq!(sched_shutdown(&hv, ShutdownReason::Crash), Ok(()));
    let calls = hv.calls();
    assert_eq!(calls.len(), 2);
    for ((call, pointee), reason) in calls.iter().zip(reasons.take()).zip([0, 3]) {
        assert_eq!(call.nr, HypercallNr::SCHED_OP);
        assert_eq!(call.args[0], u64::from(xen_sys::SCHEDOP_shutdown));
        assert_ne!(call.args[1], 0, "argument is a pointer, not the value");
        assert_eq!(pointee, reason);
        assert_eq!(&call.args[2..], &[0, 0, 0]);
    }
}

#[test]
fn alloc_unbound_asks_for_self_and_returns_xen_s_port() {
    let asked = RefCell::new(None);
    let xen = FakeXen::new(|call| {
        assert_eq!(call.nr, HypercallNr::EVENT_CHANNEL_OP);
        assert_eq!(call.args[0], u64::from(xen_sys::EVTCHNOP_alloc_unbound));
        // SAFETY: `evtchn_alloc_unbound` passes a live, writable structure.
        let mut alloc: xen_sys::evtchn_alloc_unbound = unsafe { read(call.args[1]) };
        *asked.borrow_mut() = Some((alloc.dom, alloc.remote_dom, alloc.port));
        alloc.port = 42;
        // SAFETY: as above.
        unsafe { write(call.args[1], alloc) };
        0
    });
    assert_eq!(evtchn_alloc_unbound(&xen, DomId::DOM0), Ok(EvtchnPort(42)));
    assert_eq!(asked.take(), Some((0x7FF0, 0, 0)));
    let refused = FakeXen::new(|_| -28);
    assert_eq!(
        evtchn_alloc_unbound(&refused, DomId::DOM0).map_err(XenError::errno),
        Err(28)
    );
}

#[test]
fn poll_passes_one_port_and_the_timeout() {
    let seen = RefCell::new(Vec::new());
    let xen = FakeXen::new(|call| {
        assert_eq!(call.nr, HypercallNr::SCHED_OP);
        assert_eq!(call.args[0], u64::from(xen_sys::SCHEDOP_poll));
        // SAFETY: `sched_poll` passes a live structure and a live port array.
        let (poll, port) = unsafe {
            let poll: xen_sys::sched_poll = read(call.args[1]);
            (poll, read::<u32>(poll.ports as u64))
        };
        seen.borrow_mut().push((poll, port));
        0
    });
    assert_eq!(sched_poll(&xen, EvtchnPort(9), 123_456), Ok(()));
    let calls = seen.take();
    let (poll, port) = calls[0];
    assert_eq!((poll.nr_ports, poll.timeout, port), (1, 123_456, 9));
}

#[test]
fn evtchn_send_passes_port_by_pointer() {
    let port = RefCell::new(None);
    let hv = FakeXen::new(|call: &Hypercall| {
        // SAFETY: `evtchn_send` passes a live `evtchn_send` (one `u32`).
        *port.borrow_mut() = Some(unsafe { read::<u32>(call.args[1]) });
        0
    });
    assert_eq!(evtchn_send(&hv, EvtchnPort(7)), Ok(()));
    let call = hv.calls()[0];
    let pointee = port.take();
    assert_eq!(call.nr, HypercallNr::EVENT_CHANNEL_OP);
    assert_eq!(call.args[0], u64::from(xen_sys::EVTCHNOP_send));
    assert_eq!(pointee, Some(7));
}

#[test]
fn yield_has_null_argument() {
    let hv = FakeXen::new(|_| 0);
    assert_eq!(sched_yield(&hv), Ok(()));
    let calls = hv.calls();
    assert_eq!(calls[0].nr, HypercallNr::SCHED_OP);
    assert_eq!(
        calls[0].args,
        [u64::from(xen_sys::SCHEDOP_yield), 0, 0, 0, 0]
    );
}

#[test]
fn count_vcpus_stops_at_enoent() {
    // Three vCPUs: 0 up, 1 and 2 down, none from 3 on.
    let hv = FakeXen::new(|call| match call.args[1] {
        0 => 1,
        1 | 2 => 0,
        _ => -2,
    });
    assert_eq!(count_vcpus(&hv, 64), Ok(3));
    let calls = hv.calls();
    assert_eq!(calls.len(), 4);
    for (id, call) in calls.iter().enumerate() {
        assert_eq!(call.nr, HypercallNr::VCPU_OP);
        assert_eq!(call.args, [3, id as u64, 0, 0, 0], "VCPUOP_is_up");
    }
}

#[test]
fn count_vcpus_reports_other_errors_and_respects_max() {
    let hv = FakeXen::new(|_| -38);
    assert_eq!(count_vcpus(&hv, 64), Err(XenError::ENOSYS));
    let hv = FakeXen::new(|_| 1);
    assert_eq!(count_vcpus(&hv, 5), Ok(5));
    assert_eq!(hv.calls().len(), 5);
}

#[test]
fn console_io_write_passes_length_and_buffer() {
    let hv = FakeXen::new(|_| 0);
    let text = b"hello\n";
    assert_eq!(console_io_write(&hv, text), Ok(()));
    let calls = hv.calls();
    assert_eq!(calls[0].nr, HypercallNr::CONSOLE_IO);
    assert_eq!(
        calls[0].args,
        [
            u64::from(xen_sys::CONSOLEIO_write),
            6,
            text.as_ptr() as u64,
            0,
            0
        ]
    );
    let denied = FakeXen::new(|_| -1);
    assert_eq!(console_io_write(&denied, text), Err(XenError::EPERM));
}

#[test]
fn xen_version_and_vm_assist_numbers_and_arguments() {
    assert_eq!(XEN_EXTRAVERSION_LEN, 16);
    assert_eq!(
        (XenError::EFAULT.code(), XenError::ETIMEDOUT.code()),
        (-14, -110)
    );

    let hv = FakeXen::new(|call| {
        if call.nr == HypercallNr::XEN_VERSION {
            -14
        } else {
            0
        }
    });
    let mut buf = [0u8; XEN_EXTRAVERSION_LEN];
    // SAFETY: `buf` is 16 writable bytes; the recorder writes nothing.
    let rc = unsafe { xen_version_extraversion(&hv, buf.as_mut_ptr()) };
    assert_eq!(rc, -14, "the raw result, not an Err");
    assert_eq!(
        vm_assist_enable(&hv, u64::from(xen_sys::VMASST_TYPE_writable_pagetables)),
        Ok(())
    );
    let calls = hv.calls();
    assert_eq!(calls[0].nr, HypercallNr::XEN_VERSION);
    assert_eq!(calls[0].args, [1, buf.as_ptr() as u64, 0, 0, 0]);
    assert_eq!(calls[1].nr, HypercallNr::VM_ASSIST);
    assert_eq!(calls[1].args, [0, 2, 0, 0, 0]);
    let refused = FakeXen::new(|_| -22);
    assert_eq!(vm_assist_enable(&refused, 2), Err(XenError::EINVAL));
}

// The memory wrappers for the tests' hypervisors. Their safety contracts are about
// real page tables; a recording hypervisor changes no mapping.

fn sim_update_va_mapping<H: Hypervisor>(
    hv: &H,
    va: u64,
    val: u64,
    flags: u64,
) -> Result<(), XenError> {
    // SAFETY: `hv` is a test hypervisor, which changes no mapping.
    unsafe { update_va_mapping(hv, va, val, flags) }
}

fn sim_mmu_update<H: Hypervisor>(
    hv: &H,
    reqs: &[MmuUpdate],
    foreigndom: DomId,
) -> Result<u32, XenError> {
    // SAFETY: `hv` is a test hypervisor, which changes no mapping.
    unsafe { mmu_update(hv, reqs, foreigndom) }
}

fn sim_mmuext_op<H: Hypervisor>(
    hv: &H,
    ops: &[MmuextOp],
    foreigndom: DomId,
) -> Result<u32, XenError> {
    // SAFETY: `hv` is a test hypervisor, which changes no mapping.
    unsafe { mmuext_op(hv, ops, foreigndom) }
}

fn sim_gnttab_map_grant_ref<H: Hypervisor>(
    hv: &H,
    op: &mut GnttabMapGrantRef,
) -> Result<(), XenError> {
    // SAFETY: `hv` is a test hypervisor, which changes no mapping.
    unsafe { gnttab_map_grant_ref(hv, op) }
}

fn sim_gnttab_unmap_grant_ref<H: Hypervisor>(
    hv: &H,
    op: &mut GnttabUnmapGrantRef,
) -> Result<(), XenError> {
    // SAFETY: `hv` is a test hypervisor, which changes no mapping.
    unsafe { gnttab_unmap_grant_ref(hv, op) }
}

#[test]
fn update_va_mapping_passes_va_pte_flags_by_value() {
    let hv = FakeXen::new(|_| -16);
    let pte = (0x1_2345 << 12) | 3;
    assert_eq!(
        sim_update_va_mapping(&hv, 0x20f000, pte, u64::from(UVMF_INVLPG)),
        Err(XenError::EBUSY)
    );
    let calls = hv.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].nr, HypercallNr::UPDATE_VA_MAPPING);
    assert_eq!(calls[0].args, [0x20f000, pte, 2, 0, 0]);
    let regs = calls[0].registers();
    assert_eq!((regs.rdi, regs.rsi, regs.rdx), (0x20f000, pte, 2));
    let ok = FakeXen::new(|_| 0);
    assert_eq!(
        sim_update_va_mapping(&ok, 0x1000, 0, u64::from(UVMF_INVLPG)),
        Ok(())
    );
}

#[test]
fn mmu_update_passes_requests_count_done_and_foreigndom() {
    let seen = RefCell::new(Vec::new());
    let hv = FakeXen::new(|call| {
        let count = call.args[1] as usize;
        for i in 0..count {
            // SAFETY: `args[0]` points to `count` live requests during the call.
            let req: MmuUpdate = unsafe { read(call.args[0] + 16 * i as u64) };
            seen.borrow_mut().push(req);
        }
        // SAFETY: `args[2]` points to the wrapper's live `done`.
        unsafe { write(call.args[2], count as u32) };
        0
    });
    let reqs = [
        MmuUpdate::normal_pt_update(0xabc_d078, 0x1234_5003),
        MmuUpdate::normal_pt_update(0x1000, 0),
    ];
    assert_eq!(sim_mmu_update(&hv, &reqs, DomId::SELF), Ok(2));
    assert_eq!(sim_mmu_update(&hv, &reqs[..1], DomId::XEN), Ok(1));
    let calls = hv.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].nr, HypercallNr::MMU_UPDATE);
    assert_eq!(calls[0].args[0], reqs.as_ptr() as u64);
    assert_eq!(calls[0].args[1], 2);
    assert_ne!(calls[0].args[2], 0, "done is passed by pointer");
    assert_eq!(calls[0].args[3], 0x7FF0, "FD = DOMID_SELF, PFD bits 0");
    assert_eq!(calls[1].args[1], 1);
    assert_eq!(calls[1].args[3], 0x7FF2, "FD = DOMID_XEN");
    assert_eq!(calls[1].args[4], 0);
    let seen = seen.borrow();
    assert_eq!(
        seen[0].ptr, 0xabc_d078,
        "MMU_NORMAL_PT_UPDATE is 0 in bits 1:0"
    );
    assert_eq!(seen[0].val, 0x1234_5003);
    assert_eq!(seen[2], reqs[0]);
}

#[test]
fn machphys_update_names_the_frame_by_machine_address() {
    let req = MmuUpdate::machphys_update(0x1_2345, 0x20c);
    assert_eq!(req.ptr, 0x1234_5001);
    assert_eq!(req.val, 0x20c);
}

#[test]
fn mmu_update_reports_xen_error() {
    let hv = FakeXen::new(|_| -1);
    let req = [MmuUpdate::normal_pt_update(0x5000, 7)];
    assert_eq!(sim_mmu_update(&hv, &req, DomId::XEN), Err(XenError::EPERM));
}

#[test]
fn batch_count_rejects_continuation_bit() {
    assert_eq!(batch_count(0), Ok(0));
    assert_eq!(batch_count(1), Ok(1));
    assert_eq!(batch_count((1 << 31) - 1), Ok((1 << 31) - 1));
    assert_eq!(batch_count(1 << 31), Err(XenError::EINVAL));
    assert_eq!(batch_count(usize::MAX), Err(XenError::EINVAL));
}

#[test]
fn mmuext_op_passes_ops_by_pointer() {
    let seen = RefCell::new(Vec::new());
    let hv = FakeXen::new(|call| {
        // SAFETY: `args[0]` points to at least one live op during the call.
        let op: MmuextOp = unsafe { read(call.args[0]) };
        seen.borrow_mut().push(op);
        if op.cmd() == xen_sys::MMUEXT_PIN_L1_TABLE {
            -22
        } else {
            // SAFETY: `args[2]` points to the wrapper's live `done`.
            unsafe { write(call.args[2], 1u32) };
            0
        }
    });
    assert_eq!(
        sim_mmuext_op(&hv, &[MmuextOp::pin_l1_table(0x4_2000)], DomId::SELF),
        Err(XenError::EINVAL)
    );
    assert_eq!(
        sim_mmuext_op(&hv, &[MmuextOp::invlpg_local(0x20f000)], DomId::SELF),
        Ok(1)
    );
    assert_eq!(
        sim_mmuext_op(&hv, &[MmuextOp::unpin_table(0x4_2000)], DomId::SELF),
        Ok(1)
    );
    let calls = hv.calls();
    for call in calls.iter() {
        assert_eq!(call.nr, HypercallNr::MMUEXT_OP);
        assert_eq!(call.args[1], 1);
        assert_ne!(call.args[2], 0);
        assert_eq!(call.args[3], 0x7FF0);
    }
    let seen = seen.borrow();
    assert_eq!((seen[0].cmd(), seen[0].arg1()), (0, 0x4_2000));
    assert_eq!((seen[1].cmd(), seen[1].arg1()), (7, 0x20f000));
    assert_eq!((seen[2].cmd(), seen[2].arg1()), (4, 0x4_2000));
}

#[test]
fn grant_map_and_unmap_pass_one_op_and_read_back_status() {
    let seen_map = RefCell::new(Vec::new());
    let hv = FakeXen::new(|call| {
        if call.args[0] == u64::from(xen_abi::GNTTABOP_map_grant_ref) {
            // SAFETY: `args[1]` points to the wrapper's live op.
            let mut op: GnttabMapGrantRef = unsafe { read(call.args[1]) };
            seen_map.borrow_mut().push(op);
            if op.ref_ == 5 {
                op.status = 0;
                op.handle = 9;
            } else {
                op.status = -1; // GNTST_general_error
            }
            // SAFETY: as above; Xen writes the OUT fields back.
            unsafe { write(call.args[1], op) };
        } else {
            // SAFETY: `args[1]` points to the wrapper's live op.
            let mut op: GnttabUnmapGrantRef = unsafe { read(call.args[1]) };
            op.status = if op.handle == 9 { 0 } else { -4 };
            // SAFETY: as above.
            unsafe { write(call.args[1], op) };
        }
        0
    });
    let mut op = grant_host_map(0x20f000, DomId::DOM0, 3);
    assert_eq!(sim_gnttab_map_grant_ref(&hv, &mut op), Ok(()));
    assert_eq!(i32::from(op.status), xen_abi::GNTST_general_error);
    let mut op = grant_host_map(0x20f000, DomId::DOM0, 5);
    assert_eq!(sim_gnttab_map_grant_ref(&hv, &mut op), Ok(()));
    assert_eq!((op.status, op.handle), (0, 9));
    let mut unmap = GnttabUnmapGrantRef {
        host_addr: 0x20f000,
        handle: op.handle,
        status: -99,
        ..GnttabUnmapGrantRef::default()
    };
    assert_eq!(sim_gnttab_unmap_grant_ref(&hv, &mut unmap), Ok(()));
    assert_eq!(unmap.status, 0);

    let calls = hv.calls();
    assert_eq!(calls.len(), 3);
    for call in calls.iter() {
        assert_eq!(call.nr, HypercallNr::GRANT_TABLE_OP);
        assert_eq!(call.args[2], 1, "one op per call");
        assert_eq!(&call.args[3..], &[0, 0]);
    }
    assert_eq!(calls[0].args[..1], [0], "GNTTABOP_map_grant_ref");
    assert_eq!(calls[2].args[..1], [1], "GNTTABOP_unmap_grant_ref");
    let seen = seen_map.borrow();
    assert_eq!(seen[0].host_addr, 0x20f000);
    assert_eq!(seen[0].flags, 1 << 1, "GNTMAP_host_map");
    assert_eq!((seen[0].dom, seen[0].ref_), (0, 3));

    let broken = FakeXen::new(|_| -38);
    let mut op = grant_host_map(0x20f000, DomId::DOM0, 0);
    assert_eq!(
        sim_gnttab_map_grant_ref(&broken, &mut op),
        Err(XenError::ENOSYS)
    );
}

#[test]
fn reserved_ids_and_errors_are_the_headers_values() {
    // `xen.h`'s `DOMID_*` and `errno.h`'s values, as `xen_abi` has them.
    assert_eq!(
        (DomId::SELF.0, DomId::XEN.0, DomId::INVALID.0),
        (0x7FF0, 0x7FF2, 0x7FF4)
    );
    assert_eq!((XenError::EPERM.code(), XenError::EBUSY.code()), (-1, -16));
    assert_eq!(
        (XenError::ENOENT.errno(), XenError::EINVAL.errno()),
        (2, 22)
    );
    assert_eq!(XenError::ENOSYS.code(), -38);
}
