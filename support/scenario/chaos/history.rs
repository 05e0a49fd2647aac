//! The history of a chaos run, Jepsen style: every operation the suite performed while a schedule
//! ran (authorized requests, revoked-token probes, health observations, fault applications and
//! restores) with its invocation and completion times and its outcome. Recorded during the run,
//! journaled, and judged afterwards by the checkers.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::vocab::health::{Breaker, BreakerState, Overall};

/// What an authorized `GET /api/resources/:id` got back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestOutcome {
    /// 200 or 403: an authorization decision. `fallback` when the backend's local fallback
    /// decided instead of OPA; `cached` when it came from the decision cache (neither called OPA).
    Decided {
        status: u16,
        fallback: bool,
        cached: bool,
    },
    Unauthorized,
    NotFound,
    /// Any 5xx.
    ServerError(u16),
    /// Sent, and not answered before the client's deadline.
    Timeout,
    /// Refused or cut: no HTTP answer at all.
    NoAnswer,
}

impl RequestOutcome {
    /// True when the request failed rather than being answered.
    pub fn failed(self) -> bool {
        matches!(
            self,
            RequestOutcome::ServerError(_) | RequestOutcome::Timeout | RequestOutcome::NoAnswer
        )
    }
}

impl fmt::Display for RequestOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestOutcome::Decided {
                status,
                fallback,
                cached,
            } => {
                write!(f, "{status}")?;
                if *fallback {
                    f.write_str(" (local fallback)")?;
                }
                if *cached {
                    f.write_str(" (cached)")?;
                }
                Ok(())
            }
            RequestOutcome::Unauthorized => f.write_str("401"),
            RequestOutcome::NotFound => f.write_str("404"),
            RequestOutcome::ServerError(status) => write!(f, "{status}"),
            RequestOutcome::Timeout => f.write_str("no answer before the deadline"),
            RequestOutcome::NoAnswer => f.write_str("no answer (refused or cut)"),
        }
    }
}

/// What a backend did with a token that had been revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationOutcome {
    Accepted,
    Refused,
    NoAnswer,
}

/// One breaker as a health observation showed it. `failures` is DIVE's JSON field: the count of
/// consecutive failures, which is at least the threshold when CLOSED -> OPEN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerSeen {
    pub breaker: Breaker,
    pub state: BreakerState,
    pub failures: u64,
}

/// What an operation was, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum OpKind {
    /// An authorized request for a resource.
    Request {
        resource: String,
        outcome: RequestOutcome,
    },
    /// A request made with a token revoked (on the hub) at `revoked_at`.
    Revocation {
        jti: String,
        revoked_at: Duration,
        outcome: RevocationOutcome,
    },
    /// `GET {health}/detailed`. `breakers` is empty when the answer had none (DIVE's error
    /// fallback).
    Health {
        overall: Overall,
        breakers: Vec<BreakerSeen>,
    },
    /// The hub's `GET /api/federation/health`: the spokes it lists unhealthy; `None` when it did
    /// not answer.
    Spokes {
        unhealthy: Option<Vec<String>>,
    },
    FaultApplied {
        fault_id: usize,
    },
    FaultRestored {
        fault_id: usize,
    },
}

/// One operation on one instance. Its effect happened somewhere between `invoked` and
/// `completed`, which is all a checker may assume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub invoked: Duration,
    pub completed: Duration,
    pub instance: String,
    pub kind: OpKind,
}

impl Op {
    /// True when the operation may have been in progress at some moment of `from..=until`.
    pub fn overlaps(&self, from: Duration, until: Duration) -> bool {
        self.invoked <= until && from <= self.completed
    }

    /// The breaker as this observation showed it; `None` for other operations.
    pub fn breaker(&self, breaker: Breaker) -> Option<BreakerSeen> {
        match &self.kind {
            OpKind::Health { breakers, .. } => breakers.iter().find(|b| b.breaker == breaker).copied(),
            _ => None,
        }
    }
}

