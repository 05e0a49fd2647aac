//! The requirement table of the plan, with budgets as data. Budgets are the plan's (time scale 1)
//! and are multiplied by the run's time scale, like every DIVE timer in the reference deployment.

use std::time::Duration;

use crate::poll::secs;

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
    req("5.1-deploy", "hub + TST, FRA, DEU up and healthy", "plan 5.1 task 1", 0),
    req(
        "5.1-revoke",
        "a token revoked on the hub is rejected on every spoke",
        "plan 5.1 success criteria",
        5,
    ),
    req(
        "5.1-isolate",
        "TST down: FRA, DEU and hub unaffected; hub lists TST unhealthy, then recovers",
        "plan 5.1 task 3",
        0,
    ),
    req(
        "5.1-federation",
        "hub Keycloak down: spokes keep serving existing tokens; back: new tokens work everywhere",
        "plan 5.1 task 4",
        0,
    ),
];

/// Looks a requirement up by id.
#[track_caller]
pub fn requirement(id: &str) -> &'static Requirement {
    REQUIREMENTS
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| panic!("no requirement `{id}` in the slo table"))
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
    fn every_design_requirement_is_in_the_table_once() {
        let mut ids: Vec<_> = REQUIREMENTS.iter().map(|r| r.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), REQUIREMENTS.len());
        assert_eq!(requirement("4.2-opa").budget, Some(Duration::from_secs(90)));
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
