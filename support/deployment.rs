//! The deployment under test, whatever the target: a set of DIVE instances (hub first) and the
//! means to fault their services. Tests talk to [`Deployment`] and [`Instance`] only; whether the
//! services are the reference's processes or a live DIVE's containers is decided here, once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use tokio::sync::OnceCell;

use crate::config::{Config, LiveConfig, Profile, Runtime, Secret, Target, Trust, must_config};
use crate::dive::Exec;
use crate::fault::{FaultGuard, FaultKind, FaultSpec, Ledger, Service};
use crate::finding::{Defect, Finding};
use crate::http::{Http, HttpError, join};
use crate::model::{Breaker, BreakerStats, Detailed, TokenAnswer};
use crate::monitor::Monitors;
use crate::poll::{eventually, secs};
use crate::reference::Reference;
use crate::reference::behaviour::Behaviour;
use crate::traffic::Traffic;

/// Health calls wait this long: with MongoDB stopped, v15a's detailed check takes 60-120 s.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(150);

/// Who does the faulting.
pub enum Control {
    Reference(Box<Reference>),
    Live(LiveControl),
}

pub struct LiveControl {
    runtime: String,
    trust: Trust,
    http: Http,
}

impl LiveControl {
    fn container(spec: &FaultSpec) -> String {
        container_name(&spec.instance, spec.service)
    }
}

/// DIVE's container name of a service (contract section 1).
pub fn container_name(instance: &str, service: Service) -> String {
    if instance.eq_ignore_ascii_case("USA") {
        format!("dive-hub-{}", service.container_suffix())
    } else {
        format!("dive-spoke-{}-{}", instance.to_lowercase(), service.container_suffix())
    }
}

impl Control {
    pub fn http(&self) -> Http {
        match self {
            Control::Reference(r) => {
                Http::trusting(r.ca_pem.as_bytes()).unwrap_or_else(|e| unreachable!("reference CA: {e}"))
            }
            Control::Live(l) => l.http.clone(),
        }
    }

    /// A client sharing no connection with any other runtime (for restores from `Drop`).
    pub fn fresh_http(&self) -> Result<Http, String> {
        match self {
            Control::Reference(r) => Http::trusting(r.ca_pem.as_bytes()),
            Control::Live(l) => trust_client(&l.trust),
        }
    }

    pub async fn apply(&self, spec: &FaultSpec) -> Result<(), String> {
        match self {
            Control::Reference(r) => r.apply(spec).await,
            Control::Live(l) => {
                Exec::new(&l.runtime)
                    .args([spec.kind.verb(), &LiveControl::container(spec)])
                    .must_succeed()
                    .await?;
                Ok(())
            }
        }
    }

    pub async fn restore(&self, spec: &FaultSpec) -> Result<(), String> {
        match self {
            Control::Reference(r) => r.restore(spec).await,
            Control::Live(l) => {
                for argv in self.restore_argv(spec).unwrap_or_default() {
                    let _ = l;
                    let (program, args) = argv.split_first().ok_or("empty restore command")?;
                    Exec::new(program).args(args.iter().cloned()).must_succeed().await?;
                }
                Ok(())
            }
        }
    }

    /// The commands that undo `spec`, for the ledger. `None` for the reference, whose processes
    /// die with the test that started them.
    pub fn restore_argv(&self, spec: &FaultSpec) -> Option<Vec<Vec<String>>> {
        match self {
            Control::Reference(_) => None,
            Control::Live(l) => {
                let verb = if spec.kind == FaultKind::Pause {
                    "unpause"
                } else {
                    "start"
                };
                Some(vec![vec![
                    l.runtime.clone(),
                    verb.to_string(),
                    LiveControl::container(spec),
                ]])
            }
        }
    }

    /// Whether the service answers: the reference probes it; live asks the container runtime
    /// for a running (and, where it has a healthcheck, healthy) container.
    pub async fn answers(&self, http: &Http, spec: &FaultSpec) -> Result<(), String> {
        match self {
            Control::Reference(r) => r.answers(http, spec).await,
            Control::Live(l) => {
                let format = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}";
                let out = Exec::new(&l.runtime)
                    .args(["inspect", "-f", format, &LiveControl::container(spec)])
                    .deadline(Duration::from_secs(20))
                    .must_succeed()
                    .await?;
                let state = out.stdout.trim().to_string();
                if state == "running" || state == "running healthy" {
                    Ok(())
                } else {
                    Err(state)
                }
            }
        }
    }
}

