//! Phase 5.1 of the plan: multi-spoke resilience. A hub and its spokes (TST, FRA, DEU unless
//! `DIVE_SPOKES` says otherwise): every instance healthy, a revocation on the hub enforced on every
//! spoke within 5 s and surviving a restart of the blacklist store, one spoke's outage leaving the
//! others untouched, and federation surviving an outage of the hub's Keycloak.

use std::time::Instant;

use dive_resilience::deployment::traffic::Traffic;
use dive_resilience::infra::config::must_config;
use dive_resilience::infra::poll::eventually;
use dive_resilience::prelude::*;
use dive_resilience::scenario::diagnose;
use dive_resilience::scenario::trust::{Identity, revocation_evidence, revoked_still_accepted};
use dive_resilience::vocab::slo::tick_among;
use dive_resilience::vocab::units::secs;

/// 5.1-deploy: hub and every spoke up and healthy; the hub hears every spoke; hub tokens work on
/// every spoke.
async fn federation_is_up(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    if let Some(steps) = d.deploy_through_cli().await? {
        for (name, took) in steps {
            s.observed(&format!("./dive deploy of {name}"), took);
        }
    }
    for inst in d.instances() {
        s.preflight(inst).await?;
    }
    for finding in d.coalition_findings() {
        s.finding(finding.clone());
    }
    let federation = d.hub().federation_health().await.map_err(Finding::fail)?;
    if !federation.healthy {
        s.finding(Finding::fail(format!(
            "the hub lists unhealthy spokes: {:?}",
            federation.unhealthy_spokes
        )));
    }
    let token = d.hub().token_for(&d.hub().credentials.user).await?;
    let spokes: Vec<&Instance> = d.spokes().iter().collect();
    let answers = ask_each(&spokes, |spoke| spoke.accepts(&token)).await;
    for (spoke, answer) in spokes.iter().zip(answers) {
        match answer {
            Ok(true) => s.event(format!("{} accepts a hub token", spoke.code)),
            answer => s.finding(diagnose::spoke_refuses_hub_token(&spoke.code, &answer)),
        }
    }
    Ok(())
}

/// 5.1-revoke: a token revoked on the hub is refused on every instance within 5 s, and stays
/// refused after the blacklist store restarts. The revoked user is dedicated to this scenario
/// and its lock-out is lifted afterwards.
async fn revocation_reaches_every_spoke(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    revocation_while_down(d, s, None).await
}

/// 5.1-revoke, with the whole stack of spoke `down` (if any) stopped just before the revocation.
async fn revocation_while_down(d: &Deployment, s: &mut Scenario, down: Option<&str>) -> Result<(), Finding> {
    let hub = d.hub();
    let user = must_config().revoke_user.clone();
    let bystander = hub.credentials.user.clone();
    // In the ledger before the revocation: a panic, Ctrl-C or a killed run still lifts it. The
    // traffic user's too: a revocation decided on a cached introspection answer (D11) lands on
    // whoever that answer was for, who would otherwise stay locked out for the rest of the run.
    let mut lockouts = vec![hub.lockout(&user)?];
    if bystander != user {
        lockouts.push(hub.lockout(&bystander)?);
    }
    let result = revoke_and_check(d, s, &user, down).await;
    if bystander != user && result.is_ok() {
        bystander_admitted(s, hub, &bystander, &user).await?;
    }
    for lockout in lockouts {
        let who = lockout.user().to_string();
        if let Err(e) = lockout.lift().await {
            s.finding(Finding::fail(format!(
                "could not lift the revocation of {who}: {e}; it expires with the token"
            )));
        }
    }
    result
}

/// After the revocation another user must still get in: at once on a DIVE that meets the plan. A
/// DIVE whose introspection cache answers tokens by their first characters (D11) can answer every
/// token of the realm as the revoked one until that answer expires: the wait (bounded by the
/// cache's lifetime) says for how long, and leaves DIVE usable for the scenarios after this one.
async fn bystander_admitted(s: &mut Scenario, hub: &Instance, bystander: &str, user: &str) -> Result<(), Finding> {
    let fresh = hub.token_for(bystander).await?;
    let window = s.budget_of("5.1-revoke bystander").limit;
    let what = format!("a fresh token of {bystander} accepted on the hub");
    let admitted = eventually(&what, TICK * 8, window, async || match hub.accepts(&fresh).await {
        Ok(true) => Ok(()),
        other => Err(format!("{other:?}")),
    })
    .await;
    match admitted {
        Ok(m) if m.attempts == 1 => s.event(format!("{what} after the revocation")),
        Ok(m) => s.finding(Finding::fail(format!(
            "revoking a token of {user} locked {bystander} out too: a fresh token of theirs was refused on the hub for {} after it",
            secs(m.elapsed)
        ))),
        Err(t) => s.finding(Finding::fail(format!(
            "revoking a token of {user} locked {bystander} out too: {t}"
        ))),
    }
    Ok(())
}

