//! Token trust (phase 5.2): tokens the suite crafts, presented to every instance right after a
//! valid token of the same issuer was accepted there (warm) and on a cache made cold by
//! restarting the backend (cold); what each instance answered, and for whom; and the diagnoses
//! that name D11, or a reference defect, each on its own evidence.
//!
//! DIVE keeps Keycloak's introspection answer under the token's first 16 characters and its
//! issuer for 300 s, refusals included (D11). So on a live DIVE, a crafted token that carries the
//! realm's header and issuer is presented cold only where the same token was refused warm: where
//! the warm one was accepted, the cache answers by prefix, and the cold one would leave a refusal
//! there that locks every user of the issuer out of that instance for five minutes.

use std::time::Duration;

use crate::deployment::Deployment;
use crate::deployment::instance::{Instance, Reception};
use crate::fault::FaultGuard;
use crate::infra::os::{random_hex, unix_now};
use crate::infra::poll::eventually;
use crate::infra::throwaway::throwaway_key;
use crate::scenario::diagnose::{self, NotRefused};
use crate::scenario::{Scenario, TICK};
use crate::vocab::api::Subject;
use crate::vocab::fault::{FaultKind, Service};
use crate::vocab::finding::{Defect, Finding};
use crate::vocab::tokens::{self, Claimed};
use crate::vocab::units::secs;

/// The issuer of the suite's foreign tokens: a URL nobody trusts, which never resolves
/// (`.invalid`, RFC 6761), so no DIVE can fetch anything from it.
pub const UNTRUSTED_ISSUER: &str = "https://untrusted.invalid/realms/dive-v3-broker-usa";

/// DIVE's clock tolerance when it verifies a token itself (`clockTolerance: 30`).
pub const CLOCK_TOLERANCE: Duration = Duration::from_secs(30);

/// The clearance DIVE's seeding gives its fifth test user, and every forged token claims.
const TOP_SECRET: &str = "TOP_SECRET";

/// Whom a token says it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub unique_id: String,
    pub clearance: String,
    pub country: String,
}

impl Identity {
    /// The identity a token claims, read without any check.
    pub fn of_token(token: &str) -> Result<Identity, String> {
        let claims = tokens::claims(token)?;
        let text = |name: &str| tokens::text(&claims, name).unwrap_or_default().to_string();
        Ok(Identity {
            unique_id: text("uniqueID"),
            clearance: text("clearance"),
            country: text("countryOfAffiliation"),
        })
    }

    /// Whether everything `subject` states (clearance, country, and the user where it names one)
    /// is this identity's.
    pub fn matches(&self, subject: &Subject) -> bool {
        let same = |stated: &Option<String>, own: &str| stated.as_deref().is_none_or(|s| s == own);
        same(&subject.unique_id, &self.unique_id)
            && same(&subject.clearance, &self.clearance)
            && same(&subject.country, &self.country)
    }
}

impl From<&Claimed> for Identity {
    fn from(c: &Claimed) -> Identity {
        Identity {
            unique_id: c.unique_id.clone(),
            clearance: c.clearance.clone(),
            country: c.country.clone(),
        }
    }
}

/// A valid token of the hub's realm, and whose it is.
#[derive(Debug, Clone)]
pub struct Holder {
    pub user: String,
    pub token: String,
    pub identity: Identity,
}

impl Holder {
    async fn issued(hub: &Instance, user: &str) -> Result<Holder, Finding> {
        let token = hub.token_for(user).await?;
        let identity = Identity::of_token(&token)
            .map_err(|e| Finding::precondition(format!("the token issued to {user} does not decode: {e}")))?;
        Ok(Holder {
            user: user.to_string(),
            token,
            identity,
        })
    }
}

/// DIVE seeds `testuser-<code>-1..5` by rising clearance: the fifth is TOP_SECRET.
pub fn top_secret_user(user: &str) -> Option<String> {
    let (prefix, n) = user.rsplit_once('-')?;
    (!n.is_empty() && n.chars().all(|c| c.is_ascii_digit())).then(|| format!("{prefix}-5"))
}

/// Which of the kit's tokens reaches each instance first, and so fills DIVE's introspection cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstToken {
    /// The low-clearance user's (the refusal scenarios: an acceptance then shows whose).
    Low,
    /// The TOP_SECRET user's (the identity scenario: whatever comes next must not become theirs).
    High,
}

/// What the token-trust scenarios probe with: two holders of the hub's realm (the instance's usual,
/// low-clearance user and a TOP_SECRET user), the resource the probes ask each instance for, and
/// the identity every forged token claims.
pub struct Kit {
    pub low: Holder,
    pub high: Holder,
    pub forged: Claimed,
    targets: Vec<Target>,
}

/// The resource the probes ask one instance for.
#[derive(Debug, Clone)]
struct Target {
    code: String,
    resource: String,
    /// It is TOP_SECRET (the identity probe needs one).
    top_secret: bool,
}

/// What the suite makes of a genuine token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Craft {
    /// The realm's header byte for byte and its issuer, another identity (TOP_SECRET), signed by
    /// the suite's own key.
    Forged,
    /// The same forgery with the header's members reordered: its first 16 characters differ.
    Reordered,
    /// `alg: none`, no signature.
    AlgNone,
    /// A valid token with its signature cut off.
    SignatureCut,
    /// A genuinely issued token past its `exp`, beyond the clock tolerance.
    Expired,
    /// Well signed by the suite's key, which it carries, from an issuer nobody trusts.
    Foreign,
}

