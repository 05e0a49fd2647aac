//! The history of one run under load: a [`Record`] per scheduled request and the phases the
//! scenario marked, from which every report is built afterwards (histograms are made on demand,
//! one at a time, so a long run keeps only its records in memory).

use std::time::Duration;

use tokio::time::Instant;

use super::outcome::Record;
use super::summary::{Fold, Summary, Window};

/// A run's records and the phases marked on it.
#[derive(Debug, Clone)]
pub struct Recorder {
    start: Instant,
    records: Vec<Record>,
    /// (start from the run's start, name), in time order.
    phases: Vec<(Duration, String)>,
}

/// The length of one window of [`Recorder::windows`].
pub const WINDOW: Duration = Duration::from_secs(1);

impl Recorder {
    /// An empty history of a run whose schedule starts at `start`.
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            records: Vec::new(),
            phases: Vec::new(),
        }
    }

    /// When the schedule started: request 0's intended send time.
    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn push(&mut self, record: Record) {
        self.records.push(record);
    }

    /// Every record, in schedule order once the run is over.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub(super) fn sort(&mut self) {
        self.records.sort_by_key(|r| r.seq);
    }

    /// Starts phase `name` at `at`: every request whose intended time falls from `at` until the
    /// next mark belongs to it. Marks may come in any order and after the run; a name marked
    /// twice (a repeated fault) gathers both spans. Requests before the first mark belong to no
    /// phase.
    pub fn mark_phase(&mut self, name: &str, at: Instant) {
        let offset = self.offset(at);
        let place = self.phases.partition_point(|(start, _)| *start <= offset);
        self.phases.insert(place, (offset, name.to_string()));
    }

    /// Every phase mark: (start from the run's start, name), in time order.
    pub fn marks(&self) -> impl Iterator<Item = (Duration, &str)> + '_ {
        self.phases.iter().map(|(start, name)| (*start, name.as_str()))
    }

    /// The phase a request intended at `intended` belongs to.
    pub fn phase_of(&self, intended: Duration) -> Option<&str> {
        let place = self.phases.partition_point(|(start, _)| *start <= intended);
        place.checked_sub(1).map(|i| self.phases[i].1.as_str())
    }

    /// The records of every span marked `phase`.
    pub fn in_phase<'a>(&'a self, phase: &'a str) -> impl Iterator<Item = &'a Record> + 'a {
        self.records
            .iter()
            .filter(move |r| self.phase_of(r.intended) == Some(phase))
    }

    pub fn summary(&self, phase: &str) -> Summary {
        named(phase, Fold::of(self.in_phase(phase)))
    }

    /// The whole run as one phase, named "overall".
    pub fn overall(&self) -> Summary {
        named("overall", Fold::of(&self.records))
    }

    /// One summary per phase name, in the order the phases first started.
    pub fn summaries(&self) -> Vec<Summary> {
        let mut names: Vec<&str> = Vec::new();
        for (_, name) in &self.phases {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        names.into_iter().map(|name| self.summary(name)).collect()
    }

    /// One window per second of intended time, from the start to the last record, empty
    /// seconds included so the series has no gaps.
    pub fn windows(&self) -> Vec<Window> {
        let Some(last) = self.records.iter().map(|r| r.intended).max() else {
            return Vec::new();
        };
        let mut buckets: Vec<Vec<&Record>> = vec![Vec::new(); window_index(last) + 1];
        for record in &self.records {
            buckets[window_index(record.intended)].push(record);
        }
        (0u32..)
            .zip(buckets)
            .map(|(i, records)| {
                let fold = Fold::of(records);
                Window {
                    start: WINDOW * i,
                    requests: fold.requests,
                    latency: fold.latency,
                    outcomes: fold.outcomes,
                }
            })
            .collect()
    }

    /// The earliest intended send time, as an instant, of a request still waiting for its answer
    /// at `at` (sent before it, answered or given up after it; a dropped one never waited), or
    /// `at` itself when none was. A fault that begins at `at` reaches those requests too, so
    /// its phase begins there: a request frozen with MongoDB is the fault's damage, not the
    /// baseline's.
    pub fn in_flight_since(&self, at: Instant) -> Instant {
        let offset = self.offset(at);
        self.records
            .iter()
            .filter(|r| r.intended < offset && r.latency.is_some_and(|l| r.intended + l > offset))
            .map(|r| self.start + r.intended)
            .min()
            .unwrap_or(at)
    }

    /// `at` as an offset from the start of the schedule; instants before it count as its start.
    pub fn offset(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.start)
    }
}

