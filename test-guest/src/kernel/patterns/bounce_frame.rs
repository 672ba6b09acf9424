//! The `bounce-frame` pattern (`test_guest::traps`): exceptions and event upcalls
//! delivered while the kernel's stack is on buffer page 12, which the listener keeps
//! read-only (rx).
//!
//! Xen writes each frame there (`create_bounce_frame`); the guest itself never writes
//! the page until its one final touch. That is why the handlers are asm that only read
//! the frame: each records it in [`RECORD`] (in `.bss`), moves to its own stack
//! ([`HANDLER_STACK`]), builds the `iret_context` there (the frame's `rip` moved past
//! `ud2` or the `mov` to `ds`, which are faults) and leaves through `HYPERVISOR_iret`, whose
//! hypercall-page entry pushes onto that stack, not page 12. So an event in the trace
//! for page 12 before the final touch could only be Xen's frame write, reported.
//!
//! After `GO`: the trap table (vectors 3, 6, 13), the event and failsafe callbacks and
//! an IPI event channel to vCPU 0 are set up; then [`ROUNDS`] rounds of, in order,
//! `int3`, `ud2`, `mov %dx, %ds` with an LDT selector this kernel has no LDT for
//! (`#GP(0x1234)`) and an upcall (the channel sent while upcalls are masked, then, on page
//! 12's stack, the mask cleared and a direct `syscall` hypercall, on whose way out Xen
//! delivers the event). The trigger (`tg_bf_trigger`) moves `rsp` to page 12's top
//! (0xff8, so the frame goes below the 16-byte-aligned 0xff0) only around the one
//! instruction that raises the delivery; it pushes nothing there. Each record is
//! checked ([`traps::check`]: vector, frame address, error code, `rip`, `cs`, saved
//! upcall mask, `rflags.IF`, `rsp`, `ss`, `rcx`, `r11`). The upcall handler returns
//! with `IF` clear, so upcalls stay masked; Rust then clears the event's pending bits.
//! Then the trap table is cleared, one `BOUNCE` line per kind (and a `BOUNCE-BAD` line
//! for the first wrong frame), and the plan's write to page 12 at 0x10 (reported: the
//! page stayed read-only).
//!
//! Known race: an event that becomes pending in the three instructions between the
//! trigger's unmask and its `syscall` (xenconsoled answering the console, say) is
//! delivered there, with `rip` before the `syscall`: that round's upcall is counted
//! wrong (`BOUNCE-BAD ... field=rip`). Under QEMU's TCG those instructions are one
//! translation block, which interrupts do not split.

use core::cell::UnsafeCell;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, Ordering};

use test_guest::hypercall::{
    self, HypercallNr, HypercallPage, VcpuId, XenError, HYPERCALL_ENTRY_SIZE,
};
use test_guest::patterns::Plan;
use test_guest::traps::{
    self, Kind, Mismatch, Record, TrapInfo, R11_MARK, RCX_MARK, SHARED_INFO_EVTCHN_PENDING,
    TI_MASK_EVENTS, UPCALL_VECTOR, VCPU_INFO_PENDING_SEL, VCPU_INFO_UPCALL_MASK,
    VCPU_INFO_UPCALL_PENDING,
};
use test_guest::vcpu_up::{FLAT_KERNEL_CS, RFLAGS_IF};

use super::super::{buffer_byte, fail, line, SHARED_INFO};
use super::touch_buffer;

/// Rounds of the four deliveries.
const ROUNDS: u64 = test_guest::patterns::BOUNCE_ROUNDS;

/// Bytes of the handlers' stack.
const HANDLER_STACK_SIZE: usize = 4096;

/// Where the trigger puts `rsp` in page 12 (not 16-byte aligned: Xen rounds it down).
const STACK_TOP_OFFSET: usize = 0xff8;

/// The handlers' record of the last delivery.
#[repr(C)]
struct RecordCell(UnsafeCell<Record>);

// SAFETY: only vCPU 0 runs this pattern; the record is written by the handlers (asm)
// and by nothing else, and read by Rust (volatile, raw pointer) between deliveries.
unsafe impl Sync for RecordCell {}

static RECORD: RecordCell = RecordCell(UnsafeCell::new(Record {
    vector: 0,
    frame: 0,
    rcx: 0,
    r11: 0,
    error_code: 0,
    rip: 0,
    cs: 0,
    rflags: 0,
    rsp: 0,
    ss: 0,
    count: 0,
    skip: 0,
    saved_rax: 0,
    saved_rsp: 0,
}));

