//! Waiting, measured. [`eventually`] and [`holds_for`] are the only code in the suite that waits
//! for a condition: both return what they measured (elapsed time, attempts, the last observation)
//! and, when they give up, say what they last saw. [`Pace`] keeps background traffic at its rate
//! and [`until`] starts each request of the load generator at its intended time. Every probe is bounded by the time left, so a deadline is kept
//! even when one probe would hang for minutes. Time is tokio's, so unit tests run on a paused
//! clock.

// The one module allowed to sleep (see clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::vocab::units::secs;

/// A condition that became true, and how long that took.
#[derive(Debug, Clone)]
pub struct Measured<T> {
    pub value: T,
    pub elapsed: Duration,
    pub attempts: u32,
}

/// A condition that never became true before the deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedOut {
    pub what: String,
    pub waited: Duration,
    pub attempts: u32,
    pub last_seen: String,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {} ({} attempts) waiting for {}; last seen: {}",
            secs(self.waited),
            self.attempts,
            self.what,
            self.last_seen
        )
    }
}

/// A condition that held for the whole window.
#[derive(Debug, Clone)]
pub struct Held {
    pub window: Duration,
    pub attempts: u32,
    pub last_seen: String,
}

/// A condition that stopped holding before the window ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Broke {
    pub what: String,
    pub after: Duration,
    pub attempts: u32,
    pub seen: String,
}

impl fmt::Display for Broke {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} stopped holding after {} (attempt {}): saw {}",
            self.what,
            secs(self.after),
            self.attempts,
            self.seen
        )
    }
}

/// Calls `probe` every `tick` until it returns `Ok`, or until `deadline` has passed since the
/// first call. `Err` carries a description of what the probe saw, kept for the timeout message.
pub async fn eventually<T, F>(
    what: &str,
    tick: Duration,
    deadline: Duration,
    mut probe: F,
) -> Result<Measured<T>, TimedOut>
where
    F: AsyncFnMut() -> Result<T, String>,
{
    let start = Instant::now();
    let mut attempts = 0;
    let mut last_seen = String::new();
    loop {
        let round = Instant::now();
        attempts += 1;
        let left = deadline.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, probe()).await {
            Ok(Ok(value)) => {
                return Ok(Measured {
                    value,
                    elapsed: start.elapsed(),
                    attempts,
                });
            }
            Ok(Err(seen)) => last_seen = seen,
            // What an earlier probe saw stays the news: a probe cut short saw nothing.
            Err(_) if last_seen.is_empty() => {
                last_seen = format!("the probe did not answer within the {} left", secs(left));
            }
            Err(_) => {}
        }
        if start.elapsed() >= deadline {
            return Err(TimedOut {
                what: what.to_string(),
                waited: start.elapsed(),
                attempts,
                last_seen,
            });
        }
        pace(round, tick).await;
    }
}

/// Calls `probe` every `tick` for `window`; every call must return `Ok`. The first `Err` ends
/// the wait early and says what broke and when; so does a probe that does not answer within the
/// rest of the window and [`PROBE_GRACE`] more (what held meanwhile is unknown).
pub async fn holds_for<F>(what: &str, tick: Duration, window: Duration, mut probe: F) -> Result<Held, Broke>
where
    F: AsyncFnMut() -> Result<String, String>,
{
    let start = Instant::now();
    let mut attempts = 0;
    loop {
        let round = Instant::now();
        attempts += 1;
        let bound = window.saturating_sub(start.elapsed()) + PROBE_GRACE.max(tick);
        let answer = tokio::time::timeout(bound, probe())
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {}", secs(bound))));
        match answer {
            Ok(last_seen) if start.elapsed() >= window => {
                return Ok(Held {
                    window: start.elapsed(),
                    attempts,
                    last_seen,
                });
            }
            Ok(_) => {}
            Err(seen) => {
                return Err(Broke {
                    what: what.to_string(),
                    after: start.elapsed(),
                    attempts,
                    seen,
                });
            }
        }
        pace(round, tick).await;
    }
}

/// How long past the end of its window a probe of [`holds_for`] may take: a slow answer is still
/// an answer; one that takes longer leaves the hold unproven.
pub const PROBE_GRACE: Duration = Duration::from_secs(5);

/// A steady pace for loops that are not waiting for a condition (background traffic): each
/// [`Pace::next`] waits out the rest of the current tick, so a slow round does not raise the rate.
pub struct Pace {
    tick: Duration,
    round: Instant,
}

impl Pace {
    pub fn new(tick: Duration) -> Pace {
        Pace {
            tick,
            round: Instant::now(),
        }
    }

    pub async fn next(&mut self) {
        pace(self.round, self.tick).await;
        self.round = Instant::now();
    }
}

/// Sleeps what is left of the tick, so that a slow probe does not slow the pace further and a
/// fast one does not raise the request rate.
async fn pace(round: Instant, tick: Duration) {
    if let Some(rest) = tick.checked_sub(round.elapsed()) {
        tokio::time::sleep(rest).await;
    }
}

