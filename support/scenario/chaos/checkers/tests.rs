//! The checkers on hand-made histories.

use super::*;
use crate::scenario::chaos::history::BreakerSeen;
use crate::scenario::chaos::history::{History, OpKind, RequestOutcome, RevocationOutcome};
use crate::scenario::chaos::schedule::tests::{fault, schedule_of};
use crate::vocab::fault::FaultKind;
use crate::vocab::health::{Breaker, BreakerState, Overall};

/// At time scale 0.1: opa opens after 5 failures, stays OPEN 6.0 s, closes after 2 successes.
fn rules() -> Rules {
    Rules::dive(0.1, Duration::from_millis(100))
}

fn s(seconds: f64) -> Duration {
    Duration::from_secs_f64(seconds)
}

/// A health observation of `instance` taking 50 ms, every breaker but opa CLOSED.
fn health(history: &mut History, instance: &str, at: f64, overall: Overall, opa: (BreakerState, u64)) {
    let breakers = Breaker::ALL
        .into_iter()
        .map(|breaker| match breaker {
            Breaker::Opa => BreakerSeen {
                breaker,
                state: opa.0,
                failures: opa.1,
            },
            _ => BreakerSeen {
                breaker,
                state: BreakerState::Closed,
                failures: 0,
            },
        })
        .collect();
    history.record(instance, s(at), s(at + 0.05), OpKind::Health { overall, breakers });
}

fn request(history: &mut History, instance: &str, at: f64, outcome: RequestOutcome) {
    let resource = format!("doc-{instance}-1");
    history.record(instance, s(at), s(at + 0.02), OpKind::Request { resource, outcome });
}

const DECIDED: RequestOutcome = RequestOutcome::Decided {
    status: 200,
    fallback: false,
    cached: false,
};
const CLOSED: (BreakerState, u64) = (BreakerState::Closed, 0);
const OPEN: (BreakerState, u64) = (BreakerState::Open, 5);
const HALF_OPEN: (BreakerState, u64) = (BreakerState::HalfOpen, 0);

/// OPA down from 0.5 s to 3 s on USA; the breaker opens at 1 s, a call half-opens it just
/// before `half_open`, and a call answered `closing` comes before it is seen CLOSED.
fn opa_cycle_closed_by(half_open: f64, closing: RequestOutcome) -> (History, Schedule) {
    let schedule = schedule_of(vec![fault(0, "USA", Service::Opa, FaultKind::Stop, 0.5, 2.5)]);
    let mut history = History::new();
    health(&mut history, "USA", 1.0, Overall::Unhealthy, CLOSED);
    health(&mut history, "USA", 1.1, Overall::Unhealthy, OPEN);
    request(&mut history, "USA", half_open - 0.1, DECIDED);
    health(&mut history, "USA", half_open, Overall::Healthy, HALF_OPEN);
    request(&mut history, "USA", half_open + 0.05, closing);
    health(&mut history, "USA", half_open + 0.1, Overall::Healthy, CLOSED);
    (history, schedule)
}

fn opa_cycle(half_open: f64) -> (History, Schedule) {
    opa_cycle_closed_by(half_open, DECIDED)
}

#[test]
fn a_breaker_that_leaves_open_before_its_timeout_is_illegal() {
    let (history, schedule) = opa_cycle(2.3);
    let found = legal_breakers(&history, &schedule, &rules());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].message,
        "the USA opa breaker left OPEN 1.4 s after it was last seen CLOSED; DIVE's stays OPEN 6.0 s after its last failure"
    );
    assert_eq!(found[0].defect, Some(crate::vocab::finding::Defect::R16));
}

#[test]
fn leaving_open_is_judged_from_the_last_closed_reading_as_the_observer_does() {
    // It opened after the CLOSED reading asked at 1.0 s: a HALF_OPEN reading answered at 7.05 s
    // is DIVE's 6.0 s timeout; one answered at 6.95 s is too soon (the scenario's own Observer).
    let (history, schedule) = opa_cycle(7.0);
    assert_eq!(legal_breakers(&history, &schedule, &rules()), []);
    let (history, schedule) = opa_cycle(6.9);
    assert_eq!(legal_breakers(&history, &schedule, &rules()).len(), 1);
}

#[test]
fn closing_without_successful_calls_is_illegal() {
    let (mut history, schedule) = opa_cycle(7.5);
    history.ops.retain(|op| !matches!(op.kind, OpKind::Request { .. }));
    request(
        &mut history,
        "USA",
        7.52,
        RequestOutcome::Decided {
            status: 200,
            fallback: true,
            cached: false,
        },
    );
    let found = legal_breakers(&history, &schedule, &rules());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]
            .message
            .starts_with("USA opa breaker went HALF_OPEN -> CLOSED with 0 requests decided by OPA"),
        "{}",
        found[0].message
    );
    assert!(
        found[0].message.ends_with("after 2 successful calls"),
        "{}",
        found[0].message
    );
}

