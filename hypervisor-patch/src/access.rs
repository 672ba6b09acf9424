//! The access-decision table: what a read, a write or an instruction fetch does to a page
//! that holds a given mem_access access, and which shadow L1 bits enforce that access on a
//! PV guest.
//!
//! # What this mirrors in Xen 4.17
//!
//! - `xenmem_access_t` (the public ABI, values 0..=10) from `xen/include/public/memory.h`:
//!   [`XenmemAccess`].
//! - `p2m_access_t` (the access a page actually holds, values 0..=9, bit 0 = r, bit 1 = w,
//!   bit 2 = x, then `rx2rw` = 8 and `n2rwx` = 9) from `xen/include/xen/mem_access.h` (in 4.17
//!   it lives there, not in `asm/p2m.h` or `xen/p2m-common.h`): [`PageAccess`].
//! - `xenmem_access_to_p2m_access` (`xen/arch/x86/mm/mem_access.c`): `default` (10) resolves
//!   to the domain's `p2m->default_access`, anything >= 11 is refused and its callers
//!   `p2m_set_mem_access` / `p2m_set_mem_access_multi` return `-EINVAL`:
//!   [`XenmemAccess::from_raw`], [`XenmemAccess::resolve`].
//! - The violation switch in `hvm_hap_nested_page_fault` (`xen/arch/x86/hvm/hvm.c`), which is
//!   the same table as `p2m_mem_access_emulate_check` (`xen/arch/x86/mm/mem_access.c`):
//!   [`PageAccess::is_violation`].
//! - `p2m_mem_access_check` (`xen/arch/x86/mm/mem_access.c`), what a violation does:
//!   [`PageAccess::decide`] and [`Decision::without_listener`].
//!
//! # HVM semantics this module reproduces
//!
//! - `rx2rw` and a write: the page becomes `rw` and no event is sent (`p2m_mem_access_check`
//!   returns before it even looks for a listener): [`Outcome::SilentConversion`].
//! - `n2rwx` and any access: the page becomes `rwx`, an event is sent, the vCPU is not paused
//!   (`p2m_mem_access_check` returns `p2ma != p2m_access_n2rwx`, i.e. "not sync"):
//!   [`Outcome::AsyncViolation`].
//! - Every other violation sends an event and pauses the vCPU until the listener answers:
//!   [`Outcome::SyncViolation`].
//!
//! # No listener
//!
//! When the monitor ring has no listener (`!vm_event_check_ring(d->vm_event_monitor)`),
//! `p2m_mem_access_check` does, after the `rx2rw` / `n2rwx` conversions above:
//! - if `p2m->access_required`: `domain_crash` (the `rx2rw` write never gets here);
//! - otherwise it re-reads the entry and, unless it is `n2rwx`, sets it to `rwx`. An `n2rwx`
//!   page was already set to `rwx` a few lines earlier, so the page ends `rwx` either way.
//!
//! [`Decision::without_listener`] models this as [`NoListener::Relax`] or
//! [`NoListener::CrashDomain`].
//!
//! # What PV can enforce, and what it refuses
//!
//! A PV guest's accesses are checked by the shadow L1 entries Xen builds, and an x86 page-table
//! entry cannot say "writable but not readable" or "executable but not readable": present
//! implies readable, writable implies readable. So `w`, `x` and `wx` cannot be enforced exactly:
//! the best shadow entry for them is not-present, which also traps the accesses they allow.
//! Decision for this project: a PV domain refuses `w`, `x` and `wx` with `-EOPNOTSUPP`
//! ([`validate_for_pv`], [`PageAccess::pv_supports`]), for a page and for the domain default
//! alike. Out-of-range values keep Xen's `-EINVAL`, which is checked first, as Xen does.
//! [`PageAccess::l1_bits`] still gives an answer for those three accesses (not present: every
//! violation faults, allowed accesses fault too), so that it is total; the property tests show
//! that exactly the accesses PV refuses are the ones whose bits trap an allowed access.
//!
//! Everything here is `const fn` over small `Copy` types: no allocation, no `core::fmt`, no
//! indexing, no indirect branches; safe to call from the shadow fault handler.

use crate::Errno;

