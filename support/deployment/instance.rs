//! One DIVE instance (the hub or a spoke) as the tests talk to it: its health API, its token
//! endpoint, its resources, revocation and federation routes, and the faults its services can take.
//! Whether those services are the reference's processes or a live DIVE's containers is hidden
//! behind the [`Control`] the instance was given.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};

use crate::deployment::rehearsal::Rehearsal;
use crate::fault::ledger::Ledger;
use crate::fault::{Control, FaultError, FaultGuard, Lockout};
use crate::infra::config::Secret;
use crate::infra::http::{Http, HttpError, join};
use crate::infra::poll::Pace;
use crate::vocab::api::{
    BlacklistCheck, Blacklisted, FederationHealth, FederationStatus, MAX_PAGE_SIZE, ResourceAnswer, ResourceList,
    ResourceSummary, Subject, TokenAnswer,
};
use crate::vocab::fault::{FaultKind, FaultSpec, Service};
use crate::vocab::finding::{Defect, Finding};
use crate::vocab::health::Detailed;

/// Health calls wait this long: with MongoDB stopped, v15a's detailed check takes 60-120 s.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(150);

/// When each resource was last decided for an instance's user (unix milliseconds): shared by every
/// traffic of that instance, so a scenario's traffic knows what the one before it left in DIVE's
/// decision cache. On a live DIVE it is kept in the state folder, for the next test process.
#[derive(Debug, Clone, Default)]
pub struct DecisionClock {
    decided: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
    file: Option<std::path::PathBuf>,
}

impl DecisionClock {
    /// A clock kept in `file` (read now, written by [`DecisionClock::save`]).
    pub fn kept_in(file: std::path::PathBuf) -> DecisionClock {
        let decided = std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        DecisionClock {
            decided: Arc::new(std::sync::Mutex::new(decided)),
            file: Some(file),
        }
    }

    /// How long ago `resource` was last decided, if ever.
    pub fn age(&self, resource: &str) -> Option<Duration> {
        let at = self.decided.lock().ok()?.get(resource).copied()?;
        Some(Duration::from_millis(
            crate::infra::os::unix_millis().saturating_sub(at),
        ))
    }

    pub fn decided_now(&self, resource: &str) {
        if let Ok(mut d) = self.decided.lock() {
            d.insert(resource.to_string(), crate::infra::os::unix_millis());
        }
    }

    /// Writes the clock to its file, when it has one.
    pub fn save(&self) {
        let Some(file) = &self.file else { return };
        let Ok(decided) = self.decided.lock() else { return };
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(text) = serde_json::to_string(&*decided) {
            let _ = std::fs::write(file, text);
        }
    }
}

/// Credentials for the direct grant of one realm.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub realm: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub user: String,
    pub password: Secret,
}

pub struct Instance {
    pub code: String,
    pub backend: Url,
    /// The Keycloak that issues this instance's tokens.
    pub keycloak: Url,
    /// Where this DIVE serves its health API: `/health` (v15a) or `/api/health` (HEAD).
    pub health_base: String,
    /// DIVE's timers on this instance, relative to DIVE's own (1 on a live DIVE).
    pub time_scale: f64,
    pub credentials: Credentials,
    pub(crate) http: Http,
    /// What this process knows of DIVE's decision cache for this instance's user.
    pub(crate) decisions: DecisionClock,
    pub(crate) control: Arc<dyn Control>,
    pub(crate) ledger: Ledger,
    /// Set in a dry run: faults are shown as the target's commands.
    pub(crate) rehearsal: Option<Arc<Rehearsal>>,
}

impl Instance {
    pub fn http(&self) -> &Http {
        &self.http
    }

    pub fn health_url(&self, leaf: &str) -> Url {
        join(&self.backend, &format!("{}{leaf}", self.health_base))
    }

    /// `GET {health}/detailed`, any status, with the long timeout that a down MongoDB needs. Scenario
    /// code reads health through `Scenario::detailed`, which also journals what changed.
    pub async fn detailed(&self) -> Result<Detailed, HttpError> {
        let answer = self
            .http
            .get::<Detailed>(&self.health_url("/detailed"), HEALTH_TIMEOUT)
            .await?;
        Ok(Detailed {
            http_code: Some(answer.status.as_u16()),
            ..answer.body
        })
    }

    /// A fresh access token for `user` through the direct grant (contract section 6).
    pub async fn token_for(&self, user: &str) -> Result<String, Finding> {
        Ok(self.token_answer(user, &[]).await?.access_token)
    }

