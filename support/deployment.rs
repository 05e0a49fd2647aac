//! The deployment under test, whatever the target: a set of DIVE instances (hub first) and the
//! means to fault their services. Tests talk to [`Deployment`] and [`Instance`] only; whether the
//! services are the reference's processes or a live DIVE's containers is decided here, once.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, Url};
use tokio::sync::OnceCell;

use crate::config::{Config, LiveConfig, Profile, Runtime, Secret, Target, Trust, must_config};
use crate::dive::{Dive, Exec};
use crate::fault::{FaultGuard, FaultKind, FaultSpec, Ledger, Service};
use crate::finding::{Defect, Finding};
use crate::http::{Http, HttpError, join};
use crate::model::{BlacklistCheck, Blacklisted, Breaker, BreakerStats, Detailed, FederationHealth, TokenAnswer};
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
    /// `./dive`, for faults on a whole spoke (`spoke down` / `spoke up`) and deploys.
    dive: Dive,
    /// The user allowed a clean-slate deploy (`DIVE_LIVE_DEPLOY=1`).
    deploy: bool,
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
            Control::Live(l) if spec.service == Service::Stack => {
                let down = l.dive.clone().instance(&spec.instance).args(["spoke", "down"]);
                down.exec().must_succeed().await.map(|_| ())
            }
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
            Control::Live(_) => {
                for argv in self.restore_argv(spec).unwrap_or_default() {
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
            Control::Live(l) if spec.service == Service::Stack => {
                let up = l.dive.clone().instance(&spec.instance).args(["spoke", "up"]);
                Some(vec![up.exec().argv_vec()])
            }
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

impl Control {
    /// Ends the lock-out a revocation leaves on `user` (contract section 7).
    pub async fn clear_user_revocation(&self, user: &str) -> Result<(), String> {
        match self {
            Control::Reference(r) => r.clear_user_revocation(user).await,
            Control::Live(l) => {
                let key = format!("user-revoked:{user}");
                let store = container_name("USA", Service::BlacklistRedis);
                Exec::new(&l.runtime)
                    .args(["exec", &store, "redis-cli", "DEL", &key])
                    .must_succeed()
                    .await
                    .map(|_| ())
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
    /// Set in a dry run: faults are shown as the target's commands.
    rehearsal: Option<Arc<Rehearsal>>,
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

    /// `POST /api/blacklist/check`: whether this instance's blacklist store lists `jti`.
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

    /// Ends the lock-out a revocation of `user` leaves behind.
    pub async fn clear_user_revocation(&self, user: &str) -> Result<(), String> {
        self.control.clear_user_revocation(user).await
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
            .map_err(|e| Finding::fail(format!("could not apply the fault: {e}")))
    }
}

/// What a dry run shows instead of faulting the target.
pub struct Rehearsal {
    /// The live target's container runtime and CLI; `None` when the target is the reference.
    live: Option<(String, Dive)>,
}

impl Rehearsal {
    /// The commands that would apply and undo `spec` on the target.
    fn commands(&self, spec: &FaultSpec) -> (String, String) {
        match &self.live {
            Some((_, dive)) if spec.service == Service::Stack => {
                let cli = |verb: &str| {
                    dive.clone()
                        .instance(&spec.instance)
                        .args(["spoke", verb])
                        .exec()
                        .argv()
                };
                (cli("down"), cli("up"))
            }
            Some((runtime, _)) => {
                let undo = if spec.kind == FaultKind::Pause {
                    "unpause"
                } else {
                    "start"
                };
                let container = container_name(&spec.instance, spec.service);
                (
                    format!("{runtime} {} {container}", spec.kind.verb()),
                    format!("{runtime} {undo} {container}"),
                )
            }
            None => (
                format!("{spec} (reference deployment control)"),
                format!("restore {spec}"),
            ),
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
            (status, _, _) if status == reqwest::StatusCode::UNAUTHORIZED => Ok(false),
            (status, _, body) => Err(format!("{}: {status} {body}", self.code)),
        }
    }
}

/// What a deployment is started with, beyond the hub.
#[derive(Debug, Clone, Copy)]
struct Shape {
    spokes: bool,
    monitored: bool,
}

impl Shape {
    const HUB: Shape = Shape {
        spokes: false,
        monitored: false,
    };
    const FEDERATION: Shape = Shape {
        spokes: true,
        monitored: false,
    };
    const MONITORED: Shape = Shape {
        spokes: false,
        monitored: true,
    };
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
            let ledger = Ledger::new(&config.state_dir);
            if config.dry_run {
                for fault in ledger.orphans() {
                    eprintln!("DRY RUN: the ledger lists {fault} left behind; a real run restores it first");
                }
                return;
            }
            for line in ledger.sweep().await {
                eprintln!("{line}");
            }
            crate::fault::restore_on_signal(ledger);
        })
        .await;
}

impl Deployment {
    /// The hub of the deployment the configuration names.
    pub async fn from_config() -> Result<Deployment, Finding> {
        Deployment::configured(Shape::HUB).await
    }

    /// The hub and the configured spokes (`DIVE_SPOKES`) of the deployment the configuration names.
    pub async fn federation() -> Result<Deployment, Finding> {
        Deployment::configured(Shape::FEDERATION).await
    }

    /// The deployment the configuration names, with Prometheus and AlertManager (phase 4.3).
    pub async fn from_config_monitored() -> Result<Deployment, Finding> {
        Deployment::configured(Shape::MONITORED).await
    }

    /// The live hub described by `config` (which need not be this process's configuration).
    pub async fn live_with(config: &Config) -> Result<Deployment, Finding> {
        match &config.target {
            Target::Live(live) => Deployment::live(config, live, false).await,
            Target::Reference(_) => Err(Finding::precondition("not a live configuration")),
        }
    }

    async fn configured(shape: Shape) -> Result<Deployment, Finding> {
        let config = must_config();
        if config.dry_run {
            return Deployment::rehearsal(config, shape).await;
        }
        match &config.target {
            Target::Reference(r) => {
                let runtime = r.runtime.unwrap_or_else(|| {
                    if crate::reference::redis::docker_daemon_answers(&config.docker_socket) {
                        Runtime::Docker
                    } else {
                        Runtime::Local
                    }
                });
                Deployment::reference_with(Behaviour::of(r.profile, config.reference_scale()), runtime, shape).await
            }
            Target::Live(live) => Deployment::live(config, live, shape.spokes).await,
        }
    }

    /// `DIVE_DRY_RUN=1`: the scenario runs on a private reference deployment, and every fault
    /// shows the command it would run on the configured target instead of running it there.
    async fn rehearsal(config: &Config, shape: Shape) -> Result<Deployment, Finding> {
        let (target, live) = match &config.target {
            Target::Live(live) => (
                format!("live DIVE at {}", live.hub_backend),
                Some((
                    live.container_runtime.clone(),
                    Dive::new(&live.root, &config.dive_leaky_vars),
                )),
            ),
            Target::Reference(r) => (format!("the reference deployment ({})", r.profile.name()), None),
        };
        let behaviour = Behaviour::of(Profile::Intended, config.reference_scale());
        let mut deployment = Deployment::reference_with(behaviour, Runtime::Local, shape).await?;
        let rehearsal = Arc::new(Rehearsal { live });
        for inst in &mut deployment.instances {
            inst.rehearsal = Some(rehearsal.clone());
        }
        deployment.target = format!(
            "DRY RUN of {target}: nothing is done to it; each step is rehearsed on a private reference deployment at time scale {}",
            deployment.time_scale
        );
        Ok(deployment)
    }

    /// A reference hub of `profile`, whatever the configured target (for self-checks).
    pub async fn reference(profile: Profile) -> Result<Deployment, Finding> {
        Deployment::reference_with_defects(profile, &[]).await
    }

    /// A monitored reference hub of `profile`, whatever the configured target (for self-checks).
    pub async fn reference_monitored(profile: Profile) -> Result<Deployment, Finding> {
        Deployment::reference_behaving(behaviour_with(profile, &[]), Shape::MONITORED).await
    }

    /// A reference hub of `profile` with reference-only defects added (for self-checks).
    pub async fn reference_with_defects(profile: Profile, defects: &[Defect]) -> Result<Deployment, Finding> {
        Deployment::reference_behaving(behaviour_with(profile, defects), Shape::HUB).await
    }

    /// A reference hub and the configured spokes, of `profile` plus reference-only defects.
    pub async fn reference_federation(profile: Profile, defects: &[Defect]) -> Result<Deployment, Finding> {
        Deployment::reference_behaving(behaviour_with(profile, defects), Shape::FEDERATION).await
    }

    async fn reference_behaving(behaviour: Behaviour, shape: Shape) -> Result<Deployment, Finding> {
        let runtime = match &must_config().target {
            Target::Reference(r) => r.runtime.unwrap_or(Runtime::Local),
            Target::Live(_) => Runtime::Local,
        };
        Deployment::reference_with(behaviour, runtime, shape).await
    }

    async fn reference_with(behaviour: Behaviour, runtime: Runtime, shape: Shape) -> Result<Deployment, Finding> {
        let config = must_config();
        sweep_ledger(config).await;
        let started = Instant::now();
        let defects = behaviour.defects();
        // Name the reference-only defects a self-check added, so its journal says what it ran.
        let added: Vec<String> = defects
            .iter()
            .filter(|d| format!("{d}").starts_with('R'))
            .map(|d| format!(" + {d}"))
            .collect();
        let profile = format!("{}{}", behaviour.profile.name(), added.concat());
        let spokes: Vec<&str> = if shape.spokes {
            config.spokes.iter().map(String::as_str).collect()
        } else {
            Vec::new()
        };
        let reference = Reference::start(
            behaviour,
            config.reference_scale(),
            runtime,
            &spokes,
            config.state_dir.join("reference"),
        )
        .await
        .map_err(Finding::precondition)?;
        let http = Http::trusting(reference.ca_pem.as_bytes()).map_err(Finding::precondition)?;
        let health_base = reference.behaviour.health_base.to_string();
        let monitors = if shape.monitored {
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
                rehearsal: None,
            })
            .collect();
        let deployment = Deployment {
            target: format!(
                "reference ({profile}, {runtime:?} runtime, time scale {})",
                config.reference_scale()
            ),
            time_scale: config.reference_scale(),
            defects,
            instances,
            monitors,
            _live_lock: None,
            control,
        };
        for inst in &deployment.instances {
            let what = format!("{} backend healthy", inst.code);
            let healthy = eventually(&what, Duration::from_millis(50), Duration::from_secs(30), || async {
                match inst.detailed().await {
                    Ok(d) if d.status == crate::model::Overall::Healthy => Ok(()),
                    Ok(d) => Err(d.summary()),
                    Err(e) => Err(e.to_string()),
                }
            });
            healthy
                .await
                .map_err(|t| Finding::precondition(format!("the reference deployment did not come up: {t}")))?;
        }
        if let Some(m) = &deployment.monitors {
            m.wait_ready().await?;
        }
        eprintln!("started {} in {}", deployment.target, secs(started.elapsed()));
        Ok(deployment)
    }

    async fn live(config: &Config, live: &LiveConfig, with_spokes: bool) -> Result<Deployment, Finding> {
        let lock = live_lock(config)?;
        sweep_ledger(config).await;
        let http = trust_client(&live.trust).map_err(Finding::precondition)?;
        let client_secret = match &live.client_secret {
            Some(s) => s.clone(),
            None => {
                let read = Exec::new(&live.container_runtime)
                    .args([
                        "exec",
                        &container_name("USA", Service::Backend),
                        "printenv",
                        "KEYCLOAK_CLIENT_SECRET",
                    ])
                    .must_succeed()
                    .await;
                let out = read.map_err(|e| {
                    Finding::precondition(format!(
                        "DIVE_KEYCLOAK_CLIENT_SECRET is not set and reading it from the hub backend failed: {e}"
                    ))
                })?;
                Secret::new(out.stdout.trim())
            }
        };
        let monitors = Monitors::live(&live.prometheus, &live.alertmanager, http.clone(), &live.root);
        let control = Arc::new(Control::Live(LiveControl {
            runtime: live.container_runtime.clone(),
            trust: live.trust.clone(),
            http: http.clone(),
            dive: Dive::new(&live.root, &config.dive_leaky_vars),
            deploy: live.deploy,
        }));
        let ledger = Ledger::new(&config.state_dir);
        // Tokens always come from the hub's realm: the suite tests what hub-issued tokens do on spokes.
        let credentials = Credentials {
            realm: "dive-v3-broker-usa".to_string(),
            client_id: "dive-v3-broker-usa".to_string(),
            client_secret,
            user: live.user.clone(),
            password: live.password.clone(),
        };
        let mut sites = vec![("USA".to_string(), live.hub_backend.clone(), live.hub_keycloak.clone())];
        if with_spokes {
            sites.extend(
                live.spokes
                    .iter()
                    .map(|s| (s.code.clone(), s.backend.clone(), s.keycloak.clone())),
            );
        }
        let mut instances = Vec::new();
        for (code, backend, keycloak) in sites {
            instances.push(Instance {
                health_base: probe_health_base(&http, &backend).await?,
                code,
                backend,
                keycloak: if instances.is_empty() {
                    keycloak
                } else {
                    live.hub_keycloak.clone()
                },
                credentials: credentials.clone(),
                http: http.clone(),
                control: control.clone(),
                ledger: ledger.clone(),
                rehearsal: None,
            });
        }
        Ok(Deployment {
            target: format!("live DIVE at {}", live.hub_backend),
            time_scale: 1.0,
            defects: Vec::new(),
            instances,
            monitors: Some(monitors),
            _live_lock: Some(lock),
            control,
        })
    }

    pub fn hub(&self) -> &Instance {
        &self.instances[0]
    }

    /// The instance with this code, as a precondition failure when there is none.
    pub fn instance(&self, code: &str) -> Result<&Instance, Finding> {
        self.instances
            .iter()
            .find(|i| i.code.eq_ignore_ascii_case(code))
            .ok_or_else(|| {
                Finding::precondition(format!("no instance {code} in this deployment; add it to DIVE_SPOKES"))
            })
    }

    /// Live, with `DIVE_LIVE_DEPLOY=1`: deploys the hub, then each spoke, through `./dive`, and
    /// says how long each took. `None` otherwise: the running deployment is checked as it is.
    /// (Never `./dive nuke`: at v15a it prunes every Docker volume of the host.)
    pub async fn deploy_through_cli(&self) -> Result<Option<Vec<(String, Duration)>>, Finding> {
        let Control::Live(live) = &*self.control else {
            return Ok(None);
        };
        if !live.deploy {
            return Ok(None);
        }
        let mut steps = vec![("hub".to_string(), vec!["hub".to_string(), "deploy".to_string()])];
        for spoke in self.spokes() {
            steps.push((
                spoke.code.clone(),
                vec!["spoke".to_string(), "deploy".to_string(), spoke.code.to_lowercase()],
            ));
        }
        let mut took = Vec::new();
        for (name, args) in steps {
            let started = Instant::now();
            let deploy = live.dive.clone().args(args).deadline(Duration::from_secs(1800)).exec();
            deploy
                .must_succeed()
                .await
                .map_err(|e| Finding::fail(format!("deploying {name} failed: {e}")))?;
            took.push((name, started.elapsed()));
        }
        Ok(Some(took))
    }

    pub fn spokes(&self) -> &[Instance] {
        &self.instances[1..]
    }

    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// The reference deployment's CA certificate (PEM), to point other clients at it.
    pub fn reference_ca_pem(&self) -> Option<&str> {
        match &*self.control {
            Control::Reference(r) => Some(&r.ca_pem),
            Control::Live(_) => None,
        }
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

fn behaviour_with(profile: Profile, defects: &[Defect]) -> Behaviour {
    defects
        .iter()
        .fold(Behaviour::of(profile, must_config().reference_scale()), |b, d| {
            b.with(*d)
        })
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
