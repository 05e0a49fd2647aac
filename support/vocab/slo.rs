//! The requirement table of the plan, with budgets as data. Budgets are the plan's (time scale 1)
//! and are multiplied by the run's time scale, like every DIVE timer in the reference deployment.

use std::time::Duration;

use crate::vocab::units::secs;

/// Polling period of every scenario wait: fine enough for 250 ms resolution, and with one
/// request and one health call per tick the harness stays under 20 requests/s.
pub const TICK: Duration = Duration::from_millis(125);

/// Polling period of health while load runs (phase 4.5): four polls a second beside the load's
/// default 15 requests keep the harness under 20 requests a second, and breaker states still
/// resolve to 250 ms.
pub const LOAD_TICK: Duration = Duration::from_millis(250);

/// Instances the suite drives traffic to at full pace at once; beyond them the pace is shared, so
/// a coalition of 31 spokes gets no more of the suite's requests per second, in all, than four
/// instances do.
pub const FULL_PACE_INSTANCES: usize = 4;

/// The traffic period for each of `n` instances driven at once: [`TICK`] for up to
/// [`FULL_PACE_INSTANCES`], proportionally longer beyond.
pub fn tick_among(n: usize) -> Duration {
    TICK * u32::try_from(n.div_ceil(FULL_PACE_INSTANCES).max(1)).unwrap_or(u32::MAX)
}

/// One requirement of the plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Requirement {
    pub id: &'static str,
    pub text: &'static str,
    /// Where the plan states it.
    pub source: &'static str,
    /// The plan's budget at time scale 1, when it gives one.
    pub budget: Option<Duration>,
}

const fn req(id: &'static str, text: &'static str, source: &'static str, budget_s: u64) -> Requirement {
    Requirement {
        id,
        text,
        source,
        budget: if budget_s == 0 {
            None
        } else {
            Some(Duration::from_secs(budget_s))
        },
    }
}

