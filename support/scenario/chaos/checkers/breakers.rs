//! Legal breakers: every breaker transition the observations show is one DIVE's state machine
//! allows (contract section 3). The numbers (opening at the threshold, leaving OPEN no sooner than
//! the open timeout) are judged by the scenario's own [`Observer`], replayed over the history, so
//! a chaos run and a single-fault scenario judge a transition alike; this file adds what only a
//! whole history shows: a move with no call to make it, HALF_OPEN straight from CLOSED, closing
//! without successful calls.

use std::time::Duration;

use super::{Checker, Rules, Thresholds, Violation, disturbances};
use crate::scenario::chaos::history::{BreakerSeen, History, Op, OpKind, RequestOutcome, RevocationOutcome};
use crate::scenario::chaos::schedule::Schedule;
use crate::scenario::observer::Observer;
use crate::vocab::fault::Service;
use crate::vocab::health::{Breaker, BreakerState, BreakerStats, Breakers, Detailed};
use crate::vocab::units::secs;

/// Breaker transitions that DIVE's state machine cannot make, per instance and breaker, judged
/// between consecutive health observations.
pub fn legal_breakers(history: &History, schedule: &Schedule, rules: &Rules) -> Vec<Violation> {
    let disturbances = disturbances(history, schedule, rules);
    let mut found = observed(history, rules);
    for instance in history.instances() {
        let observations = history.health_of(instance);
        let traffic: Vec<&Op> = history
            .of_instance(instance)
            .into_iter()
            .filter(|op| matches!(op.kind, OpKind::Request { .. } | OpKind::Revocation { .. }))
            .collect();
        // A backend restart resets every breaker to CLOSED (state lives in process memory).
        let restarts: Vec<(Duration, Duration)> = disturbances
            .iter()
            .filter(|d| d.fault.instance == instance && matches!(d.fault.service, Service::Backend | Service::Stack))
            .map(|d| (d.from, d.until))
            .collect();
        for breaker in Breaker::ALL {
            let judge = BreakerJudge {
                instance,
                breaker,
                thresholds: rules.thresholds(breaker),
                resolution: rules.resolution,
                traffic: &traffic,
                restarts: &restarts,
            };
            found.extend(judge.judge(&observations));
        }
    }
    found
}

/// The [`Observer`]'s judgements of every instance's breaker readings, in the order they were
/// asked for, each at the reading that showed it.
fn observed(history: &History, rules: &Rules) -> Vec<Violation> {
    // The observer takes instants: any origin will do, the history's times are offsets from it.
    let origin = std::time::Instant::now();
    let mut found = Vec::new();
    for instance in history.instances() {
        let mut observer = Observer::new(rules.time_scale);
        // Readings that overlap in time sampled in an unknown order: only those that start after
        // the last one fed has completed are fed, as a scenario's sequential polls would be.
        let mut fed_until = None;
        for op in history.health_of(instance) {
            if fed_until.is_some_and(|until| op.invoked < until) {
                continue;
            }
            let OpKind::Health { overall, breakers } = &op.kind else {
                continue;
            };
            let Some(breakers) = as_detailed_breakers(breakers) else {
                continue;
            };
            let detailed = Detailed {
                status: *overall,
                timestamp: String::new(),
                uptime: None,
                services: None,
                circuit_breakers: Some(breakers),
                error: None,
                http_code: None,
            };
            observer.detailed(origin + op.invoked, origin + op.completed, instance, &detailed);
            fed_until = Some(op.completed);
            found.extend(observer.judged.drain(..).map(|finding| Violation {
                checker: Checker::LegalBreakers,
                at: op.invoked,
                instance: instance.to_string(),
                message: finding.message,
                defect: finding.defect,
            }));
        }
    }
    found
}

/// The four breakers as a detailed health answer carries them; `None` unless all four were seen.
fn as_detailed_breakers(seen: &[BreakerSeen]) -> Option<Breakers> {
    let stats = |breaker| {
        seen.iter().find(|b| b.breaker == breaker).map(|b| BreakerStats {
            state: b.state,
            failures: b.failures,
            reject_count: 0,
        })
    };
    Some(Breakers {
        opa: stats(Breaker::Opa)?,
        keycloak: stats(Breaker::Keycloak)?,
        mongodb: stats(Breaker::Mongodb)?,
        kas: stats(Breaker::Kas)?,
    })
}

/// One observation of one breaker.
#[derive(Clone, Copy)]
struct Seen<'a> {
    op: &'a Op,
    breaker: BreakerSeen,
}

struct BreakerJudge<'a> {
    instance: &'a str,
    breaker: Breaker,
    thresholds: Thresholds,
    resolution: Duration,
    traffic: &'a [&'a Op],
    restarts: &'a [(Duration, Duration)],
}