async fn revoke_and_check(d: &Deployment, s: &mut Scenario, user: &str, down: Option<&str>) -> Result<(), Finding> {
    let (hub, budget) = (d.hub(), s.budget());
    let everyone: Vec<&Instance> = d.instances().iter().collect();
    for inst in &everyone {
        s.preflight(inst).await?;
    }
    let token = hub.token_for(user).await?;
    let answers = ask_each(&everyone, |inst| inst.accepts(&token)).await;
    if let Some((inst, _)) = everyone.iter().zip(&answers).find(|(_, a)| **a != Ok(true)) {
        return Err(Finding::precondition(format!(
            "{} does not accept a fresh token of {user}",
            inst.code
        )));
    }
    let outage = match down {
        Some(code) => Some(s.fault(d.instance(code)?, Service::Stack, FaultKind::Stop).await?),
        None => None,
    };
    let revoked = hub.revoke(&token).await?;
    s.event(format!(
        "revoked token {} of {} on the hub",
        revoked.jti, revoked.unique_id
    ));
    let hub_enforces = s.rejected_everywhere(&everyone, &token, budget).await;
    let hub_missed = hub_enforces
        .iter()
        .find(|(c, _)| *c == hub.code)
        .and_then(|(_, r)| r.as_ref().err());
    let own = Identity::of_token(&token).map_err(Finding::precondition)?;
    for (code, result) in &hub_enforces {
        let Err(missed) = result else { continue };
        let inst = d.instance(code)?;
        let listed = inst.lists_revoked(&revoked.jti).await;
        // Whom the revoked token is answered as, and whether a forgery of its header and issuer
        // passes too: D11's evidence, told apart from D5's.
        let cache = revocation_evidence(inst, &token).await;
        s.finding(revoked_still_accepted(code, missed, hub_missed, &listed, &own, &cache));
    }
    let enforcing: Vec<&Instance> = everyone
        .iter()
        .copied()
        .filter(|i| hub_enforces.iter().any(|(c, r)| *c == i.code && r.is_ok()))
        .collect();
    let store = s.fault(hub, Service::RevocationStore, FaultKind::Stop).await?;
    s.restore(store).await?;
    for (code, result) in s.rejected_everywhere(&enforcing, &token, budget).await {
        if let Err(missed) = result {
            s.finding(Finding::fail(format!(
                "after the blacklist store restarted, {code} no longer refuses the revoked token: {}",
                missed.seen
            )));
        }
    }
    if let Some(outage) = outage {
        s.restore(outage).await?;
    }
    Ok(())
}

/// 5.1-isolate: one whole spoke goes down (TST, DIVE's test instance, when it is among the spokes,
/// otherwise the first one named); the hub and every other spoke keep their health and keep
/// answering; the hub lists the spoke unhealthy after its heartbeat window and drops it after
/// recovery.
async fn one_spoke_down_others_unaffected(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let tst = isolated_spoke(d)?;
    let code = tst.code.as_str();
    let others: Vec<&Instance> = d.instances().iter().filter(|i| i.code != code).collect();
    // On paper: 90 s without a heartbeat, heartbeats every 30 s.
    let (listed_within, dropped_within) = (s.budget_of("5.1-isolate listed"), s.budget_of("5.1-isolate dropped"));
    for inst in d.instances() {
        s.preflight(inst).await?;
    }
    let mut pumps = Vec::new();
    let tick = tick_among(others.len());
    // Prepared for the pace it is sent at: at a shared pace each instance needs fewer resources
    // to stay clear of its decision cache, and listing them is most of what preparing costs.
    for traffic in ask_each(&others, |inst| Traffic::prepare(inst, tick)).await {
        pumps.push(traffic?.pump(tick));
    }
    let down = s.fault(tst, Service::Stack, FaultKind::Stop).await?;
    let since = Instant::now();
    let hub = d.hub();
    s.spoke_listed(hub, code, true, listed_within).await;
    let statuses = ask_each(&others, |inst| inst.detailed()).await;
    for ((inst, pump), status) in others.iter().zip(&pumps).zip(statuses) {
        let tally = pump.tally_since(since);
        let status = status.map(|d| d.summary()).map_err(|e| Finding::fail(e.to_string()))?;
        if tally.server_error > 0 || tally.no_answer > 0 || tally.decided == 0 || !status.starts_with("healthy") {
            s.finding(Finding::fail(format!(
                "{} was affected by the {code} outage: {status}; traffic {tally}",
                inst.code
            )));
        } else {
            s.report(format!(
                "{} unaffected while {code} was down: {status}; traffic {tally}",
                inst.code
            ));
        }
    }
    s.restore(down).await?;
    s.spoke_listed(hub, code, false, dropped_within).await;
    s.postcheck(tst, &tst.traffic().await?.pump(TICK)).await;
    Ok(())
}

