//! The open-model load generator, a constant arrival rate as in k6's constant-arrival-rate
//! executor and wrk2. Request `i` is due at `start + i / rate` and is started then, whether or
//! not earlier ones answered, as long as fewer than `max_in_flight` are outstanding; otherwise it
//! is recorded as dropped at its due time, so a run always has one record per scheduled request.
//! Latency runs from the due time, not from the actual send, so a stalled target shows as latency
//! rather than as fewer requests (wrk2's correction for coordinated omission). What is sent is
//! the caller's: the generator knows sequence numbers, times and outcomes, never HTTP.

use std::future::Future;
use std::sync::LazyLock;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;

use super::outcome::Outcome;
use super::outcome::Record;
use super::record::Recorder;
use super::summary::Latencies;
use crate::infra::poll;
pub use crate::vocab::load::Lag;

/// A run longer than this is refused: load on a shared target is bounded, and the histograms
/// hold latencies up to an hour.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// A request started later than this after its due time counts as late.
pub const LATE: Duration = Duration::from_millis(1);

/// What to send and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Requests per second, spread evenly.
    pub rate: f64,
    pub duration: Duration,
    /// Requests outstanding at once; past it, due requests are dropped, never queued.
    pub max_in_flight: usize,
    /// Client timeout of each request, from its actual start.
    pub timeout: Duration,
}

impl Plan {
    /// Says why the plan cannot run, if it cannot. The cap on the rate a shared target may get
    /// is the configuration's business; this only refuses plans that make no sense.
    pub fn check(&self) -> Result<(), String> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(format!(
                "load rate {} is not a positive number of requests per second",
                self.rate
            ));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(format!("load duration {:?} is not between 0 and 1 h", self.duration));
        }
        if self.max_in_flight == 0 {
            return Err("load max_in_flight is 0: no request could ever be sent".to_string());
        }
        if self.timeout.is_zero() || self.timeout > MAX_DURATION {
            return Err(format!("load timeout {:?} is not between 0 and 1 h", self.timeout));
        }
        Ok(())
    }

    /// When request `seq` is due, from the start; `None` once that is past the duration.
    fn due(&self, seq: u64) -> Option<Duration> {
        // From the index each time rather than by adding intervals, so rounding never drifts.
        let offset = Duration::try_from_secs_f64(seq as f64 / self.rate).ok()?;
        (offset < self.duration).then_some(offset)
    }
}

/// A finished run: what every request became, and how well the generator kept its schedule.
#[derive(Debug, Clone)]
pub struct Run {
    pub recorder: Recorder,
    pub lag: Lag,
}

/// Raised once for the whole process: a signal arrived, and no load may send another request.
static HALT: LazyLock<watch::Sender<bool>> = LazyLock::new(|| watch::channel(false).0);

/// Stops every load of this process at once, for good: no request starts after it. The signal
/// handler calls it before it restores the faults this process holds.
pub fn halt_all() {
    HALT.send_replace(true);
}

/// Runs `plan`, calling `send(seq)` for each request at its due time, until the duration has
/// elapsed, `stop` turns true or the process halts every load ([`halt_all`]). Dropping the sender
/// of `stop` stops the load too: the scenario that owned it is over. On stop, no new request
/// starts; those in flight are awaited, each for at most its own timeout, so their outcomes are
/// known rather than guessed.
pub async fn run<S, F>(plan: &Plan, stop: watch::Receiver<bool>, send: S) -> Result<Run, String>
where
    S: FnMut(u64) -> F,
    F: Future<Output = Outcome> + Send + 'static,
{
    run_halting(plan, stop, HALT.subscribe(), send).await
}

