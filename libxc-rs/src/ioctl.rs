//! Every ioctl this crate issues, each with its C definition from Linux's
//! `include/uapi/xen/privcmd.h` and `include/uapi/xen/evtchn.h` quoted above it. The numbers
//! are built the way the C macros build them, and a test pins them to the values Linux 6.1
//! uses.

use nix::request_code_none;

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
        assert_eq!(std::mem::offset_of!(PrivcmdMmapbatchV2, addr), 8);
        assert_eq!(std::mem::offset_of!(PrivcmdMmapbatchV2, err), 24);
    }
}
