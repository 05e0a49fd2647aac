//! Checkers: pure judgements of a chaos run's history against DIVE's contract (legal breaker
//! transitions, right answers, recovery). Each takes the history, the schedule that ran and the
//! rules, and returns violations in DIVE's terms.
//!
//! Observations are samples: a health answer shows the state at some moment between its
//! invocation and its completion, and anything may have happened between two answers. So a
//! checker flags only what no run consistent with the recorded times could explain, and allows
//! one polling tick (`Rules::resolution`) on top, for the clocks of recorder and target.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::history::{BreakerSeen, History, Op, OpKind, RequestOutcome, RevocationOutcome};
use super::schedule::{Schedule, ScheduledFault};
use crate::vocab::breaker::BreakerConfig;
use crate::vocab::fault::Service;
use crate::vocab::health::{Breaker, BreakerState, Overall};
use crate::vocab::units::secs;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checker {
    LegalBreakers,
    RightAnswers,
    Recovery,
}

impl fmt::Display for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Checker::LegalBreakers => "legal breakers",
            Checker::RightAnswers => "right answers",
            Checker::Recovery => "recovery",
        })
    }
}

/// Something a checker is certain DIVE got wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub checker: Checker,
    /// When it was observed, from the start of the schedule.
    pub at: Duration,
    pub instance: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.checker, secs(self.at), self.message)
    }
}

/// One breaker's thresholds (contract section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    pub failures_to_open: u64,
    pub open_timeout: Duration,
    pub successes_to_close: u64,
}

impl Thresholds {
    /// DIVE's thresholds, with the open timeout multiplied by `time_scale`.
    pub fn dive(breaker: Breaker, time_scale: f64) -> Thresholds {
        let dive = BreakerConfig::dive(breaker, time_scale);
        Thresholds {
            failures_to_open: dive.failure_threshold.into(),
            open_timeout: dive.timeout,
            successes_to_close: dive.success_threshold.into(),
        }
    }
}

/// What the checkers hold DIVE to, and how much slack they allow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rules {
    pub opa: Thresholds,
    pub keycloak: Thresholds,
    pub mongodb: Thresholds,
    pub kas: Thresholds,
    /// The polling tick: one tick of slack on every judgement of time.
    pub resolution: Duration,
    /// How long a restored service may still disturb answers (reconnecting pools, requests in
    /// flight), on top of the open timeout of the breaker that guards it.
    pub grace: Duration,
    /// From the last restore to steady state on every instance.
    pub recovery_budget: Duration,
    /// How long a revoked token may still be accepted after its revocation.
    pub revocation_window: Duration,
}

impl Rules {
    /// DIVE's timers and the plan's budgets at `time_scale`: recovery within 90 s (the plan's
    /// 4.2 budget, the longest open timeout plus 30 s to drive the closing successes), revocation
    /// within 5 s (5.1), and a grace of 10 s after a restore.
    pub fn dive(time_scale: f64, resolution: Duration) -> Rules {
        let scaled = |s: u64| Duration::from_secs(s).mul_f64(time_scale);
        Rules {
            opa: Thresholds::dive(Breaker::Opa, time_scale),
            keycloak: Thresholds::dive(Breaker::Keycloak, time_scale),
            mongodb: Thresholds::dive(Breaker::Mongodb, time_scale),
            kas: Thresholds::dive(Breaker::Kas, time_scale),
            resolution,
            grace: scaled(10),
            recovery_budget: scaled(90),
            revocation_window: scaled(5),
        }
    }

    pub fn thresholds(&self, breaker: Breaker) -> Thresholds {
        match breaker {
            Breaker::Opa => self.opa,
            Breaker::Keycloak => self.keycloak,
            Breaker::Mongodb => self.mongodb,
            Breaker::Kas => self.kas,
        }
    }

    /// How long after its restore a fault may still disturb answers: the grace period, plus the
    /// open timeout of the breaker guarding the service (an OPEN breaker keeps rejecting until
    /// then, by design).
    fn settle(&self, service: Service) -> Duration {
        let guarded_by = match service {
            Service::Opa => Some(Breaker::Opa),
            Service::Keycloak => Some(Breaker::Keycloak),
            Service::Mongodb => Some(Breaker::Mongodb),
            Service::Kas => Some(Breaker::Kas),
            _ => None,
        };
        self.grace + guarded_by.map_or(Duration::ZERO, |b| self.thresholds(b).open_timeout)
    }
}

