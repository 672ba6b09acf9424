//! `listener/*`: the listener's own behaviour against a real guest.

pub mod lifecycle;
