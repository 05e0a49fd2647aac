//! DIVE's circuit breaker, step for step (contract section 3): consecutive failures open it, a call
//! arriving `timeout` after the last failure goes through as HALF_OPEN, enough successes close it.
//! Every transition happens inside a call; nothing moves without traffic.

use std::time::Duration;

use crate::vocab::breaker::BreakerConfig;
use crate::vocab::health::{BreakerState, BreakerStats};

/// Deliberate departures from DIVE's breaker, for proving the recovery scenarios can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    /// DIVE's breaker.
    None,
    /// Reference defect R2: successes in HALF_OPEN are counted but never close the breaker.
    StuckHalfOpen,
    /// Reference defect R8: an OPEN breaker closes by itself once its timeout has passed, with no
    /// call at all (what the plan's "restart, sleep 90, expect CLOSED" assumes).
    ClosesOnTimer,
    /// Reference defect R16: DIVE's state machine with other numbers: eight times the failure
    /// threshold, a quarter of the open timeout, one success to close. The plan's wide budgets
    /// still pass; only judging each transition against DIVE's numbers catches it.
    OffDivesNumbers,
}

impl Quirk {
    /// The configuration a breaker with this quirk runs with, given DIVE's.
    pub fn config(self, dive: BreakerConfig) -> BreakerConfig {
        match self {
            Quirk::OffDivesNumbers => BreakerConfig {
                failure_threshold: dive.failure_threshold * 8,
                timeout: dive.timeout / 4,
                success_threshold: 1,
            },
            _ => dive,
        }
    }
}

/// What the breaker decided about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Proceed,
    Rejected,
}

#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    quirk: Quirk,
    state: BreakerState,
    failures: u64,
    successes: u32,
    reject_count: u64,
    total_requests: u64,
    last_failure: Option<Duration>,
    /// Every state change, in order, for the transitions counter.
    transitions: Vec<(BreakerState, BreakerState)>,
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig, quirk: Quirk) -> CircuitBreaker {
        CircuitBreaker {
            config,
            quirk,
            state: BreakerState::Closed,
            failures: 0,
            successes: 0,
            reject_count: 0,
            total_requests: 0,
            last_failure: None,
            transitions: Vec::new(),
        }
    }

    /// The start of a call at time `now` (any monotonic origin).
    pub fn admit(&mut self, now: Duration) -> Admission {
        self.total_requests += 1;
        if self.state == BreakerState::Open {
            let since_failure = self.last_failure.map(|t| now.saturating_sub(t));
            if since_failure.is_some_and(|d| d >= self.config.timeout) {
                self.move_to(BreakerState::HalfOpen);
            } else {
                self.reject_count += 1;
                return Admission::Rejected;
            }
        }
        Admission::Proceed
    }

    pub fn on_success(&mut self) {
        self.failures = 0;
        if self.state == BreakerState::HalfOpen {
            self.successes += 1;
            if self.successes >= self.config.success_threshold && self.quirk != Quirk::StuckHalfOpen {
                self.successes = 0;
                self.move_to(BreakerState::Closed);
            }
        }
    }

    pub fn on_failure(&mut self, now: Duration) {
        self.failures += 1;
        self.last_failure = Some(now);
        let reopen = self.state == BreakerState::HalfOpen;
        let trip = self.state == BreakerState::Closed && self.failures >= u64::from(self.config.failure_threshold);
        if reopen || trip {
            self.successes = 0;
            self.move_to(BreakerState::Open);
        }
    }

    fn move_to(&mut self, to: BreakerState) {
        self.transitions.push((self.state, to));
        self.state = to;
    }

    /// The breaker as a reader sees it at `now`. Only a timer-driven breaker (R8) changes by
    /// being looked at; DIVE's changes only inside calls.
    pub fn stats_at(&mut self, now: Duration) -> BreakerStats {
        let expired = self
            .last_failure
            .is_some_and(|t| now.saturating_sub(t) >= self.config.timeout);
        if self.quirk == Quirk::ClosesOnTimer && self.state == BreakerState::Open && expired {
            self.failures = 0;
            self.move_to(BreakerState::Closed);
        }
        self.stats()
    }

    pub fn stats(&self) -> BreakerStats {
        BreakerStats {
            state: self.state,
            failures: self.failures,
            reject_count: self.reject_count,
        }
    }

    pub fn successes(&self) -> u32 {
        self.successes
    }

    pub fn total_requests(&self) -> u64 {
        self.total_requests
    }

    pub fn transitions(&self) -> &[(BreakerState, BreakerState)] {
        &self.transitions
    }
}

