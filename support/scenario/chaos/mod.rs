//! Phase 4.4, chaos that can be replayed and shrunk, judged over the whole history. This module is
//! the pure core, with no I/O and no waiting:
//! - [`rng`]: the seeded generator behind every random choice;
//! - [`schedule`]: a bounded, seeded sequence of faults, shown and journaled before it runs;
//! - [`history`]: every operation of a run, with invocation and completion times and outcome;
//! - [`checkers`]: legal breakers, right answers and recovery, judged over that history;
//! - [`shrink`]: reduces a failing schedule to a smallest one that still fails;
//! - [`timeline`]: fault windows, breaker lanes per instance and the verdicts, as text;
//! - [`run`]: the one part with I/O, which runs a schedule on a deployment and records its history.
//!
//! Every time in a schedule and a history is measured from the start of the schedule.

pub mod checkers;
pub mod history;
pub mod phase;
pub mod rng;
pub mod run;
pub mod schedule;
pub mod shrink;
pub mod timeline;

pub use checkers::{Checker, Recovery, Rules, Thresholds, Violation, check_all};
pub use history::{BreakerSeen, History, Op, OpKind, RequestOutcome, RevocationOutcome};
pub use rng::{Rng, fresh_seed};
pub use run::{ChaosRun, Revoked, run_schedule};
pub use schedule::{Limits, Schedule, ScheduledFault};
pub use shrink::{Shrunk, shrink};
pub use timeline::timeline;
