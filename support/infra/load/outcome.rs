//! What became of one request under load, in the classes of the traffic tally plus those that
//! only load can produce (cache hit, timeout, dropped). The classes and their counts are
//! vocabulary ([`crate::vocab::load`]), since journals carry them.

use std::time::Duration;

pub use crate::vocab::load::{Class, Counts};

/// What became of one scheduled request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Authorization answered (200 or 403) with a decision from OPA.
    Decided { status: u16 },
    /// Decided by the backend's local fallback because OPA could not be asked.
    Fallback,
    /// Answered from DIVE's decision cache: OPA was not asked.
    CacheHit,
    /// 401: the token was refused, so authorization never ran.
    Unauthorized,
    /// 404: the resource does not exist.
    NotFound,
    /// 5xx, with its status.
    ServerError(u16),
    /// A 2xx of a route that decides nothing (a listing, liveness).
    Answered { status: u16 },
    /// Any other status: counted rather than lost, so every scheduled request has a class.
    Other(u16),
    /// No answer within the plan's client timeout.
    Timeout,
    /// The transport failed: refused, reset, TLS.
    NoAnswer,
    /// Never sent: the cap on requests in flight was reached at its intended time.
    Dropped,
}

impl Outcome {
    /// Classifies an answer of the authorization route; the caller says whether DIVE marked it
    /// as a fallback or a cache hit.
    pub fn of_answer(status: u16, fallback: bool, cache_hit: bool) -> Outcome {
        match status {
            200 | 403 if fallback => Outcome::Fallback,
            200 | 403 if cache_hit => Outcome::CacheHit,
            200 | 403 => Outcome::Decided { status },
            401 => Outcome::Unauthorized,
            404 => Outcome::NotFound,
            500.. => Outcome::ServerError(status),
            _ => Outcome::Other(status),
        }
    }

    /// Classifies an answer of a route that decides nothing: any 2xx is an answer.
    pub fn of_plain_answer(status: u16) -> Outcome {
        match status {
            200..=299 => Outcome::Answered { status },
            _ => Outcome::of_answer(status, false, false),
        }
    }

    pub fn class(self) -> Class {
        match self {
            Outcome::Decided { .. } => Class::Decided,
            Outcome::Answered { .. } => Class::Answered,
            Outcome::Fallback => Class::Fallback,
            Outcome::CacheHit => Class::CacheHit,
            Outcome::Unauthorized => Class::Unauthorized,
            Outcome::NotFound => Class::NotFound,
            Outcome::ServerError(_) => Class::ServerError,
            Outcome::Other(_) => Class::Other,
            Outcome::Timeout => Class::Timeout,
            Outcome::NoAnswer => Class::NoAnswer,
            Outcome::Dropped => Class::Dropped,
        }
    }
}

/// One scheduled request and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its place in the schedule, from 0.
    pub seq: u64,
    /// When it was meant to be sent, from the start of the run.
    pub intended: Duration,
    /// From the intended send time to the answer or to giving up (coordinated omission
    /// corrected: a stalled target shows here); `None` for a dropped request, never sent.
    pub latency: Option<Duration>,
    pub outcome: Outcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_fall_in_the_tally_classes() {
        let class = |status, fallback, cache| Outcome::of_answer(status, fallback, cache).class();
        assert_eq!(class(403, false, false), Class::Decided);
        assert_eq!(class(200, true, false), Class::Fallback);
        assert_eq!(class(200, false, true), Class::CacheHit);
        assert_eq!(class(503, true, false), Class::ServerError);
        assert_eq!(class(429, false, false), Class::Other);
        let mut counts = Counts::default();
        for class in [Class::Fallback, Class::Decided, Class::Decided, Class::ServerError] {
            counts.add(class);
        }
        assert_eq!(counts.to_string(), "2 decided, 1 fallback, 1 x 5xx");
        assert_eq!(Outcome::of_plain_answer(200).class(), Class::Answered);
        assert_eq!(Outcome::of_plain_answer(503).class(), Class::ServerError);
        assert_eq!(counts.failed(), 1);
    }
}
