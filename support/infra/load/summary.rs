//! The figures of a load report: latency percentiles read from HDR histograms, per phase
//! ([`Summary`]) and per one-second window ([`Window`]), serialisable for the journal and one
//! line each for people.
//!
//! Which latencies count: every request that was sent goes into the main histogram, answered or
//! not, because that is what users felt; a timeout counts at the time it took to give up (the
//! plan's timeout, plus however late the request started, since latency runs from the intended
//! send time), a transport error at the time it took to fail. A fast 503 is therefore fast: that is what a breaker is for, and the outcome counts
//! say it failed. A second histogram holds only the requests answered OK, so a phase whose
//! failures are fast cannot hide slow successes. Dropped requests were never sent and have no
//! latency; they are counted.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};

use super::outcome::{Counts, Record};

/// Latencies are kept in microseconds, up to one hour (no plan runs that long, and a longer
/// value is clamped rather than lost), to 3 significant digits.
const MAX_MICROS: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// The percentiles of one HDR histogram of latencies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Requests in the histogram.
    pub count: u64,
    #[serde(rename = "p50_us", serialize_with = "micros")]
    pub p50: Duration,
    #[serde(rename = "p90_us", serialize_with = "micros")]
    pub p90: Duration,
    #[serde(rename = "p99_us", serialize_with = "micros")]
    pub p99: Duration,
    #[serde(rename = "p999_us", serialize_with = "micros")]
    pub p999: Duration,
    #[serde(rename = "max_us", serialize_with = "micros")]
    pub max: Duration,
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
            millis(self.p50),
            millis(self.p90),
            millis(self.p99),
            millis(self.p999),
            millis(self.max)
        )
    }
}

/// One phase of a scenario under load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub phase: String,
    /// Every request scheduled in the phase, dropped ones included.
    pub requests: u64,
    /// Every request sent, whatever became of it: what users waited.
    pub latency: Latency,
    /// Only the requests answered OK (decided, fallback, cache hit).
    pub ok: Latency,
    pub outcomes: Counts,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} req, {}; {}",
            self.phase, self.requests, self.latency, self.outcomes
        )
    }
}

/// One second of the run, by intended send time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// From the start of the run.
    #[serde(rename = "start_ms", serialize_with = "whole_millis")]
    pub start: Duration,
    pub requests: u64,
    /// Every request sent in the window, as in [`Summary::latency`].
    pub latency: Latency,
    pub outcomes: Counts,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} s: {} req, p50 {}, p99 {}, max {}; {}",
            self.start.as_secs(),
            self.requests,
            millis(self.latency.p50),
            millis(self.latency.p99),
            millis(self.latency.max),
            self.outcomes
        )
    }
}

/// Records folded into the two histograms and the counts that every report is read from.
pub(super) struct Fold {
    pub requests: u64,
    pub latency: Latency,
    pub ok: Latency,
    pub outcomes: Counts,
}

impl Fold {
    pub fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> Fold {
        let (mut all, mut ok) = (Latencies::new(), Latencies::new());
        let mut outcomes = Counts::default();
        for record in records {
            let class = record.outcome.class();
            outcomes.add(class);
            if let Some(latency) = record.latency {
                all.record(latency);
                if class.answered_ok() {
                    ok.record(latency);
                }
            }
        }
        Fold {
            requests: outcomes.total(),
            latency: all.percentiles(),
            ok: ok.percentiles(),
            outcomes,
        }
    }
}

/// An HDR histogram of durations at microsecond resolution.
pub(super) struct Latencies(Histogram<u64>);

impl Latencies {
    pub fn new() -> Latencies {
        Latencies(
            Histogram::new_with_max(MAX_MICROS, SIGNIFICANT_DIGITS)
                .expect("1 µs to 1 h at 3 digits is a valid histogram"),
        )
    }

    pub fn record(&mut self, d: Duration) {
        self.0.saturating_record(as_micros(d));
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.0.value_at_quantile(q))
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.0.max())
    }

    pub fn percentiles(&self) -> Latency {
        Latency {
            count: self.count(),
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max(),
        }
    }
}

fn as_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub(super) fn micros<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(as_micros(*d))
}

fn whole_millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A latency as the load reports print it: microseconds below a millisecond (schedule lag lives
/// there), one decimal below 10 ms, whole milliseconds above.
pub fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else if d < Duration::from_millis(10) {
        format!("{ms:.1} ms").replace(".0 ms", " ms")
    } else {
        format!("{ms:.0} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::load::outcome::Outcome;

    fn record(ms: u64, outcome: Outcome) -> Record {
        Record {
            seq: 0,
            intended: Duration::ZERO,
            latency: (outcome != Outcome::Dropped).then(|| Duration::from_millis(ms)),
            outcome,
        }
    }

    #[test]
    fn a_summary_reads_as_one_line_and_keeps_failures_out_of_the_ok_histogram() {
        let mut records: Vec<Record> = (1..=150)
            .map(|ms| record(ms, Outcome::Decided { status: 200 }))
            .collect();
        records.extend((0..10).map(|_| record(3, Outcome::Fallback)));
        records.push(record(5000, Outcome::Timeout));
        records.push(record(0, Outcome::Dropped));
        let fold = Fold::of(&records);
        let summary = Summary {
            phase: "fault".to_string(),
            requests: fold.requests,
            latency: fold.latency,
            ok: fold.ok,
            outcomes: fold.outcomes,
        };
        assert_eq!(
            summary.to_string(),
            "fault: 162 req, p50 71 ms, p90 135 ms, p99 150 ms, p99.9 5001 ms, max 5001 ms; \
             150 decided, 10 fallback, 1 timed out, 1 dropped"
        );
        assert_eq!((summary.latency.count, summary.ok.count), (161, 160));
        assert_eq!(summary.ok.max.as_millis(), 150, "the timeout is not an OK answer");
        let json = serde_json::to_value(&summary).expect("serialises");
        assert_eq!(json["outcomes"]["timeout"], 1);
        assert_eq!(json["ok"]["max_us"], 150_015);
    }

    #[test]
    fn latencies_print_at_a_useful_resolution() {
        assert_eq!(millis(Duration::from_micros(420)), "420 µs");
        assert_eq!(millis(Duration::from_micros(3_000)), "3 ms");
        assert_eq!(millis(Duration::from_micros(3_240)), "3.2 ms");
        assert_eq!(millis(Duration::from_millis(1_000)), "1000 ms");
    }
}
