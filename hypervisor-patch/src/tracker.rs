//! The per-page access tracker of a monitored PV domain: the access a listener set on
//! individual machine frames, everything else following the domain default.
//!
//! # What this mirrors
//!
//! - HVM keeps a page's access in its p2m entry: `p2m_set_mem_access` writes it with
//!   `p2m->set_entry`, `_p2m_get_mem_access` reads it back with `p2m->get_entry`
//!   (`xen/arch/x86/mm/mem_access.c`). A PV guest has no p2m Xen could annotate, so the PV
//!   mem_access RFC (xen-devel, 2014) kept a side table, `mem_access_tracker[gmfn] =
//!   access_type`. This module is that table, keyed by MFN, and it only grows with the pages
//!   set explicitly.
//! - Setting the default. In HVM, `p2m_set_mem_access` with `INVALID_GFN` only changes
//!   `p2m->default_access`, and the listener then sets the whole gfn range itself. A PV
//!   listener cannot name its guest's frames, and walking the domain's `page_list` instead was
//!   refused in review of the RFC (the walk cannot be preempted safely while the list
//!   changes); the reviewers asked for an epoch counter, for which `shadow_flags` had no room
//!   (xen-devel 2014-08, "[PATCH RFC v2 1/4] x86/mm: Shadow and p2m changes for PV
//!   mem_access"). Here it is: [`Tracker::set_default`] bumps a generation counter in O(1),
//!   every entry set in an earlier generation then reads as "no entry", i.e. the default.
//!   So for PV, setting the default supersedes every earlier per-page setting; later
//!   per-page settings override it again.
//!
//! # Memory: the C side owns it, zero means empty
//!
//! The table is a [`Header`] and an array of [`Slot`]s that the C side allocates and frees;
//! nothing here allocates. Both are `#[repr(C)]`, made of integers only (every bit pattern is
//! a valid value, so the boundary may view any suitably sized and aligned memory as them) and
//! **all-zero is empty**: a slot says whether it is empty, live or a tombstone in a `state`
//! byte that uses the padding a 24-byte slot has anyway, rather than in sentinel MFN values.
//! So an `xzalloc`'d header is a valid tracker of capacity 0 with no slots, and the `mfn`
//! field of a live slot is the real MFN (readable as such in a crash dump).
//!
//! The table is open addressing: a Fibonacci hash of the MFN gives a home slot, collisions
//! probe linearly (wrapping at the end), [`Tracker::forget`] leaves a tombstone. Every probe
//! loop is bounded by the capacity, so a corrupt table gives wrong answers but never a panic,
//! out-of-bounds access or endless loop. Lookups are O(1) expected and allocate nothing.
//!
//! # Growth
//!
//! [`Tracker::set`] refuses with [`TrackerError::Full`] an insert that would take the slots in
//! use (live entries, stale-generation entries and tombstones) above 3/4 of the capacity. The
//! caller then allocates [`capacity_for`]`(tracker.live())` slots, calls
//! [`Tracker::rehash_into`] (which keeps only the entries of the current generation, so it
//! drops tombstones and everything [`Tracker::set_default`] superseded), frees the old array
//! and retries the `set`, which then succeeds. A rehash is O(old + new capacity).
//!
//! Only a new entry can need room: updating an MFN already present (e.g. the `rx2rw` and
//! `n2rwx` conversions of a page set explicitly) never returns `Full`. A conversion of a page
//! that follows the default creates an entry, and so may.
//!
//! ```
//! use hypervisor_patch::access::PageAccess;
//! use hypervisor_patch::tracker::{capacity_for, Header, Slot, Tracker, TrackerError};
//!
//! // What the C side holds at first: a zeroed header and no slots.
//! let mut header = Header::EMPTY;
//! let mut slots: Vec<Slot> = Vec::new();
//! let mfn = 0x1234;
//!
//! let Ok(mut tracker) = Tracker::new(&mut header, &mut slots) else { panic!("bad table") };
//! assert!(tracker.set(mfn, PageAccess::R) == Err(TrackerError::Full));
//!
//! // Grow: new storage, rehash, drop the old, retry.
//! let mut new_header = Header::EMPTY;
//! let mut new_slots = vec![Slot::EMPTY; capacity_for(tracker.live()) as usize];
//! assert!(tracker.rehash_into(&mut new_header, &mut new_slots).is_ok());
//! let Ok(mut tracker) = Tracker::new(&mut new_header, &mut new_slots) else { panic!() };
//! assert!(tracker.set(mfn, PageAccess::R).is_ok());
//! assert!(tracker.lookup(mfn) == Some(PageAccess::R));
//!
//! tracker.set_default();
//! assert!(tracker.lookup(mfn).is_none()); // follows the domain default now
//! ```
//!
//! # Concurrency
//!
//! None here: the caller serialises every call on one tracker (set, forget, set_default,
//! rehash and lookups alike) with one lock of its choosing, and a [`Tracker`] view lives only
//! for the call it is built for. Lookups need nothing beyond that same lock: no atomics, no
//! second reader protocol.
//!
//! Like [`crate::access`], this runs on the shadow page-fault path: no `core::fmt`, no
//! allocation, no indexing that can panic, explicit wrapping/saturating arithmetic, no
//! recursion, no indirect calls.

use crate::access::PageAccess;

/// `PADDR_BITS` (`xen/arch/x86/include/asm/x86_64/page.h`): the widest machine address
/// x86-64 has.
const PADDR_BITS: u32 = 52;
/// `PAGE_SHIFT`: frames are 4 KiB.
const PAGE_SHIFT: u32 = 12;