#[test]
fn half_opening_from_closed_or_closing_without_calls_is_illegal() {
    let schedule = schedule_of(vec![]);
    let mut history = History::new();
    health(&mut history, "FRA", 1.0, Overall::Healthy, CLOSED);
    health(&mut history, "FRA", 1.1, Overall::Healthy, (BreakerState::Open, 2));
    health(&mut history, "FRA", 20.0, Overall::Healthy, CLOSED);
    health(&mut history, "FRA", 20.1, Overall::Healthy, HALF_OPEN);
    let found = legal_breakers(&history, &schedule, &rules());
    let messages: Vec<&str> = found.iter().map(|v| v.message.as_str()).collect();
    // The OPEN -> CLOSED between 1.1 s and 20 s had no successful call.
    assert!(messages[0].starts_with("FRA opa breaker went OPEN -> CLOSED with 0 requests decided by OPA"));
    assert!(messages[1].starts_with("FRA opa breaker went CLOSED -> HALF_OPEN within 250 ms"));
    assert_eq!(found.len(), 2, "{messages:?}");
}

#[test]
fn an_open_breaker_may_show_fewer_failures_than_its_threshold() {
    // Seed 108's false alarm: a call in flight when the breaker opened succeeded and reset DIVE's
    // count to 0 while OPEN.
    let mut history = History::new();
    health(&mut history, "TST", 1.0, Overall::Healthy, CLOSED);
    health(&mut history, "TST", 1.5, Overall::Healthy, (BreakerState::Open, 0));
    assert_eq!(legal_breakers(&history, &schedule_of(vec![]), &rules()), []);
}

#[test]
fn a_reopened_breaker_may_show_few_failures_when_samples_are_far_apart() {
    // CLOSED -> OPEN (5) -> 6 s -> HALF_OPEN -> one failure -> OPEN (1), all between two samples.
    let mut history = History::new();
    health(&mut history, "FRA", 1.0, Overall::Healthy, CLOSED);
    health(&mut history, "FRA", 8.0, Overall::Healthy, (BreakerState::Open, 1));
    assert_eq!(legal_breakers(&history, &schedule_of(vec![]), &rules()), []);
}

#[test]
fn a_breaker_moves_only_inside_a_call() {
    let mut history = History::new();
    health(&mut history, "DEU", 1.0, Overall::Healthy, OPEN);
    health(&mut history, "DEU", 9.0, Overall::Healthy, HALF_OPEN);
    let found = legal_breakers(&history, &schedule_of(vec![]), &rules());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].message,
        "DEU opa breaker went OPEN -> HALF_OPEN with no request between the observations at 1.0 s and 9.0 s; \
         DIVE's breakers move only inside a call"
    );
}

#[test]
fn observations_that_overlap_in_time_are_not_ordered() {
    // A slow observation (1 s to 3 s, seeing OPEN late) and a quick one inside it (CLOSED).
    let mut history = History::new();
    health(&mut history, "USA", 0.5, Overall::Healthy, CLOSED);
    health(&mut history, "USA", 1.0, Overall::Healthy, OPEN);
    history.ops[1].completed = s(3.0);
    health(&mut history, "USA", 1.1, Overall::Healthy, CLOSED);
    assert_eq!(legal_breakers(&history, &schedule_of(vec![]), &rules()), []);
}

#[test]
fn a_backend_restart_resets_breakers_legally() {
    let schedule = schedule_of(vec![fault(0, "USA", Service::Backend, FaultKind::Kill, 1.5, 1.0)]);
    let mut history = History::new();
    health(&mut history, "USA", 1.0, Overall::Unhealthy, OPEN);
    health(&mut history, "USA", 3.0, Overall::Healthy, CLOSED);
    assert_eq!(legal_breakers(&history, &schedule, &rules()), []);
}

