//! Shrinking: reduces a failing chaos schedule to a smallest one that still fails, within a bounded
//! number of replays. Greedy delta debugging, deterministic: drop faults, then shorten them, then
//! separate overlaps; a reduction is kept only when the replay still fails. Replaying is the
//! caller's (`fails`), so this stays pure and testable.

use std::fmt;
use std::time::Duration;

use super::schedule::Schedule;
use crate::vocab::units::secs;

/// The smallest failing schedule found, and how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Shrunk {
    /// The last schedule that failed (the input when no reduction did).
    pub schedule: Schedule,
    /// Replays spent.
    pub replays: usize,
    /// Each kept reduction, in order.
    pub steps: Vec<String>,
}

/// The reductions, then the schedule they reached. The seed's replay command replays the original
/// schedule, which shrinks again to this one when the failure is deterministic.
impl fmt::Display for Shrunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "shrunk in {} replays:", self.replays)?;
        for step in &self.steps {
            writeln!(f, "  {step}")?;
        }
        write!(f, "{}", self.schedule)
    }
}

/// Shrinks `schedule`, which the caller has just seen fail, spending at most `max_replays` calls
/// of `fails` (true: the schedule still fails).
pub async fn shrink<F>(schedule: &Schedule, max_replays: usize, mut fails: F) -> Shrunk
where
    F: AsyncFnMut(&Schedule) -> bool,
{
    let mut shrinker = Shrinker {
        best: Shrunk {
            schedule: schedule.clone(),
            replays: 0,
            steps: Vec::new(),
        },
        max_replays,
    };
    shrinker.drop_faults(&mut fails).await;
    shrinker.halve_durations(&mut fails).await;
    shrinker.separate_overlaps(&mut fails).await;
    shrinker.best
}

struct Shrinker {
    best: Shrunk,
    max_replays: usize,
}

impl Shrinker {
    fn exhausted(&self) -> bool {
        self.best.replays >= self.max_replays
    }

    /// Replays `candidate` and keeps it when it still fails; false when it passes or no replay is
    /// left.
    async fn keep_if_fails<F>(&mut self, fails: &mut F, candidate: Schedule, step: String) -> bool
    where
        F: AsyncFnMut(&Schedule) -> bool,
    {
        if self.exhausted() {
            return false;
        }
        self.best.replays += 1;
        if !fails(&candidate).await {
            return false;
        }
        self.best.schedule = candidate;
        self.best.steps.push(step);
        true
    }

    /// Drops single faults until no single drop still fails: a later drop can make an earlier
    /// fault unnecessary, hence the passes.
    async fn drop_faults<F>(&mut self, fails: &mut F)
    where
        F: AsyncFnMut(&Schedule) -> bool,
    {
        loop {
            let mut dropped_any = false;
            let mut index = 0;
            while index < self.best.schedule.faults.len() && !self.exhausted() {
                let mut candidate = self.best.schedule.clone();
                let dropped = candidate.faults.remove(index);
                if self.keep_if_fails(fails, candidate, format!("dropped {dropped}")).await {
                    // The next fault now sits at `index`.
                    dropped_any = true;
                } else {
                    index += 1;
                }
            }
            if !dropped_any || self.exhausted() {
                return;
            }
        }
    }

    /// Halves each fault's duration, again and again while it still fails, not below the
    /// schedule's shortest fault.
    async fn halve_durations<F>(&mut self, fails: &mut F)
    where
        F: AsyncFnMut(&Schedule) -> bool,
    {
        let shortest = self.best.schedule.limits.min_duration.max(Duration::from_millis(1));
        for index in 0..self.best.schedule.faults.len() {
            loop {
                let mut candidate = self.best.schedule.clone();
                let fault = &mut candidate.faults[index];
                let halved = (fault.duration / 2).max(shortest);
                if halved >= fault.duration {
                    break;
                }
                fault.duration = halved;
                let step = format!("shortened #{} to {}", fault.id, secs(halved));
                if !self.keep_if_fails(fails, candidate, step).await {
                    break;
                }
            }
        }
    }

    /// Moves a fault that starts during another to start when that one ends, when the move keeps
    /// the schedule within its limits: does the failure need them to overlap?
    async fn separate_overlaps<F>(&mut self, fails: &mut F)
    where
        F: AsyncFnMut(&Schedule) -> bool,
    {
        let count = self.best.schedule.faults.len();
        for earlier in 0..count {
            for later in 0..count {
                let Some(candidate) = self.separated(earlier, later) else {
                    continue;
                };
                let (first, moved) = (&self.best.schedule.faults[earlier], &candidate.faults[later]);
                let step = format!(
                    "moved #{} to start at {}, after #{} ends",
                    moved.id,
                    secs(moved.start),
                    first.id
                );
                self.keep_if_fails(fails, candidate, step).await;
            }
        }
    }

