//! What each scenario does to the target it runs against, and how long it takes at DIVE's real
//! timers: the blast radius an operator weighs before a live run. The dry run and the live entry
//! point (`scripts/live`) show it; `tests/operator.rs` checks that every scenario test is here.

use std::time::Duration;

/// What a scenario does to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touches {
    /// Reads only: health, metrics, rules, registry, tokens of the test user.
    ReadOnly,
    /// Stops, kills or pauses the services named, then restores them.
    Faults(&'static str),
    /// Changes state other than services: revokes a token, posts alerts, deploys.
    Changes(&'static str),
}

/// One scenario test: where it is, what it touches, how long it takes on a live DIVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// The test binary (`tests/<binary>.rs`).
    pub binary: &'static str,
    /// The test function.
    pub test: &'static str,
    /// Its requirement id.
    pub requirement: &'static str,
    pub touches: Touches,
    /// How long it takes at most on a live DIVE (time scale 1): its budgets, the restore and the
    /// settling after it.
    pub at_most: Duration,
}

const fn scenario(
    binary: &'static str,
    test: &'static str,
    requirement: &'static str,
    touches: Touches,
    minutes: u64,
) -> Scenario {
    Scenario {
        binary,
        test,
        requirement,
        touches,
        at_most: Duration::from_secs(minutes * 60),
    }
}

use Touches::{Changes, Faults, ReadOnly};

