//! Hypercalls of a 64-bit PV kernel: numbers, argument marshalling, typed wrappers.
//!
//! Mirrors Xen 4.17's public headers (`xen/include/public/xen.h` for the
//! `__HYPERVISOR_*` numbers, `sched.h`, `event_channel.h`, `vcpu.h`, `errno.h`) and
//! the hypercall page Xen writes for a 64-bit PV kernel
//! (`pv_ring3_init_hypercall_page` in `xen/arch/x86/pv/hypercall.c`): entry `nr` sits
//! at byte `nr * 32` and is `push %rcx; push %r11; mov $nr, %eax; syscall;
//! pop %r11; pop %rcx; ret`. Arguments 1 to 5 travel in `rdi`, `rsi`, `rdx`, `r10`,
//! `r8` (`pv_hypercall` reads them from there), the result comes back in `rax`, and
//! a debug Xen overwrites the argument registers a hypercall used
//! (`clobber_regs64`), so the caller must treat them all as clobbered.
//!
//! The register assignment is the pure [`Hypercall::registers`]; the one `asm!`
//! block lives in `HypercallPage`, compiled only for `target_os = "none"`. The
//! wrappers are generic over [`Hypervisor`] so that host tests can record what they
//! would have asked of Xen.

/// Size in bytes of one entry of the hypercall page.
pub const HYPERCALL_ENTRY_SIZE: usize = 32;

/// Size in bytes of the hypercall page (one 4 KiB page).
pub const HYPERCALL_PAGE_SIZE: usize = 4096;

/// A hypercall number (`__HYPERVISOR_*` in `xen.h`).
///
/// # Invariants
///
/// The number is below `HYPERCALL_PAGE_SIZE / HYPERCALL_ENTRY_SIZE` (128), so its
/// entry lies inside the hypercall page. Only the constants below exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypercallNr(u32);

impl HypercallNr {
    /// `#define __HYPERVISOR_console_io           18`
    pub const CONSOLE_IO: Self = Self(18);
    /// `#define __HYPERVISOR_vcpu_op              24`
    pub const VCPU_OP: Self = Self(24);
    /// `#define __HYPERVISOR_sched_op             29`
    pub const SCHED_OP: Self = Self(29);
    /// `#define __HYPERVISOR_event_channel_op     32`
    pub const EVENT_CHANNEL_OP: Self = Self(32);

    /// The raw number, as Xen's `rax`.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// `#define CONSOLEIO_write         0` (`xen.h`): write a buffer to Xen's console.
pub const CONSOLEIO_WRITE: u64 = 0;

/// `#define VCPUOP_is_up                 3` (`vcpu.h`): "Returns 1 if the given VCPU
/// is up"; 0 if it exists but is down, `-ENOENT` if there is no such vCPU
/// (`do_vcpu_op` in `xen/arch/x86/domain.c`).
pub const VCPUOP_IS_UP: u64 = 3;

/// `#define SCHEDOP_yield       0` (`sched.h`).
pub const SCHEDOP_YIELD: u64 = 0;

/// `#define SCHEDOP_shutdown    2` (`sched.h`): argument is a `sched_shutdown_t *`.
pub const SCHEDOP_SHUTDOWN: u64 = 2;

/// `#define EVTCHNOP_send             4` (`event_channel.h`): argument is an
/// `evtchn_send_t *`.
pub const EVTCHNOP_SEND: u64 = 4;

/// The register assignment of one hypercall, as the hypercall page expects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registers {
    /// Argument 1.
    pub rdi: u64,
    /// Argument 2.
    pub rsi: u64,
    /// Argument 3.
    pub rdx: u64,
    /// Argument 4 (`rcx` is taken by `syscall`, so not the C ABI's fourth register).
    pub r10: u64,
    /// Argument 5.
    pub r8: u64,
}

