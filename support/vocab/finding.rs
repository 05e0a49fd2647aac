//! Findings: what a scenario concluded about DIVE, in DIVE's terms, with the contract's defect id
//! when one applies.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Known defects. `D*` are DIVE's own (contract section 11); `R*` exist only in the reference
/// deployment, to prove that a scenario catches a class of fault DIVE does not happen to ship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Defect {
    D1,
    D2,
    D3,
    D4,
    D5,
    D6,
    D7,
    D8,
    D9,
    D10,
    /// A cache Redis outage makes authorization fail.
    R1,
    /// A breaker that never leaves HALF_OPEN.
    R2,
    /// OPA decisions bypass the opa breaker.
    R3,
    /// One spoke keeps its own blacklist store.
    R4,
    /// The hub never marks a silent spoke unhealthy.
    R5,
    /// Backends do not cache JWKS.
    R6,
    /// A spoke does not trust the hub's token issuer.
    R7,
    /// A breaker closes on a timer, without traffic.
    R8,
    /// An OPEN breaker still waits out its dependency's timeout before the fallback.
    R9,
    /// A failed dependency slows routes that do not need it.
    R10,
}

impl Defect {
    /// R* defects exist only in the reference deployment: a live DIVE is never said to have one.
    pub fn reference_only(self) -> bool {
        matches!(
            self,
            Defect::R1
                | Defect::R2
                | Defect::R3
                | Defect::R4
                | Defect::R5
                | Defect::R6
                | Defect::R7
                | Defect::R8
                | Defect::R9
                | Defect::R10
        )
    }

    pub fn title(self) -> &'static str {
        match self {
            Defect::D1 => "keycloak, mongodb and kas breakers are never called",
            Defect::D2 => "rejects/transitions counters and DB-pool metrics are never written",
            Defect::D3 => "Prometheus loads 0 rules",
            Defect::D4 => "no CircuitBreakerOpen -> HighCircuitBreakerRejects inhibition",
            Defect::D5 => "revoked tokens are still accepted",
            Defect::D6 => "Keycloak down leaves the overall status healthy",
            Defect::D7 => "breakers close only under traffic",
            Defect::D8 => "Prometheus spoke targets use stale ports, no TST job",
            Defect::D9 => "health API moved to /api/health",
            Defect::D10 => "`./dive hub exec` and single-service stop do not exist (exit 0)",
            Defect::R1 => "reference defect: cache Redis outage fails authorization",
            Defect::R2 => "reference defect: breaker never leaves HALF_OPEN",
            Defect::R3 => "reference defect: OPA decisions bypass the opa breaker",
            Defect::R4 => "reference defect: a spoke keeps its own blacklist store",
            Defect::R5 => "reference defect: the hub never marks a silent spoke unhealthy",
            Defect::R6 => "reference defect: backends do not cache JWKS",
            Defect::R7 => "reference defect: a spoke does not trust the hub's issuer",
            Defect::R8 => "reference defect: a breaker closes on a timer, without traffic",
            Defect::R9 => "reference defect: an OPEN breaker still waits out its dependency's timeout",
            Defect::R10 => "reference defect: a failed dependency slows unrelated routes",
        }
    }
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// How much a finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Severity {
    /// The steady state did not hold before the fault; nothing was injected.
    Precondition,
    /// The requirement does not hold.
    Fail,
    /// True and worth knowing, but not a failure (a correction to the plan, an expected behaviour).
    Note,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    pub defect: Option<Defect>,
    pub message: String,
}

impl Finding {
    pub fn fail(message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Fail,
            defect: None,
            message: message.into(),
        }
    }

    pub fn precondition(message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Precondition,
            defect: None,
            message: message.into(),
        }
    }

    pub fn note(message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Note,
            defect: None,
            message: message.into(),
        }
    }

    /// Names the defect this finding is evidence of.
    pub fn defect(mut self, defect: Defect) -> Finding {
        self.defect = Some(defect);
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Precondition => "PRECONDITION",
            Severity::Fail => "FAIL",
            Severity::Note => "NOTE",
        };
        match self.defect {
            Some(d) => write!(f, "{label} [{d}: {}] {}", d.title(), self.message),
            None => write!(f, "{label} {}", self.message),
        }
    }
}
