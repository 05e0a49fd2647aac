//! The reference DIVE backend: the routes, JSON, status logic, breakers and metrics of DIVE's
//! Express backend (contract sections 2-4, 6, 7), with the defects of the chosen profile.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Url;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::http::join;
use crate::model::{
    Breaker, BreakerState, Breakers, Detailed, EvaluationDetails, Overall, PolicyEvaluation, Probe, ServiceHealth,
    Services,
};
use crate::reference::behaviour::Behaviour;
use crate::reference::breaker::{Admission, BreakerConfig, CircuitBreaker};
use crate::reference::standins::{Claims, DecisionFacts, StoredResource, rank, unix_now};

/// Connections in the backend's MongoDB pool.
pub const MONGO_POOL_SIZE: usize = 10;

/// Everything a backend needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub code: String,
    pub behaviour: Behaviour,
    pub time_scale: f64,
    pub opa: Url,
    pub keycloak: Url,
    pub mongodb: Url,
    pub kas: Url,
    pub cache_redis: String,
    pub blacklist_redis: String,
    pub realm: String,
    pub client_id: String,
    pub client_secret: String,
    /// Issuers whose tokens this backend accepts, with their JWKS URL.
    pub issuers: Vec<(String, Url)>,
    /// Client for outgoing calls, trusting the deployment's CA.
    pub client: reqwest::Client,
    /// Spokes: the hub backend they heartbeat to.
    pub hub: Option<Url>,
    /// Hub: the spokes registered with it.
    pub registered_spokes: Vec<String>,
}

struct Backend {
    cfg: BackendConfig,
    started: Instant,
    client: reqwest::Client,
    breakers: HashMap<Breaker, Mutex<CircuitBreaker>>,
    pool: Semaphore,
    /// Breaker gauges as last copied by the metrics poll (they lag the JSON, as DIVE's do).
    polled: Mutex<Vec<(Breaker, u8, u64)>>,
    /// Health gauges as of the last `/detailed` call.
    health_gauges: Mutex<Vec<(String, f64)>>,
    db_errors: Mutex<HashMap<&'static str, u64>>,
    jwks: Mutex<HashMap<String, (JwkSet, Instant)>>,
    decisions: Mutex<HashMap<(String, String), CachedDecision>>,
    /// Hub: last heartbeat of each registered spoke.
    heartbeats: Mutex<HashMap<String, Instant>>,
}

/// A cached OPA decision: allow, reason, when it was made.
type CachedDecision = (bool, String, Instant);

/// Why a call through a breaker did not return a value.
enum CallError {
    Rejected,
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Rejected => f.write_str("Circuit breaker is OPEN"),
            CallError::Failed(e) => f.write_str(e),
        }
    }
}

/// DIVE timeouts scaled, never below what a loopback round trip needs.
fn scaled(real: Duration, scale: f64) -> Duration {
    // A fresh loopback connection can take hundreds of milliseconds on a loaded two-core machine;
    // below a second, a busy machine would read as a dependency down.
    real.mul_f64(scale).max(Duration::from_secs(1))
}

/// Builds the backend's routes with fresh in-memory state (a restarted backend forgets its
/// breakers, as DIVE's does).
pub fn router(cfg: BackendConfig) -> Router {
    let breakers = Breaker::ALL
        .into_iter()
        .map(|b| {
            let breaker = CircuitBreaker::new(BreakerConfig::dive(b, cfg.time_scale), cfg.behaviour.breaker_quirk);
            (b, Mutex::new(breaker))
        })
        .collect();
    let base = cfg.behaviour.health_base;
    // The hub counts its registered spokes as heard from when it starts.
    let heartbeats = cfg
        .registered_spokes
        .iter()
        .map(|c| (c.clone(), Instant::now()))
        .collect();
    let backend = Arc::new(Backend {
        client: cfg.client.clone(),
        cfg,
        started: Instant::now(),
        breakers,
        pool: Semaphore::new(MONGO_POOL_SIZE),
        polled: Mutex::new(Breaker::ALL.iter().map(|b| (*b, 0, 0)).collect()),
        health_gauges: Mutex::new(Vec::new()),
        db_errors: Mutex::new(HashMap::new()),
        jwks: Mutex::new(HashMap::new()),
        decisions: Mutex::new(HashMap::new()),
        heartbeats: Mutex::new(heartbeats),
    });
    tokio::spawn(poll_breaker_gauges(Arc::downgrade(&backend)));
    tokio::spawn(send_heartbeats(Arc::downgrade(&backend)));
    Router::new()
        .route(base, get(health_basic))
        .route(&format!("{base}/detailed"), get(health_detailed))
        .route(&format!("{base}/ready"), get(health_ready))
        .route(
            &format!("{base}/live"),
            get(|| async { Json(json!({ "alive": true, "timestamp": timestamp() })) }),
        )
        .route("/metrics", get(metrics))
        .route("/api/resources", get(list_resources))
        .route("/api/resources/{id}", get(get_resource))
        .route("/api/auth/blacklist-token", post(blacklist_token))
        .route("/api/blacklist/check", post(blacklist_check))
        .route("/api/federation/heartbeat", post(heartbeat))
        .route("/api/federation/health", get(federation_health))
        .with_state(backend)
}