/// One marshalled hypercall: its number and five arguments (unused ones are 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hypercall {
    /// Which hypercall.
    pub nr: HypercallNr,
    /// Arguments 1 to 5, in order; pointers are passed as their address.
    pub args: [u64; 5],
}

impl Hypercall {
    /// Marshals hypercall `nr` with `args`.
    pub const fn new(nr: HypercallNr, args: [u64; 5]) -> Self {
        Self { nr, args }
    }

    /// Byte offset of this hypercall's entry in the hypercall page.
    pub const fn entry_offset(&self) -> usize {
        self.nr.0 as usize * HYPERCALL_ENTRY_SIZE
    }

    /// Which register each argument goes in.
    ///
    /// ```
    /// use test_guest::hypercall::{Hypercall, HypercallNr, Registers};
    ///
    /// let call = Hypercall::new(HypercallNr::SCHED_OP, [2, 0x1000, 0, 0, 0]);
    /// assert_eq!(call.entry_offset(), 29 * 32);
    /// assert_eq!(call.registers().rdi, 2);
    /// assert_eq!(call.registers().rsi, 0x1000);
    /// ```
    pub const fn registers(&self) -> Registers {
        Registers {
            rdi: self.args[0],
            rsi: self.args[1],
            rdx: self.args[2],
            r10: self.args[3],
            r8: self.args[4],
        }
    }
}

/// A failed hypercall: Xen's negative errno (`xen/include/public/errno.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenError(i64);

impl XenError {
    /// `XEN_ERRNO(EPERM, 1)`: operation not permitted.
    pub const EPERM: Self = Self(-1);
    /// `XEN_ERRNO(ENOENT, 2)`: no such entry (for example no such vCPU).
    pub const ENOENT: Self = Self(-2);
    /// `XEN_ERRNO(EINVAL, 22)`: invalid argument.
    pub const EINVAL: Self = Self(-22);
    /// `XEN_ERRNO(ENOSYS, 38)`: function not implemented.
    pub const ENOSYS: Self = Self(-38);

    /// Splits a raw hypercall result: negative values are errors.
    pub const fn check(ret: i64) -> Result<u64, XenError> {
        if ret < 0 {
            Err(Self(ret))
        } else {
            Ok(ret as u64)
        }
    }