/// Every operation of a run, in the order they were recorded (workers run concurrently, so that
/// need not be the order of invocation: queries sort).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    pub fn record(&mut self, instance: &str, invoked: Duration, completed: Duration, kind: OpKind) {
        self.ops.push(Op {
            invoked,
            completed,
            instance: instance.to_string(),
            kind,
        });
    }

    /// Every instance with at least one operation, sorted.
    pub fn instances(&self) -> Vec<&str> {
        let mut instances: Vec<&str> = self.ops.iter().map(|op| op.instance.as_str()).collect();
        instances.sort_unstable();
        instances.dedup();
        instances
    }

    /// The operations on `instance`, in order of invocation.
    pub fn of_instance(&self, instance: &str) -> Vec<&Op> {
        let mut ops: Vec<&Op> = self.ops.iter().filter(|op| op.instance == instance).collect();
        ops.sort_by_key(|op| (op.invoked, op.completed));
        ops
    }

    /// The health observations of `instance`, in order of invocation.
    pub fn health_of(&self, instance: &str) -> Vec<&Op> {
        let mut ops = self.of_instance(instance);
        ops.retain(|op| matches!(op.kind, OpKind::Health { .. }));
        ops
    }

    /// The hub's lists of unhealthy spokes on `instance`, in order of invocation.
    pub fn spokes_of(&self, instance: &str) -> Vec<&Op> {
        let mut ops = self.of_instance(instance);
        ops.retain(|op| matches!(op.kind, OpKind::Spokes { .. }));
        ops
    }

    /// When the fault with this id was applied, as recorded.
    pub fn applied(&self, fault_id: usize) -> Option<&Op> {
        self.ops.iter().find(|op| op.kind == OpKind::FaultApplied { fault_id })
    }

    /// When the fault with this id was restored, as recorded.
    pub fn restored(&self, fault_id: usize) -> Option<&Op> {
        self.ops.iter().find(|op| op.kind == OpKind::FaultRestored { fault_id })
    }

    /// When the last operation completed.
    pub fn end(&self) -> Duration {
        self.ops.iter().map(|op| op.completed).max().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn sample() -> History {
        let mut history = History::new();
        let decided = RequestOutcome::Decided {
            status: 200,
            fallback: true,
            cached: false,
        };
        let breakers = vec![BreakerSeen {
            breaker: Breaker::Opa,
            state: BreakerState::HalfOpen,
            failures: 0,
        }];
        history.record("FRA", ms(900), ms(950), OpKind::FaultApplied { fault_id: 0 });
        history.record(
            "USA",
            ms(1000),
            ms(1040),
            OpKind::Request {
                resource: "doc-USA-1".into(),
                outcome: decided,
            },
        );
        history.record(
            "USA",
            ms(500),
            ms(520),
            OpKind::Health {
                overall: Overall::Degraded,
                breakers,
            },
        );
        let outcome = RequestOutcome::ServerError(503);
        history.record(
            "FRA",
            ms(1100),
            ms(1300),
            OpKind::Request {
                resource: "doc-FRA-2".into(),
                outcome,
            },
        );
        let revocation = OpKind::Revocation {
            jti: "j-1".into(),
            revoked_at: ms(200),
            outcome: RevocationOutcome::Refused,
        };
        history.record("FRA", ms(1200), ms(1210), revocation);
        history.record("FRA", ms(2000), ms(2100), OpKind::FaultRestored { fault_id: 0 });
        history
    }

    #[test]
    fn round_trips_through_json() {
        let history = sample();
        let json = serde_json::to_string(&history).expect("a history serialises");
        assert!(
            json.contains(r#""op":"health""#) && json.contains(r#""state":"HALF_OPEN""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<History>(&json).expect("and reads back"), history);
    }

    #[test]
    fn queries_per_instance_in_invocation_order() {
        let history = sample();
        assert_eq!(history.instances(), ["FRA", "USA"]);
        let usa: Vec<Duration> = history.of_instance("USA").iter().map(|op| op.invoked).collect();
        assert_eq!(usa, [ms(500), ms(1000)]);
        let health = history.health_of("USA");
        assert_eq!(health.len(), 1);
        assert_eq!(
            health[0].breaker(Breaker::Opa).map(|b| b.state),
            Some(BreakerState::HalfOpen)
        );
        assert_eq!(health[0].breaker(Breaker::Kas), None);
        assert_eq!(history.applied(0).map(|op| op.invoked), Some(ms(900)));
        assert_eq!(history.restored(0).map(|op| op.completed), Some(ms(2100)));
        assert!(history.restored(1).is_none());
        assert_eq!(history.end(), ms(2100));
    }
}
