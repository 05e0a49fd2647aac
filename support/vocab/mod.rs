//! Layer 1, the vocabulary: what the suite talks about, as plain data and pure functions. Nothing
//! here does I/O or imports another layer; everything else builds on it.

pub mod alerts;
pub mod api;
pub mod authz;
pub mod blast;
pub mod breaker;
pub mod coalition;
pub mod fault;
pub mod finding;
pub mod health;
pub mod journal;
pub mod load;
pub mod runbook;
pub mod slo;
pub mod tokens;
pub mod units;
