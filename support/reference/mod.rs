//! The reference deployment: a hermetic DIVE on loopback, started per test with ephemeral ports
//! and torn down on drop. Real Redis (cache, and the AOF-backed blacklist), reference backends
//! that keep DIVE's contract, and stand-ins for OPA, Keycloak, MongoDB and KAS. Its servers run
//! on a runtime of their own, so a test that blocks cannot stall the system under test.

pub mod backend;
pub mod behaviour;
pub mod breaker;
pub mod container;
pub mod deploy;
pub mod live_shaped;
pub mod monitoring;
pub mod pki;
pub mod ports;
pub mod redis;
pub mod server;
pub mod standins;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use reqwest::Url;

use crate::infra::config::Runtime;
use crate::infra::exec::{Spawner, runs};
use crate::infra::http::{Http, join};
use crate::infra::os::random_hex;
use crate::infra::poll::eventually;
use crate::vocab::coalition::{DEFAULT_TEST_PASSWORD, HUB, instance_label};
use crate::vocab::fault::{FaultKind, FaultSpec, Service};
use behaviour::Behaviour;
use redis::{DockerRedis, LocalRedis, Redis};
use server::ControlledServer;
use standins::KeycloakRealm;

/// One DIVE instance of the reference deployment (the hub or a spoke).
pub struct RefInstance {
    pub code: String,
    pub backend: Arc<ControlledServer>,
    pub opa: Arc<ControlledServer>,
    pub keycloak: Arc<ControlledServer>,
    pub mongodb: Arc<ControlledServer>,
    pub kas: Arc<ControlledServer>,
    pub cache: Arc<Redis>,
    pub realm: Arc<KeycloakRealm>,
    /// What its MongoDB holds.
    pub resources: standins::Collection,
    /// Only under reference defect R4: this instance's own blacklist store.
    pub own_blacklist: Option<Arc<Redis>>,
}

impl RefInstance {
    pub fn https(&self, server: &ControlledServer) -> Url {
        url(&format!("https://127.0.0.1:{}", server.addr().port()))
    }

    pub fn backend_url(&self) -> Url {
        self.https(&self.backend)
    }

    pub fn keycloak_url(&self) -> Url {
        self.https(&self.keycloak)
    }
}

fn url(text: &str) -> Url {
    Url::parse(text).unwrap_or_else(|e| unreachable!("loopback URL {text}: {e}"))
}

fn http_url(server: &ControlledServer) -> Url {
    url(&format!("http://127.0.0.1:{}", server.addr().port()))
}

pub struct Reference {
    runtime: Option<tokio::runtime::Runtime>,
    dir: PathBuf,
    pub ca_pem: String,
    /// The leaf every HTTPS server of the deployment presents.
    serve_tls: monitoring::ServeTls,
    pub behaviour: Behaviour,
    pub time_scale: f64,
    pub instances: Vec<RefInstance>,
    pub blacklist: Arc<Redis>,
    pub runtime_kind: Runtime,
    tls: RustlsConfig,
    client: reqwest::Client,
    spawner: Arc<Spawner>,
}

