//! Diagnosis: what the evidence a scenario gathered says about DIVE, as findings in DIVE's terms.
//! Every function here is pure, from observed evidence to a finding, and names a defect only on
//! that defect's own evidence; the unit tests below show, for each tag, the evidence that must
//! name it and evidence that must not.

use std::time::Duration;

use crate::deployment::traffic::Tally;
use crate::infra::alertmanager::{AmState, GettableAlert};
use crate::vocab::alerts::has_samples;
use crate::vocab::breaker::BreakerConfig;
use crate::vocab::finding::{Defect, Finding};
use crate::vocab::health::{Breaker, BreakerState, BreakerStats, Detailed, Overall, Probe};
use crate::vocab::units::secs;

/// What `detailed` says about the dependency behind `breaker`.
pub fn dependency_status(detailed: &Detailed, breaker: Breaker) -> Option<Probe> {
    let s = detailed.services.as_ref()?;
    Some(match breaker {
        Breaker::Opa => s.opa.status,
        Breaker::Keycloak => s.keycloak.status,
        Breaker::Mongodb => s.mongodb.status,
        Breaker::Kas => s.kas.as_ref()?.status,
    })
}

/// Why `breaker` did not open although its dependency was faulted and traffic flowed.
pub fn breaker_did_not_open(
    breaker: Breaker,
    last: Option<BreakerStats>,
    dependency: Option<Probe>,
    traffic: Tally,
    threshold: u32,
) -> Finding {
    if traffic.sent == 0 {
        return Finding::fail(format!(
            "no traffic reached the backend, so the {breaker} breaker was never exercised"
        ));
    }
    if traffic.unauthorized == traffic.sent {
        return Finding::fail(format!(
            "every request got 401 ({traffic}), so {breaker} was never called: the token is not accepted"
        ));
    }
    if traffic.not_found == traffic.sent {
        return Finding::fail(format!(
            "every request got 404 ({traffic}): unknown resource ids never reach {breaker}"
        ));
    }
    if dependency.is_some_and(|p| p != Probe::Down) {
        return Finding::fail(format!(
            "the fault never took effect: the backend still reports {breaker} {dependency:?} while it should be down"
        ));
    }
    // Calls the cache answered never reach OPA: with fewer calls through the breaker than its
    // threshold it could not open, and nothing about the breaker can be concluded.
    if breaker == Breaker::Opa && traffic.decided > 0 && traffic.through_opa_breaker() < threshold as usize {
        let reached = traffic.through_opa_breaker();
        return Finding::precondition(if reached == 0 {
            format!(
                "every decided answer came from DIVE's decision cache ({traffic}): no call reached OPA or its breaker; the traffic needs decisions the cache does not hold"
            )
        } else {
            format!(
                "only {reached} calls reached OPA, fewer than the {threshold} that open its breaker: the rest came from DIVE's decision cache ({traffic}); the traffic needs decisions the cache does not hold"
            )
        });
    }
    let Some(stats) = last else {
        return Finding::fail(format!("the health API reported no breaker stats ({traffic})"));
    };
    if stats.failures == 0 {
        let answered = traffic.sent - traffic.no_answer;
        return match breaker {
            // OPA calls failed (the local fallback answered) and the breaker counted none of them.
            Breaker::Opa if traffic.fallback > 0 => Finding::fail(format!(
                "opa breaker stayed {stats} while OPA was down and {} answers came from the local fallback ({traffic}): the OPA calls bypass their breaker",
                traffic.fallback
            ))
            .defect(Defect::R3),
            Breaker::Opa => Finding::fail(format!(
                "opa breaker stayed {stats} while OPA was down, and no answer came from the local fallback ({traffic})"
            )),
            // Requests were answered with the dependency down and its breaker counted nothing.
            _ if answered > 0 => Finding::fail(format!(
                "{breaker} breaker stayed {stats} while {breaker} was down and {answered} requests were answered ({traffic}): no request path calls it through its breaker"
            ))
            .defect(Defect::D1),
            _ => Finding::fail(format!(
                "{breaker} breaker stayed {stats} and no request was answered ({traffic})"
            )),
        };
    }
    let finding = Finding::fail(format!(
        "{breaker} breaker counted {} consecutive failures (DIVE opens at {threshold}) but did not open: {stats} ({traffic})",
        stats.failures
    ));
    if stats.state == BreakerState::Closed && stats.failures >= u64::from(threshold) {
        finding.defect(Defect::R16)
    } else {
        finding
    }
}

