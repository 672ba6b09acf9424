//! `XEN_SYSCTL_*` (`xen/include/public/sysctl.h`, from [`xen_abi`]): host
//! facts a listener or a test needs.

use crate::error::Result;
use xen_abi::{xen_sysctl, xen_sysctl_physinfo};

use crate::abi::member;
use crate::privcmd::{hypercall, Privcmd};

/// `XEN_SYSCTL_INTERFACE_VERSION`.
pub const INTERFACE_VERSION: u32 = xen_abi::XEN_SYSCTL_INTERFACE_VERSION;

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
    buffer.write(&xen_sysctl {
        cmd: xen_abi::XEN_SYSCTL_physinfo,
        interface_version: INTERFACE_VERSION,
        ..xen_sysctl::default()
    });
    // SAFETY: the one argument is a hypercall buffer holding a whole `struct xen_sysctl`.
    unsafe {
        privcmd.hypercall(
            "XEN_SYSCTL_physinfo",
            hypercall::SYSCTL,
            [buffer.address(), 0, 0, 0, 0],
        )
    }?;
    let raw: xen_sysctl_physinfo = member(&buffer.read::<xen_sysctl>().u);
    Ok(PhysInfo {
        total_pages: raw.total_pages,
        free_pages: raw.free_pages,
        scrub_pages: raw.scrub_pages,
        max_mfn: raw.max_mfn,
    })
}
