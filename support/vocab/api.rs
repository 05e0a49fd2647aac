//! Typed models of the JSON of DIVE's request API that the suite reads or serves: resources and
//! their authorization answers, revocation, federation health and the token endpoint (contract
//! sections 6, 7, 10). Field names are DIVE's, so the reference backend serialises the same types.

use serde::{Deserialize, Serialize};

/// `GET /api/resources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceList {
    pub resources: Vec<ResourceSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSummary {
    pub resource_id: String,
    #[serde(default)]
    pub classification: Option<String>,
}

/// Where an authorization decision came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluationDetails {
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyEvaluation {
    pub allow: bool,
    pub reason: String,
    pub evaluation_details: EvaluationDetails,
}

/// The body of `GET /api/resources/:id` (200 and 403 share what the suite reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAnswer {
    #[serde(default)]
    pub policy_evaluation: Option<PolicyEvaluation>,
    #[serde(default)]
    pub details: Option<PolicyEvaluation>,
}

impl ResourceAnswer {
    /// True when OPA was not consulted and the backend's local fallback decided.
    pub fn local_fallback(&self) -> bool {
        self.policy_evaluation
            .as_ref()
            .or(self.details.as_ref())
            .is_some_and(|p| p.evaluation_details.source == "local-fallback")
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