/// Every checker, violations in order of time.
pub fn check_all(history: &History, schedule: &Schedule, rules: &Rules) -> Vec<Violation> {
    let mut found = legal_breakers(history, schedule, rules);
    found.extend(right_answers(history, schedule, rules));
    found.extend(recovery(history, schedule, rules));
    found.sort_by_key(|v| v.at);
    found
}

/// When a fault may have disturbed answers: from the earlier of its planned and recorded start,
/// to the later of its planned and recorded restore plus its settling time.
struct Disturbance<'a> {
    fault: &'a ScheduledFault,
    from: Duration,
    until: Duration,
}

impl Disturbance<'_> {
    /// The blacklist store is the hub's, shared by every instance.
    fn reaches(&self, instance: &str) -> bool {
        self.fault.instance == instance || self.fault.service == Service::RevocationStore
    }

    fn during(&self, op: &Op) -> bool {
        op.overlaps(self.from, self.until)
    }
}

fn disturbances<'a>(history: &History, schedule: &'a Schedule, rules: &Rules) -> Vec<Disturbance<'a>> {
    let disturbance = |fault: &'a ScheduledFault| {
        let applied = history.applied(fault.id).map(|op| op.invoked);
        let restored = history.restored(fault.id).map(|op| op.completed);
        let restored_at = match (applied, restored) {
            // Applied and never restored: the run was cut short, so it lasted to the end.
            (Some(_), None) => Duration::MAX,
            (_, restored) => restored.map_or(fault.end(), |t| t.max(fault.end())),
        };
        Disturbance {
            fault,
            from: applied.map_or(fault.start, |t| t.min(fault.start)),
            until: restored_at.saturating_add(rules.settle(fault.service)),
        }
    };
    schedule.faults.iter().map(disturbance).collect()
}

/// The services whose loss may make DIVE answer 5xx: OPA and MongoDB (contract section 2), and
/// the backend itself.
fn critical(service: Service) -> bool {
    matches!(
        service,
        Service::Opa | Service::Mongodb | Service::Backend | Service::Stack
    )
}

