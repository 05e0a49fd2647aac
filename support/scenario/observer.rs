//! What the polls of a scenario saw change: every health status, breaker and alert state, kept so
//! that only changes are journaled, in the order they were seen.

use std::collections::HashMap;
use std::time::Instant;

use crate::vocab::health::{Breaker, BreakerState, Detailed, Overall};
use crate::vocab::journal::{AlertState, EventKind};

/// The last state seen of every health status, breaker and alert, so that only changes are
/// journaled. Changes wait in `pending` until the scenario next records something.
#[derive(Default)]
pub struct Observer {
    health: HashMap<String, Overall>,
    breakers: HashMap<(String, Breaker), BreakerState>,
    alerts: HashMap<String, AlertState>,
    pub pending: Vec<(Instant, String, EventKind)>,
}

impl Observer {
    pub fn detailed(&mut self, at: Instant, instance: &str, d: &Detailed) {
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
            let to = breakers.get(breaker).state;
            let from = self.breakers.insert((instance.to_string(), breaker), to);
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

    fn detailed(status: &str, opa: &str) -> Detailed {
        let closed = r#"{"state":"CLOSED","failures":0,"rejectCount":0}"#;
        let body = format!(
            r#"{{"status":"{status}","timestamp":"t","circuitBreakers":{{"opa":{{"state":"{opa}","failures":0,"rejectCount":0}},"keycloak":{closed},"mongodb":{closed},"kas":{closed}}}}}"#
        );
        serde_json::from_str(&body).expect("a detailed body")
    }

    #[test]
    fn the_observer_journals_first_sight_and_changes_only() {
        let mut o = Observer::default();
        let now = Instant::now();
        o.detailed(now, "USA", &detailed("healthy", "CLOSED"));
        assert_eq!(o.pending.len(), 5, "first sight: health and four breakers");
        o.detailed(now, "USA", &detailed("healthy", "CLOSED"));
        assert_eq!(o.pending.len(), 5, "nothing changed");
        o.detailed(now, "USA", &detailed("unhealthy", "OPEN"));
        let texts: Vec<&str> = o.pending[5..].iter().map(|(_, t, _)| t.as_str()).collect();
        assert_eq!(
            texts,
            ["USA status healthy -> unhealthy", "USA opa breaker CLOSED -> OPEN"]
        );
        // The error fallback has no breakers: the last states stand.
        let fallback: Detailed =
            serde_json::from_str(r#"{"status":"unhealthy","timestamp":"t","error":"x"}"#).expect("fallback");
        o.detailed(now, "USA", &fallback);
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