    /// The positive errno number (2 for `ENOENT`).
    pub const fn errno(self) -> u64 {
        self.0.unsigned_abs()
    }
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

/// Something that makes hypercalls: Xen through its hypercall page in the guest, a
/// recorder in host tests.
pub trait Hypervisor {
    /// Makes `call` and returns Xen's raw result (`rax`).
    ///
    /// # Safety
    ///
    /// Every argument that is a pointer must be valid, for the whole call, for what
    /// Xen does with it for this hypercall (read or write the argument structure or
    /// buffer).
    unsafe fn hypercall(&self, call: Hypercall) -> i64;
}

/// The address of `value`, as a hypercall argument.
fn arg_ptr<T>(value: &T) -> u64 {
    core::ptr::from_ref(value) as u64
}

/// `HYPERVISOR_event_channel_op(EVTCHNOP_send, &(evtchn_send_t){ port })`: notifies
/// the other end of `port`.
pub fn evtchn_send<H: Hypervisor + ?Sized>(hv: &H, port: EvtchnPort) -> Result<(), XenError> {
    let send = EvtchnSend { port: port.0 };
    let call = Hypercall::new(
        HypercallNr::EVENT_CHANNEL_OP,
        [EVTCHNOP_SEND, arg_ptr(&send), 0, 0, 0],
    );
    // SAFETY: the only pointer is `send`, a live `evtchn_send` Xen only reads.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_sched_op(SCHEDOP_shutdown, &(sched_shutdown_t){ reason })`. On
/// success the domain is shutting down and this vCPU is not scheduled again, so the
/// caller rarely sees the return.
pub fn sched_shutdown<H: Hypervisor + ?Sized>(
    hv: &H,
    reason: ShutdownReason,
) -> Result<(), XenError> {
    let shutdown = SchedShutdown {
        reason: reason as u32,
    };
    let call = Hypercall::new(
        HypercallNr::SCHED_OP,
        [SCHEDOP_SHUTDOWN, arg_ptr(&shutdown), 0, 0, 0],
    );
    // SAFETY: the only pointer is `shutdown`, a live `sched_shutdown` Xen only reads.
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_sched_op(SCHEDOP_yield, NULL)`: lets other vCPUs (xenconsoled's in
/// dom0) run.
///
/// Unlike `SCHEDOP_block`, yielding leaves event delivery masked: this kernel
/// registers no event callback, so an unmasked upcall would crash it.
pub fn sched_yield<H: Hypervisor + ?Sized>(hv: &H) -> Result<(), XenError> {
    let call = Hypercall::new(HypercallNr::SCHED_OP, [SCHEDOP_YIELD, 0, 0, 0, 0]);
    // SAFETY: no pointer arguments (the NULL argument is not dereferenced).
    XenError::check(unsafe { hv.hypercall(call) }).map(drop)
}

/// `HYPERVISOR_vcpu_op(VCPUOP_is_up, vcpu, NULL)`: whether `vcpu` is up;
/// `Err(XenError::ENOENT)` when the domain has no such vCPU.
pub fn vcpu_is_up<H: Hypervisor + ?Sized>(hv: &H, vcpu: VcpuId) -> Result<bool, XenError> {
    let call = Hypercall::new(
        HypercallNr::VCPU_OP,
        [VCPUOP_IS_UP, u64::from(vcpu.0), 0, 0, 0],
    );
    // SAFETY: no pointer arguments.
    XenError::check(unsafe { hv.hypercall(call) }).map(|up| up != 0)
}

/// Counts the domain's vCPUs (up or down): asks `VCPUOP_is_up` for ids 0, 1, ...
/// until Xen answers `-ENOENT`, trying at most `max` ids. Any other error is
/// returned.
pub fn count_vcpus<H: Hypervisor + ?Sized>(hv: &H, max: u32) -> Result<u32, XenError> {
    for id in 0..max {
        match vcpu_is_up(hv, VcpuId(id)) {
            Ok(_) => {}
            Err(XenError::ENOENT) => return Ok(id),
            Err(e) => return Err(e),
        }
    }
    Ok(max)
}

/// `HYPERVISOR_console_io(CONSOLEIO_write, len, bytes)`: writes to Xen's own
/// console. Xen allows it to a domU only when built with `CONFIG_VERBOSE_DEBUG`
/// (the default of a debug build; `xsm_console_io`), otherwise `-EPERM`.
pub fn console_io_write<H: Hypervisor + ?Sized>(hv: &H, bytes: &[u8]) -> Result<(), XenError> {
    // `count` is an `unsigned int`: split anything longer (never happens in practice).
    for chunk in bytes.chunks(u32::MAX as usize) {
        let call = Hypercall::new(
            HypercallNr::CONSOLE_IO,
            [
                CONSOLEIO_WRITE,
                chunk.len() as u64,
                chunk.as_ptr() as u64,
                0,
                0,
            ],
        );
        // SAFETY: the pointer is `chunk`, valid for `chunk.len()` bytes that Xen only
        // reads.
        XenError::check(unsafe { hv.hypercall(call) })?;
    }
    Ok(())
}

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
pub use self::page::HypercallPage;

#[cfg(all(target_arch = "x86_64", target_os = "none"))]
mod page {
    use super::{Hypercall, Hypervisor};

    /// The hypercall page Xen fills in at domain build time (the page named by
    /// `XEN_ELFNOTE_HYPERCALL_PAGE`).
    ///
    /// # Invariants
    ///
    /// `base` is the start of a 4 KiB page that Xen initialised with hypercall
    /// entries, mapped executable for the life of the kernel.
    #[derive(Clone, Copy, Debug)]
    pub struct HypercallPage {
        base: *const u8,
    }

    impl HypercallPage {
        /// Wraps the hypercall page at `base`.
        ///
        /// # Safety
        ///
        /// `base` must be the page named by `XEN_ELFNOTE_HYPERCALL_PAGE`, already
        /// initialised by Xen.
        pub const unsafe fn new(base: *const u8) -> Self {
            Self { base }
        }
    }

    impl Hypervisor for HypercallPage {
        unsafe fn hypercall(&self, call: Hypercall) -> i64 {
            let regs = call.registers();
            let entry = self.base.wrapping_add(call.entry_offset());
            let ret: i64;
            // SAFETY: by the type invariant `entry` is a hypercall entry of Xen's page
            // (`entry_offset` stays inside it by `HypercallNr`'s invariant). The entry
            // saves `rcx`/`r11` around `syscall` and returns with `ret`; `rax` holds
            // the result and the argument registers may be clobbered by a debug Xen.
            // Memory may be read or written through pointer arguments, which the
            // caller guarantees valid (this fn's contract); the asm block is not
            // `nomem`, so the compiler assumes both.
            unsafe {
                core::arch::asm!(
                    "call {entry}",
                    entry = in(reg) entry,
                    inlateout("rdi") regs.rdi => _,
                    inlateout("rsi") regs.rsi => _,
                    inlateout("rdx") regs.rdx => _,
                    inlateout("r10") regs.r10 => _,
                    inlateout("r8") regs.r8 => _,
                    lateout("r9") _,
                    lateout("rcx") _,
                    lateout("r11") _,
                    lateout("rax") ret,
                );
            }
            ret
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::vec::Vec;

    /// Records each call, with the 32-bit word its second argument points to when
    /// `deref_arg1` says so, and answers from a script.
    struct Recorder {
        calls: RefCell<Vec<(Hypercall, Option<u32>)>>,
        deref_arg1: bool,
        answer: fn(&Hypercall) -> i64,
    }

    impl Recorder {
        fn new(deref_arg1: bool, answer: fn(&Hypercall) -> i64) -> Self {
            Self {
                calls: RefCell::new(Vec::new()),
                deref_arg1,
                answer,
            }
        }
    }

    impl Hypervisor for Recorder {
        unsafe fn hypercall(&self, call: Hypercall) -> i64 {
            let pointee = self.deref_arg1.then(|| {
                // SAFETY: the tests set `deref_arg1` only for hypercalls whose second
                // argument points to a live 32-bit structure (this fn's contract).
                unsafe { (call.args[1] as *const u32).read() }
            });
            self.calls.borrow_mut().push((call, pointee));
            (self.answer)(&call)
        }
    }

    #[test]
    fn numbers_match_xen_headers() {
        assert_eq!(HypercallNr::CONSOLE_IO.get(), 18);
        assert_eq!(HypercallNr::VCPU_OP.get(), 24);
        assert_eq!(HypercallNr::SCHED_OP.get(), 29);
        assert_eq!(HypercallNr::EVENT_CHANNEL_OP.get(), 32);
        assert_eq!(
            (
                CONSOLEIO_WRITE,
                VCPUOP_IS_UP,
                SCHEDOP_YIELD,
                SCHEDOP_SHUTDOWN
            ),
            (0, 3, 0, 2)
        );
        assert_eq!(EVTCHNOP_SEND, 4);
        assert_eq!(ShutdownReason::Poweroff as u32, 0);
        assert_eq!(ShutdownReason::Crash as u32, 3);
        assert_eq!(XenError::ENOENT.errno(), 2);
        assert_eq!(size_of::<SchedShutdown>(), 4);
        assert_eq!(size_of::<EvtchnSend>(), 4);
    }

    #[test]
    fn entries_are_32_bytes_apart_inside_the_page() {
        let at = |nr| Hypercall::new(nr, [0; 5]).entry_offset();
        assert_eq!(at(HypercallNr::CONSOLE_IO), 18 * 32);
        assert_eq!(at(HypercallNr::VCPU_OP), 768);
        assert_eq!(at(HypercallNr::SCHED_OP), 928);
        assert_eq!(at(HypercallNr::EVENT_CHANNEL_OP), 1024);
        for nr in [
            HypercallNr::CONSOLE_IO,
            HypercallNr::VCPU_OP,
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
        let hv = Recorder::new(true, |_| 0);
        assert_eq!(sched_shutdown(&hv, ShutdownReason::Poweroff), Ok(()));
        assert_eq!(sched_shutdown(&hv, ShutdownReason::Crash), Ok(()));
        let calls = hv.calls.borrow();
        assert_eq!(calls.len(), 2);
        for ((call, pointee), reason) in calls.iter().zip([0, 3]) {
            assert_eq!(call.nr, HypercallNr::SCHED_OP);
            assert_eq!(call.args[0], SCHEDOP_SHUTDOWN);
            assert_ne!(call.args[1], 0, "argument is a pointer, not the value");
            assert_eq!(*pointee, Some(reason));
            assert_eq!(&call.args[2..], &[0, 0, 0]);
        }
    }

    #[test]
    fn evtchn_send_passes_port_by_pointer() {
        let hv = Recorder::new(true, |_| 0);
        assert_eq!(evtchn_send(&hv, EvtchnPort(7)), Ok(()));
        let calls = hv.calls.borrow();
        let (call, pointee) = calls[0];
        assert_eq!(call.nr, HypercallNr::EVENT_CHANNEL_OP);
        assert_eq!(call.args[0], EVTCHNOP_SEND);
        assert_eq!(pointee, Some(7));
    }

    #[test]
    fn yield_has_null_argument() {
        let hv = Recorder::new(false, |_| 0);
        assert_eq!(sched_yield(&hv), Ok(()));
        let calls = hv.calls.borrow();
        assert_eq!(calls[0].0.nr, HypercallNr::SCHED_OP);
        assert_eq!(calls[0].0.args, [SCHEDOP_YIELD, 0, 0, 0, 0]);
    }

    #[test]
    fn count_vcpus_stops_at_enoent() {
        // Three vCPUs: 0 up, 1 and 2 down, none from 3 on.
        let hv = Recorder::new(false, |call| match call.args[1] {
            0 => 1,
            1 | 2 => 0,
            _ => -2,
        });
        assert_eq!(count_vcpus(&hv, 64), Ok(3));
        let calls = hv.calls.borrow();
        assert_eq!(calls.len(), 4);
        for (id, (call, _)) in calls.iter().enumerate() {
            assert_eq!(call.nr, HypercallNr::VCPU_OP);
            assert_eq!(call.args, [VCPUOP_IS_UP, id as u64, 0, 0, 0]);
        }
    }

    #[test]
    fn count_vcpus_reports_other_errors_and_respects_max() {
        let hv = Recorder::new(false, |_| -38);
        assert_eq!(count_vcpus(&hv, 64), Err(XenError::ENOSYS));
        let hv = Recorder::new(false, |_| 1);
        assert_eq!(count_vcpus(&hv, 5), Ok(5));
        assert_eq!(hv.calls.borrow().len(), 5);
    }

    #[test]
    fn console_io_write_passes_length_and_buffer() {
        let hv = Recorder::new(false, |_| 0);
        let text = b"hello\n";
        assert_eq!(console_io_write(&hv, text), Ok(()));
        let calls = hv.calls.borrow();
        assert_eq!(calls[0].0.nr, HypercallNr::CONSOLE_IO);
        assert_eq!(
            calls[0].0.args,
            [CONSOLEIO_WRITE, 6, text.as_ptr() as u64, 0, 0]
        );
        let denied = Recorder::new(false, |_| -1);
        assert_eq!(console_io_write(&denied, text), Err(XenError::EPERM));
    }
}