/// The stack the handlers build their `iret_context` on.
#[repr(C, align(16))]
struct HandlerStack(UnsafeCell<[u8; HANDLER_STACK_SIZE]>);

// SAFETY: only the handlers use it, as their stack, one delivery at a time (vCPU 0).
unsafe impl Sync for HandlerStack {}

static HANDLER_STACK: HandlerStack = HandlerStack(UnsafeCell::new([0; HANDLER_STACK_SIZE]));

// The handlers and the trigger. Registers: at a handler's entry `rcx` and `r11` are
// free (Xen saved the interrupted ones in the frame) and everything else must be kept
// (`rax` is saved in the record and given back through the iret context).
core::arch::global_asm!(
    r#"
    .pushsection .text.bounce_frame, "ax", @progbits

    .globl tg_bf_int3
tg_bf_int3:
    mov $3, %r11d
    xor %ecx, %ecx
    jmp tg_bf_no_error
    .globl tg_bf_ud
tg_bf_ud:
    mov $6, %r11d
    mov $2, %ecx
    jmp tg_bf_no_error
    .globl tg_bf_upcall
tg_bf_upcall:
    mov ${upcall}, %r11d
    xor %ecx, %ecx
    jmp tg_bf_no_error
    .globl tg_bf_gp
tg_bf_gp:
    /* frame: rcx, r11, error code, rip, cs, rflags, rsp, ss */
    mov %rax, {rec}+{saved_rax}(%rip)
    movq $13, {rec}+{vector}(%rip)
    movq $2, {rec}+{skip}(%rip)
    mov 16(%rsp), %rax
    mov %rax, {rec}+{error_code}(%rip)
    lea 24(%rsp), %r11
    jmp tg_bf_common
tg_bf_no_error:
    /* frame: rcx, r11, rip, cs, rflags, rsp, ss; r11 = vector, rcx = rip skip */
    mov %rax, {rec}+{saved_rax}(%rip)
    mov %r11, {rec}+{vector}(%rip)
    mov %rcx, {rec}+{skip}(%rip)
    movq $-1, {rec}+{error_code}(%rip)
    lea 16(%rsp), %r11
tg_bf_common:
    /* r11 -> the frame's rip; reads only, below: the frame is on the restricted page */
    mov %rsp, {rec}+{frame}(%rip)
    mov 0(%rsp), %rax
    mov %rax, {rec}+{rcx}(%rip)
    mov 8(%rsp), %rax
    mov %rax, {rec}+{r11}(%rip)
    mov 0(%r11), %rax
    mov %rax, {rec}+{rip}(%rip)
    mov 8(%r11), %rax
    mov %rax, {rec}+{cs}(%rip)
    mov 16(%r11), %rax
    mov %rax, {rec}+{rflags}(%rip)
    mov 24(%r11), %rax
    mov %rax, {rec}+{rsp}(%rip)
    mov 32(%r11), %rax
    mov %rax, {rec}+{ss}(%rip)
    incq {rec}+{count}(%rip)
    /* the iret context, on the handlers' own stack */
    lea {stack}+{stack_size}(%rip), %rsp
    pushq 32(%r11)
    pushq 24(%r11)
    mov 16(%r11), %rax
    cmpq ${upcall}, {rec}+{vector}(%rip)
    jne 1f
    /* keep upcalls masked after the upcall: the event is still pending */
    and ${not_if}, %rax
1:
    push %rax
    pushq 8(%r11)
    mov 0(%r11), %rax
    add {rec}+{skip}(%rip), %rax
    push %rax
    pushq $0                       /* flags: not VGCF_in_syscall, rcx/r11 restored */
    mov {rec}+{rcx}(%rip), %rcx
    mov {rec}+{r11}(%rip), %r11
    mov {rec}+{saved_rax}(%rip), %rax
    jmp hypercall_page+{iret}

    .globl tg_bf_failsafe
tg_bf_failsafe:
    lea {stack}+{stack_size}(%rip), %rsp
    call {failsafe}
    ud2

    /* tg_bf_trigger(kind: rdi, stack_top: rsi, upcall_mask: rdx) */
    .globl tg_bf_trigger
tg_bf_trigger:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, {rec}+{saved_rsp}(%rip)
    mov %rsi, %rsp
    movabs ${rcx_mark}, %rcx
    movabs ${r11_mark}, %r11
    cmp $1, %rdi
    je 2f
    cmp $2, %rdi
    je 3f
    cmp $3, %rdi
    je 4f
    int3
    .globl tg_bf_int3_after
tg_bf_int3_after:
    jmp 9f
2:
    .globl tg_bf_ud2_at
tg_bf_ud2_at:
    ud2
    jmp 9f
3:
    mov ${selector}, %edx
    .globl tg_bf_bad_selector_at
tg_bf_bad_selector_at:
    mov %dx, %ds
    jmp 9f
4:
    movb $0, (%rdx)
    mov ${xen_version}, %eax
    xor %edi, %edi
    xor %esi, %esi
    syscall
    .globl tg_bf_syscall_after
tg_bf_syscall_after:
    jmp 9f
9:
    mov {rec}+{saved_rsp}(%rip), %rsp
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret
    .popsection
    "#,
    rec = sym RECORD,
    stack = sym HANDLER_STACK,
    stack_size = const HANDLER_STACK_SIZE,
    failsafe = sym failsafe,
    upcall = const UPCALL_VECTOR,
    not_if = const !(RFLAGS_IF as i32),
    iret = const HypercallNr::IRET.get() as usize * HYPERCALL_ENTRY_SIZE,
    xen_version = const HypercallNr::XEN_VERSION.get(),
    selector = const traps::BAD_SELECTOR,
    rcx_mark = const RCX_MARK,
    r11_mark = const R11_MARK,
    vector = const offset_of!(Record, vector),
    frame = const offset_of!(Record, frame),
    rcx = const offset_of!(Record, rcx),
    r11 = const offset_of!(Record, r11),
    error_code = const offset_of!(Record, error_code),
    rip = const offset_of!(Record, rip),
    cs = const offset_of!(Record, cs),
    rflags = const offset_of!(Record, rflags),
    rsp = const offset_of!(Record, rsp),
    ss = const offset_of!(Record, ss),
    count = const offset_of!(Record, count),
    skip = const offset_of!(Record, skip),
    saved_rax = const offset_of!(Record, saved_rax),
    saved_rsp = const offset_of!(Record, saved_rsp),
    options(att_syntax)
);