/// The first MFN no machine frame can have: `1 << (PADDR_BITS - PAGE_SHIFT)`, i.e. 2^40.
/// [`Tracker::set`] refuses frames at or above it (`INVALID_MFN`, `~0UL`, among them) with
/// [`TrackerError::BadFrame`]; [`Tracker::lookup`] and [`Tracker::forget`] report them absent.
pub const MFN_LIMIT: u64 = 1 << (PADDR_BITS - PAGE_SHIFT);

/// The smallest capacity [`capacity_for`] returns.
pub const MIN_CAPACITY: u32 = 64;

/// The largest capacity a table can have: the largest power of two a `u32` holds (2^31 slots,
/// 48 GiB; far beyond any host's frame count at the load factors used).
pub const MAX_CAPACITY: u32 = 1 << 31;

/// 2^64 / φ, the multiplier of Fibonacci hashing (Knuth, TAOCP vol. 3, 6.4).
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

const STATE_EMPTY: u8 = 0;
const STATE_LIVE: u8 = 1;
const STATE_TOMBSTONE: u8 = 2;

/// Why a tracker operation did not happen. Nothing was changed when one is returned (except
/// the new table of a failed [`Tracker::rehash_into`], which the caller discards).
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Debug))]
pub enum TrackerError {
    /// The table needs more room: grow it ([`capacity_for`], [`Tracker::rehash_into`]) and
    /// retry.
    Full,
    /// The MFN is not a machine frame (at or above [`MFN_LIMIT`]).
    BadFrame,
    /// The header and the slot array disagree: the array's length is not the header's
    /// capacity, or is not 0 or a power of two, or the header's counters are impossible.
    BadTable,
}

/// One slot of the table: 24 bytes, 8-byte aligned, all-zero is empty. Only this module
/// interprets the fields; C only allocates, zeroes and frees arrays of slots.
#[derive(Clone, Copy)]
#[cfg_attr(test, derive(Debug, PartialEq, Eq))]
#[repr(C)]
pub struct Slot {
    /// The machine frame, when `state` is live.
    mfn: u64,
    /// The generation the access was set in; it counts only if it is the header's.
    generation: u64,
    /// A `p2m_access_t` ([`PageAccess`]); a value that is not one reads as "no entry".
    access: u8,
    /// Empty (0), live (1) or tombstone (2); any other value counts as a tombstone.
    state: u8,
    _pad: [u8; 6],
}

const _: () = assert!(core::mem::size_of::<Slot>() == 24);
const _: () = assert!(core::mem::align_of::<Slot>() == 8);

/// What a slot holds, decoded from its `state` byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    Live,
    Tombstone,
}

impl Slot {
    /// An empty slot (all zero, as `xzalloc` leaves memory).
    pub const EMPTY: Slot = Slot {
        mfn: 0,
        generation: 0,
        access: 0,
        state: STATE_EMPTY,
        _pad: [0; 6],
    };

    const TOMBSTONE: Slot = Slot {
        state: STATE_TOMBSTONE,
        ..Slot::EMPTY
    };

    const fn live(mfn: u64, generation: u64, access: PageAccess) -> Slot {
        Slot {
            mfn,
            generation,
            access: access as u8,
            state: STATE_LIVE,
            _pad: [0; 6],
        }
    }

    const fn state(&self) -> State {
        match self.state {
            STATE_EMPTY => State::Empty,
            STATE_LIVE => State::Live,
            _ => State::Tombstone,
        }
    }
}

/// The table's header: 24 bytes, 8-byte aligned, all-zero is an empty table of capacity 0.
/// Only this module writes the fields; the C boundary reads the capacity with
/// [`Header::capacity`] to know how long the slot array is.
///
/// # Invariants
///
/// Kept by every method of [`Tracker`], the O(1) ones checked by [`Tracker::new`]:
/// - `capacity` is the slot array's length: 0 or a power of two;
/// - `occupied` counts the non-empty slots and is at most 3/4 of `capacity` (all of it for
///   capacities 1 and 2);
/// - `live` counts the live slots whose generation is `generation`, so `live <= occupied`;
/// - an MFN is in at most one live slot, which lies on its probe path from its home slot
///   with no empty slot before it.
#[derive(Clone, Copy)]
#[cfg_attr(test, derive(Debug, PartialEq, Eq))]
#[repr(C)]
pub struct Header {
    /// Bumped by [`Tracker::set_default`]. A `u64` never wraps in practice (one bump per
    /// nanosecond takes 584 years); if it ever did, entries set 2^64 defaults ago would
    /// reappear.
    generation: u64,
    capacity: u32,
    occupied: u32,
    live: u32,
    _pad: u32,
}

const _: () = assert!(core::mem::size_of::<Header>() == 24);
const _: () = assert!(core::mem::align_of::<Header>() == 8);

impl Header {
    /// An empty table of capacity 0 (all zero, as `xzalloc` leaves memory).
    pub const EMPTY: Header = Header {
        generation: 0,
        capacity: 0,
        occupied: 0,
        live: 0,
        _pad: 0,
    };

    /// How many slots the table's array has.
    pub const fn capacity(&self) -> u32 {
        self.capacity
    }
}

