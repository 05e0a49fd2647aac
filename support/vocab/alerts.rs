//! The ten circuit-breaker and database alerts the suite holds DIVE to (contract section 5): name,
//! labels, DIVE's `for`, the series each reads and who writes them, and how long the plan's path
//! from a condition to AlertManager takes on paper.

use std::time::Duration;

/// Who writes an alert's input series, and when it first has a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Producer {
    /// The backend, from its start (the breaker gauges, the health gauges once health is asked).
    Backend,
    /// The backend, from the first time `event` happens: prom-client creates a labelled series at
    /// its first increment or set, so no samples before it prove nothing (D2 shows only after the
    /// event was driven).
    BackendOnEvent(&'static str),
    /// An exporter DIVE does not run (and the reference does not have).
    Exporter,
}

/// The event that creates the rejects counter's series.
pub const A_REJECT: &str = "a call rejected by an OPEN breaker";
/// The event that creates the database error counter's series.
pub const A_DB_ERROR: &str = "a failed database call";
/// The event that creates the pool gauges' series.
pub const A_DB_CALL: &str = "a database call through the pool";

/// One of the ten alerts of contract section 5.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertSpec {
    pub name: &'static str,
    pub component: &'static str,
    pub severity: &'static str,
    /// DIVE's `for`, at time scale 1.
    pub for_plan: Duration,
    /// The range its expression looks back over (`increase(..[5m])`), at time scale 1: an
    /// earlier outage keeps such an alert firing this long after its events stopped.
    pub lookback: Duration,
    pub inputs: &'static [&'static str],
    pub producer: Producer,
    /// promtool input series (DIVE's labels as scraped) and values that make the condition hold.
    pub unit_inputs: &'static [(&'static str, &'static str)],
}

const fn m(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

/// The ten alerts, in the contract's order.
pub const ALERTS: [AlertSpec; 10] = [
    AlertSpec {
        name: "CircuitBreakerOpen",
        component: "resilience",
        severity: "critical",
        for_plan: m(1),
        lookback: Duration::ZERO,
        inputs: &["dive_v3_circuit_breaker_state"],
        producer: Producer::Backend,
        unit_inputs: &[("dive_v3_circuit_breaker_state", "2")],
    },
    AlertSpec {
        name: "CircuitBreakerHalfOpen",
        component: "resilience",
        severity: "warning",
        for_plan: m(5),
        lookback: Duration::ZERO,
        inputs: &["dive_v3_circuit_breaker_state"],
        producer: Producer::Backend,
        unit_inputs: &[("dive_v3_circuit_breaker_state", "1")],
    },
    AlertSpec {
        name: "HighCircuitBreakerRejects",
        component: "resilience",
        severity: "warning",
        for_plan: m(2),
        lookback: m(5),
        inputs: &["dive_v3_circuit_breaker_rejects_total"],
        producer: Producer::BackendOnEvent(A_REJECT),
        unit_inputs: &[("dive_v3_circuit_breaker_rejects_total", "0+5")],
    },
    AlertSpec {
        name: "CircuitBreakerFailuresHigh",
        component: "resilience",
        severity: "warning",
        for_plan: m(1),
        lookback: Duration::ZERO,
        inputs: &["dive_v3_circuit_breaker_failures"],
        producer: Producer::Backend,
        unit_inputs: &[("dive_v3_circuit_breaker_failures", "5")],
    },
    AlertSpec {
        name: "DBConnectionPoolExhausted",
        component: "database",
        severity: "critical",
        for_plan: m(5),
        lookback: Duration::ZERO,
        inputs: &["dive_v3_db_connections_active", "dive_v3_db_connections_total"],
        producer: Producer::BackendOnEvent(A_DB_CALL),
        unit_inputs: &[
            ("dive_v3_db_connections_active", "10"),
            ("dive_v3_db_connections_total", "10"),
        ],
    },
    AlertSpec {
        name: "DBConnectionErrors",
        component: "database",
        severity: "warning",
        for_plan: m(2),
        lookback: m(5),
        inputs: &["dive_v3_db_connection_errors_total"],
        producer: Producer::BackendOnEvent(A_DB_ERROR),
        unit_inputs: &[("dive_v3_db_connection_errors_total", "0+2")],
    },
    AlertSpec {
        name: "DBNoIdleConnections",
        component: "database",
        severity: "warning",
        for_plan: m(5),
        lookback: Duration::ZERO,
        inputs: &["dive_v3_db_connections_idle", "dive_v3_db_connections_active"],
        producer: Producer::BackendOnEvent(A_DB_CALL),
        unit_inputs: &[
            ("dive_v3_db_connections_idle", "0"),
            ("dive_v3_db_connections_active", "10"),
        ],
    },
    AlertSpec {
        name: "OrchestrationDBDown",
        component: "database",
        severity: "critical",
        for_plan: m(2),
        lookback: Duration::ZERO,
        inputs: &["pg_up"],
        producer: Producer::Exporter,
        unit_inputs: &[("pg_up", "0")],
    },
    AlertSpec {
        name: "MongoDBConnectionIssues",
        component: "database",
        severity: "warning",
        for_plan: m(5),
        lookback: m(5),
        inputs: &["mongodb_connections_totalcreated", "mongodb_connections_current"],
        producer: Producer::Exporter,
        unit_inputs: &[
            ("mongodb_connections_totalcreated", "7"),
            ("mongodb_connections_current", "3"),
        ],
    },
    AlertSpec {
        name: "MongoDBHealthDegraded",
        component: "database",
        severity: "critical",
        for_plan: m(3),
        lookback: Duration::ZERO,
        inputs: &["dive_v3_mongodb_health"],
        producer: Producer::Backend,
        unit_inputs: &[("dive_v3_mongodb_health", "0")],
    },
];

/// Looks an alert of the catalogue up by name.
#[track_caller]
pub fn alert(name: &str) -> &'static AlertSpec {
    ALERTS
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no alert `{name}` in the catalogue"))
}