#[cfg(test)]
mod tests {
    //! Replays the traces recorded from DIVE's own breaker code with a fake clock.

    use std::path::PathBuf;

    use serde::Deserialize;

    use super::*;
    use crate::vocab::health::Breaker;

    #[derive(Deserialize)]
    struct Golden {
        traces: Vec<Trace>,
    }

    #[derive(Deserialize)]
    struct Trace {
        breaker: Breaker,
        scenario: String,
        config: TraceConfig,
        steps: Vec<Step>,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct TraceConfig {
        failure_threshold: u32,
        #[serde(rename = "timeout_ms")]
        timeout_ms: u64,
        success_threshold: u32,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Step {
        #[serde(rename = "t_ms")]
        t_ms: u64,
        call: String,
        result: String,
        state: BreakerState,
        failures: u64,
        successes: u32,
        reject_count: u64,
        total_requests: u64,
    }

    fn golden_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/golden/circuit-breaker-traces.json")
    }

    #[test]
    fn replays_every_golden_trace_of_dives_breaker() {
        let path = golden_path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            let msg = format!(
                "golden breaker traces not found at {}: the replay did NOT run (they are development data, kept beside the repository in shared/golden)",
                path.display()
            );
            assert!(!crate::infra::config::must_config().ci, "{msg}");
            eprintln!("NOT RUN: {msg}");
            return;
        };
        let golden: Golden = serde_json::from_str(&text).expect("golden traces decode");
        assert!(!golden.traces.is_empty());
        let mut steps = 0;
        for trace in &golden.traces {
            let config = BreakerConfig {
                failure_threshold: trace.config.failure_threshold,
                timeout: Duration::from_millis(trace.config.timeout_ms),
                success_threshold: trace.config.success_threshold,
            };
            assert_eq!(
                config,
                BreakerConfig::dive(trace.breaker, 1.0),
                "{} thresholds",
                trace.breaker
            );
            let mut cb = CircuitBreaker::new(config, Quirk::None);
            for (i, step) in trace.steps.iter().enumerate() {
                let now = Duration::from_millis(step.t_ms);
                let result = match cb.admit(now) {
                    Admission::Rejected => "rejected",
                    Admission::Proceed if step.call == "ok" => {
                        cb.on_success();
                        "ok"
                    }
                    Admission::Proceed => {
                        cb.on_failure(now);
                        "failed"
                    }
                };
                let got = (
                    result,
                    cb.stats().state,
                    cb.stats().failures,
                    cb.successes(),
                    cb.stats().reject_count,
                    cb.total_requests(),
                );
                let want = (
                    step.result.as_str(),
                    step.state,
                    step.failures,
                    step.successes,
                    step.reject_count,
                    step.total_requests,
                );
                assert_eq!(
                    got, want,
                    "{} {} step {i} at {} ms",
                    trace.breaker, trace.scenario, step.t_ms
                );
                steps += 1;
            }
        }
        eprintln!(
            "replayed {} golden traces, {steps} steps, from {}",
            golden.traces.len(),
            path.display()
        );
    }

    #[test]
    fn stuck_half_open_quirk_never_closes() {
        let config = BreakerConfig::dive(Breaker::Opa, 1.0);
        let mut cb = CircuitBreaker::new(config, Quirk::StuckHalfOpen);
        for _ in 0..5 {
            cb.admit(Duration::ZERO);
            cb.on_failure(Duration::ZERO);
        }
        for _ in 0..5 {
            assert_eq!(cb.admit(config.timeout), Admission::Proceed);
            cb.on_success();
        }
        assert_eq!(cb.stats().state, BreakerState::HalfOpen);
    }
}