impl Craft {
    pub fn what(self) -> &'static str {
        match self {
            Craft::Forged => "forged token (the realm's header and issuer, signed by the suite's own key)",
            Craft::Reordered => "forged token with the header's members reordered",
            Craft::AlgNone => "alg none token",
            Craft::SignatureCut => "valid token with its signature cut off",
            Craft::Expired => "genuinely issued token past its exp",
            Craft::Foreign => "well-signed token of an issuer nobody trusts",
        }
    }

    /// Whether it meets the introspection cache entry of the issuer's valid tokens: it keeps
    /// the realm's header (the first 16 characters) and issuer.
    pub fn shares_entry(self) -> bool {
        matches!(self, Craft::Forged | Craft::SignatureCut | Craft::Expired)
    }
}

/// A crafted token.
#[derive(Debug, Clone)]
pub struct Crafted {
    pub craft: Craft,
    pub token: String,
}

impl Kit {
    /// The resource the probes ask `code` for: TOP_SECRET where the TOP_SECRET user could list
    /// one, else one the low user lists.
    pub fn secret(&self, code: &str) -> Result<&str, Finding> {
        self.targets
            .iter()
            .find(|t| t.code == code)
            .map(|t| t.resource.as_str())
            .ok_or_else(|| Finding::precondition(format!("no resource to probe found on {code}")))
    }

    /// The TOP_SECRET resource of `code`, when the TOP_SECRET user could list one.
    pub fn top_secret(&self, code: &str) -> Option<&str> {
        self.targets
            .iter()
            .find(|t| t.code == code && t.top_secret)
            .map(|t| t.resource.as_str())
    }

    /// A crafted token (all but [`Craft::Expired`], which the realm has to issue).
    pub fn craft(&self, craft: Craft) -> Result<Crafted, Finding> {
        let (key, jwk) = throwaway_key().map_err(Finding::precondition)?;
        let genuine = &self.low.token;
        let token = match craft {
            Craft::Forged => tokens::forged(genuine, &self.forged, key),
            Craft::Reordered => tokens::reordered(genuine, &self.forged, key),
            Craft::AlgNone => tokens::alg_none(genuine, &self.forged),
            Craft::SignatureCut => tokens::signature_cut(genuine),
            Craft::Foreign => tokens::foreign(genuine, UNTRUSTED_ISSUER, &self.forged, key, jwk),
            Craft::Expired => Err("an expired token is issued by the realm, not crafted".to_string()),
        }
        .map_err(|e| Finding::precondition(format!("crafting a {}: {e}", craft.what())))?;
        Ok(Crafted { craft, token })
    }

    /// Says whom an answer was for, naming each identity of the kit it fits: for a crafted token
    /// presented right after the low user's valid one (`crafted`), the forged claims, the low
    /// user's and the TOP_SECRET user's; for the low user's token presented right after the
    /// TOP_SECRET user's, the two users'.
    pub fn whose(&self, subject: Option<&Subject>, crafted: bool) -> String {
        let Some(subject) = subject else {
            return "for whom, the body does not say".to_string();
        };
        let forged = Identity::from(&self.forged);
        let (low, high) = if crafted {
            (
                format!("{}'s, whose valid token was accepted just before", self.low.user),
                format!("{}'s", self.high.user),
            )
        } else {
            (
                format!("{}'s own", self.low.user),
                format!("{}'s, whose token read it just before", self.high.user),
            )
        };
        let mut candidates: Vec<(&Identity, String)> = Vec::new();
        if crafted {
            candidates.push((&forged, "the forged claims".to_string()));
        }
        candidates.push((&self.low.identity, low));
        candidates.push((&self.high.identity, high));
        let fitting: Vec<String> = candidates
            .into_iter()
            .filter(|(identity, _)| identity.matches(subject))
            .map(|(_, name)| name)
            .collect();
        if fitting.is_empty() {
            format!("as {subject}: none of the identities the suite presented")
        } else {
            format!("as {subject}: {}", fitting.join(" or "))
        }
    }
}

/// What one instance did with one crafted token.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    pub code: String,
    pub craft: Craft,
    /// Right after the low user's valid token was accepted there.
    pub warm: Reception,
    pub cold: Cold,
    /// The reordered forgery, presented warm where `warm` accepted a token that shares the
    /// issuer's cache entry: refused, it shows the acceptance came from that entry.
    pub control: Option<Reception>,
}

/// The cold half of a probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Cold {
    /// Presented first after the backend restarted.
    Answered(Reception),
    /// Not presented, and why.
    Skipped(String),
    /// The token has a cache entry of its own that no valid token fills: the warm probe already
    /// met a cold cache.
    OwnEntry,
}

/// Why a probe on a live DIVE is not presented cold.
fn cold_skipped(code: &str) -> String {
    format!(
        "not presented cold on {code}: it was accepted warm, so {code} answers from a cache keyed by the token's first 16 characters; presented first, it would leave a refusal there that locks every user of the issuer out of {code} for 5 minutes"
    )
}