/// Every scenario test of the phases, in the order a live run takes them.
pub const SCENARIOS: &[Scenario] = &[
    scenario(
        "failure_injection",
        "opa_breaker_opens_within_budget_when_opa_stops",
        "4.1-opa",
        Faults("hub OPA stopped"),
        3,
    ),
    scenario(
        "failure_injection",
        "keycloak_breaker_opens_and_status_degrades_when_keycloak_stops",
        "4.1-kc",
        Faults("hub Keycloak stopped (its restart takes up to its 120 s start period)"),
        5,
    ),
    scenario(
        "failure_injection",
        "mongodb_breaker_opens_and_status_is_unhealthy_when_mongodb_stops",
        "4.1-mongo",
        Faults("hub MongoDB stopped: every resource request fails while it is down"),
        5,
    ),
    scenario(
        "failure_injection",
        "redis_outage_degrades_but_authorization_still_answers",
        "4.1-redis",
        Faults("hub cache Redis stopped"),
        3,
    ),
    scenario(
        "recovery",
        "opa_breaker_closes_within_budget_after_opa_returns",
        "4.2-opa",
        Faults("hub OPA stopped"),
        4,
    ),
    scenario(
        "recovery",
        "keycloak_breaker_closes_within_budget_after_keycloak_returns",
        "4.2-kc",
        Faults("hub Keycloak stopped"),
        5,
    ),
    scenario(
        "recovery",
        "breaker_stays_open_without_traffic_contrary_to_the_plan",
        "4.2-idle",
        Faults("hub OPA stopped, then 90 s without traffic"),
        5,
    ),
    scenario(
        "recovery",
        "all_non_critical_services_down_degrades_then_heals",
        "4.2-all",
        Faults("hub Keycloak, cache Redis, revocation store and KAS stopped together"),
        6,
    ),
    scenario(
        "recovery",
        "opa_recovers_while_keycloak_stays_open",
        "4.2-partial",
        Faults("hub OPA and Keycloak stopped"),
        6,
    ),
    scenario(
        "recovery",
        "opa_recovery_cycle_passes_three_times_in_a_row",
        "4.2-repeat",
        Faults("hub OPA stopped three times"),
        10,
    ),
    scenario(
        "alerts",
        "every_rule_fires_in_promtool_unit_tests",
        "4.3-ten",
        ReadOnly,
        1,
    ),
    scenario(
        "alerts",
        "runbook_covers_every_alert_and_scenario",
        "4.3-runbook",
        ReadOnly,
        1,
    ),
    scenario(
        "alerts",
        "circuit_breaker_open_alert_reaches_alertmanager_within_budget",
        "4.3-open",
        Faults("hub OPA stopped until CircuitBreakerOpen reaches AlertManager"),
        8,
    ),
    scenario(
        "alerts",
        "circuit_breaker_open_alert_resolves_within_budget_after_the_breaker_closes",
        "4.3-resolve",
        Faults("hub OPA stopped, then restored until the alert resolves"),
        10,
    ),
    scenario(
        "alerts",
        "breaker_alerts_fire_when_opa_is_down_under_traffic",
        "4.3-ten",
        Faults("hub OPA stopped until the breaker alerts fire"),
        10,
    ),
    scenario(
        "alerts",
        "half_open_alert_fires_when_a_breaker_stays_half_open",
        "4.3-ten",
        Faults("hub OPA stopped, its breaker held HALF_OPEN"),
        10,
    ),
    scenario(
        "alerts",
        "database_alerts_fire_when_load_exhausts_the_pool_of_a_frozen_mongodb",
        "4.3-pool",
        Faults("hub MongoDB paused under more requests than its pool holds"),
        10,
    ),
    scenario(
        "alerts",
        "circuit_breaker_open_inhibits_rejects_of_the_same_breaker",
        "4.3-inhibit",
        Faults("synthetic alerts posted to AlertManager (labelled as the suite's, short-lived); hub OPA stopped"),
        10,
    ),
    // Read-only unless DIVE_LIVE_DEPLOY=1, which the plan of a live run then says.
    scenario(
        "multi_spoke",
        "hub_and_every_spoke_are_up_and_federated",
        "5.1-deploy",
        ReadOnly,
        1,
    ),
    scenario(
        "multi_spoke",
        "revoked_token_is_rejected_on_every_spoke",
        "5.1-revoke",
        Changes("revokes a token of DIVE_REVOKE_USER (lifted afterwards); restarts the revocation store"),
        3,
    ),
    scenario(
        "multi_spoke",
        "one_spoke_down_leaves_the_others_untouched",
        "5.1-isolate",
        Faults("a whole spoke (TST, else the first) down and up through ./dive: spoke up takes minutes"),
        12,
    ),
    scenario(
        "multi_spoke",
        "federation_survives_an_outage_of_the_hub_keycloak",
        "5.1-federation",
        Faults("hub Keycloak stopped: no one can log in while it is down"),
        5,
    ),
    // Phase 4.5 under its default load (15 requests/s and 4 health polls/s, capped at 20/s).
    scenario(
        "load_under_failure",
        "opa_frozen_under_load_answers_fast_once_the_breaker_opens",
        "4.5-opa",
        Faults("hub OPA paused (accepts, never answers) under 15 requests/s"),
        5,
    ),
    scenario(
        "load_under_failure",
        "mongodb_frozen_under_load_fails_fast_and_recovers",
        "4.5-mongo",
        Faults("hub MongoDB paused under 15 requests/s: resource requests fail while it is"),
        5,
    ),
    // Phase 5.2 presents crafted tokens, each valid nowhere: requests only, except the outages.
    scenario(
        "token_trust",
        "forged_tokens_are_refused_on_every_instance",
        "5.2-forged",
        ReadOnly,
        1,
    ),
    scenario(
        "token_trust",
        "unsigned_tokens_are_refused_on_every_instance",
        "5.2-none",
        ReadOnly,
        1,
    ),
    scenario(
        "token_trust",
        "expired_tokens_are_refused_on_every_instance",
        "5.2-expired",
        ReadOnly,
        3,
    ),
    scenario(
        "token_trust",
        "untrusted_issuers_are_refused_on_every_instance",
        "5.2-issuer",
        ReadOnly,
        1,
    ),
    scenario(
        "token_trust",
        "no_token_is_answered_with_another_users_identity",
        "5.2-identity",
        ReadOnly,
        1,
    ),
    scenario(
        "token_trust",
        "token_trust_holds_during_every_outage",
        "5.2-outage",
        Faults(
            "every Keycloak, every cache Redis, then the revocation store stopped in turn; a dedicated user's token revoked",
        ),
        15,
    ),
];

/// A test that runs several scenarios side by side on one outage, each with its own verdict: a
/// full live run takes it in place of the scenario tests it covers, so DIVE's timers are waited
/// out once for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SideBySide {
    pub binary: &'static str,
    pub test: &'static str,
    /// The scenario tests (of [`SCENARIOS`]) it covers.
    pub covers: &'static [&'static str],
    pub touches: Touches,
    pub at_most: Duration,
}

