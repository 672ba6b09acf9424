//! What other programs share with the listener: the records of its trace ([`record`]).

pub mod record;
