//! The `start_info` page: what Xen tells a PV kernel at boot, pointed to by `rsi`.
//!
//! Mirrors `struct start_info` in `xen/include/public/xen.h` (Xen 4.17) for a 64-bit
//! guest, where `unsigned long` and `xen_pfn_t` are 64 bits. The page is written by
//! the domain builder (`start_info_x86_64` in
//! `tools/libs/guest/xg_dom_x86.c`) and mapped read-write in the bootstrap region.

use crate::frames::Mfn;
use crate::hypercall::EvtchnPort;

/// `MAX_GUEST_CMDLINE` in `xen.h`.
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// What `magic` starts with for a 64-bit PV guest (`"xen-<version>-<platform>"`; the
/// builder writes `dom->guest_type`, `"xen-3.0-x86_64"`).
pub const MAGIC_PREFIX: &[u8] = b"xen-3.0-x86_64";

/// The `console.domU` member of `start_info`'s `console` union.
///
/// The union's other member (`dom0`: `info_off`, `info_size`) is for the control
/// domain only; `domU` is the larger member, so this struct has the union's size.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DomUConsole {
    /// `xen_pfn_t mfn;      /* MACHINE page number of console page.   */`
    pub mfn: u64,
    /// `uint32_t  evtchn;   /* Event channel for console page.        */`
    pub evtchn: u32,
}

/// `struct start_info` (`xen.h`), field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StartInfo {
    /// `char magic[32];             /* "xen-<version>-<platform>".            */`
    pub magic: [u8; 32],
    /// `unsigned long nr_pages;     /* Total pages allocated to this domain.  */`
    pub nr_pages: u64,
    /// `unsigned long shared_info;  /* MACHINE address of shared info struct. */`
    pub shared_info: u64,
    /// `uint32_t flags;             /* SIF_xxx flags.                         */`
    pub flags: u32,
    /// `xen_pfn_t store_mfn;        /* MACHINE page number of shared page.    */`
    pub store_mfn: u64,
    /// `uint32_t store_evtchn;      /* Event channel for store communication. */`
    pub store_evtchn: u32,
    /// `union { struct { xen_pfn_t mfn; uint32_t evtchn; } domU; ... } console;`
    pub console: DomUConsole,
    /// `unsigned long pt_base;      /* VIRTUAL address of page directory.     */`
    pub pt_base: u64,
    /// `unsigned long nr_pt_frames; /* Number of bootstrap p.t. frames.       */`
    pub nr_pt_frames: u64,
    /// `unsigned long mfn_list;     /* VIRTUAL address of page-frame list.    */`
    pub mfn_list: u64,
    /// `unsigned long mod_start;    /* VIRTUAL address of pre-loaded module   */`
    pub mod_start: u64,
    /// `unsigned long mod_len;      /* Size (bytes) of pre-loaded module.     */`
    pub mod_len: u64,
    /// `int8_t cmd_line[MAX_GUEST_CMDLINE];` (NUL-terminated).
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// `unsigned long first_p2m_pfn;/* 1st pfn forming initial P->M table.    */`
    pub first_p2m_pfn: u64,
    /// `unsigned long nr_p2m_frames;/* # of pfns forming initial P->M table.  */`
    pub nr_p2m_frames: u64,
}

impl StartInfo {
    /// Whether `magic` says this is a 64-bit PV start_info.
    pub fn magic_ok(&self) -> bool {
        self.magic.starts_with(MAGIC_PREFIX)
    }

    /// The command line (`extra=` in the xl config), up to its NUL or the end of the
    /// array. Raw bytes: print them through [`crate::text::Sink::put_sanitized`].
    pub fn cmdline(&self) -> &[u8] {
        let len = self
            .cmd_line
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MAX_GUEST_CMDLINE);
        &self.cmd_line[..len]
    }

    /// The console ring's machine frame.
    pub fn console_mfn(&self) -> Mfn {
        Mfn(self.console.mfn)
    }

    /// The console's event channel.
    pub fn console_evtchn(&self) -> EvtchnPort {
        EvtchnPort(self.console.evtchn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    fn zeroed() -> StartInfo {
        StartInfo {
            magic: [0; 32],
            nr_pages: 0,
            shared_info: 0,
            flags: 0,
            store_mfn: 0,
            store_evtchn: 0,
            console: DomUConsole { mfn: 0, evtchn: 0 },
            pt_base: 0,
            nr_pt_frames: 0,
            mfn_list: 0,
            mod_start: 0,
            mod_len: 0,
            cmd_line: [0; MAX_GUEST_CMDLINE],
            first_p2m_pfn: 0,
            nr_p2m_frames: 0,
        }
    }

    /// Offsets of `struct start_info` for x86_64, as gcc lays out the Xen 4.17 header
    /// `xen/include/public/xen.h` (printed with `offsetof` from a C program built
    /// against that header; `flags` and `store_evtchn` are followed by 4 bytes of
    /// padding before the next 8-byte field).
    #[test]
    fn layout_matches_xen_h() {
        assert_eq!(offset_of!(StartInfo, magic), 0);
        assert_eq!(offset_of!(StartInfo, nr_pages), 32);
        assert_eq!(offset_of!(StartInfo, shared_info), 40);
        assert_eq!(offset_of!(StartInfo, flags), 48);
        assert_eq!(offset_of!(StartInfo, store_mfn), 56);
        assert_eq!(offset_of!(StartInfo, store_evtchn), 64);
        assert_eq!(
            offset_of!(StartInfo, console) + offset_of!(DomUConsole, mfn),
            72
        );
        assert_eq!(
            offset_of!(StartInfo, console) + offset_of!(DomUConsole, evtchn),
            80
        );
        assert_eq!(offset_of!(StartInfo, pt_base), 88);
        assert_eq!(offset_of!(StartInfo, nr_pt_frames), 96);
        assert_eq!(offset_of!(StartInfo, mfn_list), 104);
        assert_eq!(offset_of!(StartInfo, mod_start), 112);
        assert_eq!(offset_of!(StartInfo, mod_len), 120);
        assert_eq!(offset_of!(StartInfo, cmd_line), 128);
        assert_eq!(offset_of!(StartInfo, first_p2m_pfn), 1152);
        assert_eq!(offset_of!(StartInfo, nr_p2m_frames), 1160);
        assert_eq!(size_of::<StartInfo>(), 1168);
        assert_eq!(size_of::<DomUConsole>(), 16);
    }

    #[test]
    fn magic_and_cmdline() {
        let mut si = zeroed();
        assert!(!si.magic_ok());
        si.magic[..MAGIC_PREFIX.len()].copy_from_slice(MAGIC_PREFIX);
        assert!(si.magic_ok());
        assert_eq!(si.cmdline(), b"");
        si.cmd_line[..9].copy_from_slice(b"pattern=1");
        assert_eq!(si.cmdline(), b"pattern=1");
        si.cmd_line = [b'x'; MAX_GUEST_CMDLINE];
        assert_eq!(si.cmdline().len(), MAX_GUEST_CMDLINE, "no NUL: whole array");
    }

    #[test]
    fn console_accessors() {
        let mut si = zeroed();
        si.console = DomUConsole {
            mfn: 0x1234,
            evtchn: 2,
        };
        assert_eq!(si.console_mfn(), Mfn(0x1234));
        assert_eq!(si.console_evtchn(), EvtchnPort(2));
    }
}
