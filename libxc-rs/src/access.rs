//! `xenmem_access_t` (`xen/include/public/memory.h`): the access a listener gives a page.

use std::fmt;
use std::str::FromStr;

use crate::abi::u8_of;

/// An access right set for a page, or the domain's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Access {
    /// `XENMEM_access_n`
    N = u8_of(xen_abi::XENMEM_access_n),
    /// `XENMEM_access_r`
    R = u8_of(xen_abi::XENMEM_access_r),
    /// `XENMEM_access_w`
    W = u8_of(xen_abi::XENMEM_access_w),
    /// `XENMEM_access_rw`
    Rw = u8_of(xen_abi::XENMEM_access_rw),
    /// `XENMEM_access_x`
    X = u8_of(xen_abi::XENMEM_access_x),
    /// `XENMEM_access_rx`
    Rx = u8_of(xen_abi::XENMEM_access_rx),
    /// `XENMEM_access_wx`
    Wx = u8_of(xen_abi::XENMEM_access_wx),
    /// `XENMEM_access_rwx`
    Rwx = u8_of(xen_abi::XENMEM_access_rwx),
    /// `XENMEM_access_rx2rw`: rx, turned rw by the first write (no event).
    Rx2rw = u8_of(xen_abi::XENMEM_access_rx2rw),
    /// `XENMEM_access_n2rwx`: n, turned rwx by the first access (one event, no pause).
    N2rwx = u8_of(xen_abi::XENMEM_access_n2rwx),
    /// `XENMEM_access_default`: the domain's default.
    Default = u8_of(xen_abi::XENMEM_access_default),
}

const NAMES: [(&str, Access); 11] = [
    ("n", Access::N),
    ("r", Access::R),
    ("w", Access::W),
    ("rw", Access::Rw),
    ("x", Access::X),
    ("rx", Access::Rx),
    ("wx", Access::Wx),
    ("rwx", Access::Rwx),
    ("rx2rw", Access::Rx2rw),
    ("n2rwx", Access::N2rwx),
    ("default", Access::Default),
];

impl Access {
    /// The access a raw value names, if any.
    pub fn from_raw(raw: u8) -> Option<Access> {
        NAMES.get(usize::from(raw)).map(|(_, access)| *access)
    }

    /// The name xen-access and this project's listener use.
    pub fn name(self) -> &'static str {
        NAMES[self as usize].0
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Access {
    type Err = String;

    fn from_str(text: &str) -> Result<Access, String> {
        NAMES
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, access)| *access)
            .ok_or_else(|| {
                let names: Vec<&str> = NAMES.iter().map(|(name, _)| *name).collect();
                format!("unknown access {text:?}; one of {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_match_the_abi() {
        for raw in 0..=10u8 {
            let access = Access::from_raw(raw).unwrap();
            assert_eq!(access as u8, raw);
            assert_eq!(access.name().parse::<Access>(), Ok(access));
        }
        assert_eq!(Access::from_raw(11), None);
        assert_eq!("rx2rw".parse(), Ok(Access::Rx2rw));
        assert!("rwxx"
            .parse::<Access>()
            .unwrap_err()
            .contains("one of n, r"));
    }
}
