//! The `balloon` pattern's glue: the buffer pages' current frames from the P2M, the
//! P2M writes `test_guest::balloon::run` asks for, a `BALLOON` line per page, then the
//! plan's writes (to the new frames).

use test_guest::balloon::{self, Exchange};
use test_guest::frames::{Mfn, Pfn};
use test_guest::hypercall::{HypercallPage, XenError};
use test_guest::patterns::{Plan, BALLOON_PAGES};
use test_guest::start_info::StartInfo;
use test_guest::workload::BUFFER_GFN;

use super::super::{fail, line, p2m};
use super::touch_buffer;

/// Exchanges the frames of buffer pages 12 to 15, then writes each; returns the
/// touches made.
pub(super) fn run(hv: &HypercallPage, si: &StartInfo, plan: &Plan) -> usize {
    let mut pages = [(Pfn(0), Mfn(0)); BALLOON_PAGES.len()];
    {
        let Some(p2m) = p2m(si) else {
            fail("no P2M list", XenError::EINVAL)
        };
        for (slot, page) in pages.iter_mut().zip(BALLOON_PAGES) {
            let pfn = Pfn(BUFFER_GFN + page as u64);
            let mfn = usize::try_from(pfn.0).ok().and_then(|i| p2m.get(i));
            let Some(&mfn) = mfn else {
                fail("balloon: page not in the P2M", XenError::EINVAL)
            };
            *slot = (pfn, Mfn(mfn));
        }
        // The slice is not used past this block: `P2mWriter` writes the list.
    }
    let mut env = P2mWriter { si };
    // SAFETY: the pages are buffer pages 12 to 15, mapped 1:1 by the builder, only ever
    // touched through raw pointers and not touched until the exchange is over (the
    // plan's writes below); their contents do not matter.
    let done = unsafe {
        balloon::run(hv, &mut env, &pages, |exchange: Exchange| {
            line(|out| balloon::write_balloon(out, &exchange));
        })
    };
    if let Err(e) = done {
        fail(e.what, e.error);
    }
    plan.touches().iter().for_each(touch_buffer);
    plan.touches().len()
}

/// Writes the P2M list (`start_info.mfn_list`).
struct P2mWriter<'a> {
    si: &'a StartInfo,
}

impl balloon::Env for P2mWriter<'_> {
    fn set_p2m(&mut self, pfn: Pfn, mfn: u64) {
        let Some(index) = usize::try_from(pfn.0)
            .ok()
            .filter(|_| pfn.0 < self.si.nr_pages)
        else {
            fail("balloon: pfn past the P2M", XenError::EINVAL)
        };
        // SAFETY: the builder maps the P2M list (`nr_pages` aligned u64 entries at
        // `mfn_list`) read-write for the life of the domain, and `index` is below
        // `nr_pages`; no slice of it is in use now (see `p2m`). Volatile: dom0 reads it
        // through the published frame lists.
        unsafe {
            (self.si.mfn_list as *mut u64)
                .add(index)
                .write_volatile(mfn)
        }
    }
}
