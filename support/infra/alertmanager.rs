//! A typed client of AlertManager's v2 API (0.25 and later): the alerts it holds, filtered by
//! matchers, with their state (`active`, `suppressed`) and what inhibits them; and posting the
//! suite's own synthetic alerts. A resolved alert is absent from the list.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};

use crate::infra::http::{Http, join};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The label every synthetic alert of the suite carries, so it can never be mistaken for DIVE's.
pub const SUITE_LABEL: &str = "dive_resilience_suite";

#[derive(Debug, Clone)]
pub struct AlertManager {
    pub base: Url,
    http: Http,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmState {
    Unprocessed,
    Active,
    Suppressed,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmStatus {
    pub state: AmState,
    #[serde(default)]
    pub silenced_by: Vec<String>,
    #[serde(default)]
    pub inhibited_by: Vec<String>,
    /// Only from 0.27 on.
    #[serde(default)]
    pub muted_by: Option<Vec<String>>,
}

/// One alert as `GET /api/v2/alerts` lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GettableAlert {
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    pub fingerprint: String,
    pub status: AmStatus,
}

impl GettableAlert {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }
}

/// One alert as `POST /api/v2/alerts` takes it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
}

impl AlertManager {
    pub fn new(base: Url, http: Http) -> AlertManager {
        AlertManager { base, http }
    }

    pub async fn ready(&self) -> Result<(), String> {
        self.http.get_ok(&join(&self.base, "/-/ready"), TIMEOUT).await
    }

    /// The alerts matching every `name="value"` matcher (active, suppressed and unprocessed).
    pub async fn alerts(&self, matchers: &[(&str, &str)]) -> Result<Vec<GettableAlert>, String> {
        let url = join(&self.base, "/api/v2/alerts");
        let filters: Vec<(&str, String)> = matchers
            .iter()
            .map(|(k, v)| ("filter", format!("{k}=\"{v}\"")))
            .collect();
        let request = self.http.request(Method::GET, &url).query(&filters).timeout(TIMEOUT);
        let answer = self
            .http
            .json::<Vec<GettableAlert>>(request)
            .await
            .map_err(|e| format!("AlertManager {e}"))?;
        if answer.status.is_success() {
            Ok(answer.body)
        } else {
            Err(format!("AlertManager {url} answered {}", answer.status))
        }
    }

    /// Silences the alerts named (`alertname` matching one of `names`) until `ends`, and returns the
    /// silence's id. The comment and creator say it is the suite's.
    pub async fn silence(&self, names: &[&str], ends: SystemTime, comment: &str) -> Result<String, String> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Created {
            #[serde(rename = "silenceID")]
            silence_id: String,
        }
        let url = join(&self.base, "/api/v2/silences");
        let body = serde_json::json!({
            "matchers": [{ "name": "alertname", "value": names.join("|"), "isRegex": true, "isEqual": true }],
            "startsAt": rfc3339(SystemTime::now()),
            "endsAt": rfc3339(ends),
            "createdBy": SUITE_LABEL,
            "comment": comment,
        });
        let request = self.http.request(Method::POST, &url).json(&body).timeout(TIMEOUT);
        let answer = self
            .http
            .json::<Created>(request)
            .await
            .map_err(|e| format!("AlertManager {e}"))?;
        if answer.status.is_success() {
            Ok(answer.body.silence_id)
        } else {
            Err(format!("POST {url} answered {}", answer.status))
        }
    }

    /// `DELETE /api/v2/silence/<id>` (the same path undoes it by hand).
    pub fn silence_url(&self, id: &str) -> Url {
        join(&self.base, &format!("/api/v2/silence/{id}"))
    }

    /// The state of silence `id`: `active`, `pending` or `expired`.
    pub async fn silence_state(&self, id: &str) -> Result<String, String> {
        #[derive(Deserialize)]
        struct Silence {
            status: State,
        }
        #[derive(Deserialize)]
        struct State {
            state: String,
        }
        let answer = self
            .http
            .get::<Silence>(&self.silence_url(id), TIMEOUT)
            .await
            .map_err(|e| format!("AlertManager {e}"))?;
        Ok(answer.body.status.state)
    }

    /// Expires the silence `id`.
    pub async fn unsilence(&self, id: &str) -> Result<(), String> {
        let url = self.silence_url(id);
        let (status, _, body) = self
            .http
            .text(self.http.request(Method::DELETE, &url).timeout(TIMEOUT))
            .await
            .map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("DELETE {url} answered {status}: {}", body.trim()))
        }
    }

    pub async fn post(&self, alerts: &[PostableAlert]) -> Result<(), String> {
        let url = join(&self.base, "/api/v2/alerts");
        let (status, _, body) = self
            .http
            .text(self.http.request(Method::POST, &url).json(alerts).timeout(TIMEOUT))
            .await
            .map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("POST {url} answered {status}: {}", body.trim()))
        }
    }
}

/// A synthetic alert of the suite: `labels` plus the suite's own label, valid for `lifetime`.
pub fn synthetic(run: &str, labels: &[(&str, &str)], lifetime: Duration) -> PostableAlert {
    let now = SystemTime::now();
    let mut all: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    all.insert(SUITE_LABEL.to_string(), run.to_string());
    PostableAlert {
        labels: all,
        annotations: BTreeMap::from([(
            "summary".to_string(),
            "synthetic alert of the DIVE resilience suite".to_string(),
        )]),
        starts_at: rfc3339(now),
        ends_at: rfc3339(now + lifetime),
    }
}

/// Resolves a synthetic alert at once (`endsAt` now, after its `startsAt`), so it leaves the list.
pub fn resolved(mut alert: PostableAlert) -> PostableAlert {
    alert.ends_at = rfc3339(SystemTime::now());
    alert
}

/// A UTC RFC 3339 timestamp with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn suppressed_alert_decodes_without_muted_by() {
        let body = r#"[{"labels":{"alertname":"HighCircuitBreakerRejects"},"annotations":{},
            "startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T00:05:00Z","updatedAt":"2026-01-01T00:00:00Z",
            "fingerprint":"ab","receivers":[{"name":"null"}],
            "status":{"state":"suppressed","silencedBy":[],"inhibitedBy":["cd"]}}]"#;
        let alerts: Vec<GettableAlert> = serde_json::from_str(body).expect("decodes");
        assert_eq!(alerts[0].status.state, AmState::Suppressed);
        assert_eq!(alerts[0].status.inhibited_by, vec!["cd".to_string()]);
        assert!(alerts[0].status.muted_by.is_none());
    }
}