impl Scenario {
    /// Gathers the kit: tokens of the hub's realm for the instance's usual user and the TOP_SECRET
    /// user, and a TOP_SECRET resource on every instance (listed with the TOP_SECRET user's
    /// token). `first` says whose token each instance sees first.
    pub async fn token_kit(&mut self, d: &Deployment, first: FirstToken) -> Result<Kit, Finding> {
        let hub = d.hub();
        let low_user = hub.credentials.user.clone();
        let high_user = top_secret_user(&low_user).ok_or_else(|| {
            Finding::precondition(format!(
                "cannot tell DIVE's TOP_SECRET test user from {low_user}: DIVE seeds testuser-<code>-1..5"
            ))
        })?;
        let low = Holder::issued(hub, &low_user).await?;
        let high = Holder::issued(hub, &high_user).await?;
        if high.identity.clearance != TOP_SECRET {
            return Err(Finding::precondition(format!(
                "{high_user}'s token claims clearance {}, not {TOP_SECRET}",
                high.identity.clearance
            )));
        }
        let mut targets = Vec::new();
        for inst in d.instances() {
            if first == FirstToken::Low && inst.accepts(&low.token).await != Ok(true) {
                return Err(Finding::precondition(format!(
                    "{} does not accept a valid token of {low_user}",
                    inst.code
                )));
            }
            let listed = inst.resources(&high.token, 100).await?;
            let secret = listed.iter().find(|r| r.classification.as_deref() == Some(TOP_SECRET));
            let target = match (secret, first) {
                (Some(secret), _) => Target {
                    code: inst.code.clone(),
                    resource: secret.resource_id.clone(),
                    top_secret: true,
                },
                (None, FirstToken::High) => {
                    return Err(Finding::precondition(format!(
                        "{} lists no TOP_SECRET resource to {high_user} among {}",
                        inst.code,
                        listed.len()
                    )));
                }
                // The low user's token came first: where DIVE answers the later token with the
                // earlier one's identity (D11), the TOP_SECRET user sees only what the low user
                // sees. The probes that need no TOP_SECRET resource ask for one the low user lists.
                (None, FirstToken::Low) => {
                    let own = inst.resources(&low.token, 1).await?;
                    let any = own.first().ok_or_else(|| {
                        Finding::precondition(format!("{} lists no resource to {low_user}", inst.code))
                    })?;
                    self.report(format!(
                        "{}: {high_user} lists no TOP_SECRET resource among {} right after {low_user}'s token was accepted; probing with {}",
                        inst.code,
                        listed.len(),
                        any.resource_id
                    ));
                    Target {
                        code: inst.code.clone(),
                        resource: any.resource_id.clone(),
                        top_secret: false,
                    }
                }
            };
            targets.push(target);
        }
        let forged = Claimed {
            unique_id: format!("dive-resilience-forged-{}", random_hex()),
            clearance: TOP_SECRET.to_string(),
            country: low.identity.country.clone(),
            jti: format!("dive-resilience-{}", random_hex()),
        };
        self.event(format!(
            "probing with tokens of {low_user} and {high_user} (hub realm), resources {}; forged tokens claim {} ({TOP_SECRET}) and are signed by the suite's own key",
            targets
                .iter()
                .map(|t| format!("{} {}{}", t.code, t.resource, if t.top_secret { " (TOP_SECRET)" } else { "" }))
                .collect::<Vec<_>>()
                .join(", "),
            forged.unique_id
        ));
        Ok(Kit {
            low,
            high,
            forged,
            targets,
        })
    }

    /// The low user's valid token, accepted on `inst` (a precondition of every warm probe).
    async fn valid_first(&mut self, inst: &Instance, kit: &Kit) -> Result<Reception, Finding> {
        let seen = inst.present(&kit.low.token, kit.secret(&inst.code)?).await;
        match &seen {
            Reception::Accepted { .. } => Ok(seen),
            other => Err(Finding::precondition(format!(
                "{} does not accept a valid token of {}: {other}",
                inst.code, kit.low.user
            ))),
        }
    }

    /// `crafted` presented to `inst` right after the low user's valid token was accepted there.
    pub async fn warm(&mut self, inst: &Instance, kit: &Kit, crafted: &Crafted) -> Result<Reception, Finding> {
        self.valid_first(inst, kit).await?;
        let seen = inst.present(&crafted.token, kit.secret(&inst.code)?).await;
        self.report(format!("{}: {} (warm): {seen}", inst.code, crafted.craft.what()));
        Ok(seen)
    }

    /// Empties `inst`'s in-process caches by restarting its backend, and waits until it answers.
    pub async fn cold_cache(&mut self, inst: &Instance) -> Result<(), Finding> {
        let stopped: FaultGuard = self.fault(inst, Service::Backend, FaultKind::Stop).await?;
        self.restore(stopped).await?;
        let live = inst.health_url("/live");
        let what = format!("{} backend answering after its restart", inst.code);
        let answering = eventually(&what, TICK, Duration::from_secs(180), || async {
            inst.http().get_ok(&live, Duration::from_secs(5)).await
        });
        answering
            .await
            .map_err(|t| Finding::fail(format!("the cache could not be made cold: {t}")))?;
        Ok(())
    }

    /// Every token of `crafted` on every instance, warm, then cold where that is needed and safe;
    /// each judged. The valid token must still be accepted after the cold probes.
    pub async fn refused_everywhere(&mut self, d: &Deployment, kit: &Kit, crafted: &[Crafted]) -> Result<(), Finding> {
        for inst in d.instances() {
            let mut probed = Vec::new();
            for c in crafted {
                let warm = self.warm(inst, kit, c).await?;
                let control = if c.craft.shares_entry() && warm.accepted() {
                    Some(self.warm(inst, kit, &kit.craft(Craft::Reordered)?).await?)
                } else {
                    None
                };
                let cold = if c.craft.shares_entry() {
                    Cold::Skipped(String::new())
                } else {
                    Cold::OwnEntry
                };
                probed.push(Probed {
                    code: inst.code.clone(),
                    craft: c.craft,
                    warm,
                    cold,
                    control,
                });
            }
            let locked_out = self.cold_probes(inst, kit, crafted, &mut probed).await?;
            for p in &probed {
                if let Some(finding) = judge(p, kit, None) {
                    self.finding(finding);
                }
            }
            if let Some(finding) = locked_out {
                self.finding(finding);
            }
        }
        Ok(())
    }