/// The table of design.md, in the plan's order.
pub const REQUIREMENTS: &[Requirement] = &[
    req(
        "4.1-opa",
        "OPA stopped -> opa breaker OPEN",
        "plan 4.1 success criteria",
        30,
    ),
    req(
        "4.1-kc",
        "Keycloak stopped -> keycloak breaker OPEN; status degraded, not unhealthy",
        "plan 4.1 task 2",
        20,
    ),
    req(
        "4.1-mongo",
        "MongoDB stopped -> mongodb breaker OPEN; status unhealthy",
        "plan 4.1 task 3",
        30,
    ),
    req(
        "4.1-redis",
        "Redis stopped -> status degraded, not unhealthy; authorization still answers",
        "plan 4.1 task 4",
        0,
    ),
    req(
        "4.2-opa",
        "OPA restored -> opa breaker CLOSED",
        "plan 4.2 success criteria",
        90,
    ),
    req(
        "4.2-idle",
        "OPA restored and no traffic for the plan's 90 s -> the opa breaker stays OPEN (DIVE's breakers move only inside calls)",
        "plan 4.2 task 1 (\"sleep 90, expect CLOSED\")",
        90,
    ),
    req(
        "4.2-kc",
        "Keycloak restored -> keycloak breaker CLOSED",
        "plan 4.2 success criteria",
        60,
    ),
    req(
        "4.2-all",
        "all non-critical services down -> degraded; all back -> healthy",
        "plan 4.2 task 2",
        0,
    ),
    req(
        "4.2-partial",
        "OPA+Keycloak down, only OPA back -> opa CLOSED while keycloak stays OPEN",
        "plan 4.2 task 3",
        0,
    ),
    req(
        "4.2-repeat",
        "the recovery cycle passes 3 times in a row",
        "plan 4.2 success criteria",
        0,
    ),
    req(
        "4.3-open",
        "CircuitBreakerOpen active in AlertManager after the breaker opens",
        "plan 4.3 success criteria",
        300,
    ),
    req(
        "4.3-resolve",
        "CircuitBreakerOpen gone after the breaker closes",
        "plan 4.3 success criteria",
        120,
    ),
    req(
        "4.3-ten",
        "each of the 10 CB/DB alerts fires when its condition holds",
        "plan 4.3 goal",
        300,
    ),
    req(
        "4.3-inhibit",
        "CircuitBreakerOpen inhibits HighCircuitBreakerRejects (same breaker)",
        "plan 4.3 task 3",
        0,
    ),
    req(
        "4.3-pool",
        "load that exhausts the DB pool fires DBConnectionPoolExhausted",
        "plan 4.3 task 2",
        300,
    ),
    req(
        "4.3-runbook",
        "every alert and failure scenario has remediation steps",
        "plan 4.3 task 4",
        0,
    ),
    req(
        "4.4-chaos",
        "a seeded fault schedule over hub and spokes: breakers, answers and recovery hold over the whole history; a failing schedule is shrunk and replays",
        "plan 4.4 (random failure injection)",
        0,
    ),
    req(
        "4.4-breakers",
        "every observed breaker transition is one DIVE's state machine allows",
        "plan 4.4; contract section 3",
        0,
    ),
    req(
        "4.4-answers",
        "no failure while every dependency is up, no 5xx while only non-critical services are down, no revoked token accepted outside DIVE's windows",
        "plan 4.4; contract sections 2, 7, 8",
        0,
    ),
    req(
        "4.4-recovery",
        "after the last restore, every instance healthy with every breaker CLOSED within the budget DIVE's timers give",
        "plan 4.4; plan 4.2 budgets",
        0,
    ),
    req("5.1-deploy", "hub + TST, FRA, DEU up and healthy", "plan 5.1 task 1", 0),
    req(
        "5.1-revoke",
        "a token revoked on the hub is rejected on every spoke",
        "plan 5.1 success criteria",
        5,
    ),
    req(
        "5.1-isolate",
        "one spoke down (TST, else the first): the hub and the other spokes unaffected; the hub lists it unhealthy, then recovers",
        "plan 5.1 task 3",
        0,
    ),
    req(
        "5.1-federation",
        "hub Keycloak down: spokes keep serving existing tokens; back: new tokens work everywhere",
        "plan 5.1 task 4",
        0,
    ),
    req(
        "4.5-opa",
        "under constant-rate load, OPA stopped or frozen: answers fast again once the opa breaker is OPEN, none fails, the tail back after the restore, the listing untouched",
        "plan 4.5 (load test under failure conditions)",
        0,
    ),
    req(
        "4.5-kc",
        "under constant-rate load, Keycloak stopped or frozen: answers fast again once the keycloak breaker is OPEN, none fails, the tail back after the restore, liveness untouched",
        "plan 4.5 (load test under failure conditions)",
        0,
    ),
    req(
        "4.5-mongo",
        "under constant-rate load, MongoDB stopped or frozen: failures fast once the mongodb breaker is OPEN, answers back after the restore, liveness untouched",
        "plan 4.5 (load test under failure conditions)",
        0,
    ),
    req(
        "4.5-redis",
        "under constant-rate load, the cache Redis stopped or frozen: authorization keeps its latency and answers, the listing untouched",
        "plan 4.5 (load test under failure conditions)",
        0,
    ),
    req(
        "4.5-kas",
        "under constant-rate load, KAS stopped or frozen: answers fast again once the kas breaker is OPEN, none fails, the tail back after the restore, the listing untouched",
        "plan 4.5 (load test under failure conditions)",
        0,
    ),
    // Phase 5.2, token trust: each is "refused on the first request", so none has a timing budget.
    req(
        "5.2-forged",
        "a token with a trusted issuer's iss and header, signed by a key nobody trusts, is refused on every instance, cold and right after a valid token was accepted",
        "issue 13 (token trust)",
        0,
    ),
    req(
        "5.2-none",
        "an alg none token and a token whose signature is cut off are refused on every instance",
        "issue 13 (token trust)",
        0,
    ),
    req(
        "5.2-expired",
        "a genuinely issued token past its exp (beyond the 30 s clock tolerance) is refused on every instance",
        "issue 13 (token trust)",
        0,
    ),
    req(
        "5.2-issuer",
        "a well-signed token from an issuer the instance does not trust is refused on every instance",
        "issue 13 (token trust)",
        0,
    ),
    req(
        "5.2-identity",
        "a low-clearance user's token is never answered with another user's identity: 403 for a TOP_SECRET resource right after a TOP_SECRET user read it",
        "issue 13 (token trust)",
        0,
    ),
    req(
        "5.2-outage",
        "forged tokens refused and identities kept apart while Keycloak, the revocation store or the cache Redis is down; a revoked token refused again once the store is back",
        "issue 13 (token trust)",
        0,
    ),
];

