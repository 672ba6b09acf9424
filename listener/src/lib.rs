//! What other programs share with the listener: the records of its trace ([`record`]) and
//! the timings of its answer path ([`timings`], `listener monitor --timings`).

pub mod record;
pub mod timings;
