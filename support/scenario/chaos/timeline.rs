//! The timeline of a chaos run, as text: every fault window, one lane per breaker of every
//! instance (and its overall health), the hub's list of spokes, then each checker's verdict. One
//! column is a fixed slice of time; a lane shows the state of the last reading asked for by then.

use std::fmt::Write as _;
use std::time::Duration;

use super::checkers::{Checker, Violation};
use super::history::{History, Op, OpKind};
use super::schedule::Schedule;
use crate::vocab::health::{Breaker, BreakerState, Overall};
use crate::vocab::units::secs;

/// At most this many columns: a long run gets wider slices.
const WIDTH: u32 = 80;

/// The timeline of `history` under `schedule`, with the checkers' verdicts.
pub fn timeline(schedule: &Schedule, history: &History, violations: &[Violation]) -> String {
    let end = history.end().max(schedule.end()).max(Duration::from_millis(1));
    let slice = (end / WIDTH).max(Duration::from_millis(100));
    let columns = u32::try_from(end.as_millis() / slice.as_millis().max(1)).unwrap_or(WIDTH) + 1;
    let at = |c: u32| slice * c;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "timeline of seed {}: one column = {}, 0 ms .. {}; faults #, breakers . CLOSED h HALF_OPEN O OPEN, health + healthy ~ degraded ! unhealthy",
        schedule.seed,
        secs(slice),
        secs(end)
    );
    for fault in &schedule.faults {
        let applied = history.applied(fault.id).map_or(fault.start, |op| op.invoked);
        let restored = history.restored(fault.id).map_or(fault.end(), |op| op.completed);
        let lane: String = (0..columns)
            .map(|c| if applied <= at(c) && at(c) < restored { '#' } else { ' ' })
            .collect();
        let _ = writeln!(
            out,
            "  {:<34}|{lane}|",
            format!("#{} {} {} {}", fault.id, fault.kind, fault.service, fault.instance)
        );
    }
    for instance in history.instances() {
        let readings = history.health_of(instance);
        let last = |c: u32| readings.iter().rev().find(|op| op.invoked <= at(c)).copied();
        let health: String = (0..columns)
            .map(|c| match last(c).map(|op| &op.kind) {
                Some(OpKind::Health {
                    overall: Overall::Healthy,
                    ..
                }) => '+',
                Some(OpKind::Health {
                    overall: Overall::Degraded,
                    ..
                }) => '~',
                Some(OpKind::Health { .. }) => '!',
                _ => ' ',
            })
            .collect();
        let _ = writeln!(out, "  {:<34}|{health}|", format!("{instance} health"));
        for breaker in Breaker::ALL {
            let lane: String = (0..columns).map(|c| state_char(last(c), breaker)).collect();
            let _ = writeln!(out, "  {:<34}|{lane}|", format!("{instance} {breaker} breaker"));
        }
        let lists = history.spokes_of(instance);
        if !lists.is_empty() {
            let lane: String = (0..columns)
                .map(
                    |c| match lists.iter().rev().find(|op| op.invoked <= at(c)).map(|op| &op.kind) {
                        Some(OpKind::Spokes { unhealthy: Some(list) }) if list.is_empty() => '+',
                        Some(OpKind::Spokes { unhealthy: Some(_) }) => '!',
                        Some(_) => '?',
                        None => ' ',
                    },
                )
                .collect();
            let _ = writeln!(out, "  {:<34}|{lane}|", format!("{instance} lists every spoke healthy"));
        }
    }
    for checker in [Checker::LegalBreakers, Checker::RightAnswers, Checker::Recovery] {
        let found: Vec<&Violation> = violations.iter().filter(|v| v.checker == checker).collect();
        let verdict = if found.is_empty() {
            "holds".to_string()
        } else {
            format!("FAILS ({} violations)", found.len())
        };
        let _ = writeln!(out, "  {} {checker}: {verdict}", checker.requirement());
        for v in found.iter().take(5) {
            let _ = writeln!(out, "    - {v}");
        }
        if found.len() > 5 {
            let _ = writeln!(out, "    - ... {} more", found.len() - 5);
        }
    }
    out
}

fn state_char(reading: Option<&Op>, breaker: Breaker) -> char {
    match reading.and_then(|op| op.breaker(breaker)).map(|b| b.state) {
        Some(BreakerState::Closed) => '.',
        Some(BreakerState::HalfOpen) => 'h',
        Some(BreakerState::Open) => 'O',
        None => ' ',
    }
}