fn trust_client(trust: &Trust) -> Result<Http, String> {
    match trust {
        Trust::Insecure => Http::insecure(),
        Trust::CaBundle(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("DIVE_CA_CERT {}: {e}", path.display()))?;
            Http::trusting(&pem)
        }
    }
}

/// Credentials for the direct grant of one instance's realm.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub realm: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub user: String,
    pub password: Secret,
}

/// One DIVE instance (hub or spoke) as the tests see it.
pub struct Instance {
    pub code: String,
    pub backend: Url,
    pub keycloak: Url,
    /// Where this DIVE serves its health API: `/health` (v15a) or `/api/health` (HEAD).
    pub health_base: String,
    pub credentials: Credentials,
    http: Http,
    control: Arc<Control>,
    ledger: Ledger,
}

impl Instance {
    pub fn http(&self) -> &Http {
        &self.http
    }

    pub fn health_url(&self, leaf: &str) -> Url {
        join(&self.backend, &format!("{}{leaf}", self.health_base))
    }

    /// `GET {health}/detailed`, any status, with the long timeout that a down MongoDB needs.
    pub async fn detailed(&self) -> Result<Detailed, HttpError> {
        Ok(self
            .http
            .get::<Detailed>(&self.health_url("/detailed"), HEALTH_TIMEOUT)
            .await?
            .body)
    }

    pub async fn breaker(&self, breaker: Breaker) -> Result<BreakerStats, String> {
        let d = self.detailed().await.map_err(|e| e.to_string())?;
        d.circuit_breakers.map(|b| b.get(breaker)).ok_or_else(|| d.summary())
    }

    /// A fresh access token for `user` through the direct grant (contract section 6).
    pub async fn token_for(&self, user: &str) -> Result<String, Finding> {
        let c = &self.credentials;
        let url = join(
            &self.keycloak,
            &format!("/realms/{}/protocol/openid-connect/token", c.realm),
        );
        let form = [
            ("grant_type", "password"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.expose()),
            ("username", user),
            ("password", c.password.expose()),
        ];
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
        Ok(answer.body.access_token)
    }

    /// Authenticated traffic to `GET /api/resources/:id` as the configured user.
    pub async fn traffic(&self) -> Result<Traffic, Finding> {
        let token = self.token_for(&self.credentials.user).await?;
        Traffic::prepare(self.http.clone(), self.backend.clone(), token).await
    }

    /// Applies one fault to one of this instance's services.
    pub async fn fault(&self, service: Service, kind: FaultKind) -> Result<FaultGuard, Finding> {
        let spec = FaultSpec {
            instance: self.code.clone(),
            service,
            kind,
        };
        FaultGuard::apply(self.control.clone(), spec, &self.ledger)
            .await
            .map_err(|e| Finding::fail(format!("could not apply the fault: {e}")))
    }
}

/// The deployment under test.
pub struct Deployment {
    pub target: String,
    pub time_scale: f64,
    /// The defects this deployment reproduces (reference only; empty for live).
    pub defects: Vec<Defect>,
    instances: Vec<Instance>,
    /// Prometheus and AlertManager: always for live, on request for the reference.
    monitors: Option<Monitors>,
    _live_lock: Option<std::fs::File>,
    control: Arc<Control>,
}

static SWEPT: OnceCell<()> = OnceCell::const_new();

/// Restores what a killed earlier run left behind; once per process, before anything else.
async fn sweep_ledger(config: &Config) {
    SWEPT
        .get_or_init(|| async {
            for line in Ledger::new(&config.state_dir).sweep().await {
                eprintln!("{line}");
            }
        })
        .await;
}

impl Deployment {
    /// The deployment the configuration names.
    pub async fn from_config() -> Result<Deployment, Finding> {
        Deployment::configured(false).await
    }

    /// The deployment the configuration names, with Prometheus and AlertManager (phase 4.3).
    pub async fn from_config_monitored() -> Result<Deployment, Finding> {
        Deployment::configured(true).await
    }

