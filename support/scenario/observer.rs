//! What the polls of a scenario saw change: every health status, breaker and alert state, kept so
//! that only changes are journaled, in the order they were seen. Every breaker reading is also
//! judged against DIVE's state machine (contract section 3), whatever the scenario waits for.

use std::collections::HashMap;
use std::time::Instant;

use crate::scenario::diagnose;
use crate::vocab::breaker::BreakerConfig;
use crate::vocab::finding::Finding;
use crate::vocab::health::{Breaker, BreakerState, BreakerStats, Detailed, Overall};
use crate::vocab::journal::{AlertState, EventKind};

/// The last state seen of every health status, breaker and alert, so that only changes are
/// journaled. Changes wait in `pending`, and judgements in `judged`, until the scenario next
/// records something.
pub struct Observer {
    time_scale: f64,
    health: HashMap<String, Overall>,
    breakers: HashMap<(String, Breaker), Seen>,
    alerts: HashMap<String, AlertState>,
    pub pending: Vec<(Instant, String, EventKind)>,
    pub judged: Vec<Finding>,
}

/// One breaker as the polls saw it, with what judging its next transition needs.
#[derive(Debug, Clone, Copy)]
struct Seen {
    state: BreakerState,
    /// When the last reading that found it CLOSED was asked for: it opened after this.
    closed_asked: Option<Instant>,
    /// The most consecutive failures a CLOSED reading showed since it was last seen OPEN.
    closed_failures: u64,
    /// `closed_asked` as it was when the breaker was first seen OPEN.
    opened_after: Option<Instant>,
    /// A departure from DIVE's numbers was already reported for this breaker.
    judged: bool,
}

impl Observer {
    pub fn new(time_scale: f64) -> Observer {
        Observer {
            time_scale,
            health: HashMap::new(),
            breakers: HashMap::new(),
            alerts: HashMap::new(),
            pending: Vec::new(),
            judged: Vec::new(),
        }
    }

    /// A detailed health answer to a request made at `asked` and answered at `at`.
    pub fn detailed(&mut self, asked: Instant, at: Instant, instance: &str, d: &Detailed) {
        let from = self.health.insert(instance.to_string(), d.status);
        if from != Some(d.status) {
            let text = match from {
                Some(from) => format!("{instance} status {from} -> {}", d.status),
                None => format!("{instance} status {}", d.status),
            };
            let kind = EventKind::HealthChanged {
                instance: instance.to_string(),
                from,
                to: d.status,
            };
            self.pending.push((at, text, kind));
        }
        // The error fallback has no breakers: keep the last states seen rather than invent one.
        let Some(breakers) = &d.circuit_breakers else {
            return;
        };
        for breaker in Breaker::ALL {
            let stats = breakers.get(breaker);
            let to = stats.state;
            let from = self.judge(asked, at, instance, breaker, stats);
            if from == Some(to) {
                continue;
            }
            let text = match from {
                Some(from) => format!("{instance} {breaker} breaker {from} -> {to}"),
                None => format!("{instance} {breaker} breaker {to}"),
            };
            let kind = EventKind::BreakerChanged {
                instance: instance.to_string(),
                breaker,
                from,
                to,
            };
            self.pending.push((at, text, kind));
        }
    }

    /// Records a breaker reading and judges it against DIVE's state machine: DIVE's breaker is never
    /// seen CLOSED with its threshold of consecutive failures, and leaves OPEN no sooner than its
    /// timeout after its last failure, which came after the last CLOSED reading was asked for.
    /// Returns the state seen before.
    fn judge(
        &mut self,
        asked: Instant,
        at: Instant,
        instance: &str,
        breaker: Breaker,
        stats: BreakerStats,
    ) -> Option<BreakerState> {
        let dive = BreakerConfig::dive(breaker, self.time_scale);
        let key = (instance.to_string(), breaker);
        let before = self.breakers.get(&key).copied();
        let mut seen = before.unwrap_or(Seen {
            state: stats.state,
            closed_asked: None,
            closed_failures: 0,
            opened_after: None,
            judged: false,
        });
        let was = before.map(|b| b.state);
        let mut verdict = None;
        // Left OPEN, for HALF_OPEN or straight for CLOSED (a HALF_OPEN between two readings).
        if was == Some(BreakerState::Open)
            && stats.state != BreakerState::Open
            && let Some(opened_after) = seen.opened_after.take()
        {
            verdict = diagnose::reopened_early(instance, breaker, at.saturating_duration_since(opened_after), dive);
        }
        match (was, stats.state) {
            (_, BreakerState::Closed) => {
                seen.closed_asked = Some(asked);
                seen.closed_failures = seen.closed_failures.max(stats.failures);
            }
            (Some(BreakerState::Closed), BreakerState::Open) => {
                verdict = diagnose::opened_off_threshold(instance, breaker, seen.closed_failures, stats, dive);
                seen.opened_after = seen.closed_asked;
                seen.closed_failures = 0;
            }
            _ => {}
        }
        if let Some(finding) = verdict.filter(|_| !seen.judged) {
            seen.judged = true;
            self.judged.push(finding);
        }
        seen.state = stats.state;
        self.breakers.insert(key, seen);
        was
    }