impl<'a> BreakerJudge<'a> {
    fn judge(&self, observations: &[&'a Op]) -> Vec<Violation> {
        use BreakerState::{Closed, HalfOpen, Open};
        let seen: Vec<Seen> = observations
            .iter()
            .filter_map(|op| op.breaker(self.breaker).map(|breaker| Seen { op, breaker }))
            .collect();
        let mut found = Vec::new();
        for pair in seen.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            // Across a restart every breaker starts CLOSED again; when two observations overlap,
            // which one sampled first is unknown. Judge neither, and forget the spell.
            if self.restarted_between(before, after) || after.op.invoked < before.op.completed {
                continue;
            }
            match (before.breaker.state, after.breaker.state) {
                // Not judged by the count an OPEN reading shows: a call in flight when it opened
                // still lands, and a success resets DIVE's count to 0 even while OPEN. The
                // Observer judges the threshold from the CLOSED readings instead.
                (Closed, HalfOpen) => found.extend(self.half_opened_from_closed(before, after)),
                (Open, HalfOpen) => found.extend(self.half_opened_without_a_call(before, after)),
                (Open, Closed) => {
                    // Every closing success came after the OPEN observation, the call that moved
                    // it to HALF_OPEN included.
                    found.extend(self.closed_without_successes(before, after, self.thresholds.successes_to_close));
                }
                // At the HALF_OPEN observation up to successes_to_close - 1 successes may already
                // have counted, so only one more is certain to be needed.
                (HalfOpen, Closed) => found.extend(self.closed_without_successes(before, after, 1)),
                _ => {}
            }
        }
        found
    }

    /// The longest time that can separate the moments two observations sampled, plus a tick.
    fn longest_between(&self, before: Seen, after: Seen) -> Duration {
        after.op.completed.saturating_sub(before.op.invoked) + self.resolution
    }

    fn restarted_between(&self, before: Seen, after: Seen) -> bool {
        self.restarts
            .iter()
            .any(|&(from, until)| from <= after.op.completed && before.op.invoked <= until)
    }

    fn violation(&self, at: &Op, message: String) -> Violation {
        Violation {
            checker: Checker::LegalBreakers,
            at: at.invoked,
            instance: self.instance.to_string(),
            message: format!("{} {} breaker {message}", self.instance, self.breaker),
            defect: None,
        }
    }

    /// HALF_OPEN is reached only from OPEN, after the open timeout.
    fn half_opened_from_closed(&self, before: Seen, after: Seen) -> Option<Violation> {
        let between = self.longest_between(before, after);
        (between < self.thresholds.open_timeout).then(|| {
            let message = format!(
                "went CLOSED -> HALF_OPEN within {}; DIVE reaches HALF_OPEN only from OPEN, after its open timeout of {}",
                secs(between),
                secs(self.thresholds.open_timeout)
            );
            self.violation(after.op, message)
        })
    }

    /// OPEN -> HALF_OPEN happens inside a call, whatever that call's outcome.
    fn half_opened_without_a_call(&self, before: Seen, after: Seen) -> Option<Violation> {
        (self.calls_between(before, after, |_| true) == 0).then(|| {
            let message = format!(
                "went OPEN -> HALF_OPEN with no request between the observations at {} and {}; \
                 DIVE's breakers move only inside a call",
                secs(before.op.invoked),
                secs(after.op.invoked)
            );
            self.violation(after.op, message)
        })
    }

    fn closed_without_successes(&self, before: Seen, after: Seen, needed: u64) -> Option<Violation> {
        let could_succeed = self.calls_between(before, after, |op| self.may_succeed(op));
        (could_succeed < needed).then(|| {
            let message = format!(
                "went {} -> CLOSED with {could_succeed} {} between the observations at {} and {}; \
                 DIVE closes it only after {} successful calls",
                before.breaker.state,
                self.success_kind(),
                secs(before.op.invoked),
                secs(after.op.invoked),
                self.thresholds.successes_to_close
            );
            self.violation(after.op, message)
        })
    }

    /// Requests that may have been in progress between the two samples and pass `counts`.
    fn calls_between(&self, before: Seen, after: Seen, counts: impl Fn(&Op) -> bool) -> u64 {
        let between = |op: &&&Op| op.overlaps(before.op.invoked, after.op.completed);
        self.traffic.iter().filter(between).filter(|op| counts(op)).count() as u64
    }

    /// Whether `op` may have been a success through this breaker. The opa breaker is driven by
    /// resource requests that OPA decided (not the fallback, not the decision cache); the suite
    /// cannot tell which requests call the other three breakers, so any request may have.
    fn may_succeed(&self, op: &Op) -> bool {
        match (&op.kind, self.breaker) {
            (OpKind::Request { outcome, .. }, Breaker::Opa) => matches!(
                outcome,
                RequestOutcome::Decided {
                    fallback: false,
                    cached: false,
                    ..
                }
            ),
            (OpKind::Revocation { outcome, .. }, Breaker::Opa) => *outcome == RevocationOutcome::Accepted,
            _ => true,
        }
    }

    fn success_kind(&self) -> &'static str {
        match self.breaker {
            Breaker::Opa => "requests decided by OPA",
            _ => "requests of any kind",
        }
    }
}