/// [`run`], halted by `halt` rather than by the process's own flag (so a test can halt one run).
async fn run_halting<S, F>(
    plan: &Plan,
    mut stop: watch::Receiver<bool>,
    mut halt: watch::Receiver<bool>,
    mut send: S,
) -> Result<Run, String>
where
    S: FnMut(u64) -> F,
    F: Future<Output = Outcome> + Send + 'static,
{
    plan.check()?;
    let start = Instant::now();
    let mut recorder = Recorder::new(start);
    let mut lag = LagRecorder::new();
    let mut in_flight = JoinSet::new();
    let mut seq = 0;
    while let Some(offset) = plan.due(seq) {
        let due = start + offset;
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            () = stopped(&mut halt) => break,
            () = poll::until(due) => {}
        }
        // Collect what finished before counting what is outstanding.
        while let Some(joined) = in_flight.try_join_next() {
            if let Some(record) = finished(joined) {
                recorder.push(record);
            }
        }
        lag.record(offset, due.elapsed());
        if in_flight.len() >= plan.max_in_flight {
            recorder.push(dropped(seq, offset));
        } else {
            in_flight.spawn(attempt(seq, offset, due, plan.timeout, send(seq)));
        }
        seq += 1;
    }
    while let Some(joined) = in_flight.join_next().await {
        if let Some(record) = finished(joined) {
            recorder.push(record);
        }
    }
    recorder.sort();
    Ok(Run {
        recorder,
        lag: lag.report(),
    })
}

/// Resolves once the stop flag is raised or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // Both a raised flag and a closed channel end the wait; either way the load stops.
    let _ = stop.wait_for(|&raised| raised).await;
}

async fn attempt(
    seq: u64,
    intended: Duration,
    due: Instant,
    timeout: Duration,
    request: impl Future<Output = Outcome>,
) -> Record {
    let outcome = tokio::time::timeout(timeout, request).await.unwrap_or(Outcome::Timeout);
    Record {
        seq,
        intended,
        latency: Some(due.elapsed()),
        outcome,
    }
}

fn dropped(seq: u64, intended: Duration) -> Record {
    Record {
        seq,
        intended,
        latency: None,
        outcome: Outcome::Dropped,
    }
}

/// The record of a finished request. A panic in the caller's `send` is the caller's bug and is
/// passed on; a cancelled task means the runtime is shutting down, and this run with it.
fn finished(joined: Result<Record, JoinError>) -> Option<Record> {
    match joined {
        Ok(record) => Some(record),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => None,
    }
}

struct LagRecorder {
    histogram: Latencies,
    late: u64,
    first_late: Option<Duration>,
}

impl LagRecorder {
    fn new() -> LagRecorder {
        LagRecorder {
            histogram: Latencies::new(),
            late: 0,
            first_late: None,
        }
    }

    fn record(&mut self, intended: Duration, lag: Duration) {
        self.histogram.record(lag);
        if lag > LATE {
            self.late += 1;
            self.first_late.get_or_insert(intended);
        }
    }

