//! The random calls of `robust/fuzz`: pure, so a seed gives the same calls on the host (in
//! tests) and in dom0.
//!
//! What is drawn from where:
//! - domains: the monitored test guest (half the time), dom0, `DOMID_XEN`, `DOMID_SELF`,
//!   `DOMID_INVALID`, a random id no one has;
//! - frames: the guest's own (from its P2M), dom0's shared_info frame, Xen's (the ring
//!   frame), 0, random frames anywhere below the host's highest frame (mostly unallocated
//!   or someone else's), and huge numbers;
//! - access values: the 11 valid ones and random bytes;
//! - counts: 0, 1, 2, small, up to 2^32 - 1;
//! - lists and frame lists: in the hypercall buffer (aligned or not), null, unmapped.
//!
//! `XEN_DOMCTL_vm_event_op` with `DOMID_INVALID` is made with every op: it used to
//! dereference NULL in `vm_event_domctl` (found here; patch 0001 backports upstream's fix).
//!
//! Left out on purpose, as legitimately destructive:
//! `access_required` set on the guest (Xen would crash the guest at its first violation
//! while a call has left it without a ring); domctls that destroy, pause or reconfigure
//! domains are never made at all.

use libxc::memory::MemAccessOp;
use libxc::DomId;
use libxc::FrameKind;

use super::super::raw::{self as r, DOMID_INVALID};
use super::rng::SplitMix64;

/// What the generator draws frames and domains from.
#[derive(Clone, Debug)]
pub struct Pools {
    pub guest: DomId,
    /// The guest's machine frames.
    pub guest_frames: Vec<u64>,
    /// A frame dom0 owns.
    pub dom0_frame: u64,
    /// A frame Xen owns (the guest's monitor ring when the run started).
    pub xen_frame: u64,
    /// The host's highest machine frame.
    pub max_frame: u64,
}

/// Where `set_access_multi`'s lists are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListChoice {
    /// In the hypercall buffer, these entries.
    Entries(Vec<(u64, u8)>),
    /// Both lists unmapped.
    Unmapped,
    /// Frames in the buffer, accesses unmapped.
    UnmappedAccess(u64),
    /// In the hypercall buffer at odd addresses, these entries.
    Misaligned(Vec<(u64, u8)>),
}

/// Where `acquire_resource`'s frame list is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListPlace {
    Buffer,
    Null,
    Unmapped,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FuzzCall {
    AccessOp {
        op: MemAccessOp,
        lists: Option<ListChoice>,
        /// Bits above the command (continuation state).
        cmd_bits: u64,
    },
    VmEvent {
        domain: DomId,
        op: u32,
        mode: u32,
    },
    Monitor {
        domain: DomId,
        op: u32,
        event: u32,
    },
    AccessRequired {
        domain: DomId,
        value: u8,
    },
    Acquire {
        request: libxc::memory::MemAcquireResource,
        list: ListPlace,
    },
}

impl FuzzCall {
    /// A short name for the outcome histogram.
    pub fn kind(&self) -> &'static str {
        match self {
            FuzzCall::AccessOp { op, .. } => match op.op & !libxc::memory::ACCESS_OP_MFN {
                r::SET_ACCESS => "access set",
                r::GET_ACCESS => "access get",
                r::SET_ACCESS_MULTI => "access multi",
                _ => "access other-op",
            },
            FuzzCall::VmEvent { .. } => "vm_event",
            FuzzCall::Monitor { .. } => "monitor",
            FuzzCall::AccessRequired { .. } => "access_required",
            FuzzCall::Acquire { .. } => "acquire",
        }
    }
}

fn domain(rng: &mut SplitMix64, pools: &Pools) -> DomId {
    if rng.percent(50) {
        return pools.guest;
    }
    match rng.below(6) {
        0 => DomId(0),
        1 => DomId::XEN,
        2 => DomId::SELF,
        3 => DOMID_INVALID,
        4 => DomId(1000 + rng.below(0x7000) as u16),
        _ => pools.guest,
    }
}