    /// The cold half: the backend restarted, then each token that shares the issuer's entry
    /// presented first, then the valid token, which must still be accepted. On a live DIVE only
    /// where every such token was refused warm.
    async fn cold_probes(
        &mut self,
        inst: &Instance,
        kit: &Kit,
        crafted: &[Crafted],
        probed: &mut [Probed],
    ) -> Result<Option<Finding>, Finding> {
        let pending: Vec<usize> = (0..probed.len())
            .filter(|i| matches!(probed[*i].cold, Cold::Skipped(_)))
            .collect();
        if pending.is_empty() {
            return Ok(None);
        }
        if self.live && pending.iter().any(|i| probed[*i].warm.accepted()) {
            let why = cold_skipped(&inst.code);
            self.finding(Finding::note(why.clone()));
            for i in pending {
                probed[i].cold = Cold::Skipped(why.clone());
            }
            return Ok(None);
        }
        self.cold_cache(inst).await?;
        let secret = kit.secret(&inst.code)?;
        for i in pending {
            let seen = inst.present(&crafted[i].token, secret).await;
            self.report(format!("{}: {} (cold): {seen}", inst.code, crafted[i].craft.what()));
            probed[i].cold = Cold::Answered(seen);
        }
        let after = inst.present(&kit.low.token, secret).await;
        if after.accepted() {
            return Ok(None);
        }
        let locked_out = match &after {
            // Refused as such (401): the refusal of the crafted token answers for the valid one.
            Reception::Refused(_) => Finding::fail(format!(
                "{code} refused {user}'s valid token ({after}) right after refusing a crafted token with the same first sixteen characters and issuer, although it accepted it before: the refusal is cached for every token of the issuer, locking its users out",
                code = inst.code,
                user = kit.low.user
            ))
            .defect(Defect::D11),
            _ => Finding::fail(format!(
                "{} gave no verdict on {}'s valid token after the cold probes: {after}",
                inst.code, kit.low.user
            )),
        };
        // A restart drops a cached refusal.
        self.cold_cache(inst).await?;
        Ok(Some(locked_out))
    }

    /// A token of the realm issued already expired (the reference can), or, on a DIVE that cannot,
    /// a fresh one waited out when its lifespan fits the wait the suite allows. `Err` says why
    /// the check cannot be made.
    pub async fn expired_token(&mut self, d: &Deployment, kit: &Kit) -> Result<Result<Crafted, String>, Finding> {
        let hub = d.hub();
        let extra: &[(&str, &str)] = if d.is_live() {
            &[]
        } else {
            // The reference Keycloak's own test-only parameter.
            &[("test_only_expired", "true")]
        };
        let issued = hub.token_answer(&kit.low.user, extra).await?;
        let exp = tokens::claims(&issued.access_token)
            .ok()
            .and_then(|c| c.get("exp").and_then(serde_json::Value::as_u64))
            .ok_or_else(|| Finding::precondition("the realm's token has no exp"))?;
        let past = |exp: u64| unix_now().saturating_sub(exp);
        let beyond = CLOCK_TOLERANCE.as_secs() + 1;
        if past(exp) <= beyond {
            let wait = self.budget_of("5.2-expired wait");
            let needed = Duration::from_secs(exp.saturating_sub(unix_now()) + beyond + 1);
            if needed > wait.limit {
                return Ok(Err(format!(
                    "the realm's tokens live {} and DIVE tolerates {} more; the suite waits at most {} ({}), so the check could not be made: give the realm a shorter access-token lifespan to make it",
                    secs(Duration::from_secs(issued.expires_in)),
                    secs(CLOCK_TOLERANCE),
                    secs(wait.limit),
                    wait.label
                )));
            }
            self.event(format!(
                "waiting {} for a token of {} to expire beyond the clock tolerance",
                secs(needed),
                kit.low.user
            ));
            let expired = eventually("the token expired", TICK, needed + TICK * 4, || async {
                if past(exp) > beyond {
                    Ok(())
                } else {
                    Err(format!("{} s to go", (exp + beyond + 1).saturating_sub(unix_now())))
                }
            });
            expired.await.map_err(|t| Finding::precondition(t.to_string()))?;
        }
        self.event(format!(
            "an expired token of {}: {} s past its exp",
            kit.low.user,
            past(exp)
        ));
        Ok(Ok(Crafted {
            craft: Craft::Expired,
            token: issued.access_token,
        }))
    }
}

impl Scenario {
    /// The forgery (warm, with its reordered twin as the control) and the identity probe on
    /// every instance, each judged. `during` names the outage they run in, with what steady
    /// state answered the same forgery (by instance); returns what each instance answered it.
    pub async fn trust_probes(
        &mut self,
        d: &Deployment,
        kit: &Kit,
        during: Option<(Service, &[(String, Reception)])>,
    ) -> Result<Vec<(String, Reception)>, Finding> {
        let (forged, reordered) = (kit.craft(Craft::Forged)?, kit.craft(Craft::Reordered)?);
        let mut answered = Vec::new();
        for inst in d.instances() {
            let (code, secret) = (inst.code.clone(), kit.secret(&inst.code)?);
            let valid = inst.present(&kit.low.token, secret).await;
            if !valid.accepted() {
                let Some((service, _)) = during else {
                    return Err(Finding::precondition(format!(
                        "{code} does not accept a valid token of {}: {valid}",
                        kit.low.user
                    )));
                };
                self.finding(Finding::note(format!(
                    "{code} refused {}'s valid token while the {service} was down ({valid}): the probes there met no warm cache",
                    kit.low.user
                )));
            }
            let warm = inst.present(&forged.token, secret).await;
            let control = inst.present(&reordered.token, secret).await;
            self.report(format!(
                "{code}: {} (warm): {warm}; reordered: {control}",
                Craft::Forged.what()
            ));
            let steady = during.and_then(|(service, steady)| {
                let seen = steady.iter().find(|(c, _)| *c == code).map(|(_, r)| r)?;
                Some((service, seen))
            });
            let accepted_first = warm.accepted();
            let probes = [
                Probed {
                    code: code.clone(),
                    craft: Craft::Forged,
                    warm: warm.clone(),
                    cold: Cold::Skipped("warm only".to_string()),
                    control: Some(control.clone()),
                },
                Probed {
                    code: code.clone(),
                    craft: Craft::Reordered,
                    warm: control,
                    cold: Cold::OwnEntry,
                    control: None,
                },
            ];
            // The reordered twin is judged on its own only when the forgery itself was refused.
            for p in probes.iter().take(if accepted_first { 1 } else { 2 }) {
                if let Some(finding) = judge(p, kit, steady) {
                    self.finding(finding);
                }
            }
            self.identity_probe(inst, kit, false).await?;
            answered.push((code, warm));
        }
        Ok(answered)
    }