impl Reference {
    /// Starts the hub (code USA) and the given spokes.
    pub async fn start(
        behaviour: Behaviour,
        time_scale: f64,
        runtime_kind: Runtime,
        spokes: &[&str],
        temp_root: PathBuf,
    ) -> Result<Reference, String> {
        if runtime_kind == Runtime::Local && !runs("redis-server") {
            return Err("redis-server is not installed: install it (apt-get install -y redis-server), or start a Docker daemon (or set DIVE_REFERENCE_RUNTIME=docker) to run Redis in containers".to_string());
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("dive-reference")
            .enable_all()
            .build()
            .map_err(|e| format!("reference runtime: {e}"))?;
        crate::infra::crypto::install();
        let pki = pki::Pki::generate()?;
        let (cert, key) = (
            pki.leaf_cert_pem.clone().into_bytes(),
            pki.leaf_key_pem.clone().into_bytes(),
        );
        let tls = runtime
            .spawn(RustlsConfig::from_pem(cert, key))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("reference TLS: {e}"))?;
        let client = reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(pki.ca_pem.as_bytes()).map_err(|e| e.to_string())?)
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let dir = temp_root.join(format!("reference-{}-{}", std::process::id(), random_hex()));
        let spawner = Arc::new(Spawner::new());
        // Every Redis at once: one after another, a coalition of 31 spokes waited seconds for them.
        let codes: Vec<&str> = std::iter::once(HUB).chain(spokes.iter().copied()).collect();
        let stores: Vec<(String, bool)> = std::iter::once(("blacklist".to_string(), true))
            .chain(codes.iter().map(|c| (format!("cache-{}", c.to_lowercase()), false)))
            .collect();
        let mut started = futures_util::future::try_join_all(
            stores
                .iter()
                .map(|(name, aof)| start_redis(runtime_kind, runtime.handle(), &dir, name, *aof, &spawner)),
        )
        .await?
        .into_iter();
        let blacklist = started.next().ok_or("no blacklist store started")?;
        let mut caches = started;
        let mut reference = Reference {
            runtime: Some(runtime),
            dir,
            ca_pem: pki.ca_pem,
            serve_tls: monitoring::ServeTls {
                cert_pem: pki.leaf_cert_pem,
                key_pem: pki.leaf_key_pem,
            },
            behaviour,
            time_scale,
            instances: Vec::new(),
            blacklist: Arc::new(blacklist),
            runtime_kind,
            tls,
            client,
            spawner,
        };
        let registered: Vec<String> = spokes.iter().map(|c| c.to_uppercase()).collect();
        let mut cache = || caches.next().ok_or("fewer cache stores than instances");
        reference.add_instance(HUB, cache()?, &[], None, &registered).await?;
        let hub_issuer = reference.hub_issuer();
        let hub_backend = reference.instances[0].backend_url();
        for code in spokes {
            reference
                .add_instance(
                    code,
                    cache()?,
                    std::slice::from_ref(&hub_issuer),
                    Some(hub_backend.clone()),
                    &[],
                )
                .await?;
        }
        Ok(reference)
    }

    pub(crate) fn handle(&self) -> Result<tokio::runtime::Handle, String> {
        self.runtime
            .as_ref()
            .map(|r| r.handle().clone())
            .ok_or_else(|| "reference deployment is shut down".to_string())
    }

    fn hub_issuer(&self) -> (String, Url) {
        let hub = &self.instances[0];
        let issuer = hub.realm.issuer.get().cloned().unwrap_or_default();
        (issuer.clone(), url(&format!("{issuer}/protocol/openid-connect/certs")))
    }

    async fn add_instance(
        &mut self,
        code: &str,
        cache: Redis,
        also_trusted: &[(String, Url)],
        hub: Option<Url>,
        registered_spokes: &[String],
    ) -> Result<(), String> {
        let rt = self.handle()?;
        let realm = Arc::new(KeycloakRealm::for_instance(code, DEFAULT_TEST_PASSWORD));
        let serve = |name: &str, tls: bool, make: server::MakeRouter| {
            ControlledServer::start(
                &format!("{code} {name}"),
                tls.then(|| self.tls.clone()),
                make,
                rt.clone(),
            )
        };
        let decision_path = self.behaviour.opa_decision_path;
        let opa = serve("opa", false, Arc::new(move || standins::opa(decision_path)))?;
        let kc_realm = realm.clone();
        let keycloak = serve("keycloak", true, Arc::new(move || standins::keycloak(kc_realm.clone())))?;
        let issuer = format!("https://127.0.0.1:{}/realms/{}", keycloak.addr().port(), realm.realm);
        let _ = realm.issuer.set(issuer.clone());
        let resources: standins::Collection = Arc::new(std::sync::RwLock::new(standins::seed_resources(
            code,
            self.behaviour.seeded_resources,
        )));
        let docs = resources.clone();
        let mongodb = serve("mongodb", false, Arc::new(move || standins::mongodb(docs.clone())))?;
        let kas = serve("kas", false, Arc::new(standins::kas))?;
        let cache = Arc::new(cache);

        // Every instance shares the hub's blacklist, except the spoke reference defect R4 cuts off.
        let own_blacklist = if self
            .behaviour
            .private_blacklist
            .is_some_and(|c| c.eq_ignore_ascii_case(code))
        {
            let name = format!("blacklist-{}", code.to_lowercase());
            Some(Arc::new(
                start_redis(self.runtime_kind, &rt, &self.dir, &name, true, &self.spawner).await?,
            ))
        } else {
            None
        };
        let blacklist_redis = own_blacklist.as_ref().map_or_else(|| self.blacklist.url(), |r| r.url());
        let mut issuers = vec![(issuer.clone(), url(&format!("{issuer}/protocol/openid-connect/certs")))];
        if !self
            .behaviour
            .hub_issuer_untrusted_on
            .is_some_and(|c| c.eq_ignore_ascii_case(code))
        {
            issuers.extend(also_trusted.iter().cloned());
        }
        let cfg = backend::BackendConfig {
            code: code.to_string(),
            behaviour: self.behaviour.clone(),
            time_scale: self.time_scale,
            opa: http_url(&opa),
            keycloak: url(&format!("https://127.0.0.1:{}", keycloak.addr().port())),
            mongodb: http_url(&mongodb),
            kas: http_url(&kas),
            cache_redis: cache.url(),
            blacklist_redis,
            realm: realm.realm.clone(),
            client_id: realm.client_id.clone(),
            client_secret: realm.client_secret.clone(),
            issuers,
            client: self.client.clone(),
            hub,
            registered_spokes: registered_spokes.to_vec(),
        };
        let backend = serve("backend", true, Arc::new(move || backend::router(cfg.clone())))?;
        self.instances.push(RefInstance {
            code: code.to_string(),
            backend,
            opa,
            keycloak,
            mongodb,
            kas,
            cache,
            realm,
            resources,
            own_blacklist,
        });
        Ok(())
    }

    pub fn instance(&self, code: &str) -> Result<&RefInstance, String> {
        self.instances
            .iter()
            .find(|i| i.code.eq_ignore_ascii_case(code))
            .ok_or_else(|| format!("the reference deployment has no instance {code}"))
    }

    fn server(&self, spec: &FaultSpec) -> Result<Option<Arc<ControlledServer>>, String> {
        let inst = self.instance(&spec.instance)?;
        Ok(match spec.service {
            Service::Backend | Service::Stack => Some(inst.backend.clone()),
            Service::Opa => Some(inst.opa.clone()),
            Service::Keycloak => Some(inst.keycloak.clone()),
            Service::Mongodb => Some(inst.mongodb.clone()),
            Service::Kas => Some(inst.kas.clone()),
            Service::CacheRedis | Service::RevocationStore => None,
        })
    }

    fn redis(&self, spec: &FaultSpec) -> Result<Arc<Redis>, String> {
        match spec.service {
            Service::CacheRedis => Ok(self.instance(&spec.instance)?.cache.clone()),
            _ => Ok(self.blacklist.clone()),
        }
    }

    /// The parts of a whole instance, for `Service::Stack`: every service but the shared blacklist.
    fn stack(spec: &FaultSpec) -> Vec<FaultSpec> {
        [
            Service::Backend,
            Service::Opa,
            Service::Keycloak,
            Service::Mongodb,
            Service::Kas,
            Service::CacheRedis,
        ]
        .into_iter()
        .map(|service| FaultSpec {
            service,
            ..spec.clone()
        })
        .collect()
    }

    /// Applies a fault. A network partition keeps the service running and out of its callers'
    /// reach; here it is a pause, which is what a partition looks like to a caller that holds a
    /// connection or a resolved address: its calls hang until their own timeouts. (A caller that
    /// resolves the name afresh is refused at once instead; the hanging calls are the harder case
    /// for the breakers, each failure costing a timeout.)
    pub async fn apply(&self, spec: &FaultSpec) -> Result<(), String> {
        if spec.service == Service::Stack {
            for part in Reference::stack(spec) {
                Box::pin(self.apply(&part)).await?;
            }
            return Ok(());
        }
        if let Some(server) = self.server(spec)? {
            match spec.kind {
                FaultKind::Stop => server.stop(true),
                FaultKind::Kill => server.stop(false),
                // Unreachable while running: to its callers a partition is a pause (see below).
                FaultKind::Pause | FaultKind::Partition => server.pause(),
            }
            return Ok(());
        }
        let redis = self.redis(spec)?;
        let kind = spec.kind;
        self.handle()?
            .spawn(async move { redis.apply(kind).await })
            .await
            .map_err(|e| e.to_string())?
    }

    pub async fn restore(&self, spec: &FaultSpec) -> Result<(), String> {
        if spec.service == Service::Stack {
            for part in Reference::stack(spec).into_iter().rev() {
                Box::pin(self.restore(&part)).await?;
            }
            return Ok(());
        }
        if let Some(server) = self.server(spec)? {
            return match spec.kind {
                FaultKind::Pause | FaultKind::Partition => {
                    server.resume();
                    Ok(())
                }
                // The old socket may still be closing: retry the bind briefly.
                FaultKind::Stop | FaultKind::Kill => eventually(
                    &format!("{} to bind its port again", server.name()),
                    Duration::from_millis(50),
                    Duration::from_secs(10),
                    {
                        let server = server.clone();
                        move || std::future::ready(server.restart())
                    },
                )
                .await
                .map(|_| ())
                .map_err(|t| t.to_string()),
            };
        }
        let redis = self.redis(spec)?;
        let kind = spec.kind;
        self.handle()?
            .spawn(async move { redis.restore(kind).await })
            .await
            .map_err(|e| e.to_string())?
    }

    /// Starts Prometheus and AlertManager for this deployment, scraping every backend with DIVE's
    /// job and instance labels (`hub-backend`/`hub` for the hub, `<code>-backend`/`<code>`).
    pub async fn start_monitoring(&self) -> Result<monitoring::ReferenceMonitoring, String> {
        let targets: Vec<_> = self
            .instances
            .iter()
            .map(|i| {
                let name = instance_label(&i.code);
                monitoring::ScrapeTarget {
                    job: format!("{name}-backend"),
                    instance: name,
                    address: format!("127.0.0.1:{}", i.backend.addr().port()),
                }
            })
            .collect();
        let dir = self.dir.join("monitoring");
        match self.runtime_kind {
            Runtime::Local => monitoring::ReferenceMonitoring::start(
                &self.behaviour,
                self.time_scale,
                &self.ca_pem,
                self.behaviour.https_monitoring.then_some(&self.serve_tls),
                &targets,
                &dir,
                &self.spawner,
            ),
            Runtime::Docker => {
                let (behaviour, scale, ca) = (self.behaviour.clone(), self.time_scale, self.ca_pem.clone());
                self.handle()?
                    .spawn(async move {
                        monitoring::ReferenceMonitoring::start_docker(&behaviour, scale, &ca, &targets, &dir).await
                    })
                    .await
                    .map_err(|e| e.to_string())?
            }
        }
    }

    /// Whether the service answers its own probe (a paused one does not, within a second). A
    /// stack answers when every part of it does.
    pub async fn answers(&self, spec: &FaultSpec) -> Result<(), String> {
        if spec.service == Service::Stack {
            for part in Reference::stack(spec) {
                Box::pin(self.answers(&part)).await?;
            }
            return Ok(());
        }
        const PATIENCE: Duration = Duration::from_secs(1);
        let inst = self.instance(&spec.instance)?;
        if let Some(server) = self.server(spec)? {
            let probe = match spec.service {
                Service::Backend | Service::Stack => {
                    join(&inst.backend_url(), &format!("{}/live", self.behaviour.health_base))
                }
                Service::Keycloak => join(&inst.keycloak_url(), "/realms/master"),
                Service::Mongodb => join(&http_url(&server), "/ping"),
                _ => join(&http_url(&server), "/health"),
            };
            // A client of its own: this may run on a runtime other than the reference's (a fault
            // restored from a guard's drop), where pooled connections would not be served.
            let http = Http::trusting(self.ca_pem.as_bytes())?;
            return http.get_ok(&probe, PATIENCE).await;
        }
        let url = self.redis(spec)?.url();
        let ping = redis::ping(&url);
        match tokio::time::timeout(PATIENCE, ping).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("redis {url}: {e}")),
            Err(_) => Err(format!("redis {url}: no answer within {PATIENCE:?}")),
        }
    }
}

async fn start_redis(
    kind: Runtime,
    rt: &tokio::runtime::Handle,
    dir: &std::path::Path,
    name: &str,
    aof: bool,
    spawner: &Arc<Spawner>,
) -> Result<Redis, String> {
    match kind {
        Runtime::Local => Ok(Redis::Local(
            LocalRedis::start(dir.join(name), aof, spawner.clone()).await?,
        )),
        Runtime::Docker => {
            let redis = rt.spawn(DockerRedis::start(aof)).await.map_err(|e| e.to_string())??;
            Ok(Redis::Docker(Box::new(redis)))
        }
    }
}

impl Reference {
    /// Deletes `user-revoked:<user>` from every blacklist store, ending the user's lock-out.
    pub async fn clear_user_revocation(&self, user: &str) -> Result<(), String> {
        let mut stores = vec![self.blacklist.url()];
        stores.extend(
            self.instances
                .iter()
                .filter_map(|i| i.own_blacklist.as_ref())
                .map(|r| r.url()),
        );
        for url in stores {
            let client = ::redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            ::redis::cmd("DEL")
                .arg(format!("user-revoked:{user}"))
                .query_async::<i64>(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        self.instances.clear();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
