//! The `start_info` page: what Xen tells a PV kernel at boot, pointed to by `rsi`.
//!
//! `struct start_info` of `xen/include/public/xen.h` for a 64-bit guest is
//! `xen_sys::start_info` (its layout, wrapped by [`StartInfo`]). The page is written by
//! the domain builder (`start_info_x86_64` in `tools/libs/guest/xg_dom_x86.c`) and
//! mapped read-write in the bootstrap region.

use crate::frames::Mfn;
use crate::hypercall::EvtchnPort;

/// What `magic` starts with for a 64-bit PV guest (`"xen-<version>-<platform>"`; the
/// builder writes `dom->guest_type`, `"xen-3.0-x86_64"`).
pub const MAGIC_PREFIX: &[u8] = b"xen-3.0-x86_64";

/// The `start_info` page (`xen_sys::start_info`); its plain fields (`nr_pages`,
/// `pt_base`, `mfn_list`, ...) read through `Deref`, the byte arrays and the `console`
/// union through the methods below.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct StartInfo(xen_sys::start_info);

impl core::ops::Deref for StartInfo {
    type Target = xen_sys::start_info;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl StartInfo {
    /// Whether `magic` says this is a 64-bit PV start_info.
    pub fn magic_ok(&self) -> bool {
        let magic = self.0.magic.map(|c| c as u8);
        magic.starts_with(MAGIC_PREFIX)
    }

    /// The command line (`extra=` in the xl config), up to its NUL or the end of the
    /// array. Raw bytes: print them through [`crate::text::Sink::put_sanitized`].
    pub fn cmdline(&self) -> &[u8] {
        let line = &self.0.cmd_line;
        let len = line.iter().position(|&b| b == 0).unwrap_or(line.len());
        // SAFETY: `cmd_line` is `int8_t[]`; `i8` and `u8` have the same size and
        // alignment and every bit pattern is valid for both, so its first `len` bytes
        // are `len` bytes borrowed from `self`.
        unsafe { core::slice::from_raw_parts(line.as_ptr().cast::<u8>(), len) }
    }

    /// The console ring's machine frame.
    pub fn console_mfn(&self) -> Mfn {
        // SAFETY: `console` is a union of two structs of plain integers; a domU's
        // builder writes its `domU` member (the larger one), and any bits are valid.
        Mfn(unsafe { self.0.console.domU.mfn })
    }

    /// The console's event channel.
    pub fn console_evtchn(&self) -> EvtchnPort {
        // SAFETY: as in `console_mfn`.
        EvtchnPort(unsafe { self.0.console.domU.evtchn })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zeroed() -> StartInfo {
        // SAFETY: `start_info` is integers, integer arrays and a union of integer
        // structs: all zeroes is a valid value.
        StartInfo(unsafe { core::mem::zeroed() })
    }

    fn set(dst: &mut [i8], src: &[u8]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = s as i8;
        }
    }

    #[test]
    fn magic_and_cmdline() {
        let mut si = zeroed();
        assert!(!si.magic_ok());
        set(&mut si.0.magic, MAGIC_PREFIX);
        assert!(si.magic_ok());
        assert_eq!(si.cmdline(), b"");
        set(&mut si.0.cmd_line, b"pattern=1");
        assert_eq!(si.cmdline(), b"pattern=1");
        si.0.cmd_line = [b'x' as i8; 1024];
        assert_eq!(si.cmdline().len(), 1024, "no NUL: whole array");
    }

    #[test]
    fn console_accessors() {
        let mut si = zeroed();
        si.0.console.domU = xen_sys::start_info__bindgen_ty_1__bindgen_ty_1 {
            mfn: 0x1234,
            evtchn: 2,
        };
        assert_eq!(si.console_mfn(), Mfn(0x1234));
        assert_eq!(si.console_evtchn(), EvtchnPort(2));
    }
}
