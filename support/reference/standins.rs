//! Stand-ins for the dependencies of a DIVE backend that cannot run here: OPA, Keycloak, MongoDB
//! and KAS. Each answers exactly the probes and calls DIVE makes (contract sections 2, 3, 6), and
//! runs in a [`super::server::ControlledServer`] so it can be stopped, killed or paused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::infra::os::{random_hex, unix_now};
use crate::vocab::api::TokenAnswer;
use crate::vocab::authz::{CLASSIFICATIONS, rank};

/// Resources seeded per instance of the reference: at its time scales enough that traffic meant for
/// OPA finds decisions its decision cache does not hold (see `Traffic`).
pub const SEEDED_RESOURCES: usize = 1000;

/// Resources DIVE's `hub deploy` seeds per instance: the reference posing as a live DIVE seeds as
/// many.
pub const DIVE_SEEDED_RESOURCES: usize = 5000;

/// DIVE's seeding mix of classifications (20, 15, 25, 25 and 15 per cent), laid out evenly over
/// every 20 resources instead of drawn at random.
const MIX: [usize; 20] = [0, 2, 3, 1, 4, 0, 2, 3, 1, 2, 3, 4, 0, 2, 3, 1, 4, 0, 2, 3];

// ---------------------------------------------------------------- OPA

#[derive(Deserialize)]
struct DecisionInput {
    input: DecisionFacts,
}

#[derive(Deserialize, Serialize)]
pub struct DecisionFacts {
    pub clearance: String,
    pub classification: String,
}

/// OPA answering DIVE's decision query on `decision_path`.
pub fn opa(decision_path: &'static str) -> Router {
    Router::new().route("/health", get(|| async { Json(json!({})) })).route(
        decision_path,
        post(|Json(q): Json<DecisionInput>| async move {
            let allow = rank(&q.input.clearance) >= rank(&q.input.classification);
            let reason = if allow {
                "clearance sufficient"
            } else {
                "insufficient clearance"
            };
            Json(json!({ "result": { "allow": allow, "reason": reason } }))
        }),
    )
}

// ---------------------------------------------------------------- Keycloak

/// The signing key of `realm` and its public JWK, taken on the realm's first use from the pool of
/// test-only keys ([`crate::infra::keys`]) and kept for the process. Every realm signs with a key
/// of its own, as DIVE's realms do, so a spoke that accepts a hub token has verified it against
/// the hub realm's JWKS and no other. Realms are numbered in the order they first sign or serve
/// keys; a process sees at most the hub and 31 spokes, by name.
pub fn realm_key(realm: &str) -> Result<&'static (EncodingKey, Jwk), String> {
    static KEYS: OnceLock<Mutex<HashMap<String, &'static (EncodingKey, Jwk)>>> = OnceLock::new();
    let mut keys = KEYS
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| "realm keys: a key lookup panicked".to_string())?;
    if let Some(made) = keys.get(realm) {
        return Ok(made);
    }
    let key = crate::infra::keys::realm_key(keys.len())?;
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).map_err(|e| format!("JWK: {e}"))?;
    jwk.common.key_id = Some(format!("ref-{}", random_hex()));
    jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    // Kept for the process, like the realm it belongs to: leaked once per realm name.
    let made: &'static (EncodingKey, Jwk) = Box::leak(Box::new((key, jwk)));
    keys.insert(realm.to_string(), made);
    Ok(made)
}

/// Claims of the access tokens the reference Keycloak issues, named as DIVE's realms name them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub jti: String,
    pub exp: u64,
    pub iat: u64,
    pub azp: String,
    #[serde(rename = "uniqueID")]
    pub unique_id: String,
    pub clearance: String,
    pub country_of_affiliation: String,
}

/// Access-token lifespan of DIVE's realms.
pub const TOKEN_LIFESPAN_S: u64 = 900;

pub struct KeycloakRealm {
    pub realm: String,
    pub client_id: String,
    pub client_secret: String,
    pub user_prefix: String,
    pub password: String,
    pub country: String,
    /// Set once the server has its port.
    pub issuer: OnceLock<String>,
}

impl KeycloakRealm {
    pub fn for_instance(code: &str, password: &str) -> KeycloakRealm {
        let lower = code.to_lowercase();
        KeycloakRealm {
            realm: format!("dive-v3-broker-{lower}"),
            client_id: format!("dive-v3-broker-{lower}"),
            client_secret: random_hex(),
            user_prefix: format!("testuser-{lower}-"),
            password: password.to_string(),
            country: code.to_uppercase(),
            issuer: OnceLock::new(),
        }
    }

    fn clearance_of(&self, username: &str) -> Option<&'static str> {
        let n: usize = username.strip_prefix(&self.user_prefix)?.parse().ok()?;
        CLASSIFICATIONS.get(n.checked_sub(1)?).copied()
    }
}