fn timestamp() -> String {
    format!("{}", unix_now())
}

/// DIVE copies breaker state into its gauges every 10 s.
async fn poll_breaker_gauges(backend: Weak<Backend>) {
    let period = match backend.upgrade() {
        Some(b) => Duration::from_secs(10).mul_f64(b.cfg.time_scale),
        None => return,
    };
    let mut every = tokio::time::interval(period);
    loop {
        every.tick().await;
        let Some(b) = backend.upgrade() else { return };
        let snapshot: Vec<_> = Breaker::ALL
            .iter()
            .map(|k| {
                let stats = b.stats(*k);
                (*k, stats.state.gauge(), stats.failures)
            })
            .collect();
        if let Ok(mut polled) = b.polled.lock() {
            *polled = snapshot;
        }
    }
}

/// A spoke heartbeats its hub every 30 s, as DIVE's spokes do.
async fn send_heartbeats(backend: Weak<Backend>) {
    let (period, hub) = match backend.upgrade() {
        Some(b) => match &b.cfg.hub {
            Some(hub) => (
                Duration::from_secs(30).mul_f64(b.cfg.time_scale),
                join(hub, "/api/federation/heartbeat"),
            ),
            None => return,
        },
        None => return,
    };
    let mut every = tokio::time::interval(period);
    loop {
        every.tick().await;
        let Some(b) = backend.upgrade() else { return };
        let beat = json!({ "instanceCode": b.cfg.code });
        // A missed heartbeat is what the hub's federation health is for: nothing to do here.
        let _ = b
            .client
            .post(hub.clone())
            .json(&beat)
            .timeout(b.timeout(5000))
            .send()
            .await;
    }
}

impl Backend {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn stats(&self, b: Breaker) -> crate::model::BreakerStats {
        self.breakers[&b]
            .lock()
            .map(|mut cb| cb.stats_at(self.now()))
            .unwrap_or(crate::model::CLOSED_IDLE)
    }

    fn timeout(&self, real_ms: u64) -> Duration {
        scaled(Duration::from_millis(real_ms), self.cfg.time_scale)
    }

    /// Runs `call` through breaker `b`, or straight when the profile leaves it unwired (D1).
    async fn through<T>(
        &self,
        b: Breaker,
        wired: bool,
        call: impl Future<Output = Result<T, String>>,
    ) -> Result<T, CallError> {
        if !wired {
            return call.await.map_err(CallError::Failed);
        }
        let admitted = self.breakers[&b]
            .lock()
            .map(|mut cb| cb.admit(self.now()))
            .unwrap_or(Admission::Rejected);
        if admitted == Admission::Rejected {
            return Err(CallError::Rejected);
        }
        let result = call.await;
        if let Ok(mut cb) = self.breakers[&b].lock() {
            match &result {
                Ok(_) => cb.on_success(),
                Err(_) => cb.on_failure(self.now()),
            }
        }
        result.map_err(CallError::Failed)
    }