#[test]
fn a_failure_while_every_dependency_is_up_is_wrong() {
    let schedule = schedule_of(vec![fault(0, "USA", Service::Mongodb, FaultKind::Stop, 1.0, 2.0)]);
    let mut history = History::new();
    request(&mut history, "FRA", 2.0, RequestOutcome::ServerError(500));
    request(&mut history, "USA", 2.0, RequestOutcome::ServerError(500));
    // mongodb's settling time: 1.0 s of grace plus its 6.0 s open timeout after the restore.
    request(&mut history, "USA", 9.9, RequestOutcome::Timeout);
    request(&mut history, "USA", 10.1, RequestOutcome::Timeout);
    let found = right_answers(&history, &schedule, &rules());
    let at: Vec<(&str, Duration)> = found.iter().map(|v| (v.instance.as_str(), v.at)).collect();
    assert_eq!(at, [("FRA", s(2.0)), ("USA", s(10.1))]);
    assert_eq!(
        found[0].message,
        "FRA answered 500 for doc-FRA-1 while every dependency was up; \
         no request for which every dependency is up may fail"
    );
}

#[test]
fn a_5xx_while_only_non_critical_services_are_down_is_wrong() {
    let schedule = schedule_of(vec![
        fault(0, "USA", Service::Keycloak, FaultKind::Pause, 1.0, 2.0),
        fault(1, "FRA", Service::RevocationStore, FaultKind::Stop, 1.0, 2.0),
        fault(2, "DEU", Service::Opa, FaultKind::Stop, 1.0, 2.0),
    ]);
    let mut history = History::new();
    request(&mut history, "USA", 2.0, RequestOutcome::ServerError(503));
    request(&mut history, "USA", 2.5, RequestOutcome::Timeout);
    request(&mut history, "DEU", 2.0, RequestOutcome::ServerError(500));
    let found = right_answers(&history, &schedule, &rules());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].message,
        "USA answered 503 for doc-USA-1 while only non-critical services were down \
         (#0 pause keycloak on USA from 1.0 s to 3.0 s, #1 stop revocation store on FRA from 1.0 s to 3.0 s); \
         DIVE answers no 5xx while only non-critical services are down"
    );
}

#[test]
fn a_revoked_token_passes_only_in_dive_s_windows() {
    let schedule = schedule_of(vec![fault(
        0,
        "USA",
        Service::RevocationStore,
        FaultKind::Stop,
        10.0,
        2.0,
    )]);
    let mut history = History::new();
    let mut probe = |instance: &str, at: f64, outcome| {
        let kind = OpKind::Revocation {
            jti: "jti-7".into(),
            revoked_at: s(1.0),
            outcome,
        };
        history.record(instance, s(at), s(at + 0.02), kind);
    };
    probe("FRA", 1.2, RevocationOutcome::Accepted); // still propagating
    probe("FRA", 11.0, RevocationOutcome::Accepted); // the shared store is down
    probe("DEU", 5.0, RevocationOutcome::Refused);
    probe("DEU", 5.5, RevocationOutcome::Accepted);
    let found = right_answers(&history, &schedule, &rules());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].message,
        "DEU accepted token jti-7 4.5 s after its revocation while the revocation store was up; \
         DIVE refuses a revoked token within 500 ms"
    );
}

#[test]
fn recovery_is_measured_from_the_last_restore_against_its_budget() {
    let schedule = schedule_of(vec![
        fault(0, "USA", Service::Opa, FaultKind::Stop, 1.0, 2.0),
        fault(1, "FRA", Service::Opa, FaultKind::Stop, 1.0, 2.0),
        fault(2, "DEU", Service::Opa, FaultKind::Stop, 1.0, 2.0),
    ]);
    let mut history = History::new();
    history.record("FRA", s(3.0), s(4.0), OpKind::FaultRestored { fault_id: 1 });
    health(&mut history, "USA", 3.5, Overall::Healthy, CLOSED); // before the last restore
    health(&mut history, "USA", 6.95, Overall::Healthy, CLOSED);
    health(&mut history, "FRA", 10.0, Overall::Healthy, OPEN);
    health(&mut history, "FRA", 15.0, Overall::Healthy, CLOSED);
    health(&mut history, "DEU", 10.0, Overall::Degraded, OPEN);
    let took: Vec<String> = recovery_times(&history, &schedule, &rules())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        took,
        [
            "DEU never steady (budget 7.5 s)",
            "FRA steady after 11.1 s (budget 7.5 s)",
            "USA steady after 3.0 s (budget 7.5 s)"
        ]
    );
    let found = recovery(&history, &schedule, &rules());
    let messages: Vec<&str> = found.iter().map(|v| v.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "DEU was never healthy with every breaker CLOSED after the last restore at 4.0 s; \
             last seen: degraded, opa OPEN failures=5",
            "FRA was healthy with every breaker CLOSED only 11.1 s after the last restore; budget 7.5 s"
        ]
    );
}

