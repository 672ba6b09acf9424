//! Exceptions and event upcalls delivered onto a guest stack Xen must write for the
//! guest: the `bounce-frame` pattern's hypercalls, its frame record and the check of
//! each frame.
//!
//! Why: when Xen delivers an exception or an event to a 64-bit PV kernel that is
//! already in kernel mode, `create_bounce_frame` (`xen/arch/x86/x86_64/entry.S`) writes
//! the frame at the kernel's own `rsp`. With that stack on a page the listener made
//! read-only, the frame is Xen's own write: it must land (the guest gets its exception)
//! without being reported and without opening the page to the guest.
//!
//! The frame, from the lowest address (`rsp` at the handler's entry), each 8 bytes:
//! `rcx`, `r11`, [error code,] `rip`, `cs` (bits 0-15 the selector with its RPL
//! cleared, "kernel context"; bits 32-39 the saved upcall mask), `rflags` (`IF` =
//! not the saved mask), `rsp`, `ss`. Its top is the interrupted `rsp` rounded down to
//! 16 bytes. A handler returns with `HYPERVISOR_iret` (`do_iret`,
//! `xen/arch/x86/pv/iret.c`): it jumps to the hypercall page's iret entry, which pushes
//! `rcx`, `r11`, `rax` above an `iret_context` (`flags`, `rip`, `cs`, `rflags`, `rsp`,
//! `ss`) the handler built.
//!
//! The ABI is `xen_sys`'s: `trap_info` (`HYPERVISOR_set_trap_table`),
//! `HYPERVISOR_set_callbacks`, `EVTCHNOP_bind_ipi` and the `shared_info` and
//! `vcpu_info` layouts.

use crate::hypercall::{EvtchnPort, Hypercall, HypercallNr, Hypervisor, VcpuId, XenError};
use crate::text::Sink;
use crate::vcpu_up::{FLAT_KERNEL_CS, FLAT_KERNEL_SS, RFLAGS_IF};

pub use crate::vcpu_up::TrapInfo;

/// `trap_info.flags` bit 2 (`TI_SET_IF`): events masked while the handler runs.
pub const TI_MASK_EVENTS: u8 = 4;

pub use crate::bench_ops::SHARED_INFO_EVTCHN_PENDING;
/// Offset of `evtchn_upcall_pending` in `struct vcpu_info`.
pub const VCPU_INFO_UPCALL_PENDING: usize =
    core::mem::offset_of!(xen_sys::vcpu_info, evtchn_upcall_pending);
/// Offset of `evtchn_upcall_mask` in `struct vcpu_info`.
pub const VCPU_INFO_UPCALL_MASK: usize =
    core::mem::offset_of!(xen_sys::vcpu_info, evtchn_upcall_mask);
/// Offset of `evtchn_pending_sel` in `struct vcpu_info`.
pub const VCPU_INFO_PENDING_SEL: usize =
    core::mem::offset_of!(xen_sys::vcpu_info, evtchn_pending_sel);

/// What the handlers record of the last delivery: written by the handlers' asm (which
/// never writes the stack the frame is on), read by Rust after the trigger returned.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The vector (3, 6, 13), or [`UPCALL_VECTOR`] for the event upcall.
    pub vector: u64,
    /// Where the frame started (`rsp` at the handler's entry).
    pub frame: u64,
    /// The frame's `rcx`.
    pub rcx: u64,
    /// The frame's `r11`.
    pub r11: u64,
    /// The frame's error code, [`NO_ERROR_CODE`] for a frame without one.
    pub error_code: u64,
    /// The frame's `rip`.
    pub rip: u64,
    /// The frame's `cs` word (selector and saved upcall mask).
    pub cs: u64,
    /// The frame's `rflags`.
    pub rflags: u64,
    /// The frame's `rsp`.
    pub rsp: u64,
    /// The frame's `ss`.
    pub ss: u64,
    /// Deliveries so far.
    pub count: u64,
    /// Handler scratch: bytes to add to `rip` before returning (past `ud2`, `int $n`).
    pub skip: u64,
    /// Handler scratch: the interrupted `rax`.
    pub saved_rax: u64,
    /// The trigger's scratch: its own `rsp` while the stack is on the restricted page.
    pub saved_rsp: u64,
}

/// [`Record::vector`] of the event upcall (no exception vector is that high).
pub const UPCALL_VECTOR: u64 = 0x100;
/// [`Record::error_code`] of a frame without an error code.
pub const NO_ERROR_CODE: u64 = u64::MAX;
/// What the trigger puts in `rcx` before an exception (the frame must hold it).
pub const RCX_MARK: u64 = 0x5243_5800_0000_0001;
/// What the trigger puts in `r11` before an exception.
pub const R11_MARK: u64 = 0x5231_3100_0000_0002;
/// A selector the trigger loads into `ds` for a `#GP` with an error code: index 0x246
/// of the LDT (TI set), and a PV kernel without an LDT has an empty one, so the CPU
/// raises `#GP(0x1234)` (the selector, RPL bits clear) and Xen passes it on as is
/// (`do_general_protection`: no IDT or EXT bit, not 0, so not emulated).
///
/// Not `int $0x20` (a software interrupt Xen refuses): its error code comes from the CPU's
/// IDT check, and QEMU's TCG (the nested runs) gives `0x202` where hardware gives
/// `(0x20 << 3) | 2` = `0x102`, seen in the first runs of this pattern.
pub const BAD_SELECTOR: u16 = 0x1234;