/// A breaker first seen OPEN, judged by the most consecutive failures a CLOSED reading showed
/// before: DIVE's opens on the call that reaches its threshold, so it is never seen CLOSED with
/// that many. (Its count while OPEN can exceed the threshold when calls were in flight.)
pub fn opened_off_threshold(
    instance: &str,
    breaker: Breaker,
    closed_failures: u64,
    at_open: BreakerStats,
    dive: BreakerConfig,
) -> Option<Finding> {
    (closed_failures >= u64::from(dive.failure_threshold)).then(|| {
        Finding::fail(format!(
            "the {instance} {breaker} breaker was still CLOSED after {closed_failures} consecutive failed calls and opened after {}; DIVE's {breaker} threshold is {}",
            at_open.failures, dive.failure_threshold
        ))
        .defect(Defect::R16)
    })
}

/// A breaker seen leaving OPEN `after` the last reading that found it CLOSED was asked for. DIVE's
/// opened after that reading and lets a call through only its timeout after its last failure,
/// which came later still: so `after` is at least the timeout, with no allowance for polling.
pub fn reopened_early(instance: &str, breaker: Breaker, after: Duration, dive: BreakerConfig) -> Option<Finding> {
    (after < dive.timeout).then(|| {
        Finding::fail(format!(
            "the {instance} {breaker} breaker left OPEN {} after it was last seen CLOSED; DIVE's stays OPEN {} after its last failure",
            secs(after),
            secs(dive.timeout)
        ))
        .defect(Defect::R16)
    })
}

/// A breaker seen CLOSED after `successes` of the suite's calls succeeded through it since it was
/// last seen OPEN: DIVE's needs its success threshold of them. When the suite's traffic is not the
/// only traffic (`exclusive` false, a live DIVE), other calls may have supplied the rest: a note.
pub fn closed_early(breaker: Breaker, successes: usize, dive: BreakerConfig, exclusive: bool) -> Option<Finding> {
    let threshold = dive.success_threshold as usize;
    (successes < threshold).then(|| {
        let text = format!(
            "the {breaker} breaker closed after {successes} successful call(s) of the suite's; DIVE's needs {threshold}"
        );
        if exclusive {
            Finding::fail(text).defect(Defect::R16)
        } else {
            Finding::note(format!("{text} (other traffic on this DIVE may have made the rest)"))
        }
    })
}

/// A breaker that stayed HALF_OPEN through `successes` calls that succeeded through it: DIVE's
/// closes at its success threshold.
pub fn stuck_half_open(breaker: Breaker, successes: usize, dive: BreakerConfig) -> Finding {
    Finding::fail(format!(
        "{breaker} breaker stayed HALF_OPEN through {successes} calls that succeeded through it (DIVE closes after {}): it never closes",
        dive.success_threshold
    ))
    .defect(Defect::R2)
}

/// The overall status with Keycloak down, when it was not `degraded` as the plan expects.
pub fn keycloak_down_status(last: Option<&Detailed>) -> Finding {
    let keycloak_down = last
        .and_then(|d| d.services.as_ref())
        .is_some_and(|s| s.keycloak.status == Probe::Down);
    match last {
        Some(d) if d.status == Overall::Healthy && keycloak_down => Finding::fail(format!(
            "Keycloak is down but the overall status stayed {}; the plan expects degraded",
            d.summary()
        ))
        .defect(Defect::D6),
        Some(d) => Finding::fail(format!(
            "with Keycloak stopped the status is {}, not degraded",
            d.summary()
        )),
        None => Finding::fail("the health API did not answer while Keycloak was stopped"),
    }
}

