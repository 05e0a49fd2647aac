//! The journal of a scenario: every event with its time, the measurements with their budgets, the
//! findings and the verdict, written as JSON under `<state dir>/<run id>/`. Events are typed, so
//! the timeline ([`crate::timeline`]) and the summary ([`crate::report`]) are drawn from the
//! journal alone. Secrets never enter it: events carry states, names and durations, never
//! credentials or tokens.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::vocab::fault::FaultSpec;
use crate::vocab::finding::{Finding, Severity};
use crate::vocab::health::{Breaker, BreakerState, Overall};
use crate::vocab::load::LoadReport;
use crate::vocab::units::ms;

/// The state of one alert as the suite saw it (Prometheus' states, plus AlertManager's
/// suppression by an inhibition, plus resolved once it is gone again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
    Suppressed,
    Resolved,
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Suppressed => "suppressed",
            AlertState::Resolved => "resolved",
        })
    }
}

/// What happened. `from: None` means the first observation of that state in the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The steady state held on `instance` before the fault.
    Preflight { instance: String },
    /// The fault was seen to take effect (its service stopped answering).
    FaultApplied { fault: FaultSpec },
    /// The fault was undone and its service answered again, `restore_ms` after the restore began.
    FaultRestored { fault: FaultSpec, restore_ms: u64 },
    BreakerChanged {
        instance: String,
        breaker: Breaker,
        from: Option<BreakerState>,
        to: BreakerState,
    },
    HealthChanged {
        instance: String,
        from: Option<Overall>,
        to: Overall,
    },
    AlertChanged {
        alert: String,
        from: Option<AlertState>,
        to: AlertState,
    },
    /// The steady state after the restore: `settled` says whether it came back.
    Postcheck { instance: String, settled: bool },
    /// Anything else worth a line (measurements, timeouts, findings): the event's `text` says it.
    Note,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds since the scenario started.
    pub t_ms: u64,
    /// The event as one line, for people reading the JSON.
    pub text: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub what: String,
    pub measured_ms: u64,
    /// When the measured wait ended, in milliseconds since the scenario started; it began
    /// `measured_ms` earlier.
    #[serde(default)]
    pub at_ms: u64,
    /// The budget's name: a requirement id or a budget the suite derives.
    #[serde(default)]
    pub budget_label: Option<String>,
    pub budget_ms: Option<u64>,
    pub within_budget: bool,
}

impl Measurement {
    /// Milliseconds since the scenario started at which the measured wait began.
    pub fn start_ms(&self) -> u64 {
        self.at_ms.saturating_sub(self.measured_ms)
    }
}

/// A scenario's verdict as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Running,
    Pass,
    Fail,
    /// The steady state did not hold before the fault; nothing was injected.
    Precondition,
}

impl Outcome {
    /// Any failing finding fails the scenario; a failed precondition alone means it never ran.
    pub fn of(findings: &[Finding]) -> Outcome {
        if findings.iter().any(|f| f.severity == Severity::Fail) {
            Outcome::Fail
        } else if findings.iter().any(|f| f.severity == Severity::Precondition) {
            Outcome::Precondition
        } else {
            Outcome::Pass
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Running => "running",
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Precondition => "PRECONDITION",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub requirement: String,
    /// The requirement's text, so a journal reads on its own.
    #[serde(default)]
    pub title: String,
    pub target: String,
    pub started_unix_ms: u64,
    pub events: Vec<Event>,
    pub measurements: Vec<Measurement>,
    pub findings: Vec<Finding>,
    pub verdict: Outcome,
    /// Phase 4.5: each stream of load, its HDR summary per phase and its one-second windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load: Vec<LoadReport>,
    #[serde(skip)]
    started: Option<Instant>,
}

impl Journal {
    pub fn new(requirement: &str, title: &str, target: &str) -> Journal {
        Journal {
            requirement: requirement.to_string(),
            title: title.to_string(),
            target: target.to_string(),
            started_unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).map(ms).unwrap_or(0),
            events: Vec::new(),
            measurements: Vec::new(),
            findings: Vec::new(),
            verdict: Outcome::Running,
            load: Vec::new(),
            started: Some(Instant::now()),
        }
    }

    pub fn since_start(&self, at: Instant) -> Duration {
        self.started
            .map(|s| at.saturating_duration_since(s))
            .unwrap_or_default()
    }

    /// Records `kind` at `at`; events observed out of order (a poll flushed late) are put in place.
    pub fn event(&mut self, at: Instant, text: impl Into<String>, kind: EventKind) {
        let t_ms = ms(self.since_start(at));
        let event = Event {
            t_ms,
            text: text.into(),
            kind,
        };
        let place = self.events.partition_point(|e| e.t_ms <= t_ms);
        self.events.insert(place, event);
    }

    /// A free-text event.
    pub fn note(&mut self, at: Instant, text: impl Into<String>) {
        self.event(at, text, EventKind::Note);
    }

    pub fn measurement(&mut self, what: &str, measured: Duration, budget: Option<(&str, Duration)>) {
        self.measurements.push(Measurement {
            what: what.to_string(),
            measured_ms: ms(measured),
            at_ms: ms(self.since_start(Instant::now())),
            budget_label: budget.map(|(label, _)| label.to_string()),
            budget_ms: budget.map(|(_, b)| ms(b)),
            within_budget: budget.is_none_or(|(_, b)| measured <= b),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_events_round_trip_with_their_kind_beside_the_time() {
        let mut j = Journal::new("4.1-opa", "OPA stopped -> opa breaker OPEN", "reference");
        let now = Instant::now();
        j.event(
            now,
            "USA opa breaker CLOSED -> OPEN",
            EventKind::BreakerChanged {
                instance: "USA".into(),
                breaker: Breaker::Opa,
                from: Some(BreakerState::Closed),
                to: BreakerState::Open,
            },
        );
        j.note(now, "a note");
        let text = serde_json::to_string(&j).expect("serialises");
        assert!(text.contains(r#""kind":"breaker_changed""#), "{text}");
        assert!(text.contains(r#""to":"OPEN""#), "{text}");
        let back: Journal = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back.events, j.events);
        assert_eq!(back.verdict, Outcome::Running);
    }

    #[test]
    fn late_events_are_put_in_time_order() {
        let mut j = Journal::new("x", "", "t");
        let early = Instant::now();
        let late = early + Duration::from_millis(500);
        j.note(late, "second");
        j.note(early, "first");
        let texts: Vec<_> = j.events.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(texts, ["first", "second"]);
    }
}