#[test]
fn a_legal_run_has_no_violation() {
    let (mut history, schedule) = opa_cycle(7.2);
    request(
        &mut history,
        "USA",
        2.0,
        RequestOutcome::Decided {
            status: 200,
            fallback: true,
            cached: false,
        },
    );
    health(&mut history, "USA", 8.0, Overall::Healthy, CLOSED);
    assert_eq!(check_all(&history, &schedule, &rules()), []);
}

/// A reading of `instance` with the opa and kas breakers as given, the others CLOSED.
fn health_of(history: &mut History, instance: &str, at: f64, opa: BreakerState, kas: BreakerState) {
    let breakers = Breaker::ALL
        .into_iter()
        .map(|breaker| BreakerSeen {
            breaker,
            state: match breaker {
                Breaker::Opa => opa,
                Breaker::Kas => kas,
                _ => BreakerState::Closed,
            },
            failures: 0,
        })
        .collect();
    history.record(
        instance,
        s(at),
        s(at + 0.05),
        OpKind::Health {
            overall: Overall::Healthy,
            breakers,
        },
    );
}

/// OPA down from 1 s to 2 s; the opa breaker is still OPEN at 12 s with requests arriving from
/// 9 s on (restore + 6 s timeout + 1 s grace); `beside` adds a reading with kas OPEN too.
fn stuck_opa(beside: bool) -> Vec<Violation> {
    use BreakerState::{Closed, Open};
    let schedule = schedule_of(vec![fault(0, "USA", Service::Opa, FaultKind::Stop, 1.0, 1.0)]);
    let mut history = History::new();
    health_of(&mut history, "USA", 1.5, Open, Closed);
    if beside {
        health_of(&mut history, "USA", 1.7, Open, Open);
    }
    for at in [9.5, 10.0, 11.0] {
        request(&mut history, "USA", at, DECIDED);
    }
    health_of(&mut history, "USA", 12.0, Open, Closed);
    recovery(&history, &schedule, &rules())
}

#[test]
fn a_breaker_stuck_open_names_r11_only_when_seen_beside_another_open_breaker() {
    let alone = stuck_opa(false);
    assert_eq!(alone.len(), 1, "{alone:?}");
    assert!(
        alone[0]
            .message
            .contains("its opa breaker stayed OPEN through 3 requests"),
        "{}",
        alone[0].message
    );
    assert_eq!(alone[0].defect, None, "no other breaker was seen OPEN: no R11");
    let beside = stuck_opa(true);
    assert_eq!(beside[0].defect, Some(crate::vocab::finding::Defect::R11));
    assert!(
        beside[0]
            .message
            .ends_with("it was seen OPEN beside the kas breaker at 1.7 s"),
        "{}",
        beside[0].message
    );
}

#[test]
fn the_hub_is_steady_only_once_it_lists_every_spoke_healthy() {
    let schedule = schedule_of(vec![fault(0, "FRA", Service::Opa, FaultKind::Stop, 1.0, 1.0)]);
    let mut history = History::new();
    health(&mut history, "USA", 2.5, Overall::Healthy, CLOSED);
    let listed = |unhealthy: &[&str]| OpKind::Spokes {
        unhealthy: Some(unhealthy.iter().map(ToString::to_string).collect()),
    };
    history.record("USA", s(2.6), s(2.7), listed(&["FRA"]));
    history.record("USA", s(4.0), s(4.1), listed(&[]));
    let took = recovery_times(&history, &schedule, &rules());
    let usa = took.iter().find(|r| r.instance == "USA").map(|r| r.took);
    assert_eq!(usa, Some(Some(s(2.1))));
}

#[test]
fn the_timeline_shows_fault_windows_breaker_lanes_and_verdicts() {
    let violations = stuck_opa(true);
    let schedule = schedule_of(vec![fault(0, "USA", Service::Opa, FaultKind::Stop, 1.0, 1.0)]);
    let mut history = History::new();
    health_of(&mut history, "USA", 0.5, BreakerState::Closed, BreakerState::Closed);
    health_of(&mut history, "USA", 1.5, BreakerState::Open, BreakerState::Closed);
    let shown = crate::scenario::chaos::timeline(&schedule, &history, &violations);
    assert!(shown.contains("#0 stop opa USA"), "{shown}");
    assert!(shown.contains("USA opa breaker"), "{shown}");
    assert!(shown.contains("USA kas breaker"), "{shown}");
    assert!(shown.contains("4.4-recovery recovery: FAILS (1 violations)"), "{shown}");
    assert!(shown.contains("4.4-breakers legal breakers: holds"), "{shown}");
    let lane = shown
        .lines()
        .find(|l| l.contains("USA opa breaker"))
        .unwrap_or_default();
    assert!(lane.contains(".O"), "{lane}");
}
