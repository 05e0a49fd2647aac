//! The controls of a live DIVE: faults through the container runtime by DIVE's container names
//! (the CLI cannot stop one service, contract section 9), whole spokes through `./dive` with its
//! effect verified, every command echoed. The revocation store is the one the hub backend uses:
//! `dive-hub-redis-blacklist` at 15a319e6, `shared-token-store` (TLS only) at HEAD.
//!
//! A network partition is DIVE's own recipe (its `tests/chaos/network-partition.sh`): `docker
//! network disconnect <network> <container>` from every network its callers reach it on, and
//! back with `docker network connect --alias <service> <network> <container>`. The alias is what
//! the backend dials (`opa`, `mongodb-fra`); a plain reconnect restores only the container name,
//! and the service would stay unreachable although "connected".

use std::time::Duration;

use crate::fault::ledger::{Change, UNDO_DEADLINE};
use crate::fault::{Control, FaultError, Fut};
use crate::infra::dive::{CliError, Dive};
use crate::infra::exec::{Exec, shell_quote};
use crate::infra::poll::eventually;
use crate::vocab::coalition::{HUB, is_hub};
use crate::vocab::fault::{FaultKind, FaultSpec, Service};

/// A single service answers again within this after its container starts.
const SERVICE_RESTORE_DEADLINE: Duration = Duration::from_secs(120);

/// `spoke down` stops a whole stack; its backend is gone within this (at DIVE's own pace).
const STACK_DOWN_DEADLINE: Duration = Duration::from_secs(120);

/// The least time any wait on the runtime gets, however fast the target's timers run.
const RUNTIME_FLOOR: Duration = Duration::from_secs(10);

/// The hub backend's variable that names the revocation store, with its password and scheme.
pub const STORE_URL_VAR: &str = "BLACKLIST_REDIS_URL";

/// Where DIVE's revocation store is, as the hub backend reaches it (contract section 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub container: String,
    /// `rediss://`: the store speaks TLS only (HEAD's `shared-token-store`).
    pub tls: bool,
}

impl Store {
    /// 15a319e6's store, assumed when the hub backend does not say.
    pub fn v15a() -> Store {
        Store {
            container: "dive-hub-redis-blacklist".to_string(),
            tls: false,
        }
    }
}

/// The container runtime and the CLI of a live DIVE.
pub struct LiveControl {
    runtime: String,
    /// `./dive`, for faults on a whole spoke (`spoke down` / `spoke up`) and deploys.
    dive: Dive,
    store: Store,
    /// The target's timers relative to DIVE's own (a live-shaped reference runs them shortened).
    time_scale: f64,
}

/// A service's name in DIVE's compose files, from which its container name and its alias follow.
fn compose_name(service: Service) -> &'static str {
    match service {
        Service::Backend | Service::Stack => "backend",
        Service::Opa => "opa",
        Service::Keycloak => "keycloak",
        Service::Mongodb => "mongodb",
        Service::Kas => "kas",
        Service::CacheRedis => "redis",
        Service::RevocationStore => "redis-blacklist",
    }
}

/// DIVE's container name of a service (contract section 1); the revocation store's is found.
pub fn container_name(instance: &str, service: Service) -> String {
    let suffix = compose_name(service);
    if is_hub(instance) || service == Service::RevocationStore {
        format!("dive-hub-{suffix}")
    } else {
        format!("dive-spoke-{}-{suffix}", instance.to_lowercase())
    }
}

/// The network DIVE's compose puts every service of an instance's stack on: `hub-internal` of
/// project `dive-hub`, `dive-internal` of project `dive-spoke-<code>`.
pub fn internal_network(instance: &str) -> String {
    if is_hub(instance) {
        "dive-hub_hub-internal".to_string()
    } else {
        format!("dive-spoke-{}_dive-internal", instance.to_lowercase())
    }
}

/// The external network the hub and the spokes share (Keycloak, backend, the hub's Redis, the
/// 15a319e6 revocation store, KAS at HEAD).
pub const SHARED_NETWORK: &str = "dive-shared";

/// The name other containers dial a service by: compose's service name, `<service>` on the hub and
/// `<service>-<code>` on a spoke (`OPA_URL=https://opa-fra:8181`).
pub fn service_alias(instance: &str, service: Service) -> String {
    let name = compose_name(service);
    if is_hub(instance) || service == Service::RevocationStore {
        name.to_string()
    } else {
        format!("{name}-{}", instance.to_lowercase())
    }
}

