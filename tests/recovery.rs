//! Phase 4.2 of the plan: recovery. A breaker opened by a stopped dependency must close once the
//! dependency is back, within the plan's budget, measured from the moment the dependency answers
//! its own probe. Breakers close only under traffic (D7), so the suite drives just enough of it,
//! one request at a time, and journals which request moved each state.

use std::time::Duration;

use dive_resilience::prelude::*;
use dive_resilience::scenario::diagnose::{self, BreakerHold};
use dive_resilience::vocab::units::secs;

/// Times from the dependency answering to HALF_OPEN and to CLOSED.
type Recovery = Option<(Duration, Duration)>;

/// Opens `breaker` by stopping `service` under traffic, restores the service, and measures the
/// way back. `open_within` and `close_within` name the requirements whose budgets apply.
async fn recover(
    s: &mut Scenario,
    hub: &Instance,
    service: Service,
    breaker: Breaker,
    open_within: &'static str,
    close_within: &'static str,
) -> Result<Recovery, Finding> {
    let (budget, open_budget) = (s.budget_of(close_within), s.budget_of(open_within));
    let pump = hub.traffic().await?.pump(TICK);
    let fault = s.fault(hub, service, FaultKind::Stop).await?;
    if s.breaker_reaches(hub, &pump, breaker, BreakerState::Open, open_budget)
        .await
        .is_none()
    {
        return Ok(None);
    }
    let mut traffic = pump.stop().await.map_err(Finding::fail)?;
    let back = s.restore(fault).await?;
    let recovery = s.recovers(hub, &mut traffic, breaker, budget, back.answered_at).await;
    s.postcheck(hub, &traffic.pump(TICK)).await;
    Ok(recovery)
}

/// 4.2-opa: OPA restored -> opa breaker CLOSED within 90 s.
async fn opa_recovers(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    s.preflight(d.hub()).await?;
    recover(s, d.hub(), Service::Opa, Breaker::Opa, "4.1-opa", "4.2-opa")
        .await
        .map(|_| ())
}

/// 4.2-kc: Keycloak restored -> keycloak breaker CLOSED within 60 s.
async fn keycloak_recovers(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    s.preflight(d.hub()).await?;
    recover(s, d.hub(), Service::Keycloak, Breaker::Keycloak, "4.1-kc", "4.2-kc")
        .await
        .map(|_| ())
}

/// The plan's "restart, sleep 90, expect CLOSED": without traffic the breaker stays OPEN.
async fn no_traffic_no_recovery(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let (hub, open_budget, plan_sleep) = (d.hub(), s.budget_of("4.1-opa"), s.budget_of("4.2-idle"));
    s.preflight(hub).await?;
    let pump = hub.traffic().await?.pump(TICK);
    let opa = s.fault(hub, Service::Opa, FaultKind::Stop).await?;
    if s.breaker_reaches(hub, &pump, Breaker::Opa, BreakerState::Open, open_budget)
        .await
        .is_none()
    {
        return Ok(());
    }
    let traffic = pump.stop().await.map_err(Finding::fail)?;
    s.restore(opa).await?;
    let idle = s
        .breaker_holds(hub, Breaker::Opa, plan_sleep.limit, |state| state == BreakerState::Open)
        .await;
    s.finding(diagnose::idle_breaker(Breaker::Opa, idle));
    s.postcheck(hub, &traffic.pump(TICK)).await;
    Ok(())
}

/// 4.2-all: every non-critical service down -> degraded, authorization answers; all back ->
/// healthy with every breaker CLOSED. Budget derived: Keycloak's and KAS's breakers re-admit a
/// call 30 s after their last failure and close after two successes, so 60 s (4.2-kc's budget).
async fn all_non_critical_recover(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let hub = d.hub();
    let (window, back) = (s.budget_of("4.2-all window"), s.budget_of("4.2-all back"));
    s.preflight(hub).await?;
    let pump = hub.traffic().await?.pump(TICK);
    let mut faults = Vec::new();
    for service in [
        Service::Keycloak,
        Service::CacheRedis,
        Service::RevocationStore,
        Service::Kas,
    ] {
        faults.push(s.fault(hub, service, FaultKind::Stop).await?);
    }
    if let Err(last) = s.status_reaches(hub, Overall::Degraded, window.deadline()).await {
        let seen = last.map_or("no answer".to_string(), |d| d.summary());
        s.finding(Finding::fail(format!(
            "with every non-critical service down the status is {seen}, not degraded"
        )));
    }
    s.authorization_answers(hub, &pump, window.limit, "non-critical services")
        .await;
    let mut answered = None;
    for fault in faults {
        answered = Some(s.restore(fault).await?.answered_at);
    }
    s.settles(hub, &pump, back, answered.unwrap_or_else(std::time::Instant::now))
        .await;
    Ok(())
}