/// The capacity to grow to for a table that keeps `live` entries: the smallest power of two
/// that is at least [`MIN_CAPACITY`] and twice `live`, so that the load after
/// [`Tracker::rehash_into`] is at most 1/2 and at least a quarter of the slots can be filled
/// before the next growth. Saturates at [`MAX_CAPACITY`]; never 0.
pub const fn capacity_for(live: u32) -> u32 {
    // At most 2^33 in a u64: no overflow, and next_power_of_two cannot overflow either.
    let wanted = (live as u64).wrapping_mul(2);
    let wanted = if wanted < MIN_CAPACITY as u64 {
        MIN_CAPACITY as u64
    } else {
        wanted
    };
    let capacity = wanted.next_power_of_two();
    if capacity > MAX_CAPACITY as u64 {
        MAX_CAPACITY
    } else {
        capacity as u32
    }
}

/// How many slots may be in use in a table of `capacity`: 3/4 of it, rounded up (so a table
/// of 1 or 2 slots may fill up; lookups stay bounded by the capacity anyway).
const fn max_occupied(capacity: u32) -> u32 {
    capacity.wrapping_sub(capacity / 4)
}

/// The capacity of a slot array of `len` slots, if it may be one: 0 or a power of two that
/// fits a `u32`.
fn checked_capacity(len: usize) -> Option<u32> {
    let capacity = u32::try_from(len).ok()?;
    (capacity == 0 || capacity.is_power_of_two()).then_some(capacity)
}

/// The home slot of `mfn` in an array of `len` slots (`len` 0 or a power of two): the top
/// log2(`len`) bits of the Fibonacci hash.
const fn home(mfn: u64, len: usize) -> usize {
    let bits = len.trailing_zeros();
    let hash = mfn.wrapping_mul(FIBONACCI);
    // One slot (bits == 0) would shift by 64, which `>>` does not define: checked_shr.
    let top = match hash.checked_shr(u64::BITS.wrapping_sub(bits)) {
        Some(top) => top,
        None => 0,
    };
    (top as usize) & len.wrapping_sub(1)
}

/// Where the probe for an MFN ended.
enum Probe {
    /// The live slot holding the MFN; `current` if it was set in the current generation.
    Found { index: usize, current: bool },
    /// The MFN is in no live slot. `reusable`: the first tombstone or stale-generation slot on
    /// its path; `empty`: the empty slot that ended the path (`None` if the whole table was
    /// probed without meeting one).
    Absent {
        reusable: Option<usize>,
        empty: Option<usize>,
    },
}

/// A borrowed view of one tracker, built by the C boundary for the duration of one call.
///
/// # Invariants
///
/// `slots.len() == header.capacity` (0 or a power of two), plus those of [`Header`].
pub struct Tracker<'a> {
    header: &'a mut Header,
    slots: &'a mut [Slot],
}

impl<'a> Tracker<'a> {
    /// A view over `header` and its `slots`; [`TrackerError::BadTable`] unless the array's
    /// length is the header's capacity and 0 or a power of two, and the header's counters are
    /// possible (`live <= occupied <=` 3/4 of the capacity).
    pub fn new(header: &'a mut Header, slots: &'a mut [Slot]) -> Result<Self, TrackerError> {
        let capacity = checked_capacity(slots.len()).ok_or(TrackerError::BadTable)?;
        if capacity != header.capacity
            || header.occupied > max_occupied(capacity)
            || header.live > header.occupied
        {
            return Err(TrackerError::BadTable);
        }
        Ok(Self { header, slots })
    }

    /// The access set explicitly on `mfn` in the current generation, or `None`: the page
    /// follows the domain default. Allocates nothing; O(1) expected.
    pub fn lookup(&self, mfn: u64) -> Option<PageAccess> {
        if mfn >= MFN_LIMIT {
            return None;
        }
        match self.probe(mfn) {
            Probe::Found {
                index,
                current: true,
            } => self.slots.get(index).and_then(Self::access_of),
            Probe::Found { current: false, .. } | Probe::Absent { .. } => None,
        }
    }

    /// Gives `mfn` the access `access` until it is set again, forgotten or superseded by
    /// [`Tracker::set_default`]. [`TrackerError::BadFrame`] for an MFN at or above
    /// [`MFN_LIMIT`]; [`TrackerError::Full`] when the table must grow first (see the module
    /// documentation). Updating an MFN already present, or reusing a tombstone or a
    /// superseded entry on its probe path, never needs room and so never fails with `Full`.
    pub fn set(&mut self, mfn: u64, access: PageAccess) -> Result<(), TrackerError> {
        if mfn >= MFN_LIMIT {
            return Err(TrackerError::BadFrame);
        }
        let (index, adds_live, adds_occupied) = match self.probe(mfn) {
            Probe::Found { index, current } => (index, !current, false),
            Probe::Absent {
                reusable: Some(index),
                ..
            } => (index, true, false),
            Probe::Absent {
                reusable: None,
                empty: Some(index),
            } if self.header.occupied < max_occupied(self.header.capacity) => (index, true, true),
            Probe::Absent { .. } => return Err(TrackerError::Full),
        };
        let generation = self.header.generation;
        let slot = self.slots.get_mut(index).ok_or(TrackerError::BadTable)?;
        *slot = Slot::live(mfn, generation, access);
        if adds_live {
            self.header.live = self.header.live.saturating_add(1);
        }
        if adds_occupied {
            self.header.occupied = self.header.occupied.saturating_add(1);
        }
        Ok(())
    }

    /// Forgets `mfn` (its frame was freed): it follows the default again. Returns whether it
    /// had an access of its own in the current generation. A superseded entry is dropped too,
    /// but reports `false`, as [`Tracker::lookup`] already said "no entry" for it.
    pub fn forget(&mut self, mfn: u64) -> bool {
        if mfn >= MFN_LIMIT {
            return false;
        }
        let Probe::Found { index, current } = self.probe(mfn) else {
            return false;
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return false;
        };
        *slot = Slot::TOMBSTONE;
        if current {
            self.header.live = self.header.live.saturating_sub(1);
        }
        current
    }