/// The spoke 5.1-isolate takes down: TST when present, else the first spoke.
fn isolated_spoke(d: &Deployment) -> Result<&Instance, Finding> {
    let spokes = d.spokes();
    spokes
        .iter()
        .find(|i| i.code == "TST")
        .or(spokes.first())
        .ok_or_else(|| Finding::precondition("5.1-isolate needs a spoke to take down: name one in DIVE_SPOKES"))
}

/// 5.1-federation: the hub's Keycloak goes down; tokens already issued keep working on every
/// instance, a new login fails cleanly; Keycloak back, a new token works everywhere. Budget
/// derived: DIVE caches nothing negative, so 60 s (Keycloak's own start is what takes time).
async fn federation_survives_hub_keycloak_outage(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let hub = d.hub();
    let everyone: Vec<&Instance> = d.instances().iter().collect();
    let (window, back) = (
        s.budget_of("5.1-federation window"),
        s.budget_of("5.1-federation new token"),
    );
    for inst in &everyone {
        s.preflight(inst).await?;
    }
    let issued = hub.token_for(&hub.credentials.user).await?;
    // Tokens in use: every instance has verified one (and cached the hub's keys) before the outage.
    let answers = ask_each(&everyone, |inst| inst.accepts(&issued)).await;
    if let Some((inst, _)) = everyone.iter().zip(&answers).find(|(_, a)| **a != Ok(true)) {
        return Err(Finding::precondition(format!(
            "{} does not accept a fresh hub token",
            inst.code
        )));
    }
    let keycloak = s.fault(hub, Service::Keycloak, FaultKind::Stop).await?;
    s.accepted_everywhere(&everyone, &issued, window.limit).await;
    let login = Instant::now();
    match hub.token_for(&hub.credentials.user).await {
        Ok(_) => s.finding(Finding::fail(
            "a new login succeeded although the hub's Keycloak is down",
        )),
        Err(refused) => s.report(format!(
            "new login refused after {}: {}",
            secs(login.elapsed()),
            refused.message
        )),
    }
    let answered = s.restore(keycloak).await?.answered_at;
    let fresh = s.new_token_everywhere(hub, &everyone, back, answered).await;
    if fresh.is_none() {
        s.finding(Finding::fail(
            "after the hub's Keycloak came back, a new token was not accepted everywhere",
        ));
    }
    Ok(())
}

#[tokio::test]
async fn hub_and_every_spoke_are_up_and_federated() {
    run_on(Deployment::federation().await, "5.1-deploy", federation_is_up)
        .await
        .must_pass();
}

#[tokio::test]
async fn revoked_token_is_rejected_on_every_spoke() {
    run_on(
        Deployment::federation().await,
        "5.1-revoke",
        revocation_reaches_every_spoke,
    )
    .await
    .must_pass();
}

#[tokio::test]
async fn one_spoke_down_leaves_the_others_untouched() {
    run_on(
        Deployment::federation().await,
        "5.1-isolate",
        one_spoke_down_others_unaffected,
    )
    .await
    .must_pass();
}

#[tokio::test]
async fn federation_survives_an_outage_of_the_hub_keycloak() {
    run_on(
        Deployment::federation().await,
        "5.1-federation",
        federation_survives_hub_keycloak_outage,
    )
    .await
    .must_pass();
}

// ------------------------------------------------------------------ self-checks