/// A budget the plan does not give but a scenario needs (a window to hold, a derived bound), with
/// the reasoning that sets it, at time scale 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Derived {
    pub id: &'static str,
    pub reason: &'static str,
    pub budget: Duration,
    /// A part the time scale does not reach: Prometheus's and AlertManager's own timers.
    pub fixed: Duration,
}

const fn derived(id: &'static str, reason: &'static str, budget_s: u64) -> Derived {
    derived_plus(id, reason, budget_s, 0)
}

const fn derived_plus(id: &'static str, reason: &'static str, budget_s: u64, fixed_s: u64) -> Derived {
    Derived {
        id,
        reason,
        budget: Duration::from_secs(budget_s),
        fixed: Duration::from_secs(fixed_s),
    }
}

/// The suite's derived budgets, stated in the README next to the requirement table.
pub const DERIVED: &[Derived] = &[
    derived(
        "4.1-redis window",
        "authorization must keep answering this long with the cache Redis down",
        20,
    ),
    derived(
        "4.2-all window",
        "authorization must keep answering this long with every non-critical service down",
        30,
    ),
    derived(
        "4.2-all back",
        "Keycloak's and KAS's breakers re-admit a call 30 s after their last failure and close after two successes",
        60,
    ),
    derived(
        "4.2-partial window",
        "the keycloak breaker must stay OPEN this long while only OPA is back (past OPA's 60 s timeout)",
        45,
    ),
    derived(
        "5.1-isolate listed",
        "the hub marks a spoke unhealthy 90 s after its last heartbeat; heartbeats come every 30 s",
        120,
    ),
    derived(
        "5.1-isolate dropped",
        "a returning spoke's first heartbeat is due within 30 s of its start, plus its own start",
        60,
    ),
    derived(
        "5.1-federation window",
        "issued tokens must keep working this long with the hub's Keycloak down",
        30,
    ),
    derived(
        "5.1-federation new token",
        "nothing caches a failed login, so a new token works once Keycloak answers; its start is what takes time",
        60,
    ),
    derived(
        "5.2-expired wait",
        "the longest the suite waits for a genuinely issued token to expire (its lifespan plus DIVE's 30 s clock tolerance) on a live DIVE that cannot issue one already expired",
        120,
    ),
    derived(
        "4.4-answers grace",
        "a restored service may still fail calls that were in flight (DIVE's call timeouts are 2-5 s) or pools that reconnect: answers are judged this long after a restore, on top of the open timeout of the breaker in front of it",
        10,
    ),
    derived(
        "4.4-recovery budget",
        "the grace after a restore (10 s), then the slowest breaker's open timeout (60 s), its closing successes at the harness's pace and one health poll (5 s), and one heartbeat window (30 s) for the hub to hear a restarted spoke; a schedule that faults only services behind faster breakers, or no backend, gets the terms of what it faults",
        105,
    ),
    derived_plus(
        "steady state",
        "after a restore every breaker is CLOSED again once its open timeout (at most 60 s) has passed and traffic closed it; 3 s more for the last health calls",
        90,
        3,
    ),
    derived_plus(
        "4.3-pipeline settle",
        "every Prometheus target scraped once: four scrape intervals (15 s), and 10 s for Prometheus's own target discovery, which refreshes every 5 s",
        60,
        10,
    ),
    derived_plus(
        "5.1-revoke bystander",
        "after a revocation another user gets in at once on a DIVE that meets the plan; one whose introspection cache answers tokens by their first characters (D11) refuses them until that answer expires: its lifetime (300 s), and 5 s for the last look",
        300,
        5,
    ),
    derived_plus(
        "4.3-inhibit judged",
        "AlertManager applies an inhibition when asked, once both alerts have arrived: two scrape intervals (15 s), and 2 s for the posting",
        30,
        2,
    ),
    derived(
        "4.5 baseline",
        "load before the fault, whose tail every later phase is held to: about 340 requests of the affected route at the default rate",
        30,
    ),
    derived(
        "4.5 open window",
        "load held with the breaker OPEN before the restore: two thirds of the shortest open timeout (keycloak, kas: 30 s), so no HALF_OPEN probe falls inside it",
        20,
    ),
    derived(
        "4.5 fast again",
        "from the fault to answers fast again: the breaker opens within 4.1's 30 s, and what it admitted before then ends within OPA's and KAS's 5 s client timeout",
        35,
    ),
    derived(
        "4.5 recovery",
        "from the restore to answers fast and right again: the breaker re-admits calls at most its open timeout (60 s for opa and mongodb) after a last failure that came before the restore; its few successes come within a second of load",
        60,
    ),
    derived(
        "4.5 after",
        "load held once the instance settled after the restore, its tail judged against the baseline's",
        20,
    ),
    derived(
        "4.5 tail slack",
        "added to twice the baseline p99 to bound every later tail: under half of OPA's and KAS's 5 s client timeout, so a request that waited one out is over the bound for any baseline p99 under 1.5 s, while the noise of a busy machine is not",
        2,
    ),
    derived(
        "4.5 client timeout",
        "how long the load waits for one answer: six times OPA's and KAS's 5 s client timeout, so a request that waits out a dependency still answers, and only one that hangs times out",
        30,
    ),
];