    /// The domain default changed: every access set so far is superseded, in O(1). The
    /// superseded entries keep their slots until they are reused or a rehash drops them.
    pub fn set_default(&mut self) {
        // Never wraps in practice: see `Header::generation`.
        self.header.generation = self.header.generation.wrapping_add(1);
        self.header.live = 0;
    }

    /// How many MFNs have an access of their own in the current generation.
    pub fn live(&self) -> u32 {
        self.header.live
    }

    /// How many slots the table has.
    pub fn capacity(&self) -> u32 {
        self.header.capacity
    }

    /// Fills a new table with this one's current-generation entries, dropping tombstones and
    /// superseded entries; the new header gets this table's generation. `new_slots` must be
    /// empty (zeroed memory is) and its length 0 or a power of two, else
    /// [`TrackerError::BadTable`], with room for [`Tracker::live`] entries
    /// ([`TrackerError::Full`]; [`capacity_for`] always gives enough). This table is left as
    /// it was; after an error the new one is consistent but incomplete, and is to be
    /// discarded.
    pub fn rehash_into(
        &self,
        new_header: &mut Header,
        new_slots: &mut [Slot],
    ) -> Result<(), TrackerError> {
        let capacity = checked_capacity(new_slots.len()).ok_or(TrackerError::BadTable)?;
        if self.header.live > max_occupied(capacity) {
            return Err(TrackerError::Full);
        }
        // The storage must come empty (zeroed memory is). Clearing it here would make LLVM
        // call memset, through the GOT because the prebuilt `core` asks for that
        // (RtLibUseGOT): an indirect call Xen forbids.
        if new_slots.iter().any(|slot| slot.state != STATE_EMPTY) {
            return Err(TrackerError::BadTable);
        }
        *new_header = Header {
            generation: self.header.generation,
            capacity,
            ..Header::EMPTY
        };
        let mut new = Tracker {
            header: new_header,
            slots: new_slots,
        };
        for slot in self.slots.iter() {
            if let Some(access) = self.current_access(slot) {
                new.set(slot.mfn, access)?;
            }
        }
        Ok(())
    }

    /// The access of `slot` if it is an entry [`Tracker::lookup`] can return: live, of the
    /// current generation, for a valid frame, holding a valid access.
    fn current_access(&self, slot: &Slot) -> Option<PageAccess> {
        if slot.state() == State::Live
            && slot.generation == self.header.generation
            && slot.mfn < MFN_LIMIT
        {
            Self::access_of(slot)
        } else {
            None
        }
    }

    fn access_of(slot: &Slot) -> Option<PageAccess> {
        PageAccess::from_p2m(u32::from(slot.access))
    }

    /// Walks `mfn`'s probe path: from its home slot, linearly with wrap-around, until the
    /// slot holding it, an empty slot, or (corrupt or full table) `capacity` steps.
    fn probe(&self, mfn: u64) -> Probe {
        let len = self.slots.len();
        let mask = len.wrapping_sub(1);
        let mut index = home(mfn, len);
        let mut reusable = None;
        for _ in 0..len {
            let Some(slot) = self.slots.get(index) else {
                break;
            };
            match slot.state() {
                State::Empty => {
                    return Probe::Absent {
                        reusable,
                        empty: Some(index),
                    }
                }
                State::Live if slot.mfn == mfn => {
                    return Probe::Found {
                        index,
                        current: slot.generation == self.header.generation,
                    }
                }
                State::Live if slot.generation == self.header.generation => {}
                State::Live | State::Tombstone => {
                    if reusable.is_none() {
                        reusable = Some(index);
                    }
                }
            }
            index = index.wrapping_add(1) & mask;
        }
        Probe::Absent {
            reusable,
            empty: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};
    use std::vec;
    use std::vec::Vec;

    extern crate std;

    const ACCESSES: [PageAccess; 10] = PageAccess::ALL;

    /// What the C side holds: a header and its slot array.
    #[derive(Clone)]
    struct Table {
        header: Header,
        slots: Vec<Slot>,
    }

    impl Table {
        fn with_capacity(capacity: u32) -> Self {
            Table {
                header: Header {
                    capacity,
                    ..Header::EMPTY
                },
                slots: vec![Slot::EMPTY; capacity as usize],
            }
        }

        fn view(&mut self) -> Tracker<'_> {
            Tracker::new(&mut self.header, &mut self.slots).expect("consistent table")
        }

        /// The C side's growth step.
        fn grow_to(&mut self, capacity: u32) {
            let mut new = Table {
                header: Header::EMPTY,
                slots: vec![Slot::EMPTY; capacity as usize],
            };
            self.view()
                .rehash_into(&mut new.header, &mut new.slots)
                .expect("rehash");
            *self = new;
        }

        fn grow(&mut self) {
            let capacity = capacity_for(self.view().live());
            self.grow_to(capacity);
        }

        fn index_of(&self, mfn: u64) -> Option<usize> {
            self.slots
                .iter()
                .position(|slot| slot.state() == State::Live && slot.mfn == mfn)
        }

        /// Every invariant of `Header`, recounted from the slots.
        fn check_invariants(&self) {
            let header = self.header;
            assert_eq!(header.capacity as usize, self.slots.len());
            let occupied = self
                .slots
                .iter()
                .filter(|slot| slot.state() != State::Empty)
                .count();
            assert_eq!(header.occupied as usize, occupied);
            assert!(header.occupied <= max_occupied(header.capacity));
            let live = self
                .slots
                .iter()
                .filter(|slot| slot.state() == State::Live && slot.generation == header.generation)
                .count();
            assert_eq!(header.live as usize, live);
            let mut seen = HashSet::new();
            let mut copy = self.clone();
            let tracker = copy.view();
            for (index, slot) in self.slots.iter().enumerate() {
                if slot.state() == State::Live {
                    assert!(seen.insert(slot.mfn), "{:#x} twice", slot.mfn);
                    match tracker.probe(slot.mfn) {
                        Probe::Found { index: found, .. } => assert_eq!(found, index),
                        Probe::Absent { .. } => panic!("{:#x} unreachable", slot.mfn),
                    }
                }
            }
        }
    }

