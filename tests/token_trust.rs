//! Phase 5.2: token trust. On the hub and every spoke, in steady state and during each outage,
//! authentication and authorization still say no when they must: a forged token (the realm's
//! header and issuer, signed by the suite's own key), an `alg: none` or signature-less token, an
//! expired one and one from an issuer nobody trusts are refused, cold and right after a valid
//! token was accepted; and one user's token is never answered with another user's identity.
//! Every probe is a read-only request; every crafted token is made per run and valid nowhere.

use dive_resilience::infra::config::must_config;
use dive_resilience::prelude::*;
use dive_resilience::scenario::trust::{Craft, FirstToken, Kit};

/// Every instance in steady state, then the tokens and resources the probes use.
async fn ready(d: &Deployment, s: &mut Scenario, first: FirstToken) -> Result<Kit, Finding> {
    for inst in d.instances() {
        s.preflight(inst).await?;
    }
    s.token_kit(d, first).await
}

/// 5.2-forged: the realm's header and issuer, another identity (TOP_SECRET), signed by the
/// suite's key; and the same with its header reordered.
async fn forged_tokens_are_refused(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let kit = ready(d, s, FirstToken::Low).await?;
    let crafted = [kit.craft(Craft::Forged)?, kit.craft(Craft::Reordered)?];
    s.refused_everywhere(d, &kit, &crafted).await
}

/// 5.2-none: `alg: none`, and a valid token with its signature cut off.
async fn unsigned_tokens_are_refused(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let kit = ready(d, s, FirstToken::Low).await?;
    let crafted = [kit.craft(Craft::AlgNone)?, kit.craft(Craft::SignatureCut)?];
    s.refused_everywhere(d, &kit, &crafted).await
}

/// 5.2-expired: a token the realm issued, past its `exp` beyond DIVE's 30 s clock tolerance.
async fn expired_tokens_are_refused(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let kit = ready(d, s, FirstToken::Low).await?;
    match s.expired_token(d, &kit).await? {
        Ok(expired) => s.refused_everywhere(d, &kit, &[expired]).await,
        Err(why) => {
            s.finding(Finding::note(why));
            Ok(())
        }
    }
}

/// 5.2-issuer: well signed, by a key the token itself carries, from an issuer nobody trusts.
async fn untrusted_issuers_are_refused(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let kit = ready(d, s, FirstToken::Low).await?;
    s.refused_everywhere(d, &kit, &[kit.craft(Craft::Foreign)?]).await
}

/// 5.2-identity: a TOP_SECRET user reads a TOP_SECRET resource; right after, a low-clearance
/// user's token asks for it and must be refused as that user (403).
async fn identities_are_kept_apart(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let kit = ready(d, s, FirstToken::High).await?;
    for inst in d.instances() {
        s.identity_probe(inst, &kit, true).await?;
    }
    Ok(())
}

/// 5.2-outage: the forgery and identity probes in steady state, then while Keycloak, the cache
/// Redis and the revocation store are down in turn; a revoked token refused again once the store
/// is back.
async fn trust_holds_during_outages(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    let kit = ready(d, s, FirstToken::Low).await?;
    let steady = s.trust_probes(d, &kit, None).await?;
    for service in [Service::Keycloak, Service::CacheRedis] {
        let down = s.outage_everywhere(d, service).await?;
        s.trust_probes(d, &kit, Some((service, &steady))).await?;
        for fault in down {
            s.restore(fault).await?;
        }
        // Each outage starts from steady state: breakers opened by the last one closed again.
        settle(d, s).await?;
    }
    let user = must_config().revoke_user.clone();
    s.revocation_store_outage(d, &kit, &steady, &user).await?;
    settle(d, s).await
}

/// Every instance back in steady state, under traffic.
async fn settle(d: &Deployment, s: &mut Scenario) -> Result<(), Finding> {
    for inst in d.instances() {
        s.postcheck(inst, &inst.traffic().await?.pump(TICK)).await;
    }
    Ok(())
}