/// Every side-by-side test.
pub const SIDE_BY_SIDE: &[SideBySide] = &[
    SideBySide {
        binary: "alerts",
        test: "one_opa_outage_side_by_side",
        covers: &[
            "opa_breaker_opens_within_budget_when_opa_stops",
            "opa_breaker_closes_within_budget_after_opa_returns",
            "circuit_breaker_open_alert_reaches_alertmanager_within_budget",
            "circuit_breaker_open_alert_resolves_within_budget_after_the_breaker_closes",
            "breaker_alerts_fire_when_opa_is_down_under_traffic",
            "circuit_breaker_open_inhibits_rejects_of_the_same_breaker",
        ],
        touches: Faults(
            "synthetic alerts posted to AlertManager (labelled as the suite's, short-lived); hub OPA stopped until the breaker alerts fire, then restored until CircuitBreakerOpen resolves",
        ),
        at_most: Duration::from_secs(12 * 60),
    },
    SideBySide {
        binary: "alerts",
        test: "idle_half_open_and_pool_side_by_side",
        covers: &[
            "breaker_stays_open_without_traffic_contrary_to_the_plan",
            "half_open_alert_fires_when_a_breaker_stays_half_open",
            "database_alerts_fire_when_load_exhausts_the_pool_of_a_frozen_mongodb",
        ],
        touches: Faults(
            "hub OPA stopped, then 90 s without traffic and its breaker held HALF_OPEN; meanwhile hub MongoDB paused under more requests than its pool holds",
        ),
        at_most: Duration::from_secs(14 * 60),
    },
];

/// One test of a full live run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub binary: &'static str,
    pub test: &'static str,
    /// The requirements it judges: one, or those of every scenario a side-by-side test covers.
    pub requirements: Vec<&'static str>,
    pub touches: Touches,
    pub at_most: Duration,
}

/// The tests a full live run takes, in order: the side-by-side tests first, while no earlier
/// outage's alert can still be firing (an alert that reads a 5 min range outlives its outage by
/// that long), then every scenario test they do not cover, in the order of [`SCENARIOS`].
pub fn live_run() -> Vec<Step> {
    let side_by_side = SIDE_BY_SIDE.iter().map(|b| {
        let mut requirements: Vec<&str> = SCENARIOS
            .iter()
            .filter(|c| b.covers.contains(&c.test))
            .map(|c| c.requirement)
            .collect();
        requirements.dedup();
        Step {
            binary: b.binary,
            test: b.test,
            requirements,
            touches: b.touches,
            at_most: b.at_most,
        }
    });
    let alone = SCENARIOS
        .iter()
        .filter(|s| !SIDE_BY_SIDE.iter().any(|b| b.covers.contains(&s.test)))
        .map(|s| Step {
            binary: s.binary,
            test: s.test,
            requirements: vec![s.requirement],
            touches: s.touches,
            at_most: s.at_most,
        });
    side_by_side.chain(alone).collect()
}

impl Touches {
    /// One line for the plan an operator reads.
    pub fn describe(&self) -> String {
        match self {
            ReadOnly => "read-only".to_string(),
            Faults(what) => format!("faults: {what}"),
            Changes(what) => format!("changes: {what}"),
        }
    }
}

/// The scenarios that read only: a live run of these alone can happen at any time.
pub fn read_only() -> impl Iterator<Item = &'static Scenario> {
    SCENARIOS.iter().filter(|s| s.touches == ReadOnly)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_run_takes_every_scenario_once_alone_or_side_by_side() {
        let steps = live_run();
        for s in SCENARIOS {
            let alone = steps.iter().filter(|step| step.test == s.test).count();
            let beside = SIDE_BY_SIDE.iter().filter(|b| b.covers.contains(&s.test)).count();
            assert_eq!(alone + beside, 1, "{} is taken {} times", s.test, alone + beside);
        }
        for b in SIDE_BY_SIDE {
            for covered in b.covers {
                assert!(
                    SCENARIOS.iter().any(|s| s.test == *covered),
                    "{} covers {covered}, which is not a scenario test",
                    b.test
                );
            }
        }
        let judged: Vec<&str> = steps.iter().flat_map(|s| s.requirements.clone()).collect();
        assert!(SCENARIOS.iter().all(|s| judged.contains(&s.requirement)));
    }
}