#[derive(Deserialize)]
struct Grant {
    grant_type: String,
    client_id: String,
    client_secret: Option<String>,
    username: Option<String>,
    password: Option<String>,
    /// Test-only, the reference's own (Keycloak has no such parameter): `true` issues the token
    /// already expired, [`EXPIRED_BY_S`] past its `exp`, so the suite can present a genuinely
    /// issued expired token without waiting out a lifespan.
    test_only_expired: Option<String>,
}

/// How far past its `exp` a token issued with `test_only_expired=true` is: well beyond DIVE's
/// 30 s clock tolerance.
pub const EXPIRED_BY_S: u64 = 120;

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

async fn token(State(realm): State<Arc<KeycloakRealm>>, Path(name): Path<String>, Form(g): Form<Grant>) -> Response {
    if name != realm.realm {
        return oauth_error(StatusCode::NOT_FOUND, "Realm does not exist", &name);
    }
    if g.client_id != realm.client_id || g.client_secret.as_deref() != Some(realm.client_secret.as_str()) {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Invalid client or Invalid client credentials",
        );
    }
    if g.grant_type != "password" {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", &g.grant_type);
    }
    let username = g.username.unwrap_or_default();
    let clearance = match realm.clearance_of(&username) {
        Some(c) if g.password.as_deref() == Some(realm.password.as_str()) => c,
        _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_grant", "Invalid user credentials"),
    };
    let Some(issuer) = realm.issuer.get() else {
        return oauth_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "starting");
    };
    let (key, jwk) = match realm_key(&realm.realm) {
        Ok(k) => k,
        Err(e) => return oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e),
    };
    let expired = g.test_only_expired.as_deref() == Some("true");
    let now = unix_now();
    let issued = if expired {
        now - TOKEN_LIFESPAN_S - EXPIRED_BY_S
    } else {
        now
    };
    let claims = Claims {
        iss: issuer.clone(),
        sub: format!("{username}-sub"),
        jti: random_hex(),
        exp: issued + TOKEN_LIFESPAN_S,
        iat: issued,
        azp: realm.client_id.clone(),
        unique_id: username.clone(),
        clearance: clearance.to_string(),
        country_of_affiliation: realm.country.clone(),
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = jwk.common.key_id.clone();
    match jsonwebtoken::encode(&header, &claims, key) {
        Ok(access_token) => Json(TokenAnswer {
            access_token,
            expires_in: if expired { 0 } else { TOKEN_LIFESPAN_S },
            token_type: "Bearer".to_string(),
        })
        .into_response(),
        Err(e) => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", &e.to_string()),
    }
}

async fn certs(State(realm): State<Arc<KeycloakRealm>>, Path(name): Path<String>) -> Response {
    if name != realm.realm {
        return oauth_error(StatusCode::NOT_FOUND, "Realm does not exist", &name);
    }
    match realm_key(&realm.realm) {
        Ok((_, jwk)) => Json(JwkSet {
            keys: vec![jwk.clone()],
        })
        .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

#[derive(Deserialize)]
struct Introspect {
    token: String,
}

/// Keycloak's token introspection answer (RFC 7662), as the reference Keycloak gives it: only
/// `active: false` for a token it did not issue, or that is expired.
///
/// Whether a real DIVE realm's answer carries DIVE's own claims (`uniqueID`, `clearance`,
/// `countryOfAffiliation`) depends on each protocol mapper's "add to token introspection", which
/// DIVE's pinned Terraform provider leaves unsettled (DIVE's own code comments say they are
/// absent). The reference includes them: that is the case in which DIVE's cache (D11) serves a
/// later token with the identity of the token that filled the cache, at both commits, and lets a
/// revoked token through at HEAD, so the suite can show every consequence. Where they are absent,
/// HEAD takes them from the presented token, and the reference backend's code does the same.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(rename = "uniqueID", default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clearance: Option<String>,
    #[serde(rename = "countryOfAffiliation", default, skip_serializing_if = "Option::is_none")]
    pub country_of_affiliation: Option<String>,
}

impl Introspection {
    /// The answer for a token whose claims are these (a verified one).
    pub fn of(claims: &Claims) -> Introspection {
        Introspection {
            active: true,
            jti: Some(claims.jti.clone()),
            sub: Some(claims.sub.clone()),
            iss: Some(claims.iss.clone()),
            exp: Some(claims.exp),
            client_id: Some(claims.azp.clone()),
            username: Some(claims.unique_id.clone()),
            unique_id: Some(claims.unique_id.clone()),
            clearance: Some(claims.clearance.clone()),
            country_of_affiliation: Some(claims.country_of_affiliation.clone()),
        }
    }
}

/// Token introspection: active when this realm signed the token and it has not expired (Keycloak
/// allows no clock skew here). Any client may ask: DIVE's backends introspect at the token's
/// issuer with their own client.
async fn introspect(
    State(realm): State<Arc<KeycloakRealm>>,
    Path(name): Path<String>,
    Form(q): Form<Introspect>,
) -> Response {
    if name != realm.realm {
        return oauth_error(StatusCode::NOT_FOUND, "Realm does not exist", &name);
    }
    let verified = realm_key(&realm.realm).ok().and_then(|(_, jwk)| {
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).ok()?;
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_issuer(&[realm.issuer.get()?]);
        jsonwebtoken::decode::<Claims>(&q.token, &key, &validation).ok()
    });
    Json(verified.map_or_else(Introspection::default, |data| Introspection::of(&data.claims))).into_response()
}