/// The overall status with a critical dependency (OPA, MongoDB) down, when it was not `unhealthy`
/// answered with 503.
pub fn critical_down_status(dependency: &str, last: Option<&Detailed>, reported_down: bool) -> Finding {
    match last {
        Some(d) if d.status == Overall::Unhealthy => Finding::fail(format!(
            "with {dependency} stopped the status is {}: DIVE answers unhealthy with 503",
            d.summary()
        )),
        Some(d) if d.status == Overall::Healthy && reported_down => Finding::fail(format!(
            "{dependency} is down and the health API says so, but the overall status stayed {}; DIVE reports unhealthy with HTTP 503 when {dependency} is down",
            d.summary()
        ))
        .defect(Defect::R17),
        Some(d) => Finding::fail(format!(
            "with {dependency} stopped the status is {}, not unhealthy",
            d.summary()
        )),
        None => Finding::fail(format!("the health API did not answer while {dependency} was stopped")),
    }
}

/// How authorization broke while only non-critical services were down.
#[derive(Debug, Clone)]
pub struct AuthorizationBroke {
    /// What broke, as the wait saw it.
    pub what: String,
    pub traffic: Tally,
    /// The last health seen.
    pub health: Option<Detailed>,
}

/// Authorization failing while only the cache Redis (and other non-critical services) were down:
/// answers of 5xx, with the cache Redis down and MongoDB and OPA up, are the cache's doing (R1).
pub fn authorization_broke(context: &str, broke: &AuthorizationBroke) -> Finding {
    let services = broke.health.as_ref().and_then(|d| d.services.as_ref());
    let cache_only = services.is_some_and(|s| {
        s.redis.status == Probe::Down && s.mongodb.status != Probe::Down && s.opa.status != Probe::Down
    });
    let finding = Finding::fail(format!("{context}, authorization broke: {}", broke.what));
    if broke.traffic.server_error > 0 && cache_only {
        finding.defect(Defect::R1)
    } else {
        finding
    }
}

/// A breaker read again and again over a window: it held its state, moved, or could not be read.
#[derive(Debug, Clone)]
pub enum BreakerHold {
    Held { state: String, for_: Duration },
    Moved { to: BreakerState, after: Duration },
    Unread(String),
}

/// A breaker read with no traffic after its dependency came back: held (DIVE's breakers move only
/// inside calls, D7 corrects the plan) or moved anyway (R8), or could not be read.
pub fn idle_breaker(breaker: Breaker, seen: BreakerHold) -> Finding {
    match seen {
        BreakerHold::Held { state, for_ } => Finding::note(format!(
            "{breaker} breaker still {state} {} after its dependency came back, with no traffic: the plan's \"sleep 90, expect CLOSED\" cannot pass; breakers close only on calls made after the open timeout",
            secs(for_)
        ))
        .defect(Defect::D7),
        BreakerHold::Moved { to, after } => Finding::fail(format!(
            "the {breaker} breaker went {to} {} after its dependency came back, without any traffic, unlike DIVE's",
            secs(after)
        ))
        .defect(Defect::R8),
        BreakerHold::Unread(e) => Finding::fail(format!("the {breaker} breaker could not be read while idle: {e}")),
    }
}

/// A spoke's answer to a token the hub issued, when it was not accepted.
pub fn spoke_refuses_hub_token(code: &str, answer: &Result<bool, String>) -> Finding {
    match answer {
        Ok(false) => Finding::fail(format!(
            "{code} refuses a token issued by the hub (HTTP 401): federation is broken"
        ))
        .defect(Defect::R7),
        Ok(true) => Finding::fail(format!("{code} accepted the hub's token after all")),
        Err(e) => Finding::fail(format!("{code} did not answer a hub token check: {e}")),
    }
}

/// An instance that did not refuse a revoked token in time.
#[derive(Debug, Clone)]
pub struct NotRefused {
    /// Its last answer accepted the token; false when it did not answer, or answered otherwise.
    pub accepted: bool,
    pub seen: String,
}

