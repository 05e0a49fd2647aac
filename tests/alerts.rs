//! Phase 4.3 of the plan: alert validation with real Prometheus and AlertManager. Every scenario
//! first checks the alert pipeline (rules loaded, targets up, AlertManager connected, inputs
//! present), then induces a condition in DIVE and measures the alert's way to AlertManager, stage
//! by stage. The self-checks at the end run the same scenarios against DIVE as shipped and require
//! the findings that name D2, D3, D4 and D8.

use std::time::{Duration, Instant};

use dive_resilience::deployment::monitors::delivered;
use dive_resilience::deployment::traffic::{Pump, Traffic};
use dive_resilience::infra::alertmanager::{AmState, resolved, synthetic};
use dive_resilience::infra::config::must_config;
use dive_resilience::infra::os::random_hex;
use dive_resilience::infra::poll::{Pace, eventually};
use dive_resilience::prelude::*;
use dive_resilience::reference::backend::MONGO_POOL_SIZE;
use dive_resilience::scenario::diagnose;
use dive_resilience::vocab::alerts::{A_DB_CALL, A_DB_ERROR, A_REJECT, ALERTS, alert};
use dive_resilience::vocab::coalition::instance_label;
use dive_resilience::vocab::runbook::{RunbookLink, runbook_link, runbook_sections};
use dive_resilience::vocab::slo::REQUIREMENTS;

async fn monitored() -> Result<Deployment, Finding> {
    Deployment::from_config_monitored().await
}

/// The breaker alerts an OPA outage under traffic fires (4.3-ten).
const BREAKER_ALERTS: [&str; 3] = [
    "CircuitBreakerOpen",
    "CircuitBreakerFailuresHigh",
    "HighCircuitBreakerRejects",
];
/// The alerts a frozen MongoDB fires (4.3-pool), shortest `for` first, so each is measured when it
/// fires.
const POOL_ALERTS: [&str; 4] = [
    "DBConnectionErrors",
    "MongoDBHealthDegraded",
    "DBConnectionPoolExhausted",
    "DBNoIdleConnections",
];
/// The pair of 4.3-inhibit: the first suppresses the second for the same breaker.
const INHIBITION: [&str; 2] = ["CircuitBreakerOpen", "HighCircuitBreakerRejects"];

/// Before any fault: the pipeline the `needed` alerts depend on, then steady state on the hub.
async fn ready(d: &Deployment, s: &mut Scenario, needed: &[&str]) -> Result<(), Finding> {
    let needed: Vec<_> = needed.iter().map(|name| alert(name)).collect();
    s.pipeline_preflight(d.monitors()?, d, &needed).await?;
    s.preflight(d.hub()).await
}

/// A scenario run alone on its own OPA outage under traffic: the pipeline of `needed` and steady
/// state, OPA stopped, `during` while it is down, OPA back, the postcheck.
async fn on_its_own_opa_outage<F>(d: &Deployment, s: &mut Scenario, needed: &[&str], during: F) -> Result<(), Finding>
where
    F: AsyncFnOnce(&Deployment, &mut Scenario, &Pump) -> Result<(), Finding>,
{
    let hub = d.hub();
    ready(d, s, needed).await?;
    let traffic = hub.traffic().await?.pump(TICK);
    let opa = s.fault(hub, Service::Opa, FaultKind::Stop).await?;
    during(d, s, &traffic).await?;
    s.restore(opa).await?;
    s.postcheck(hub, &traffic).await;
    Ok(())
}

/// 4.3-open: OPA stopped under traffic -> CircuitBreakerOpen active in AlertManager within 5 min.
async fn open_alert(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    on_its_own_opa_outage(d, s, &["CircuitBreakerOpen"], open_while_down).await
}

/// 4.3-open with OPA down: the breaker OPEN, then CircuitBreakerOpen's way to AlertManager.
async fn open_while_down(d: &Deployment, s: &mut Scenario, traffic: &Pump) -> Result<(), Finding> {
    let (hub, mon) = (d.hub(), d.monitors()?);
    let (budget, opa_budget) = (s.budget_of("4.3-open"), s.budget_of("4.1-opa"));
    if s.breaker_reaches(hub, traffic, Breaker::Opa, BreakerState::Open, opa_budget)
        .await
        .is_some()
    {
        s.open_travels(mon, hub, "opa", budget).await?;
    }
    Ok(())
}

/// 4.3-resolve: OPA back and the breaker closed -> CircuitBreakerOpen gone within 2 min.
async fn resolve_alert(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let hub = d.hub();
    ready(d, s, &["CircuitBreakerOpen"]).await?;
    let traffic = hub.traffic().await?.pump(TICK);
    let opa = s.fault(hub, Service::Opa, FaultKind::Stop).await?;
    open_before_it_resolves(d, s, &traffic).await?;
    s.restore(opa).await?;
    resolve_once_closed(d, s, &traffic).await?;
    s.postcheck(hub, &traffic).await;
    Ok(())
}

