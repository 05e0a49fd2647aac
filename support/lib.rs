//! The harness of the DIVE resilience suite: everything the phase tests in `tests/` share.
//!
//! A phase test reads like the plan: start a [`deployment::Deployment`], apply one fault through a
//! guard ([`fault`]), drive the traffic DIVE needs ([`traffic`]), wait with [`poll::eventually`] and
//! judge the measurement against a budget from [`slo`]. [`scenario`] ties those steps together,
//! journals them and turns what went wrong into findings in DIVE's terms; [`report`] and
//! [`timeline`] turn the journals into the summary table and one picture per scenario.

pub mod alertmanager;
pub mod config;
pub mod deployment;
pub mod diagnose;
pub mod dive;
pub mod fault;
pub mod finding;
pub mod http;
pub mod journal;
pub mod model;
pub mod monitor;
pub mod poll;
pub mod prometheus;
pub mod reference;
pub mod report;
pub mod scenario;
pub mod slo;
pub mod timeline;
pub mod traffic;

/// What a phase test needs, in one import.
pub mod prelude {
    pub use crate::config::Profile;
    pub use crate::deployment::{Deployment, Instance};
    pub use crate::fault::{FaultKind, Service};
    pub use crate::finding::{Defect, Finding};
    pub use crate::journal::AlertState;
    pub use crate::model::{Breaker, BreakerState, Overall, Probe};
    pub use crate::scenario::{Scenario, TICK, Verdict, run, run_on};
}
