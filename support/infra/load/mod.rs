//! Load under failure (phase 4.5), measured the way load testers measure: an open-model
//! generator at a constant arrival rate ([`generator`]), one record per scheduled request with
//! latency from the intended send time ([`record`]), HDR-histogram reports per phase and per
//! second ([`summary`]), and the judgements the requirements are written in ([`judge`]). What is
//! sent is the caller's; nothing here knows HTTP or DIVE beyond the classes of [`outcome`].

pub mod generator;
mod judge;
pub mod outcome;
pub mod record;
pub mod summary;

#[cfg(test)]
mod capacity;

pub use generator::{LATE, Lag, Plan, Run, halt_all, run};
pub use outcome::{Class, Counts, Outcome, Record};
pub use record::{Recorder, WINDOW};
pub use summary::{Latency, Summary, Window};
