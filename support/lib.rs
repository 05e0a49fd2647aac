//! The harness of the DIVE resilience suite: everything the phase tests in `tests/` share.
//!
//! A phase test reads like the plan: start a [`deployment::Deployment`], apply one fault through a
//! guard ([`fault`]), drive the traffic DIVE needs, wait with [`infra::poll::eventually`] and judge
//! the measurement against a budget from [`vocab::slo`]. [`scenario`] ties those steps together,
//! journals them and turns what went wrong into findings in DIVE's terms; [`report`] turns the
//! journals into the summary table and one picture per scenario.
//!
//! The layers import only downwards (`docs/architecture.md` draws them; `tests/architecture.rs`
//! keeps them so): [`vocab`] <- [`infra`] <- [`fault`] <- [`deployment`] and [`report`] <-
//! [`reference`] <- [`scenario`].

pub mod deployment;
pub mod fault;
pub mod infra;
pub mod reference;
pub mod report;
pub mod scenario;
pub mod vocab;

/// What a phase test needs, in one import.
pub mod prelude {
    pub use crate::deployment::instance::Instance;
    pub use crate::deployment::traffic::Tallied;
    pub use crate::deployment::{Deployment, ask_each};
    pub use crate::infra::config::Profile;
    pub use crate::scenario::{Beside, Scenario, TICK, Verdict, run, run_on, run_side_by_side, run_with};
    pub use crate::vocab::fault::{FaultKind, Service};
    pub use crate::vocab::finding::{Defect, Finding};
    pub use crate::vocab::health::{Breaker, BreakerState, Overall, Probe};
    pub use crate::vocab::journal::AlertState;
    pub use crate::vocab::slo::Budget;
}
