//! What a timeline draws, read from the journal: the lanes (per instance its health and breakers,
//! then the alerts) with the states each went through, and the fault windows.

use std::collections::BTreeMap;

use super::{GREEN, alert_colour, breaker_colour, health_colour};
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

/// Above this many instances, those that stayed healthy with every breaker CLOSED share one lane,
/// so that a coalition of 31 spokes still reads at a glance.
const FOLD_ABOVE: usize = 4;

/// The lanes of a journal in the order they were first seen: per instance its health then its
/// breakers (instances that never changed folded into one lane when there are many), then the
/// alerts.
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
    let unchanged = |inst: &String| {
        let only =
            |changes: Option<&Changes>, state: &str| changes.is_none_or(|c| c.iter().all(|(_, s, _)| s == state));
        health.contains_key(inst)
            && only(health.get(inst), "healthy")
            && Breaker::ALL
                .iter()
                .all(|b| only(breakers.get(&(inst.clone(), *b)), "CLOSED"))
    };
    let folded: Vec<String> = if instances.len() > FOLD_ABOVE {
        instances.iter().filter(|i| unchanged(i)).cloned().collect()
    } else {
        Vec::new()
    };
    if folded.len() > 1 {
        let since = folded
            .iter()
            .filter_map(|i| health.get(i).and_then(|c| c.first()).map(|c| c.0))
            .min()
            .unwrap_or(0);
        out.push(Lane {
            label: format!("{} instances", folded.len()),
            class: "folded",
            changes: vec![(
                since,
                format!("unchanged: healthy, every breaker CLOSED ({})", folded.join(" ")),
                GREEN,
            )],
        });
    }
    for inst in instances.iter().filter(|i| folded.len() < 2 || !folded.contains(i)) {
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
