//! Phase 4.1 of the plan: failure injection. Each dependency is stopped in turn; the breaker in
//! front of it must open within the plan's budget, and the overall status must say what the
//! plan says. The self-checks at the end run the same scenarios against DIVE as shipped and
//! require the diagnosis that names each defect, so every run proves the suite can fail.

use dive_resilience::prelude::*;
use dive_resilience::scenario::diagnose;

/// 4.1-opa: OPA stopped -> opa breaker OPEN within 30 s; status unhealthy (503).
async fn opa_stopped(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let (hub, budget) = (d.hub(), s.budget());
    s.preflight(hub).await?;
    let traffic = hub.traffic().await?.pump(TICK);
    let opa = s.fault(hub, Service::Opa, FaultKind::Stop).await?;
    s.breaker_reaches(hub, &traffic, Breaker::Opa, BreakerState::Open, budget)
        .await;
    s.critical_status(hub, "OPA", Breaker::Opa, budget).await;
    s.restore(opa).await?;
    s.postcheck(hub, &traffic).await;
    Ok(())
}

/// 4.1-kc: Keycloak stopped -> keycloak breaker OPEN within 20 s; status degraded, not unhealthy.
async fn keycloak_stopped(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let (hub, budget) = (d.hub(), s.budget());
    s.preflight(hub).await?;
    let traffic = hub.traffic().await?.pump(TICK);
    let keycloak = s.fault(hub, Service::Keycloak, FaultKind::Stop).await?;
    if let Err(last) = s.status_reaches(hub, Overall::Degraded, budget.deadline()).await {
        s.finding(diagnose::keycloak_down_status(last.as_ref()));
    }
    s.breaker_reaches(hub, &traffic, Breaker::Keycloak, BreakerState::Open, budget)
        .await;
    s.restore(keycloak).await?;
    s.postcheck(hub, &traffic).await;
    Ok(())
}

/// 4.1-mongo: MongoDB stopped -> mongodb breaker OPEN within 30 s; status unhealthy.
async fn mongodb_stopped(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let (hub, budget) = (d.hub(), s.budget());
    s.preflight(hub).await?;
    let traffic = hub.traffic().await?.pump(TICK);
    let mongodb = s.fault(hub, Service::Mongodb, FaultKind::Stop).await?;
    s.breaker_reaches(hub, &traffic, Breaker::Mongodb, BreakerState::Open, budget)
        .await;
    s.critical_status(hub, "MongoDB", Breaker::Mongodb, budget).await;
    s.restore(mongodb).await?;
    s.postcheck(hub, &traffic).await;
    Ok(())
}

/// 4.1-redis: cache Redis stopped -> status degraded, never unhealthy; authorization answers.
async fn redis_stopped(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    redis_stopped_with(d, s, None).await
}

/// 4.1-redis, with `also` (if any) stopped too.
async fn redis_stopped_with(d: &Deployment, s: &mut Scenario, also: Option<Service>) -> Result<(), Finding> {
    let hub = d.hub();
    let window = s.budget_of("4.1-redis window");
    s.preflight(hub).await?;
    let traffic = hub.traffic().await?.pump(TICK);
    let redis = s.fault(hub, Service::CacheRedis, FaultKind::Stop).await?;
    let other = match also {
        Some(service) => Some(s.fault(hub, service, FaultKind::Stop).await?),
        None => None,
    };
    if let Err(last) = s.status_reaches(hub, Overall::Degraded, window.deadline()).await {
        let seen = last.map_or("no answer".to_string(), |d| d.summary());
        s.finding(Finding::fail(format!(
            "with the cache Redis stopped the status is {seen}, not degraded"
        )));
    }
    s.authorization_answers(hub, &traffic, window.limit, "the cache Redis")
        .await;
    if let Some(other) = other {
        s.restore(other).await?;
    }
    s.restore(redis).await?;
    s.postcheck(hub, &traffic).await;
    Ok(())
}

#[tokio::test]
async fn opa_breaker_opens_within_budget_when_opa_stops() {
    run("4.1-opa", opa_stopped).await.must_pass();
}

#[tokio::test]
async fn keycloak_breaker_opens_and_status_degrades_when_keycloak_stops() {
    run("4.1-kc", keycloak_stopped).await.must_pass();
}

#[tokio::test]
async fn mongodb_breaker_opens_and_status_is_unhealthy_when_mongodb_stops() {
    run("4.1-mongo", mongodb_stopped).await.must_pass();
}

#[tokio::test]
async fn redis_outage_degrades_but_authorization_still_answers() {
    run("4.1-redis", redis_stopped).await.must_pass();
}

// ------------------------------------------------------------------ self-checks

#[tokio::test]
async fn self_check_keycloak_scenario_names_d1_and_d6_on_dive_v15a() {
    insta::assert_snapshot!(
        run_on(
            Deployment::reference(Profile::DiveV15a).await,
            "4.1-kc",
            keycloak_stopped,
        )
        .await
        .must_fail_naming(&[Defect::D1, Defect::D6])
    );
}

