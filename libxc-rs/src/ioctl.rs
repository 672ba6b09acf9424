//! Every ioctl this crate issues, each with its C definition from Linux's
//! `include/uapi/xen/privcmd.h` and `include/uapi/xen/evtchn.h` quoted above it. The numbers
//! are built the way the C macros build them, and a test pins them to the values Linux 6.1
//! uses.
//!
//! The calls themselves are nix's `ioctl_write_ptr_bad!` functions, one per request, each
//! typed with the one argument its request takes. Xen's requests are `_IOC(_IOC_NONE, ...,
//! sizeof(arg))`: no direction, yet a size, which none of nix's encoding macros builds
//! (`ioctl_none!` leaves the size out, `ioctl_write_ptr!` and `ioctl_readwrite!` set
//! direction bits), so the `_bad` form, which takes the number as it is. The drivers only
//! read the argument (`copy_from_user`), hence a const pointer; results come back as the
//! return value, and `MMAPBATCH_V2`'s per-frame errors through the `err` pointer inside.

use nix::{ioctl_write_ptr_bad, request_code_none};

/// `struct privcmd_hypercall { __u64 op; __u64 arg[5]; };`
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct PrivcmdHypercall {
    /// The hypercall number.
    pub op: u64,
    /// Its arguments.
    pub arg: [u64; 5],
}

/// `struct privcmd_mmapbatch_v2 { unsigned int num; domid_t dom; __u64 addr;
/// const xen_pfn_t __user *arr; int __user *err; };`
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PrivcmdMmapbatchV2 {
    /// Number of frames.
    pub num: u32,
    /// The domain owning the frames (`DOMID_XEN` for pages Xen shares).
    pub dom: u16,
    /// The C struct's implicit padding, made explicit (zero).
    pub pad: u16,
    /// Where the mapping starts (a `mmap` of the privcmd device).
    pub addr: u64,
    /// The frame numbers.
    pub arr: *const u64,
    /// One errno per frame, out.
    pub err: *mut i32,
}

/// `struct ioctl_evtchn_bind_interdomain { unsigned int remote_domain, remote_port; };`
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EvtchnBindInterdomain {
    /// The other end's domain.
    pub remote_domain: u32,
    /// The other end's port.
    pub remote_port: u32,
}

/// `struct ioctl_evtchn_unbind { unsigned int port; };`, also `ioctl_evtchn_notify`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EvtchnPortArg {
    /// A local port.
    pub port: u32,
}

/// `#define IOCTL_PRIVCMD_HYPERCALL _IOC(_IOC_NONE, 'P', 0, sizeof(privcmd_hypercall_t))`
pub const IOCTL_PRIVCMD_HYPERCALL: u64 =
    request_code_none!(b'P', 0) | size_field::<PrivcmdHypercall>();
/// `#define IOCTL_PRIVCMD_MMAPBATCH_V2 _IOC(_IOC_NONE, 'P', 4, sizeof(privcmd_mmapbatch_v2_t))`
pub const IOCTL_PRIVCMD_MMAPBATCH_V2: u64 =
    request_code_none!(b'P', 4) | size_field::<PrivcmdMmapbatchV2>();
/// `#define IOCTL_EVTCHN_BIND_INTERDOMAIN _IOC(_IOC_NONE, 'E', 1,
/// sizeof(struct ioctl_evtchn_bind_interdomain))`
pub const IOCTL_EVTCHN_BIND_INTERDOMAIN: u64 =
    request_code_none!(b'E', 1) | size_field::<EvtchnBindInterdomain>();
/// `#define IOCTL_EVTCHN_UNBIND _IOC(_IOC_NONE, 'E', 3, sizeof(struct ioctl_evtchn_unbind))`
pub const IOCTL_EVTCHN_UNBIND: u64 = request_code_none!(b'E', 3) | size_field::<EvtchnPortArg>();
/// `#define IOCTL_EVTCHN_NOTIFY _IOC(_IOC_NONE, 'E', 4, sizeof(struct ioctl_evtchn_notify))`
pub const IOCTL_EVTCHN_NOTIFY: u64 = request_code_none!(b'E', 4) | size_field::<EvtchnPortArg>();