/// Waits until `at`: the pacing primitive of the open-model load generator ([`crate::infra::load`]),
/// which starts each request at its intended time whatever earlier requests did. Returns at once
/// when `at` has passed, so a generator that fell behind catches up without waiting.
///
/// Tokio's timer fires on whole milliseconds and the OS poll rounds its timeout up once more, so
/// a timer alone wakes up to 2 ms late: the timer covers the wait up to [`TIMER_SLOP`] before
/// `at`, and a blocking thread sleeps the rest precisely. On a paused clock the blocking sleep
/// holds the clock still, and the final timer wait lands exactly on `at`.
pub async fn until(at: Instant) {
    if let Some(coarse) = at.checked_sub(TIMER_SLOP)
        && Instant::now() < coarse
    {
        tokio::time::sleep_until(coarse).await;
    }
    let rest = at.saturating_duration_since(Instant::now());
    if !rest.is_zero() {
        // A failed join only means the sleep was cut short; the timer below covers the rest.
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
    if Instant::now() < at {
        tokio::time::sleep_until(at).await;
    }
}

/// How late tokio's timer may wake: its millisecond tick plus the poll's rounding.
pub const TIMER_SLOP: Duration = Duration::from_millis(2);

#[cfg(test)]
mod tests {
    //! On tokio's paused clock: time advances only when every task waits, so these tests measure
    //! exact durations in microseconds of real time.

    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    #[tokio::test(start_paused = true)]
    async fn eventually_reports_attempts_value_and_elapsed_time() {
        let mut n = 0;
        let got = eventually("third call", TICK, Duration::from_secs(5), || {
            n += 1;
            let now = n;
            async move { if now >= 3 { Ok(now) } else { Err(format!("call {now}")) } }
        })
        .await
        .expect("the third call succeeds");
        assert_eq!((got.value, got.attempts), (3, 3));
        assert_eq!(got.elapsed, 2 * TICK, "two ticks passed");
    }

    #[tokio::test(start_paused = true)]
    async fn eventually_timeout_says_what_it_last_saw() {
        let err = eventually("opa breaker OPEN", TICK, Duration::from_millis(500), || async {
            Err::<(), _>("opa CLOSED failures=0".to_string())
        })
        .await
        .expect_err("never true");
        let text = err.to_string();
        assert!(text.starts_with("timed out after 500 ms (6 attempts)"), "{text}");
        assert!(
            text.ends_with("waiting for opa breaker OPEN; last seen: opa CLOSED failures=0"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_hangs_is_cut_at_the_deadline() {
        // One health call can take minutes (DIVE 15a319e6 with MongoDB down): the deadline holds.
        let err = eventually("status unhealthy", TICK, Duration::from_secs(8), || async {
            tokio::time::sleep(Duration::from_secs(120)).await;
            Ok::<(), String>(())
        })
        .await
        .expect_err("the probe never answers in time");
        assert_eq!(err.waited, Duration::from_secs(8), "gives up at 8.0 s, not at 120 s");
        assert!(
            err.last_seen.contains("did not answer within the 8.0 s left"),
            "{}",
            err.last_seen
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_last_probe_cut_short_keeps_what_the_one_before_saw() {
        let mut n = 0;
        let err = eventually("hub no longer lists TST", TICK, Duration::from_secs(1), || {
            n += 1;
            let first = n == 1;
            async move {
                if first {
                    Err::<(), String>("unhealthy spokes: [TST]".to_string())
                } else {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(())
                }
            }
        })
        .await
        .expect_err("never true");
        assert_eq!(err.last_seen, "unhealthy spokes: [TST]");
    }

    #[tokio::test(start_paused = true)]
    async fn holds_for_reports_the_break() {
        let mut n = 0;
        let err = holds_for("status degraded", TICK, Duration::from_secs(5), || {
            n += 1;
            let now = n;
            async move {
                if now < 3 {
                    Ok("degraded".to_string())
                } else {
                    Err("unhealthy".to_string())
                }
            }
        })
        .await
        .expect_err("breaks on the third call");
        assert_eq!((err.attempts, err.after), (3, 2 * TICK));
        assert_eq!(
            err.to_string(),
            "status degraded stopped holding after 200 ms (attempt 3): saw unhealthy"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn holds_for_covers_the_window() {
        let held = holds_for("alive", TICK, Duration::from_millis(600), || async {
            Ok("alive".to_string())
        })
        .await
        .expect("always true");
        assert_eq!((held.window, held.attempts), (Duration::from_millis(600), 7));
    }

    #[tokio::test(start_paused = true)]
    async fn holds_for_breaks_on_a_probe_that_hangs() {
        let err = holds_for("alive", TICK, Duration::from_secs(1), || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok("late".to_string())
        })
        .await
        .expect_err("a hanging probe cannot prove the condition held");
        assert!(err.seen.contains("no answer within 6.0 s"), "{}", err.seen);
    }

    #[tokio::test(start_paused = true)]
    async fn pace_keeps_the_rate_when_rounds_are_slow_or_fast() {
        let start = Instant::now();
        let mut pace = Pace::new(TICK);
        for _ in 0..5 {
            pace.next().await;
        }
        assert_eq!(start.elapsed(), 5 * TICK);
    }
}