/// An instance that did not refuse a revoked token: it and the hub kept accepting it (D5: the hub
/// itself does not enforce revocation), or it kept accepting it while the hub refused and its own
/// revocation store does not hold it (R4), or something else (no answer) that names neither.
/// `hub` is the hub's own result: `None` when the hub refused the token in time.
pub fn revoked_token_not_refused(
    code: &str,
    it: &NotRefused,
    hub: Option<&NotRefused>,
    store_lists: &Result<bool, String>,
) -> Finding {
    let seen = &it.seen;
    if !it.accepted {
        return Finding::fail(format!(
            "{code} never refused the revoked token, but it did not accept it either ({seen})"
        ));
    }
    match hub {
        Some(hub) if hub.accepted => {
            return Finding::fail(format!(
                "{code} kept accepting the revoked token and so did the hub: revocation is not enforced on requests ({seen})"
            ))
            .defect(Defect::D5);
        }
        Some(_) => {
            return Finding::fail(format!(
                "{code} kept accepting the revoked token while the hub did not answer its own check ({seen})"
            ));
        }
        None => {}
    }
    match store_lists {
        Ok(false) => Finding::fail(format!(
            "{code} kept accepting the revoked token and its revocation store does not hold it: {code} does not share the hub's store ({seen})"
        ))
        .defect(Defect::R4),
        Ok(true) => Finding::fail(format!(
            "{code} kept accepting the revoked token although its store lists it ({seen})"
        )),
        Err(e) => Finding::fail(format!(
            "{code} kept accepting the revoked token; its store could not be asked ({e}) ({seen})"
        )),
    }
}

/// What the hub's federation health said while the suite waited for a spoke to be (un)listed.
#[derive(Debug, Clone)]
pub struct NotListed {
    /// How many times the hub answered (a hub that never answered proves nothing about listing).
    pub answers: u32,
    pub last: String,
}

/// A silent spoke the hub never listed as unhealthy (R5), or a recovered one it kept listing (R18).
pub fn listing_wrong(code: &str, should_list: bool, seen: &NotListed) -> Finding {
    if seen.answers == 0 {
        return Finding::fail(format!(
            "the hub's federation health never answered while {code}'s listing was awaited: {}",
            seen.last
        ));
    }
    if should_list {
        Finding::fail(format!(
            "the hub never listed {code} as unhealthy although it stopped heartbeating ({})",
            seen.last
        ))
        .defect(Defect::R5)
    } else {
        Finding::fail(format!(
            "the hub kept listing {code} as unhealthy after it came back and heartbeats again ({})",
            seen.last
        ))
        .defect(Defect::R18)
    }
}

/// How issued tokens fared while the hub's Keycloak was down.
#[derive(Debug, Clone, Default)]
pub struct TokensRefused {
    /// Instances that answered 401 to a token they accepted before the outage.
    pub refused: Vec<String>,
    /// Instances that did not answer, or answered something else.
    pub errors: Vec<String>,
    pub what: String,
}

/// Issued tokens stopped working during the hub Keycloak's outage: refused outright (401) is the
/// backends failing to verify without Keycloak (R6); other failures are not.
pub fn tokens_stopped_working(broke: &TokensRefused) -> Finding {
    let finding = Finding::fail(format!(
        "with the hub's Keycloak down, issued tokens stopped working: {}",
        broke.what
    ));
    if broke.refused.is_empty() {
        finding
    } else {
        finding.defect(Defect::R6)
    }
}

/// D2: after `event` was driven (`seen` is its evidence), `/metrics` (`text`) of instance `code`
/// still has no sample of `metric`. prom-client creates a series at its first event, so before
/// the event its absence says nothing.
pub fn not_written(code: &str, text: &str, metric: &str, event: &str, seen: &str) -> Option<Finding> {
    (!has_samples(text, metric)).then(|| {
        Finding::fail(format!(
            "after {event} ({seen}), {code}'s /metrics has no sample of {metric}: the backend never writes it"
        ))
        .defect(Defect::D2)
    })
}

