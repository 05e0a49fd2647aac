//! A live DIVE on this machine, as a [`Deployment`]: its instances found by probing (health base),
//! its secrets read from its containers, deploys through `./dive`. [`control`] faults it.

pub mod control;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, Url};

use crate::deployment::instance::{Credentials, Instance};
use crate::deployment::monitors::Monitors;
use crate::deployment::{Deployment, sweep_ledger};
use crate::fault::Control;
use crate::fault::ledger::Ledger;
use crate::infra::config::{Config, LiveConfig, Secret};
use crate::infra::dive::Dive;
use crate::infra::exec::Exec;
use crate::infra::http::{Http, join};
use crate::infra::os::lock_file;
use crate::vocab::coalition::HUB;
use crate::vocab::fault::Service;
use crate::vocab::finding::Finding;
use control::{LiveControl, container_name};

/// How long a live test waits for another live test (another process) to finish with the target.
const LOCK_DEADLINE: Duration = Duration::from_secs(3600);

impl Deployment {
    /// The live hub described by `config` (which need not be this process's configuration), with
    /// the configured spokes when `with_spokes`.
    pub async fn live(config: &Config, live: &LiveConfig, with_spokes: bool) -> Result<Deployment, Finding> {
        let lock = lock_file(&config.state_dir.join("live.lock"), "a live test", LOCK_DEADLINE)
            .await
            .map_err(Finding::precondition)?;
        sweep_ledger(config).await;
        let http = Http::for_trust(&live.trust).map_err(Finding::precondition)?;
        let client_secret = match &live.client_secret {
            Some(s) => s.clone(),
            None => {
                let read = Exec::new(&live.container_runtime)
                    .args([
                        "exec",
                        &container_name(HUB, Service::Backend),
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
        let monitors = Monitors::live(
            &live.prometheus,
            &live.alertmanager,
            http.clone(),
            &live.root,
            config.time_scale,
        );
        let dive = Dive::new(&live.root, &config.dive_leaky_vars);
        let control: Arc<dyn Control> = Arc::new(LiveControl::new(&live.container_runtime, dive.clone()));
        let ledger = Ledger::new(&config.state_dir);
        // Tokens always come from the hub's realm: the suite tests what hub-issued tokens do on spokes.
        let credentials = Credentials {
            realm: "dive-v3-broker-usa".to_string(),
            client_id: "dive-v3-broker-usa".to_string(),
            client_secret,
            user: live.user.clone(),
            password: live.password.clone(),
        };
        let mut sites = vec![(HUB.to_string(), live.hub_backend.clone())];
        if with_spokes {
            sites.extend(live.spokes.iter().map(|s| (s.code.clone(), s.backend.clone())));
        }
        let mut instances = Vec::new();
        for (code, backend) in sites {
            instances.push(Instance {
                health_base: probe_health_base(&http, &backend).await?,
                time_scale: config.time_scale,
                code,
                backend,
                keycloak: live.hub_keycloak.clone(),
                credentials: credentials.clone(),
                http: http.clone(),
                control: control.clone(),
                ledger: ledger.clone(),
                rehearsal: None,
            });
        }
        Ok(Deployment {
            target: format!("live DIVE at {}", live.hub_backend),
            time_scale: config.time_scale,
            instances,
            monitors: Some(monitors),
            ca_pem: None,
            cli: live.deploy.then_some(dive),
            _keep: Box::new(lock),
        })
    }

    /// Live, with `DIVE_LIVE_DEPLOY=1`: deploys the hub, then each spoke, through `./dive`, and
    /// says how long each took. `None` otherwise: the running deployment is checked as it is.
    /// (Never `./dive nuke`: at v15a it prunes every Docker volume of the host.)
    pub async fn deploy_through_cli(&self) -> Result<Option<Vec<(String, Duration)>>, Finding> {
        let Some(dive) = &self.cli else {
            return Ok(None);
        };
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
            let deploy = dive.clone().args(args).deadline(Duration::from_secs(1800)).exec();
            deploy
                .must_succeed()
                .await
                .map_err(|e| Finding::fail(format!("deploying {name} failed: {e}")))?;
            took.push((name, started.elapsed()));
        }
        Ok(Some(took))
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
