//! A live DIVE on this machine, as a [`Deployment`]: its instances found by probing (health base),
//! its secrets read from its containers, deploys through `./dive`. [`control`] faults it.

pub mod check;
pub mod control;

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, Url};

use crate::deployment::instance::{Credentials, DecisionClock, Instance};
use crate::deployment::monitors::Monitors;
use crate::deployment::silences::Silences;
use crate::deployment::{Deployment, sweep_ledger};
use crate::fault::Control;
use crate::fault::ledger::Ledger;
use crate::infra::config::{Config, LiveConfig, Secret, SpokeUrls};
use crate::infra::dive::Dive;
use crate::infra::exec::Exec;
use crate::infra::http::{Http, join};
use crate::infra::os::lock_file;
use crate::vocab::coalition::{self, HUB};
use crate::vocab::fault::Service;
use crate::vocab::finding::Finding;
use control::{LiveControl, STORE_URL_VAR, Store, container_name, parse_store_url};

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
        let prometheus = answering_scheme(&http, &live.prometheus, "/-/ready").await;
        let alertmanager = answering_scheme(&http, &live.alertmanager, "/-/ready").await;
        let mut monitors = Monitors::live(&prometheus, &alertmanager, http.clone(), &live.root, config.time_scale);
        let silences = if live.silence_alerts {
            let ledger = Ledger::new(&config.state_dir);
            let held = Silences::create(&monitors.alertmanager, &ledger, &live.trust, &config.run_id)
                .await
                .map_err(|e| {
                    Finding::precondition(format!("DIVE_SILENCE_ALERTS=1 but no silence could be made: {e}"))
                })?;
            monitors.silence = Some(held.id().to_string());
            Some(held)
        } else {
            None
        };
        let store = revocation_store(&live.container_runtime, live.revocation_store.as_deref()).await;
        let dive = Dive::new(&live.root, &config.dive_leaky_vars);
        let control: Arc<dyn Control> = Arc::new(LiveControl::new(
            &live.container_runtime,
            dive.clone(),
            store.clone(),
            config.time_scale,
        ));
        let ledger = Ledger::new(&config.state_dir);
        // Tokens always come from the hub's realm: the suite tests what hub-issued tokens do on spokes.
        let credentials = Credentials {
            realm: "dive-v3-broker-usa".to_string(),
            client_id: "dive-v3-broker-usa".to_string(),
            client_secret,
            user: live.user.clone(),
            password: live.password.clone(),
        };
        let spokes = match (with_spokes, live.discover_spokes) {
            (false, _) => Vec::new(),
            (true, false) => live.spokes.clone(),
            (true, true) => deployed_spokes(live).await?,
        };
        let mut sites = vec![(HUB.to_string(), live.hub_backend.clone())];
        sites.extend(spokes.iter().map(|s| (s.code.clone(), s.backend.clone())));
        let mut instances = Vec::new();
        for (code, backend) in sites {
            // What earlier test processes left in DIVE's decision cache, for this user here.
            let clock = config
                .state_dir
                .join("decisions")
                .join(format!("{code}-{}.json", live.user));
            instances.push(Instance {
                health_base: probe_health_base(&http, &backend).await?,
                time_scale: config.time_scale,
                code,
                backend,
                keycloak: live.hub_keycloak.clone(),
                credentials: credentials.clone(),
                http: http.clone(),
                decisions: DecisionClock::kept_in(clock),
                control: control.clone(),
                ledger: ledger.clone(),
                rehearsal: None,
            });
        }
        let found = format!(
            "live DIVE at {}: health API at {}, revocation store {}{}, Prometheus {}, AlertManager {}, rule files {}",
            live.hub_backend,
            instances.first().map_or("?", |i: &Instance| i.health_base.as_str()),
            store.container,
            if store.tls { " (TLS)" } else { "" },
            prometheus,
            alertmanager,
            if monitors.rule_files.is_empty() {
                format!("none at {}", monitors.rules_source)
            } else {
                monitors.rules_source.clone()
            }
        );
        eprintln!("{found}");
        let mut coalition = Vec::new();
        if with_spokes && live.discover_spokes {
            let running: Vec<&str> = spokes.iter().map(|s| s.code.as_str()).collect();
            eprintln!("DIVE_SPOKES=all: spokes running here: {}", running.join(", "));
            coalition = match instances[0].federation_status().await {
                Ok(status) => registry_differences(&status.registered_spokes(HUB), &running),
                Err(e) => vec![Finding::fail(format!(
                    "DIVE_SPOKES=all: the hub's registry (GET /api/federation/status) did not answer: {e}"
                ))],
            };
        }
        Ok(Deployment {
            target: format!("live DIVE at {}", live.hub_backend),
            time_scale: config.time_scale,
            instances,
            monitors: Some(monitors),
            ca_pem: None,
            cli: live.deploy.then_some(dive),
            live: true,
            dive_root: Some(live.root.clone()),
            // Dropped in order: the silence expires before the lock goes.
            keep: match silences {
                Some(held) => vec![Box::new(held), Box::new(lock)],
                None => vec![Box::new(lock)],
            },
            coalition,
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
        // HEAD's `spoke deploy` seeds users and resources only when asked (contract section 9).
        let head = self.hub().health_base == "/api/health";
        for spoke in self.spokes() {
            let mut args = vec!["spoke".to_string(), "deploy".to_string(), spoke.code.to_lowercase()];
            if head {
                args.push("--seed".to_string());
            }
            steps.push((spoke.code.clone(), args));
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

/// `DIVE_SPOKES=all`: the spokes whose backend container runs (`dive-spoke-<code>-backend`), among
/// every code DIVE knows; refused when none runs or when two would bind the same host port.
async fn deployed_spokes(live: &LiveConfig) -> Result<Vec<SpokeUrls>, Finding> {
    let listed = Exec::new(&live.container_runtime)
        .args(["ps", "--format", "{{.Names}}"])
        .must_succeed()
        .await
        .map_err(|e| Finding::precondition(format!("DIVE_SPOKES=all: cannot list DIVE's containers: {e}")))?;
    let running: Vec<&str> = listed.stdout.lines().map(str::trim).collect();
    let deployed: Vec<SpokeUrls> = live
        .spokes
        .iter()
        .filter(|s| running.contains(&container_name(&s.code, Service::Backend).as_str()))
        .cloned()
        .collect();
    if deployed.is_empty() {
        return Err(Finding::precondition(format!(
            "DIVE_SPOKES=all: no spoke backend runs here ({} lists no dive-spoke-<code>-backend); deploy a spoke or name spokes in DIVE_SPOKES",
            live.container_runtime
        )));
    }
    let site: Vec<&str> = std::iter::once(HUB)
        .chain(deployed.iter().map(|s| s.code.as_str()))
        .collect();
    if let Some(clash) = coalition::clashes(&site).into_iter().next() {
        return Err(Finding::precondition(format!(
            "DIVE_SPOKES=all: {clash}; name the spokes to test in DIVE_SPOKES"
        )));
    }
    Ok(deployed)
}

/// The spokes that run but that the hub's registry does not list, and those it lists that do not
/// run: each a finding, since the hub then federates with a spoke that is not there, or a spoke
/// runs that the hub does not know.
fn registry_differences(registered: &[String], running: &[&str]) -> Vec<Finding> {
    let mut found: Vec<Finding> = running
        .iter()
        .filter(|c| !registered.iter().any(|r| r == *c))
        .map(|c| {
            Finding::fail(format!(
                "spoke {c} runs here but the hub's federation registry does not list it"
            ))
        })
        .collect();
    found.extend(registered.iter().filter(|r| !running.contains(&r.as_str())).map(|r| {
        Finding::fail(format!(
            "the hub's federation registry lists spoke {r}, but no container of it runs here"
        ))
    }));
    found
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

/// The URL on the scheme that answers: DIVE serves Prometheus and AlertManager over HTTP at
/// 15a319e6 and HTTPS at HEAD. The given one is kept when it answers `probe`, or when neither does
/// (the pipeline preflight then says what it saw).
async fn answering_scheme(http: &Http, url: &Url, probe: &str) -> Url {
    let answers = |u: &Url| {
        let u = join(u, probe);
        async move {
            let request = http.request(Method::GET, &u).timeout(Duration::from_secs(10));
            // An HTTPS server answers a plain request too, with 400: only 2xx is an answer.
            http.text(request).await.is_ok_and(|(status, _, _)| status.is_success())
        }
    };
    if answers(url).await {
        return url.clone();
    }
    let mut other = url.clone();
    let flipped = if url.scheme() == "https" { "http" } else { "https" };
    if other.set_scheme(flipped).is_ok() && answers(&other).await {
        eprintln!("{url} does not answer; {other} does: using it");
        return other;
    }
    url.clone()
}

/// The revocation store the hub backend uses, from its `BLACKLIST_REDIS_URL` (container and TLS);
/// `named` (`DIVE_REVOCATION_STORE`) overrides the container. 15a319e6's store when the backend
/// does not say.
async fn revocation_store(runtime: &str, named: Option<&str>) -> Store {
    let backend = container_name(HUB, Service::Backend);
    let read = Exec::new(runtime)
        .args(["exec", &backend, "printenv", STORE_URL_VAR])
        .deadline(Duration::from_secs(20))
        .run()
        .await;
    let parsed = read
        .ok()
        .filter(|o| o.success())
        .and_then(|o| parse_store_url(&o.stdout));
    let Some((tls, host)) = parsed else {
        let store = Store::v15a();
        return Store {
            container: named.map_or(store.container, str::to_string),
            ..store
        };
    };
    if let Some(name) = named {
        return Store {
            container: name.to_string(),
            tls,
        };
    }
    // HEAD names the container itself (`shared-token-store`); 15a319e6 the compose service
    // (`redis-blacklist`, container `dive-hub-redis-blacklist`).
    for candidate in [host.clone(), format!("dive-hub-{host}")] {
        let exists = Exec::new(runtime)
            .args(["inspect", "-f", "{{.Name}}", &candidate])
            .deadline(Duration::from_secs(20))
            .run()
            .await
            .is_ok_and(|o| o.success());
        if exists {
            return Store {
                container: candidate,
                tls,
            };
        }
    }
    Store { container: host, tls }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spoke_on_one_side_of_the_registry_only_is_a_finding() {
        let registered = ["FRA".to_string(), "DEU".to_string()];
        assert!(registry_differences(&registered, &["FRA", "DEU"]).is_empty());
        let found: Vec<String> = registry_differences(&registered, &["FRA", "TST"])
            .into_iter()
            .map(|f| f.message)
            .collect();
        assert_eq!(
            found,
            [
                "spoke TST runs here but the hub's federation registry does not list it",
                "the hub's federation registry lists spoke DEU, but no container of it runs here",
            ]
        );
    }
}