fn listed(faults: &[&ScheduledFault]) -> String {
    faults.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

// ---------------------------------------------------------------------------------------------
// Legal breakers

/// Breaker transitions that DIVE's state machine cannot make, per instance and breaker, judged
/// between consecutive health observations.
pub fn legal_breakers(history: &History, schedule: &Schedule, rules: &Rules) -> Vec<Violation> {
    let disturbances = disturbances(history, schedule, rules);
    let mut found = Vec::new();
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

/// One observation of one breaker.
#[derive(Clone, Copy)]
struct Seen<'a> {
    op: &'a Op,
    breaker: BreakerSeen,
}

/// An OPEN spell: the breaker cannot have opened before `earliest_start` (it was seen in another
/// state then), and was first seen OPEN by `first_seen`.
struct Spell<'a> {
    earliest_start: Duration,
    first_seen: &'a Op,
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
        let mut spell: Option<Spell> = None;
        for pair in seen.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            // Across a restart every breaker starts CLOSED again; when two observations overlap,
            // which one sampled first is unknown. Judge neither, and forget the spell.
            if self.restarted_between(before, after) || after.op.invoked < before.op.completed {
                spell = None;
                continue;
            }
            match (before.breaker.state, after.breaker.state) {
                (Closed | HalfOpen, Open) => {
                    if before.breaker.state == Closed {
                        found.extend(self.opened_below_threshold(before, after));
                    }
                    spell = Some(Spell {
                        earliest_start: before.op.invoked,
                        first_seen: after.op,
                    });
                }
                (Closed, HalfOpen) => found.extend(self.half_opened_from_closed(before, after)),
                (Open, HalfOpen) => {
                    found.extend(spell.take().and_then(|spell| self.left_open_early(&spell, after)));
                    found.extend(self.half_opened_without_a_call(before, after));
                }
                (Open, Closed) => {
                    found.extend(spell.take().and_then(|spell| self.left_open_early(&spell, after)));
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
        }
    }

    /// CLOSED opens at its threshold, so OPEN with fewer failures means it went OPEN -> HALF_OPEN
    /// -> OPEN (one failure in HALF_OPEN reopens it): impossible in less than the open timeout.
    fn opened_below_threshold(&self, before: Seen, after: Seen) -> Option<Violation> {
        let threshold = self.thresholds.failures_to_open;
        let too_soon = self.longest_between(before, after) < self.thresholds.open_timeout;
        (after.breaker.failures < threshold && too_soon).then(|| {
            let message = format!(
                "went CLOSED -> OPEN with failures={}; DIVE opens it only at {threshold} consecutive failures",
                after.breaker.failures
            );
            self.violation(after.op, message)
        })
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

    /// DIVE leaves OPEN only on a call `open_timeout` after the last failure, and the last
    /// failure is at or after the opening: so never sooner than the timeout after the opening.
    fn left_open_early(&self, spell: &Spell, after: Seen) -> Option<Violation> {
        let longest_open = after.op.completed.saturating_sub(spell.earliest_start);
        (longest_open + self.resolution < self.thresholds.open_timeout).then(|| {
            let message = format!(
                "went OPEN -> {} {} after it was first seen OPEN (at most {} after it opened); DIVE's open timeout is {}",
                after.breaker.state,
                secs(after.op.invoked.saturating_sub(spell.first_seen.invoked)),
                secs(longest_open),
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

// ---------------------------------------------------------------------------------------------
// Right answers

/// Requests that failed while nothing they depend on was down, 5xx while only non-critical
/// services were down, and revoked tokens accepted outside DIVE's documented windows.
pub fn right_answers(history: &History, schedule: &Schedule, rules: &Rules) -> Vec<Violation> {
    let disturbances = disturbances(history, schedule, rules);
    let mut found: Vec<Violation> = history
        .ops
        .iter()
        .filter_map(|op| match &op.kind {
            OpKind::Request { resource, outcome } => wrong_answer(op, resource, *outcome, &disturbances),
            OpKind::Revocation {
                jti,
                revoked_at,
                outcome: RevocationOutcome::Accepted,
            } => revoked_token_accepted(op, jti, *revoked_at, &disturbances, rules),
            _ => None,
        })
        .collect();
    found.sort_by_key(|v| v.at);
    found
}

fn wrong_answer(op: &Op, resource: &str, outcome: RequestOutcome, disturbances: &[Disturbance]) -> Option<Violation> {
    if !outcome.failed() {
        return None;
    }
    let faults: Vec<&ScheduledFault> = disturbances
        .iter()
        .filter(|d| d.reaches(&op.instance) && d.during(op))
        .map(|d| d.fault)
        .collect();
    let instance = &op.instance;
    let message = if faults.is_empty() {
        format!(
            "{instance} answered {outcome} for {resource} while every dependency was up; \
             no request for which every dependency is up may fail"
        )
    } else if matches!(outcome, RequestOutcome::ServerError(_)) && !faults.iter().any(|f| critical(f.service)) {
        format!(
            "{instance} answered {outcome} for {resource} while only non-critical services were down ({}); \
             DIVE answers no 5xx while only non-critical services are down",
            listed(&faults)
        )
    } else {
        return None;
    };
    Some(Violation {
        checker: Checker::RightAnswers,
        at: op.invoked,
        instance: instance.clone(),
        message,
    })
}

/// DIVE documents two windows in which a revoked token may pass: right after its revocation, and
/// while the revocation store is down (HEAD fails open). The store lives in one instance's stack
/// (the hub's, at v15a), and this checker does not know which, so any whole-stack fault counts.
fn revoked_token_accepted(
    op: &Op,
    jti: &str,
    revoked_at: Duration,
    disturbances: &[Disturbance],
    rules: &Rules,
) -> Option<Violation> {
    if op.invoked < revoked_at.saturating_add(rules.revocation_window) {
        return None;
    }
    let store_down = disturbances
        .iter()
        .any(|d| matches!(d.fault.service, Service::RevocationStore | Service::Stack) && d.during(op));
    if store_down {
        return None;
    }
    Some(Violation {
        checker: Checker::RightAnswers,
        at: op.invoked,
        instance: op.instance.clone(),
        message: format!(
            "{} accepted token {jti} {} after its revocation while the revocation store was up; \
             DIVE refuses a revoked token within {}",
            op.instance,
            secs(op.invoked.saturating_sub(revoked_at)),
            secs(rules.revocation_window)
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Recovery

/// How long one instance took to reach steady state after the last restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    pub instance: String,
    /// `None` when it was never seen steady.
    pub took: Option<Duration>,
    pub budget: Duration,
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.took {
            Some(took) => write!(
                f,
                "{} steady after {} (budget {})",
                self.instance,
                secs(took),
                secs(self.budget)
            ),
            None => write!(f, "{} never steady (budget {})", self.instance, secs(self.budget)),
        }
    }
}

/// When the last fault was restored: as recorded, or as planned when the history has no record.
fn last_restore(history: &History, schedule: &Schedule) -> Duration {
    let restored = |f: &ScheduledFault| history.restored(f.id).map_or(f.end(), |op| op.completed);
    schedule.faults.iter().map(restored).max().unwrap_or_default()
}

/// Steady state: healthy, and every breaker CLOSED.
fn steady(op: &Op) -> bool {
    match &op.kind {
        OpKind::Health { overall, breakers } => {
            *overall == Overall::Healthy
                && !breakers.is_empty()
                && breakers.iter().all(|b| b.state == BreakerState::Closed)
        }
        _ => false,
    }
}

fn instances_of<'a>(history: &'a History, schedule: &'a Schedule) -> Vec<&'a str> {
    let mut instances = history.instances();
    instances.extend(schedule.faults.iter().map(|f| f.instance.as_str()));
    instances.sort_unstable();
    instances.dedup();
    instances
}

/// Per instance, from the last restore to the first observation of steady state.
pub fn recovery_times(history: &History, schedule: &Schedule, rules: &Rules) -> Vec<Recovery> {
    let restored_at = last_restore(history, schedule);
    let took = |instance: &str| {
        history
            .health_of(instance)
            .into_iter()
            .find(|op| op.invoked >= restored_at && steady(op))
            .map(|op| op.completed.saturating_sub(restored_at))
    };
    instances_of(history, schedule)
        .into_iter()
        .map(|instance| Recovery {
            instance: instance.to_string(),
            took: took(instance),
            budget: rules.recovery_budget,
        })
        .collect()
}

/// Instances that were not seen steady within the recovery budget of the last restore.
pub fn recovery(history: &History, schedule: &Schedule, rules: &Rules) -> Vec<Violation> {
    let restored_at = last_restore(history, schedule);
    let late = |r: &Recovery| {
        let message = match r.took {
            Some(took) if took > r.budget + rules.resolution => format!(
                "{} was healthy with every breaker CLOSED only {} after the last restore; budget {}",
                r.instance,
                secs(took),
                secs(r.budget)
            ),
            Some(_) => return None,
            None => format!(
                "{} was never healthy with every breaker CLOSED after the last restore at {}; last seen: {}",
                r.instance,
                secs(restored_at),
                last_seen(history, &r.instance)
            ),
        };
        Some(Violation {
            checker: Checker::Recovery,
            at: restored_at + r.took.unwrap_or(r.budget),
            instance: r.instance.clone(),
            message,
        })
    };
    recovery_times(history, schedule, rules)
        .iter()
        .filter_map(late)
        .collect()
}

/// The last health observation of `instance`, in one line: `degraded, opa OPEN failures=5`.
fn last_seen(history: &History, instance: &str) -> String {
    let Some(OpKind::Health { overall, breakers }) = history.health_of(instance).last().map(|op| &op.kind) else {
        return "no health observation".to_string();
    };
    let mut parts = vec![overall.to_string()];
    parts.extend(
        breakers
            .iter()
            .filter(|b| b.state != BreakerState::Closed)
            .map(|b| format!("{} {} failures={}", b.breaker, b.state, b.failures)),
    );
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::chaos::history::BreakerSeen;
    use crate::scenario::chaos::schedule::Disruption;
    use crate::scenario::chaos::schedule::tests::{fault, schedule_of};

    /// At time scale 0.1: opa opens after 5 failures, stays OPEN 6.0 s, closes after 2 successes.
    fn rules() -> Rules {
        Rules::dive(0.1, Duration::from_millis(100))
    }

    fn s(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    /// A health observation of `instance` taking 50 ms, every breaker but opa CLOSED.
    fn health(history: &mut History, instance: &str, at: f64, overall: Overall, opa: (BreakerState, u64)) {
        let breakers = Breaker::ALL
            .into_iter()
            .map(|breaker| match breaker {
                Breaker::Opa => BreakerSeen {
                    breaker,
                    state: opa.0,
                    failures: opa.1,
                },
                _ => BreakerSeen {
                    breaker,
                    state: BreakerState::Closed,
                    failures: 0,
                },
            })
            .collect();
        history.record(instance, s(at), s(at + 0.05), OpKind::Health { overall, breakers });
    }

    fn request(history: &mut History, instance: &str, at: f64, outcome: RequestOutcome) {
        let resource = format!("doc-{instance}-1");
        history.record(instance, s(at), s(at + 0.02), OpKind::Request { resource, outcome });
    }

    const DECIDED: RequestOutcome = RequestOutcome::Decided {
        status: 200,
        fallback: false,
        cached: false,
    };
    const CLOSED: (BreakerState, u64) = (BreakerState::Closed, 0);
    const OPEN: (BreakerState, u64) = (BreakerState::Open, 5);
    const HALF_OPEN: (BreakerState, u64) = (BreakerState::HalfOpen, 0);

    /// OPA down from 0.5 s to 3 s on USA; the breaker opens at 1 s, a call half-opens it just
    /// before `half_open`, and a call answered `closing` comes before it is seen CLOSED.
    fn opa_cycle_closed_by(half_open: f64, closing: RequestOutcome) -> (History, Schedule) {
        let schedule = schedule_of(vec![fault(0, "USA", Service::Opa, Disruption::Stop, 0.5, 2.5)]);
        let mut history = History::new();
        health(&mut history, "USA", 1.0, Overall::Unhealthy, CLOSED);
        health(&mut history, "USA", 1.1, Overall::Unhealthy, OPEN);
        request(&mut history, "USA", half_open - 0.1, DECIDED);
        health(&mut history, "USA", half_open, Overall::Healthy, HALF_OPEN);
        request(&mut history, "USA", half_open + 0.05, closing);
        health(&mut history, "USA", half_open + 0.1, Overall::Healthy, CLOSED);
        (history, schedule)
    }

    fn opa_cycle(half_open: f64) -> (History, Schedule) {
        opa_cycle_closed_by(half_open, DECIDED)
    }

    #[test]
    fn a_breaker_that_leaves_open_before_its_timeout_is_illegal() {
        let (history, schedule) = opa_cycle(2.3);
        let found = legal_breakers(&history, &schedule, &rules());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].message,
            "USA opa breaker went OPEN -> HALF_OPEN 1.2 s after it was first seen OPEN (at most 1.4 s after it \
             opened); DIVE's open timeout is 6.0 s"
        );
    }

    #[test]
    fn sampling_slack_lets_a_breaker_leave_open_one_tick_early_by_the_samples() {
        // Seen OPEN 5.8 s before HALF_OPEN, but it may have opened right after the 1.0 s sample:
        // 5.95 s, plus one tick of slack, reaches the 6.0 s timeout.
        let (history, schedule) = opa_cycle(6.9);
        assert_eq!(legal_breakers(&history, &schedule, &rules()), []);
        let (history, schedule) = opa_cycle(6.7);
        assert_eq!(legal_breakers(&history, &schedule, &rules()).len(), 1);
    }

    #[test]
    fn closing_without_successful_calls_is_illegal() {
        let (mut history, schedule) = opa_cycle(7.5);
        history.ops.retain(|op| !matches!(op.kind, OpKind::Request { .. }));
        request(
            &mut history,
            "USA",
            7.52,
            RequestOutcome::Decided {
                status: 200,
                fallback: true,
                cached: false,
            },
        );
        let found = legal_breakers(&history, &schedule, &rules());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .message
                .starts_with("USA opa breaker went HALF_OPEN -> CLOSED with 0 requests decided by OPA"),
            "{}",
            found[0].message
        );
        assert!(
            found[0].message.ends_with("after 2 successful calls"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn opening_below_the_failure_threshold_or_half_opening_from_closed_is_illegal() {
        let schedule = schedule_of(vec![]);
        let mut history = History::new();
        health(&mut history, "FRA", 1.0, Overall::Healthy, CLOSED);
        health(&mut history, "FRA", 1.1, Overall::Healthy, (BreakerState::Open, 2));
        health(&mut history, "FRA", 20.0, Overall::Healthy, CLOSED);
        health(&mut history, "FRA", 20.1, Overall::Healthy, HALF_OPEN);
        let found = legal_breakers(&history, &schedule, &rules());
        let messages: Vec<&str> = found.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(
            messages[0],
            "FRA opa breaker went CLOSED -> OPEN with failures=2; DIVE opens it only at 5 consecutive failures"
        );
        // The OPEN -> CLOSED between them (at 1.1 s and 20 s) had no successful call either.
        assert!(messages[1].starts_with("FRA opa breaker went OPEN -> CLOSED with 0 requests decided by OPA"));
        assert!(messages[2].starts_with("FRA opa breaker went CLOSED -> HALF_OPEN within 250 ms"));
        assert_eq!(found.len(), 3, "{messages:?}");
    }

    #[test]
    fn a_reopened_breaker_may_show_few_failures_when_samples_are_far_apart() {
        // CLOSED -> OPEN (5) -> 6 s -> HALF_OPEN -> one failure -> OPEN (1), all between two samples.
        let mut history = History::new();
        health(&mut history, "FRA", 1.0, Overall::Healthy, CLOSED);
        health(&mut history, "FRA", 8.0, Overall::Healthy, (BreakerState::Open, 1));
        assert_eq!(legal_breakers(&history, &schedule_of(vec![]), &rules()), []);
    }

    #[test]
    fn a_breaker_moves_only_inside_a_call() {
        let mut history = History::new();
        health(&mut history, "DEU", 1.0, Overall::Healthy, OPEN);
        health(&mut history, "DEU", 9.0, Overall::Healthy, HALF_OPEN);
        let found = legal_breakers(&history, &schedule_of(vec![]), &rules());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].message,
            "DEU opa breaker went OPEN -> HALF_OPEN with no request between the observations at 1.0 s and 9.0 s; \
             DIVE's breakers move only inside a call"
        );
    }

    #[test]
    fn observations_that_overlap_in_time_are_not_ordered() {
        // A slow observation (1 s to 3 s, seeing OPEN late) and a quick one inside it (CLOSED).
        let mut history = History::new();
        health(&mut history, "USA", 0.5, Overall::Healthy, CLOSED);
        health(&mut history, "USA", 1.0, Overall::Healthy, OPEN);
        history.ops[1].completed = s(3.0);
        health(&mut history, "USA", 1.1, Overall::Healthy, CLOSED);
        assert_eq!(legal_breakers(&history, &schedule_of(vec![]), &rules()), []);
    }

    #[test]
    fn a_backend_restart_resets_breakers_legally() {
        let schedule = schedule_of(vec![fault(0, "USA", Service::Backend, Disruption::Kill, 1.5, 1.0)]);
        let mut history = History::new();
        health(&mut history, "USA", 1.0, Overall::Unhealthy, OPEN);
        health(&mut history, "USA", 3.0, Overall::Healthy, CLOSED);
        assert_eq!(legal_breakers(&history, &schedule, &rules()), []);
    }

    #[test]
    fn a_failure_while_every_dependency_is_up_is_wrong() {
        let schedule = schedule_of(vec![fault(0, "USA", Service::Mongodb, Disruption::Stop, 1.0, 2.0)]);
        let mut history = History::new();
        request(&mut history, "FRA", 2.0, RequestOutcome::ServerError(500));
        request(&mut history, "USA", 2.0, RequestOutcome::ServerError(500));
        // mongodb's settling time: 1.0 s of grace plus its 6.0 s open timeout after the restore.
        request(&mut history, "USA", 9.9, RequestOutcome::Timeout);
        request(&mut history, "USA", 10.1, RequestOutcome::Timeout);
        let found = right_answers(&history, &schedule, &rules());
        let at: Vec<(&str, Duration)> = found.iter().map(|v| (v.instance.as_str(), v.at)).collect();
        assert_eq!(at, [("FRA", s(2.0)), ("USA", s(10.1))]);
        assert_eq!(
            found[0].message,
            "FRA answered 500 for doc-FRA-1 while every dependency was up; \
             no request for which every dependency is up may fail"
        );
    }

    #[test]
    fn a_5xx_while_only_non_critical_services_are_down_is_wrong() {
        let schedule = schedule_of(vec![
            fault(0, "USA", Service::Keycloak, Disruption::Pause, 1.0, 2.0),
            fault(1, "FRA", Service::RevocationStore, Disruption::Stop, 1.0, 2.0),
            fault(2, "DEU", Service::Opa, Disruption::Stop, 1.0, 2.0),
        ]);
        let mut history = History::new();
        request(&mut history, "USA", 2.0, RequestOutcome::ServerError(503));
        request(&mut history, "USA", 2.5, RequestOutcome::Timeout);
        request(&mut history, "DEU", 2.0, RequestOutcome::ServerError(500));
        let found = right_answers(&history, &schedule, &rules());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].message,
            "USA answered 503 for doc-USA-1 while only non-critical services were down \
             (#0 pause keycloak on USA from 1.0 s to 3.0 s, #1 stop revocation store on FRA from 1.0 s to 3.0 s); \
             DIVE answers no 5xx while only non-critical services are down"
        );
    }

    #[test]
    fn a_revoked_token_passes_only_in_dive_s_windows() {
        let schedule = schedule_of(vec![fault(
            0,
            "USA",
            Service::RevocationStore,
            Disruption::Stop,
            10.0,
            2.0,
        )]);
        let mut history = History::new();
        let mut probe = |instance: &str, at: f64, outcome| {
            let kind = OpKind::Revocation {
                jti: "jti-7".into(),
                revoked_at: s(1.0),
                outcome,
            };
            history.record(instance, s(at), s(at + 0.02), kind);
        };
        probe("FRA", 1.2, RevocationOutcome::Accepted); // still propagating
        probe("FRA", 11.0, RevocationOutcome::Accepted); // the shared store is down
        probe("DEU", 5.0, RevocationOutcome::Refused);
        probe("DEU", 5.5, RevocationOutcome::Accepted);
        let found = right_answers(&history, &schedule, &rules());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].message,
            "DEU accepted token jti-7 4.5 s after its revocation while the revocation store was up; \
             DIVE refuses a revoked token within 500 ms"
        );
    }

    #[test]
    fn recovery_is_measured_from_the_last_restore_against_its_budget() {
        let schedule = schedule_of(vec![
            fault(0, "USA", Service::Opa, Disruption::Stop, 1.0, 2.0),
            fault(1, "FRA", Service::Opa, Disruption::Stop, 1.0, 2.0),
            fault(2, "DEU", Service::Opa, Disruption::Stop, 1.0, 2.0),
        ]);
        let mut history = History::new();
        history.record("FRA", s(3.0), s(4.0), OpKind::FaultRestored { fault_id: 1 });
        health(&mut history, "USA", 3.5, Overall::Healthy, CLOSED); // before the last restore
        health(&mut history, "USA", 6.95, Overall::Healthy, CLOSED);
        health(&mut history, "FRA", 10.0, Overall::Healthy, OPEN);
        health(&mut history, "FRA", 15.0, Overall::Healthy, CLOSED);
        health(&mut history, "DEU", 10.0, Overall::Degraded, OPEN);
        let took: Vec<String> = recovery_times(&history, &schedule, &rules())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            took,
            [
                "DEU never steady (budget 9.0 s)",
                "FRA steady after 11.1 s (budget 9.0 s)",
                "USA steady after 3.0 s (budget 9.0 s)"
            ]
        );
        let found = recovery(&history, &schedule, &rules());
        let messages: Vec<&str> = found.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "DEU was never healthy with every breaker CLOSED after the last restore at 4.0 s; \
                 last seen: degraded, opa OPEN failures=5",
                "FRA was healthy with every breaker CLOSED only 11.1 s after the last restore; budget 9.0 s"
            ]
        );
    }

    #[test]
    fn a_legal_run_has_no_violation() {
        let (mut history, schedule) = opa_cycle(7.2);
        request(
            &mut history,
            "USA",
            2.0,
            RequestOutcome::Decided {
                status: 200,
                fallback: true,
                cached: false,
            },
        );
        health(&mut history, "USA", 8.0, Overall::Healthy, CLOSED);
        assert_eq!(check_all(&history, &schedule, &rules()), []);
    }
}