/// `xenmem_access_t`, the access named in `XENMEM_access_op` (`xen/include/public/memory.h`).
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
#[repr(u32)]
pub enum XenmemAccess {
    /// `XENMEM_access_n`: no access.
    N = 0,
    /// `XENMEM_access_r`: read.
    R = 1,
    /// `XENMEM_access_w`: write.
    W = 2,
    /// `XENMEM_access_rw`: read and write.
    Rw = 3,
    /// `XENMEM_access_x`: execute.
    X = 4,
    /// `XENMEM_access_rx`: read and execute.
    Rx = 5,
    /// `XENMEM_access_wx`: write and execute.
    Wx = 6,
    /// `XENMEM_access_rwx`: everything.
    Rwx = 7,
    /// `XENMEM_access_rx2rw`: r-x, silently becomes rw- on a write.
    Rx2rw = 8,
    /// `XENMEM_access_n2rwx`: no access, becomes rwx on any access and reports it without
    /// pausing the vCPU.
    N2rwx = 9,
    /// `XENMEM_access_default`: the domain's default access.
    Default = 10,
}

impl XenmemAccess {
    /// The ABI value from a raw integer; `-EINVAL` for values >= 11, as
    /// `xenmem_access_to_p2m_access` refuses them and `p2m_set_mem_access(_multi)` return
    /// `-EINVAL` (`xen/arch/x86/mm/mem_access.c`).
    pub const fn from_raw(raw: u32) -> Result<Self, Errno> {
        Ok(match raw {
            0 => Self::N,
            1 => Self::R,
            2 => Self::W,
            3 => Self::Rw,
            4 => Self::X,
            5 => Self::Rx,
            6 => Self::Wx,
            7 => Self::Rwx,
            8 => Self::Rx2rw,
            9 => Self::N2rwx,
            10 => Self::Default,
            _ => return Err(Errno::EINVAL),
        })
    }

    /// The raw ABI value.
    pub const fn to_raw(self) -> u32 {
        self as u32
    }

    /// The access a page gets: `default` becomes `domain_default` (Xen's
    /// `p2m->default_access`, `rwx` unless changed), every other value maps to itself, as in
    /// `xenmem_access_to_p2m_access`.
    pub const fn resolve(self, domain_default: PageAccess) -> PageAccess {
        match self {
            Self::N => PageAccess::N,
            Self::R => PageAccess::R,
            Self::W => PageAccess::W,
            Self::Rw => PageAccess::Rw,
            Self::X => PageAccess::X,
            Self::Rx => PageAccess::Rx,
            Self::Wx => PageAccess::Wx,
            Self::Rwx => PageAccess::Rwx,
            Self::Rx2rw => PageAccess::Rx2rw,
            Self::N2rwx => PageAccess::N2rwx,
            Self::Default => domain_default,
        }
    }
}

/// `p2m_access_t`, the access a page holds (`xen/include/xen/mem_access.h`). There is no
/// `default` here: it is resolved when the access is set.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
#[repr(u8)]
pub enum PageAccess {
    /// `p2m_access_n`.
    N = 0,
    /// `p2m_access_r`.
    R = 1,
    /// `p2m_access_w`.
    W = 2,
    /// `p2m_access_rw`.
    Rw = 3,
    /// `p2m_access_x`.
    X = 4,
    /// `p2m_access_rx`.
    Rx = 5,
    /// `p2m_access_wx`.
    Wx = 6,
    /// `p2m_access_rwx`.
    Rwx = 7,
    /// `p2m_access_rx2rw`.
    Rx2rw = 8,
    /// `p2m_access_n2rwx`.
    N2rwx = 9,
}

impl PageAccess {
    /// Every access a page can hold, in `p2m_access_t` order.
    pub const ALL: [PageAccess; 10] = [
        Self::N,
        Self::R,
        Self::W,
        Self::Rw,
        Self::X,
        Self::Rx,
        Self::Wx,
        Self::Rwx,
        Self::Rx2rw,
        Self::N2rwx,
    ];