fn frame(rng: &mut SplitMix64, pools: &Pools) -> u64 {
    match rng.below(10) {
        0..=3 if !pools.guest_frames.is_empty() => rng.pick(&pools.guest_frames),
        4 => pools.dom0_frame,
        5 => pools.xen_frame,
        6 => rng.below(pools.max_frame.max(1) + 1),
        7 => rng.pick(&[0, 1, u64::MAX, u64::MAX - 1, 1 << 40, 1 << 52, 1 << 63]),
        8 => rng.next_u64(),
        _ => rng.below(pools.max_frame.max(1) + 1),
    }
}

fn access(rng: &mut SplitMix64) -> u8 {
    if rng.percent(80) {
        rng.below(11) as u8
    } else {
        rng.next_u64() as u8
    }
}

fn count(rng: &mut SplitMix64) -> u32 {
    match rng.below(6) {
        0 => 0,
        1 | 2 => 1,
        3 => 2 + rng.below(30) as u32,
        4 => rng.next_u64() as u32,
        _ => u32::MAX,
    }
}

fn access_op(rng: &mut SplitMix64, pools: &Pools) -> FuzzCall {
    let op_code = match rng.below(10) {
        0..=2 => r::SET_ACCESS,
        3..=5 => r::GET_ACCESS,
        6..=8 => r::SET_ACCESS_MULTI,
        _ => rng.next_u64() as u8,
    };
    let default_target = rng.percent(30);
    let pfn = if default_target {
        !0
    } else {
        frame(rng, pools)
    };
    let nr = if op_code == r::SET_ACCESS && rng.percent(60) {
        1
    } else {
        count(rng)
    };
    // Mostly naming machine frames, as a PV domain's calls must; now and then not, which
    // Xen must refuse whatever the rest.
    let kind = if rng.percent(90) {
        FrameKind::Mfn
    } else {
        FrameKind::Gfn
    };
    let op = MemAccessOp {
        op: kind.op(op_code),
        access: access(rng),
        domid: domain(rng, pools).0,
        nr,
        pfn,
        ..MemAccessOp::default()
    };
    let lists = (op_code == r::SET_ACCESS_MULTI).then(|| match rng.below(10) {
        0 => ListChoice::Unmapped,
        1 => ListChoice::UnmappedAccess(frame(rng, pools)),
        2 => {
            let len = rng.below(r::MAX_ENTRIES as u64) as usize;
            ListChoice::Misaligned((0..len).map(|_| (frame(rng, pools), access(rng))).collect())
        }
        _ => {
            let len = rng.below(r::MAX_ENTRIES as u64 + 1) as usize;
            ListChoice::Entries((0..len).map(|_| (frame(rng, pools), access(rng))).collect())
        }
    });
    // Mostly no continuation bits; sometimes Xen's own encoding of a position.
    let cmd_bits = if rng.percent(5) {
        (rng.below(1 << 20)) << 6
    } else {
        0
    };
    FuzzCall::AccessOp {
        op,
        lists,
        cmd_bits,
    }
}

fn vm_event(rng: &mut SplitMix64, pools: &Pools) -> FuzzCall {
    let domain = domain(rng, pools);
    let mut op = if rng.percent(90) {
        rng.below(6) as u32
    } else {
        rng.next_u64() as u32
    };
    let mode = if rng.percent(70) {
        r::MONITOR
    } else if rng.percent(80) {
        rng.below(5) as u32
    } else {
        rng.next_u64() as u32
    };
    // Enabling and disabling rebuild the guest's paging: keep them to a few in a hundred
    // calls so the run stays short.
    if domain == pools.guest && (op == r::ENABLE || op == r::DISABLE) && rng.percent(60) {
        op = r::RESUME;
    }
    FuzzCall::VmEvent { domain, op, mode }
}