    async fn get_ok(&self, url: Url, timeout: Duration) -> Result<reqwest::Response, String> {
        let resp = self
            .client
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(format!("HTTP {}", resp.status()))
        }
    }

    // ------------------------------------------------------------ health probes

    async fn probe_http(&self, url: Url, timeout: Duration, up_within: Duration) -> ServiceHealth {
        let start = Instant::now();
        let result = self.get_ok(url, timeout).await;
        classify(result.map(|_| ()), start.elapsed(), up_within)
    }

    /// A ping that keeps trying a server it cannot reach, like the MongoDB driver's server
    /// selection: with the server stopped, the probe takes the whole patience before `down`.
    async fn probe_mongodb(&self) -> ServiceHealth {
        let start = Instant::now();
        let url = join(&self.cfg.mongodb, "/ping");
        let patience = self.cfg.behaviour.mongo_ping_patience;
        let mut retry = tokio::time::interval(Duration::from_millis(100));
        let attempt = tokio::time::timeout(patience, async {
            let mut last = String::new();
            loop {
                retry.tick().await;
                match self.get_ok(url.clone(), patience).await {
                    Ok(_) => return Ok(()),
                    Err(e) if e.contains("connect") => last = e,
                    Err(e) => return Err(if last.is_empty() { e } else { last }),
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err("Server selection timed out".to_string()));
        // The ping uses a pooled connection too: the driver's pool counts its failure.
        if attempt.is_err() {
            self.count_db_error("connection");
        }
        classify(attempt, start.elapsed(), self.cfg.behaviour.up_within.mongodb)
    }

    async fn probe_keycloak(&self) -> ServiceHealth {
        let start = Instant::now();
        let mut error = String::new();
        for path in ["/health/ready", "/health", "/realms/master"] {
            match self.get_ok(join(&self.cfg.keycloak, path), self.timeout(2000)).await {
                Ok(_) => return classify(Ok(()), start.elapsed(), Duration::from_millis(500)),
                Err(e) => error = e,
            }
        }
        classify(Err(error), start.elapsed(), Duration::from_millis(500))
    }

    async fn probe_redis(&self, url: &str) -> ServiceHealth {
        let start = Instant::now();
        let result = redis_op(url, self.timeout(5000), |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await;
        classify(result.map(|_| ()), start.elapsed(), Duration::MAX)
    }

    async fn detailed(&self) -> (StatusCode, Detailed) {
        let up = self.cfg.behaviour.up_within;
        let (mongodb, opa, keycloak, redis, blacklist_redis, kas) = tokio::join!(
            self.probe_mongodb(),
            self.probe_http(join(&self.cfg.opa, "/health"), self.timeout(5000), up.opa),
            self.probe_keycloak(),
            self.probe_redis(&self.cfg.cache_redis),
            self.probe_redis(&self.cfg.blacklist_redis),
            self.probe_http(join(&self.cfg.kas, "/health"), self.timeout(5000), up.kas),
        );
        let services = Services {
            mongodb,
            opa,
            keycloak,
            redis,
            kas: Some(kas),
            cache: ServiceHealth {
                status: Probe::Up,
                response_time: Some(0.0),
                error: None,
            },
            blacklist_redis,
        };
        let status = overall(&services, self.cfg.behaviour.keycloak_down_degrades);
        self.record_health_gauges(&services);
        let breakers = Breakers {
            opa: self.stats(Breaker::Opa),
            keycloak: self.stats(Breaker::Keycloak),
            mongodb: self.stats(Breaker::Mongodb),
            kas: self.stats(Breaker::Kas),
        };
        let code = if status == Overall::Unhealthy {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        let body = Detailed {
            status,
            timestamp: timestamp(),
            uptime: Some(self.now().as_secs_f64()),
            services: Some(services),
            circuit_breakers: Some(breakers),
            error: None,
        };
        (code, body)
    }

    fn record_health_gauges(&self, s: &Services) {
        let v = |h: &ServiceHealth| match h.status {
            Probe::Up => 1.0,
            Probe::Degraded => 0.5,
            Probe::Down => 0.0,
        };
        let mut gauges = vec![
            ("dive_v3_service_health{service=\"mongodb\"}".to_string(), v(&s.mongodb)),
            ("dive_v3_service_health{service=\"opa\"}".to_string(), v(&s.opa)),
            (
                "dive_v3_service_health{service=\"keycloak\"}".to_string(),
                v(&s.keycloak),
            ),
            ("dive_v3_opa_health".to_string(), v(&s.opa)),
            (
                "dive_v3_mongodb_health".to_string(),
                if s.mongodb.status == Probe::Down { 0.0 } else { 1.0 },
            ),
            ("dive_v3_redis_health{cluster=\"cache\"}".to_string(), v(&s.redis)),
            (
                "dive_v3_redis_health{cluster=\"blacklist\"}".to_string(),
                v(&s.blacklist_redis),
            ),
        ];
        if let Some(kas) = &s.kas {
            gauges.push(("dive_v3_service_health{service=\"kas\"}".to_string(), v(kas)));
        }
        if let Ok(mut g) = self.health_gauges.lock() {
            *g = gauges;
        }
    }

    // ------------------------------------------------------------ requests

    async fn jwks(&self, issuer: &str, url: &Url) -> Result<JwkSet, String> {
        // DIVE caches JWKS for an hour: existing tokens keep validating while Keycloak is down.
        let ttl = if self.cfg.behaviour.jwks_uncached {
            Duration::ZERO
        } else {
            Duration::from_secs(3600).mul_f64(self.cfg.time_scale)
        };
        if let Some((set, at)) = self.jwks.lock().ok().and_then(|j| j.get(issuer).cloned())
            && at.elapsed() < ttl
        {
            return Ok(set);
        }
        let set: JwkSet = self
            .get_ok(url.clone(), self.timeout(5000))
            .await?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(mut j) = self.jwks.lock() {
            j.insert(issuer.to_string(), (set.clone(), Instant::now()));
        }
        Ok(set)
    }

    async fn authenticate(&self, headers: &HeaderMap) -> Result<(String, Claims), Response> {
        let unauthorized = |message: &str| {
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "Unauthorized", "message": message })),
            )
                .into_response()
        };
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("Missing authorization header"))?
            .to_string();
        let kid = jsonwebtoken::decode_header(&token)
            .ok()
            .and_then(|h| h.kid)
            .ok_or_else(|| unauthorized("Invalid token"))?;
        let mut claims = None;
        for (issuer, jwks_url) in &self.cfg.issuers {
            let Ok(set) = self.jwks(issuer, jwks_url).await else {
                continue;
            };
            let Some(key) = set.find(&kid).and_then(|jwk| DecodingKey::from_jwk(jwk).ok()) else {
                continue;
            };
            let mut validation = Validation::new(Algorithm::RS256);
            validation.set_issuer(&[issuer]);
            validation.validate_aud = false;
            if let Ok(data) = jsonwebtoken::decode::<Claims>(&token, &key, &validation) {
                claims = Some(data.claims);
                break;
            }
        }
        let claims = claims.ok_or_else(|| unauthorized("Invalid or expired token"))?;
        if self.cfg.behaviour.breakers_wired {
            // Session check against Keycloak; when it fails the locally verified token stands.
            let url = join(
                &self.cfg.keycloak,
                &format!("/realms/{}/protocol/openid-connect/token/introspect", self.cfg.realm),
            );
            let form = [
                ("token", token.as_str()),
                ("client_id", &self.cfg.client_id),
                ("client_secret", &self.cfg.client_secret),
            ];
            let call = async {
                let r = self
                    .client
                    .post(url)
                    .form(&form)
                    .timeout(self.timeout(2000))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", r.status()))
                }
            };
            let _ = self.through(Breaker::Keycloak, true, call).await;
        }
        if self.cfg.behaviour.revocation_enforced
            && let Some(message) = self.revoked(&claims).await
        {
            return Err(unauthorized(message));
        }
        Ok((token, claims))
    }

    /// The blacklist check of every authenticated request; fails open when the store is down.
    async fn revoked(&self, claims: &Claims) -> Option<&'static str> {
        let keys = (
            format!("blacklist:{}", claims.jti),
            format!("user-revoked:{}", claims.unique_id),
        );
        let found = redis_op(&self.cfg.blacklist_redis, self.timeout(1000), |mut c| async move {
            redis::pipe()
                .exists(&keys.0)
                .exists(&keys.1)
                .query_async::<(bool, bool)>(&mut c)
                .await
        })
        .await;
        match found {
            Ok((true, _)) => Some("Token has been revoked"),
            Ok((_, true)) => Some("User session has been terminated"),
            _ => None,
        }
    }

    /// A MongoDB operation: one pooled connection, through the mongodb breaker when wired.
    async fn mongo(&self, path: &str) -> Result<Option<reqwest::Response>, CallError> {
        let url = join(&self.cfg.mongodb, path);
        let wait = self.timeout(2000);
        let call = async {
            let _conn = match tokio::time::timeout(wait, self.pool.acquire()).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    self.count_db_error("pool_timeout");
                    return Err("MongoDB connection pool exhausted".to_string());
                }
            };
            // DIVE's driver sets no socket timeout: a hung MongoDB keeps the connection checked out
            // (which is how load exhausts the pool). Bounded so a forgotten pause cannot leak tasks.
            let hang = Duration::from_secs(600).mul_f64(self.cfg.time_scale);
            match self.client.get(url).timeout(hang).send().await {
                Ok(r) if r.status() == StatusCode::NOT_FOUND => Ok(None),
                Ok(r) if r.status().is_success() => Ok(Some(r)),
                Ok(r) => Err(format!("MongoDB answered {}", r.status())),
                Err(e) => {
                    self.count_db_error(if e.is_timeout() { "timeout" } else { "connection" });
                    Err(format!("MongoServerSelectionError: {e}"))
                }
            }
        };
        self.through(Breaker::Mongodb, self.cfg.behaviour.breakers_wired, call)
            .await
    }

    fn count_db_error(&self, kind: &'static str) {
        if let Ok(mut e) = self.db_errors.lock() {
            *e.entry(kind).or_default() += 1;
        }
    }

    async fn decide(&self, claims: &Claims, doc: &StoredResource) -> PolicyEvaluation {
        let cache_key = (claims.unique_id.clone(), doc.resource_id.clone());
        let cache_ttl = Duration::from_secs(120).mul_f64(self.cfg.time_scale);
        if self.cfg.behaviour.decision_cache
            && let Some((allow, reason, at)) = self.decisions.lock().ok().and_then(|d| d.get(&cache_key).cloned())
            && at.elapsed() < cache_ttl
        {
            return evaluation(allow, reason, "cache");
        }
        let facts = DecisionFacts {
            clearance: claims.clearance.clone(),
            classification: doc.classification.clone(),
        };
        let url = join(&self.cfg.opa, self.cfg.behaviour.opa_decision_path);
        let call = async {
            let r = self
                .client
                .post(url)
                .json(&json!({ "input": facts }))
                .timeout(self.timeout(5000))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("OPA answered {}", r.status()));
            }
            let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
            let allow = v["result"]["allow"].as_bool().ok_or("OPA result without allow")?;
            let reason = v["result"]["reason"].as_str().unwrap_or_default().to_string();
            Ok((allow, reason))
        };
        match self
            .through(Breaker::Opa, !self.cfg.behaviour.opa_breaker_bypassed, call)
            .await
        {
            Ok((allow, reason)) => {
                if self.cfg.behaviour.decision_cache
                    && doc.classification == "UNCLASSIFIED"
                    && let Ok(mut d) = self.decisions.lock()
                {
                    d.insert(cache_key, (allow, reason.clone(), Instant::now()));
                }
                evaluation(allow, reason, "opa")
            }
            Err(e) => {
                let allow = rank(&claims.clearance) >= rank(&doc.classification);
                evaluation(
                    allow,
                    format!("OPA unavailable ({e}); local clearance check"),
                    "local-fallback",
                )
            }
        }
    }

    /// Releases the key of an encrypted resource through the kas breaker (intended DIVE only).
    async fn release_key(&self, doc: &StoredResource) -> &'static str {
        if !self.cfg.behaviour.breakers_wired || !doc.encrypted {
            return "not-requested";
        }
        let url = join(&self.cfg.kas, &format!("/keys/{}", doc.resource_id));
        let call = async {
            let r = self
                .client
                .post(url)
                .timeout(self.timeout(5000))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(format!("KAS answered {}", r.status()))
            }
        };
        match self.through(Breaker::Kas, true, call).await {
            Ok(()) => "released",
            Err(_) => "unavailable",
        }
    }
}