#[tokio::test]
async fn self_check_mongodb_scenario_names_d1_on_dive_v15a() {
    insta::assert_snapshot!(
        run_on(
            Deployment::reference(Profile::DiveV15a).await,
            "4.1-mongo",
            mongodb_stopped,
        )
        .await
        .must_fail_naming(&[Defect::D1])
    );
}

#[tokio::test]
async fn self_check_opa_scenario_names_an_unwired_opa_breaker() {
    let deployment = Deployment::reference_with_defects(Profile::Intended, &[Defect::R3]).await;
    insta::assert_snapshot!(
        run_on(deployment, "4.1-opa", opa_stopped)
            .await
            .must_fail_naming(&[Defect::R3])
    );
}

#[tokio::test]
async fn self_check_opa_scenario_names_a_breaker_off_dives_threshold() {
    let deployment = Deployment::reference_with_defects(Profile::Intended, &[Defect::R16]).await;
    insta::assert_snapshot!(
        run_on(deployment, "4.1-opa", opa_stopped)
            .await
            .must_fail_naming(&[Defect::R16])
    );
}

#[tokio::test]
async fn self_check_opa_scenario_names_a_healthy_status_with_opa_down() {
    let deployment = Deployment::reference_with_defects(Profile::Intended, &[Defect::R17]).await;
    insta::assert_snapshot!(
        run_on(deployment, "4.1-opa", opa_stopped)
            .await
            .must_fail_naming(&[Defect::R17])
    );
}

/// Mutated evidence: the answers of 5xx come from MongoDB, stopped alongside the cache Redis, on a
/// DIVE whose cache outage alone breaks nothing. R1 must not be named.
#[tokio::test]
async fn mutated_evidence_server_errors_the_cache_did_not_cause_are_not_r1() {
    let deployment = Deployment::reference(Profile::Intended).await;
    let verdict = run_on(deployment, "4.1-redis", async |d: &Deployment, s: &mut Scenario| {
        redis_stopped_with(d, s, Some(Service::Mongodb)).await
    })
    .await;
    let failures = verdict.failures();
    assert!(
        failures.iter().any(|f| f.message.contains("authorization broke")),
        "authorization broke, with MongoDB down: {:?}",
        verdict.findings
    );
    assert!(
        failures.iter().all(|f| f.defect != Some(Defect::R1)),
        "no R1 without its evidence: {:?}",
        verdict.findings
    );
}

#[tokio::test]
async fn self_check_redis_scenario_names_authorization_failing_with_the_cache() {
    let deployment = Deployment::reference_with_defects(Profile::Intended, &[Defect::R1]).await;
    insta::assert_snapshot!(
        run_on(deployment, "4.1-redis", redis_stopped)
            .await
            .must_fail_naming(&[Defect::R1])
    );
}

// ------------------------------------------------------------------ the live code, on a live-shaped DIVE

#[tokio::test]
async fn live_shaped_head_opa_breaker_opens_past_the_decision_cache() {
    let head = Deployment::live_shaped("head-intended", |_| {}).await;
    run_on(head, "4.1-opa", opa_stopped).await.must_pass();
}

#[tokio::test]
async fn live_shaped_reference_defects_are_never_named_on_a_live_dive() {
    let unwired = Deployment::live_shaped("head-intended", |form| {
        form.behaviour = form.behaviour.clone().with(Defect::R3);
    });
    let verdict = run_on(unwired.await, "4.1-opa", opa_stopped).await;
    let failures = verdict.failures();
    assert!(
        !failures.is_empty(),
        "the unwired breaker fails 4.1-opa: {:?}",
        verdict.findings
    );
    assert!(
        verdict
            .findings
            .iter()
            .all(|f| f.defect.is_none_or(|d| !d.reference_only())),
        "no R tag on a live DIVE: {:?}",
        verdict.findings
    );
}

/// With OPA stopped, answers still come, from the backend's local fallback: DIVE marks them in
/// `policyEvaluation.evaluation_details.source`, and the tally must read them as such.
async fn fallback_answers_are_read_as_such(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let hub = d.hub();
    s.preflight(hub).await?;
    let traffic = hub.traffic().await?.pump(TICK);
    let opa = s.fault(hub, Service::Opa, FaultKind::Stop).await?;
    let since = s.origin();
    let budget = s.budget();
    s.breaker_reaches(hub, &traffic, Breaker::Opa, BreakerState::Open, budget)
        .await;
    let tally = traffic.tally_since(since);
    if tally.fallback == 0 {
        s.finding(Finding::fail(format!(
            "OPA is stopped but no answer was read as the local fallback's: {tally}"
        )));
    }
    s.restore(opa).await?;
    s.postcheck(hub, &traffic).await;
    Ok(())
}

#[tokio::test]
async fn live_shaped_head_local_fallback_answers_are_recognised() {
    let head = Deployment::live_shaped("head-intended", |_| {}).await;
    run_on(head, "4.1-opa", fallback_answers_are_read_as_such)
        .await
        .must_pass();
}