/// The scheme and host of a Redis URL (`rediss://:password@shared-token-store:6379`): whether it
/// is TLS, and the host. The password is not kept.
pub fn parse_store_url(url: &str) -> Option<(bool, String)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let tls = match scheme {
        "rediss" => true,
        "redis" => false,
        _ => return None,
    };
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host_port.split([':', '/']).next()?.to_string();
    (!host.is_empty()).then_some((tls, host))
}

impl LiveControl {
    pub fn new(runtime: &str, dive: Dive, store: Store, time_scale: f64) -> LiveControl {
        LiveControl {
            runtime: runtime.to_string(),
            dive,
            store,
            time_scale,
        }
    }

    /// A wait of DIVE's, at this target's pace.
    fn scaled(&self, wait: Duration) -> Duration {
        wait.mul_f64(self.time_scale).max(RUNTIME_FLOOR)
    }

    /// `./dive --instance <code> spoke <verb> <code>`: 15a319e6 reads the spoke from `--instance`
    /// and ignores arguments, HEAD from its argument: both forms at once work at both commits.
    pub fn spoke_command(&self, instance: &str, verb: &str) -> Dive {
        self.dive
            .clone()
            .instance(instance)
            .args(["spoke", verb, &instance.to_lowercase()])
            .deadline(UNDO_DEADLINE)
    }

    /// HEAD's revocation store speaks TLS and 15a319e6's does not: the one mark of the generation
    /// this control holds, and where KAS sits differs with it.
    fn head(&self) -> bool {
        self.store.tls
    }

    /// The networks a partition takes `spec`'s container off, each with the alias it must come
    /// back with: every network its callers reach it on (DIVE's compose files, notes in C.2 of the
    /// port table).
    pub fn partition_networks(&self, spec: &FaultSpec) -> Vec<(String, String)> {
        let alias = service_alias(&spec.instance, spec.service);
        let internal = (internal_network(&spec.instance), alias.clone());
        let shared = (SHARED_NETWORK.to_string(), alias.clone());
        match spec.service {
            // HEAD's `shared-token-store` lives in the monitoring stack, on the shared network only,
            // and is dialled by its container name.
            Service::RevocationStore if self.head() => {
                vec![(SHARED_NETWORK.to_string(), self.store.container.clone())]
            }
            Service::RevocationStore => vec![(internal_network(HUB), alias), shared],
            Service::Keycloak | Service::Backend | Service::Stack => vec![internal, shared],
            Service::CacheRedis if is_hub(&spec.instance) => vec![internal, shared],
            Service::Kas if self.head() => vec![internal, shared],
            _ => vec![internal],
        }
    }

    fn container(&self, spec: &FaultSpec) -> String {
        if spec.service == Service::RevocationStore {
            self.store.container.clone()
        } else {
            container_name(&spec.instance, spec.service)
        }
    }

    /// The commands that apply and undo `spec`, each run in turn.
    pub fn commands(&self, spec: &FaultSpec) -> (Vec<Exec>, Vec<Exec>) {
        if spec.service == Service::Stack {
            return (
                vec![self.spoke_command(&spec.instance, "down").exec()],
                vec![self.spoke_command(&spec.instance, "up").exec()],
            );
        }
        let container = self.container(spec);
        if spec.kind == FaultKind::Partition {
            let networks = self.partition_networks(spec);
            let disconnect = networks
                .iter()
                .map(|(network, _)| {
                    Exec::new(&self.runtime).args(["network", "disconnect", network.as_str(), &container])
                })
                .collect();
            let connect = networks
                .iter()
                .map(|(network, alias)| {
                    Exec::new(&self.runtime).args([
                        "network",
                        "connect",
                        "--alias",
                        alias.as_str(),
                        network.as_str(),
                        &container,
                    ])
                })
                .collect();
            return (disconnect, connect);
        }
        (
            vec![Exec::new(&self.runtime).args([spec.kind.verb(), &container])],
            vec![Exec::new(&self.runtime).args([spec.kind.undo_verb(), &container])],
        )
    }

    /// Runs `commands` in turn; the first failure stops them.
    async fn run_all(commands: Vec<Exec>) -> Result<(), String> {
        for command in commands {
            command.must_succeed().await?;
        }
        Ok(())
    }

