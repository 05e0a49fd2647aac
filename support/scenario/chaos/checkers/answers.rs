//! Right answers: no request fails while everything it depends on is up, no 5xx while only
//! non-critical services are down, no revoked token accepted outside DIVE's documented windows.

use std::time::Duration;

use super::{Checker, Disturbance, Rules, Violation, critical, disturbances, listed};
use crate::scenario::chaos::history::{History, Op, OpKind, RequestOutcome, RevocationOutcome};
use crate::scenario::chaos::schedule::{Schedule, ScheduledFault};
use crate::vocab::fault::Service;
use crate::vocab::units::secs;

/// Requests that failed while nothing they depend on was down, 5xx while only non-critical
/// services were down, and revoked tokens accepted outside DIVE's documented windows.
pub fn right_answers(history: &History, schedule: &Schedule, rules: &Rules) -> Vec<Violation> {
    let disturbances = disturbances(history, schedule, rules);
    let mut found: Vec<Violation> = history
        .ops
        .iter()
        .filter_map(|op| match &op.kind {
            OpKind::Request { resource, outcome } => wrong_answer(op, resource, *outcome, &disturbances),
            OpKind::Revocation {
                jti,
                revoked_at,
                outcome: RevocationOutcome::Accepted,
            } => revoked_token_accepted(op, jti, *revoked_at, &disturbances, rules),
            _ => None,
        })
        .collect();
    found.sort_by_key(|v| v.at);
    found
}

fn wrong_answer(op: &Op, resource: &str, outcome: RequestOutcome, disturbances: &[Disturbance]) -> Option<Violation> {
    if !outcome.failed() {
        return None;
    }
    let faults: Vec<&ScheduledFault> = disturbances
        .iter()
        .filter(|d| d.reaches(&op.instance) && d.during(op))
        .map(|d| d.fault)
        .collect();
    let instance = &op.instance;
    let message = if faults.is_empty() {
        format!(
            "{instance} answered {outcome} for {resource} while every dependency was up; \
             no request for which every dependency is up may fail"
        )
    } else if matches!(outcome, RequestOutcome::ServerError(_)) && !faults.iter().any(|f| critical(f.service)) {
        format!(
            "{instance} answered {outcome} for {resource} while only non-critical services were down ({}); \
             DIVE answers no 5xx while only non-critical services are down",
            listed(&faults)
        )
    } else {
        return None;
    };
    Some(Violation {
        checker: Checker::RightAnswers,
        at: op.invoked,
        instance: instance.clone(),
        message,
        defect: None,
    })
}

/// DIVE documents two windows in which a revoked token may pass: right after its revocation, and
/// while the revocation store is down (HEAD fails open). The store lives in one instance's stack
/// (the hub's, at v15a), and this checker does not know which, so any whole-stack fault counts.
fn revoked_token_accepted(
    op: &Op,
    jti: &str,
    revoked_at: Duration,
    disturbances: &[Disturbance],
    rules: &Rules,
) -> Option<Violation> {
    if op.invoked < revoked_at.saturating_add(rules.revocation_window) {
        return None;
    }
    let store_down = disturbances
        .iter()
        .any(|d| matches!(d.fault.service, Service::RevocationStore | Service::Stack) && d.during(op));
    if store_down {
        return None;
    }
    Some(Violation {
        checker: Checker::RightAnswers,
        at: op.invoked,
        instance: op.instance.clone(),
        message: format!(
            "{} accepted token {jti} {} after its revocation while the revocation store was up; \
             DIVE refuses a revoked token within {}",
            op.instance,
            secs(op.invoked.saturating_sub(revoked_at)),
            secs(rules.revocation_window)
        ),
        defect: None,
    })
}