fn evaluation(allow: bool, reason: String, source: &str) -> PolicyEvaluation {
    PolicyEvaluation {
        allow,
        reason,
        evaluation_details: EvaluationDetails {
            source: source.to_string(),
        },
    }
}

/// `up` when fast enough, `degraded` when slow, `down` when failed.
fn classify(result: Result<(), String>, took: Duration, up_within: Duration) -> ServiceHealth {
    let ms = took.as_secs_f64() * 1000.0;
    match result {
        Ok(()) => ServiceHealth {
            status: if took < up_within { Probe::Up } else { Probe::Degraded },
            response_time: Some(ms.round()),
            error: None,
        },
        Err(e) => ServiceHealth {
            status: Probe::Down,
            response_time: Some(ms.round()),
            error: Some(e),
        },
    }
}

/// DIVE's overall status (contract section 2), with Keycloak `down` degrading only where the
/// profile fixes D6.
fn overall(s: &Services, keycloak_down_degrades: bool) -> Overall {
    if s.mongodb.status == Probe::Down || s.opa.status == Probe::Down {
        return Overall::Unhealthy;
    }
    let slow = [&s.mongodb, &s.opa, &s.keycloak]
        .iter()
        .any(|h| h.status == Probe::Degraded);
    let redis_down = s.redis.status == Probe::Down || s.blacklist_redis.status == Probe::Down;
    let cache_bad = s.cache.status != Probe::Up;
    let keycloak_down = keycloak_down_degrades && s.keycloak.status == Probe::Down;
    if slow || redis_down || cache_bad || keycloak_down {
        Overall::Degraded
    } else {
        Overall::Healthy
    }
}