    /// Whether a partitioned container is back on every network its callers reach it on.
    async fn connected(&self, spec: &FaultSpec) -> Result<(), String> {
        let container = self.container(spec);
        let on = container_networks(self.runtime.clone(), container.clone()).await?;
        let missing: Vec<String> = self
            .partition_networks(spec)
            .into_iter()
            .map(|(network, _)| network)
            .filter(|network| !on.contains(network))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("{container} is not on {}", missing.join(", ")))
        }
    }

    /// Lifts `user`'s lock-out in the revocation store, as one shell command that reads the
    /// store's password from the hub backend and hands it to `redis-cli` through its environment:
    /// the password is never in an argument, a log line or the ledger.
    pub fn lockout_command(&self, user: &str) -> Exec {
        let runtime = shell_quote(&self.runtime);
        let backend = container_name(HUB, Service::Backend);
        let tls = if self.store.tls {
            " --tls --cacert /certs/ca/rootCA.pem"
        } else {
            ""
        };
        let script = format!(
            "url=$({runtime} exec {backend} printenv {STORE_URL_VAR}) && pw=${{url#*://:}} && pw=${{pw%%@*}} && \
             REDISCLI_AUTH=\"$pw\" {runtime} exec -e REDISCLI_AUTH {store} redis-cli{tls} --no-auth-warning DEL {key}",
            store = shell_quote(&self.store.container),
            key = shell_quote(&format!("user-revoked:{user}")),
        );
        Exec::new("sh").args(["-c".to_string(), script])
    }
}

/// `docker inspect`: `running`, `running healthy`, or what the container is instead.
async fn container_state(runtime: String, container: String) -> Result<String, String> {
    let format = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}";
    let out = Exec::new(&runtime)
        .args(["inspect", "-f", format, &container])
        .deadline(Duration::from_secs(20))
        .must_succeed()
        .await?;
    Ok(out.stdout.trim().to_string())
}

/// `docker inspect`: the networks a container is on.
async fn container_networks(runtime: String, container: String) -> Result<Vec<String>, String> {
    let format = "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}";
    let out = Exec::new(&runtime)
        .args(["inspect", "-f", format, &container])
        .deadline(Duration::from_secs(20))
        .must_succeed()
        .await?;
    Ok(out.stdout.split_whitespace().map(str::to_string).collect())
}

fn running(state: &str) -> bool {
    state == "running" || state == "running healthy"
}

impl Control for LiveControl {
    fn apply<'a>(&'a self, fault: &'a FaultSpec) -> Fut<'a, Result<(), FaultError>> {
        Box::pin(async move {
            if fault.service != Service::Stack {
                let (apply, _) = self.commands(fault);
                return LiveControl::run_all(apply).await.map_err(FaultError::Failed);
            }
            if fault.kind == FaultKind::Partition {
                return Err(FaultError::Failed(format!(
                    "a whole spoke cannot be partitioned here; partition its services one by one ({fault})"
                )));
            }
            // `./dive` exits 0 for what it does not know: its effect is checked right here.
            let backend = container_name(&fault.instance, Service::Backend);
            let (runtime, watched) = (self.runtime.clone(), backend.clone());
            let stopped = move || {
                let state = container_state(runtime.clone(), watched.clone());
                let watched = watched.clone();
                async move {
                    match state.await {
                        Ok(state) if running(&state) => Err(format!("{watched} is {state}")),
                        _ => Ok(()),
                    }
                }
            };
            let what = format!("{backend} stopped");
            let tick = Duration::from_millis(500);
            let deadline = self.scaled(STACK_DOWN_DEADLINE);
            let gone = || async {
                eventually(&what, tick, deadline, stopped)
                    .await
                    .map(|_| ())
                    .map_err(|t| t.to_string())
            };
            let down = self.spoke_command(&fault.instance, "down");
            match down.run_verified(&format!("{backend} stopped"), gone).await {
                Ok(_) => Ok(()),
                Err(CliError::NoEffect(text)) => Err(FaultError::CliNoEffect(text)),
                Err(CliError::Failed(text)) => Err(FaultError::Failed(text)),
            }
        })
    }

    fn restore<'a>(&'a self, fault: &'a FaultSpec) -> Fut<'a, Result<(), String>> {
        Box::pin(async move { LiveControl::run_all(self.commands(fault).1).await })
    }

    /// A running (and, where it has a healthcheck, healthy) container; a removed one (HEAD's
    /// `spoke down` removes them) does not answer. A partitioned one runs, and is healthy by its
    /// own healthcheck (which runs inside it): it answers once it is back on its networks.
    fn answers<'a>(&'a self, fault: &'a FaultSpec) -> Fut<'a, Result<(), String>> {
        Box::pin(async move {
            if fault.kind == FaultKind::Partition && fault.service != Service::Stack {
                return self.connected(fault).await;
            }
            let state = container_state(self.runtime.clone(), self.container(fault)).await?;
            if running(&state) { Ok(()) } else { Err(state) }
        })
    }

    fn restore_deadline(&self, fault: &FaultSpec) -> Duration {
        if fault.service == Service::Stack {
            self.scaled(UNDO_DEADLINE)
        } else {
            self.scaled(SERVICE_RESTORE_DEADLINE)
        }
    }

