//! Waiting, measured. [`eventually`] and [`holds_for`] are the only code in the suite that waits:
//! both return what they measured (elapsed time, attempts, the last observation) and, when they
//! give up, say what they last saw.

use std::fmt;
use std::time::{Duration, Instant};

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

/// Formats a duration the way every report of the suite does: seconds with one decimal below a
/// minute, milliseconds below a second.
pub fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
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
    loop {
        let round = Instant::now();
        attempts += 1;
        let last_seen = match probe().await {
            Ok(value) => {
                return Ok(Measured {
                    value,
                    elapsed: start.elapsed(),
                    attempts,
                });
            }
            Err(seen) => seen,
        };
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
/// the wait early and says what broke and when.
pub async fn holds_for<F>(what: &str, tick: Duration, window: Duration, mut probe: F) -> Result<Held, Broke>
where
    F: AsyncFnMut() -> Result<String, String>,
{
    let start = Instant::now();
    let mut attempts = 0;
    loop {
        let round = Instant::now();
        attempts += 1;
        match probe().await {
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

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(10);

    #[tokio::test]
    async fn eventually_reports_attempts_and_value() {
        let mut n = 0;
        let got = eventually("third call", TICK, Duration::from_secs(5), || {
            n += 1;
            let now = n;
            async move { if now >= 3 { Ok(now) } else { Err(format!("call {now}")) } }
        })
        .await
        .expect("the third call succeeds");
        assert_eq!((got.value, got.attempts), (3, 3));
        assert!(got.elapsed >= 2 * TICK, "two ticks passed: {:?}", got.elapsed);
    }

    #[tokio::test]
    async fn eventually_timeout_says_what_it_last_saw() {
        let err = eventually("opa breaker OPEN", TICK, Duration::from_millis(50), || async {
            Err::<(), _>("opa CLOSED failures=0".to_string())
        })
        .await
        .expect_err("never true");
        let text = err.to_string();
        assert!(text.starts_with("timed out after "), "{text}");
        assert!(
            text.ends_with("waiting for opa breaker OPEN; last seen: opa CLOSED failures=0"),
            "{text}"
        );
        assert!(err.attempts >= 2 && err.waited >= Duration::from_millis(50));
    }

    #[tokio::test]
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
        assert_eq!(err.attempts, 3);
        assert!(err.to_string().starts_with("status degraded stopped holding after "));
        assert!(err.to_string().ends_with("(attempt 3): saw unhealthy"));
    }

    #[tokio::test]
    async fn holds_for_covers_the_window() {
        let held = holds_for("alive", TICK, Duration::from_millis(60), || async {
            Ok("alive".to_string())
        })
        .await
        .expect("always true");
        assert!(held.window >= Duration::from_millis(60) && held.attempts >= 6);
    }

    #[test]
    fn durations_read_like_the_reports() {
        assert_eq!(secs(Duration::from_millis(1840)), "1.8 s");
        assert_eq!(secs(Duration::from_millis(240)), "240 ms");
    }
}