/// One Redis command on a fresh connection, bounded by `timeout` (a paused Redis accepts and
/// never answers).
async fn redis_op<T, F, Fut>(url: &str, timeout: Duration, op: F) -> Result<T, String>
where
    F: FnOnce(redis::aio::MultiplexedConnection) -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let work = async {
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        op(conn).await.map_err(|e| e.to_string())
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or_else(|_| Err("Redis timed out".to_string()))
}

// ---------------------------------------------------------------- handlers

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": "Bad Request", "message": message })),
    )
        .into_response()
}

/// `POST /api/auth/blacklist-token`: the bearer token is only decoded, then both keys are written.
async fn blacklist_token(State(b): State<Arc<Backend>>, headers: HeaderMap) -> Response {
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return bad_request("Missing token");
    };
    // DIVE only decodes the token here; it does not verify it.
    let Ok(data) = jsonwebtoken::dangerous::insecure_decode::<Claims>(token) else {
        return bad_request("Invalid token");
    };
    let claims = data.claims;
    let ttl = claims.exp.saturating_sub(unix_now()).max(60);
    let value = json!({ "jti": claims.jti, "uniqueID": claims.unique_id, "revokedAt": unix_now() }).to_string();
    let keys = (
        format!("blacklist:{}", claims.jti),
        format!("user-revoked:{}", claims.unique_id),
    );
    let written = redis_op(&b.cfg.blacklist_redis, b.timeout(5000), |mut c| async move {
        redis::pipe()
            .set_ex(&keys.0, &value, ttl)
            .set_ex(&keys.1, &value, ttl)
            .query_async::<()>(&mut c)
            .await
    })
    .await;
    match written {
        Ok(()) => {
            Json(json!({ "message": "Token blacklisted", "jti": claims.jti, "uniqueID": claims.unique_id, "ttl": ttl }))
                .into_response()
        }
        Err(e) => server_error(format!("blacklist store: {e}")),
    }
}