    /// `count` MFNs whose home is `wanted` in a table of `capacity`.
    fn mfns_with_home(capacity: usize, wanted: usize, count: usize) -> Vec<u64> {
        (0..1_000_000)
            .filter(|&mfn| home(mfn, capacity) == wanted)
            .take(count)
            .collect()
    }

    #[test]
    fn layout_is_the_c_abi_and_zero_is_empty() {
        use core::mem::{align_of, offset_of, size_of};
        assert_eq!((size_of::<Slot>(), align_of::<Slot>()), (24, 8));
        assert_eq!(offset_of!(Slot, mfn), 0);
        assert_eq!(offset_of!(Slot, generation), 8);
        assert_eq!(offset_of!(Slot, access), 16);
        assert_eq!(offset_of!(Slot, state), 17);
        assert_eq!((size_of::<Header>(), align_of::<Header>()), (24, 8));
        assert_eq!(offset_of!(Header, generation), 0);
        assert_eq!(offset_of!(Header, capacity), 8);
        assert_eq!(offset_of!(Header, occupied), 12);
        assert_eq!(offset_of!(Header, live), 16);
        let Slot {
            mfn,
            generation,
            access,
            state,
            _pad,
        } = Slot::EMPTY;
        assert_eq!((mfn, generation, access, state, _pad), (0, 0, 0, 0, [0; 6]));
        assert!(Slot::EMPTY.state() == State::Empty);
        let Header {
            generation,
            capacity,
            occupied,
            live,
            _pad,
        } = Header::EMPTY;
        assert_eq!(
            (generation, capacity, occupied, live, _pad),
            (0, 0, 0, 0, 0)
        );
    }

    #[test]
    fn capacity_0_view() {
        let mut header = Header::EMPTY;
        let mut tracker = Tracker::new(&mut header, &mut []).unwrap();
        assert_eq!(tracker.capacity(), 0);
        assert_eq!(tracker.lookup(0), None);
        assert_eq!(tracker.set(0, PageAccess::R), Err(TrackerError::Full));
        assert!(!tracker.forget(0));
        tracker.set_default();
        assert_eq!(tracker.live(), 0);
        assert_eq!(tracker.lookup(7), None);
        let mut new_header = Header::EMPTY;
        let mut new_slots: [Slot; 0] = [];
        assert_eq!(tracker.rehash_into(&mut new_header, &mut new_slots), Ok(()));
        assert_eq!(new_header.generation, 1);
    }

    #[test]
    fn new_checks_the_view() {
        fn bad(mut header: Header, slots: &mut [Slot]) -> Option<TrackerError> {
            Tracker::new(&mut header, slots).err()
        }
        let mut slots = vec![Slot::EMPTY; 8];
        let header = |capacity, occupied, live| Header {
            capacity,
            occupied,
            live,
            ..Header::EMPTY
        };
        assert_eq!(bad(header(8, 0, 0), &mut slots), None);
        assert_eq!(bad(header(8, 6, 6), &mut slots), None);
        let bad_table = Some(TrackerError::BadTable);
        assert_eq!(bad(header(16, 0, 0), &mut slots), bad_table);
        assert_eq!(bad(header(0, 0, 0), &mut slots), bad_table);
        assert_eq!(bad(header(8, 7, 0), &mut slots), bad_table);
        assert_eq!(bad(header(8, 2, 3), &mut slots), bad_table);
        assert_eq!(bad(header(3, 0, 0), &mut slots[..3]), bad_table);
        assert_eq!(bad(header(6, 0, 0), &mut slots[..6]), bad_table);
        assert_eq!(bad(header(1, 1, 1), &mut slots[..1]), None);
        assert_eq!(bad(header(2, 2, 0), &mut slots[..2]), None);
    }

    #[test]
    fn set_lookup_overwrite_forget() {
        let mut table = Table::with_capacity(64);
        let mut tracker = table.view();
        assert_eq!(tracker.lookup(0x42), None);
        assert_eq!(tracker.set(0x42, PageAccess::R), Ok(()));
        assert_eq!(tracker.lookup(0x42), Some(PageAccess::R));
        assert_eq!(tracker.lookup(0x43), None);
        assert_eq!(tracker.set(0x42, PageAccess::Rx2rw), Ok(()));
        assert_eq!(tracker.lookup(0x42), Some(PageAccess::Rx2rw));
        assert_eq!(tracker.live(), 1);
        assert!(tracker.forget(0x42));
        assert!(!tracker.forget(0x42));
        assert_eq!(tracker.lookup(0x42), None);
        assert_eq!(tracker.live(), 0);
        assert_eq!(table.header.occupied, 1); // the tombstone
        table.check_invariants();
    }

    #[test]
    fn every_access_round_trips() {
        let mut table = Table::with_capacity(64);
        let mut tracker = table.view();
        for (mfn, access) in (100..).zip(ACCESSES) {
            tracker.set(mfn, access).unwrap();
        }
        for (mfn, access) in (100..).zip(ACCESSES) {
            assert_eq!(tracker.lookup(mfn), Some(access));
        }
        assert_eq!(tracker.live(), 10);
    }