    async fn configured(monitored: bool) -> Result<Deployment, Finding> {
        let config = must_config();
        match &config.target {
            Target::Reference(r) => {
                let runtime = r.runtime.unwrap_or_else(|| {
                    if crate::reference::redis::docker_daemon_answers(&config.docker_socket) {
                        Runtime::Docker
                    } else {
                        Runtime::Local
                    }
                });
                Deployment::reference_with(Behaviour::of(r.profile, config.time_scale), runtime, monitored).await
            }
            Target::Live(live) => Deployment::live(config, live).await,
        }
    }

    /// A reference deployment of `profile`, whatever the configured target (for self-checks).
    pub async fn reference(profile: Profile) -> Result<Deployment, Finding> {
        Deployment::reference_behaving(Behaviour::of(profile, must_config().time_scale)).await
    }

    /// A monitored reference deployment of `profile`, whatever the configured target (for self-checks).
    pub async fn reference_monitored(profile: Profile) -> Result<Deployment, Finding> {
        let behaviour = Behaviour::of(profile, must_config().time_scale);
        let runtime = match &must_config().target {
            Target::Reference(r) => r.runtime.unwrap_or(Runtime::Local),
            Target::Live(_) => Runtime::Local,
        };
        Deployment::reference_with(behaviour, runtime, true).await
    }

    /// A reference deployment of `profile` with reference-only defects added (for self-checks).
    pub async fn reference_with_defects(profile: Profile, defects: &[Defect]) -> Result<Deployment, Finding> {
        let mut behaviour = Behaviour::of(profile, must_config().time_scale);
        for d in defects {
            behaviour = behaviour.with(*d);
        }
        Deployment::reference_behaving(behaviour).await
    }

    async fn reference_behaving(behaviour: Behaviour) -> Result<Deployment, Finding> {
        let config = must_config();
        let runtime = match &config.target {
            Target::Reference(r) => r.runtime.unwrap_or(Runtime::Local),
            Target::Live(_) => Runtime::Local,
        };
        Deployment::reference_with(behaviour, runtime, false).await
    }

    async fn reference_with(behaviour: Behaviour, runtime: Runtime, monitored: bool) -> Result<Deployment, Finding> {
        let config = must_config();
        sweep_ledger(config).await;
        let started = Instant::now();
        let profile = behaviour.profile.name();
        let defects = behaviour.defects();
        let reference = Reference::start(
            behaviour,
            config.time_scale,
            runtime,
            &[],
            config.state_dir.join("reference"),
        )
        .await
        .map_err(Finding::precondition)?;
        let http = Http::trusting(reference.ca_pem.as_bytes()).map_err(Finding::precondition)?;
        let health_base = reference.behaviour.health_base.to_string();
        let monitors = if monitored {
            let local = reference.start_monitoring().await.map_err(Finding::precondition)?;
            Some(Monitors::local(local, http.clone(), config.time_scale))
        } else {
            None
        };
        let instances: Vec<_> = reference
            .instances
            .iter()
            .map(|i| (i.code.clone(), i.backend_url(), i.keycloak_url(), i.realm.clone()))
            .collect();
        let control = Arc::new(Control::Reference(Box::new(reference)));
        let ledger = Ledger::new(&config.state_dir);
        let instances = instances
            .into_iter()
            .map(|(code, backend, keycloak, realm)| Instance {
                credentials: Credentials {
                    realm: realm.realm.clone(),
                    client_id: realm.client_id.clone(),
                    client_secret: Secret::new(realm.client_secret.clone()),
                    user: format!("{}1", realm.user_prefix),
                    password: Secret::new(realm.password.clone()),
                },
                code,
                backend,
                keycloak,
                health_base: health_base.clone(),
                http: http.clone(),
                control: control.clone(),
                ledger: ledger.clone(),
            })
            .collect();
        let deployment = Deployment {
            target: format!(
                "reference ({profile}, {runtime:?} runtime, time scale {})",
                config.time_scale
            ),
            time_scale: config.time_scale,
            defects,
            instances,
            monitors,
            _live_lock: None,
            control,
        };
        for inst in &deployment.instances {
            eventually(
                &format!("{} backend healthy", inst.code),
                Duration::from_millis(50),
                Duration::from_secs(30),
                || async {
                    match inst.detailed().await {
                        Ok(d) if d.status == crate::model::Overall::Healthy => Ok(()),
                        Ok(d) => Err(d.summary()),
                        Err(e) => Err(e.to_string()),
                    }
                },
            )
            .await
            .map_err(|t| Finding::precondition(format!("the reference deployment did not come up: {t}")))?;
        }
        if let Some(m) = &deployment.monitors {
            m.wait_ready().await?;
        }
        eprintln!("started {} in {}", deployment.target, secs(started.elapsed()));
        Ok(deployment)
    }

