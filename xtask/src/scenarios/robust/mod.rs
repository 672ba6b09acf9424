//! `robust/*`: wrong and random calls against the control interface; the hypervisor must
//! answer each with an error and lose nothing. `counts` is the `robust.json` every scenario
//! may leave for the run's summary.

pub mod bad_input;
pub mod counts;
pub mod fuzz;
pub mod raw;
