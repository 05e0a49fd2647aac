//! Health: the probes of every dependency, DIVE's overall status, and the health routes.

use super::*;

impl Backend {
    pub(super) async fn probe_http(&self, url: Url, timeout: Duration, up_within: Duration) -> ServiceHealth {
        let start = Instant::now();
        let result = self.get_ok(url, timeout).await;
        classify(result.map(|_| ()), start.elapsed(), up_within)
    }

    /// A ping that keeps trying a server it cannot reach, like the MongoDB driver's server
    /// selection: with the server stopped, the probe takes the whole patience before `down`.
    pub(super) async fn probe_mongodb(&self) -> ServiceHealth {
        let start = Instant::now();
        let url = join(&self.cfg.mongodb, "/ping");
        let patience = self.cfg.behaviour.mongo_ping_patience;
        let mut retry = tokio::time::interval(Duration::from_millis(100));
        let attempt = tokio::time::timeout(patience, async {
            let mut last = String::new();
            loop {
                retry.tick().await;
                match self.client.get(url.clone()).timeout(patience).send().await {
                    Ok(r) if r.status().is_success() => return Ok(()),
                    Ok(r) => return Err(format!("HTTP {}", r.status())),
                    // A stopped server refuses connections: the driver keeps selecting a server
                    // until its patience runs out, as DIVE's does.
                    Err(e) if e.is_connect() => last = e.to_string(),
                    Err(e) => return Err(if last.is_empty() { e.to_string() } else { last }),
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

    pub(super) async fn probe_keycloak(&self) -> ServiceHealth {
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

    pub(super) async fn probe_redis(&self, url: &str) -> ServiceHealth {
        let start = Instant::now();
        let result = redis_op(url, self.timeout(5000), |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await;
        classify(result.map(|_| ()), start.elapsed(), Duration::MAX)
    }

    pub(super) async fn detailed(&self) -> (StatusCode, Detailed) {
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
        let status = overall(&services, &self.cfg.behaviour);
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
            http_code: None,
        };
        (code, body)
    }

    pub(super) fn record_health_gauges(&self, s: &Services) {
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
}

/// `up` when fast enough, `degraded` when slow, `down` when failed.
pub(super) fn classify(result: Result<(), String>, took: Duration, up_within: Duration) -> ServiceHealth {
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
/// profile fixes D6, and OPA `down` ignored under R17.
pub(super) fn overall(s: &Services, behaviour: &Behaviour) -> Overall {
    let opa_down = s.opa.status == Probe::Down && !behaviour.opa_down_ignored;
    if s.mongodb.status == Probe::Down || opa_down {
        return Overall::Unhealthy;
    }
    let keycloak_down_degrades = behaviour.keycloak_down_degrades;
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

pub(super) async fn health_basic(State(b): State<Arc<Backend>>) -> Response {
    let (code, d) = b.detailed().await;
    (
        code,
        Json(json!({ "status": d.status, "timestamp": d.timestamp, "uptime": d.uptime })),
    )
        .into_response()
}

pub(super) async fn health_detailed(State(b): State<Arc<Backend>>) -> Response {
    let (code, d) = b.detailed().await;
    (code, Json(d)).into_response()
}

pub(super) async fn health_ready(State(b): State<Arc<Backend>>) -> Response {
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
