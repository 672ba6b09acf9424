//! Frame numbers, typed by what they number, as Xen's `mfn_t` / `gfn_t` are: a machine frame
//! ([`Mfn`]), a PV guest's pseudo-physical frame ([`Pfn`], its P2M's index) and an HVM
//! guest's frame ([`Gfn`]). Xen names a PV guest's frames by machine frame and an HVM guest's
//! by gfn (`XENMEM_access_op_mfn`, `MEM_ACCESS_GFN_IS_MFN`): a call made with the wrong kind
//! is refused, so the kind travels with the number ([`FrameNumber`], [`AccessFrame`]) and a
//! pfn can never be handed to Xen as an mfn by mistake.

use std::fmt;

/// A machine frame number (`mfn_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mfn(pub u64);

/// A PV guest's pseudo-physical frame number: an index into the P2M the guest publishes.
/// Xen never takes one (it cannot check the guest's own P2M): [`crate::p2m::P2m`] turns it
/// into an [`Mfn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pfn(pub u64);

/// An HVM guest's frame number (`gfn_t`), translated by Xen's own P2M.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Gfn(pub u64);

macro_rules! hex_display {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        /// The number alone, so `{frame:#x}` reads as for the bare number.
        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    )*};
}
hex_display!(Mfn, Pfn, Gfn);

/// How `XENMEM_access_op` names a domain's frames: an HVM guest's by gfn, a PV guest's by
/// machine frame (the only numbers Xen can check: a PV guest writes its own P2M).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Guest frame numbers (HVM): the libxenctrl calls of the same names.
    Gfn,
    /// Machine frame numbers (PV): the `_mfn` calls, with `XENMEM_access_op_mfn`.
    Mfn,
}

impl FrameKind {
    /// The kind Xen takes for a domain: gfns for HVM, machine frames for PV.
    pub const fn of_domain(hvm: bool) -> FrameKind {
        match hvm {
            true => FrameKind::Gfn,
            false => FrameKind::Mfn,
        }
    }

    /// `XENMEM_access_op`'s `op` as Xen must receive it for frames of this kind (with
    /// [`crate::memory::ACCESS_OP_MFN`] for machine frames).
    pub const fn op(self, op: u8) -> u8 {
        match self {
            FrameKind::Gfn => op,
            FrameKind::Mfn => op | crate::memory::ACCESS_OP_MFN,
        }
    }
}

/// A frame number `XENMEM_access_op` takes: [`Gfn`] or [`Mfn`], never [`Pfn`].
pub trait FrameNumber: Copy + fmt::Debug {
    /// How Xen must be told these frames are named.
    const KIND: FrameKind;
    /// The number as the ABI carries it.
    fn number(self) -> u64;
}

impl FrameNumber for Gfn {
    const KIND: FrameKind = FrameKind::Gfn;
    fn number(self) -> u64 {
        self.0
    }
}

impl FrameNumber for Mfn {
    const KIND: FrameKind = FrameKind::Mfn;
    fn number(self) -> u64 {
        self.0
    }
}

/// A frame as the vm_event ring names it, of a kind known only at run time: a request's
/// `gfn` is a machine frame when Xen sets `MEM_ACCESS_GFN_IS_MFN` (PV), else a gfn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessFrame {
    /// An HVM guest's frame.
    Gfn(Gfn),
    /// A PV guest's machine frame.
    Mfn(Mfn),
}

impl AccessFrame {
    /// `number` named the way `kind` says.
    pub const fn new(kind: FrameKind, number: u64) -> AccessFrame {
        match kind {
            FrameKind::Gfn => AccessFrame::Gfn(Gfn(number)),
            FrameKind::Mfn => AccessFrame::Mfn(Mfn(number)),
        }
    }

    /// Its kind.
    pub const fn kind(self) -> FrameKind {
        match self {
            AccessFrame::Gfn(_) => FrameKind::Gfn,
            AccessFrame::Mfn(_) => FrameKind::Mfn,
        }
    }

    /// The number as the ABI carries it.
    pub const fn number(self) -> u64 {
        match self {
            AccessFrame::Gfn(Gfn(number)) | AccessFrame::Mfn(Mfn(number)) => number,
        }
    }

    /// The machine frame, for a PV guest's frame.
    pub const fn mfn(self) -> Option<Mfn> {
        match self {
            AccessFrame::Mfn(mfn) => Some(mfn),
            AccessFrame::Gfn(_) => None,
        }
    }
}

impl From<Gfn> for AccessFrame {
    fn from(gfn: Gfn) -> AccessFrame {
        AccessFrame::Gfn(gfn)
    }
}

impl From<Mfn> for AccessFrame {
    fn from(mfn: Mfn) -> AccessFrame {
        AccessFrame::Mfn(mfn)
    }
}

impl fmt::Display for AccessFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessFrame::Gfn(gfn) => write!(f, "gfn {gfn}"),
            AccessFrame::Mfn(mfn) => write!(f, "mfn {mfn}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_frame_keeps_its_kind_and_number() {
        let pv = AccessFrame::new(FrameKind::Mfn, 0x1234);
        assert_eq!(pv, AccessFrame::Mfn(Mfn(0x1234)));
        assert_eq!(
            (pv.kind(), pv.number(), pv.mfn()),
            (FrameKind::Mfn, 0x1234, Some(Mfn(0x1234)))
        );
        let hvm = AccessFrame::from(Gfn(0x200));
        assert_eq!(
            (hvm.kind(), hvm.number(), hvm.mfn()),
            (FrameKind::Gfn, 0x200, None)
        );
        assert_eq!(pv.to_string(), "mfn 0x1234");
        assert_eq!(hvm.to_string(), "gfn 0x200");
    }

    #[test]
    fn the_domain_decides_the_kind() {
        assert_eq!(FrameKind::of_domain(true), FrameKind::Gfn);
        assert_eq!(FrameKind::of_domain(false), FrameKind::Mfn);
        assert_eq!(<Gfn as FrameNumber>::KIND, FrameKind::Gfn);
        assert_eq!(<Mfn as FrameNumber>::KIND, FrameKind::Mfn);
    }
}
