//! Resources: MongoDB through its pool and breaker, authorization through OPA (or the local
//! fallback), key release through KAS, and the resource routes.

use super::*;
use crate::infra::poll;

impl Backend {
    /// A MongoDB operation with its query parameters: one pooled connection, through the mongodb
    /// breaker when wired.
    pub(super) async fn mongo(
        &self,
        path: &str,
        query: &[(&str, u64)],
    ) -> Result<Option<reqwest::Response>, CallError> {
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
            match self.client.get(url).query(query).timeout(hang).send().await {
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

    /// Asks OPA (through its breaker) for a decision, or answers from the decision cache, or falls
    /// back to a local clearance check when OPA fails or its breaker rejects the call.
    pub(super) async fn decide(&self, claims: &Claims, doc: &StoredResource) -> Decided {
        // DIVE's key: user, resource, clearance, country; kept for a time set by the classification.
        let cache_key = format!(
            "{}:{}:{}:{}",
            claims.unique_id, doc.resource_id, claims.clearance, claims.country_of_affiliation
        );
        if self.cfg.behaviour.decision_cache
            && let Some((decision, reason, expires)) =
                self.decisions.lock().ok().and_then(|d| d.get(&cache_key).cloned())
            && Instant::now() < expires
        {
            let evaluation = PolicyEvaluation {
                decision,
                reason,
                evaluation_details: EvaluationDetails::default(),
                cached: Some(true),
                subject: Some(subject_of(claims)),
            };
            return Decided {
                evaluation,
                from_cache: true,
            };
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
        let opa = self
            .through(Breaker::Opa, !self.cfg.behaviour.opa_breaker_bypassed, call)
            .await;
        if matches!(opa, Err(CallError::Rejected)) && self.cfg.behaviour.open_breaker_waits {
            // R9: the breaker knows OPA is down, and the request waits for OPA all the same.
            poll::until(tokio::time::Instant::now() + self.timeout(5000)).await;
        }
        let (decision, reason, source) = match opa {
            Ok((allow, reason)) => {
                let decision = if allow { Decision::Allow } else { Decision::Deny };
                if self.cfg.behaviour.decision_cache
                    && let Ok(mut d) = self.decisions.lock()
                {
                    let ttl = cache_ttl(&doc.classification).mul_f64(self.cfg.time_scale);
                    d.insert(cache_key, (decision, reason.clone(), Instant::now() + ttl));
                }
                (decision, reason, None)
            }
            // OPA failed or its breaker rejected the call: DIVE decides locally, on clearance.
            Err(_) if rank(&claims.clearance) >= rank(&doc.classification) => (
                Decision::Allow,
                "All conditions satisfied (local fallback)".to_string(),
                Some(LOCAL_FALLBACK.to_string()),
            ),
            Err(_) => (
                Decision::Deny,
                "Insufficient clearance".to_string(),
                Some(LOCAL_FALLBACK.to_string()),
            ),
        };
        Decided {
            evaluation: PolicyEvaluation {
                decision,
                reason,
                evaluation_details: EvaluationDetails { source },
                cached: None,
                subject: Some(subject_of(claims)),
            },
            from_cache: false,
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

/// Whom a decision is for, as DIVE's `policyEvaluation.subject` says it: clearance and country,
/// not the user.
fn subject_of(claims: &Claims) -> Subject {
    Subject {
        unique_id: None,
        clearance: Some(claims.clearance.clone()),
        country: Some(claims.country_of_affiliation.clone()),
    }
}

/// A decision, and whether it came from the decision cache.
pub(super) struct Decided {
    evaluation: PolicyEvaluation,
    from_cache: bool,
}

/// The paging of `GET /api/resources` (HEAD).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Page {
    page: Option<u64>,
    page_size: Option<u64>,
}

/// `GET /api/resources`: the resources the user's clearance may see; at HEAD one page of the
/// collection, filtered after paging (so a page may hold fewer than `pageSize`), at 15a319e6 all.
pub(super) async fn list_resources(
    State(b): State<Arc<Backend>>,
    headers: HeaderMap,
    Query(q): Query<Page>,
) -> Response {
    let claims = match b.authenticate(&headers).await {
        Ok((_, claims)) => claims,
        Err(denied) => return denied,
    };
    if b.cfg.behaviour.failure_slows_listing && b.stats(Breaker::Opa).state != BreakerState::Closed {
        // R10: the listing never asks OPA, and waits as long as a request that does.
        poll::until(tokio::time::Instant::now() + b.timeout(5000)).await;
    }
    let page = q.page.unwrap_or(1).max(1);
    let page_size = q.page_size.unwrap_or(50).clamp(1, MAX_PAGE_SIZE);
    // HEAD asks MongoDB for one page (skip and limit); 15a319e6 for the whole collection.
    let query = match b.cfg.behaviour.listing {
        Listing::Paged => vec![("skip", (page - 1).saturating_mul(page_size)), ("limit", page_size)],
        Listing::Whole => Vec::new(),
    };
    let (total, shown) = match b.mongo("/resources", &query).await {
        Ok(Some(r)) => match r.json::<Found>().await {
            Ok(found) => (found.total as u64, found.docs),
            Err(e) => return server_error(e.to_string()),
        },
        Ok(None) => (0, Vec::new()),
        Err(e) => return server_error(e.to_string()),
    };
    let visible: Vec<ResourceSummary> = shown
        .into_iter()
        .filter(|d| rank(&d.classification) <= rank(&claims.clearance))
        .map(|d| ResourceSummary {
            resource_id: d.resource_id,
            classification: Some(d.classification),
        })
        .collect();
    let count = visible.len();
    let list = match b.cfg.behaviour.listing {
        Listing::Paged => {
            json!({ "resources": visible, "count": count, "total": total, "page": page, "pageSize": page_size })
        }
        Listing::Whole => json!({ "resources": visible, "count": count }),
    };
    Json(list).into_response()
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
    let doc = match b.mongo(&format!("/resources/{id}"), &[]).await {
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
    let Decided { evaluation, from_cache } = b.decide(&claims, &doc).await;
    if evaluation.decision == Decision::Deny {
        // HEAD answers a cached denial with the bare evaluation details and no policyEvaluation.
        let body = if from_cache {
            json!({ "error": "Forbidden", "message": evaluation.reason, "details": evaluation.evaluation_details })
        } else {
            // An uncached denial names whom it denied, the user included.
            let subject = Subject {
                unique_id: Some(claims.unique_id.clone()),
                ..subject_of(&claims)
            };
            json!({
                "error": "Forbidden",
                "message": "Authorization check failed",
                "reason": evaluation.reason,
                "details": {
                    "evaluation_details": evaluation.evaluation_details,
                    "subject": subject,
                    "resource": { "resourceId": doc.resource_id, "classification": doc.classification },
                },
                "policyEvaluation": evaluation,
            })
        };
        return (StatusCode::FORBIDDEN, Json(body)).into_response();
    }
    let key = b.release_key(&doc).await;
    Json(json!({
        "resourceId": doc.resource_id,
        "classification": doc.classification,
        "kasKey": key,
        "policyEvaluation": evaluation,
    }))
    .into_response()
}