fn named(phase: &str, fold: Fold) -> Summary {
    Summary {
        phase: phase.to_string(),
        requests: fold.requests,
        latency: fold.latency,
        ok: fold.ok,
        outcomes: fold.outcomes,
    }
}

fn window_index(intended: Duration) -> usize {
    usize::try_from(intended.as_secs()).unwrap_or(usize::MAX)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::infra::load::outcome::{Class, Outcome};

    /// A history of answered requests, each `(intended ms, latency ms)`.
    pub(in crate::infra::load) fn synthetic(start: Instant, latencies_ms: &[(u64, u64)]) -> Recorder {
        let mut recorder = Recorder::new(start);
        for (seq, &(intended_ms, latency_ms)) in (0..).zip(latencies_ms) {
            recorder.push(Record {
                seq,
                intended: Duration::from_millis(intended_ms),
                latency: Some(Duration::from_millis(latency_ms)),
                outcome: Outcome::Decided { status: 200 },
            });
        }
        recorder
    }

    #[tokio::test(start_paused = true)]
    async fn phases_split_records_by_intended_time() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let every_100_ms: Vec<(u64, u64)> = (0..50).map(|i| (i * 100, 10)).collect();
        let mut recorder = synthetic(start, &every_100_ms);
        recorder.mark_phase("fault", at(1000));
        recorder.mark_phase("after", at(4000));
        recorder.mark_phase("baseline", at(200));
        recorder.mark_phase("recovery", at(2500));
        let counts: Vec<(String, u64)> = recorder
            .summaries()
            .into_iter()
            .map(|s| (s.phase, s.requests))
            .collect();
        let expect = [("baseline", 8), ("fault", 15), ("recovery", 15), ("after", 10)];
        assert_eq!(counts, expect.map(|(p, n)| (p.to_string(), n)));
        assert_eq!(
            recorder.phase_of(Duration::from_millis(100)),
            None,
            "before the first mark"
        );
        assert_eq!(
            recorder.phase_of(Duration::from_millis(1000)),
            Some("fault"),
            "a mark starts its phase"
        );
        assert_eq!(recorder.summary("fault").outcomes.get(Class::Decided), 15);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fault_reaches_back_to_the_requests_still_in_flight() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let recorder = synthetic(start, &[(0, 10), (100, 3000), (200, 5), (250, 900), (400, 10)]);
        assert_eq!(
            recorder.in_flight_since(at(300)),
            at(100),
            "the one frozen since 100 ms"
        );
        assert_eq!(recorder.in_flight_since(at(3500)), at(3500), "nothing in flight then");
        assert_eq!(
            recorder.in_flight_since(at(3100)),
            at(3100),
            "one answered at that very moment was done"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn windows_cover_every_second_up_to_the_last_record() {
        let start = Instant::now();
        let recorder = synthetic(start, &[(100, 5), (900, 7), (2500, 40)]);
        let windows = recorder.windows();
        let seen: Vec<(u64, u64)> = windows.iter().map(|w| (w.start.as_secs(), w.requests)).collect();
        assert_eq!(seen, [(0, 2), (1, 0), (2, 1)]);
        assert_eq!(
            windows[2].to_string(),
            "2 s: 1 req, p50 40 ms, p99 40 ms, max 40 ms; 1 decided"
        );
    }
}
