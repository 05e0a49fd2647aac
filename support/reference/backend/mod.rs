//! The reference DIVE backend: the routes, JSON, status logic, breakers and metrics of DIVE's
//! Express backend (contract sections 2-4, 6, 7), with the defects of the chosen profile. This file
//! holds its state, its routes and what every part shares; each concern has a file of its own.

mod auth;
mod federation;
mod health;
mod metrics;
mod resources;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Url;
use serde_json::json;
use tokio::sync::Semaphore;

use crate::infra::http::join;
use crate::infra::os::unix_now;
use crate::reference::behaviour::{Behaviour, Listing};
use crate::reference::breaker::{Admission, CircuitBreaker};
use crate::reference::standins::{Claims, DecisionFacts, Found, Introspection, StoredResource};
use crate::vocab::api::{
    Decision, EvaluationDetails, LOCAL_FALLBACK, MAX_PAGE_SIZE, PolicyEvaluation, ResourceSummary, Subject,
};
use crate::vocab::authz::{cache_ttl, rank};
use crate::vocab::breaker::BreakerConfig;
use crate::vocab::health::{
    Breaker, BreakerState, BreakerStats, Breakers, CLOSED_IDLE, Detailed, Overall, Probe, ServiceHealth, Services,
};

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
    /// DIVE's introspection cache (D11): `introspect:<first 16 characters>:<issuer>` -> the
    /// answer and until when it is kept.
    introspections: Mutex<HashMap<String, (Introspection, Instant)>>,
    /// HEAD's decision cache: key -> decision, reason, expiry.
    decisions: Mutex<HashMap<String, CachedDecision>>,
    /// Hub: last heartbeat of each registered spoke.
    heartbeats: Mutex<HashMap<String, Instant>>,
}

/// A cached OPA decision: what, why, until when.
type CachedDecision = (Decision, String, Instant);

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
            let breaker = CircuitBreaker::new(
                cfg.behaviour
                    .breaker_quirk
                    .config(BreakerConfig::dive(b, cfg.time_scale)),
                cfg.behaviour.breaker_quirk,
            );
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
        introspections: Mutex::new(HashMap::new()),
        decisions: Mutex::new(HashMap::new()),
        heartbeats: Mutex::new(heartbeats),
    });
    tokio::spawn(poll_breaker_gauges(Arc::downgrade(&backend)));
    tokio::spawn(federation::send_heartbeats(Arc::downgrade(&backend)));
    Router::new()
        .route(base, get(health::health_basic))
        .route(&format!("{base}/detailed"), get(health::health_detailed))
        .route(&format!("{base}/ready"), get(health::health_ready))
        .route(
            &format!("{base}/live"),
            get(|| async { Json(json!({ "alive": true, "timestamp": timestamp() })) }),
        )
        .route("/metrics", get(metrics::metrics))
        .route("/api/resources", get(resources::list_resources))
        .route("/api/resources/{id}", get(resources::get_resource))
        .route("/api/auth/blacklist-token", post(auth::blacklist_token))
        .route("/api/blacklist/check", post(auth::blacklist_check))
        .route("/api/federation/heartbeat", post(federation::heartbeat))
        .route("/api/federation/health", get(federation::federation_health))
        .route("/api/federation/status", get(federation::federation_status))
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

impl Backend {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn stats(&self, b: Breaker) -> BreakerStats {
        self.breakers[&b]
            .lock()
            .map(|mut cb| cb.stats_at(self.now()))
            .unwrap_or(CLOSED_IDLE)
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
        // Whether another breaker is OPEN matters only to the R11 quirk; each lock is taken alone.
        let another_open = result.is_err()
            && Breaker::ALL
                .into_iter()
                .filter(|other| *other != b)
                .any(|other| self.stats(other).state == BreakerState::Open);
        if let Ok(mut cb) = self.breakers[&b].lock() {
            match &result {
                Ok(_) => cb.on_success(),
                Err(_) => cb.on_failure_beside(self.now(), another_open),
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

fn server_error(message: String) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": "Internal Server Error", "message": message })),
    )
        .into_response()
}
