//! Typed models of the JSON of DIVE's request API that the suite reads or serves: resources and
//! their authorization answers, revocation, federation health and the token endpoint (contract
//! sections 6, 7, 10). Field names are DIVE's, so the reference backend serialises the same types.

use serde::{Deserialize, Serialize};

/// `GET /api/resources`: at HEAD one page (`page`, `pageSize`, `total`); at 15a319e6 the whole
/// collection, without paging fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceList {
    pub resources: Vec<ResourceSummary>,
    /// The collection's size before the clearance filter (HEAD only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSummary {
    pub resource_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
}

/// DIVE's largest page of `GET /api/resources` at HEAD (`pageSize` is clamped to it).
pub const MAX_PAGE_SIZE: u64 = 100;

/// An authorization decision as DIVE writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Decision {
    Allow,
    Deny,
}

/// How a decision was reached: OPA's own details carry no `source`; the backend's local fallback
/// (OPA down, or its breaker OPEN) says `local-fallback`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EvaluationDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// What the local fallback writes in `evaluation_details.source`.
pub const LOCAL_FALLBACK: &str = "local-fallback";

/// Whom an answer was decided for, as DIVE writes it: `policyEvaluation.subject` carries the
/// clearance and country (and COIs), a denial's `details.subject` also the `uniqueID`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Subject {
    #[serde(rename = "uniqueID", default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clearance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_unsaid = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not said)".to_string());
        match &self.unique_id {
            Some(id) => write!(f, "{id}, "),
            None => Ok(()),
        }?;
        write!(
            f,
            "clearance {}, country {}",
            or_unsaid(&self.clearance),
            or_unsaid(&self.country)
        )
    }
}

/// `policyEvaluation` of a resource answer (contract section 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyEvaluation {
    pub decision: Decision,
    pub reason: String,
    #[serde(default)]
    pub evaluation_details: EvaluationDetails,
    /// HEAD: the answer came from the decision cache (OPA was not asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
}

/// `details` of a 403: DIVE's uncached denial nests the evaluation details; a denial from HEAD's
/// decision cache is the bare evaluation details and carries no `policyEvaluation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenialDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_details: Option<EvaluationDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Whom the (uncached) denial was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
}

/// The body of `GET /api/resources/:id`, 200, 403 and 401 alike, as far as the suite reads it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_evaluation: Option<PolicyEvaluation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<DenialDetails>,
    /// What a refusal says (`{"error":"Unauthorized","message":...}` on 401).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where a decided answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// OPA, through its breaker.
    Opa,
    /// The backend's local fallback: OPA failed or its breaker rejected the call.
    LocalFallback,
    /// HEAD's decision cache: neither OPA nor its breaker was involved.
    Cache,
}

impl ResourceAnswer {
    /// Whom the answer was decided for, where it says: a denial's `details.subject` (which
    /// names the user), else `policyEvaluation.subject`. HEAD's cached denial says nothing.
    pub fn subject(&self) -> Option<&Subject> {
        self.details
            .as_ref()
            .and_then(|d| d.subject.as_ref())
            .or_else(|| self.policy_evaluation.as_ref().and_then(|p| p.subject.as_ref()))
    }

    /// Who decided this answer (of a 200 or 403).
    pub fn decided_by(&self) -> DecidedBy {
        match &self.policy_evaluation {
            Some(p) if p.cached == Some(true) => DecidedBy::Cache,
            Some(p) if p.evaluation_details.source.as_deref() == Some(LOCAL_FALLBACK) => DecidedBy::LocalFallback,
            Some(_) => DecidedBy::Opa,
            // HEAD's cached denial is the only 403 without `policyEvaluation`; a fallback denial
            // names its source in the bare details.
            None if self.details.as_ref().and_then(|d| d.source.as_deref()) == Some(LOCAL_FALLBACK) => {
                DecidedBy::LocalFallback
            }
            None => DecidedBy::Cache,
        }
    }
}

/// `POST /api/auth/blacklist-token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blacklisted {
    pub message: String,
    pub jti: String,
    #[serde(rename = "uniqueID")]
    pub unique_id: String,
    pub ttl: u64,
}

