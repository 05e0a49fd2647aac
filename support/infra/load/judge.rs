//! The judgements the load-under-failure requirements are written in: what share of a phase
//! failed, how long until answers were fast again, and whether a phase's tail stayed within a
//! bound of the baseline's. Pure functions of the records: they never read the clock.

use std::time::Duration;

use tokio::time::Instant;

use super::outcome::Class;
use super::record::Recorder;
use super::summary::{Window, millis};

impl Recorder {
    /// The share of `phase`'s requests that fell in `class`, from 0 to 1 (0 for an empty phase).
    pub fn share(&self, phase: &str, class: Class) -> f64 {
        let outcomes = self.summary(phase).outcomes;
        ratio(outcomes.get(class), outcomes.total())
    }

    /// The share of `phase`'s requests that were not answered OK: every class but decided,
    /// fallback and cache hit, dropped requests included (0 for an empty phase).
    pub fn fail_share(&self, phase: &str) -> f64 {
        let mut failed = 0;
        let mut all = 0;
        for record in self.in_phase(phase) {
            all += 1;
            if !record.outcome.class().answered_ok() {
                failed += 1;
            }
        }
        ratio(failed, all)
    }

    /// From `at`, how long until answers were fast again: the time to the start of the first
    /// one-second window from which every window to the end of the run has a p99 within `bound`
    /// and dropped nothing (a window that could not even send is not fast). `Some(0)` when the
    /// window holding `at` is already such a window; `None` when the run never settled (or
    /// ended before `at`). The p99 is read from the histogram, so it is exact to 3 digits.
    pub fn fast_again_after(&self, at: Instant, bound: Duration) -> Option<Duration> {
        self.lasting_from(at, None, |w| is_fast(w, bound))
    }

    /// [`Recorder::fast_again_after`], counting only the windows that start before `until` (the
    /// fault's end: what came after it is recovery, judged on its own).
    pub fn fast_again_between(&self, at: Instant, until: Instant, bound: Duration) -> Option<Duration> {
        self.lasting_from(at, Some(until), |w| is_fast(w, bound))
    }

    /// From `at`, how long until answers were fast and right again: as
    /// [`Recorder::fast_again_after`], and every request of every later window answered OK.
    pub fn recovered_after(&self, at: Instant, bound: Duration) -> Option<Duration> {
        self.lasting_from(at, None, |w| is_fast(w, bound) && w.outcomes.failed() == 0)
    }

    /// The time from `at` to the first window from which `good` holds for every window that
    /// starts before `until` (or to the end of the run).
    fn lasting_from(&self, at: Instant, until: Option<Instant>, good: impl Fn(&Window) -> bool) -> Option<Duration> {
        let from = self.offset(at);
        let windows = self.windows();
        let first = usize::try_from(from.as_secs()).ok()?;
        let end = match until.map(|u| self.offset(u)) {
            Some(to) if to <= from => return None,
            Some(to) => windows.partition_point(|w| w.start < to),
            None => windows.len(),
        };
        let tail = windows.get(first..end)?;
        let good_at_end = tail.iter().rev().take_while(|w| good(w)).count();
        let settled = tail.get(tail.len() - good_at_end)?;
        Some(settled.start.saturating_sub(from))
    }

    /// Whether `phase`'s p99 stayed within `factor` times the baseline's p99 plus `slack` (the
    /// slack keeps a tiny baseline from making the bound unreachable). `Ok` carries the
    /// measured p99, `Err` says by how much it missed, or why it cannot be judged.
    pub fn p99_within(
        &self,
        phase: &str,
        baseline_p99: Duration,
        factor: f64,
        slack: Duration,
    ) -> Result<Duration, String> {
        let scaled = Duration::try_from_secs_f64(baseline_p99.as_secs_f64() * factor)
            .map_err(|e| format!("{factor} x baseline p99 is not a duration: {e}"))?;
        let limit = scaled.saturating_add(slack);
        let latency = self.summary(phase).latency;
        if latency.count == 0 {
            return Err(format!("{phase}: no request was sent, so its p99 cannot be judged"));
        }
        if latency.p99 <= limit {
            return Ok(latency.p99);
        }
        Err(format!(
            "{phase} p99 {} over {} ({factor} x baseline p99 {} + {})",
            millis(latency.p99),
            millis(limit),
            millis(baseline_p99),
            millis(slack)
        ))
    }
}