/// 4.3-resolve with OPA down: CircuitBreakerOpen has to reach AlertManager before it can resolve.
async fn open_before_it_resolves(d: &Deployment, s: &mut Scenario, traffic: &Pump) -> Result<(), Finding> {
    let (hub, mon) = (d.hub(), d.monitors()?);
    let (opa_budget, open_budget) = (s.budget_of("4.1-opa"), s.budget_of("4.3-open"));
    s.breaker_reaches(hub, traffic, Breaker::Opa, BreakerState::Open, opa_budget)
        .await;
    s.open_travels(mon, hub, "opa", open_budget).await
}

/// 4.3-resolve with OPA back: the breaker CLOSED under traffic, then CircuitBreakerOpen's way out.
async fn resolve_once_closed(d: &Deployment, s: &mut Scenario, traffic: &impl Tallied) -> Result<(), Finding> {
    let (hub, mon) = (d.hub(), d.monitors()?);
    let (close_budget, budget) = (s.budget_of("4.2-opa"), s.budget_of("4.3-resolve"));
    if s.breaker_reaches(hub, traffic, Breaker::Opa, BreakerState::Closed, close_budget)
        .await
        .is_some()
    {
        s.resolve_travels(mon, hub, "opa", budget).await?;
    }
    Ok(())
}

/// 4.3-ten, breaker alerts: OPA down under traffic fires CircuitBreakerOpen,
/// CircuitBreakerFailuresHigh and, from the rejects, HighCircuitBreakerRejects.
async fn breaker_alerts(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    on_its_own_opa_outage(d, s, &BREAKER_ALERTS, breaker_alerts_while_down).await
}

/// 4.3-ten with OPA down under traffic: the breaker OPEN, its alerts firing, and the rejects'
/// alert once the breaker has rejected calls.
async fn breaker_alerts_while_down(d: &Deployment, s: &mut Scenario, traffic: &Pump) -> Result<(), Finding> {
    let (hub, mon) = (d.hub(), d.monitors()?);
    let since = s.origin();
    let labels = [("exported_service", "opa")];
    let open = s.budget_of("4.1-opa");
    if s.breaker_reaches(hub, traffic, Breaker::Opa, BreakerState::Open, open)
        .await
        .is_none()
    {
        return Ok(());
    }
    for name in &BREAKER_ALERTS[..2] {
        s.alert_fires(mon, alert(name), &labels, since).await;
    }
    // The rejects counter has a series only from its first reject: judge it after some.
    let rejected = s.breaker(hub, Breaker::Opa).await.map(|b| b.reject_count).unwrap_or(0);
    let seen = format!("opa rejectCount={rejected}");
    if rejected == 0 {
        s.finding(Finding::fail(format!(
            "the opa breaker rejected no call while OPEN under traffic ({})",
            traffic.tally_since(since)
        )));
    } else if s
        .written_after(hub, "dive_v3_circuit_breaker_rejects_total", A_REJECT, &seen)
        .await
    {
        s.alert_fires(mon, alert(BREAKER_ALERTS[2]), &labels, since).await;
    }
    Ok(())
}

/// 4.3-ten, CircuitBreakerHalfOpen: one success after the open timeout, then silence.
async fn half_open_alert(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let hub = d.hub();
    ready(d, s, &["CircuitBreakerHalfOpen"]).await?;
    let pump = hub.traffic().await?.pump(TICK);
    let opa = s.fault(hub, Service::Opa, FaultKind::Stop).await?;
    let opa_budget = s.budget_of("4.1-opa");
    s.breaker_reaches(hub, &pump, Breaker::Opa, BreakerState::Open, opa_budget)
        .await;
    let mut traffic = pump.stop().await.map_err(Finding::fail)?;
    s.restore(opa).await?;
    one_trial_call(d, s, &mut traffic).await?;
    half_open_fires(d, s).await?;
    s.postcheck(hub, &traffic.pump(TICK)).await;
    Ok(())
}

/// With OPA back and no traffic, trial calls until one after the open timeout leaves the opa
/// breaker HALF_OPEN, where DIVE keeps it until more calls come.
async fn one_trial_call(d: &Deployment, s: &mut Scenario, traffic: &mut Traffic) -> Result<(), Finding> {
    let hub = d.hub();
    let half_open = s.budget_of("4.2-opa");
    let trial = eventually("opa breaker HALF_OPEN", TICK, half_open.deadline(), async || {
        traffic.send().await;
        let b = s.breaker(hub, Breaker::Opa).await?;
        if b.state == BreakerState::HalfOpen {
            Ok(())
        } else {
            Err(b.to_string())
        }
    })
    .await
    .map_err(|t| Finding::fail(t.to_string()))?;
    s.observed("opa breaker HALF_OPEN after one trial call", trial.elapsed);
    Ok(())
}

