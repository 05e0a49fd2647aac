//! Shrinking: reduces a failing chaos schedule to a smallest one that still fails, within a bounded
//! number of replays. Greedy delta debugging, deterministic: drop faults, then shorten them, then
//! separate overlaps; a reduction is kept only when the replay still fails. Replaying is the
//! caller's (`fails`), so this stays free of I/O and testable; the candidates of one round are
//! replayed concurrently.

use std::fmt;
use std::pin::Pin;
use std::task::Poll;
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
/// of `fails` (true: the schedule still fails). Each round replays every candidate reduction of
/// one kind at once (a replay mostly waits on DIVE's timers, so a round takes as long as its
/// slowest replay) and keeps the first, in order, that still fails: the same schedule whatever
/// the replays' timing.
pub async fn shrink<F>(schedule: &Schedule, max_replays: usize, fails: F) -> Shrunk
where
    F: AsyncFn(&Schedule) -> bool,
{
    let mut shrinker = Shrinker {
        best: Shrunk {
            schedule: schedule.clone(),
            replays: 0,
            steps: Vec::new(),
        },
        max_replays,
    };
    while shrinker.round(&fails, Shrinker::drops).await {}
    while shrinker.round(&fails, Shrinker::halvings).await {}
    while shrinker.round(&fails, Shrinker::separations).await {}
    shrinker.best
}

struct Shrinker {
    best: Shrunk,
    max_replays: usize,
}

/// A candidate reduction and the step that names it.
type Candidate = (Schedule, String);

impl Shrinker {
    /// Replays the candidates `reductions` makes of the best schedule (as many as replays are
    /// left), and keeps the first that still fails; false when none does or none was replayed.
    async fn round<F>(&mut self, fails: &F, reductions: fn(&Shrinker) -> Vec<Candidate>) -> bool
    where
        F: AsyncFn(&Schedule) -> bool,
    {
        let mut candidates = reductions(self);
        candidates.truncate(self.max_replays.saturating_sub(self.best.replays));
        if candidates.is_empty() {
            return false;
        }
        self.best.replays += candidates.len();
        let verdicts = join_all(candidates.iter().map(|(c, _)| fails(c)).collect()).await;
        let Some(first) = verdicts.iter().position(|&failed| failed) else {
            return false;
        };
        let (schedule, step) = candidates.swap_remove(first);
        self.best.schedule = schedule;
        self.best.steps.push(step);
        true
    }

    /// The schedule without one of its faults, for each fault.
    fn drops(&self) -> Vec<Candidate> {
        (0..self.best.schedule.faults.len())
            .map(|index| {
                let mut candidate = self.best.schedule.clone();
                let dropped = candidate.faults.remove(index);
                (candidate, format!("dropped {dropped}"))
            })
            .collect()
    }

    /// The schedule with one fault's duration halved, not below the schedule's shortest fault.
    fn halvings(&self) -> Vec<Candidate> {
        let shortest = self.best.schedule.limits.min_duration.max(Duration::from_millis(1));
        (0..self.best.schedule.faults.len())
            .filter_map(|index| {
                let mut candidate = self.best.schedule.clone();
                let fault = &mut candidate.faults[index];
                let halved = (fault.duration / 2).max(shortest);
                if halved >= fault.duration {
                    return None;
                }
                fault.duration = halved;
                let step = format!("shortened #{} to {}", fault.id, secs(halved));
                Some((candidate, step))
            })
            .collect()
    }

    /// The schedule with a fault that starts during another moved to start when that one ends,
    /// where the move keeps it within its limits: does the failure need them to overlap?
    fn separations(&self) -> Vec<Candidate> {
        let count = self.best.schedule.faults.len();
        let mut out = Vec::new();
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
                out.push((candidate, step));
            }
        }
        out
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

/// Awaits every future at once, on this task, and returns their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().flatten().collect()
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
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let shrunk = shrink(&six_faults(), 3, async |s: &Schedule| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            opa_stop_meets_keycloak_pause(s)
        })
        .await;
        assert_eq!((shrunk.replays, calls.into_inner()), (3, 3));
        // One round of three drops: #0 first, the first of them that still fails.
        assert_eq!(ids(&shrunk.schedule), [1, 2, 3, 4, 5]);
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