/// Keycloak: direct grant, JWKS, discovery, introspection and the health paths DIVE probes.
pub fn keycloak(realm: Arc<KeycloakRealm>) -> Router {
    Router::new()
        .route("/health/ready", get(|| async { Json(json!({ "status": "UP" })) }))
        .route("/health", get(|| async { Json(json!({ "status": "UP" })) }))
        .route("/realms/master", get(|| async { Json(json!({ "realm": "master" })) }))
        .route("/realms/{realm}/protocol/openid-connect/token", post(token))
        .route(
            "/realms/{realm}/protocol/openid-connect/token/introspect",
            post(introspect),
        )
        .route("/realms/{realm}/protocol/openid-connect/certs", get(certs))
        .route(
            "/realms/{realm}/.well-known/openid-configuration",
            get(|State(realm): State<Arc<KeycloakRealm>>| async move {
                let issuer = realm.issuer.get().cloned().unwrap_or_default();
                Json(json!({
                    "issuer": issuer,
                    "token_endpoint": format!("{issuer}/protocol/openid-connect/token"),
                    "jwks_uri": format!("{issuer}/protocol/openid-connect/certs"),
                }))
            }),
        )
        .with_state(realm)
}

// ---------------------------------------------------------------- MongoDB

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredResource {
    pub resource_id: String,
    pub classification: String,
    pub encrypted: bool,
}

/// The resources of one instance's MongoDB: replaced wholesale when a deploy seeds (or does not).
pub type Collection = Arc<std::sync::RwLock<HashMap<String, StoredResource>>>;

/// The `count` resources DIVE's seeding gives instance `code`.
pub fn seed_resources(code: &str, count: usize) -> HashMap<String, StoredResource> {
    let docs = (1..=count).map(|n| {
        let id = format!("doc-{}-ref-{n:05}", code.to_uppercase());
        let doc = StoredResource {
            resource_id: id.clone(),
            classification: CLASSIFICATIONS[MIX[n % MIX.len()]].to_string(),
            encrypted: true,
        };
        (id, doc)
    });
    docs.collect()
}

/// A listing query: MongoDB's `find().sort({ resourceId: 1 }).skip(skip).limit(limit)`; no
/// `limit` means the whole collection.
#[derive(Debug, Default, Deserialize)]
pub struct Find {
    #[serde(default)]
    pub skip: usize,
    pub limit: Option<usize>,
}

/// What a listing query answers: the documents it found, and the size of the whole collection
/// (`countDocuments`, which DIVE asks beside the query of a page).
#[derive(Debug, Serialize, Deserialize)]
pub struct Found {
    pub total: usize,
    pub docs: Vec<StoredResource>,
}

/// MongoDB, reduced to the three operations the backend performs: ping, list (one page, or all)
/// and find by id. A page is cut here, in the store, as a MongoDB query cuts it: only the page
/// crosses the wire, so listing costs what a page holds, not what the collection does.
pub fn mongodb(resources: Collection) -> Router {
    Router::new()
        .route("/ping", get(|| async { Json(json!({ "ok": 1 })) }))
        .route(
            "/resources",
            get(|State(docs): State<Collection>, Query(find): Query<Find>| async move {
                let Ok(docs) = docs.read() else {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "collection lock poisoned").into_response();
                };
                let mut sorted: Vec<&StoredResource> = docs.values().collect();
                sorted.sort_unstable_by(|a, b| a.resource_id.cmp(&b.resource_id));
                let page = sorted
                    .into_iter()
                    .skip(find.skip)
                    .take(find.limit.unwrap_or(usize::MAX))
                    .cloned()
                    .collect();
                Json(Found {
                    total: docs.len(),
                    docs: page,
                })
                .into_response()
            }),
        )
        .route(
            "/resources/{id}",
            get(|State(docs): State<Collection>, Path(id): Path<String>| async move {
                match docs.read().ok().and_then(|d| d.get(&id).cloned()) {
                    Some(doc) => Json(doc).into_response(),
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            }),
        )
        .with_state(resources)
}

// ---------------------------------------------------------------- KAS

/// KAS: health and key release for encrypted resources.
pub fn kas() -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({ "status": "healthy" })) }))
        .route(
            "/keys/{id}",
            post(|Path(id): Path<String>| async move { Json(json!({ "resourceId": id, "wrappedKey": random_hex() })) }),
        )
}