    async fn live(config: &Config, live: &LiveConfig) -> Result<Deployment, Finding> {
        let lock = live_lock(config)?;
        sweep_ledger(config).await;
        let http = trust_client(&live.trust).map_err(Finding::precondition)?;
        let client_secret = match &live.client_secret {
            Some(s) => s.clone(),
            None => {
                let out = Exec::new(&live.container_runtime)
                    .args([
                        "exec",
                        &container_name("USA", Service::Backend),
                        "printenv",
                        "KEYCLOAK_CLIENT_SECRET",
                    ])
                    .must_succeed()
                    .await
                    .map_err(|e| {
                        Finding::precondition(format!(
                            "DIVE_KEYCLOAK_CLIENT_SECRET is not set and reading it from the hub backend failed: {e}"
                        ))
                    })?;
                Secret::new(out.stdout.trim())
            }
        };
        let health_base = probe_health_base(&http, &live.hub_backend).await?;
        let monitors = Monitors::live(&live.prometheus, &live.alertmanager, http.clone());
        let control = Arc::new(Control::Live(LiveControl {
            runtime: live.container_runtime.clone(),
            trust: live.trust.clone(),
            http: http.clone(),
        }));
        let hub = Instance {
            code: "USA".to_string(),
            backend: live.hub_backend.clone(),
            keycloak: live.hub_keycloak.clone(),
            health_base,
            credentials: Credentials {
                realm: "dive-v3-broker-usa".to_string(),
                client_id: "dive-v3-broker-usa".to_string(),
                client_secret,
                user: live.user.clone(),
                password: live.password.clone(),
            },
            http,
            control: control.clone(),
            ledger: Ledger::new(&config.state_dir),
        };
        Ok(Deployment {
            target: format!("live DIVE at {}", live.hub_backend),
            time_scale: 1.0,
            defects: Vec::new(),
            instances: vec![hub],
            monitors: Some(monitors),
            _live_lock: Some(lock),
            control,
        })
    }

    pub fn hub(&self) -> &Instance {
        &self.instances[0]
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// Prometheus and AlertManager of this deployment; a reference deployment has them only when
    /// it was started monitored.
    pub fn monitors(&self) -> Result<&Monitors, Finding> {
        self.monitors.as_ref().ok_or_else(|| {
            Finding::precondition(
                "this deployment was started without monitoring; use Deployment::from_config_monitored",
            )
        })
    }

    pub fn is_reference(&self) -> bool {
        matches!(*self.control, Control::Reference(_))
    }
}

/// Finds the health API by probing: `/api/health` (HEAD), then `/health` (v15a).
async fn probe_health_base(http: &Http, backend: &Url) -> Result<String, Finding> {
    let mut seen = Vec::new();
    for base in ["/api/health", "/health"] {
        let url = join(backend, &format!("{base}/live"));
        match http
            .text(http.request(Method::GET, &url).timeout(Duration::from_secs(10)))
            .await
        {
            Ok((status, _, _)) if status.is_success() => return Ok(base.to_string()),
            Ok((status, _, _)) => seen.push(format!("{url}: {status}")),
            Err(e) => seen.push(e.to_string()),
        }
    }
    Err(Finding::precondition(format!(
        "no DIVE health API at {backend} (tried /api/health and /health): {}; check HUB_BACKEND_URL and DIVE_CA_CERT",
        seen.join("; ")
    )))
}

/// Serializes live tests across threads and processes (cargo test and nextest alike): only one
/// test may fault a live DIVE at a time.
fn live_lock(config: &Config) -> Result<std::fs::File, Finding> {
    use std::os::fd::AsRawFd;
    let dir = &config.state_dir;
    std::fs::create_dir_all(dir).map_err(|e| Finding::precondition(format!("{}: {e}", dir.display())))?;
    let path = dir.join("live.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Finding::precondition(format!("{}: {e}", path.display())))?;
    // SAFETY: flock on a descriptor we own; blocks until the previous live test is done.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Finding::precondition(format!("cannot lock {}", path.display())));
    }
    Ok(file)
}