/// The opa breaker held HALF_OPEN: CircuitBreakerHalfOpen fires after its `for`.
async fn half_open_fires(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let (name, labels) = ("CircuitBreakerHalfOpen", [("exported_service", "opa")]);
    s.alert_fires(d.monitors()?, alert(name), &labels, Instant::now()).await;
    Ok(())
}

/// 4.3-pool: MongoDB frozen under more requests than the pool holds fires
/// DBConnectionPoolExhausted and DBNoIdleConnections; the failing pings behind the detailed
/// health fire DBConnectionErrors and MongoDBHealthDegraded.
async fn pool_alerts(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let hub = d.hub();
    ready(d, s, &POOL_ALERTS).await?;
    pool_frozen_and_back(d, s).await?;
    s.postcheck(hub, &hub.traffic().await?.pump(TICK)).await;
    Ok(())
}

/// 4.3-pool from the fault to the restore: MongoDB paused, the pool held, every alert judged.
async fn pool_frozen_and_back(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let (hub, mon) = (d.hub(), d.monitors()?);
    let load = hub.traffic().await?;
    let mongodb = s.fault(hub, Service::Mongodb, FaultKind::Pause).await?;
    let patience = alert("DBConnectionPoolExhausted").paper_bound(d.time_scale) * 3;
    let held = load.hold(MONGO_POOL_SIZE, patience);
    let since = Instant::now();
    // The detailed health check sets the MongoDB gauge, and fails against the frozen server:
    // keep asking it, one call per tick, until every alert has been judged.
    let judged = std::sync::atomic::AtomicBool::new(false);
    let health = async {
        let mut pace = Pace::new(TICK);
        while !judged.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = hub.detailed().await;
            pace.next().await;
        }
    };
    let alerts = async {
        // Their series appear at their first event: after a failed ping, and once the pool is used.
        let first_ping = s
            .status_reaches(hub, Overall::Unhealthy, s.budget_of("4.1-mongo").deadline())
            .await;
        let errors_seen = match first_ping {
            Ok(_) => {
                let seen = "MongoDB pings failing";
                s.written_after(hub, "dive_v3_db_connection_errors_total", A_DB_ERROR, seen)
                    .await
            }
            Err(last) => {
                let seen = last.map_or("no answer".to_string(), |d| d.summary());
                s.finding(Finding::fail(format!(
                    "with MongoDB frozen the status is {seen}, not unhealthy: no failed database call to count"
                )));
                false
            }
        };
        let held_seen = format!("{MONGO_POOL_SIZE} requests holding pool connections");
        let pool_seen = s
            .written_after(hub, "dive_v3_db_connections_active", A_DB_CALL, &held_seen)
            .await;
        let labels = [("db_type", "mongodb")];
        for name in POOL_ALERTS {
            let writes = match name {
                "DBConnectionErrors" => errors_seen,
                "MongoDBHealthDegraded" => true,
                _ => pool_seen,
            };
            let labels: &[(&str, &str)] = if name.starts_with("DB") { &labels } else { &[] };
            if writes {
                s.alert_fires(mon, alert(name), labels, since).await;
            }
        }
        judged.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    tokio::join!(health, alerts);
    drop(held);
    s.restore(mongodb).await?;
    Ok(())
}

/// 4.3-ten, every rule's logic: `promtool test rules` on unit tests generated for the rule files
/// in use, and those rules are the ones Prometheus loaded.
async fn rule_logic(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let mon = d.monitors()?;
    let loaded = mon.prometheus.alert_rules().await.map_err(Finding::precondition)?;
    let missing: Vec<_> = ALERTS
        .iter()
        .filter(|a| !loaded.iter().any(|r| r.name == a.name))
        .map(|a| a.name)
        .collect();
    if !missing.is_empty() {
        s.finding(
            Finding::fail(format!(
                "Prometheus has {} alert rules; not loaded: {}",
                loaded.len(),
                missing.join(", ")
            ))
            .defect(Defect::D3),
        );
    }
    let dir = must_config().state_dir.join(format!("promtool-{}", random_hex()));
    match mon.promtool_test_rules(&dir).await {
        Ok(out) => {
            let names: Vec<_> = ALERTS.iter().map(|a| a.name).collect();
            s.report(format!(
                "promtool: every rule fires after its `for` and not before: {}",
                names.join(", ")
            ));
            s.event(out);
        }
        Err(e) => s.finding(Finding::fail(e)),
    }
    let _ = std::fs::remove_dir_all(&dir);
    s.finding(Finding::note(
        "OrchestrationDBDown and MongoDBConnectionIssues read exporter series (pg_up, mongodb_connections_*) that no DIVE service exports; they are proven by promtool only",
    ));
    Ok(())
}