#[tokio::test]
async fn self_check_revocation_names_d5_on_dive_v15a() {
    let deployment = Deployment::reference_federation(Profile::DiveV15a, &[]).await;
    insta::assert_snapshot!(
        run_on(deployment, "5.1-revoke", revocation_reaches_every_spoke)
            .await
            .must_fail_naming(&[Defect::D5])
    );
}

/// At HEAD, once another user's token filled DIVE's introspection cache, a revoked token is
/// answered with that user's identity and jti, so the revocation check never sees it: D11, not D5.
#[tokio::test]
async fn self_check_revocation_names_d11_on_dive_head_when_another_token_filled_the_cache() {
    let deployment = Deployment::reference_federation(Profile::DiveHead, &[]).await;
    let verdict = run_on(deployment, "5.1-revoke", async |d: &Deployment, s: &mut Scenario| {
        let other = d.hub().token_for(&d.hub().credentials.user).await?;
        for inst in d.instances() {
            if inst.accepts(&other).await != Ok(true) {
                return Err(Finding::precondition(format!("{} refuses a valid token", inst.code)));
            }
        }
        revocation_reaches_every_spoke(d, s).await
    })
    .await;
    insta::assert_snapshot!(verdict.must_fail_naming(&[Defect::D11]));
    assert!(
        verdict.failures().iter().all(|f| f.defect != Some(Defect::D5)),
        "HEAD enforces revocation: not D5: {:?}",
        verdict.findings
    );
}

#[tokio::test]
async fn self_check_revocation_names_the_spoke_with_its_own_store() {
    let deployment = Deployment::reference_federation(Profile::Intended, &[Defect::R4]).await;
    let verdict = run_on(deployment, "5.1-revoke", revocation_reaches_every_spoke).await;
    insta::assert_snapshot!(verdict.must_fail_naming(&[Defect::R4]));
    let named: Vec<_> = verdict
        .failures()
        .iter()
        .filter(|f| f.defect == Some(Defect::R4))
        .map(|f| f.message.clone())
        .collect();
    let spoke = dive_resilience::reference::behaviour::PRIVATE_BLACKLIST_SPOKE;
    assert!(
        named.iter().all(|m| m.starts_with(spoke)),
        "the finding names {spoke}: {named:?}"
    );
}

/// Mutated evidence: FRA fails to refuse the revoked token only because it is down. Neither
/// R4 (its own store) nor D5 (revocation not enforced) may be named.
#[tokio::test]
async fn mutated_evidence_a_spoke_that_is_down_is_not_blamed_on_its_store_or_on_revocation() {
    let deployment = Deployment::reference_federation(Profile::Intended, &[]).await;
    let verdict = run_on(deployment, "5.1-revoke", async |d: &Deployment, s: &mut Scenario| {
        revocation_while_down(d, s, Some("FRA")).await
    })
    .await;
    let failures = verdict.failures();
    assert!(
        failures.iter().any(|f| f.message.starts_with("FRA never refused")),
        "FRA's silence is the failure: {:?}",
        verdict.findings
    );
    assert!(
        failures.iter().all(|f| f.defect.is_none()),
        "no tag without its evidence: {:?}",
        verdict.findings
    );
}

#[tokio::test]
async fn self_check_isolation_names_a_hub_that_never_notices() {
    let deployment = Deployment::reference_federation(Profile::Intended, &[Defect::R5]).await;
    insta::assert_snapshot!(
        run_on(deployment, "5.1-isolate", one_spoke_down_others_unaffected)
            .await
            .must_fail_naming(&[Defect::R5])
    );
}

#[tokio::test]
async fn self_check_isolation_names_a_hub_that_keeps_listing_a_recovered_spoke() {
    let deployment = Deployment::reference_federation(Profile::Intended, &[Defect::R18]).await;
    insta::assert_snapshot!(
        run_on(deployment, "5.1-isolate", one_spoke_down_others_unaffected)
            .await
            .must_fail_naming(&[Defect::R18])
    );
}

#[tokio::test]
async fn self_check_federation_names_uncached_jwks() {
    let deployment = Deployment::reference_federation(Profile::Intended, &[Defect::R6]).await;
    insta::assert_snapshot!(
        run_on(deployment, "5.1-federation", federation_survives_hub_keycloak_outage)
            .await
            .must_fail_naming(&[Defect::R6])
    );
}