    /// The token endpoint's whole answer for `user` (its lifespan too), with `extra` form fields.
    pub async fn token_answer(&self, user: &str, extra: &[(&str, &str)]) -> Result<TokenAnswer, Finding> {
        let c = &self.credentials;
        let url = join(
            &self.keycloak,
            &format!("/realms/{}/protocol/openid-connect/token", c.realm),
        );
        let mut form = vec![
            ("grant_type", "password"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.expose()),
            ("username", user),
            ("password", c.password.expose()),
        ];
        form.extend_from_slice(extra);
        let answer = self
            .http
            .json::<TokenAnswer>(self.http.request(Method::POST, &url).form(&form))
            .await
            .map_err(|e| match e {
                HttpError::Decode { status, body, .. } => Finding::precondition(format!(
                    "token request for {user} at {url} answered {status}: {body}; check DIVE_TEST_USER, DIVE_TEST_PASSWORD and DIVE_KEYCLOAK_CLIENT_SECRET"
                )),
                other => Finding::precondition(format!("token request failed: {other}; is Keycloak up at {}?", self.keycloak)),
            })?;
        Ok(answer.body)
    }

    /// `GET /api/resources/<resource>` with `token`: refused (401), or accepted (decided 200/403,
    /// or any other answer past authentication) and for whom DIVE says it decided.
    pub async fn present(&self, token: &str, resource: &str) -> Reception {
        let url = join(&self.backend, &format!("/api/resources/{resource}"));
        let request = self
            .http
            .request(Method::GET, &url)
            .bearer_auth(token)
            .timeout(Duration::from_secs(30));
        let (status, _, body) = match self.http.text(request).await {
            Ok(answer) => answer,
            Err(e) => return Reception::Failed(e.to_string()),
        };
        let answer: ResourceAnswer = serde_json::from_str(&body).unwrap_or_default();
        match status {
            StatusCode::UNAUTHORIZED => Reception::Refused(answer.message.unwrap_or(body)),
            StatusCode::OK | StatusCode::FORBIDDEN => Reception::Accepted {
                status: status.as_u16(),
                subject: answer.subject().cloned(),
            },
            other => Reception::Failed(format!("{url} answered {other}: {}", body.trim())),
        }
    }

    /// At least `wanted` of the resources `token` may see, where there are that many
    /// (`GET /api/resources`, page by page at HEAD, at most 20 pages a second); a precondition
    /// failure when listing does not work or lists nothing, since nothing could be authorized.
    pub async fn resources(&self, token: &str, wanted: usize) -> Result<Vec<ResourceSummary>, Finding> {
        let mut found: Vec<ResourceSummary> = Vec::new();
        let mut pace = Pace::new(Duration::from_millis(50));
        for page in 1.. {
            let mut url = join(&self.backend, "/api/resources");
            url.query_pairs_mut()
                .append_pair("page", &page.to_string())
                .append_pair("pageSize", &MAX_PAGE_SIZE.to_string());
            let list = self
                .http
                .json::<ResourceList>(self.http.request(Method::GET, &url).bearer_auth(token))
                .await
                .map_err(|e| Finding::precondition(format!("cannot list resources: {e}")))?;
            if !list.status.is_success() {
                return Err(Finding::precondition(format!("GET {url} answered {}", list.status)));
            }
            let listed = list.body.resources.len();
            for r in list.body.resources {
                if !found.iter().any(|f| f.resource_id == r.resource_id) {
                    found.push(r);
                }
            }
            // 15a319e6 lists everything at once; HEAD pages until `total`, filtering each page by
            // clearance (so a page can hold fewer than asked, even none).
            let last = match (list.body.total, list.body.page_size) {
                (Some(total), Some(size)) => page * size >= total,
                _ => true,
            };
            if last || found.len() >= wanted || (listed == 0 && list.body.total.is_none()) {
                break;
            }
            pace.next().await;
        }
        if found.is_empty() {
            return Err(Finding::precondition(format!(
                "GET {}/api/resources lists no resources this user may see: nothing to authorize (was the instance seeded? HEAD's `spoke deploy` seeds only with --seed)",
                self.backend.as_str().trim_end_matches('/')
            )));
        }
        Ok(found)
    }

    /// Whether `token` is accepted: `GET /api/resources` answers 200 (true) or 401 (false).
    pub async fn accepts(&self, token: &str) -> Result<bool, String> {
        self.access().accepts(token).await
    }

    /// A cheap, cloneable handle for checking tokens from concurrent tasks.
    pub fn access(&self) -> Access {
        Access {
            code: self.code.clone(),
            http: self.http.clone(),
            url: join(&self.backend, "/api/resources"),
        }
    }

    /// Revokes `token` here (`POST /api/auth/blacklist-token`, contract section 7).
    pub async fn revoke(&self, token: &str) -> Result<Blacklisted, Finding> {
        let url = join(&self.backend, "/api/auth/blacklist-token");
        let answer = self
            .http
            .json::<Blacklisted>(self.http.request(Method::POST, &url).bearer_auth(token))
            .await;
        match answer {
            Ok(a) if a.status.is_success() => Ok(a.body),
            Ok(a) => Err(Finding::fail(format!("{url} answered {}", a.status))),
            Err(e) => Err(Finding::fail(format!("revocation failed: {e}"))),
        }
    }