/// 4.2-partial: OPA and Keycloak down, only OPA back -> opa CLOSED while keycloak stays OPEN.
async fn only_opa_back(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let hub = d.hub();
    let (opa_close, kc_close, kc_window) = (
        s.budget_of("4.2-opa"),
        s.budget_of("4.2-kc"),
        s.budget_of("4.2-partial window"),
    );
    s.preflight(hub).await?;
    let pump = hub.traffic().await?.pump(TICK);
    let (opa_open, kc_open) = (s.budget_of("4.1-opa"), s.budget_of("4.1-kc"));
    let opa = s.fault(hub, Service::Opa, FaultKind::Stop).await?;
    if s.breaker_reaches(hub, &pump, Breaker::Opa, BreakerState::Open, opa_open)
        .await
        .is_none()
    {
        return Ok(());
    }
    let keycloak = s.fault(hub, Service::Keycloak, FaultKind::Stop).await?;
    if s.breaker_reaches(hub, &pump, Breaker::Keycloak, BreakerState::Open, kc_open)
        .await
        .is_none()
    {
        return Ok(());
    }
    s.restore(opa).await?;
    s.breaker_reaches(hub, &pump, Breaker::Opa, BreakerState::Closed, opa_close)
        .await;
    match s
        .breaker_holds(hub, Breaker::Keycloak, kc_window.limit, |state| {
            state != BreakerState::Closed
        })
        .await
    {
        BreakerHold::Held { .. } => {}
        BreakerHold::Moved { to, after } => s.finding(Finding::fail(format!(
            "the keycloak breaker went {to} {} after OPA came back, while Keycloak was still down",
            secs(after)
        ))),
        BreakerHold::Unread(e) => s.finding(Finding::fail(format!(
            "the keycloak breaker could not be read while Keycloak was down: {e}"
        ))),
    }
    s.restore(keycloak).await?;
    s.breaker_reaches(hub, &pump, Breaker::Keycloak, BreakerState::Closed, kc_close)
        .await;
    s.postcheck(hub, &pump).await;
    Ok(())
}

/// 4.2-repeat: the OPA cycle three times in a row; every cycle's latencies and their spread.
async fn opa_cycle_three_times(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let hub = d.hub();
    let mut closed = Vec::new();
    for cycle in 1..=3 {
        s.preflight(hub).await?;
        s.event(format!("cycle {cycle} of 3"));
        match recover(s, hub, Service::Opa, Breaker::Opa, "4.1-opa", "4.2-opa").await? {
            Some((_, c)) => closed.push(c),
            None => return Ok(()),
        }
    }
    let (min, max) = (
        closed.iter().min().copied().unwrap_or_default(),
        closed.iter().max().copied().unwrap_or_default(),
    );
    let each: Vec<String> = closed.iter().map(|c| secs(*c)).collect();
    s.report(format!(
        "opa CLOSED after {} in 3 cycles (spread {})",
        each.join(", "),
        secs(max - min)
    ));
    Ok(())
}

#[tokio::test]
async fn opa_breaker_closes_within_budget_after_opa_returns() {
    run("4.2-opa", opa_recovers).await.must_pass();
}

#[tokio::test]
async fn keycloak_breaker_closes_within_budget_after_keycloak_returns() {
    run("4.2-kc", keycloak_recovers).await.must_pass();
}

#[tokio::test]
async fn breaker_stays_open_without_traffic_contrary_to_the_plan() {
    let verdict = run("4.2-idle", no_traffic_no_recovery).await;
    verdict.must_pass();
    assert!(
        verdict.findings.iter().any(|f| f.defect == Some(Defect::D7)),
        "the D7 correction is reported"
    );
}

#[tokio::test]
async fn all_non_critical_services_down_degrades_then_heals() {
    run("4.2-all", all_non_critical_recover).await.must_pass();
}

#[tokio::test]
async fn opa_recovers_while_keycloak_stays_open() {
    run("4.2-partial", only_opa_back).await.must_pass();
}

#[tokio::test]
async fn opa_recovery_cycle_passes_three_times_in_a_row() {
    run("4.2-repeat", opa_cycle_three_times).await.must_pass();
}