    /// The TOP_SECRET user reads `inst`'s TOP_SECRET resource, then the low user's token asks
    /// for it: the answer must be theirs (403). `strict` (5.2-identity itself): a probe that cannot
    /// be made is a precondition that failed; otherwise (alongside other probes, or during an
    /// outage) a note.
    pub async fn identity_probe(&mut self, inst: &Instance, kit: &Kit, strict: bool) -> Result<(), Finding> {
        let cannot = |why: String| {
            let why = format!("{}: the identity probe could not be made: {why}", inst.code);
            if strict {
                Err(Finding::precondition(why))
            } else {
                Ok(Finding::note(why))
            }
        };
        let Some(secret) = kit.top_secret(&inst.code) else {
            let note = cannot(format!("{} could list no TOP_SECRET resource", kit.high.user))?;
            self.finding(note);
            return Ok(());
        };
        let high = inst.present(&kit.high.token, secret).await;
        if !matches!(high, Reception::Accepted { status: 200, .. }) {
            let note = cannot(format!("{}'s token got {high} for {secret}", kit.high.user))?;
            self.finding(note);
            return Ok(());
        }
        let low = inst.present(&kit.low.token, secret).await;
        self.report(format!(
            "{}: {} read {secret}; then {}'s token: {low}",
            inst.code, kit.high.user, kit.low.user
        ));
        let suspicious = match &low {
            Reception::Accepted { status, subject } => {
                *status == 200 || subject.as_ref().is_some_and(|s| !kit.low.identity.matches(s))
            }
            _ => false,
        };
        let forged = if suspicious {
            Some(inst.present(&kit.craft(Craft::Forged)?.token, secret).await)
        } else {
            None
        };
        if let Some(finding) = judge_identity(&inst.code, kit, &low, forged.as_ref()) {
            self.finding(finding);
        }
        Ok(())
    }

    /// `service` stopped on every instance at once (the revocation store, shared, on the hub).
    pub async fn outage_everywhere(&mut self, d: &Deployment, service: Service) -> Result<Vec<FaultGuard>, Finding> {
        let mut guards = Vec::new();
        let instances: Vec<&Instance> = if service == Service::RevocationStore {
            vec![d.hub()]
        } else {
            d.instances().iter().collect()
        };
        for inst in instances {
            guards.push(self.fault(inst, service, FaultKind::Stop).await?);
        }
        Ok(guards)
    }

    /// The revocation store's outage: a token of the dedicated `user` revoked and refused
    /// everywhere; the store stopped, the probes repeated, and the revoked token accepted meanwhile
    /// reported as DIVE's documented fail-open (a NOTE, with its window); the store back, the
    /// token refused again within 5.1-revoke's budget. The user's lock-out is ledgered and lifted.
    pub async fn revocation_store_outage(
        &mut self,
        d: &Deployment,
        kit: &Kit,
        steady: &[(String, Reception)],
        user: &str,
    ) -> Result<(), Finding> {
        let lockout = d.hub().lockout(user)?;
        let result = self.store_outage(d, kit, steady, user).await;
        if let Err(e) = lockout.lift().await {
            self.finding(Finding::fail(format!(
                "could not lift the revocation of {user}: {e}; it expires with the token"
            )));
        }
        result
    }

    async fn store_outage(
        &mut self,
        d: &Deployment,
        kit: &Kit,
        steady: &[(String, Reception)],
        user: &str,
    ) -> Result<(), Finding> {
        let (hub, budget) = (d.hub(), self.budget_of("5.1-revoke"));
        let everyone: Vec<&Instance> = d.instances().iter().collect();
        let token = hub.token_for(user).await?;
        let own = Identity::of_token(&token).map_err(Finding::precondition)?;
        for inst in &everyone {
            if inst.accepts(&token).await != Ok(true) {
                return Err(Finding::precondition(format!(
                    "{} does not accept a fresh token of {user}",
                    inst.code
                )));
            }
        }
        let revoked = hub.revoke(&token).await?;
        self.event(format!(
            "revoked token {} of {} on the hub",
            revoked.jti, revoked.unique_id
        ));
        let enforced = self.rejected_everywhere(&everyone, &token, budget).await;
        let hub_missed = enforced
            .iter()
            .find(|(c, _)| *c == hub.code)
            .and_then(|(_, r)| r.as_ref().err());
        let mut enforcing = Vec::new();
        for (code, result) in &enforced {
            let inst = d.instance(code)?;
            match result {
                Ok(_) => enforcing.push(inst),
                Err(missed) => {
                    let listed = inst.lists_revoked(&revoked.jti).await;
                    let cache = revocation_evidence(inst, &token).await;
                    self.finding(revoked_still_accepted(code, missed, hub_missed, &listed, &own, &cache));
                }
            }
        }
        let store = self.fault(hub, Service::RevocationStore, FaultKind::Stop).await?;
        let stopped = self.origin();
        self.trust_probes(d, kit, Some((Service::RevocationStore, steady)))
            .await?;
        let mut open = Vec::new();
        for inst in &enforcing {
            match inst.accepts(&token).await {
                Ok(true) => open.push((inst.code.clone(), std::time::Instant::now())),
                seen => self.report(format!(
                    "{} still refuses the revoked token with the store down ({seen:?})",
                    inst.code
                )),
            }
        }
        let back = self.restore(store).await?.answered_at;
        let polled = std::time::Instant::now();
        for (code, result) in self.rejected_everywhere(&enforcing, &token, budget).await {
            match (result, open.iter().find(|(c, _)| *c == code)) {
                (Ok(latency), Some((_, seen_open))) => {
                    let window = (polled + latency).saturating_duration_since(*seen_open);
                    self.observed(
                        &format!("{code}'s fail-open window for the revoked token ended"),
                        window,
                    );
                    self.finding(Finding::note(format!(
                        "{code} accepted {user}'s revoked token with the revocation store down (probed {} after it stopped) until {} after the store answered again: a window of at least {}. DIVE fails open there on purpose, trading revocation for availability",
                        secs(seen_open.saturating_duration_since(stopped)),
                        secs((polled + latency).saturating_duration_since(back)),
                        secs(window)
                    )));
                }
                (Ok(_), None) => {}
                (Err(missed), _) => self.finding(Finding::fail(format!(
                    "after the revocation store came back, {code} kept accepting the revoked token: {}",
                    missed.seen
                ))),
            }
        }
        Ok(())
    }
}

