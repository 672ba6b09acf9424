//! `hostile/*`: a monitored guest is assumed hostile; these scenarios try the ways a PV
//! guest has around the monitor and check that nothing gets past it (issue 10).

pub mod pt_hypercall_write;