/// A bound of phase 4.5 that is a number rather than a duration (a factor, a share of
/// requests), with the reasoning that sets it. It does not scale with time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    pub id: &'static str,
    pub reason: &'static str,
    pub value: f64,
}

/// Phase 4.5's bounds that are not durations, stated in docs/load-under-failure.md with the derived budgets.
pub const RATIOS: &[Ratio] = &[
    Ratio {
        id: "4.5 tail factor",
        reason: "a tail within twice the baseline's p99 (plus the slack) is the same DIVE under the same load on the same machine, with nothing waiting on the failed dependency",
        value: 2.0,
    },
    Ratio {
        id: "4.5 damage with a fallback",
        reason: "OPA, Keycloak, KAS and the cache Redis each have a fallback or are off the request path (contract section 8): no request may fail while one is down",
        value: 0.0,
    },
    Ratio {
        id: "4.5 damage without a fallback",
        reason: "without MongoDB there is no resource to answer with and DIVE answers 500: every request may fail, and the damage is bounded in time instead, by 4.5 fast again",
        value: 1.0,
    },
];

/// Looks a ratio up by id; an unknown id is a mistake in the suite.
#[track_caller]
pub fn ratio(id: &str) -> f64 {
    RATIOS
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no ratio `{id}` in the slo table"))
        .value
}

/// Looks a requirement up by id.
#[track_caller]
pub fn requirement(id: &str) -> &'static Requirement {
    REQUIREMENTS
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no requirement `{id}` in the slo table"))
}

/// The budget called `id` (a requirement with a budget, or a derived budget), scaled. An id that
/// names neither is a mistake in the suite, not a zero budget.
#[track_caller]
pub fn budget(id: &str, time_scale: f64) -> Budget {
    let plan = REQUIREMENTS
        .iter()
        .find(|r| r.id == id)
        .map(|r| (r.id, r.budget, Duration::ZERO))
        .or_else(|| {
            DERIVED
                .iter()
                .find(|d| d.id == id)
                .map(|d| (d.id, Some(d.budget), d.fixed))
        });
    match plan {
        Some((label, Some(plan), fixed)) => {
            let scaled = Budget::scaled(label, plan, time_scale);
            Budget {
                limit: scaled.limit + fixed,
                ..scaled
            }
        }
        Some((_, None, _)) => panic!("requirement `{id}` has no budget in the plan; derive one in slo::DERIVED"),
        None => panic!("no budget `{id}` in the slo table"),
    }
}