/// The finding a probe calls for, if any: an acceptance, named D11 only when it came from the
/// issuer's cache entry (accepted warm, refused cold or with its header reordered), or the
/// reference defect whose check it shows missing; `during` an outage, an acceptance that steady
/// state refused.
pub fn judge(p: &Probed, kit: &Kit, during: Option<(Service, &Reception)>) -> Option<Finding> {
    let cold = match &p.cold {
        Cold::Answered(r) => Some(r),
        _ => None,
    };
    let (code, what) = (&p.code, p.craft.what());
    if let Reception::Failed(e) = &p.warm {
        return Some(Finding::fail(format!("{code} gave no verdict on the {what}: {e}")));
    }
    if !p.warm.accepted() {
        return match cold {
            Some(seen @ Reception::Accepted { subject, .. }) => Some(Finding::fail(format!(
                "{code} refused the {what} warm but accepted it on a cold cache ({seen}), {}",
                kit.whose(subject.as_ref(), true)
            ))),
            Some(Reception::Failed(e)) => Some(Finding::fail(format!(
                "{code} gave no verdict on the {what} on a cold cache: {e}"
            ))),
            _ => None,
        };
    }
    let Reception::Accepted { subject, .. } = &p.warm else {
        return None;
    };
    // HEAD's decision cache answers a warm probe without saying for whom; a cold answer may.
    let cold_subject = match cold {
        Some(Reception::Accepted { subject, .. }) => subject.as_ref(),
        _ => None,
    };
    let whose = kit.whose(subject.as_ref().or(cold_subject), true);
    let outage = during.map_or(String::new(), |(service, _)| format!(" while the {service} was down"));
    let refused_cold = cold.is_some_and(Reception::refused);
    let accepted_cold = cold.is_some_and(Reception::accepted);
    let control_refused = p.control.as_ref().is_some_and(Reception::refused);
    let from_cache = p.craft.shares_entry() && !accepted_cold && (refused_cold || control_refused);
    if from_cache {
        let because = if refused_cold {
            "refused the same token on a cold cache"
        } else {
            "refused the same forgery with its header reordered"
        };
        return Some(
            Finding::fail(format!(
                "{code} accepted the {what}{outage} right after a valid token of the issuer was accepted, {whose}; it {because}: the introspection answer is kept under the token's first sixteen characters and issuer and served to whoever presents them"
            ))
            .defect(Defect::D11),
        );
    }
    let accepted = Finding::fail(format!(
        "{code} accepted the {what}{outage}{}, {whose}",
        if accepted_cold { ", warm and cold" } else { "" }
    ));
    let steady_refused = during.is_some_and(|(_, steady)| steady.refused());
    Some(match p.craft {
        Craft::AlgNone => accepted.defect(Defect::R13),
        Craft::Expired if accepted_cold => accepted.defect(Defect::R14),
        Craft::Foreign => accepted.defect(Defect::R15),
        Craft::Forged | Craft::Reordered | Craft::SignatureCut
            if during.is_some_and(|(s, _)| s == Service::Keycloak) && steady_refused =>
        {
            Finding::fail(format!(
                "{code} accepted the {what} while Keycloak was down, {whose}, and refused it before: it stops verifying signatures when Keycloak does not answer"
            ))
            .defect(Defect::R12)
        }
        _ => accepted,
    })
}

/// The finding for a low-clearance user's token answered `seen` for a TOP_SECRET resource right
/// after a TOP_SECRET user read it; `forged` is what the instance did with a forgery of the same
/// header and issuer, the evidence that an answer came from the introspection cache (D11).
pub fn judge_identity(code: &str, kit: &Kit, seen: &Reception, forged: Option<&Reception>) -> Option<Finding> {
    let low = &kit.low;
    match seen {
        Reception::Refused(m) => Some(Finding::precondition(format!(
            "{code} refused {}'s valid token ({m}): whose identity it is answered with cannot be seen",
            low.user
        ))),
        Reception::Failed(e) => Some(Finding::fail(format!(
            "{code} gave no verdict on {}'s token: {e}",
            low.user
        ))),
        Reception::Accepted { status, subject } => {
            let foreign = subject.as_ref().is_some_and(|s| !low.identity.matches(s));
            if *status != 200 && !foreign {
                return None;
            }
            let whose = kit.whose(subject.as_ref(), false);
            let finding = Finding::fail(format!(
                "{code} answered {}'s token ({}) for a TOP_SECRET resource with HTTP {status} right after {} read it, {whose}",
                low.user, low.identity.clearance, kit.high.user
            ));
            let high_identity = subject.as_ref().is_some_and(|s| kit.high.identity.matches(s)) && foreign;
            Some(if high_identity && forged.is_some_and(Reception::accepted) {
                Finding::fail(format!(
                    "{}; a forgery with the same header and issuer is accepted there too: the introspection answer of the earlier token is served for the later one",
                    finding.message
                ))
                .defect(Defect::D11)
            } else {
                finding
            })
        }
    }
}

