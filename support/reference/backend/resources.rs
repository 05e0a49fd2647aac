//! Resources: MongoDB through its pool and breaker, authorization through OPA (or the local
//! fallback), key release through KAS, and the resource routes.

use super::*;

impl Backend {
    /// A MongoDB operation: one pooled connection, through the mongodb breaker when wired.
    pub(super) async fn mongo(&self, path: &str) -> Result<Option<reqwest::Response>, CallError> {
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

    pub(super) fn count_db_error(&self, kind: &'static str) {
        if let Ok(mut e) = self.db_errors.lock() {
            *e.entry(kind).or_default() += 1;
        }
    }

    pub(super) async fn decide(&self, claims: &Claims, doc: &StoredResource) -> PolicyEvaluation {
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
    pub(super) async fn release_key(&self, doc: &StoredResource) -> &'static str {
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

pub(super) fn evaluation(allow: bool, reason: String, source: &str) -> PolicyEvaluation {
    PolicyEvaluation {
        allow,
        reason,
        evaluation_details: EvaluationDetails {
            source: source.to_string(),
        },
    }
}

pub(super) async fn list_resources(State(b): State<Arc<Backend>>, headers: HeaderMap) -> Response {
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

pub(super) async fn get_resource(
    State(b): State<Arc<Backend>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
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
