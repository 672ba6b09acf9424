//! `XEN_SYSCTL_*` (`xen/include/public/sysctl.h`, interface version 0x15 in Xen 4.17): host
//! facts a listener or a test needs.

use crate::error::Result;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::privcmd::{hypercall, Privcmd};

/// `#define XEN_SYSCTL_INTERFACE_VERSION 0x00000015`
pub const INTERFACE_VERSION: u32 = 0x15;
/// `#define XEN_SYSCTL_physinfo 3`
const PHYSINFO: u32 = 3;

/// `struct xen_sysctl`: command, version, then a 128-byte union.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
struct Sysctl {
    cmd: u32,
    interface_version: u32,
    payload: [u64; 16],
}

/// `struct xen_sysctl_physinfo`, the fields up to `max_mfn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, FromBytes, IntoBytes, Immutable)]
struct RawPhysInfo {
    threads_per_core: u32,
    cores_per_socket: u32,
    nr_cpus: u32,
    max_cpu_id: u32,
    nr_nodes: u32,
    max_node_id: u32,
    cpu_khz: u32,
    capabilities: u32,
    arch_capabilities: u32,
    pad: u32,
    total_pages: u64,
    free_pages: u64,
    scrub_pages: u64,
    outstanding_pages: u64,
    max_mfn: u64,
}

/// The host's memory, in 4 KiB pages (`xc_physinfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysInfo {
    /// All of the host's pages.
    pub total_pages: u64,
    /// Pages free now.
    pub free_pages: u64,
    /// Pages freed but not yet scrubbed (free once scrubbed).
    pub scrub_pages: u64,
    /// The highest machine frame number.
    pub max_mfn: u64,
}

/// `xc_physinfo`.
pub fn physinfo(privcmd: &Privcmd) -> Result<PhysInfo> {
    let mut buffer = privcmd.buffer(1)?;
    buffer.write(&Sysctl {
        cmd: PHYSINFO,
        interface_version: INTERFACE_VERSION,
        payload: [0; 16],
    });
    // SAFETY: the one argument is a hypercall buffer holding a whole `struct xen_sysctl`.
    unsafe {
        privcmd.hypercall(
            "XEN_SYSCTL_physinfo",
            hypercall::SYSCTL,
            [buffer.address(), 0, 0, 0, 0],
        )
    }?;
    let raw: RawPhysInfo = buffer.read_at(8);
    Ok(PhysInfo {
        total_pages: raw.total_pages,
        free_pages: raw.free_pages,
        scrub_pages: raw.scrub_pages,
        max_mfn: raw.max_mfn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layouts_match_xen_4_17() {
        assert_eq!(size_of::<Sysctl>(), 136);
        assert_eq!(offset_of!(Sysctl, payload), 8);
        assert_eq!(size_of::<RawPhysInfo>(), 80);
        assert_eq!(offset_of!(RawPhysInfo, pad), 36);
        assert_eq!(offset_of!(RawPhysInfo, total_pages), 40);
        assert_eq!(offset_of!(RawPhysInfo, free_pages), 48);
        assert_eq!(offset_of!(RawPhysInfo, max_mfn), 72);
    }
}