/// `POST /api/blacklist/check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlacklistCheck {
    pub jti: String,
    pub is_blacklisted: bool,
}

/// `GET /api/federation/health` on the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederationHealth {
    pub healthy: bool,
    pub unhealthy_spokes: Vec<UnhealthySpoke>,
}

/// `GET /api/federation/status` on the hub (no authentication): its federation registry, one
/// entry per instance. At 15a319e6 the entries come from a static file, and those not registered
/// carry the status `unknown`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FederationStatus {
    pub instances: Vec<RegisteredInstance>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredInstance {
    pub code: String,
    #[serde(default)]
    pub status: Option<String>,
}

impl FederationStatus {
    /// The codes of the spokes registered with the hub (upper case), the hub itself left out.
    pub fn registered_spokes(&self, hub: &str) -> Vec<String> {
        self.instances
            .iter()
            .filter(|i| i.status.as_deref() != Some("unknown"))
            .map(|i| i.code.to_uppercase())
            .filter(|c| c != hub)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnhealthySpoke {
    pub spoke_id: String,
    pub instance_code: String,
    pub last_heartbeat: Option<String>,
}

/// The OAuth token endpoint's answer (direct grant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    pub expires_in: u64,
    pub token_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_leaves_out_the_hub_and_entries_of_unknown_status() {
        // 15a319e6 lists every instance of its static file; those never registered are `unknown`.
        let status: FederationStatus = serde_json::from_str(
            r#"{"instances":[{"code":"USA","status":"approved"},{"code":"fra","status":"approved"},
                {"code":"GBR","status":"unknown"},{"code":"DEU"}]}"#,
        )
        .expect("a registry answer");
        assert_eq!(status.registered_spokes("USA"), ["FRA", "DEU"]);
    }

    fn answer(body: &str) -> ResourceAnswer {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    #[test]
    fn who_decided_is_read_from_what_dive_sends() {
        let opa = r#"{"resourceId":"d","policyEvaluation":{"decision":"ALLOW","reason":"ok","evaluation_details":{"checks":{"clearance_sufficient":true}},"subject":{},"resource":{}}}"#;
        assert_eq!(answer(opa).decided_by(), DecidedBy::Opa);
        let fallback = r#"{"policyEvaluation":{"decision":"DENY","reason":"Insufficient clearance","evaluation_details":{"source":"local-fallback","clearance_check":"FAIL"}}}"#;
        assert_eq!(answer(fallback).decided_by(), DecidedBy::LocalFallback);
        let cached = r#"{"policyEvaluation":{"decision":"ALLOW","reason":"ok","evaluation_details":{},"cached":true,"cacheAge":1200}}"#;
        assert_eq!(answer(cached).decided_by(), DecidedBy::Cache);
        let cached_denial = r#"{"error":"Forbidden","message":"Insufficient clearance","details":{"checks":{}}}"#;
        assert_eq!(answer(cached_denial).decided_by(), DecidedBy::Cache);
        let uncached_denial = r#"{"error":"Forbidden","message":"Authorization check failed","reason":"r","details":{"evaluation_details":{}},"policyEvaluation":{"decision":"DENY","reason":"r","evaluation_details":{}}}"#;
        assert_eq!(answer(uncached_denial).decided_by(), DecidedBy::Opa);
    }

    #[test]
    fn a_listing_reads_with_and_without_paging() {
        let head: ResourceList = serde_json::from_str(
            r#"{"resources":[{"resourceId":"doc-USA-seed-1-00001","classification":"SECRET"}],"count":1,"total":5000,"page":1,"pageSize":50}"#,
        )
        .expect("HEAD's listing");
        assert_eq!((head.total, head.page_size), (Some(5000), Some(50)));
        let v15a: ResourceList =
            serde_json::from_str(r#"{"resources":[{"resourceId":"doc-USA-seed-1-00001"}],"count":1}"#).expect("v15a's");
        assert_eq!(v15a.total, None);
    }
}
