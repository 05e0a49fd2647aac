//! `/metrics`: DIVE's prom-client registry as Prometheus text, with its default labels.

use super::*;

pub(super) async fn metrics(State(b): State<Arc<Backend>>) -> Response {
    let labels = format!(
        "app=\"dive-v3\",instance=\"{}\",region=\"reference\"",
        b.cfg.code.to_lowercase()
    );
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (extra, value) in samples {
            let sep = if extra.is_empty() { "" } else { "," };
            let _ = writeln!(out, "{name}{{{extra}{sep}{labels}}} {value}");
        }
    };
    let polled = b.polled.lock().map(|p| p.clone()).unwrap_or_default();
    family(
        "dive_v3_circuit_breaker_state",
        "gauge",
        "Circuit breaker state (0 CLOSED, 1 HALF_OPEN, 2 OPEN)",
        polled
            .iter()
            .map(|(k, s, _)| (format!("service=\"{k}\""), f64::from(*s)))
            .collect(),
    );
    family(
        "dive_v3_circuit_breaker_failures",
        "gauge",
        "Consecutive failures counted by the breaker",
        polled
            .iter()
            .map(|(k, _, f)| (format!("service=\"{k}\""), *f as f64))
            .collect(),
    );
    let written = b.cfg.behaviour.resilience_metrics_written;
    let mut rejects = Vec::new();
    let mut transitions = Vec::new();
    for k in Breaker::ALL {
        if !written {
            break;
        }
        if let Ok(cb) = b.breakers[&k].lock() {
            // prom-client creates a labelled counter's series at its first increment.
            let rejected = cb.stats().reject_count;
            if rejected > 0 {
                rejects.push((format!("service=\"{k}\""), rejected as f64));
            }
            let mut counts: HashMap<(BreakerState, BreakerState), u64> = HashMap::new();
            for t in cb.transitions() {
                *counts.entry(*t).or_default() += 1;
            }
            for ((from, to), n) in counts {
                transitions.push((
                    format!("service=\"{k}\",from_state=\"{from}\",to_state=\"{to}\""),
                    n as f64,
                ));
            }
        }
    }
    family(
        "dive_v3_circuit_breaker_rejects_total",
        "counter",
        "Calls rejected by an OPEN breaker",
        rejects,
    );
    family(
        "dive_v3_circuit_breaker_transitions_total",
        "counter",
        "Breaker state transitions",
        transitions,
    );
    let active = (MONGO_POOL_SIZE - b.pool.available_permits()) as f64;
    let pool = |v: f64| {
        if written {
            vec![("db_type=\"mongodb\"".to_string(), v)]
        } else {
            Vec::new()
        }
    };
    family(
        "dive_v3_db_connections_active",
        "gauge",
        "Connections in use",
        pool(active),
    );
    family(
        "dive_v3_db_connections_idle",
        "gauge",
        "Idle connections",
        pool(MONGO_POOL_SIZE as f64 - active),
    );
    family(
        "dive_v3_db_connections_total",
        "gauge",
        "Pool size",
        pool(MONGO_POOL_SIZE as f64),
    );
    let errors = if written {
        // prom-client: an error type has a series from its first error on.
        let counted = b.db_errors.lock().map(|e| e.clone()).unwrap_or_default();
        let mut errors: Vec<_> = counted
            .iter()
            .map(|(k, n)| (format!("db_type=\"mongodb\",error_type=\"{k}\""), *n as f64))
            .collect();
        errors.sort_by(|a, b| a.0.cmp(&b.0));
        errors
    } else {
        Vec::new()
    };
    family(
        "dive_v3_db_connection_errors_total",
        "counter",
        "Database connection errors",
        errors,
    );
    let mut health: std::collections::BTreeMap<String, Vec<(String, f64)>> = Default::default();
    for (series, value) in b.health_gauges.lock().map(|g| g.clone()).unwrap_or_default() {
        let (name, extra) = match series.split_once('{') {
            Some((n, rest)) => (n.to_string(), rest.trim_end_matches('}').to_string()),
            None => (series.clone(), String::new()),
        };
        health.entry(name).or_default().push((extra, value));
    }
    for (name, samples) in health {
        family(&name, "gauge", "Health as of the last detailed check", samples);
    }
    ([("content-type", "text/plain; version=0.0.4")], out).into_response()
}
