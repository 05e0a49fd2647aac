//! A typed client of the Prometheus HTTP API subset the suite reads (contract section 5, 2.42):
//! alert rules, alerts, instant queries, scrape targets and the connected AlertManagers.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::infra::http::{Http, join};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Label set of a series or alert.
pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub struct Prometheus {
    pub base: Url,
    http: Http,
}

/// Prometheus's answer envelope: `data` on success, `error` otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    error: Option<String>,
    error_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RulesData {
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RuleGroup {
    pub name: String,
    pub file: String,
    pub rules: Vec<AlertRule>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AlertRule {
    pub name: String,
    pub query: String,
    /// The rule's `for`, in seconds.
    #[serde(default)]
    pub duration: f64,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    pub state: RuleState,
    #[serde(default)]
    pub alerts: Vec<Alert>,
}

/// The state of an alerting rule, or of one of its alerts, in Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleState {
    Inactive,
    Pending,
    Firing,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    pub state: RuleState,
    pub active_at: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct AlertsData {
    alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetsData {
    pub active_targets: Vec<Target>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub labels: Labels,
    pub scrape_pool: String,
    pub scrape_url: String,
    pub health: TargetHealth,
    #[serde(default)]
    pub last_error: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetHealth {
    Up,
    Down,
    Unknown,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertmanagersData {
    pub active_alertmanagers: Vec<AlertmanagerUrl>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AlertmanagerUrl {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryData {
    result_type: String,
    result: Vec<Sample>,
}

/// One sample of an instant vector: labels, then `[unix time, "value"]`.
#[derive(Debug, Clone, Deserialize)]
pub struct Sample {
    pub metric: Labels,
    pub value: (f64, String),
}

impl Sample {
    pub fn number(&self) -> Option<f64> {
        self.value.1.parse().ok()
    }
}

impl Prometheus {
    pub fn new(base: Url, http: Http) -> Prometheus {
        Prometheus { base, http }
    }

    async fn api<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, String> {
        let url = join(&self.base, path);
        let request = self.http.request(Method::GET, &url).query(query).timeout(TIMEOUT);
        let answer = self
            .http
            .json::<Envelope<T>>(request)
            .await
            .map_err(|e| format!("Prometheus {e}"))?;
        match answer.body {
            Envelope {
                data: Some(data),
                status,
                ..
            } if status == "success" => Ok(data),
            Envelope { error, error_type, .. } => Err(format!(
                "Prometheus {url} answered {}: {} {}",
                answer.status,
                error_type.unwrap_or_default(),
                error.unwrap_or_default()
            )),
        }
    }

    /// `GET /-/ready` answers 200.
    pub async fn ready(&self) -> Result<(), String> {
        self.http.get_ok(&join(&self.base, "/-/ready"), TIMEOUT).await
    }

    /// Every alerting rule loaded, with its state and alerts.
    pub async fn alert_rules(&self) -> Result<Vec<AlertRule>, String> {
        let data: RulesData = self.api("/api/v1/rules", &[("type", "alert")]).await?;
        Ok(data.groups.into_iter().flat_map(|g| g.rules).collect())
    }

    /// Every pending or firing alert.
    pub async fn alerts(&self) -> Result<Vec<Alert>, String> {
        Ok(self.api::<AlertsData>("/api/v1/alerts", &[]).await?.alerts)
    }

    pub async fn targets(&self) -> Result<Vec<Target>, String> {
        Ok(self
            .api::<TargetsData>("/api/v1/targets", &[("state", "active")])
            .await?
            .active_targets)
    }

    pub async fn alertmanagers(&self) -> Result<Vec<AlertmanagerUrl>, String> {
        Ok(self
            .api::<AlertmanagersData>("/api/v1/alertmanagers", &[])
            .await?
            .active_alertmanagers)
    }

    /// An instant query that must return a vector.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let data: QueryData = self.api("/api/v1/query", &[("query", promql)]).await?;
        if data.result_type != "vector" {
            return Err(format!("`{promql}` returned a {}, not a vector", data.result_type));
        }
        Ok(data.result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_answer_decodes() {
        let body = r#"{"status":"success","data":{"groups":[{"name":"g","file":"/r.yml","interval":1.5,
            "rules":[{"state":"firing","name":"CircuitBreakerOpen","query":"x == 2","duration":6,
            "labels":{"severity":"critical"},"annotations":{"summary":"s"},"alerts":[{"labels":{"alertname":"CircuitBreakerOpen"},
            "annotations":{},"state":"firing","activeAt":"2026-01-01T00:00:00Z","value":"2e+00"}],
            "health":"ok","type":"alerting"}]}]}}"#;
        let env: Envelope<RulesData> = serde_json::from_str(body).expect("decodes");
        let rule = &env.data.expect("data").groups[0].rules[0];
        assert_eq!((rule.state, rule.duration), (RuleState::Firing, 6.0));
        assert_eq!(rule.alerts[0].state, RuleState::Firing);
    }

    #[test]
    fn query_sample_reads_its_value() {
        let s: Sample = serde_json::from_str(r#"{"metric":{"__name__":"up"},"value":[1.5,"1"]}"#).expect("decodes");
        assert_eq!(s.number(), Some(1.0));
    }
}
