//! `abi/*`: the control interface of PV mem_access (monitor ring, access rights) driven by
//! the listener in dom0 against a running test guest.

pub mod default_access;
pub mod destroy_while_monitored;
pub mod enable_disable;
pub mod pv32_refused;
pub mod ring_unreachable;
pub mod set_multi;