fn acquire(rng: &mut SplitMix64, pools: &Pools) -> FuzzCall {
    let list = match rng.below(10) {
        0..=5 => ListPlace::Buffer,
        6 | 7 => ListPlace::Null,
        _ => ListPlace::Unmapped,
    };
    let kind = if rng.percent(80) {
        libxc::memory::RESOURCE_VM_EVENT_RING
    } else {
        rng.next_u64() as u16
    };
    let nr_frames = match rng.below(5) {
        0 => 0,
        1 | 2 => 1,
        3 => 2 + rng.below(200) as u32,
        _ => rng.next_u64() as u32,
    };
    let mut request = libxc::memory::MemAcquireResource {
        domid: domain(rng, pools).0,
        type_: kind,
        id: if rng.percent(80) {
            r::MONITOR
        } else {
            rng.below(8) as u32
        },
        nr_frames,
        pad: if rng.percent(95) {
            0
        } else {
            rng.next_u64() as u32
        },
        frame: match rng.below(6) {
            0..=3 => 0,
            4 => 1 + rng.below(4),
            _ => rng.next_u64(),
        },
        frame_list: Default::default(),
    };
    // A resource other than the ring may have many frames (a grant table): Xen would write
    // that many into the list, which has room for 256.
    if list == ListPlace::Buffer && kind != libxc::memory::RESOURCE_VM_EVENT_RING {
        request.nr_frames = request.nr_frames.min(256);
    }
    FuzzCall::Acquire { request, list }
}

/// The next call.
pub fn next(rng: &mut SplitMix64, pools: &Pools) -> FuzzCall {
    match rng.below(100) {
        0..=54 => access_op(rng, pools),
        55..=69 => vm_event(rng, pools),
        70..=81 => FuzzCall::Monitor {
            domain: domain(rng, pools),
            op: if rng.percent(90) {
                rng.below(6) as u32
            } else {
                rng.next_u64() as u32
            },
            event: if rng.percent(90) {
                rng.below(16) as u32
            } else {
                rng.next_u64() as u32
            },
        },
        82..=86 => {
            let domain = domain(rng, pools);
            // access_required on the guest would let Xen crash it at its first violation
            // while no ring is there: legitimately destructive, so never on the guest.
            let value = if domain == pools.guest || rng.percent(50) {
                0
            } else {
                rng.next_u64() as u8
            };
            FuzzCall::AccessRequired { domain, value }
        }
        _ => acquire(rng, pools),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools() -> Pools {
        Pools {
            guest: DomId(5),
            guest_frames: (0x41a00..0x41a10).collect(),
            dom0_frame: 0x1234,
            xen_frame: 0x7777,
            max_frame: 0x8_0000,
        }
    }

    #[test]
    fn a_seed_gives_the_same_calls() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..500 {
            assert_eq!(next(&mut a, &pools()), next(&mut b, &pools()));
        }
    }

    #[test]
    fn every_kind_comes_up() {
        let mut rng = SplitMix64::new(2026);
        let mut kinds = std::collections::BTreeMap::new();
        let mut enables = 0;
        for _ in 0..10_000 {
            let call = next(&mut rng, &pools());
            *kinds.entry(call.kind()).or_insert(0) += 1;
            match call {
                FuzzCall::VmEvent { domain, op, .. }
                    if domain == DomId(5) && (op == r::ENABLE || op == r::DISABLE) =>
                {
                    enables += 1;
                }
                FuzzCall::Acquire { request, list }
                    if list == ListPlace::Buffer
                        && request.type_ != libxc::memory::RESOURCE_VM_EVENT_RING =>
                {
                    assert!(request.nr_frames <= 256);
                }
                FuzzCall::AccessOp {
                    lists: Some(ListChoice::Entries(entries)),
                    ..
                } => {
                    assert!(entries.len() <= r::MAX_ENTRIES);
                }
                FuzzCall::AccessRequired { domain, value } => {
                    assert!(domain != DomId(5) || value == 0);
                }
                _ => {}
            }
        }
        for kind in [
            "access set",
            "access get",
            "access multi",
            "access other-op",
            "vm_event",
            "monitor",
            "access_required",
            "acquire",
        ] {
            assert!(
                kinds.get(kind).copied().unwrap_or(0) > 50,
                "{kind}: {kinds:?}"
            );
        }
        assert!(
            (50..400).contains(&enables),
            "{enables} enables/disables of the guest"
        );
    }
}
