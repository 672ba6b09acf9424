//! One PV domain's access tracker as Xen keeps it: the [`Tracker`] header and a slot table
//! that grows on demand, in memory C allocates (the state) and this module allocates through
//! the glue (the table). C sees the state as an opaque `struct pvma_tracker` of
//! [`TrackerState::SIZE`] bytes, zeroed (an empty tracker), and serialises every call on it
//! with a lock.
//!
//! With [`crate::ffi`], this is the only module with `unsafe`: the slot table is memory from
//! Xen's allocator, turned into a slice here.

use core::mem::size_of;

use crate::access::PageAccess;
use crate::tracker::{capacity_for, Header, Slot, Tracker, TrackerError};
use crate::xen;
use crate::Errno;

/// The per-domain state behind `struct pvma_tracker`.
///
/// # Invariants
///
/// `slots` is null when `header.capacity()` is 0, and otherwise points to a table of exactly
/// `header.capacity()` slots allocated by [`TrackerState::grow`] and owned by this state.
#[repr(C)]
pub struct TrackerState {
    header: Header,
    slots: *mut Slot,
}

impl TrackerState {
    /// Bytes C allocates for one state.
    pub const SIZE: usize = size_of::<TrackerState>();

    /// The tracker over this state's table.
    fn tracker(&mut self) -> Result<Tracker<'_>, Errno> {
        let capacity = self.header.capacity() as usize;
        let slots: &mut [Slot] = if capacity == 0 || self.slots.is_null() {
            &mut []
        } else {
            // SAFETY: by the type's invariant `slots` points to `capacity` slots owned by
            // this state; the caller's lock makes this the only reference to them.
            unsafe { core::slice::from_raw_parts_mut(self.slots, capacity) }
        };
        Tracker::new(&mut self.header, slots).map_err(|_| Errno::EINVAL)
    }

    /// Sets the access of `mfn`, growing the table when it is full.
    pub fn set(&mut self, mfn: u64, access: PageAccess) -> Result<(), Errno> {
        match self.tracker()?.set(mfn, access) {
            Ok(()) => return Ok(()),
            Err(TrackerError::Full) => {}
            Err(_) => return Err(Errno::EINVAL),
        }
        self.grow()?;
        self.tracker()?.set(mfn, access).map_err(|_| Errno::EINVAL)
    }

    /// The access of `mfn` set since the last default, if any.
    pub fn get(&mut self, mfn: u64) -> Result<PageAccess, Errno> {
        self.tracker()?.lookup(mfn).ok_or(Errno::ENOENT)
    }

    /// Forgets `mfn`.
    pub fn forget(&mut self, mfn: u64) {
        if let Ok(mut tracker) = self.tracker() {
            tracker.forget(mfn);
        }
    }

    /// How many MFNs have an access of their own since the last default.
    pub fn live(&mut self) -> u32 {
        self.tracker().map_or(0, |tracker| tracker.live())
    }

    /// A new default: every per-frame access is superseded, in O(1).
    pub fn set_default(&mut self) {
        if let Ok(mut tracker) = self.tracker() {
            tracker.set_default();
        }
    }

    /// Frees the table; the tracker is empty afterwards.
    pub fn destroy(&mut self) {
        let old = core::mem::replace(&mut self.slots, core::ptr::null_mut());
        self.header = Header::EMPTY;
        // SAFETY: the table came from `grow` (or is null) and the state no longer names it.
        unsafe { xen::free(old.cast()) };
    }

    /// Moves the live entries into a table twice their number (at least 64 slots).
    fn grow(&mut self) -> Result<(), Errno> {
        let live = self.tracker()?.live();
        let capacity = capacity_for(live.saturating_add(1));
        let bytes = capacity as usize * size_of::<Slot>();
        let new: *mut Slot = xen::alloc_zeroed(bytes).cast();
        if new.is_null() {
            return Err(Errno::ENOMEM);
        }
        // SAFETY: a fresh allocation of `bytes`, 8-byte aligned (Xen's allocator aligns to
        // the cache line), zeroed: `capacity` empty slots that nothing else references.
        let table = unsafe { core::slice::from_raw_parts_mut(new, capacity as usize) };
        let mut header = Header::EMPTY;
        let rehashed = self.tracker()?.rehash_into(&mut header, table);
        if rehashed.is_err() {
            // SAFETY: allocated above, referenced nowhere else.
            unsafe { xen::free(new.cast()) };
            return Err(Errno::ENOMEM);
        }
        let old = core::mem::replace(&mut self.slots, new);
        self.header = header;
        // SAFETY: the old table (or null), which the state no longer names.
        unsafe { xen::free(old.cast()) };
        Ok(())
    }
}