/// 4.3-inhibit: CircuitBreakerOpen suppresses HighCircuitBreakerRejects of the same breaker,
/// first with the suite's synthetic alerts (safe on a live AlertManager), then with the real pair.
async fn inhibition(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    synthetic_pair_inhibited(d, s).await?;
    on_its_own_opa_outage(d, s, &INHIBITION, async |d, s, _| real_pair_inhibited(d, s).await).await
}

/// The inhibition rule, proven with synthetic alerts of a made-up breaker and a control alert of
/// another one, then resolved.
async fn synthetic_pair_inhibited(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let mon = d.monitors()?;
    let run = random_hex();
    let (this, other) = (format!("synthetic-{run}"), format!("synthetic-other-{run}"));
    let base = |name: &'static str, breaker: &str| {
        let labels = [
            ("alertname", name),
            ("exported_service", breaker),
            ("instance", "suite"),
            ("severity", "warning"),
        ];
        synthetic(&run, &labels, Duration::from_secs(60))
    };
    let alerts = vec![
        base("CircuitBreakerOpen", &this),
        base("HighCircuitBreakerRejects", &this),
        base("HighCircuitBreakerRejects", &other),
    ];
    mon.alertmanager.post(&alerts).await.map_err(Finding::precondition)?;
    let window = s.budget_of("4.3-inhibit judged").limit;
    let seen = eventually("synthetic pair judged", TICK, window, async || {
        let target = mon
            .am_alerts("HighCircuitBreakerRejects", &[("exported_service", this.as_str())])
            .await?;
        let control = mon
            .am_alerts("HighCircuitBreakerRejects", &[("exported_service", other.as_str())])
            .await?;
        match (target.first(), control.first()) {
            (Some(t), Some(c)) if t.status.state == AmState::Suppressed && !t.status.inhibited_by.is_empty() => {
                Ok((delivered(c, mon.silence.as_deref()), c.status.state))
            }
            (t, c) => Err(format!(
                "target {:?}, control {:?}",
                t.map(|a| a.status.state),
                c.map(|a| a.status.state)
            )),
        }
    })
    .await;
    match seen {
        Ok(m) if m.value.0 => s.observed("synthetic HighCircuitBreakerRejects suppressed", m.elapsed),
        Ok(m) => s.finding(Finding::fail(format!(
            "the inhibition also suppressed another breaker's alert ({:?})",
            m.value.1
        ))),
        Err(t) => s.finding(
            Finding::fail(format!(
                "CircuitBreakerOpen does not inhibit HighCircuitBreakerRejects of the same breaker: {t}"
            ))
            .defect(Defect::D4),
        ),
    }
    let cleanup: Vec<_> = alerts.into_iter().map(resolved).collect();
    mon.alertmanager.post(&cleanup).await.map_err(Finding::fail)
}

/// With OPA down under traffic: the real pair fires, and the rejects' alert is suppressed by
/// CircuitBreakerOpen of the same breaker on the same instance.
async fn real_pair_inhibited(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let (hub, mon) = (d.hub(), d.monitors()?);
    let since = s.origin();
    let labels = [("exported_service", "opa")];
    let instance = instance_label(&hub.code);
    for name in INHIBITION {
        s.alert_fires(mon, alert(name), &labels, since).await;
    }
    let real = [("exported_service", "opa"), ("instance", instance.as_str())];
    let rejects = mon
        .am_alerts("HighCircuitBreakerRejects", &real)
        .await
        .map_err(Finding::fail)?;
    let open = mon
        .am_alerts("CircuitBreakerOpen", &real)
        .await
        .map_err(Finding::fail)?;
    match diagnose::rejects_not_inhibited(rejects.first(), &open) {
        Ok(()) => {
            s.report("real HighCircuitBreakerRejects suppressed, inhibited by CircuitBreakerOpen of the opa breaker")
        }
        Err(finding) => s.finding(finding),
    }
    Ok(())
}

