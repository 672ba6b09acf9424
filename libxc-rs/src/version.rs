//! `HYPERVISOR_xen_version` (`xen/include/public/version.h`): the running Xen's version.

use crate::error::Result;
use crate::privcmd::{hypercall, Privcmd};

const XENVER_VERSION: u64 = xen_abi::XENVER_version as u64;
const XENVER_EXTRAVERSION: u64 = xen_abi::XENVER_extraversion as u64;
/// `xen_extraversion_t`: a `char[16]`.
type ExtraVersion = [u8; std::mem::size_of::<xen_abi::xen_extraversion_t>()];

/// The running Xen's version, e.g. `4.17.5-pv-memaccess` (`xc_version`).
pub fn xen_version(privcmd: &Privcmd) -> Result<String> {
    // SAFETY: XENVER_version takes no buffer (a null argument).
    let version = unsafe {
        privcmd.hypercall(
            "xen_version",
            hypercall::XEN_VERSION,
            [XENVER_VERSION, 0, 0, 0, 0],
        )
    }?;
    let mut buffer = privcmd.buffer(1)?;
    buffer.write(&ExtraVersion::default());
    // SAFETY: XENVER_extraversion writes a char[16] into the hypercall buffer.
    unsafe {
        privcmd.hypercall(
            "xen_version",
            hypercall::XEN_VERSION,
            [XENVER_EXTRAVERSION, buffer.address(), 0, 0, 0],
        )
    }?;
    let extra: ExtraVersion = buffer.read();
    let end = extra
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(extra.len());
    Ok(format!(
        "{}.{}{}",
        version >> 16,
        version & 0xffff,
        String::from_utf8_lossy(&extra[..end])
    ))
}