extern "C" {
    fn tg_bf_int3();
    fn tg_bf_ud();
    fn tg_bf_gp();
    fn tg_bf_upcall();
    fn tg_bf_failsafe();
    fn tg_bf_trigger(kind: u64, stack_top: u64, upcall_mask: *mut u8);
    static tg_bf_int3_after: u8;
    static tg_bf_ud2_at: u8;
    static tg_bf_bad_selector_at: u8;
    static tg_bf_syscall_after: u8;
}

/// The failsafe callback's Rust half (Xen could not return to the guest).
extern "C" fn failsafe() -> ! {
    fail("bounce-frame: failsafe callback", XenError::EINVAL)
}

/// Where a `kind` delivery's frame must say it happened.
fn expected_rip(kind: Kind) -> u64 {
    let at = match kind {
        Kind::Int3 => core::ptr::addr_of!(tg_bf_int3_after),
        Kind::Ud2 => core::ptr::addr_of!(tg_bf_ud2_at),
        Kind::BadSelector => core::ptr::addr_of!(tg_bf_bad_selector_at),
        Kind::Upcall => core::ptr::addr_of!(tg_bf_syscall_after),
    };
    at as u64
}

/// A byte of vCPU 0's `vcpu_info` or of `shared_info`, at `offset` of the page.
fn shared_byte(offset: usize) -> *mut u8 {
    (SHARED_INFO.virt() as *mut u8).wrapping_add(offset)
}

/// Clears what Xen set when the IPI was sent: the port's pending bit, its selector
/// bit and vCPU 0's `evtchn_upcall_pending` (upcalls are masked again: the upcall
/// handler returned with `IF` clear).
fn clear_pending(port: u32) {
    let word = (port / 64) as usize;
    let bit = 1u64 << (port % 64);
    let pending = shared_byte(SHARED_INFO_EVTCHN_PENDING + 8 * word).cast::<AtomicU64>();
    let selector = shared_byte(VCPU_INFO_PENDING_SEL).cast::<AtomicU64>();
    // SAFETY: `shared_info` is mapped at SHARED_INFO (publish_p2m) for the life of the
    // domain; these are aligned u64 words of it that Xen updates with locked
    // operations, so atomics are the right way to share them; the upcall-pending byte
    // is a plain byte Xen sets.
    unsafe {
        (*pending).fetch_and(!bit, Ordering::SeqCst);
        (*selector).fetch_and(!(1u64 << word), Ordering::SeqCst);
        shared_byte(VCPU_INFO_UPCALL_PENDING).write_volatile(0);
    }
}

