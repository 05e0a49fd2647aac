//! Recovery: after the last restore, every instance is seen in steady state (healthy, every
//! breaker CLOSED) within the budget derived from DIVE's timers.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Checker, Rules, Violation};
use crate::scenario::chaos::history::{History, Op, OpKind};
use crate::scenario::chaos::schedule::{Schedule, ScheduledFault};
use crate::vocab::health::{BreakerState, Overall};
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

