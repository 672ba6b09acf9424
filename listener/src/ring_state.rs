//! Whether a domain has a monitor ring, and whether a listener is attached to it, as
//! `XEN_VM_EVENT_ATTACH` (our patch 0006) tells without changing anything: the port of a
//! ring nobody listens to, `EBUSY` for a ring with a listener, `ENODEV` for no ring.
//!
//! `XENMEM_access_op`'s get_access cannot tell: it answers for a PV domain with a ring or
//! without (rights stay in force when the ring goes).

use libxc::evtchn::EvtchnPort;
use libxc::monitor::monitor_attach;
use libxc::privcmd::Privcmd;
use libxc::{DomId, Errno, Result};

/// A domain's monitor ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingState {
    /// No ring: the domain is not monitored.
    None,
    /// A ring whose listener's event channel is gone (it died, or `listener enable` made
    /// the ring and let go): a new listener can take it over through this port.
    Orphaned(EvtchnPort),
    /// A ring with a listener attached.
    Listened,
}

impl RingState {
    /// Asks Xen.
    pub fn of(privcmd: &Privcmd, domain: DomId) -> Result<RingState> {
        match monitor_attach(privcmd, domain) {
            Ok(port) => Ok(RingState::Orphaned(port)),
            Err(error) if error.is(Errno::EBUSY) => Ok(RingState::Listened),
            Err(error) if error.is(Errno::ENODEV) => Ok(RingState::None),
            Err(error) => Err(error),
        }
    }

    /// How `listener status` says it (after `monitoring on`); `None` without a ring.
    pub fn describe(self) -> Option<&'static str> {
        match self {
            RingState::None => None,
            RingState::Orphaned(_) => Some(
                "ring has no listener attached (a listener died, or `listener enable` made \
                 it): `listener monitor` takes it over",
            ),
            RingState::Listened => Some("listener attached"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_described_for_status() {
        assert_eq!(RingState::None.describe(), None);
        assert_eq!(RingState::Listened.describe(), Some("listener attached"));
        let orphaned = RingState::Orphaned(EvtchnPort(3)).describe().unwrap();
        assert!(orphaned.starts_with("ring has no listener attached (a listener died"));
        assert!(orphaned.ends_with("`listener monitor` takes it over"));
    }
}