/// D9: the health API at HEAD's `/api/health`, where the plan and DIVE's scripts call `/health`.
pub fn moved_health_api(code: &str, health_base: &str) -> Option<Finding> {
    (health_base == "/api/health").then(|| {
        Finding::note(format!(
            "{code} serves its health API at /api/health; the plan and DIVE's own scripts call /health"
        ))
        .defect(Defect::D9)
    })
}

/// D4: the real HighCircuitBreakerRejects (`rejects`) is not suppressed by the CircuitBreakerOpen
/// alerts of the same breaker (`open`) that fire beside it. `Ok` when it is; no tag when it never
/// reached AlertManager (that is the pipeline's failure, not the inhibition's).
pub fn rejects_not_inhibited(rejects: Option<&GettableAlert>, open: &[GettableAlert]) -> Result<(), Finding> {
    let by_open = |f: &String| open.iter().any(|o| &o.fingerprint == f);
    match rejects {
        Some(r) if r.status.state == AmState::Suppressed && r.status.inhibited_by.iter().any(by_open) => Ok(()),
        Some(r) => Err(Finding::fail(format!(
            "real HighCircuitBreakerRejects is {:?} while CircuitBreakerOpen fires",
            r.status.state
        ))
        .defect(Defect::D4)),
        None => Err(Finding::fail("HighCircuitBreakerRejects never reached AlertManager")),
    }
}

#[cfg(test)]
mod tests {
    //! For each tag: the evidence that names it, and other failures that must not.

    use super::*;
    use crate::vocab::finding::Severity;

