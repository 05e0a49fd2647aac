//! A chain of measured stages from one origin (the moment a breaker changed state): how an alert
//! travels through the pipeline, each stage timed from the previous one and from the origin, all
//! within one deadline from the origin.

use std::time::Duration;

use tokio::time::Instant;

use crate::infra::poll::{TimedOut, eventually};

pub struct Stages {
    origin: Instant,
    previous: Instant,
    deadline: Duration,
    reached: usize,
}

/// One stage reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// 1 for the first stage.
    pub number: usize,
    pub since_previous: Duration,
    pub since_origin: Duration,
}

impl Stages {
    /// Stages from `origin`, the whole chain given at most `deadline` from it.
    pub fn from(origin: std::time::Instant, deadline: Duration) -> Stages {
        let origin = Instant::from_std(origin);
        Stages {
            origin,
            previous: origin,
            deadline,
            reached: 0,
        }
    }

    /// The number of the stage to be reached next.
    pub fn next(&self) -> usize {
        self.reached + 1
    }

    /// Polls `probe` every `tick` until the next stage is reached, within what is left of the
    /// deadline.
    pub async fn reach<F>(&mut self, what: &str, tick: Duration, probe: F) -> Result<Stage, TimedOut>
    where
        F: AsyncFnMut() -> Result<(), String>,
    {
        let remaining = self.deadline.saturating_sub(self.origin.elapsed());
        eventually(what, tick, remaining, probe).await?;
        let now = Instant::now();
        let stage = Stage {
            number: self.next(),
            since_previous: now - self.previous,
            since_origin: now - self.origin,
        };
        self.previous = now;
        self.reached = stage.number;
        Ok(stage)
    }

    /// From the origin to the last stage reached.
    pub fn total(&self) -> Duration {
        self.previous - self.origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    /// A probe that answers from `at` after the origin.
    fn ready_at(origin: Instant, at: Duration) -> impl AsyncFnMut() -> Result<(), String> {
        move || async move {
            if origin.elapsed() >= at {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_stage_is_timed_from_the_previous_one_and_from_the_origin() {
        let origin = Instant::now();
        let mut stages = Stages::from(origin.into_std(), Duration::from_secs(10));
        let first = stages
            .reach("gauge scraped", TICK, ready_at(origin, Duration::from_millis(500)))
            .await
            .expect("reached");
        let second = stages
            .reach("alert firing", TICK, ready_at(origin, Duration::from_millis(1200)))
            .await
            .expect("reached");
        assert_eq!(
            (first.number, first.since_previous, first.since_origin),
            (1, Duration::from_millis(500), Duration::from_millis(500))
        );
        assert_eq!(
            (second.number, second.since_previous, second.since_origin),
            (2, Duration::from_millis(700), Duration::from_millis(1200))
        );
        assert_eq!(stages.total(), Duration::from_millis(1200));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_the_origin_not_from_each_stage() {
        let origin = Instant::now();
        let mut stages = Stages::from(origin.into_std(), Duration::from_secs(2));
        stages
            .reach("first", TICK, ready_at(origin, Duration::from_millis(1500)))
            .await
            .expect("reached");
        let late = stages
            .reach("second", TICK, ready_at(origin, Duration::from_secs(5)))
            .await
            .expect_err("the chain's deadline has passed");
        assert_eq!(late.waited, Duration::from_millis(500), "only what was left of 2 s");
        assert_eq!(stages.next(), 2);
    }
}