/// What an instance does with a revoked token it still accepts: whom it answers it as, and what
/// it does with a forgery of the token's header and issuer presented right after it (warm).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheEvidence {
    pub answered: Option<Reception>,
    pub forged: Option<Reception>,
}

/// The finding for a revoked token still accepted on `code` (5.1-revoke, 5.2-outage): D11 when it
/// was answered with another token's identity and a forgery with its header and issuer is
/// accepted there too (the revocation check looked at the user and jti of a cached introspection
/// answer); otherwise what [`diagnose::revoked_token_not_refused`] makes of it (D5, R4 or neither).
pub fn revoked_still_accepted(
    code: &str,
    it: &NotRefused,
    hub: Option<&NotRefused>,
    store_lists: &Result<bool, String>,
    own: &Identity,
    cache: &CacheEvidence,
) -> Finding {
    let answered_as = match &cache.answered {
        Some(Reception::Accepted { subject: Some(s), .. }) => Some(s),
        _ => None,
    };
    if it.accepted
        && let Some(subject) = answered_as
        && !own.matches(subject)
        && cache.forged.as_ref().is_some_and(Reception::accepted)
    {
        return Finding::fail(format!(
            "{code} kept accepting the revoked token of {} and answered it as {subject}, another token's identity; a forgery with its header and issuer is accepted there too: the revocation check looked at the user and jti of a cached introspection answer ({})",
            own.unique_id, it.seen
        ))
        .defect(Defect::D11);
    }
    diagnose::revoked_token_not_refused(code, it, hub, store_lists)
}