/// One kind of delivery the pattern makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `int3`: `#BP`, a trap (`rip` after the instruction), no error code.
    Int3,
    /// `ud2`: `#UD`, a fault (`rip` at the instruction), no error code.
    Ud2,
    /// `mov %dx, %ds` with [`BAD_SELECTOR`]: `#GP` (a fault) with error code `0x1234`.
    BadSelector,
    /// An event channel sent to itself, delivered on the way out of a hypercall.
    Upcall,
}

impl Kind {
    /// In the order each round makes them.
    pub const ALL: [Self; 4] = [Self::Int3, Self::Ud2, Self::BadSelector, Self::Upcall];

    /// The name in the lines.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Int3 => "int3",
            Self::Ud2 => "ud2",
            Self::BadSelector => "mov-ds",
            Self::Upcall => "upcall",
        }
    }

    /// The trigger's selector (its `rdi`).
    pub const fn index(self) -> u64 {
        match self {
            Self::Int3 => 0,
            Self::Ud2 => 1,
            Self::BadSelector => 2,
            Self::Upcall => 3,
        }
    }

    /// [`Record::vector`] of its delivery.
    pub const fn vector(self) -> u64 {
        match self {
            Self::Int3 => 3,
            Self::Ud2 => 6,
            Self::BadSelector => 13,
            Self::Upcall => UPCALL_VECTOR,
        }
    }

    /// Its frame's error code, [`NO_ERROR_CODE`] when it has none.
    pub const fn error_code(self) -> u64 {
        match self {
            Self::BadSelector => BAD_SELECTOR as u64,
            _ => NO_ERROR_CODE,
        }
    }

    /// The upcall mask saved in the frame: exceptions come with upcalls masked (as this
    /// kernel runs), the upcall only once the trigger unmasked them.
    pub const fn saved_mask(self) -> u64 {
        match self {
            Self::Upcall => 0,
            _ => 1,
        }
    }
}

/// The first field of a frame that is not what it should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// The field's name.
    pub field: &'static str,
    /// What the record holds.
    pub got: u64,
    /// What it should hold.
    pub expected: u64,
}

/// Checks the record of a `kind` delivery at `rip` (the trigger's address of it)
/// while `rsp` was `stack_top`, after `count_before` earlier deliveries.
pub fn check(
    kind: Kind,
    record: &Record,
    rip: u64,
    stack_top: u64,
    count_before: u64,
) -> Result<(), Mismatch> {
    let has_error = kind.error_code() != NO_ERROR_CODE;
    let frame = (stack_top & !0xf) - 7 * 8 - if has_error { 8 } else { 0 };
    let saved_mask = kind.saved_mask();
    let if_flag = if saved_mask == 0 { RFLAGS_IF } else { 0 };
    let mut fields = [
        ("count", record.count, count_before + 1),
        ("vector", record.vector, kind.vector()),
        ("frame", record.frame, frame),
        ("error_code", record.error_code, kind.error_code()),
        ("rip", record.rip, rip),
        ("cs", record.cs & 0xffff, u64::from(FLAT_KERNEL_CS & !3)),
        ("saved_upcall_mask", (record.cs >> 32) & 0xff, saved_mask),
        ("rflags.if", record.rflags & RFLAGS_IF, if_flag),
        ("rsp", record.rsp, stack_top),
        ("ss", record.ss, u64::from(FLAT_KERNEL_SS)),
        ("rcx", record.rcx, RCX_MARK),
        ("r11", record.r11, R11_MARK),
    ];
    if kind == Kind::Upcall {
        // The upcall comes out of a `syscall`, which leaves the return address in rcx
        // and rflags in r11.
        fields[10].2 = rip;
        fields[11].2 = record.r11;
    }
    match fields
        .into_iter()
        .find(|(_, got, expected)| got != expected)
    {
        Some((field, got, expected)) => Err(Mismatch {
            field,
            got,
            expected,
        }),
        None => Ok(()),
    }
}