    /// The access a raw `p2m_access_t` holds; `None` for a value that is not one.
    pub const fn from_p2m(raw: u32) -> Option<Self> {
        Some(match raw {
            0 => Self::N,
            1 => Self::R,
            2 => Self::W,
            3 => Self::Rw,
            4 => Self::X,
            5 => Self::Rx,
            6 => Self::Wx,
            7 => Self::Rwx,
            8 => Self::Rx2rw,
            9 => Self::N2rwx,
            _ => return None,
        })
    }

    /// The value `XENMEM_access_op_get_access` reports (same numbering, as the `memaccess`
    /// table of `_p2m_get_mem_access` shows).
    pub const fn to_xenmem(self) -> XenmemAccess {
        match self {
            Self::N => XenmemAccess::N,
            Self::R => XenmemAccess::R,
            Self::W => XenmemAccess::W,
            Self::Rw => XenmemAccess::Rw,
            Self::X => XenmemAccess::X,
            Self::Rx => XenmemAccess::Rx,
            Self::Wx => XenmemAccess::Wx,
            Self::Rwx => XenmemAccess::Rwx,
            Self::Rx2rw => XenmemAccess::Rx2rw,
            Self::N2rwx => XenmemAccess::N2rwx,
        }
    }

    /// Whether `kind` violates this access: the `switch ( p2ma )` of
    /// `hvm_hap_nested_page_fault` (`xen/arch/x86/hvm/hvm.c`), identical to
    /// `p2m_mem_access_emulate_check` (`xen/arch/x86/mm/mem_access.c`).
    pub const fn is_violation(self, kind: AccessKind) -> bool {
        let (read, write, fetch) = match kind {
            AccessKind::Read => (true, false, false),
            AccessKind::Write => (false, true, false),
            AccessKind::Fetch => (false, false, true),
        };
        match self {
            Self::N | Self::N2rwx => read || write || fetch,
            Self::R => write || fetch,
            Self::W => read || fetch,
            Self::X => read || write,
            Self::Rx | Self::Rx2rw => write,
            Self::Wx => read,
            Self::Rw => fetch,
            Self::Rwx => false,
        }
    }

    /// What `kind` does to a page holding this access, with a listener present:
    /// `is_violation`, then the conversions and the sync/async choice of
    /// `p2m_mem_access_check` (`xen/arch/x86/mm/mem_access.c`).
    pub const fn decide(self, kind: AccessKind) -> Decision {
        let (outcome, access_after) = if !self.is_violation(kind) {
            (Outcome::Allowed, self)
        } else {
            match (self, kind) {
                (Self::Rx2rw, AccessKind::Write) => (Outcome::SilentConversion, Self::Rw),
                (Self::N2rwx, _) => (Outcome::AsyncViolation, Self::Rwx),
                _ => (Outcome::SyncViolation, self),
            }
        };
        Decision {
            outcome,
            access_after,
        }
    }

    /// Whether a PV domain accepts this access (see the module documentation): everything but
    /// `w`, `x` and `wx`, which x86 page tables cannot express.
    pub const fn pv_supports(self) -> bool {
        !matches!(self, Self::W | Self::X | Self::Wx)
    }

    /// The shadow L1 permissions that enforce this access on PV: every violation faults to
    /// Xen, and for the accesses PV supports nothing else does. `_sh_propagate` combines them
    /// with the guest's own entry (present and writable only if both allow it, no-execute if
    /// either sets it).
    ///
    /// `w`, `x` and `wx` (refused for PV) give not-present, the only bits that trap all their
    /// violations.
    pub const fn l1_bits(self) -> L1Bits {
        const fn bits(present: bool, writable: bool, no_execute: bool) -> L1Bits {
            L1Bits {
                present,
                writable,
                no_execute,
            }
        }
        match self {
            Self::N | Self::N2rwx | Self::W | Self::X | Self::Wx => bits(false, false, true),
            Self::R => bits(true, false, true),
            Self::Rw => bits(true, true, true),
            Self::Rx | Self::Rx2rw => bits(true, false, false),
            Self::Rwx => bits(true, true, false),
        }
    }
}

