//! Typed models of DIVE's health API (both generations) and of its four circuit breakers (contract
//! sections 2 and 3). Field names are DIVE's, so the reference backend serialises the same types.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Overall status of a backend (contract section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Overall {
    /// The HTTP code DIVE answers its health routes with (contract section 2).
    pub fn http_code(self) -> u16 {
        match self {
            Overall::Unhealthy => 503,
            Overall::Healthy | Overall::Degraded => 200,
        }
    }
}

impl fmt::Display for Overall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Overall::Healthy => "healthy",
            Overall::Degraded => "degraded",
            Overall::Unhealthy => "unhealthy",
        })
    }
}

/// Status of one dependency in `/detailed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    Up,
    Down,
    Degraded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceHealth {
    pub status: Probe,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Services {
    pub mongodb: ServiceHealth,
    pub opa: ServiceHealth,
    pub keycloak: ServiceHealth,
    pub redis: ServiceHealth,
    /// Absent when the backend has no `KAS_URL`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kas: Option<ServiceHealth>,
    pub cache: ServiceHealth,
    pub blacklist_redis: ServiceHealth,
}

/// The four breakers of a DIVE backend (contract section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Breaker {
    Opa,
    Keycloak,
    Mongodb,
    Kas,
}

impl Breaker {
    pub const ALL: [Breaker; 4] = [Breaker::Opa, Breaker::Keycloak, Breaker::Mongodb, Breaker::Kas];

    /// The breaker's key in JSON and in the `service` metric label.
    pub fn key(self) -> &'static str {
        match self {
            Breaker::Opa => "opa",
            Breaker::Keycloak => "keycloak",
            Breaker::Mongodb => "mongodb",
            Breaker::Kas => "kas",
        }
    }
}

impl fmt::Display for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// Value of the `dive_v3_circuit_breaker_state` gauge.
    pub fn gauge(self) -> u8 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BreakerState::Closed => "CLOSED",
            BreakerState::Open => "OPEN",
            BreakerState::HalfOpen => "HALF_OPEN",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BreakerStats {
    pub state: BreakerState,
    pub failures: u64,
    pub reject_count: u64,
}

impl fmt::Display for BreakerStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failures={} rejectCount={}",
            self.state, self.failures, self.reject_count
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakers {
    pub opa: BreakerStats,
    pub keycloak: BreakerStats,
    pub mongodb: BreakerStats,
    pub kas: BreakerStats,
}

impl Breakers {
    pub fn get(&self, breaker: Breaker) -> BreakerStats {
        match breaker {
            Breaker::Opa => self.opa,
            Breaker::Keycloak => self.keycloak,
            Breaker::Mongodb => self.mongodb,
            Breaker::Kas => self.kas,
        }
    }
}

/// `GET {health}/detailed`. The error fallback (503 with only `status`, `timestamp`, `error`) has
/// no `services` and no `circuitBreakers`, so both are optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Detailed {
    pub status: Overall,
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Services>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breakers: Option<Breakers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The HTTP code it came with, when it came over HTTP.
    #[serde(skip)]
    pub http_code: Option<u16>,
}

impl Detailed {
    /// The status, and the HTTP code agrees with it (when known).
    pub fn is(&self, want: Overall) -> bool {
        self.status == want && self.http_code.is_none_or(|c| c == want.http_code())
    }

    /// One line for reports: `degraded (keycloak down, opa OPEN failures=5 rejectCount=2)`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.services {
            let named = [
                ("mongodb", Some(&s.mongodb)),
                ("opa", Some(&s.opa)),
                ("keycloak", Some(&s.keycloak)),
                ("redis", Some(&s.redis)),
                ("kas", s.kas.as_ref()),
                ("blacklistRedis", Some(&s.blacklist_redis)),
            ];
            for (name, health) in named {
                match health.map(|h| h.status) {
                    Some(Probe::Down) => parts.push(format!("{name} down")),
                    Some(Probe::Degraded) => parts.push(format!("{name} degraded")),
                    _ => {}
                }
            }
        }
        if let Some(b) = &self.circuit_breakers {
            for breaker in Breaker::ALL {
                let stats = b.get(breaker);
                if stats != CLOSED_IDLE {
                    parts.push(format!("{breaker} {stats}"));
                }
            }
        }
        if let Some(e) = &self.error {
            parts.push(format!("error: {e}"));
        }
        let status = match self.http_code {
            Some(code) if code != self.status.http_code() => format!("{} with HTTP {code}", self.status),
            _ => self.status.to_string(),
        };
        if parts.is_empty() {
            status
        } else {
            format!("{status} ({})", parts.join(", "))
        }
    }
}

/// A breaker that has seen nothing: the steady state.
pub const CLOSED_IDLE: BreakerStats = BreakerStats {
    state: BreakerState::Closed,
    failures: 0,
    reject_count: 0,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detailed_reads_dive_field_names() {
        let body = r#"{"status":"degraded","timestamp":"t","uptime":3,
          "services":{"mongodb":{"status":"up","responseTime":4},"opa":{"status":"up"},
            "keycloak":{"status":"down","error":"ECONNREFUSED"},"redis":{"status":"up"},
            "cache":{"status":"up"},"blacklistRedis":{"status":"up"}},
          "metrics":{"activeIdPs":1},"memory":{"used":1,"total":2,"percentage":50},
          "circuitBreakers":{"opa":{"state":"OPEN","failures":5,"rejectCount":2},
            "keycloak":{"state":"CLOSED","failures":0,"rejectCount":0},
            "mongodb":{"state":"HALF_OPEN","failures":0,"rejectCount":0},
            "kas":{"state":"CLOSED","failures":0,"rejectCount":0}}}"#;
        let d: Detailed = serde_json::from_str(body).expect("DIVE's detailed body");
        let b = d.circuit_breakers.expect("breakers");
        assert_eq!(b.opa.reject_count, 2);
        assert_eq!(b.mongodb.state, BreakerState::HalfOpen);
        assert!(d.services.as_ref().expect("services").kas.is_none());
        assert_eq!(d.summary().split(" (").next(), Some("degraded"));
    }

    #[test]
    fn detailed_accepts_the_error_fallback() {
        let body = r#"{"status":"unhealthy","timestamp":"t","error":"Health check failed"}"#;
        let d: Detailed = serde_json::from_str(body).expect("the 503 fallback");
        assert!(d.services.is_none() && d.circuit_breakers.is_none());
        assert_eq!(d.summary(), "unhealthy (error: Health check failed)");
    }

    #[test]
    fn rejects_is_not_a_dive_field() {
        let body = r#"{"state":"OPEN","failures":5,"rejects":2}"#;
        assert!(serde_json::from_str::<BreakerStats>(body).is_err());
    }
}