    /// The schedule with fault `later` moved to the end of fault `earlier`, when they overlap,
    /// `later` does not start first, and the move stays within the limits.
    fn separated(&self, earlier: usize, later: usize) -> Option<Schedule> {
        let schedule = &self.best.schedule;
        let (first, second) = (&schedule.faults[earlier], &schedule.faults[later]);
        if earlier == later || !first.overlaps(second) || second.start < first.start {
            return None;
        }
        let mut moved = second.clone();
        moved.start = first.end();
        let mut others = schedule.faults.clone();
        others.remove(later);
        if !schedule.limits.admits(&others, &moved) {
            return None;
        }
        let mut candidate = schedule.clone();
        candidate.faults[later] = moved;
        Some(candidate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::chaos::schedule::ScheduledFault;
    use crate::scenario::chaos::schedule::tests::{fault, schedule_of};
    use crate::vocab::fault::FaultKind;
    use crate::vocab::fault::Service;

    /// The synthetic failure: an OPA stop overlapping a Keycloak pause on the same instance.
    fn opa_stop_meets_keycloak_pause(schedule: &Schedule) -> bool {
        let is = |f: &ScheduledFault, service, kind| f.service == service && f.kind == kind;
        schedule.faults.iter().any(|opa| {
            is(opa, Service::Opa, FaultKind::Stop)
                && schedule.faults.iter().any(|kc| {
                    is(kc, Service::Keycloak, FaultKind::Pause) && kc.instance == opa.instance && kc.overlaps(opa)
                })
        })
    }

    fn six_faults() -> Schedule {
        schedule_of(vec![
            fault(0, "USA", Service::Kas, FaultKind::Kill, 0.0, 8.0),
            fault(1, "USA", Service::Opa, FaultKind::Stop, 1.0, 8.0),
            fault(2, "FRA", Service::Keycloak, FaultKind::Pause, 2.0, 8.0),
            fault(3, "DEU", Service::Opa, FaultKind::Stop, 10.0, 4.0),
            fault(4, "USA", Service::Keycloak, FaultKind::Pause, 6.0, 8.0),
            fault(5, "FRA", Service::Mongodb, FaultKind::Partition, 12.0, 8.0),
        ])
    }

    fn ids(schedule: &Schedule) -> Vec<usize> {
        schedule.faults.iter().map(|f| f.id).collect()
    }

    #[tokio::test]
    async fn shrinks_six_faults_to_the_two_that_fail() {
        let original = six_faults();
        assert!(opa_stop_meets_keycloak_pause(&original));
        let shrunk = shrink(&original, 100, async |s: &Schedule| opa_stop_meets_keycloak_pause(s)).await;
        assert_eq!(ids(&shrunk.schedule), [1, 4], "{}", shrunk.schedule);
        assert!(opa_stop_meets_keycloak_pause(&shrunk.schedule));
        assert_eq!(shrunk.steps[0], "dropped #0 kill kas on USA from 0 ms to 8.0 s");
        assert_eq!(shrunk.steps.iter().filter(|s| s.starts_with("dropped")).count(), 4);
        // Halving opa's 8 s stop to 4 s ends it at 5 s, before the pause starts at 6 s.
        assert!(
            shrunk.steps.contains(&"shortened #4 to 1.0 s".to_string()),
            "{:?}",
            shrunk.steps
        );
        assert!(!shrunk.steps.iter().any(|s| s.starts_with("moved")));
        assert!(shrunk.replays <= 100);
        let shown = shrunk.to_string();
        assert!(
            shown.starts_with(&format!("shrunk in {} replays:\n  dropped #0", shrunk.replays)),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn is_deterministic() {
        let replay = async |s: &Schedule| opa_stop_meets_keycloak_pause(s);
        let first = shrink(&six_faults(), 100, replay).await;
        assert_eq!(first, shrink(&six_faults(), 100, replay).await);
    }

    #[tokio::test]
    async fn stops_at_max_replays_with_a_failing_schedule() {
        let mut calls = 0;
        let shrunk = shrink(&six_faults(), 3, async |s: &Schedule| {
            calls += 1;
            opa_stop_meets_keycloak_pause(s)
        })
        .await;
        assert_eq!((shrunk.replays, calls), (3, 3));
        // Dropped #0, kept #1 (needed), dropped #2.
        assert_eq!(ids(&shrunk.schedule), [1, 3, 4, 5]);
        assert!(opa_stop_meets_keycloak_pause(&shrunk.schedule));
    }

    #[tokio::test]
    async fn separates_overlaps_the_failure_does_not_need() {
        // Fails whenever both faults are present; overlapping is incidental.
        let original = schedule_of(vec![
            fault(0, "USA", Service::Opa, FaultKind::Stop, 1.0, 2.0),
            fault(1, "USA", Service::Keycloak, FaultKind::Stop, 2.0, 2.0),
        ]);
        let mut limits = original.limits.clone();
        limits.min_duration = Duration::from_secs(2);
        let original = Schedule { limits, ..original };
        let shrunk = shrink(&original, 20, async |s: &Schedule| s.faults.len() == 2).await;
        assert_eq!(shrunk.steps, ["moved #1 to start at 3.0 s, after #0 ends"]);
        assert!(!shrunk.schedule.faults[0].overlaps(&shrunk.schedule.faults[1]));
    }
}