    /// `POST /api/blacklist/check`: whether this instance's revocation store lists `jti`.
    pub async fn lists_revoked(&self, jti: &str) -> Result<bool, String> {
        let url = join(&self.backend, "/api/blacklist/check");
        let request = self
            .http
            .request(Method::POST, &url)
            .json(&serde_json::json!({ "jti": jti }));
        let answer = self
            .http
            .json::<BlacklistCheck>(request)
            .await
            .map_err(|e| e.to_string())?;
        Ok(answer.body.is_blacklisted)
    }

    /// `GET /metrics`: the backend's own Prometheus text, as a scrape would read it.
    pub async fn metrics(&self) -> Result<String, String> {
        let url = join(&self.backend, "/metrics");
        let request = self.http.request(Method::GET, &url).timeout(Duration::from_secs(10));
        match self.http.text(request).await.map_err(|e| e.to_string())? {
            (status, _, body) if status.is_success() => Ok(body),
            (status, _, body) => Err(format!("{url} answered {status}: {body}")),
        }
    }

    /// `GET /api/federation/health` (the hub's view of its spokes).
    pub async fn federation_health(&self) -> Result<FederationHealth, String> {
        let url = join(&self.backend, "/api/federation/health");
        Ok(self
            .http
            .get::<FederationHealth>(&url, Duration::from_secs(10))
            .await
            .map_err(|e| e.to_string())?
            .body)
    }

    /// `GET /api/federation/status` (the hub's registry of its spokes).
    pub async fn federation_status(&self) -> Result<FederationStatus, String> {
        let url = join(&self.backend, "/api/federation/status");
        Ok(self
            .http
            .get::<FederationStatus>(&url, Duration::from_secs(10))
            .await
            .map_err(|e| e.to_string())?
            .body)
    }

    /// Records the lock-out a revocation of `user`'s token will cause, so that it is lifted even if
    /// the run dies; call it before revoking.
    pub fn lockout(&self, user: &str) -> Result<Lockout, Finding> {
        Lockout::record(self.control.clone(), user, &self.ledger)
            .map_err(|e| Finding::precondition(format!("cannot record the lock-out of {user}: {e}")))
    }

    /// Applies one fault to one of this instance's services.
    pub async fn fault(&self, service: Service, kind: FaultKind) -> Result<FaultGuard, Finding> {
        let spec = FaultSpec {
            instance: self.code.clone(),
            service,
            kind,
        };
        if let Some(rehearsal) = &self.rehearsal {
            let (apply, undo) = rehearsal.commands(&spec);
            let line = format!("DRY RUN: fault {spec}: would run `{apply}`, verify its effect, later `{undo}`");
            let _ = writeln!(std::io::stderr(), "{line}");
        }
        FaultGuard::apply(self.control.clone(), spec, &self.ledger)
            .await
            .map_err(|e| match e {
                // The CLI's own evidence: it exited 0 and the fault was not seen (D10).
                FaultError::CliNoEffect(text) => {
                    Finding::fail(format!("could not apply the fault: {text}")).defect(Defect::D10)
                }
                FaultError::Failed(text) => Finding::fail(format!("could not apply the fault: {text}")),
            })
    }
}

/// What an instance did with a token that asked for a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reception {
    /// 401, with DIVE's message.
    Refused(String),
    /// Past authentication: 200 or 403, decided for `subject` where the body says.
    Accepted { status: u16, subject: Option<Subject> },
    /// Neither: no answer, or a status that is not about the token.
    Failed(String),
}

impl Reception {
    pub fn accepted(&self) -> bool {
        matches!(self, Reception::Accepted { .. })
    }

    pub fn refused(&self) -> bool {
        matches!(self, Reception::Refused(_))
    }
}

impl std::fmt::Display for Reception {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reception::Refused(message) => write!(f, "HTTP 401 {message}"),
            Reception::Accepted {
                status,
                subject: Some(s),
            } => write!(f, "HTTP {status} as {s}"),
            Reception::Accepted { status, subject: None } => {
                write!(f, "HTTP {status} (the body does not say for whom)")
            }
            Reception::Failed(e) => f.write_str(e),
        }
    }
}

/// Token checks against one instance, usable from a spawned task.
#[derive(Clone)]
pub struct Access {
    pub code: String,
    http: Http,
    url: Url,
}

impl Access {
    pub async fn accepts(&self, token: &str) -> Result<bool, String> {
        let request = self.http.request(Method::GET, &self.url).bearer_auth(token);
        match self.http.text(request).await.map_err(|e| e.to_string())? {
            (status, _, _) if status.is_success() => Ok(true),
            (StatusCode::UNAUTHORIZED, _, _) => Ok(false),
            (status, _, body) => Err(format!("{}: {status} {body}", self.code)),
        }
    }
}