/// Refuse or resolve a raw `xenmem_access_t` for a PV domain (`set_access`,
/// `set_access_multi` and setting the default). `-EINVAL` for values >= 11 (Xen's own check,
/// done first), `-EOPNOTSUPP` for `w`, `x`, `wx`, and for `default` when `domain_default` is
/// one of them.
pub const fn validate_for_pv(raw: u32, domain_default: PageAccess) -> Result<PageAccess, Errno> {
    let access = match XenmemAccess::from_raw(raw) {
        Ok(access) => access.resolve(domain_default),
        Err(e) => return Err(e),
    };
    if access.pv_supports() {
        Ok(access)
    } else {
        Err(Errno::EOPNOTSUPP)
    }
}

/// What `kind` does to a page whose access is `access` (`default` resolved with
/// `domain_default`), with a listener present. See [`PageAccess::decide`].
pub const fn decide(
    access: XenmemAccess,
    domain_default: PageAccess,
    kind: AccessKind,
) -> Decision {
    access.resolve(domain_default).decide(kind)
}

/// The kind of memory access that faulted, Xen's `npfec` read/write/fetch flags.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
pub enum AccessKind {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch.
    Fetch,
}

impl AccessKind {
    /// x86 page-fault error code bit 1 (W/R): the access was a write.
    pub const PFEC_WRITE: u32 = 1 << 1;
    /// x86 page-fault error code bit 4 (I/D): the access was an instruction fetch.
    pub const PFEC_INSN_FETCH: u32 = 1 << 4;

    /// Classify a page-fault error code: I/D set is a fetch, else W set is a write, else a
    /// read. The other bits (P, U/S, RSVD, PK, SS, ...) do not matter.
    pub const fn from_pf_error_code(error_code: u32) -> Self {
        if error_code & Self::PFEC_INSN_FETCH != 0 {
            Self::Fetch
        } else if error_code & Self::PFEC_WRITE != 0 {
            Self::Write
        } else {
            Self::Read
        }
    }
}

/// What an access does to the page and the vCPU.
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
pub enum Outcome {
    /// Not a violation: the access proceeds.
    Allowed,
    /// Report it and pause the vCPU until the listener answers.
    SyncViolation,
    /// Report it and do not pause (`n2rwx`; the page has become `rwx`).
    AsyncViolation,
    /// `rx2rw` written: the page becomes `rw`, no event.
    SilentConversion,
}

/// The result of one access on one page: [`PageAccess::decide`].
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
pub struct Decision {
    /// What happens to the access and the vCPU.
    pub outcome: Outcome,
    /// The page's access afterwards (differs only for a conversion).
    pub access_after: PageAccess,
}

impl Decision {
    /// What happens when no listener is connected, per `p2m_mem_access_check`
    /// (`xen/arch/x86/mm/mem_access.c`); `access_required` is `p2m->access_required`
    /// (`XEN_DOMCTL_set_access_required`).
    ///
    /// - `SilentConversion`: `Relax(rw)` whatever `access_required` says (Xen returns before
    ///   the listener check).
    /// - `SyncViolation`, `AsyncViolation`: `CrashDomain` if `access_required`, else
    ///   `Relax(rwx)`.
    /// - `Allowed` (not a violation, Xen never gets here): `Relax` with the unchanged access.
    pub const fn without_listener(self, access_required: bool) -> NoListener {
        match self.outcome {
            Outcome::Allowed | Outcome::SilentConversion => NoListener::Relax(self.access_after),
            Outcome::SyncViolation | Outcome::AsyncViolation => {
                if access_required {
                    NoListener::CrashDomain
                } else {
                    NoListener::Relax(PageAccess::Rwx)
                }
            }
        }
    }
}

/// What a violation does when no listener is connected: [`Decision::without_listener`].
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
pub enum NoListener {
    /// Give the page this access and let the vCPU retry.
    Relax(PageAccess),
    /// `domain_crash`: the domain asked for a listener to be required.
    CrashDomain,
}