#[derive(serde::Deserialize)]
struct CheckRequest {
    jti: String,
}

/// `POST /api/blacklist/check`: no authentication.
async fn blacklist_check(State(b): State<Arc<Backend>>, Json(q): Json<CheckRequest>) -> Response {
    let key = format!("blacklist:{}", q.jti);
    let found = redis_op(&b.cfg.blacklist_redis, b.timeout(5000), |mut c| async move {
        redis::cmd("EXISTS").arg(&key).query_async::<bool>(&mut c).await
    })
    .await;
    // v15a's check fails closed when the store is down; HEAD's fails open.
    let listed = found.unwrap_or(!b.cfg.behaviour.revocation_enforced);
    Json(json!({ "jti": q.jti, "isBlacklisted": listed })).into_response()
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Heartbeat {
    instance_code: String,
}

async fn heartbeat(State(b): State<Arc<Backend>>, Json(h): Json<Heartbeat>) -> Response {
    if let Ok(mut beats) = b.heartbeats.lock() {
        beats.insert(h.instance_code.to_uppercase(), Instant::now());
    }
    Json(json!({ "success": true })).into_response()
}

/// `GET /api/federation/health`: a spoke is unhealthy after 90 s without a heartbeat.
async fn federation_health(State(b): State<Arc<Backend>>) -> Response {
    let silence = Duration::from_secs(90).mul_f64(b.cfg.time_scale);
    let beats = b.heartbeats.lock().map(|h| h.clone()).unwrap_or_default();
    let mut unhealthy: Vec<_> = beats
        .iter()
        .filter(|(_, at)| !b.cfg.behaviour.heartbeats_ignored && at.elapsed() > silence)
        .map(|(code, at)| {
            json!({
                "spokeId": format!("spoke-{}", code.to_lowercase()),
                "instanceCode": code,
                "lastHeartbeat": format!("{:.1} s ago", at.elapsed().as_secs_f64()),
            })
        })
        .collect();
    unhealthy.sort_by_key(|v| v["instanceCode"].as_str().map(str::to_string));
    Json(json!({ "healthy": unhealthy.is_empty(), "unhealthySpokes": unhealthy, "totalSpokes": beats.len() }))
        .into_response()
}

async fn health_basic(State(b): State<Arc<Backend>>) -> Response {
    let (code, d) = b.detailed().await;
    (
        code,
        Json(json!({ "status": d.status, "timestamp": d.timestamp, "uptime": d.uptime })),
    )
        .into_response()
}

async fn health_detailed(State(b): State<Arc<Backend>>) -> Response {
    let (code, d) = b.detailed().await;
    (code, Json(d)).into_response()
}

async fn health_ready(State(b): State<Arc<Backend>>) -> Response {
    let (_, d) = b.detailed().await;
    let Some(s) = d.services else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let checks = json!({
        "mongodb": s.mongodb.status != Probe::Down,
        "opa": s.opa.status != Probe::Down,
        "keycloak": s.keycloak.status != Probe::Down,
    });
    let ready = checks.as_object().is_some_and(|c| c.values().all(|v| v == true));
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({ "ready": ready, "checks": checks, "timestamp": timestamp() })),
    )
        .into_response()
}