#[tokio::test]
async fn forged_tokens_are_refused_on_every_instance() {
    run_on(Deployment::federation().await, "5.2-forged", forged_tokens_are_refused)
        .await
        .must_pass();
}

#[tokio::test]
async fn unsigned_tokens_are_refused_on_every_instance() {
    run_on(Deployment::federation().await, "5.2-none", unsigned_tokens_are_refused)
        .await
        .must_pass();
}

#[tokio::test]
async fn expired_tokens_are_refused_on_every_instance() {
    run_on(
        Deployment::federation().await,
        "5.2-expired",
        expired_tokens_are_refused,
    )
    .await
    .must_pass();
}

#[tokio::test]
async fn untrusted_issuers_are_refused_on_every_instance() {
    run_on(
        Deployment::federation().await,
        "5.2-issuer",
        untrusted_issuers_are_refused,
    )
    .await
    .must_pass();
}

#[tokio::test]
async fn no_token_is_answered_with_another_users_identity() {
    run_on(
        Deployment::federation().await,
        "5.2-identity",
        identities_are_kept_apart,
    )
    .await
    .must_pass();
}

#[tokio::test]
async fn token_trust_holds_during_every_outage() {
    run_on(Deployment::federation().await, "5.2-outage", trust_holds_during_outages)
        .await
        .must_pass();
}

// ------------------------------------------------------------------ self-checks

/// DIVE as shipped serves a forgery the cached introspection answer of the valid token before it,
/// and refuses it on a cold cache: D11, answered with that token's identity.
async fn forged_names_d11_as_shipped(profile: Profile) -> String {
    let deployment = Deployment::reference_federation(profile, &[]).await;
    let verdict = run_on(deployment, "5.2-forged", forged_tokens_are_refused).await;
    let diagnosis = verdict.must_fail_naming(&[Defect::D11]);
    let forgeries: Vec<&Finding> = verdict
        .failures()
        .into_iter()
        .filter(|f| f.message.contains("accepted the forged token"))
        .collect();
    assert_eq!(forgeries.len(), 4, "on every instance: {forgeries:?}");
    assert!(
        forgeries.iter().all(|f| f.defect == Some(Defect::D11)
            && f.message.contains("testuser-usa-1's, whose valid token")
            && f.message.contains("on a cold cache")),
        "accepted warm, refused cold, answered with the identity of the token that filled the cache: {forgeries:?}"
    );
    diagnosis
}

/// At HEAD the answer's claims win over the forged ones (DIVE's `validateToken`).
#[tokio::test]
async fn self_check_forged_names_d11_on_dive_head() {
    insta::assert_snapshot!(forged_names_d11_as_shipped(Profile::DiveHead).await);
}

/// At 15a319e6 the request's identity is the cached answer's alone.
#[tokio::test]
async fn self_check_forged_names_d11_on_dive_v15a() {
    insta::assert_snapshot!(forged_names_d11_as_shipped(Profile::DiveV15a).await);
}

#[tokio::test]
async fn self_check_unsigned_names_alg_none_accepted() {
    let deployment = Deployment::reference_federation(Profile::Intended, &[Defect::R13]).await;
    insta::assert_snapshot!(
        run_on(deployment, "5.2-none", unsigned_tokens_are_refused)
            .await
            .must_fail_naming(&[Defect::R13])
    );
}

#[tokio::test]
async fn self_check_expired_names_expiry_unchecked() {
    let deployment = Deployment::reference_federation(Profile::Intended, &[Defect::R14]).await;
    insta::assert_snapshot!(
        run_on(deployment, "5.2-expired", expired_tokens_are_refused)
            .await
            .must_fail_naming(&[Defect::R14])
    );
}