/// The evidence of [`revoked_still_accepted`]: the revoked token presented for a resource it may
/// list, then a forgery of its header and issuer (signed by the suite's own key) for the same one.
pub async fn revocation_evidence(inst: &Instance, revoked: &str) -> CacheEvidence {
    let Ok(listed) = inst.resources(revoked, 1).await else {
        return CacheEvidence::default();
    };
    let Some(resource) = listed.first() else {
        return CacheEvidence::default();
    };
    let answered = inst.present(revoked, &resource.resource_id).await;
    let country = Identity::of_token(revoked).map(|i| i.country).unwrap_or_default();
    let forged = throwaway_key().ok().and_then(|(key, _)| {
        let who = Claimed {
            unique_id: format!("dive-resilience-forged-{}", random_hex()),
            clearance: TOP_SECRET.to_string(),
            country,
            jti: format!("dive-resilience-{}", random_hex()),
        };
        tokens::forged(revoked, &who, key).ok()
    });
    let forged = match forged {
        Some(token) => Some(inst.present(&token, &resource.resource_id).await),
        None => None,
    };
    CacheEvidence {
        answered: Some(answered),
        forged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(id: &str, clearance: &str) -> Identity {
        Identity {
            unique_id: id.to_string(),
            clearance: clearance.to_string(),
            country: "USA".to_string(),
        }
    }

    fn kit() -> Kit {
        let holder = |user: &str, clearance: &str| Holder {
            user: user.to_string(),
            token: String::new(),
            identity: identity(user, clearance),
        };
        Kit {
            low: holder("testuser-usa-1", "UNCLASSIFIED"),
            high: holder("testuser-usa-5", "TOP_SECRET"),
            forged: Claimed {
                unique_id: "forged".to_string(),
                clearance: "TOP_SECRET".to_string(),
                country: "USA".to_string(),
                jti: "j".to_string(),
            },
            targets: vec![Target {
                code: "USA".to_string(),
                resource: "doc-1".to_string(),
                top_secret: true,
            }],
        }
    }

    fn subject(id: Option<&str>, clearance: &str) -> Option<Subject> {
        Some(Subject {
            unique_id: id.map(str::to_string),
            clearance: Some(clearance.to_string()),
            country: Some("USA".to_string()),
        })
    }

    fn accepted(status: u16, s: Option<Subject>) -> Reception {
        Reception::Accepted { status, subject: s }
    }

    fn refused() -> Reception {
        Reception::Refused("Invalid token".to_string())
    }

    fn probe(craft: Craft, warm: Reception, cold: Cold, control: Option<Reception>) -> Probed {
        Probed {
            code: "USA".to_string(),
            craft,
            warm,
            cold,
            control,
        }
    }

    #[test]
    fn the_top_secret_user_is_the_fifth_of_the_seeded_users() {
        assert_eq!(top_secret_user("testuser-usa-1").as_deref(), Some("testuser-usa-5"));
        assert_eq!(top_secret_user("testuser-fra-3").as_deref(), Some("testuser-fra-5"));
        assert_eq!(top_secret_user("alice"), None);
        assert_eq!(top_secret_user("team-lead"), None);
    }

    #[test]
    fn refusals_everywhere_find_nothing() {
        let p = probe(Craft::Forged, refused(), Cold::Answered(refused()), None);
        assert_eq!(judge(&p, &kit(), None), None);
        let own = probe(Craft::AlgNone, refused(), Cold::OwnEntry, None);
        assert_eq!(judge(&own, &kit(), None), None);
    }

    #[test]
    fn d11_is_named_only_when_the_cache_entry_answered() {
        let low = subject(Some("testuser-usa-1"), "UNCLASSIFIED");
        // Accepted warm, refused cold: the entry answered.
        let p = probe(
            Craft::Forged,
            accepted(403, low.clone()),
            Cold::Answered(refused()),
            None,
        );
        let f = judge(&p, &kit(), None).expect("a finding");
        assert_eq!(f.defect, Some(Defect::D11));
        assert!(
            f.message.contains("testuser-usa-1's, whose valid token"),
            "{}",
            f.message
        );
        // Live: cold skipped, the reordered forgery refused: the entry answered.
        let skipped = probe(
            Craft::Forged,
            accepted(403, low.clone()),
            Cold::Skipped("why".to_string()),
            Some(refused()),
        );
        assert_eq!(judge(&skipped, &kit(), None).and_then(|f| f.defect), Some(Defect::D11));
        // Accepted cold too, or with any header: no check at all, not the cache.
        let everywhere = probe(
            Craft::Forged,
            accepted(200, subject(None, "TOP_SECRET")),
            Cold::Answered(accepted(200, None)),
            Some(refused()),
        );
        let f = judge(&everywhere, &kit(), None).expect("a finding");
        assert_eq!(f.defect, None, "{f}");
        let unexplained = probe(
            Craft::Forged,
            accepted(200, None),
            Cold::Skipped("why".to_string()),
            None,
        );
        assert_eq!(judge(&unexplained, &kit(), None).and_then(|f| f.defect), None);
        // A token with an entry of its own is never the cache's doing.
        let none = probe(Craft::AlgNone, accepted(200, None), Cold::OwnEntry, None);
        assert_eq!(judge(&none, &kit(), None).and_then(|f| f.defect), Some(Defect::R13));
    }

    #[test]
    fn missing_checks_are_named_by_what_was_accepted() {
        let expired = probe(
            Craft::Expired,
            accepted(403, None),
            Cold::Answered(accepted(403, None)),
            Some(refused()),
        );
        assert_eq!(judge(&expired, &kit(), None).and_then(|f| f.defect), Some(Defect::R14));
        let foreign = probe(Craft::Foreign, accepted(200, None), Cold::OwnEntry, None);
        assert_eq!(judge(&foreign, &kit(), None).and_then(|f| f.defect), Some(Defect::R15));
        // During a Keycloak outage, what steady state refused: the outage path skips the check.
        let forged = probe(
            Craft::Forged,
            accepted(200, subject(None, "TOP_SECRET")),
            Cold::OwnEntry,
            Some(accepted(200, None)),
        );
        let steady = refused();
        let f = judge(&forged, &kit(), Some((Service::Keycloak, &steady))).expect("a finding");
        assert_eq!(f.defect, Some(Defect::R12), "{f}");
        // ... but not when steady state accepted it too, nor during another outage.
        let also = accepted(200, None);
        assert_eq!(
            judge(&forged, &kit(), Some((Service::Keycloak, &also))).and_then(|f| f.defect),
            None
        );
        assert_eq!(
            judge(&forged, &kit(), Some((Service::CacheRedis, &steady))).and_then(|f| f.defect),
            None
        );
    }

    #[test]
    fn the_identity_check_names_d11_only_on_its_evidence() {
        let k = kit();
        assert_eq!(
            judge_identity(
                "USA",
                &k,
                &accepted(403, subject(Some("testuser-usa-1"), "UNCLASSIFIED")),
                None
            ),
            None
        );
        assert_eq!(judge_identity("USA", &k, &accepted(403, None), None), None);
        let as_high = accepted(200, subject(None, "TOP_SECRET"));
        let f = judge_identity("USA", &k, &as_high, Some(&accepted(403, None))).expect("a finding");
        assert_eq!(f.defect, Some(Defect::D11));
        assert!(f.message.contains("testuser-usa-5's"), "{}", f.message);
        let f = judge_identity("USA", &k, &as_high, Some(&refused())).expect("a finding");
        assert_eq!(f.defect, None, "no evidence of the cache: {f}");
        // Read as itself, yet allowed: wrong, but not the cache's doing.
        let own = accepted(200, subject(None, "UNCLASSIFIED"));
        let f = judge_identity("USA", &k, &own, Some(&accepted(403, None))).expect("a finding");
        assert_eq!(f.defect, None);
    }

    #[test]
    fn a_revoked_token_is_d11_only_when_answered_as_someone_else_and_a_forgery_passes() {
        let own = identity("testuser-usa-5", "TOP_SECRET");
        let as_itself = accepted(200, subject(None, "TOP_SECRET"));
        let as_other = accepted(403, subject(Some("testuser-usa-1"), "UNCLASSIFIED"));
        let forged = accepted(403, None);
        let accepting = NotRefused {
            accepted: true,
            seen: "still accepted (HTTP 200)".to_string(),
        };
        let evidence = |answered: &Reception, forged: &Reception| CacheEvidence {
            answered: Some(answered.clone()),
            forged: Some(forged.clone()),
        };
        let named = |hub: Option<&NotRefused>, store: Result<bool, String>, cache: &CacheEvidence| {
            revoked_still_accepted("FRA", &accepting, hub, &store, &own, cache).defect
        };
        assert_eq!(
            named(Some(&accepting), Ok(true), &evidence(&as_other, &forged)),
            Some(Defect::D11)
        );
        // 15a319e6 on a cache its own token filled: answered as itself, the hub accepts too: D5.
        assert_eq!(
            named(Some(&accepting), Ok(true), &evidence(&as_itself, &forged)),
            Some(Defect::D5)
        );
        // Another identity but forgeries refused: not the cache.
        assert_eq!(named(None, Ok(true), &evidence(&as_other, &refused())), None);
        assert_eq!(named(None, Ok(false), &CacheEvidence::default()), Some(Defect::R4));
    }
}