/// What Xen does about one guest access that faulted on a PV page: [`fault_action`].
///
/// The numbering is the C boundary's (`PVMA_FAULT_*` in `asm/pv-mem-access.h`).
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
#[repr(u32)]
pub enum FaultAction {
    /// Not a violation: the shadow code fixes the fault as usual.
    Allowed = 0,
    /// Report it and pause the vCPU until the listener answers; the vCPU then retries.
    SyncEvent = 1,
    /// Give the page the new access, report it, and let the vCPU go on (`n2rwx`).
    AsyncEvent = 2,
    /// Give the page the new access without a report (`rx2rw` written, or no listener and
    /// no `access_required`).
    Relax = 3,
    /// No listener while the domain requires one: crash it.
    CrashDomain = 4,
}

/// One faulting access, decided: [`p2m_mem_access_check`]'s order of checks. The conversions
/// come first (`rx2rw` written becomes `rw` silently, even with a listener; `n2rwx` becomes
/// `rwx`), then the listener check: none and `access_required` crashes the domain, none
/// otherwise relaxes the page; with a listener, `n2rwx` is reported without pausing and
/// every other violation pauses the vCPU.
///
/// Returns the action and the page's access afterwards.
///
/// [`p2m_mem_access_check`]: https://xenbits.xen.org/gitweb/?p=xen.git;a=blob;f=xen/arch/x86/mm/mem_access.c
pub const fn fault_action(
    access: PageAccess,
    kind: AccessKind,
    listener: bool,
    access_required: bool,
) -> (FaultAction, PageAccess) {
    let decision = access.decide(kind);
    match decision.outcome {
        Outcome::Allowed => (FaultAction::Allowed, access),
        Outcome::SilentConversion => (FaultAction::Relax, decision.access_after),
        Outcome::SyncViolation | Outcome::AsyncViolation if !listener => {
            match decision.without_listener(access_required) {
                NoListener::Relax(after) => (FaultAction::Relax, after),
                NoListener::CrashDomain => (FaultAction::CrashDomain, decision.access_after),
            }
        }
        Outcome::SyncViolation => (FaultAction::SyncEvent, decision.access_after),
        Outcome::AsyncViolation => (FaultAction::AsyncEvent, decision.access_after),
    }
}

/// The permission bits of a shadow L1 entry that enforce an access on PV.
///
/// When `present` is false the other two bits carry no meaning to the MMU; they are kept at
/// their most restrictive values (not writable, no-execute).
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
pub struct L1Bits {
    /// `_PAGE_PRESENT`: clear means every access faults.
    pub present: bool,
    /// `_PAGE_RW`: clear means writes fault.
    pub writable: bool,
    /// `_PAGE_NX`: set means instruction fetches fault.
    pub no_execute: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xenmem_access_values_are_the_headers() {
        // Xen's public/memory.h as bindgen reads it (the generated xen-abi crate), not a
        // reading of it: every value round-trips, and the first past the end is refused.
        let generated = [
            (xen_abi::XENMEM_access_n, XenmemAccess::N),
            (xen_abi::XENMEM_access_r, XenmemAccess::R),
            (xen_abi::XENMEM_access_w, XenmemAccess::W),
            (xen_abi::XENMEM_access_rw, XenmemAccess::Rw),
            (xen_abi::XENMEM_access_x, XenmemAccess::X),
            (xen_abi::XENMEM_access_rx, XenmemAccess::Rx),
            (xen_abi::XENMEM_access_wx, XenmemAccess::Wx),
            (xen_abi::XENMEM_access_rwx, XenmemAccess::Rwx),
            (xen_abi::XENMEM_access_rx2rw, XenmemAccess::Rx2rw),
            (xen_abi::XENMEM_access_n2rwx, XenmemAccess::N2rwx),
            (xen_abi::XENMEM_access_default, XenmemAccess::Default),
        ];
        for (raw, access) in generated {
            assert_eq!(access.to_raw(), raw);
            assert_eq!(XenmemAccess::from_raw(raw), Ok(access));
        }
        assert_eq!(
            XenmemAccess::from_raw(xen_abi::XENMEM_access_default + 1),
            Err(Errno::EINVAL)
        );
    }

    const KINDS: [AccessKind; 3] = [AccessKind::Read, AccessKind::Write, AccessKind::Fetch];

    const PAGE_ACCESSES: [PageAccess; 10] = PageAccess::ALL;