/// vCPU 0's `bounce-frame`; returns its touches (1).
pub(super) fn run(hv: &HypercallPage, plan: &Plan) -> usize {
    let [touch] = plan.touches() else {
        fail("bounce-frame: plan", XenError::EINVAL)
    };
    let entry = |vector: u8, dpl: u8, handler: unsafe extern "C" fn()| TrapInfo {
        vector,
        flags: dpl | TI_MASK_EVENTS,
        cs: FLAT_KERNEL_CS,
        address: handler as *const () as u64,
    };
    let table = [
        entry(3, 3, tg_bf_int3),
        entry(6, 0, tg_bf_ud),
        entry(13, 0, tg_bf_gp),
        // The terminator: `address` 0 ends the table.
        TrapInfo {
            vector: 0,
            flags: 0,
            cs: 0,
            address: 0,
        },
    ];
    // SAFETY: the handlers are the asm above, sound for these vectors while this
    // pattern runs (they only read the frame, write RECORD and HANDLER_STACK, and
    // return through HYPERVISOR_iret); the table is cleared before the pattern ends.
    if let Err(e) = unsafe { traps::set_trap_table(hv, table.as_ptr()) } {
        fail("bounce-frame: set_trap_table", e);
    }
    // SAFETY: the upcall handler is the asm above; upcalls are masked except inside
    // the trigger's upcall case. The failsafe moves to the handlers' stack and
    // crashes the domain with a FAIL line.
    let callbacks = unsafe {
        traps::set_callbacks(
            hv,
            tg_bf_upcall as *const () as u64,
            tg_bf_failsafe as *const () as u64,
            0,
        )
    };
    if let Err(e) = callbacks {
        fail("bounce-frame: set_callbacks", e);
    }
    let port = match traps::evtchn_bind_ipi(hv, VcpuId(0)) {
        Ok(port) => port,
        Err(e) => fail("bounce-frame: bind_ipi", e),
    };

    let stack_top = buffer_byte(touch.page, STACK_TOP_OFFSET) as u64;
    let record = RECORD.0.get();
    let mut delivered = [0u64; 4];
    let mut right = [0u64; 4];
    let mut first_bad: Option<(Kind, u64, Mismatch)> = None;
    for round in 0..ROUNDS {
        for (index, kind) in Kind::ALL.into_iter().enumerate() {
            if kind == Kind::Upcall {
                if let Err(e) = hypercall::evtchn_send(hv, port) {
                    fail("bounce-frame: send", e);
                }
            }
            // SAFETY: RECORD is only written by the handlers, which run only inside
            // the trigger; volatile because asm writes it.
            let before = unsafe { core::ptr::addr_of!((*record).count).read_volatile() };
            // SAFETY: the trigger keeps the SysV ABI (it saves the callee-saved
            // registers on this stack and restores them, and restores rsp); between,
            // rsp is on buffer page 12, which nothing references and which the trigger
            // and the handlers never write; Xen writes the frames there. The handlers
            // are installed above. `upcall_mask` is vCPU 0's mask byte in shared_info.
            unsafe {
                tg_bf_trigger(kind.index(), stack_top, shared_byte(VCPU_INFO_UPCALL_MASK));
            }
            if kind == Kind::Upcall {
                // Masked again whatever happened: the handler returns with IF clear,
                // but an upcall Xen did not deliver would leave the trigger's 0 there.
                // SAFETY: vCPU 0's mask byte in the mapped shared_info page; a plain
                // byte the guest owns (volatile: Xen reads it).
                unsafe { shared_byte(VCPU_INFO_UPCALL_MASK).write_volatile(1) };
                clear_pending(port.0);
            }
            // SAFETY: as above; the delivery is over.
            let got = unsafe { record.read_volatile() };
            delivered[index] += got.count.wrapping_sub(before).min(1);
            match traps::check(kind, &got, expected_rip(kind), stack_top, before) {
                Ok(()) => right[index] += 1,
                Err(bad) => {
                    first_bad.get_or_insert((kind, round, bad));
                }
            }
        }
    }
    // SAFETY: a null table clears every entry: later exceptions crash the domain, as
    // before the pattern.
    if let Err(e) = unsafe { traps::set_trap_table(hv, core::ptr::null()) } {
        fail("bounce-frame: clear the trap table", e);
    }
    for (index, kind) in Kind::ALL.into_iter().enumerate() {
        line(|out| traps::write_kind_line(out, kind, delivered[index], right[index]));
    }
    if let Some((kind, round, bad)) = first_bad {
        line(|out| traps::write_bad_line(out, kind, round, &bad));
    }
    touch_buffer(touch);
    1
}