/// DIVE's Prometheus scrape and evaluation interval.
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(15);

/// The plan's path from a breaker to AlertManager, at scale 1: the backend's 10 s gauge poll, one
/// 15 s scrape and one 15 s evaluation on top of the rule's `for` (contract section 5).
pub const PIPELINE_ON_PAPER: Duration = Duration::from_secs(40);

impl AlertSpec {
    /// How long after its condition clears the alert is gone from AlertManager at the latest, on
    /// paper, scaled: its look-back range, then the pipeline.
    pub fn quiet_bound(&self, time_scale: f64) -> Duration {
        (self.lookback + PIPELINE_ON_PAPER).mul_f64(time_scale)
    }

    /// When the alert should be visible in AlertManager at the latest, on paper, scaled.
    pub fn paper_bound(&self, time_scale: f64) -> Duration {
        (self.for_plan + PIPELINE_ON_PAPER).mul_f64(time_scale)
    }
}

/// Whether Prometheus text exposition `text` has a sample of `metric` (not only its `# HELP` and
/// `# TYPE` lines, which prom-client prints for a labelled series before its first event).
pub fn has_samples(text: &str, metric: &str) -> bool {
    text.lines().any(|line| {
        line.strip_prefix(metric)
            .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_and_type_lines_are_not_samples() {
        let before = "# HELP dive_v3_circuit_breaker_rejects_total Calls rejected\n# TYPE dive_v3_circuit_breaker_rejects_total counter\n";
        assert!(!has_samples(before, "dive_v3_circuit_breaker_rejects_total"));
        let after = format!("{before}dive_v3_circuit_breaker_rejects_total{{service=\"opa\"}} 3\n");
        assert!(has_samples(&after, "dive_v3_circuit_breaker_rejects_total"));
        assert!(
            !has_samples(&after, "dive_v3_circuit_breaker_rejects"),
            "a prefix is another metric"
        );
    }
}
