//! Checkers: pure judgements of a chaos run's history against DIVE's contract (legal breaker
//! transitions, right answers, recovery). Each takes the history, the schedule that ran and the
//! rules, and returns violations in DIVE's terms.
//!
//! Observations are samples: a health answer shows the state at some moment between its
//! invocation and its completion, and anything may have happened between two answers. So a
//! checker flags only what no run consistent with the recorded times could explain, and allows
//! one polling tick (`Rules::resolution`) on top, for the clocks of recorder and target.

//!
//! One file per checker: [`breakers`] (legal transitions), [`answers`] (right answers),
//! [`recovery`] (steady state within the budget); this one holds what they share: the rules, the
//! violations, and when each fault may have disturbed what.

mod answers;
mod breakers;
mod recovery;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::history::{History, Op};
use super::schedule::{Schedule, ScheduledFault};
use crate::vocab::breaker::BreakerConfig;
use crate::vocab::fault::Service;
use crate::vocab::finding::Defect;
use crate::vocab::health::Breaker;
use crate::vocab::slo::budget;
use crate::vocab::units::secs;

pub use answers::right_answers;
pub use breakers::legal_breakers;
pub use recovery::{Recovery, recovery, recovery_times};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Checker {
    LegalBreakers,
    RightAnswers,
    Recovery,
}

impl Checker {
    /// The requirement the checker judges.
    pub fn requirement(self) -> &'static str {
        match self {
            Checker::LegalBreakers => "4.4-breakers",
            Checker::RightAnswers => "4.4-answers",
            Checker::Recovery => "4.4-recovery",
        }
    }
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
    /// The defect the violation's own evidence names, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defect: Option<Defect>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}: {}", self.checker, secs(self.at), self.message)?;
        match self.defect {
            Some(defect) => write!(f, " [{defect}]"),
            None => Ok(()),
        }
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
    /// DIVE's timers on the target, relative to DIVE's own.
    pub time_scale: f64,
    pub opa: Thresholds,
    pub keycloak: Thresholds,
    pub mongodb: Thresholds,
    pub kas: Thresholds,
    /// The polling tick: one tick of slack on every judgement of time.
    pub resolution: Duration,
    /// How long a restored service may still disturb answers (reconnecting pools, requests in
    /// flight), on top of the open timeout of the breaker that guards it.
    pub grace: Duration,
    /// Driving a breaker's closing successes at the harness's pace, and one health poll to see it.
    pub closing: Duration,
    /// How long the hub may take to hear a restarted spoke again: one heartbeat window.
    pub heartbeat: Duration,
    /// From the last restore to steady state on every instance, whatever the schedule: the
    /// longest [`Rules::recovery_budget`].
    pub longest_recovery: Duration,
    /// How long a revoked token may still be accepted after its revocation.
    pub revocation_window: Duration,
}

impl Rules {
    /// DIVE's timers and the plan's budgets at `time_scale` (the requirement table's derived
    /// budgets `4.4-answers grace` and `4.4-recovery budget`, and 5.1's 5 s revocation).
    pub fn dive(time_scale: f64, resolution: Duration) -> Rules {
        let scaled = |s: u64| Duration::from_secs(s).mul_f64(time_scale);
        Rules {
            time_scale,
            opa: Thresholds::dive(Breaker::Opa, time_scale),
            keycloak: Thresholds::dive(Breaker::Keycloak, time_scale),
            mongodb: Thresholds::dive(Breaker::Mongodb, time_scale),
            kas: Thresholds::dive(Breaker::Kas, time_scale),
            resolution,
            grace: budget("4.4-answers grace", time_scale).limit,
            closing: scaled(5),
            heartbeat: scaled(30),
            longest_recovery: budget("4.4-recovery budget", time_scale).limit,
            revocation_window: budget("5.1-revoke", time_scale).limit,
        }
    }

    /// From the last restore to steady state, for what `schedule` faults: the grace after a
    /// restore, the open timeout of the slowest breaker in front of a faulted service, its closing
    /// successes, and a heartbeat window when a backend went down. A schedule of Keycloak and
    /// KAS faults recovers within their 30 s timeouts, not OPA's 60 s.
    pub fn recovery_budget(&self, schedule: &Schedule) -> Duration {
        let slowest = schedule
            .faults
            .iter()
            .filter_map(|f| guarded_by(f.service))
            .map(|b| self.thresholds(b).open_timeout)
            .max()
            .unwrap_or_default();
        let backend_down = schedule
            .faults
            .iter()
            .any(|f| matches!(f.service, Service::Backend | Service::Stack));
        let heartbeat = if backend_down { self.heartbeat } else { Duration::ZERO };
        (self.grace + slowest + self.closing + heartbeat).min(self.longest_recovery)
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
        self.grace + guarded_by(service).map_or(Duration::ZERO, |b| self.thresholds(b).open_timeout)
    }
}

/// The breaker in front of a service, if any.
pub fn guarded_by(service: Service) -> Option<Breaker> {
    match service {
        Service::Opa => Some(Breaker::Opa),
        Service::Keycloak => Some(Breaker::Keycloak),
        Service::Mongodb => Some(Breaker::Mongodb),
        Service::Kas => Some(Breaker::Kas),
        _ => None,
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
pub(super) struct Disturbance<'a> {
    pub(super) fault: &'a ScheduledFault,
    pub(super) from: Duration,
    pub(super) until: Duration,
}

impl Disturbance<'_> {
    /// The blacklist store is the hub's, shared by every instance.
    pub(super) fn reaches(&self, instance: &str) -> bool {
        self.fault.instance == instance || self.fault.service == Service::RevocationStore
    }

    pub(super) fn during(&self, op: &Op) -> bool {
        op.overlaps(self.from, self.until)
    }
}

pub(super) fn disturbances<'a>(history: &History, schedule: &'a Schedule, rules: &Rules) -> Vec<Disturbance<'a>> {
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
pub(super) fn critical(service: Service) -> bool {
    matches!(
        service,
        Service::Opa | Service::Mongodb | Service::Backend | Service::Stack
    )
}

pub(super) fn listed(faults: &[&ScheduledFault]) -> String {
    faults.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