ioctl_write_ptr_bad!(
    /// `ioctl(fd, IOCTL_PRIVCMD_HYPERCALL, &call)` on `/dev/xen/privcmd`: the hypercall's
    /// result (a negative one comes back as the errno).
    ///
    /// # Safety
    ///
    /// `fd` is the privcmd device and `data` a valid [`PrivcmdHypercall`] whose arguments
    /// are what Xen expects of its hypercall (it dereferences them).
    privcmd_hypercall,
    IOCTL_PRIVCMD_HYPERCALL,
    PrivcmdHypercall
);
ioctl_write_ptr_bad!(
    /// `ioctl(fd, IOCTL_PRIVCMD_MMAPBATCH_V2, &batch)` on `/dev/xen/privcmd`.
    ///
    /// # Safety
    ///
    /// `fd` is the privcmd device and `data` a valid [`PrivcmdMmapbatchV2`]: `addr` a privcmd
    /// mapping of `num` pages, `arr` readable for `num` frames, `err` writable for `num` ints.
    privcmd_mmapbatch_v2,
    IOCTL_PRIVCMD_MMAPBATCH_V2,
    PrivcmdMmapbatchV2
);
ioctl_write_ptr_bad!(
    /// `ioctl(fd, IOCTL_EVTCHN_BIND_INTERDOMAIN, &bind)` on `/dev/xen/evtchn`: the local port.
    ///
    /// # Safety
    ///
    /// `fd` is the event-channel device and `data` a valid [`EvtchnBindInterdomain`].
    evtchn_bind_interdomain,
    IOCTL_EVTCHN_BIND_INTERDOMAIN,
    EvtchnBindInterdomain
);
ioctl_write_ptr_bad!(
    /// `ioctl(fd, IOCTL_EVTCHN_UNBIND, &unbind)` on `/dev/xen/evtchn`.
    ///
    /// # Safety
    ///
    /// `fd` is the event-channel device and `data` a valid [`EvtchnPortArg`].
    evtchn_unbind,
    IOCTL_EVTCHN_UNBIND,
    EvtchnPortArg
);
ioctl_write_ptr_bad!(
    /// `ioctl(fd, IOCTL_EVTCHN_NOTIFY, &notify)` on `/dev/xen/evtchn`.
    ///
    /// # Safety
    ///
    /// `fd` is the event-channel device and `data` a valid [`EvtchnPortArg`].
    evtchn_notify,
    IOCTL_EVTCHN_NOTIFY,
    EvtchnPortArg
);

/// Linux's `_IOC` puts the argument size in bits 16..30 even for `_IOC_NONE`, which nix's
/// `request_code_none!` leaves out; Xen's headers rely on it.
const fn size_field<T>() -> u64 {
    (std::mem::size_of::<T>() as u64) << 16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_linux() {
        // Values of Linux 6.1's headers on x86_64, as libxencall/libxenforeignmemory use them.
        assert_eq!(IOCTL_PRIVCMD_HYPERCALL, 0x0030_5000);
        assert_eq!(IOCTL_PRIVCMD_MMAPBATCH_V2, 0x0020_5004);
        assert_eq!(IOCTL_EVTCHN_BIND_INTERDOMAIN, 0x0008_4501);
        assert_eq!(IOCTL_EVTCHN_UNBIND, 0x0004_4503);
        assert_eq!(IOCTL_EVTCHN_NOTIFY, 0x0004_4504);
    }

    #[test]
    fn layouts_match_linux() {
        assert_eq!(std::mem::size_of::<PrivcmdHypercall>(), 48);
        assert_eq!(std::mem::size_of::<PrivcmdMmapbatchV2>(), 32);
        assert_eq!(std::mem::offset_of!(PrivcmdMmapbatchV2, dom), 4);
        assert_eq!(std::mem::offset_of!(PrivcmdMmapbatchV2, pad), 6);
        assert_eq!(std::mem::offset_of!(PrivcmdMmapbatchV2, addr), 8);
        assert_eq!(std::mem::offset_of!(PrivcmdMmapbatchV2, err), 24);
    }
}