    #[test]
    fn mfn_0_and_the_largest_mfn() {
        let largest = MFN_LIMIT - 1;
        assert_eq!(largest, 0xff_ffff_ffff);
        let mut table = Table::with_capacity(64);
        let mut tracker = table.view();
        tracker.set(0, PageAccess::N).unwrap();
        tracker.set(largest, PageAccess::Rwx).unwrap();
        assert_eq!(tracker.lookup(0), Some(PageAccess::N));
        assert_eq!(tracker.lookup(largest), Some(PageAccess::Rwx));
        assert_eq!(tracker.live(), 2);
        assert!(tracker.forget(0));
        assert_eq!(tracker.lookup(0), None);
        assert_eq!(tracker.lookup(largest), Some(PageAccess::Rwx));
        table.check_invariants();
    }

    #[test]
    fn frames_beyond_the_limit_are_refused_and_change_nothing() {
        let mut table = Table::with_capacity(64);
        table.view().set(5, PageAccess::R).unwrap();
        let before = table.clone();
        for mfn in [MFN_LIMIT, MFN_LIMIT + 1, 1 << 52, u64::MAX - 1, u64::MAX] {
            let mut tracker = table.view();
            assert_eq!(tracker.set(mfn, PageAccess::R), Err(TrackerError::BadFrame));
            assert_eq!(tracker.lookup(mfn), None);
            assert!(!tracker.forget(mfn));
        }
        assert_eq!(table.header, before.header);
        assert_eq!(table.slots, before.slots);
        // Even in a full table the frame is refused as such.
        let mut full = Table::with_capacity(1);
        full.view().set(1, PageAccess::R).unwrap();
        assert_eq!(
            full.view().set(u64::MAX, PageAccess::R),
            Err(TrackerError::BadFrame)
        );
    }

    #[test]
    fn the_default_supersedes_earlier_settings_and_later_ones_override_it() {
        let mut table = Table::with_capacity(64);
        let mut tracker = table.view();
        let (p1, p2) = (0x1000, 0x2000);
        tracker.set(p1, PageAccess::R).unwrap();
        tracker.set(p2, PageAccess::Rx).unwrap();
        tracker.set_default();
        assert_eq!(tracker.lookup(p1), None);
        assert_eq!(tracker.lookup(p2), None);
        assert_eq!(tracker.live(), 0);
        tracker.set(p1, PageAccess::Rw).unwrap();
        assert_eq!(tracker.lookup(p1), Some(PageAccess::Rw));
        assert_eq!(tracker.lookup(p2), None);
        assert_eq!(tracker.live(), 1);
        tracker.set_default();
        assert_eq!(tracker.lookup(p1), None);
        assert_eq!(tracker.live(), 0);
        // The superseded entries still hold their slots (O(1) set_default), reused in place.
        assert_eq!(table.header.occupied, 2);
        assert_eq!(table.header.generation, 2);
        table.check_invariants();
        table.view().set(p2, PageAccess::N).unwrap();
        assert_eq!(table.header.occupied, 2);
        assert_eq!(table.view().lookup(p2), Some(PageAccess::N));
        table.check_invariants();
    }

    #[test]
    fn forgetting_a_superseded_entry_reports_false() {
        let mut table = Table::with_capacity(64);
        let mut tracker = table.view();
        tracker.set(9, PageAccess::R).unwrap();
        tracker.set_default();
        assert!(!tracker.forget(9));
        assert_eq!(tracker.live(), 0);
        assert_eq!(table.index_of(9), None);
        table.check_invariants();
    }

    #[test]
    fn tombstones_and_superseded_slots_are_reused() {
        let mut table = Table::with_capacity(64);
        let same = mfns_with_home(64, 10, 3);
        let [a, b, c] = [same[0], same[1], same[2]];
        let mut tracker = table.view();
        tracker.set(a, PageAccess::R).unwrap();
        tracker.set(b, PageAccess::Rw).unwrap();
        assert!(tracker.forget(a));
        // `c` probes past a's tombstone, does not find itself, takes the tombstone.
        tracker.set(c, PageAccess::Rx).unwrap();
        assert_eq!(table.index_of(c), Some(10));
        assert_eq!(table.index_of(b), Some(11));
        assert_eq!(table.header.occupied, 2);
        assert_eq!(table.view().lookup(b), Some(PageAccess::Rw));
        table.check_invariants();
        // A superseded entry is reusable as a tombstone is.
        let mut tracker = table.view();
        tracker.set_default();
        tracker.set(a, PageAccess::N).unwrap();
        assert_eq!(table.index_of(a), Some(10));
        assert_eq!(table.index_of(c), None);
        assert_eq!(table.header.occupied, 2);
        assert_eq!(table.header.live, 1);
        // `b` (superseded, at 11) is found in place, not duplicated.
        table.view().set(b, PageAccess::R).unwrap();
        assert_eq!(table.index_of(b), Some(11));
        assert_eq!(table.header.live, 2);
        table.check_invariants();
    }