    /// The x86 MMU on one L1 entry (supervisor/user and the upper levels left aside).
    fn mmu_faults(bits: L1Bits, kind: AccessKind) -> bool {
        match kind {
            AccessKind::Read => !bits.present,
            AccessKind::Write => !bits.present || !bits.writable,
            AccessKind::Fetch => !bits.present || bits.no_execute,
        }
    }

    /// All 33 cases, written from Xen 4.17: the violation switch of `hvm_hap_nested_page_fault`
    /// (xen/arch/x86/hvm/hvm.c) and the conversions of `p2m_mem_access_check`
    /// (xen/arch/x86/mm/mem_access.c). The `default` rows are for a domain default of `rx2rw`.
    #[test]
    fn table_matches_xen() {
        use AccessKind::{Fetch as F, Read as Rd, Write as Wr};
        use Outcome::{
            Allowed as Ok_, AsyncViolation as Async, SilentConversion as Conv,
            SyncViolation as Sync,
        };
        use PageAccess as P;
        use XenmemAccess as X;
        #[rustfmt::skip]
        let table = [
            (X::N,       Rd, Sync,  P::N),     (X::N,       Wr, Sync,  P::N),     (X::N,       F, Sync,  P::N),
            (X::R,       Rd, Ok_,   P::R),     (X::R,       Wr, Sync,  P::R),     (X::R,       F, Sync,  P::R),
            (X::W,       Rd, Sync,  P::W),     (X::W,       Wr, Ok_,   P::W),     (X::W,       F, Sync,  P::W),
            (X::Rw,      Rd, Ok_,   P::Rw),    (X::Rw,      Wr, Ok_,   P::Rw),    (X::Rw,      F, Sync,  P::Rw),
            (X::X,       Rd, Sync,  P::X),     (X::X,       Wr, Sync,  P::X),     (X::X,       F, Ok_,   P::X),
            (X::Rx,      Rd, Ok_,   P::Rx),    (X::Rx,      Wr, Sync,  P::Rx),    (X::Rx,      F, Ok_,   P::Rx),
            (X::Wx,      Rd, Sync,  P::Wx),    (X::Wx,      Wr, Ok_,   P::Wx),    (X::Wx,      F, Ok_,   P::Wx),
            (X::Rwx,     Rd, Ok_,   P::Rwx),   (X::Rwx,     Wr, Ok_,   P::Rwx),   (X::Rwx,     F, Ok_,   P::Rwx),
            (X::Rx2rw,   Rd, Ok_,   P::Rx2rw), (X::Rx2rw,   Wr, Conv,  P::Rw),    (X::Rx2rw,   F, Ok_,   P::Rx2rw),
            (X::N2rwx,   Rd, Async, P::Rwx),   (X::N2rwx,   Wr, Async, P::Rwx),   (X::N2rwx,   F, Async, P::Rwx),
            (X::Default, Rd, Ok_,   P::Rx2rw), (X::Default, Wr, Conv,  P::Rw),    (X::Default, F, Ok_,   P::Rx2rw),
        ];
        assert_eq!(table.len(), 33);
        for (access, kind, outcome, access_after) in table {
            let expected = Decision {
                outcome,
                access_after,
            };
            assert_eq!(
                decide(access, PageAccess::Rx2rw, kind),
                expected,
                "{access:?} {kind:?}"
            );
            // The domain default only matters for `default`.
            if access != XenmemAccess::Default {
                assert_eq!(decide(access, PageAccess::N, kind), expected);
            }
        }
    }

    #[test]
    fn default_resolves_to_the_domain_default() {
        for domain_default in [
            PageAccess::Rwx,
            PageAccess::N,
            PageAccess::R,
            PageAccess::N2rwx,
        ] {
            for kind in KINDS {
                assert_eq!(
                    decide(XenmemAccess::Default, domain_default, kind),
                    decide(domain_default.to_xenmem(), PageAccess::Rwx, kind)
                );
            }
        }
    }

    #[test]
    fn numbering_matches_the_abi() {
        for (i, access) in PAGE_ACCESSES.into_iter().enumerate() {
            let raw = u32::try_from(i).unwrap();
            assert_eq!(access as u32, raw);
            assert_eq!(access.to_xenmem().to_raw(), raw);
            assert_eq!(XenmemAccess::from_raw(raw), Ok(access.to_xenmem()));
            assert_eq!(access.to_xenmem().resolve(PageAccess::N), access);
        }
        assert_eq!(XenmemAccess::Default.to_raw(), 10);
    }

