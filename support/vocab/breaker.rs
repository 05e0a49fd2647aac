//! DIVE's circuit-breaker thresholds (contract section 3): how many consecutive failures open each
//! breaker, how long it stays OPEN after its last failure, how many successes close it again.

use std::time::Duration;

use crate::vocab::health::Breaker;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub timeout: Duration,
    pub success_threshold: u32,
}

impl BreakerConfig {
    /// DIVE's thresholds, with the open timeout multiplied by `time_scale`.
    pub fn dive(breaker: Breaker, time_scale: f64) -> BreakerConfig {
        let (failure_threshold, timeout_s, success_threshold) = match breaker {
            Breaker::Opa => (5, 60, 2),
            Breaker::Keycloak => (3, 30, 2),
            Breaker::Mongodb => (5, 60, 3),
            Breaker::Kas => (3, 30, 2),
        };
        BreakerConfig {
            failure_threshold,
            timeout: Duration::from_secs(timeout_s).mul_f64(time_scale),
            success_threshold,
        }
    }
}