/// `HYPERVISOR_set_trap_table(table)`: the virtual IDT, `table` a list ended by an
/// entry whose address is 0; a null `table` clears every entry.
///
/// # Safety
///
/// From then on Xen delivers the listed exceptions to the entries' addresses: each must
/// be a handler that is sound for every such exception this kernel can take.
pub unsafe fn set_trap_table<H: Hypervisor + ?Sized>(
    hv: &H,
    table: *const TrapInfo,
) -> Result<(), XenError> {
    let call = Hypercall::new(HypercallNr::SET_TRAP_TABLE, [table as u64, 0, 0, 0, 0]);
    // SAFETY: Xen reads the list up to its end entry (the caller's list); what it then
    // delivers is this fn's contract.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_set_callbacks(event, failsafe, syscall)` (64-bit form).
///
/// # Safety
///
/// Xen enters `event` for every event upcall once upcalls are unmasked, and
/// `failsafe` when it cannot return to the guest (a bad `iret`): both must be sound
/// there.
pub unsafe fn set_callbacks<H: Hypervisor + ?Sized>(
    hv: &H,
    event: u64,
    failsafe: u64,
    syscall: u64,
) -> Result<(), XenError> {
    let call = Hypercall::new(HypercallNr::SET_CALLBACKS, [event, failsafe, syscall, 0, 0]);
    // SAFETY: no pointer Xen dereferences now; the entries are this fn's contract.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_event_channel_op(EVTCHNOP_bind_ipi, ...)`: a port that, sent, notifies
/// `vcpu` of this domain.
pub fn evtchn_bind_ipi<H: Hypervisor + ?Sized>(
    hv: &H,
    vcpu: VcpuId,
) -> Result<EvtchnPort, XenError> {
    let mut bind = xen_sys::evtchn_bind_ipi {
        vcpu: vcpu.0,
        port: 0,
    };
    let call = Hypercall::new(
        HypercallNr::EVENT_CHANNEL_OP,
        [
            u64::from(xen_sys::EVTCHNOP_bind_ipi),
            core::ptr::from_mut(&mut bind) as u64,
            0,
            0,
            0,
        ],
    );
    // SAFETY: the only pointer is `bind`, live, which Xen reads and writes back.
    XenError::check(unsafe { hv.hypercall(call) })?;
    Ok(EvtchnPort(bind.port))
}

/// Writes [`Bounce`](crate::lines::Bounce).
pub fn write_kind_line(out: &mut (impl Sink + ?Sized), kind: Kind, delivered: u64, right: u64) {
    let line = crate::lines::Bounce {
        kind,
        delivered,
        right,
    };
    let _ = write!(out, "{line}");
}

/// Writes [`BounceBad`](crate::lines::BounceBad).
pub fn write_bad_line(out: &mut (impl Sink + ?Sized), kind: Kind, round: u64, bad: &Mismatch) {
    let line = crate::lines::BounceBad {
        kind,
        round,
        field: bad.field,
        got: bad.got,
        expected: bad.expected,
    };
    let _ = write!(out, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    #[test]
    fn abi_values() {
        assert_eq!(Kind::BadSelector.error_code(), 0x1234);
        assert_eq!(offset_of!(Record, saved_rsp), 13 * 8);
    }

    fn good(kind: Kind, rip: u64, top: u64) -> Record {
        let error = kind.error_code() != NO_ERROR_CODE;
        Record {
            vector: kind.vector(),
            frame: (top & !0xf) - 56 - if error { 8 } else { 0 },
            rcx: if kind == Kind::Upcall { rip } else { RCX_MARK },
            r11: if kind == Kind::Upcall {
                0x246
            } else {
                R11_MARK
            },
            error_code: kind.error_code(),
            rip,
            cs: 0xe030 | (kind.saved_mask() << 32),
            rflags: if kind == Kind::Upcall { 0x246 } else { 0x046 },
            rsp: top,
            ss: 0xe02b,
            count: 5,
            ..Record::default()
        }
    }

    #[test]
    fn right_frames_pass() {
        for kind in Kind::ALL {
            let record = good(kind, 0x10_2000, 0x20_aff8);
            assert_eq!(
                check(kind, &record, 0x10_2000, 0x20_aff8, 4),
                Ok(()),
                "{kind:?}"
            );
        }
        // The frame starts 56 bytes below the rounded top, 64 with an error code.
        assert_eq!(good(Kind::Int3, 0, 0x20_aff8).frame, 0x20_afb8);
        assert_eq!(good(Kind::BadSelector, 0, 0x20_aff8).frame, 0x20_afb0);
    }

    #[test]
    fn wrong_fields_are_named() {
        let top = 0x20_aff8;
        let mut record = good(Kind::BadSelector, 0x10_2000, top);
        record.error_code = 0;
        assert_eq!(
            check(Kind::BadSelector, &record, 0x10_2000, top, 4),
            Err(Mismatch {
                field: "error_code",
                got: 0,
                expected: 0x1234
            })
        );
        let record = good(Kind::Int3, 0x10_2001, top);
        assert_eq!(
            check(Kind::Int3, &record, 0x10_2000, top, 4)
                .unwrap_err()
                .field,
            "rip"
        );
        assert_eq!(
            check(Kind::Int3, &record, 0x10_2001, top, 5)
                .unwrap_err()
                .field,
            "count",
            "a delivery that did not happen"
        );
        let mut record = good(Kind::Upcall, 0x10_2000, top);
        record.cs |= 1 << 32;
        assert_eq!(
            check(Kind::Upcall, &record, 0x10_2000, top, 4)
                .unwrap_err()
                .field,
            "saved_upcall_mask"
        );
    }
}