#[tokio::test]
async fn self_check_deploy_names_a_spoke_that_does_not_trust_the_hub() {
    let deployment = Deployment::reference_federation(Profile::Intended, &[Defect::R7]).await;
    insta::assert_snapshot!(
        run_on(deployment, "5.1-deploy", federation_is_up)
            .await
            .must_fail_naming(&[Defect::R7])
    );
}

// ------------------------------------------------------------------ the live code, on a live-shaped DIVE

use dive_resilience::reference::live_shaped::LiveShaped;

/// The commands the live-shaped DIVE's runtime and CLI ran.
fn calls(d: &Deployment) -> Vec<String> {
    d.kept::<LiveShaped>().map(LiveShaped::calls).unwrap_or_default()
}

#[tokio::test]
async fn live_shaped_head_revocation_reaches_every_spoke_and_the_lockout_is_lifted_over_tls() {
    let head = Deployment::live_shaped("head-intended", |_| {}).await;
    let verdict = run_on(head, "5.1-revoke", async |d: &Deployment, s: &mut Scenario| {
        revocation_reaches_every_spoke(d, s).await?;
        let lifted = calls(d)
            .iter()
            .any(|c| c.contains("shared-token-store redis-cli --tls") && c.contains("DEL user-revoked:"));
        if !lifted {
            s.finding(Finding::fail(format!(
                "the lock-out was not lifted in HEAD's TLS store: {:?}",
                calls(d)
            )));
        }
        Ok(())
    })
    .await;
    verdict.must_pass();
}

#[tokio::test]
async fn live_shaped_head_one_spoke_down_through_the_cli() {
    let head = Deployment::live_shaped("head-intended", |_| {}).await;
    run_on(head, "5.1-isolate", one_spoke_down_others_unaffected)
        .await
        .must_pass();
}

#[tokio::test]
async fn live_shaped_v15a_spoke_named_by_instance_flag() {
    // 15a319e6's `spoke down|up` ignore their argument and read --instance.
    let v15a = Deployment::live_shaped("dive-v15a", |form| {
        form.behaviour = dive_resilience::reference::behaviour::Behaviour::of(Profile::Intended, 0.1)
            .shaped_as(form.generation, 0.1);
    });
    run_on(v15a.await, "5.1-isolate", one_spoke_down_others_unaffected)
        .await
        .must_pass();
}

#[tokio::test]
async fn live_shaped_a_cli_that_exits_zero_without_effect_is_d10() {
    let broken = Deployment::live_shaped("head-intended", |form| form.broken_cli.push("spoke down"));
    insta::assert_snapshot!(
        run_on(broken.await, "5.1-isolate", one_spoke_down_others_unaffected)
            .await
            .must_fail_naming(&[Defect::D10])
    );
}

#[tokio::test]
async fn live_shaped_head_all_spokes_are_those_that_run_and_are_registered() {
    let head = Deployment::live_shaped_with("head-intended", |_| {}, &[("DIVE_SPOKES", "all")]).await;
    let verdict = run_on(head, "5.1-deploy", async |d: &Deployment, s: &mut Scenario| {
        federation_is_up(d, s).await?;
        let mut found: Vec<&str> = d.spokes().iter().map(|i| i.code.as_str()).collect();
        let mut running: Vec<&str> = must_config().spokes.iter().map(String::as_str).collect();
        found.sort_unstable();
        running.sort_unstable();
        if found != running {
            s.finding(Finding::fail(format!(
                "DIVE_SPOKES=all found {found:?}; the deployment runs {running:?}"
            )));
        }
        Ok(())
    })
    .await;
    verdict.must_pass();
}

#[tokio::test]
async fn live_shaped_head_deploy_seeds_the_spokes() {
    let head = Deployment::live_shaped_with("head-intended", |_| {}, &[("DIVE_LIVE_DEPLOY", "1")]).await;
    let verdict = run_on(head, "5.1-deploy", async |d: &Deployment, s: &mut Scenario| {
        federation_is_up(d, s).await?;
        let seeded = calls(d).iter().any(|c| c.contains("spoke deploy tst --seed"));
        if !seeded {
            s.finding(Finding::fail(format!(
                "HEAD's spoke deploy ran without --seed: {:?}",
                calls(d)
            )));
        }
        for spoke in d.spokes() {
            // Traffic lists the spoke's resources: a spoke deployed without seeding has none.
            spoke.traffic().await?;
        }
        Ok(())
    })
    .await;
    verdict.must_pass();
}