#[tokio::test]
async fn self_check_issuer_names_a_key_taken_from_the_token() {
    let deployment = Deployment::reference_federation(Profile::Intended, &[Defect::R15]).await;
    insta::assert_snapshot!(
        run_on(deployment, "5.2-issuer", untrusted_issuers_are_refused)
            .await
            .must_fail_naming(&[Defect::R15])
    );
}

#[tokio::test]
async fn self_check_identity_names_d11_on_dive_v15a() {
    let deployment = Deployment::reference_federation(Profile::DiveV15a, &[]).await;
    insta::assert_snapshot!(
        run_on(deployment, "5.2-identity", identities_are_kept_apart)
            .await
            .must_fail_naming(&[Defect::D11])
    );
}

#[tokio::test]
async fn self_check_outage_names_a_spoke_that_stops_verifying() {
    let deployment = Deployment::reference_federation(Profile::Intended, &[Defect::R12]).await;
    let verdict = run_on(deployment, "5.2-outage", trust_holds_during_outages).await;
    insta::assert_snapshot!(verdict.must_fail_naming(&[Defect::R12]));
    let spoke = dive_resilience::reference::behaviour::UNVERIFYING_SPOKE;
    let named: Vec<&Finding> = verdict
        .failures()
        .into_iter()
        .filter(|f| f.defect == Some(Defect::R12))
        .collect();
    assert!(
        named.iter().all(|f| f.message.starts_with(spoke)),
        "only {spoke}: {named:?}"
    );
}

// ------------------------------------------------------------------ the live code, on a live-shaped DIVE

use dive_resilience::reference::live_shaped::LiveShaped;

/// The commands the live-shaped DIVE's runtime and CLI ran.
fn calls(d: &Deployment) -> Vec<String> {
    d.kept::<LiveShaped>().map(LiveShaped::calls).unwrap_or_default()
}

#[tokio::test]
async fn live_shaped_head_token_trust_holds() {
    let head = Deployment::live_shaped("head-intended", |_| {})
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    run_with(&head, "5.2-forged", forged_tokens_are_refused)
        .await
        .must_pass();
    run_with(&head, "5.2-none", unsigned_tokens_are_refused)
        .await
        .must_pass();
    run_with(&head, "5.2-expired", expired_tokens_are_refused)
        .await
        .must_pass();
    run_with(&head, "5.2-issuer", untrusted_issuers_are_refused)
        .await
        .must_pass();
    run_with(&head, "5.2-identity", identities_are_kept_apart)
        .await
        .must_pass();
    run_with(&head, "5.2-outage", trust_holds_during_outages)
        .await
        .must_pass();
}

/// On a live DIVE that ships D11, the warm probe names it and no cold probe runs: nothing is left
/// in the introspection cache that would lock the issuer's users out.
#[tokio::test]
async fn live_shaped_dive_head_names_d11_without_a_cold_probe() {
    let head = Deployment::live_shaped("dive-head", |_| {})
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    let verdict = run_with(&head, "5.2-forged", forged_tokens_are_refused).await;
    insta::assert_snapshot!(verdict.must_fail_naming(&[Defect::D11]));
    let restarts: Vec<String> = calls(&head)
        .into_iter()
        .filter(|c| {
            let words: Vec<&str> = c.split_whitespace().collect();
            words.iter().any(|w| w.ends_with("-backend"))
                && words.iter().any(|w| ["stop", "start", "restart"].contains(w))
        })
        .collect();
    assert!(
        restarts.is_empty(),
        "no backend was restarted for a cold probe: {restarts:?}"
    );
    let skipped = verdict
        .findings
        .iter()
        .filter(|f| f.message.contains("not presented cold"))
        .count();
    assert_eq!(skipped, head.instances().len(), "{:?}", verdict.findings);
    let user = head.hub().credentials.user.clone();
    let token = head.hub().token_for(&user).await.expect("a token");
    for inst in head.instances() {
        assert_eq!(
            inst.accepts(&token).await,
            Ok(true),
            "{} still accepts {user}",
            inst.code
        );
    }
}