/// 4.3-runbook: the suite's runbook covers every alert and every scenario; every loaded rule of
/// the ten carries summary, description and a runbook_url. On the reference (the suite's rules)
/// the runbook_url points at its section of the suite's runbook; on a live DIVE (DIVE's rules) a
/// runbook_url into DIVE's repository names a file its checkout has.
async fn runbook(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let text = dive_resilience::reference::monitoring::fixture("fixtures/runbook.md").map_err(Finding::precondition)?;
    let sections = runbook_sections(&text);
    let scenarios = REQUIREMENTS
        .iter()
        .map(|r| r.id)
        .filter(|id| !id.starts_with("4.3-") && *id != "suite");
    for id in ALERTS.iter().map(|a| a.name).chain(scenarios) {
        match sections.iter().find(|(h, _)| h.as_str() == id) {
            Some((_, steps)) if *steps > 0 => {}
            Some(_) => s.finding(Finding::fail(format!(
                "runbook section `{id}` has no remediation steps"
            ))),
            None => s.finding(Finding::fail(format!("the runbook has no section `{id}`"))),
        }
    }
    let loaded = d
        .monitors()?
        .prometheus
        .alert_rules()
        .await
        .map_err(Finding::precondition)?;
    for a in &ALERTS {
        let Some(rule) = loaded.iter().find(|r| r.name == a.name) else {
            s.finding(
                Finding::fail(format!("{} is not loaded: its annotations cannot reach anyone", a.name))
                    .defect(Defect::D3),
            );
            continue;
        };
        for key in ["summary", "description", "runbook_url"] {
            if rule.annotations.get(key).is_none_or(|v| v.trim().is_empty()) {
                s.finding(Finding::fail(format!("{} has no `{key}` annotation", a.name)));
            }
        }
        if let Some(url) = rule.annotations.get("runbook_url") {
            runbook_url_leads_somewhere(d, s, a.name, url);
        }
        if rule.labels.get("severity").map(String::as_str) != Some(a.severity)
            || rule.labels.get("component").map(String::as_str) != Some(a.component)
        {
            s.finding(Finding::fail(format!(
                "{} has labels {:?}, DIVE's are severity={} component={}",
                a.name, rule.labels, a.severity, a.component
            )));
        }
    }
    Ok(())
}

/// Where `alert`'s runbook_url leads must exist: its section of the suite's runbook for the
/// suite's rules, the named file of DIVE's checkout for DIVE's own.
fn runbook_url_leads_somewhere(d: &Deployment, s: &mut Scenario, alert: &str, url: &str) {
    let Some(root) = d.dive_root() else {
        let anchor = format!("fixtures/runbook.md#{}", alert.to_lowercase());
        if !url.ends_with(&anchor) {
            s.finding(Finding::fail(format!(
                "{alert}'s runbook_url {url} does not point at its section {anchor}"
            )));
        }
        return;
    };
    match runbook_link(url) {
        RunbookLink::InRepository(path) if root.join(&path).is_file() => {}
        RunbookLink::InRepository(path) => s.finding(Finding::fail(format!(
            "{alert}'s runbook_url {url} names {path}, which DIVE's checkout at {} does not have",
            root.display()
        ))),
        RunbookLink::External(url) => s.finding(Finding::note(format!(
            "{alert}'s runbook_url {url} is outside DIVE's repository: not checked from here"
        ))),
    }
}

// ------------------------------------------------------------------ side by side, for a live run
//
// A live run at DIVE's real timers waits out each alert's `for` (up to 5 min): the scenarios that
// need the same outage observe it side by side, each judged and journaled as if it ran alone.

/// 4.1-opa, 4.2-opa, 4.3-open, -resolve, -ten's breaker alerts and -inhibit on one OPA outage
/// under traffic. With OPA back, 4.2-opa drives the way back request by request while 4.3-resolve
/// follows the alert out.
async fn opa_outage(d: &Deployment, all: &mut [Beside; 6]) {
    let hub = d.hub();
    let [injected, recovers, open, resolve, ten, inhibit] = all;
    injected.step(async |s| s.preflight(hub).await).await;
    recovers.step(async |s| s.preflight(hub).await).await;
    open.step(async |s| ready(d, s, &["CircuitBreakerOpen"]).await).await;
    resolve.step(async |s| ready(d, s, &["CircuitBreakerOpen"]).await).await;
    ten.step(async |s| ready(d, s, &BREAKER_ALERTS).await).await;
    inhibit
        .step(async |s| {
            synthetic_pair_inhibited(d, s).await?;
            ready(d, s, &INHIBITION).await
        })
        .await;
    let pump = match hub.traffic().await {
        Ok(t) => t.pump(TICK),
        Err(f) => return Beside::fail_all(all, f),
    };
    let Some(opa) = Beside::fault_all(all, hub, Service::Opa, FaultKind::Stop).await else {
        return;
    };
    let [injected, recovers, open, resolve, ten, inhibit] = all;
    tokio::join!(
        injected.step(async |s| {
            let budget = s.budget_of("4.1-opa");
            s.breaker_reaches(hub, &pump, Breaker::Opa, BreakerState::Open, budget)
                .await;
            s.critical_status(hub, "OPA", Breaker::Opa, budget).await;
            Ok(())
        }),
        recovers.step(async |s| opens(hub, s, &pump).await),
        open.step(async |s| open_while_down(d, s, &pump).await),
        resolve.step(async |s| open_before_it_resolves(d, s, &pump).await),
        ten.step(async |s| breaker_alerts_while_down(d, s, &pump).await),
        inhibit.step(async |s| real_pair_inhibited(d, s).await),
    );
    // The way back is driven one request at a time, so each state change has its cause.
    let traffic = pump.stop().await;
    let Some(back) = Beside::restore_all(all, opa).await else {
        return;
    };
    let mut traffic = match traffic {
        Ok(t) => t,
        Err(e) => return Beside::fail_all(all, Finding::fail(e)),
    };
    let driven = traffic.tallies();
    let [_, recovers, _, resolve, ..] = all;
    tokio::join!(
        recovers.step(async |s| {
            let budget = s.budget_of("4.2-opa");
            s.recovers(hub, &mut traffic, Breaker::Opa, budget, back.answered_at)
                .await;
            Ok(())
        }),
        resolve.step(async |s| resolve_once_closed(d, s, &driven).await),
    );
    Beside::postcheck_all(all, hub, &traffic.pump(TICK)).await;
}