fn is_fast(window: &Window, bound: Duration) -> bool {
    window.outcomes.get(Class::Dropped) == 0 && window.latency.p99 <= bound
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::load::record::tests::synthetic;

    /// Ten requests a second for 10 s: 10 ms answers, except 1 s answers from 2 s to 4 s, and one
    /// slow straggler at 5.5 s.
    fn outage(start: Instant) -> Recorder {
        let series: Vec<(u64, u64)> = (0..100)
            .map(|i| {
                let intended = i * 100;
                let slow = (2000..4000).contains(&intended) || intended == 5500;
                (intended, if slow { 1000 } else { 10 })
            })
            .collect();
        synthetic(start, &series)
    }

    #[tokio::test(start_paused = true)]
    async fn fast_again_after_waits_for_every_later_window() {
        let start = Instant::now();
        let recorder = outage(start);
        let bound = Duration::from_millis(50);
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(
            recorder.fast_again_after(at(2300), bound),
            Some(Duration::from_millis(3700))
        );
        assert_eq!(recorder.fast_again_after(at(7000), bound), Some(Duration::ZERO));
        assert_eq!(
            recorder.fast_again_after(at(2300), Duration::from_secs(2)),
            Some(Duration::ZERO)
        );
        assert_eq!(recorder.fast_again_after(at(12_000), bound), None, "after the run");
        let never = synthetic(start, &[(0, 10), (1500, 900)]);
        assert_eq!(never.fast_again_after(at(0), bound), None, "still slow at the end");
    }

    #[tokio::test(start_paused = true)]
    async fn fast_again_within_a_span_and_recovered_needs_right_answers_too() {
        let start = Instant::now();
        let recorder = outage(start);
        let bound = Duration::from_millis(50);
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(
            recorder.fast_again_between(at(2300), at(5000), bound),
            Some(Duration::from_millis(1700)),
            "the straggler at 5.5 s is after the span"
        );
        assert_eq!(
            recorder.fast_again_between(at(2300), at(3500), bound),
            None,
            "slow to the end of the span"
        );
        assert_eq!(
            recorder.fast_again_between(at(2300), at(2000), bound),
            None,
            "an empty span"
        );
        let mut failing = outage(start);
        let mut records = failing.records().to_vec();
        records[80].outcome = crate::infra::load::outcome::Outcome::ServerError(500);
        failing = Recorder::new(start);
        for r in records {
            failing.push(r);
        }
        assert_eq!(
            failing.recovered_after(at(4000), bound),
            Some(Duration::from_millis(5000)),
            "a fast 500 at 8 s is not recovered"
        );
        assert_eq!(
            failing.fast_again_after(at(4000), bound),
            Some(Duration::from_millis(2000))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shares_and_the_tail_bound_are_read_per_phase() {
        let start = Instant::now();
        let mut recorder = outage(start);
        recorder.mark_phase("baseline", start);
        recorder.mark_phase("fault", start + Duration::from_secs(2));
        recorder.mark_phase("after", start + Duration::from_secs(6));
        assert_eq!(recorder.fail_share("fault"), 0.0, "slow answers are still answers");
        assert_eq!(recorder.share("fault", Class::Decided), 1.0);
        assert_eq!(recorder.share("nowhere", Class::Decided), 0.0);
        let baseline = recorder.summary("baseline").latency.p99;
        let slack = Duration::from_millis(5);
        assert!(recorder.p99_within("after", baseline, 2.0, slack).is_ok());
        let missed = recorder
            .p99_within("fault", baseline, 2.0, slack)
            .expect_err("1 s is far over");
        assert_eq!(missed, "fault p99 1000 ms over 25 ms (2 x baseline p99 10 ms + 5 ms)");
        assert!(recorder.p99_within("fault", baseline, f64::NAN, slack).is_err());
    }
}
