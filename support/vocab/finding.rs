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
    D11,
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
    /// A breaker sticks OPEN when its dependency fails again in HALF_OPEN while another is OPEN.
    R11,
    /// A spoke skips signature verification while its Keycloak is down.
    R12,
    /// Tokens with `alg: none` are accepted.
    R13,
    /// Expired tokens are accepted.
    R14,
    /// A token of an untrusted issuer is accepted, verified with the key its header carries.
    R15,
    /// A breaker's thresholds or open timeout are not DIVE's.
    R16,
    /// OPA down leaves the overall status healthy.
    R17,
    /// The hub keeps listing a spoke as unhealthy after it heartbeats again.
    R18,
}

impl Defect {
    /// R* defects exist only in the reference deployment: a live DIVE is never said to have one.
    pub fn reference_only(self) -> bool {
        // Every R variant is declared after every D variant.
        self >= Defect::R1
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
            Defect::D11 => "introspection cache keyed by the token's first 16 characters",
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
            Defect::R11 => {
                "reference defect: a breaker that fails again in HALF_OPEN while another is OPEN sticks OPEN"
            }
            Defect::R12 => "reference defect: a spoke skips signature verification while its Keycloak is down",
            Defect::R13 => "reference defect: tokens with alg none are accepted",
            Defect::R14 => "reference defect: expired tokens are accepted",
            Defect::R15 => "reference defect: an untrusted issuer is accepted on the key its token carries",
            Defect::R16 => "reference defect: breaker thresholds or open timeout differ from DIVE's",
            Defect::R17 => "reference defect: OPA down leaves the overall status healthy",
            Defect::R18 => "reference defect: the hub keeps listing a recovered spoke as unhealthy",
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

/// `text` with what varies from run to run replaced, so that a diagnosis can be pinned by a
/// snapshot: durations (`<duration>`), ports (`<port>`), long ids (`<id>`) and other numbers
/// (`<n>`), and the directories of this checkout (`<state>`, `<crate>`), which differ from machine
/// to machine. Requirement ids, tags and HTTP codes written `HTTP 503` or `HTTP 200/403` stay.
/// `state_dir` is the run's state directory (the configuration's, passed in: only
/// `infra::config` reads the environment).
pub fn redacted(text: &str, state_dir: &str) -> String {
    let mut text = text.to_string();
    if state_dir.len() > 1 {
        text = text.replace(state_dir, "<state>");
    }
    let text = text.replace(env!("CARGO_MANIFEST_DIR"), "<crate>");
    let is_word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        if !is_word(c) {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let len = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
        let (word, after) = rest.split_at(len);
        // A sentence's full stop is not part of the word.
        let word = word.trim_end_matches('.');
        let stop = &rest[word.len()..len];
        rest = after;
        let digits = word.chars().filter(char::is_ascii_digit).count();
        let number = digits > 0 && word.chars().all(|c| c.is_ascii_digit() || c == '.');
        if number {
            let unit = [" µs", " ms", " s", " min"].into_iter().find(|u| {
                stop.is_empty()
                    && rest.starts_with(u)
                    && !rest[u.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
            });
            if let Some(unit) = unit {
                out.push_str("<duration>");
                rest = &rest[unit.len()..];
            } else if out.ends_with(':') {
                out.push_str("<port>");
            } else if http_code_follows(&out) {
                out.push_str(word);
            } else {
                out.push_str("<n>");
            }
        } else if digits >= 2 && word.len() >= 12 {
            out.push_str("<id>");
        } else {
            out.push_str(word);
        }
        out.push_str(stop);
    }
    out
}

/// The text so far ends `HTTP ` or `HTTP 200/`: the number that follows is an HTTP code.
fn http_code_follows(before: &str) -> bool {
    let codes = before
        .strip_suffix('/')
        .map(|b| b.trim_end_matches(|c: char| c.is_ascii_digit()));
    before.ends_with("HTTP ") || codes.is_some_and(|b| b.ends_with("HTTP "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_keeps_tags_ids_of_requirements_and_http_codes() {
        let text = "the USA opa breaker was still CLOSED after 39 consecutive failed calls and opened after 40; took 5.1 s, budget 3.0 s.";
        assert_eq!(
            redacted(text, ""),
            "the USA opa breaker was still CLOSED after <n> consecutive failed calls and opened after <n>; took <duration>, budget <duration>."
        );
        assert_eq!(
            redacted(
                "GET https://127.0.0.1:43123/api/health: 12 ms, HTTP 503, 0 x 5xx (4.1-opa, D10, R16)",
                ""
            ),
            "GET https://<n>:<port>/api/health: <duration>, HTTP 503, <n> x 5xx (4.1-opa, D10, R16)"
        );
        assert_eq!(
            redacted(
                "40 sent: 40 decided (HTTP 200/403: 2 by OPA), 0 x HTTP 401, GET /api/resources/123/4",
                ""
            ),
            "<n> sent: <n> decided (HTTP 200/403: <n> by OPA), <n> x HTTP 401, GET /api/resources/<n>/<n>"
        );
        assert_eq!(
            redacted(
                "revoked token 3f2a9c1e-77b4-4e0e-9d1a-5c1b2a3d4e5f of alice after 2 smiles",
                ""
            ),
            "revoked token <id> of alice after <n> smiles"
        );
    }
}