/// The opa breaker OPEN within 4.1-opa's budget, or the scenario cannot go on.
async fn opens(hub: &Instance, s: &mut Scenario, pump: &Pump) -> Result<(), Finding> {
    let budget = s.budget_of("4.1-opa");
    match s
        .breaker_reaches(hub, pump, Breaker::Opa, BreakerState::Open, budget)
        .await
    {
        Some(_) => Ok(()),
        None => Err(Finding::fail("the opa breaker never opened: nothing to follow")),
    }
}

/// 4.2-idle, 4.3-ten's CircuitBreakerHalfOpen and 4.3-pool on one OPA outage: with OPA back and
/// no traffic the opa breaker stays OPEN for the plan's 90 s (4.2-idle); one trial call leaves it
/// HALF_OPEN, and while it is held there for the alert's 5 min MongoDB is frozen for the pool's.
/// The pool's requests wait on MongoDB before they could reach OPA, so they leave the HALF_OPEN
/// breaker alone.
async fn idle_half_open_and_pool(d: &Deployment, all: &mut [Beside; 3]) {
    let hub = d.hub();
    let [idle, half_open, pool] = all;
    idle.step(async |s| s.preflight(hub).await).await;
    half_open
        .step(async |s| ready(d, s, &["CircuitBreakerHalfOpen"]).await)
        .await;
    pool.step(async |s| ready(d, s, &POOL_ALERTS).await).await;
    let pump = match hub.traffic().await {
        Ok(t) => t.pump(TICK),
        Err(f) => return Beside::fail_all(all, f),
    };
    let Some(opa) = Beside::fault_all(all, hub, Service::Opa, FaultKind::Stop).await else {
        return;
    };
    let [idle, half_open, _] = all;
    tokio::join!(
        idle.step(async |s| opens(hub, s, &pump).await),
        half_open.step(async |s| opens(hub, s, &pump).await),
    );
    let traffic = pump.stop().await;
    Beside::restore_all(all, opa).await;
    let mut traffic = match traffic {
        Ok(t) => t,
        Err(e) => return Beside::fail_all(all, Finding::fail(e)),
    };
    all[0]
        .step(async |s| {
            let window = s.budget_of("4.2-idle").limit;
            let idle = s
                .breaker_holds(hub, Breaker::Opa, window, |state| state == BreakerState::Open)
                .await;
            s.finding(diagnose::idle_breaker(Breaker::Opa, idle));
            Ok(())
        })
        .await;
    all[1].step(async |s| one_trial_call(d, s, &mut traffic).await).await;
    let [_, half_open, pool] = all;
    tokio::join!(
        half_open.step(async |s| half_open_fires(d, s).await),
        pool.step(async |s| pool_frozen_and_back(d, s).await),
    );
    Beside::postcheck_all(all, hub, &traffic.pump(TICK)).await;
}

#[tokio::test]
async fn circuit_breaker_open_alert_reaches_alertmanager_within_budget() {
    run_on(monitored().await, "4.3-open", open_alert).await.must_pass();
}

#[tokio::test]
async fn circuit_breaker_open_alert_resolves_within_budget_after_the_breaker_closes() {
    run_on(monitored().await, "4.3-resolve", resolve_alert)
        .await
        .must_pass();
}

#[tokio::test]
async fn breaker_alerts_fire_when_opa_is_down_under_traffic() {
    run_on(monitored().await, "4.3-ten", breaker_alerts).await.must_pass();
}

#[tokio::test]
async fn half_open_alert_fires_when_a_breaker_stays_half_open() {
    run_on(monitored().await, "4.3-ten", half_open_alert).await.must_pass();
}

