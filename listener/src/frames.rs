//! Which page an event is about, in both namings: the guest frame number (pfn) a person and
//! the guest think in, and the machine frame (mfn) Xen names a PV guest's pages by.
//!
//! An HVM request's `gfn` is the pfn, and there is no mfn to tell. A PV request's `gfn` field
//! holds the machine frame (Xen's PV mem_access keys everything by MFN), so the pfn comes from
//! a reverse P2M ([`ReverseP2m`]) built at setup. The guest may gain pages later
//! (ballooning), so a machine frame the map does not know makes the P2M be read again; to
//! bound that work, a frame still unknown after a re-read is remembered and never causes
//! another one (a page a PV guest touches is normally in its P2M before it can map it: the
//! guest builds its page tables from its P2M, so a second chance would rarely find more).

use std::collections::BTreeSet;

use libxc::p2m::ReverseP2m;
use libxc::{AccessFrame, Mfn};

/// An event's page in both namings, as the trace gives them (`pfn` is an HVM guest's gfn);
/// `None` where it is not known (or, for an HVM guest's mfn, not anyone's to know).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Frame {
    /// The guest frame number.
    pub pfn: Option<u64>,
    /// The machine frame.
    pub mfn: Option<u64>,
}

/// Names the frames of a domain's events.
#[derive(Debug)]
pub enum FrameNames {
    /// An HVM guest: Xen's frame is the pfn.
    Hvm,
    /// A PV guest: Xen's frame is the mfn.
    Pv {
        /// The reverse of the P2M as last read.
        reverse: ReverseP2m,
        /// Machine frames unknown to `reverse` after a re-read: no further re-read for them.
        missed: BTreeSet<Mfn>,
    },
}

impl FrameNames {
    /// Names for a PV guest, from the reverse of the P2M read at setup (empty when the guest
    /// published none: every frame is then unknown until a re-read succeeds).
    pub fn pv(reverse: ReverseP2m) -> FrameNames {
        FrameNames::Pv {
            reverse,
            missed: BTreeSet::new(),
        }
    }

    /// Both names of `frame`, the frame Xen's request names. On a PV frame the map does not
    /// know, `reread` is called (at most once) for the guest's current P2M; `None` from it
    /// (the P2M could not be read) keeps the map as it was.
    pub fn name(
        &mut self,
        frame: AccessFrame,
        reread: impl FnOnce() -> Option<ReverseP2m>,
    ) -> Frame {
        let frame = match frame {
            AccessFrame::Gfn(gfn) => {
                return Frame {
                    pfn: Some(gfn.0),
                    mfn: None,
                }
            }
            AccessFrame::Mfn(mfn) => mfn,
        };
        let FrameNames::Pv { reverse, missed } = self else {
            // Xen names an HVM guest's frames by gfn: a machine frame has no pfn to find.
            return Frame {
                pfn: None,
                mfn: Some(frame.0),
            };
        };
        let mut pfn = reverse.pfn(frame);
        if pfn.is_none() && !missed.contains(&frame) {
            if let Some(fresh) = reread() {
                *reverse = fresh;
                missed.retain(|mfn| reverse.pfn(*mfn).is_none());
                pfn = reverse.pfn(frame);
            }
            if pfn.is_none() {
                missed.insert(frame);
            }
        }
        Frame {
            pfn: pfn.map(|pfn| pfn.0),
            mfn: Some(frame.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libxc::Gfn;
    use std::cell::Cell;

    fn mfn(number: u64) -> AccessFrame {
        AccessFrame::Mfn(Mfn(number))
    }

    #[test]
    fn hvm_frames_are_pfns_without_an_mfn() {
        let mut names = FrameNames::Hvm;
        let frame = names.name(AccessFrame::Gfn(Gfn(0x205)), || {
            panic!("HVM has no P2M to read")
        });
        assert_eq!(
            frame,
            Frame {
                pfn: Some(0x205),
                mfn: None
            }
        );
    }

    #[test]
    fn known_pv_frames_are_named_without_reading_the_p2m() {
        let mut names = FrameNames::pv(ReverseP2m::new(&[0x1000, 0x1234]));
        let frame = names.name(mfn(0x1234), || panic!("no re-read for a known frame"));
        assert_eq!(
            frame,
            Frame {
                pfn: Some(1),
                mfn: Some(0x1234)
            }
        );
    }

    #[test]
    fn a_frame_gained_later_is_found_by_one_re_read() {
        let mut names = FrameNames::pv(ReverseP2m::new(&[0x1000, 0x1234]));
        let reads = Cell::new(0);
        let grown = || {
            reads.set(reads.get() + 1);
            Some(ReverseP2m::new(&[0x1000, 0x1234, 0x5000, 0x5001]))
        };
        assert_eq!(names.name(mfn(0x5000), grown).pfn, Some(2));
        assert_eq!(reads.get(), 1);
        // The new map knows the other gained page too: no second read.
        assert_eq!(
            names.name(mfn(0x5001), || panic!("already re-read")).pfn,
            Some(3)
        );
    }

    #[test]
    fn a_frame_still_unknown_is_null_and_never_re_read_again() {
        let mut names = FrameNames::pv(ReverseP2m::new(&[0x1000]));
        let reads = Cell::new(0);
        let same = || {
            reads.set(reads.get() + 1);
            Some(ReverseP2m::new(&[0x1000]))
        };
        let frame = names.name(mfn(0x9999), same);
        assert_eq!(
            frame,
            Frame {
                pfn: None,
                mfn: Some(0x9999)
            }
        );
        assert_eq!(
            names.name(mfn(0x9999), || panic!("missed already")).pfn,
            None
        );
        // Another unknown frame earns its own re-read.
        assert_eq!(names.name(mfn(0x8888), same).pfn, None);
        assert_eq!(reads.get(), 2);
    }

    #[test]
    fn a_failed_re_read_keeps_the_map() {
        let mut names = FrameNames::pv(ReverseP2m::new(&[0x1000]));
        assert_eq!(names.name(mfn(0x7777), || None).pfn, None);
        assert_eq!(names.name(mfn(0x1000), || panic!("known")).pfn, Some(0));
        // A guest that published no P2M at setup: a later successful read fills the map.
        let mut names = FrameNames::pv(ReverseP2m::default());
        assert_eq!(
            names
                .name(mfn(0x1000), || Some(ReverseP2m::new(&[0x2000, 0x1000])))
                .pfn,
            Some(1)
        );
    }
}