/// A budget as it applies to this run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub label: &'static str,
    pub limit: Duration,
}

impl Budget {
    /// `plan` (at scale 1) multiplied by the time scale.
    pub fn scaled(label: &'static str, plan: Duration, time_scale: f64) -> Budget {
        Budget {
            label,
            limit: plan.mul_f64(time_scale),
        }
    }

    /// How long to keep polling before giving up: well past the budget, so a slow pass is measured
    /// rather than cut off.
    pub fn deadline(&self) -> Duration {
        self.limit * 2 + Duration::from_secs(2)
    }

    /// The report line: `opa breaker OPEN after 1.8 s (budget 3.0 s)`.
    pub fn line(&self, what: &str, measured: Duration) -> String {
        let verdict = if measured <= self.limit { "" } else { " OVER BUDGET" };
        format!("{what} after {} (budget {}){verdict}", secs(measured), secs(self.limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_to_many_instances_shares_the_pace_of_four() {
        assert_eq!(tick_among(0), TICK);
        assert_eq!(tick_among(3), TICK);
        assert_eq!(tick_among(4), TICK);
        assert_eq!(tick_among(5), TICK * 2);
        assert_eq!(tick_among(31), TICK * 8);
        // Requests per second in all never exceed four instances at full pace.
        for n in 1..=40u32 {
            let total = f64::from(n) / tick_among(n as usize).as_secs_f64();
            assert!(total <= 4.0 / TICK.as_secs_f64() + 1e-9, "{n} instances: {total} req/s");
        }
    }

    #[test]
    fn every_design_requirement_is_in_the_table_once() {
        let mut ids: Vec<_> = REQUIREMENTS.iter().map(|r| r.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), REQUIREMENTS.len());
        assert_eq!(requirement("4.2-opa").budget, Some(Duration::from_secs(90)));
        let derived = DERIVED.iter().filter(|d| REQUIREMENTS.iter().any(|r| r.id == d.id));
        assert_eq!(derived.count(), 0, "a derived budget never shadows a requirement");
    }

    #[test]
    fn budgets_come_from_the_table_and_unknown_ids_are_refused() {
        assert_eq!(budget("4.1-opa", 0.1).limit, Duration::from_secs(3));
        assert_eq!(budget("4.2-all back", 1.0).limit, Duration::from_secs(60));
        assert!(std::panic::catch_unwind(|| budget("4.1-nope", 1.0)).is_err());
        assert!(
            std::panic::catch_unwind(|| budget("4.1-redis", 1.0)).is_err(),
            "no budget in the plan"
        );
    }

    #[test]
    fn load_bounds_are_data_and_never_shadow_each_other() {
        assert_eq!(ratio("4.5 tail factor"), 2.0);
        assert!(std::panic::catch_unwind(|| ratio("4.5 nope")).is_err());
        assert_eq!(budget("4.5 open window", 0.1).limit, Duration::from_secs(2));
        let names: Vec<&str> = RATIOS.iter().map(|r| r.id).collect();
        assert!(names.iter().all(|n| DERIVED.iter().all(|d| d.id != *n)));
        for id in ["4.5-opa", "4.5-kc", "4.5-mongo", "4.5-redis", "4.5-kas"] {
            assert_eq!(requirement(id).budget, None, "4.5 judges with derived budgets");
        }
        assert!(
            budget("4.5 open window", 1.0).limit < Duration::from_secs(30),
            "shorter than the shortest open timeout"
        );
    }

    #[test]
    fn budgets_scale_and_print_pass_or_fail() {
        let b = Budget::scaled("4.1-opa", Duration::from_secs(30), 0.1);
        assert_eq!(b.limit, Duration::from_secs(3));
        assert_eq!(
            b.line("opa breaker OPEN", Duration::from_millis(1840)),
            "opa breaker OPEN after 1.8 s (budget 3.0 s)"
        );
        assert_eq!(
            b.line("opa breaker OPEN", Duration::from_millis(3200)),
            "opa breaker OPEN after 3.2 s (budget 3.0 s) OVER BUDGET"
        );
    }
}