#[tokio::test]
async fn database_alerts_fire_when_load_exhausts_the_pool_of_a_frozen_mongodb() {
    run_on(monitored().await, "4.3-pool", pool_alerts).await.must_pass();
}

#[tokio::test]
#[ignore = "a live run takes it in place of the six scenarios it covers: scripts/live"]
async fn one_opa_outage_side_by_side() {
    let ids = [
        "4.1-opa",
        "4.2-opa",
        "4.3-open",
        "4.3-resolve",
        "4.3-ten",
        "4.3-inhibit",
    ];
    Verdict::all_must_pass(&run_side_by_side(monitored().await, ids, opa_outage).await);
}

#[tokio::test]
#[ignore = "a live run takes it in place of the three scenarios it covers: scripts/live"]
async fn idle_half_open_and_pool_side_by_side() {
    let ids = ["4.2-idle", "4.3-ten", "4.3-pool"];
    Verdict::all_must_pass(&run_side_by_side(monitored().await, ids, idle_half_open_and_pool).await);
}

#[tokio::test]
async fn every_rule_fires_in_promtool_unit_tests() {
    run_on(monitored().await, "4.3-ten", rule_logic).await.must_pass();
}

#[tokio::test]
async fn circuit_breaker_open_inhibits_rejects_of_the_same_breaker() {
    run_on(monitored().await, "4.3-inhibit", inhibition).await.must_pass();
}

#[tokio::test]
async fn runbook_covers_every_alert_and_scenario() {
    run_on(monitored().await, "4.3-runbook", runbook).await.must_pass();
}

// ------------------------------------------------------------------ self-checks

#[tokio::test]
async fn self_check_open_scenario_names_d3_and_d8_on_dive_v15a() {
    insta::assert_snapshot!(
        run_on(
            Deployment::reference_monitored(Profile::DiveV15a).await,
            "4.3-open",
            open_alert,
        )
        .await
        .must_fail_naming(&[Defect::D3, Defect::D8])
    );
}

#[tokio::test]
async fn self_check_resolve_scenario_names_d3_and_d8_on_dive_head() {
    insta::assert_snapshot!(
        run_on(
            Deployment::reference_monitored(Profile::DiveHead).await,
            "4.3-resolve",
            resolve_alert,
        )
        .await
        .must_fail_naming(&[Defect::D3, Defect::D8])
    );
}

#[tokio::test]
async fn self_check_breaker_alerts_name_d3_and_d8_on_dive_v15a() {
    insta::assert_snapshot!(
        run_on(
            Deployment::reference_monitored(Profile::DiveV15a).await,
            "4.3-ten",
            breaker_alerts,
        )
        .await
        .must_fail_naming(&[Defect::D3, Defect::D8])
    );
}

#[tokio::test]
async fn self_check_breaker_alerts_name_d2_once_rejects_happened() {
    insta::assert_snapshot!(
        run_on(
            Deployment::reference_monitored_with(Profile::Intended, &[Defect::D2]).await,
            "4.3-ten",
            breaker_alerts,
        )
        .await
        .must_fail_naming(&[Defect::D2])
    );
}

#[tokio::test]
async fn self_check_half_open_alert_names_d3_on_dive_head() {
    insta::assert_snapshot!(
        run_on(
            Deployment::reference_monitored(Profile::DiveHead).await,
            "4.3-ten",
            half_open_alert,
        )
        .await
        .must_fail_naming(&[Defect::D3])
    );
}

#[tokio::test]
async fn self_check_pool_scenario_names_d3_and_d8_on_dive_head() {
    insta::assert_snapshot!(
        run_on(
            Deployment::reference_monitored(Profile::DiveHead).await,
            "4.3-pool",
            pool_alerts,
        )
        .await
        .must_fail_naming(&[Defect::D3, Defect::D8])
    );
}

#[tokio::test]
async fn self_check_pool_scenario_names_d2_once_the_pool_was_used() {
    insta::assert_snapshot!(
        run_on(
            Deployment::reference_monitored_with(Profile::Intended, &[Defect::D2]).await,
            "4.3-pool",
            pool_alerts,
        )
        .await
        .must_fail_naming(&[Defect::D2])
    );
}

#[tokio::test]
async fn self_check_rule_logic_names_d3_on_dive_v15a() {
    insta::assert_snapshot!(
        run_on(
            Deployment::reference_monitored(Profile::DiveV15a).await,
            "4.3-ten",
            rule_logic,
        )
        .await
        .must_fail_naming(&[Defect::D3])
    );
}

#[tokio::test]
async fn self_check_inhibition_names_d4_on_dive_v15a() {
    insta::assert_snapshot!(
        run_on(
            Deployment::reference_monitored(Profile::DiveV15a).await,
            "4.3-inhibit",
            inhibition,
        )
        .await
        .must_fail_naming(&[Defect::D4, Defect::D3])
    );
}