    #[test]
    fn pv_l1_bits_trap_exactly_the_violations() {
        for access in PAGE_ACCESSES {
            let bits = access.l1_bits();
            let mut allowed_access_faults = false;
            for kind in KINDS {
                let decision = access.decide(kind);
                let faults = mmu_faults(bits, kind);
                if decision.outcome == Outcome::Allowed {
                    allowed_access_faults |= faults;
                } else {
                    // Sync, async and silent conversion alike: Xen must see the access.
                    assert!(faults, "{access:?} {kind:?} must fault");
                    // After a conversion the same access must go through.
                    if decision.access_after != access {
                        assert!(
                            !mmu_faults(decision.access_after.l1_bits(), kind),
                            "{access:?} {kind:?} -> {:?}",
                            decision.access_after
                        );
                    }
                }
            }
            // PV supports exactly the accesses whose bits never trap an allowed access.
            assert_eq!(access.pv_supports(), !allowed_access_faults, "{access:?}");
        }
    }

    #[test]
    fn no_listener_follows_p2m_mem_access_check() {
        for access in PAGE_ACCESSES {
            for kind in KINDS {
                let decision = access.decide(kind);
                for access_required in [false, true] {
                    let expected = match decision.outcome {
                        Outcome::Allowed => NoListener::Relax(access),
                        Outcome::SilentConversion => NoListener::Relax(PageAccess::Rw),
                        _ if access_required => NoListener::CrashDomain,
                        _ => NoListener::Relax(PageAccess::Rwx),
                    };
                    assert_eq!(decision.without_listener(access_required), expected);
                }
            }
        }
        let write = PageAccess::Rx2rw.decide(AccessKind::Write);
        assert_eq!(
            write.without_listener(true),
            NoListener::Relax(PageAccess::Rw)
        );
        let read = PageAccess::N2rwx.decide(AccessKind::Read);
        assert_eq!(read.without_listener(true), NoListener::CrashDomain);
        assert_eq!(
            read.without_listener(false),
            NoListener::Relax(PageAccess::Rwx)
        );
    }

    #[test]
    fn fault_actions_follow_p2m_mem_access_check() {
        use FaultAction::*;
        let rows = [
            // access, kind, listener, access_required => action, access after
            (
                PageAccess::Rwx,
                AccessKind::Write,
                true,
                false,
                Allowed,
                PageAccess::Rwx,
            ),
            (
                PageAccess::R,
                AccessKind::Read,
                false,
                true,
                Allowed,
                PageAccess::R,
            ),
            (
                PageAccess::R,
                AccessKind::Write,
                true,
                false,
                SyncEvent,
                PageAccess::R,
            ),
            (
                PageAccess::Rx,
                AccessKind::Write,
                true,
                true,
                SyncEvent,
                PageAccess::Rx,
            ),
            (
                PageAccess::Rw,
                AccessKind::Fetch,
                true,
                false,
                SyncEvent,
                PageAccess::Rw,
            ),
            (
                PageAccess::N,
                AccessKind::Read,
                true,
                false,
                SyncEvent,
                PageAccess::N,
            ),
            (
                PageAccess::N2rwx,
                AccessKind::Read,
                true,
                false,
                AsyncEvent,
                PageAccess::Rwx,
            ),
            (
                PageAccess::N2rwx,
                AccessKind::Fetch,
                true,
                true,
                AsyncEvent,
                PageAccess::Rwx,
            ),
            (
                PageAccess::Rx2rw,
                AccessKind::Write,
                true,
                false,
                Relax,
                PageAccess::Rw,
            ),
            (
                PageAccess::Rx2rw,
                AccessKind::Write,
                false,
                true,
                Relax,
                PageAccess::Rw,
            ),
            (
                PageAccess::Rx2rw,
                AccessKind::Read,
                true,
                true,
                Allowed,
                PageAccess::Rx2rw,
            ),
            (
                PageAccess::R,
                AccessKind::Write,
                false,
                false,
                Relax,
                PageAccess::Rwx,
            ),
            (
                PageAccess::N2rwx,
                AccessKind::Write,
                false,
                false,
                Relax,
                PageAccess::Rwx,
            ),
            (
                PageAccess::R,
                AccessKind::Write,
                false,
                true,
                CrashDomain,
                PageAccess::R,
            ),
            (
                PageAccess::N2rwx,
                AccessKind::Read,
                false,
                true,
                CrashDomain,
                PageAccess::Rwx,
            ),
        ];
        for (access, kind, listener, required, action, after) in rows {
            assert_eq!(
                fault_action(access, kind, listener, required),
                (action, after),
                "{access:?} {kind:?} listener={listener} access_required={required}"
            );
        }
    }