    fn report(&self) -> Lag {
        Lag {
            steps: self.histogram.count(),
            p50: self.histogram.quantile(0.50),
            p99: self.histogram.quantile(0.99),
            max: self.histogram.max(),
            late: self.late,
            first_late: self.first_late,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::load::outcome::Class;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn plan(rate: f64, duration: Duration, max_in_flight: usize, timeout: Duration) -> Plan {
        Plan {
            rate,
            duration,
            max_in_flight,
            timeout,
        }
    }

    async fn answer_after(delay: Duration) -> Outcome {
        poll::until(Instant::now() + delay).await;
        Outcome::Decided { status: 200 }
    }

    /// Answers in 10 ms, except that whatever arrives between `from` and `to` waits until `to`.
    async fn stalling(from: Instant, to: Instant) -> Outcome {
        let now = Instant::now();
        let answer_at = if (from..to).contains(&now) { to } else { now + ms(10) };
        poll::until(answer_at).await;
        Outcome::Decided { status: 200 }
    }

    async fn run_until_done<S, F>(plan: &Plan, send: S) -> Run
    where
        S: FnMut(u64) -> F,
        F: Future<Output = Outcome> + Send + 'static,
    {
        let (_keep_running, stop) = watch::channel(false);
        run(plan, stop, send).await.expect("a valid plan")
    }

    #[tokio::test(start_paused = true)]
    async fn holds_the_rate_against_a_steady_target() {
        let run = run_until_done(&plan(20.0, ms(5000), 100, ms(1000)), |_| answer_after(ms(10))).await;
        let overall = run.recorder.overall();
        assert_eq!(overall.requests, 100);
        assert_eq!(overall.outcomes.get(Class::Decided), 100);
        assert!(
            overall.latency.p50 >= ms(10) && overall.latency.p50 < ms(11),
            "{overall}"
        );
        assert_eq!((run.lag.max, run.lag.late, run.lag.steps), (Duration::ZERO, 0, 100));
        assert_eq!(run.recorder.records()[99].intended, ms(4950));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_target_shows_as_latency_not_as_fewer_requests() {
        let start = Instant::now();
        let (from, to) = (start + ms(2000), start + ms(3000));
        let run = run_until_done(&plan(20.0, ms(5000), 100, ms(5000)), |_| stalling(from, to)).await;
        assert_eq!(run.recorder.overall().requests, 100, "rate x duration, stall or not");
        let windows = run.recorder.windows();
        let p99: Vec<u128> = windows.iter().map(|w| w.latency.p99.as_millis()).collect();
        assert_eq!(p99, [10, 10, 1000, 10, 10], "the stall, and only the stall, is slow");
        assert!(windows.iter().all(|w| w.requests == 20), "{windows:?}");
        assert_eq!(windows[2].latency.p50.as_millis(), 500, "half waited at least 0.5 s");
        assert_eq!(run.lag.max, Duration::ZERO, "the generator itself never stalled");
    }

    #[tokio::test(start_paused = true)]
    async fn the_in_flight_cap_drops_requests_and_counts_them() {
        let hang = |_| std::future::pending::<Outcome>();
        let run = run_until_done(&plan(20.0, ms(2000), 5, ms(10_000)), hang).await;
        let outcomes = run.recorder.overall().outcomes;
        assert_eq!((outcomes.get(Class::Timeout), outcomes.get(Class::Dropped)), (5, 35));
        let first_dropped = &run.recorder.records()[5];
        assert_eq!((first_dropped.intended, first_dropped.latency), (ms(250), None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_counts_at_the_time_the_user_waited() {
        let hang = |_| std::future::pending::<Outcome>();
        let run = run_until_done(&plan(10.0, ms(1000), 100, ms(300)), hang).await;
        let records = run.recorder.records();
        assert_eq!(records.len(), 10);
        assert!(
            records
                .iter()
                .all(|r| r.outcome == Outcome::Timeout && r.latency == Some(ms(300)))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_the_schedule_and_waits_for_requests_in_flight() {
        let start = Instant::now();
        let (stop, stopped) = watch::channel(false);
        let hang = |_| std::future::pending::<Outcome>();
        let load = tokio::spawn(async move { run(&plan(20.0, ms(60_000), 100, ms(1000)), stopped, hang).await });
        poll::until(start + ms(525)).await;
        stop.send_replace(true);
        let stopped_run = load.await.expect("no panic").expect("a valid plan");
        assert_eq!(stopped_run.recorder.records().len(), 11, "due at 0, 50, ..., 500 ms");
        assert_eq!(start.elapsed(), ms(1500), "the last one timed out 1 s after 500 ms");
        let (gone, stopped) = watch::channel(false);
        drop(gone);
        let orphaned = run(&plan(20.0, ms(60_000), 100, ms(1000)), stopped, hang)
            .await
            .expect("valid");
        assert!(
            orphaned.recorder.records().is_empty(),
            "a closed stop channel stops the load"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_halt_stops_the_load_as_a_stop_does() {
        let start = Instant::now();
        let (_keep_running, stop) = watch::channel(false);
        let (halt, halted) = watch::channel(false);
        let answer = |_| answer_after(ms(40));
        let load =
            tokio::spawn(
                async move { run_halting(&plan(20.0, ms(60_000), 100, ms(1000)), stop, halted, answer).await },
            );
        poll::until(start + ms(275)).await;
        halt.send_replace(true);
        let halted_run = load.await.expect("no panic").expect("a valid plan");
        assert_eq!(halted_run.recorder.records().len(), 6, "due at 0, 50, ..., 250 ms");
        assert_eq!(
            start.elapsed(),
            ms(290),
            "the one in flight still answered, 40 ms after 250 ms"
        );
    }

    #[test]
    fn plans_that_make_no_sense_are_refused() {
        assert_eq!(plan(20.0, ms(1000), 10, ms(1000)).check(), Ok(()));
        let too_long = MAX_DURATION + ms(1);
        for (rate, duration, max_in_flight, timeout) in [
            (f64::NAN, ms(1000), 10, ms(1000)),
            (0.0, ms(1000), 10, ms(1000)),
            (20.0, too_long, 10, ms(1000)),
            (20.0, ms(1000), 0, ms(1000)),
            (20.0, ms(1000), 10, Duration::ZERO),
        ] {
            let bad = plan(rate, duration, max_in_flight, timeout);
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