    fn detailed(status: &str, services: &[(&str, &str)]) -> Detailed {
        let probe = |name: &str| {
            let status = services.iter().find(|(n, _)| *n == name).map_or("up", |(_, s)| s);
            format!(r#"{{"status":"{status}"}}"#)
        };
        let body = format!(
            r#"{{"status":"{status}","timestamp":"t","services":{{"mongodb":{},"opa":{},"keycloak":{},"redis":{},"cache":{{"status":"up"}},"blacklistRedis":{}}}}}"#,
            probe("mongodb"),
            probe("opa"),
            probe("keycloak"),
            probe("redis"),
            probe("blacklistRedis")
        );
        serde_json::from_str(&body).expect("a detailed body")
    }

    fn stats(state: BreakerState, failures: u64) -> BreakerStats {
        BreakerStats {
            state,
            failures,
            reject_count: 0,
        }
    }

    fn tally(sent: usize, decided: usize, fallback: usize, cache_hits: usize, server_error: usize) -> Tally {
        Tally {
            sent,
            decided,
            fallback,
            cache_hits,
            server_error,
            ..Tally::default()
        }
    }

    const DOWN: Option<Probe> = Some(Probe::Down);

    #[test]
    fn r3_needs_fallback_answers_that_the_opa_breaker_did_not_count() {
        let closed = Some(stats(BreakerState::Closed, 0));
        let bypass = breaker_did_not_open(Breaker::Opa, closed, DOWN, tally(40, 40, 40, 0, 0), 5);
        assert_eq!(bypass.defect, Some(Defect::R3), "{bypass}");
        let all_cached = breaker_did_not_open(Breaker::Opa, closed, DOWN, tally(40, 40, 0, 40, 0), 5);
        assert_eq!(all_cached.defect, None, "{all_cached}");
        assert!(all_cached.message.contains("decision cache"), "{all_cached}");
        assert_eq!(
            all_cached.severity,
            Severity::Precondition,
            "nothing to judge: {all_cached}"
        );
        let two_reached = breaker_did_not_open(
            Breaker::Opa,
            Some(stats(BreakerState::Closed, 1)),
            DOWN,
            tally(40, 40, 2, 38, 0),
            5,
        );
        assert_eq!(
            (two_reached.defect, two_reached.severity),
            (None, Severity::Precondition),
            "{two_reached}"
        );
        let no_fallback = breaker_did_not_open(Breaker::Opa, closed, DOWN, tally(40, 0, 0, 0, 40), 5);
        assert_eq!(no_fallback.defect, None, "5xx are not the breaker's: {no_fallback}");
        let still_up = breaker_did_not_open(Breaker::Opa, closed, Some(Probe::Up), tally(40, 40, 40, 0, 0), 5);
        assert_eq!(still_up.defect, None, "{still_up}");
    }

    #[test]
    fn d1_needs_answered_requests_and_a_breaker_that_counted_nothing() {
        let closed = Some(stats(BreakerState::Closed, 0));
        let unwired = breaker_did_not_open(Breaker::Keycloak, closed, DOWN, tally(30, 30, 0, 0, 0), 3);
        assert_eq!(unwired.defect, Some(Defect::D1), "{unwired}");
        let mongo_5xx = breaker_did_not_open(Breaker::Mongodb, closed, DOWN, tally(30, 0, 0, 0, 30), 5);
        assert_eq!(
            mongo_5xx.defect,
            Some(Defect::D1),
            "answers of 5xx are answers: {mongo_5xx}"
        );
        let unanswered = Tally {
            sent: 30,
            no_answer: 30,
            ..Tally::default()
        };
        let silent = breaker_did_not_open(Breaker::Mongodb, closed, DOWN, unanswered, 5);
        assert_eq!(silent.defect, None, "nothing answered: {silent}");
        let counting = breaker_did_not_open(
            Breaker::Keycloak,
            Some(stats(BreakerState::Closed, 2)),
            DOWN,
            tally(30, 30, 0, 0, 0),
            3,
        );
        assert_eq!(counting.defect, None, "{counting}");
        let over = breaker_did_not_open(
            Breaker::Keycloak,
            Some(stats(BreakerState::Closed, 9)),
            DOWN,
            tally(30, 30, 0, 0, 0),
            3,
        );
        assert_eq!(over.defect, Some(Defect::R16), "CLOSED past its threshold: {over}");
        let rejected = Tally {
            sent: 30,
            unauthorized: 30,
            ..Tally::default()
        };
        assert_eq!(
            breaker_did_not_open(Breaker::Keycloak, closed, DOWN, rejected, 3).defect,
            None
        );
    }

    #[test]
    fn r16_names_thresholds_timeouts_and_successes_that_are_not_dives() {
        let dive = BreakerConfig::dive(Breaker::Opa, 1.0);
        let slow =
            opened_off_threshold("USA", Breaker::Opa, 39, stats(BreakerState::Open, 40), dive).expect("39 failures");
        assert_eq!(slow.defect, Some(Defect::R16));
        assert!(
            slow.message.contains("opened after 40; DIVE's opa threshold is 5"),
            "{slow}"
        );
        // In-flight calls may push the count past the threshold once OPEN: not a departure.
        assert!(opened_off_threshold("USA", Breaker::Opa, 4, stats(BreakerState::Open, 7), dive).is_none());
        assert!(reopened_early("USA", Breaker::Opa, Duration::from_secs(15), dive).is_some());
        assert!(reopened_early("USA", Breaker::Opa, Duration::from_secs(60), dive).is_none());
        assert_eq!(
            closed_early(Breaker::Opa, 1, dive, true).and_then(|f| f.defect),
            Some(Defect::R16)
        );
        let shared = closed_early(Breaker::Opa, 1, dive, false).expect("a note");
        assert_eq!(
            (shared.severity, shared.defect),
            (Severity::Note, None),
            "other traffic explains it"
        );
        assert!(closed_early(Breaker::Opa, 2, dive, true).is_none());
    }

    #[test]
    fn r2_is_a_breaker_that_stayed_half_open_through_successes() {
        let dive = BreakerConfig::dive(Breaker::Opa, 1.0);
        assert_eq!(stuck_half_open(Breaker::Opa, 6, dive).defect, Some(Defect::R2));
    }

    #[test]
    fn d6_needs_keycloak_down_in_a_healthy_status() {
        let healthy = detailed("healthy", &[("keycloak", "down")]);
        assert_eq!(keycloak_down_status(Some(&healthy)).defect, Some(Defect::D6));
        let unhealthy = detailed("unhealthy", &[("keycloak", "down"), ("opa", "down")]);
        assert_eq!(keycloak_down_status(Some(&unhealthy)).defect, None);
        let never_down = detailed("healthy", &[]);
        assert_eq!(
            keycloak_down_status(Some(&never_down)).defect,
            None,
            "the fault did not take"
        );
        assert_eq!(keycloak_down_status(None).defect, None);
    }

    #[test]
    fn r17_needs_opa_reported_down_in_a_healthy_status() {
        let healthy = detailed("healthy", &[("opa", "down")]);
        assert_eq!(
            critical_down_status("OPA", Some(&healthy), true).defect,
            Some(Defect::R17)
        );
        let degraded = detailed("degraded", &[("opa", "down")]);
        assert_eq!(critical_down_status("OPA", Some(&degraded), true).defect, None);
        assert_eq!(
            critical_down_status("OPA", Some(&healthy), false).defect,
            None,
            "not reported down"
        );
        let wrong_code = Detailed {
            http_code: Some(200),
            ..detailed("unhealthy", &[("opa", "down")])
        };
        let finding = critical_down_status("OPA", Some(&wrong_code), true);
        assert_eq!(finding.defect, None);
        assert!(finding.message.contains("unhealthy with HTTP 200"), "{finding}");
    }

    #[test]
    fn r1_needs_5xx_while_only_the_cache_redis_is_down() {
        let cache_down = detailed("degraded", &[("redis", "down")]);
        let broke = |server_error, health: &Detailed| AuthorizationBroke {
            what: "traffic broke".to_string(),
            traffic: tally(20, 10, 0, 0, server_error),
            health: Some(health.clone()),
        };
        assert_eq!(
            authorization_broke("x", &broke(10, &cache_down)).defect,
            Some(Defect::R1)
        );
        // The same 5xx with MongoDB down too: MongoDB explains them.
        let mongo_too = detailed("unhealthy", &[("redis", "down"), ("mongodb", "down")]);
        assert_eq!(authorization_broke("x", &broke(10, &mongo_too)).defect, None);
        // Timeouts, not 5xx.
        let timeouts = AuthorizationBroke {
            what: "traffic broke".to_string(),
            traffic: Tally {
                sent: 20,
                no_answer: 20,
                ..Tally::default()
            },
            health: Some(cache_down.clone()),
        };
        assert_eq!(authorization_broke("x", &timeouts).defect, None);
        assert_eq!(authorization_broke("x", &broke(0, &cache_down)).defect, None);
    }

    #[test]
    fn d7_is_held_and_r8_is_moved() {
        let held = BreakerHold::Held {
            state: "OPEN failures=5".to_string(),
            for_: Duration::from_secs(9),
        };
        assert_eq!(idle_breaker(Breaker::Opa, held).defect, Some(Defect::D7));
        let moved = BreakerHold::Moved {
            to: BreakerState::Closed,
            after: Duration::from_secs(6),
        };
        assert_eq!(idle_breaker(Breaker::Opa, moved).defect, Some(Defect::R8));
        let unread = BreakerHold::Unread("https://x/api/health/detailed: no answer".to_string());
        assert_eq!(idle_breaker(Breaker::Opa, unread).defect, None);
    }

    #[test]
    fn r7_is_a_401_not_a_failure_to_answer() {
        assert_eq!(spoke_refuses_hub_token("DEU", &Ok(false)).defect, Some(Defect::R7));
        assert_eq!(
            spoke_refuses_hub_token("DEU", &Err("DEU: 503".to_string())).defect,
            None
        );
    }

    #[test]
    fn d5_when_the_hub_accepts_it_too_r4_when_the_spokes_store_lacks_it() {
        let accepting = NotRefused {
            accepted: true,
            seen: "still accepted (HTTP 200)".to_string(),
        };
        let silent = NotRefused {
            accepted: false,
            seen: "no answer".to_string(),
        };
        let named = |it: &NotRefused, hub: Option<&NotRefused>, store: Result<bool, String>| {
            revoked_token_not_refused("FRA", it, hub, &store).defect
        };
        assert_eq!(named(&accepting, Some(&accepting), Ok(false)), Some(Defect::D5));
        assert_eq!(named(&accepting, None, Ok(false)), Some(Defect::R4));
        assert_eq!(named(&accepting, None, Ok(true)), None, "its store lists it");
        let unasked = named(&accepting, None, Err("no answer".to_string()));
        assert_eq!(unasked, None, "a store that could not be asked proves nothing");
        assert_eq!(
            named(&silent, None, Ok(false)),
            None,
            "a spoke that did not answer accepted nothing"
        );
        assert_eq!(
            named(&accepting, Some(&silent), Ok(false)),
            None,
            "a silent hub enforces nothing either way"
        );
    }

    #[test]
    fn r5_and_r18_need_a_hub_that_answered() {
        let answered = NotListed {
            answers: 40,
            last: "unhealthy spokes: []".to_string(),
        };
        assert_eq!(listing_wrong("TST", true, &answered).defect, Some(Defect::R5));
        assert_eq!(listing_wrong("TST", false, &answered).defect, Some(Defect::R18));
        let silent = NotListed {
            answers: 0,
            last: "no answer".to_string(),
        };
        assert_eq!(listing_wrong("TST", true, &silent).defect, None);
    }

    #[test]
    fn r6_needs_a_refusal_not_an_outage_of_the_spoke() {
        let refused = TokensRefused {
            refused: vec!["FRA".to_string()],
            errors: Vec::new(),
            what: "FRA answered 401".to_string(),
        };
        assert_eq!(tokens_stopped_working(&refused).defect, Some(Defect::R6));
        let unreachable = TokensRefused {
            refused: Vec::new(),
            errors: vec!["FRA: no answer".to_string()],
            what: "FRA: no answer".to_string(),
        };
        assert_eq!(tokens_stopped_working(&unreachable).defect, None);
    }

    #[test]
    fn d2_only_when_the_series_is_still_absent_after_its_event() {
        let absent = "# HELP other\nother_total 3\n";
        let d2 = not_written(
            "USA",
            absent,
            "dive_v3_circuit_breaker_rejects_total",
            "rejects while OPEN",
            "rejectCount=4",
        );
        assert_eq!(d2.map(|f| f.defect), Some(Some(Defect::D2)));
        let written = "dive_v3_circuit_breaker_rejects_total{service=\"opa\"} 4\n";
        assert!(not_written("USA", written, "dive_v3_circuit_breaker_rejects_total", "rejects", "4").is_none());
    }

    #[test]
    fn d9_only_for_the_moved_health_api() {
        assert_eq!(
            moved_health_api("USA", "/api/health").map(|f| f.defect),
            Some(Some(Defect::D9))
        );
        assert!(moved_health_api("USA", "/health").is_none());
    }

    #[test]
    fn d4_only_when_the_rejects_alert_reached_alertmanager_uninhibited() {
        let alert = |fingerprint: &str, state: &str, inhibited_by: &[&str]| -> GettableAlert {
            serde_json::from_value(serde_json::json!({
                "labels": {}, "startsAt": "", "endsAt": "", "fingerprint": fingerprint,
                "status": {"state": state, "silencedBy": [], "inhibitedBy": inhibited_by}
            }))
            .expect("an alert")
        };
        let open = [alert("open", "active", &[])];
        assert!(rejects_not_inhibited(Some(&alert("r", "suppressed", &["open"])), &open).is_ok());
        let active = rejects_not_inhibited(Some(&alert("r", "active", &[])), &open);
        assert_eq!(active.err().and_then(|f| f.defect), Some(Defect::D4));
        let by_another = rejects_not_inhibited(Some(&alert("r", "suppressed", &["other"])), &open);
        assert_eq!(by_another.err().and_then(|f| f.defect), Some(Defect::D4));
        let absent = rejects_not_inhibited(None, &open);
        assert_eq!(
            absent.err().map(|f| f.defect),
            Some(None),
            "never listed is not the inhibition's"
        );
    }
}