    fn undo_commands(&self, change: &Change) -> Option<Vec<Vec<String>>> {
        match change {
            Change::Fault(spec) => Some(self.commands(spec).1.iter().map(Exec::argv_vec).collect()),
            Change::Lockout { user } => Some(vec![self.lockout_command(user).argv_vec()]),
            Change::Container { .. } | Change::Silence { .. } => None,
        }
    }

    fn lift_lockout<'a>(&'a self, user: &'a str) -> Fut<'a, Result<(), String>> {
        Box::pin(async move { self.lockout_command(user).must_succeed().await.map(|_| ()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_is_read_from_the_backends_url_without_its_password() {
        assert_eq!(
            parse_store_url("rediss://:s3cr@t@shared-token-store:6379"),
            Some((true, "shared-token-store".to_string()))
        );
        assert_eq!(
            parse_store_url("redis://:pw@redis-blacklist:6379/0"),
            Some((false, "redis-blacklist".to_string()))
        );
        assert_eq!(parse_store_url("http://x"), None);
    }

    #[test]
    fn lifting_a_lockout_never_puts_the_password_in_an_argument() {
        let store = Store {
            container: "shared-token-store".to_string(),
            tls: true,
        };
        let control = LiveControl::new("docker", Dive::new(std::path::Path::new("/dive"), &[]), store, 1.0);
        let argv = control.lockout_command("testuser-usa-5").argv();
        assert!(argv.starts_with("sh -c "), "{argv}");
        assert!(argv.contains("printenv BLACKLIST_REDIS_URL"), "{argv}");
        assert!(
            argv.contains("exec -e REDISCLI_AUTH shared-token-store redis-cli --tls --cacert /certs/ca/rootCA.pem"),
            "{argv}"
        );
        assert!(argv.contains("DEL user-revoked:testuser-usa-5"), "{argv}");
    }

    fn argvs(commands: &[Exec]) -> Vec<String> {
        commands.iter().map(Exec::argv).collect()
    }

    #[test]
    fn a_partition_is_dives_network_disconnect_and_comes_back_with_the_alias() {
        let control = |store| LiveControl::new("docker", Dive::new(std::path::Path::new("/dive"), &[]), store, 1.0);
        let spec = |instance: &str, service| FaultSpec {
            instance: instance.to_string(),
            service,
            kind: FaultKind::Partition,
        };
        let v15a = control(Store::v15a());
        let (apply, undo) = v15a.commands(&spec("USA", Service::Opa));
        assert_eq!(
            argvs(&apply),
            ["docker network disconnect dive-hub_hub-internal dive-hub-opa"]
        );
        assert_eq!(
            argvs(&undo),
            ["docker network connect --alias opa dive-hub_hub-internal dive-hub-opa"]
        );
        let (_, undo) = v15a.commands(&spec("FRA", Service::Keycloak));
        assert_eq!(
            argvs(&undo),
            [
                "docker network connect --alias keycloak-fra dive-spoke-fra_dive-internal dive-spoke-fra-keycloak",
                "docker network connect --alias keycloak-fra dive-shared dive-spoke-fra-keycloak"
            ]
        );
        // KAS joined the shared network at HEAD; HEAD's store is on it alone, dialled by its name.
        let head = control(Store {
            container: "shared-token-store".to_string(),
            tls: true,
        });
        assert_eq!(v15a.partition_networks(&spec("DEU", Service::Kas)).len(), 1);
        assert_eq!(head.partition_networks(&spec("DEU", Service::Kas)).len(), 2);
        let (apply, undo) = head.commands(&spec("FRA", Service::RevocationStore));
        assert_eq!(
            argvs(&apply),
            ["docker network disconnect dive-shared shared-token-store"]
        );
        assert_eq!(
            argvs(&undo),
            ["docker network connect --alias shared-token-store dive-shared shared-token-store"]
        );
        let undo = v15a.undo_commands(&Change::Fault(spec("USA", Service::Mongodb)));
        assert_eq!(
            undo,
            Some(vec![
                [
                    "docker",
                    "network",
                    "connect",
                    "--alias",
                    "mongodb",
                    "dive-hub_hub-internal",
                    "dive-hub-mongodb"
                ]
                .map(String::from)
                .to_vec()
            ])
        );
    }

    #[test]
    fn a_whole_spoke_is_named_both_ways_so_either_generation_understands() {
        let control = LiveControl::new(
            "docker",
            Dive::new(std::path::Path::new("/dive"), &[]),
            Store::v15a(),
            1.0,
        );
        let argv = control.spoke_command("TST", "down").exec().argv();
        assert!(argv.contains("dive --instance tst spoke down tst"), "{argv}");
    }
}