#[tokio::test]
async fn self_check_runbook_names_d3_on_dive_v15a() {
    insta::assert_snapshot!(
        run_on(
            Deployment::reference_monitored(Profile::DiveV15a).await,
            "4.3-runbook",
            runbook,
        )
        .await
        .must_fail_naming(&[Defect::D3])
    );
}

/// Side by side, a defect is named on the scenario whose evidence shows it, and fails only the
/// scenarios that depend on what it breaks: without the rejects counter, 4.3-inhibit's real pair
/// cannot fire either.
#[tokio::test]
async fn side_by_side_one_opa_outage_names_d2_where_the_rejects_are_needed() {
    let ids = [
        "4.1-opa",
        "4.2-opa",
        "4.3-open",
        "4.3-resolve",
        "4.3-ten",
        "4.3-inhibit",
    ];
    let deployment = Deployment::reference_monitored_with(Profile::Intended, &[Defect::D2]).await;
    let [injected, recovers, open, resolve, ten, inhibit] = run_side_by_side(deployment, ids, opa_outage).await;
    Verdict::all_must_pass(&[injected, recovers, open, resolve]);
    insta::assert_snapshot!(ten.must_fail_naming(&[Defect::D2]));
    insta::assert_snapshot!(inhibit.must_fail_naming(&[]));
}

#[tokio::test]
async fn side_by_side_idle_half_open_and_pool_names_d2_on_the_pool_alone() {
    let ids = ["4.2-idle", "4.3-ten", "4.3-pool"];
    let deployment = Deployment::reference_monitored_with(Profile::Intended, &[Defect::D2]).await;
    let [idle, half_open, pool] = run_side_by_side(deployment, ids, idle_half_open_and_pool).await;
    Verdict::all_must_pass(&[idle, half_open]);
    insta::assert_snapshot!(pool.must_fail_naming(&[Defect::D2]));
}

// ------------------------------------------------------------------ the live code, on a live-shaped DIVE

/// HEAD's Prometheus and AlertManager speak HTTPS only; the live configuration names them on
/// plain HTTP, as the suite's defaults do.
#[tokio::test]
async fn live_shaped_head_open_alert_travels_over_https() {
    let head = Deployment::live_shaped("head-intended", |_| {}).await;
    run_on(head, "4.3-open", open_alert).await.must_pass();
}

/// With DIVE_SILENCE_ALERTS=1 the run holds a silence of the suite's, and CircuitBreakerOpen,
/// suppressed by that silence alone, still counts as delivered.
#[tokio::test]
async fn live_shaped_head_silenced_alerts_page_no_one_and_still_count() {
    let head = Deployment::live_shaped_with("head-intended", |_| {}, &[("DIVE_SILENCE_ALERTS", "1")]).await;
    let verdict = run_on(head, "4.3-open", async |d: &Deployment, s: &mut Scenario| {
        let mon = d.monitors()?;
        let Some(id) = mon.silence.clone() else {
            return Err(Finding::fail("DIVE_SILENCE_ALERTS=1 made no silence"));
        };
        let state = mon.alertmanager.silence_state(&id).await.map_err(Finding::fail)?;
        if state != "active" {
            s.finding(Finding::fail(format!("the suite's silence {id} is {state}")));
        }
        open_alert(d, s).await
    })
    .await;
    verdict.must_pass();
}

/// prom-client creates the rejects counter's series at the first reject: before it, no samples
/// are no defect.
#[tokio::test]
async fn live_shaped_head_breaker_alerts_wait_for_the_first_reject() {
    let head = Deployment::live_shaped("head-intended", |_| {}).await;
    run_on(head, "4.3-ten", breaker_alerts).await.must_pass();
}

#[tokio::test]
async fn live_shaped_head_rules_are_dives_own_files() {
    let head = Deployment::live_shaped("head-intended", |_| {}).await;
    let verdict = run_on(head, "4.3-ten", async |d: &Deployment, s: &mut Scenario| {
        rule_logic(d, s).await?;
        let (root, rules) = (d.dive_root(), &d.monitors()?.rule_files);
        if rules.is_empty() || !rules.iter().all(|r| root.is_some_and(|root| r.starts_with(root))) {
            s.finding(Finding::fail(format!(
                "promtool did not test DIVE's own rule files: {rules:?}"
            )));
        }
        Ok(())
    });
    verdict.await.must_pass();
}

#[tokio::test]
async fn live_shaped_head_runbook_urls_name_files_of_the_checkout() {
    let head = Deployment::live_shaped("head-intended", |_| {}).await;
    run_on(head, "4.3-runbook", runbook).await.must_pass();
}
