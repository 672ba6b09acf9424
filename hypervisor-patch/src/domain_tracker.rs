//! One PV domain's access tracker as Xen keeps it: a [`Tree`] whose nodes are pages of Xen's
//! heap (`pvma_glue_alloc`, `pvma_glue_free`), in a state C allocates zeroed. C sees the state
//! as an opaque `struct pvma_tracker` of [`SIZE`] bytes (an empty tracker when zeroed) and
//! serialises every call on it with a lock.

use crate::access::PageAccess;
use crate::tracker::{NodeAlloc, TrackerError, Tree, NODE_BYTES};
use crate::xen;
use crate::Errno;

/// Nodes from Xen's heap: `xzalloc_bytes(4096)`, which is one whole page (xmalloc serves
/// sizes of a page and more with `alloc_xenheap_pages`).
pub struct XenAlloc;

// SAFETY: the glue returns zeroed memory of the size asked, cache-line aligned, or null, and
// `xfree` takes it back.
unsafe impl NodeAlloc for XenAlloc {
    fn alloc_node() -> *mut u8 {
        xen::alloc_zeroed(NODE_BYTES)
    }

    unsafe fn free_node(node: *mut u8) {
        // SAFETY: the caller passes a node from `alloc_node`, no longer used.
        unsafe { xen::free(node) }
    }
}

/// The per-domain state behind `struct pvma_tracker`.
pub type TrackerState = Tree<XenAlloc>;

/// Bytes C allocates for one state.
pub const SIZE: usize = core::mem::size_of::<TrackerState>();

/// The errno C gets for a tracker error: `-EINVAL` for a frame no machine has, `-ENOMEM`
/// when the allocator failed, `-EAGAIN` when the fault path found the reserve empty.
pub const fn errno(error: TrackerError) -> Errno {
    match error {
        TrackerError::BadFrame => Errno::EINVAL,
        TrackerError::NoMemory => Errno::ENOMEM,
        TrackerError::ReserveEmpty => Errno::EAGAIN,
    }
}

/// [`Tree::set`] as C sees it.
pub fn set(state: &mut TrackerState, mfn: u64, access: PageAccess) -> Result<(), Errno> {
    state.set(mfn, access).map_err(errno)
}

/// [`Tree::relax`] as C sees it.
pub fn relax(state: &mut TrackerState, mfn: u64, access: PageAccess) -> Result<(), Errno> {
    state.relax(mfn, access).map_err(errno)
}