    pub fn alert(&mut self, at: Instant, alert: &str, to: AlertState) {
        let from = self.alerts.insert(alert.to_string(), to);
        if from == Some(to) {
            return;
        }
        let text = match from {
            Some(from) => format!("alert {alert} {from} -> {to}"),
            None => format!("alert {alert} {to}"),
        };
        let kind = EventKind::AlertChanged {
            alert: alert.to_string(),
            from,
            to,
        };
        self.pending.push((at, text, kind));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

    use crate::vocab::finding::Defect;

    fn detailed(status: &str, opa: &str) -> Detailed {
        opa_with(status, opa, 0)
    }

    fn opa_with(status: &str, opa: &str, failures: u64) -> Detailed {
        let closed = r#"{"state":"CLOSED","failures":0,"rejectCount":0}"#;
        let body = format!(
            r#"{{"status":"{status}","timestamp":"t","circuitBreakers":{{"opa":{{"state":"{opa}","failures":{failures},"rejectCount":0}},"keycloak":{closed},"mongodb":{closed},"kas":{closed}}}}}"#
        );
        serde_json::from_str(&body).expect("a detailed body")
    }

    /// Readings of the opa breaker, each `(seconds from the start, state, failures)`, asked and
    /// answered at that moment; returns what the observer judged.
    fn judge(readings: &[(u64, &str, u64)]) -> Vec<Finding> {
        let mut o = Observer::new(1.0);
        let start = Instant::now();
        for &(s, state, failures) in readings {
            let at = start + Duration::from_secs(s);
            o.detailed(at, at, "USA", &opa_with("healthy", state, failures));
        }
        o.judged
    }

    #[test]
    fn dives_own_transitions_are_not_judged() {
        // Five failures open it; HALF_OPEN 61 s after the last CLOSED reading; closed again.
        let dive = [
            (0, "CLOSED", 0),
            (1, "CLOSED", 4),
            (2, "OPEN", 5),
            (62, "HALF_OPEN", 0),
            (63, "CLOSED", 0),
        ];
        assert!(judge(&dive).is_empty(), "{:?}", judge(&dive));
        // In-flight calls counted past the threshold once OPEN.
        assert!(judge(&[(0, "CLOSED", 3), (1, "OPEN", 8)]).is_empty());
        // First seen OPEN: nothing to judge the timeout against.
        assert!(judge(&[(0, "OPEN", 5), (5, "HALF_OPEN", 0)]).is_empty());
    }

    #[test]
    fn a_breaker_off_dives_numbers_is_judged_once_and_named() {
        let late = judge(&[(0, "CLOSED", 12), (1, "OPEN", 40)]);
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].defect, Some(Defect::R16));
        let early = judge(&[(0, "CLOSED", 0), (1, "OPEN", 5), (16, "HALF_OPEN", 0)]);
        assert_eq!(early.len(), 1, "{early:?}");
        assert!(
            early[0]
                .message
                .contains("left OPEN 16.0 s after it was last seen CLOSED"),
            "{}",
            early[0]
        );
        // Straight from OPEN to CLOSED between two readings: the same judgement.
        let skipped = judge(&[(0, "CLOSED", 0), (1, "OPEN", 5), (16, "CLOSED", 0)]);
        assert_eq!(skipped.len(), 1);
        let twice = judge(&[(0, "CLOSED", 9), (1, "OPEN", 9), (2, "HALF_OPEN", 0)]);
        assert_eq!(twice.len(), 1, "one report per breaker: {twice:?}");
    }

    #[test]
    fn the_observer_journals_first_sight_and_changes_only() {
        let mut o = Observer::new(1.0);
        let now = Instant::now();
        o.detailed(now, now, "USA", &detailed("healthy", "CLOSED"));
        assert_eq!(o.pending.len(), 5, "first sight: health and four breakers");
        o.detailed(now, now, "USA", &detailed("healthy", "CLOSED"));
        assert_eq!(o.pending.len(), 5, "nothing changed");
        o.detailed(now, now, "USA", &detailed("unhealthy", "OPEN"));
        let texts: Vec<&str> = o.pending[5..].iter().map(|(_, t, _)| t.as_str()).collect();
        assert_eq!(
            texts,
            ["USA status healthy -> unhealthy", "USA opa breaker CLOSED -> OPEN"]
        );
        // The error fallback has no breakers: the last states stand.
        let fallback: Detailed =
            serde_json::from_str(r#"{"status":"unhealthy","timestamp":"t","error":"x"}"#).expect("fallback");
        o.detailed(now, now, "USA", &fallback);
        assert_eq!(o.pending.len(), 7);
        o.alert(now, "CircuitBreakerOpen{service=opa}", AlertState::Firing);
        o.alert(now, "CircuitBreakerOpen{service=opa}", AlertState::Firing);
        assert!(matches!(
            o.pending.last(),
            Some((
                _,
                _,
                EventKind::AlertChanged {
                    from: None,
                    to: AlertState::Firing,
                    ..
                }
            ))
        ));
        assert_eq!(o.pending.len(), 8);
    }
}