    #[test]
    fn probes_wrap_around_the_end_of_the_array() {
        let mut table = Table::with_capacity(8);
        let last = mfns_with_home(8, 7, 3);
        let mut tracker = table.view();
        for (mfn, access) in last.iter().zip(ACCESSES) {
            tracker.set(*mfn, access).unwrap();
        }
        assert_eq!(table.index_of(last[0]), Some(7));
        assert_eq!(table.index_of(last[1]), Some(0));
        assert_eq!(table.index_of(last[2]), Some(1));
        let mut tracker = table.view();
        assert!(tracker.forget(last[1]));
        assert_eq!(tracker.lookup(last[2]), Some(ACCESSES[2]));
        assert_eq!(tracker.lookup(last[0]), Some(ACCESSES[0]));
        assert_eq!(tracker.lookup(last[1]), None);
        table.check_invariants();
    }

    #[test]
    fn a_full_table_says_full_and_changes_nothing() {
        // Five MFNs with home 0 in a table of 4, which takes 3.
        let same = mfns_with_home(4, 0, 5);
        let mut table = Table::with_capacity(4);
        let mut tracker = table.view();
        for &mfn in &same[..3] {
            tracker.set(mfn, PageAccess::R).unwrap();
        }
        let before = table.clone();
        assert_eq!(
            table.view().set(same[3], PageAccess::R),
            Err(TrackerError::Full)
        );
        assert_eq!((table.header, &table.slots), (before.header, &before.slots));
        // Updating a present MFN needs no room; neither does reusing a tombstone.
        let mut tracker = table.view();
        assert_eq!(tracker.set(same[1], PageAccess::Rwx), Ok(()));
        assert!(tracker.forget(same[0]));
        assert_eq!(tracker.set(same[3], PageAccess::Rx), Ok(()));
        assert_eq!(tracker.lookup(same[3]), Some(PageAccess::Rx));
        assert_eq!(table.index_of(same[3]), Some(0));
        let mut tracker = table.view();
        assert_eq!(
            tracker.set(same[4], PageAccess::Rx),
            Err(TrackerError::Full)
        );
        table.check_invariants();
        // Growing makes room, with the load at most 1/2.
        table.grow();
        assert_eq!(table.header.capacity, MIN_CAPACITY);
        table.view().set(same[4], PageAccess::Rx).unwrap();
        assert_eq!(table.view().lookup(same[1]), Some(PageAccess::Rwx));
        table.check_invariants();
    }

    #[test]
    fn tiny_and_corrupt_tables_stay_bounded() {
        // Capacities 1 and 2 may fill up completely; a miss then probes every slot and stops.
        for capacity in [1, 2] {
            let mut table = Table::with_capacity(capacity);
            let mut tracker = table.view();
            for mfn in 0..u64::from(capacity) {
                tracker.set(mfn, PageAccess::R).unwrap();
            }
            assert_eq!(tracker.set(99, PageAccess::R), Err(TrackerError::Full));
            assert_eq!(tracker.lookup(99), None);
            assert!(!tracker.forget(99));
            assert_eq!(tracker.lookup(0), Some(PageAccess::R));
        }
        // Slots overwritten with garbage, counters that pass `new`: wrong answers at worst,
        // never a panic or an endless loop.
        let mut header = Header {
            capacity: 8,
            ..Header::EMPTY
        };
        let mut slots = [Slot::live(3, 0, PageAccess::R); 8];
        slots[0].access = 200;
        slots[1].state = 77;
        slots[2].mfn = u64::MAX;
        let mut tracker = Tracker::new(&mut header, &mut slots).unwrap();
        assert_eq!(tracker.lookup(1000), None);
        assert_eq!(tracker.lookup(u64::MAX), None);
        assert_eq!(tracker.live(), 0);
        let (mut new_header, mut new_slots) = (Header::EMPTY, vec![Slot::EMPTY; 64]);
        tracker
            .rehash_into(&mut new_header, &mut new_slots)
            .unwrap();
        assert_eq!(new_header.live, 1); // one copy of mfn 3; garbage dropped
        assert!(tracker.set(1000, PageAccess::R).is_ok()); // reuses the garbage slot
    }

    #[test]
    fn capacity_for_leaves_room() {
        assert_eq!(capacity_for(0), 64);
        assert_eq!(capacity_for(1), 64);
        assert_eq!(capacity_for(32), 64);
        assert_eq!(capacity_for(33), 128);
        assert_eq!(capacity_for(1000), 2048);
        assert_eq!(capacity_for(1 << 30), MAX_CAPACITY);
        assert_eq!(capacity_for((1 << 30) + 1), MAX_CAPACITY);
        assert_eq!(capacity_for(u32::MAX), MAX_CAPACITY);
        for live in (0..100_000).chain([1 << 29, (1 << 30) - 1, 1 << 30]) {
            let capacity = capacity_for(live);
            assert!(capacity.is_power_of_two() && capacity >= MIN_CAPACITY);
            assert!(u64::from(live) * 2 <= u64::from(capacity), "{live}");
            // After the rehash, at least the pending insert fits, and a quarter more.
            assert!(live + capacity / 4 <= max_occupied(capacity), "{live}");
        }
    }

    #[test]
    fn rehash_keeps_exactly_the_current_generation() {
        let mut table = Table::with_capacity(256);
        let mut tracker = table.view();
        for mfn in 0..100 {
            tracker.set(mfn, PageAccess::R).unwrap();
        }
        tracker.set_default();
        for mfn in 50..150 {
            tracker.set(mfn, PageAccess::Rx).unwrap();
        }
        for mfn in (50..150).step_by(3) {
            assert!(tracker.forget(mfn));
        }
        let live = tracker.live();
        assert_eq!(live, 100 - 34);
        let old = table.clone();
        for capacity in [capacity_for(live), 1024] {
            let mut new = old.clone();
            new.grow_to(capacity);
            assert_eq!(new.header.generation, old.header.generation);
            assert_eq!(new.header.live, live);
            assert_eq!(new.header.occupied, live); // no tombstone, no superseded entry
            new.check_invariants();
            let mut old = old.clone();
            for mfn in 0..200 {
                assert_eq!(new.view().lookup(mfn), old.view().lookup(mfn), "{mfn}");
            }
            // Still the same generation: a later default supersedes the copies too.
            new.view().set_default();
            assert_eq!(new.view().lookup(51), None);
        }
        assert_eq!(table.header, old.header); // the source is untouched
    }