fn server_error(message: String) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": "Internal Server Error", "message": message })),
    )
        .into_response()
}

async fn list_resources(State(b): State<Arc<Backend>>, headers: HeaderMap) -> Response {
    if let Err(denied) = b.authenticate(&headers).await {
        return denied;
    }
    match b.mongo("/resources").await {
        Ok(Some(r)) => match r.json::<Vec<StoredResource>>().await {
            Ok(docs) => {
                let list: Vec<_> = docs
                    .into_iter()
                    .map(|d| json!({ "resourceId": d.resource_id, "classification": d.classification }))
                    .collect();
                Json(json!({ "resources": list })).into_response()
            }
            Err(e) => server_error(e.to_string()),
        },
        Ok(None) => Json(json!({ "resources": [] })).into_response(),
        Err(e) => server_error(e.to_string()),
    }
}

async fn get_resource(State(b): State<Arc<Backend>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let claims = match b.authenticate(&headers).await {
        Ok((_, claims)) => claims,
        Err(denied) => return denied,
    };
    if b.cfg.behaviour.cache_outage_fails_authorization && b.probe_redis(&b.cfg.cache_redis).await.status == Probe::Down
    {
        return server_error("cache unavailable".to_string());
    }
    let doc = match b.mongo(&format!("/resources/{id}")).await {
        Ok(Some(r)) => match r.json::<StoredResource>().await {
            Ok(doc) => doc,
            Err(e) => return server_error(e.to_string()),
        },
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({ "error": "Not Found", "message": format!("Resource {id} not found") })),
            )
                .into_response();
        }
        Err(e) => return server_error(e.to_string()),
    };
    let decision = b.decide(&claims, &doc).await;
    if !decision.allow {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "Forbidden", "message": "Access denied", "details": decision })),
        )
            .into_response();
    }
    let key = b.release_key(&doc).await;
    Json(json!({
        "resourceId": doc.resource_id,
        "classification": doc.classification,
        "kasKey": key,
        "policyEvaluation": decision,
    }))
    .into_response()
}

async fn metrics(State(b): State<Arc<Backend>>) -> Response {
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
            rejects.push((format!("service=\"{k}\""), cb.stats().reject_count as f64));
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
        // Every error type from the start, at 0, so that `increase()` sees the first error.
        let counted = b.db_errors.lock().map(|e| e.clone()).unwrap_or_default();
        ["connection", "timeout", "pool_timeout"]
            .iter()
            .map(|k| {
                let n = counted.get(k).copied().unwrap_or(0);
                (format!("db_type=\"mongodb\",error_type=\"{k}\""), n as f64)
            })
            .collect()
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
