//! `XEN_DOMCTL_*` (`xen/include/public/domctl.h`, from [`xen_abi`]): the envelope and the
//! sub-operations this crate uses.

use crate::error::{Error, Result};
use xen_abi::{xen_domctl, xen_domctl__bindgen_ty_1};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::privcmd::{hypercall, Privcmd};
use crate::DomId;

/// `XEN_DOMCTL_INTERFACE_VERSION`.
pub const INTERFACE_VERSION: u32 = xen_abi::XEN_DOMCTL_INTERFACE_VERSION;
/// `XEN_DOMCTL_vm_event_op`.
pub const VM_EVENT_OP: u32 = xen_abi::XEN_DOMCTL_vm_event_op;

/// Bytes of the envelope's union `u` (128).
const PAYLOAD_SIZE: usize = std::mem::size_of::<xen_domctl__bindgen_ty_1>();

/// `struct xen_domctl` ([`xen_domctl`]) with its union `u` as bytes, which any
/// sub-operation's struct is written into: command, version, domain, then the union.
/// Its layout is checked against the generated struct when the crate compiles.
#[repr(C)]
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable)]
pub struct Domctl {
    /// `uint32_t cmd`
    pub cmd: u32,
    /// `uint32_t interface_version`
    pub interface_version: u32,
    /// `domid_t domain`
    pub domain: u16,
    /// `uint16_t _pad[3]`
    pub pad: [u16; 3],
    /// The union `u`, as bytes (its largest member is `uint8_t pad[128]`).
    pub payload: [u8; PAYLOAD_SIZE],
}

crate::abi::same_layout!(Domctl, xen_domctl, {
    cmd => cmd,
    interface_version => interface_version,
    domain => domain,
    pad => _pad,
    payload => u,
});

impl Domctl {
    /// A domctl for `domain` carrying `payload` (a sub-operation's struct), zero after it.
    ///
    /// # Panics
    ///
    /// If `payload` is larger than the union (128 bytes): no sub-operation is.
    pub fn new<T: IntoBytes + Immutable + ?Sized>(cmd: u32, domain: DomId, payload: &T) -> Domctl {
        let mut domctl = Domctl {
            cmd,
            interface_version: INTERFACE_VERSION,
            domain: domain.0,
            pad: [0; 3],
            payload: [0; PAYLOAD_SIZE],
        };
        let bytes = payload.as_bytes();
        assert!(
            bytes.len() <= domctl.payload.len(),
            "a domctl payload of {} bytes does not fit the 128-byte union",
            bytes.len()
        );
        domctl.payload[..bytes.len()].copy_from_slice(bytes);
        domctl
    }

    /// The union read back as `T` (its first `size_of::<T>()` bytes).
    ///
    /// # Panics
    ///
    /// If `T` is larger than the union.
    pub fn payload<T: FromBytes>(&self) -> T {
        match T::read_from_prefix(&self.payload) {
            Ok((value, _)) => value,
            Err(_) => panic!(
                "a domctl payload of {} bytes does not fit the 128-byte union",
                std::mem::size_of::<T>()
            ),
        }
    }
}

/// Issues a domctl and returns the envelope as Xen left it (domctls return data in place).
pub fn call(privcmd: &Privcmd, name: &str, domctl: Domctl) -> Result<Domctl> {
    let mut buffer = privcmd.buffer(1)?;
    buffer.write(&domctl);
    // SAFETY: the one argument is a hypercall buffer holding a whole `struct xen_domctl`.
    unsafe { privcmd.hypercall(name, hypercall::DOMCTL, [buffer.address(), 0, 0, 0, 0]) }.map_err(
        |error| Error {
            operation: format!("{name} on domain {}", domctl.domain),
            ..error
        },
    )?;
    Ok(buffer.read())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips() {
        let domctl = Domctl::new(VM_EVENT_OP, DomId(7), &[1u32, 2, 3]);
        assert_eq!(domctl.interface_version, INTERFACE_VERSION);
        assert_eq!(domctl.domain, 7);
        assert_eq!(domctl.payload::<[u32; 3]>(), [1, 2, 3]);
    }
}
