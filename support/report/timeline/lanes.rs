//! What a timeline draws, read from the journal: the lanes (per instance its health and breakers,
//! then the alerts) with the states each went through, and the fault windows.

use std::collections::BTreeMap;

use super::{alert_colour, breaker_colour, health_colour};
use crate::vocab::health::Breaker;
use crate::vocab::journal::{EventKind, Journal};

/// A fault's window: what it was, from and to (ms), and how long its restore took.
pub(super) type FaultWindow = (String, u64, u64, Option<u64>);

/// The states a lane went through: (time in ms, state name, colour).
pub(super) type Changes = Vec<(u64, String, &'static str)>;

/// One lane: a label and the states it went through.
pub(super) struct Lane {
    pub(super) label: String,
    pub(super) class: &'static str,
    pub(super) changes: Changes,
}

/// The lanes of a journal in the order they were first seen: per instance its health then its
/// breakers, then the alerts.
pub(super) fn lanes(j: &Journal) -> Vec<Lane> {
    let mut instances: Vec<String> = Vec::new();
    let mut health: BTreeMap<String, Changes> = BTreeMap::new();
    let mut breakers: BTreeMap<(String, Breaker), Changes> = BTreeMap::new();
    let mut alerts: Vec<(String, Changes)> = Vec::new();
    for e in &j.events {
        match &e.kind {
            EventKind::HealthChanged { instance, to, .. } => {
                if !instances.contains(instance) {
                    instances.push(instance.clone());
                }
                health
                    .entry(instance.clone())
                    .or_default()
                    .push((e.t_ms, to.to_string(), health_colour(*to)));
            }
            EventKind::BreakerChanged {
                instance, breaker, to, ..
            } => {
                if !instances.contains(instance) {
                    instances.push(instance.clone());
                }
                breakers.entry((instance.clone(), *breaker)).or_default().push((
                    e.t_ms,
                    to.to_string(),
                    breaker_colour(*to),
                ));
            }
            EventKind::AlertChanged { alert, to, .. } => {
                let change = (e.t_ms, to.to_string(), alert_colour(*to));
                match alerts.iter_mut().find(|(a, _)| a == alert) {
                    Some((_, changes)) => changes.push(change),
                    None => alerts.push((alert.clone(), vec![change])),
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for inst in &instances {
        out.push(Lane {
            label: format!("{inst} health"),
            class: "health",
            changes: health.remove(inst).unwrap_or_default(),
        });
        for b in Breaker::ALL {
            out.push(Lane {
                label: format!("{inst} {b} breaker"),
                class: "breaker",
                changes: breakers.remove(&(inst.clone(), b)).unwrap_or_default(),
            });
        }
    }
    for (alert, changes) in alerts {
        out.push(Lane {
            label: format!("alert {alert}"),
            class: "alert",
            changes,
        });
    }
    out
}

/// Fault windows: from the fault taking effect to its service answering again (or the end of
/// the picture, when the journal has no restore).
pub(super) fn fault_windows_of(j: &Journal, end_ms: u64) -> Vec<FaultWindow> {
    let mut windows = Vec::new();
    for (i, e) in j.events.iter().enumerate() {
        if let EventKind::FaultApplied { fault } = &e.kind {
            let restored = j.events[i..].iter().find_map(|r| match &r.kind {
                EventKind::FaultRestored { fault: f, restore_ms } if f == fault => Some((r.t_ms, *restore_ms)),
                _ => None,
            });
            let (to, restore_ms) = restored.map_or((end_ms, None), |(t, r)| (t, Some(r)));
            windows.push((fault.to_string(), e.t_ms, to, restore_ms));
        }
    }
    windows
}