    #[test]
    fn rehash_refuses_unusable_storage() {
        let mut table = Table::with_capacity(64);
        for mfn in 0..40 {
            table.view().set(mfn, PageAccess::R).unwrap();
        }
        let tracker = table.view();
        let mut header = Header::EMPTY;
        let mut slots = vec![Slot::EMPTY; 96];
        assert_eq!(
            tracker.rehash_into(&mut header, &mut slots),
            Err(TrackerError::BadTable)
        );
        assert_eq!(
            tracker.rehash_into(&mut header, &mut slots[..32]),
            Err(TrackerError::Full)
        );
        // Storage that is not empty is refused (zeroed memory is empty).
        let mut dirty = vec![Slot::live(7, 0, PageAccess::N); 64];
        assert_eq!(
            tracker.rehash_into(&mut header, &mut dirty),
            Err(TrackerError::BadTable)
        );
        let mut zeroed = vec![Slot::EMPTY; 64];
        assert_eq!(tracker.rehash_into(&mut header, &mut zeroed), Ok(()));
        let mut new = Table {
            header,
            slots: zeroed,
        };
        new.check_invariants();
        assert_eq!(new.view().lookup(7), Some(PageAccess::R));
    }

    /// xorshift64 (Marsaglia 2003): deterministic, no dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Random operations against a `HashMap` with the same semantics (`set_default` clears
    /// it): 45% set, 25% forget, `defaults` in 10,000 set_default, 10 in 10,000 voluntary
    /// rehashes, the rest lookups. MFNs mostly below `key_range`, a few just below
    /// [`MFN_LIMIT`] and a few invalid ones.
    fn model_run(seed: u64, key_range: u64, defaults: u64, operations: usize) {
        let mut rng = XorShift(seed.wrapping_mul(FIBONACCI) | 1);
        let mut table = Table::with_capacity(0);
        let mut model: HashMap<u64, PageAccess> = HashMap::new();
        let (mut grown, mut fulls_on_dead_slots, mut largest) = (0, 0, 0);
        for step in 0..operations {
            let mfn = match rng.below(256) {
                0 => [MFN_LIMIT, MFN_LIMIT + 1, u64::MAX - 1, u64::MAX][rng.below(4) as usize],
                1..=4 => MFN_LIMIT - 1 - rng.below(4),
                _ => rng.below(key_range),
            };
            let op = rng.below(10_000);
            if op < 4_500 {
                let access = ACCESSES[rng.below(10) as usize];
                let result = table.view().set(mfn, access);
                if mfn >= MFN_LIMIT {
                    assert_eq!(result, Err(TrackerError::BadFrame));
                    continue;
                }
                if result == Err(TrackerError::Full) {
                    let header = table.header;
                    assert!(header.occupied >= max_occupied(header.capacity));
                    if header.live < header.occupied {
                        fulls_on_dead_slots += 1;
                    }
                    table.grow();
                    grown += 1;
                    table.view().set(mfn, access).expect("room after growth");
                } else {
                    assert_eq!(result, Ok(()));
                }
                model.insert(mfn, access);
            } else if op < 7_000 {
                assert_eq!(table.view().forget(mfn), model.remove(&mfn).is_some());
            } else if op < 7_000 + defaults {
                table.view().set_default();
                model.clear();
            } else if op < 7_010 + defaults {
                // A voluntary rehash into a table from just big enough to 4 times that, so
                // that small tables fill up and wrap around often.
                let live = table.view().live();
                let mut capacity = 1;
                while max_occupied(capacity) <= live {
                    capacity *= 2;
                }
                let capacity = capacity << rng.below(3);
                table.grow_to(capacity);
            } else {
                assert_eq!(
                    table.view().lookup(mfn),
                    model.get(&mfn).copied(),
                    "{mfn:#x}"
                );
            }
            assert_eq!(table.view().live() as usize, model.len(), "step {step}");
            if step % 2048 == 0 {
                table.check_invariants();
                let tracker = table.view();
                for mfn in (0..key_range).chain(MFN_LIMIT - 4..MFN_LIMIT) {
                    assert_eq!(tracker.lookup(mfn), model.get(&mfn).copied());
                }
            }
            largest = largest.max(table.header.capacity);
        }
        table.check_invariants();
        // The runs exercise what they are meant to: growth, and `Full` caused by tombstones
        // and superseded entries rather than by live ones.
        assert!(grown > 1, "seed {seed}: the table never grew");
        assert!(
            fulls_on_dead_slots > 0,
            "seed {seed}: no Full from dead slots"
        );
        if key_range >= 1_000 {
            assert!(largest >= 1_024, "seed {seed}: largest capacity {largest}");
        }
    }

    #[test]
    fn model_tiny_key_range_frequent_defaults() {
        model_run(1, 16, 50, 100_000);
    }

    #[test]
    fn model_small_key_range() {
        model_run(2, 100, 20, 100_000);
        model_run(3, 200, 0, 100_000);
    }

    #[test]
    fn model_larger_key_ranges() {
        model_run(4, 1_000, 5, 100_000);
        model_run(5, 5_000, 1, 100_000);
    }
}