// ------------------------------------------------------------------ self-checks

#[tokio::test]
async fn self_check_keycloak_recovery_names_d1_on_dive_v15a() {
    insta::assert_snapshot!(
        run_on(
            Deployment::reference(Profile::DiveV15a).await,
            "4.2-kc",
            keycloak_recovers,
        )
        .await
        .must_fail_naming(&[Defect::D1])
    );
}

#[tokio::test]
async fn self_check_partial_recovery_names_d1_on_dive_v15a() {
    insta::assert_snapshot!(
        run_on(
            Deployment::reference(Profile::DiveV15a).await,
            "4.2-partial",
            only_opa_back,
        )
        .await
        .must_fail_naming(&[Defect::D1])
    );
}

#[tokio::test]
async fn self_check_opa_recovery_names_a_breaker_stuck_half_open() {
    let deployment = Deployment::reference_with_defects(Profile::Intended, &[Defect::R2]).await;
    insta::assert_snapshot!(
        run_on(deployment, "4.2-opa", opa_recovers)
            .await
            .must_fail_naming(&[Defect::R2])
    );
}

#[tokio::test]
async fn self_check_opa_recovery_names_a_breaker_off_dives_numbers() {
    let deployment = Deployment::reference_with_defects(Profile::Intended, &[Defect::R16]).await;
    insta::assert_snapshot!(
        run_on(deployment, "4.2-opa", opa_recovers)
            .await
            .must_fail_naming(&[Defect::R16])
    );
}

#[tokio::test]
async fn self_check_repeat_names_a_breaker_stuck_half_open() {
    let deployment = Deployment::reference_with_defects(Profile::Intended, &[Defect::R2]).await;
    insta::assert_snapshot!(
        run_on(deployment, "4.2-repeat", opa_cycle_three_times)
            .await
            .must_fail_naming(&[Defect::R2])
    );
}

#[tokio::test]
async fn self_check_all_down_names_authorization_failing_with_the_cache() {
    let deployment = Deployment::reference_with_defects(Profile::Intended, &[Defect::R1]).await;
    insta::assert_snapshot!(
        run_on(deployment, "4.2-all", all_non_critical_recover)
            .await
            .must_fail_naming(&[Defect::R1])
    );
}

#[tokio::test]
async fn self_check_no_traffic_scenario_names_a_breaker_that_closes_on_a_timer() {
    let deployment = Deployment::reference_with_defects(Profile::Intended, &[Defect::R8]).await;
    insta::assert_snapshot!(
        run_on(deployment, "4.2-idle", no_traffic_no_recovery)
            .await
            .must_fail_naming(&[Defect::R8])
    );
}

// ------------------------------------------------------------------ the live code, on a live-shaped DIVE

#[tokio::test]
async fn live_shaped_head_every_non_critical_service_down_and_back() {
    // HEAD's revocation store is `shared-token-store`, TLS only: found from the hub backend.
    let head = Deployment::live_shaped("head-intended", |_| {}).await;
    run_on(head, "4.2-all", all_non_critical_recover).await.must_pass();
}

/// A breaker left HALF_OPEN by what ran before (OPA back, one trial call, then silence) is driven
/// closed by the next scenario's preflight, which says so, instead of failing it.
async fn half_open_left_behind_then_preflight(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let hub = d.hub();
    let pump = hub.traffic().await?.pump(TICK);
    let opa = s.fault(hub, Service::Opa, FaultKind::Stop).await?;
    let open = s.budget_of("4.1-opa");
    s.breaker_reaches(hub, &pump, Breaker::Opa, BreakerState::Open, open)
        .await;
    let mut traffic = pump.stop().await.map_err(Finding::fail)?;
    let back = s.restore(opa).await?;
    let close = s.budget_of("4.2-opa");
    s.drive_until(
        hub,
        &mut traffic,
        Breaker::Opa,
        BreakerState::HalfOpen,
        close,
        back.answered_at,
    )
    .await;
    s.preflight(hub).await?;
    if !s.findings().iter().any(|f| f.message.contains("was left with")) {
        s.finding(Finding::fail(
            "the preflight did not say it closed a breaker left HALF_OPEN",
        ));
    }
    Ok(())
}

#[tokio::test]
async fn live_shaped_preflight_closes_a_breaker_left_half_open() {
    let head = Deployment::live_shaped("head-intended", |_| {}).await;
    run_on(head, "4.2-opa", half_open_left_behind_then_preflight)
        .await
        .must_pass();
}