    #[test]
    fn every_fault_action_agrees_with_the_decision_table() {
        for access in PageAccess::ALL {
            for kind in KINDS {
                for listener in [false, true] {
                    for required in [false, true] {
                        let (action, after) = fault_action(access, kind, listener, required);
                        // Only violations leave the Allowed path, and nothing but a
                        // conversion or a relaxation changes the page.
                        assert_eq!(action == FaultAction::Allowed, !access.is_violation(kind));
                        if matches!(action, FaultAction::SyncEvent | FaultAction::Allowed) {
                            assert_eq!(after, access);
                        }
                        // After Relax or AsyncEvent the retried access is allowed.
                        if matches!(action, FaultAction::Relax | FaultAction::AsyncEvent) {
                            assert!(!after.is_violation(kind), "{access:?} {kind:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn validate_for_pv_error_codes() {
        use PageAccess as P;
        let eopnotsupp = Err(Errno::EOPNOTSUPP);
        let expected = [
            (0, Ok(P::N)),
            (1, Ok(P::R)),
            (2, eopnotsupp),
            (3, Ok(P::Rw)),
            (4, eopnotsupp),
            (5, Ok(P::Rx)),
            (6, eopnotsupp),
            (7, Ok(P::Rwx)),
            (8, Ok(P::Rx2rw)),
            (9, Ok(P::N2rwx)),
            (10, Ok(P::R)), // default, with a domain default of r
            (11, Err(Errno::EINVAL)),
            (12, Err(Errno::EINVAL)),
            (255, Err(Errno::EINVAL)),
            (u32::MAX, Err(Errno::EINVAL)),
        ];
        for (raw, result) in expected {
            assert_eq!(validate_for_pv(raw, P::R), result, "{raw}");
        }
        assert_eq!(validate_for_pv(10, P::Rwx), Ok(P::Rwx));
        assert_eq!(validate_for_pv(10, P::Wx), eopnotsupp);
        assert_eq!(Errno::EINVAL.to_raw(), -22);
        assert_eq!(Errno::EOPNOTSUPP.to_raw(), -95);
    }

    #[test]
    fn page_fault_error_code_classification() {
        const P: u32 = 1 << 0;
        const W: u32 = AccessKind::PFEC_WRITE;
        const U: u32 = 1 << 2;
        const RSVD: u32 = 1 << 3;
        const I: u32 = AccessKind::PFEC_INSN_FETCH;
        const PK: u32 = 1 << 5;
        let cases = [
            (0, AccessKind::Read),
            (P, AccessKind::Read),
            (P | U, AccessKind::Read),
            (P | U | RSVD, AccessKind::Read),
            (P | PK, AccessKind::Read),
            (W, AccessKind::Write),
            (P | W, AccessKind::Write),
            (P | W | U, AccessKind::Write),
            (P | W | RSVD, AccessKind::Write),
            (I, AccessKind::Fetch),
            (P | I, AccessKind::Fetch),
            (P | U | I, AccessKind::Fetch),
            (P | U | RSVD | I, AccessKind::Fetch),
            (P | W | U | RSVD | I, AccessKind::Fetch),
            (u32::MAX, AccessKind::Fetch),
        ];
        for (error_code, kind) in cases {
            assert_eq!(
                AccessKind::from_pf_error_code(error_code),
                kind,
                "{error_code:#x}"
            );
        }
    }
}
