//! What existing tools meet on a PV guest: calls made the HVM way are refused, never
//! reinterpreted.

pub mod pfn_refused;
