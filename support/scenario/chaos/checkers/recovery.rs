//! Recovery: after the last restore, every instance is seen in steady state (healthy, every
//! breaker CLOSED, and on the hub every spoke listed healthy) within the budget derived from
//! DIVE's timers. An instance that does not get there is diagnosed from its own readings: a
//! breaker that stays OPEN while calls keep arriving long past its open timeout is one DIVE's state
//! machine cannot have, and when it was seen OPEN beside another OPEN breaker, that is R11.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Checker, Rules, Violation};
use crate::scenario::chaos::history::{History, Op, OpKind};
use crate::scenario::chaos::schedule::{Schedule, ScheduledFault};
use crate::vocab::finding::Defect;
use crate::vocab::health::{Breaker, BreakerState, Overall};
use crate::vocab::units::secs;

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

/// The hub lists no spoke unhealthy.
fn spokes_healthy(op: &Op) -> bool {
    matches!(&op.kind, OpKind::Spokes { unhealthy: Some(list) } if list.is_empty())
}

/// Per instance, from the last restore to the first observation of steady state (on the hub, to
/// the later of that and the first list of spokes with none unhealthy).
pub fn recovery_times(history: &History, schedule: &Schedule, rules: &Rules) -> Vec<Recovery> {
    let restored_at = last_restore(history, schedule);
    let first = |ops: Vec<&Op>, ok: fn(&Op) -> bool| {
        ops.into_iter()
            .find(|op| op.invoked >= restored_at && ok(op))
            .map(|op| op.completed.saturating_sub(restored_at))
    };
    let took = |instance: &str| {
        let health = first(history.health_of(instance), steady)?;
        let lists = history.spokes_of(instance);
        if lists.is_empty() {
            return Some(health);
        }
        Some(health.max(first(lists, spokes_healthy)?))
    };
    instances_of(history, schedule)
        .into_iter()
        .map(|instance| Recovery {
            instance: instance.to_string(),
            took: took(instance),
            budget: rules.recovery_budget(schedule),
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
        let stuck = stuck_open(history, &r.instance, restored_at, rules);
        let (message, defect) = match stuck {
            Some((why, defect)) => (format!("{message}; {why}"), defect),
            None => (message, None),
        };
        Some(Violation {
            checker: Checker::Recovery,
            at: restored_at + r.took.unwrap_or(r.budget),
            instance: r.instance.clone(),
            message,
            defect,
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

/// A breaker of `instance` still OPEN at its last reading, although requests kept arriving more
/// than its open timeout (and the grace) after the last restore: DIVE's breaker lets the first of
/// them through (OPEN -> HALF_OPEN) and closes after its successes. Says so, and names R11 when the
/// readings also show it OPEN beside another OPEN breaker, the combination that defect needs.
fn stuck_open(
    history: &History,
    instance: &str,
    restored_at: Duration,
    rules: &Rules,
) -> Option<(String, Option<Defect>)> {
    let readings = history.health_of(instance);
    let last = readings
        .iter()
        .rev()
        .find(|op| matches!(&op.kind, OpKind::Health { breakers, .. } if !breakers.is_empty()))?;
    let stuck = Breaker::ALL.into_iter().find(|b| {
        let timeout = rules.thresholds(*b).open_timeout;
        last.breaker(*b).is_some_and(|seen| seen.state == BreakerState::Open)
            && last.invoked >= restored_at + timeout + rules.grace
    })?;
    let timeout = rules.thresholds(stuck).open_timeout;
    let calls_after = restored_at + timeout + rules.grace;
    let calls = history
        .of_instance(instance)
        .into_iter()
        .filter(|op| op.invoked >= calls_after && matches!(op.kind, OpKind::Request { .. }))
        .count();
    if calls == 0 {
        return None;
    }
    let mut why = format!(
        "its {stuck} breaker stayed OPEN through {calls} requests sent more than {} (its open timeout) after the last restore, to the last reading at {}; DIVE's lets a call through once its open timeout has passed since its last failure",
        secs(timeout),
        secs(last.invoked)
    );
    let beside = readings.iter().find_map(|op| {
        let open = |b: Breaker| op.breaker(b).is_some_and(|seen| seen.state == BreakerState::Open);
        if !open(stuck) {
            return None;
        }
        Breaker::ALL
            .into_iter()
            .find(|other| *other != stuck && open(*other))
            .map(|other| (op.invoked, other))
    });
    let defect = beside.map(|(at, other)| {
        why.push_str(&format!(
            "; it was seen OPEN beside the {other} breaker at {}",
            secs(at)
        ));
        Defect::R11
    });
    Some((why, defect))
}
