//! The figures of a load report: latency percentiles read from HDR histograms, per phase
//! ([`Summary`]) and per one-second window ([`Window`]). The figures themselves are vocabulary
//! ([`crate::vocab::load`]), since journals carry them; the histograms are made here.
//!
//! Which latencies count: every request that was sent goes into the main histogram, answered or
//! not, because that is what users felt; a timeout counts at the time it took to give up (the
//! plan's timeout, plus however late the request started, since latency runs from the intended
//! send time), a transport error at the time it took to fail. A fast 503 is therefore fast: that is what a breaker is for, and the outcome counts
//! say it failed. A second histogram holds only the requests answered OK, so a phase whose
//! failures are fast cannot hide slow successes. Dropped requests were never sent and have no
//! latency; they are counted.

use std::time::Duration;

use hdrhistogram::Histogram;

use super::outcome::Record;
pub use crate::vocab::load::{Counts, Latency, Summary, Window, millis};

/// Latencies are kept in microseconds, up to one hour (no plan runs that long, and a longer
/// value is clamped rather than lost), to 3 significant digits.
const MAX_MICROS: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

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
}
