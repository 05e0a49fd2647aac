//! The control server behind the live-shaped reference's fake `docker` and `./dive`: it maps
//! DIVE's container names onto the reference's services and does to them what the container
//! runtime would (stop, kill, pause, start, inspect, exec `printenv` and `redis-cli`, network
//! disconnect and connect, whole stacks down and up, deploys with or without seeding), logging
//! every call. Each container sits on the networks DIVE's compose files put it on, under its
//! service name; it is reachable only while it is on all of them under that name, so a reconnect
//! that forgets `--alias` leaves it partitioned, as it would a real DIVE.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::deployment::live::control::{SHARED_NETWORK, internal_network, service_alias};
use crate::reference::Reference;
use crate::reference::behaviour::Generation;
use crate::reference::standins::seed_resources;
use crate::vocab::coalition::{HUB, is_hub};
use crate::vocab::fault::{FaultKind, FaultSpec, Service};

/// What the fake runtime last did to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Running,
    Paused,
    Exited,
    /// `spoke down` removes a stack's containers (`docker compose down`).
    Removed,
}

#[derive(Debug, Clone)]
struct Container {
    instance: String,
    service: Service,
    last: Last,
    env: BTreeMap<String, String>,
    /// The networks DIVE's compose puts it on, each with the name others dial it by.
    home: BTreeMap<String, String>,
    /// The networks it is on now, with the alias it was connected under (`None`: only its
    /// container name).
    networks: BTreeMap<String, Option<String>>,
}

impl Container {
    fn new(instance: &str, service: Service, home: BTreeMap<String, String>) -> Container {
        Container {
            instance: instance.to_string(),
            service,
            last: Last::Running,
            env: BTreeMap::new(),
            networks: home.iter().map(|(n, a)| (n.clone(), Some(a.clone()))).collect(),
            home,
        }
    }

    /// On every home network under its service name: its callers reach it.
    fn reachable(&self) -> bool {
        self.home
            .iter()
            .all(|(network, alias)| self.networks.get(network) == Some(&Some(alias.clone())))
    }
}

/// Where DIVE's compose files put a service (contract section 1): everything on its stack's
/// internal network, Keycloak, the backend and the hub's Redis also on the shared one, KAS too at
/// HEAD.
fn home_networks(instance: &str, service: Service, generation: Generation) -> BTreeMap<String, String> {
    let alias = service_alias(instance, service);
    let mut home = BTreeMap::from([(internal_network(instance), alias.clone())]);
    let shared = match service {
        Service::Keycloak | Service::Backend => true,
        Service::CacheRedis => is_hub(instance),
        Service::Kas => generation == Generation::Head,
        _ => false,
    };
    if shared {
        home.insert(SHARED_NETWORK.to_string(), alias);
    }
    home
}

pub struct ControlState {
    reference: Arc<Reference>,
    generation: Generation,
    store_password: String,
    containers: Mutex<HashMap<String, Container>>,
    log: Mutex<Vec<String>>,
}

/// The revocation store's container name at `generation`.
pub fn store_name(generation: Generation) -> &'static str {
    match generation {
        Generation::Head => "shared-token-store",
        Generation::V15a => "dive-hub-redis-blacklist",
    }
}

fn name_of(instance: &str, suffix: &str) -> String {
    if is_hub(instance) {
        format!("dive-hub-{suffix}")
    } else {
        format!("dive-spoke-{}-{suffix}", instance.to_lowercase())
    }
}

impl ControlState {
    pub fn new(reference: Arc<Reference>, generation: Generation, store_password: String) -> ControlState {
        let mut containers = HashMap::new();
        let store_url = match generation {
            Generation::Head => format!("rediss://:{store_password}@{}:6379", store_name(generation)),
            Generation::V15a => format!("redis://:{store_password}@redis-blacklist:6379"),
        };
        for inst in &reference.instances {
            let services = [
                ("backend", Service::Backend),
                ("opa", Service::Opa),
                ("keycloak", Service::Keycloak),
                ("mongodb", Service::Mongodb),
                ("kas", Service::Kas),
                ("redis", Service::CacheRedis),
            ];
            for (suffix, service) in services {
                let mut container = Container::new(&inst.code, service, home_networks(&inst.code, service, generation));
                if service == Service::Backend {
                    let env = &mut container.env;
                    env.insert("KEYCLOAK_CLIENT_SECRET".to_string(), inst.realm.client_secret.clone());
                    env.insert("BLACKLIST_REDIS_URL".to_string(), store_url.clone());
                    env.insert("REDIS_PASSWORD_BLACKLIST".to_string(), store_password.clone());
                }
                containers.insert(name_of(&inst.code, suffix), container);
            }
        }
        // 15a319e6's store is a hub service on both networks; HEAD's lives in the monitoring stack,
        // on the shared network only, dialled by its container name.
        let store_home = match generation {
            Generation::V15a => BTreeMap::from([
                (internal_network(HUB), "redis-blacklist".to_string()),
                (SHARED_NETWORK.to_string(), "redis-blacklist".to_string()),
            ]),
            Generation::Head => BTreeMap::from([(SHARED_NETWORK.to_string(), store_name(generation).to_string())]),
        };
        let store = Container::new(HUB, Service::RevocationStore, store_home);
        containers.insert(store_name(generation).to_string(), store);
        ControlState {
            reference,
            generation,
            store_password,
            containers: Mutex::new(containers),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Every command the fake runtime and CLI were asked to run, one per line.
    pub fn calls(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn container(&self, name: &str) -> Option<Container> {
        self.containers.lock().ok()?.get(name).cloned()
    }

    fn set(&self, name: &str, last: Last) {
        if let Ok(mut c) = self.containers.lock()
            && let Some(container) = c.get_mut(name)
        {
            container.last = last;
        }
    }

    fn set_stack(&self, code: &str, last: Last) {
        if let Ok(mut c) = self.containers.lock() {
            for container in c.values_mut().filter(|c| c.instance.eq_ignore_ascii_case(code)) {
                if container.service != Service::RevocationStore {
                    container.last = last;
                }
            }
        }
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn no_such(name: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("No such container: {name}"))
}

pub fn router(state: Arc<ControlState>) -> Router {
    Router::new()
        .route("/log", post(log))
        .route("/containers", get(list))
        .route("/containers/{name}", get(inspect))
        .route("/containers/{name}/env/{var}", get(env))
        .route("/containers/{name}/redis", post(redis_cli))
        .route("/containers/{name}/network/{action}", post(network))
        .route("/containers/{name}/{verb}", post(act))
        .route("/stacks/{code}/{action}", post(stack))
        .with_state(state)
}

#[derive(Deserialize)]
struct Logged {
    argv: Vec<String>,
}

async fn log(State(s): State<Arc<ControlState>>, Json(l): Json<Logged>) -> Response {
    if let Ok(mut log) = s.log.lock() {
        log.push(l.argv.join(" "));
    }
    Json(json!({})).into_response()
}

async fn list(State(s): State<Arc<ControlState>>) -> Response {
    let mut names: Vec<String> = s
        .containers
        .lock()
        .map(|c| {
            c.iter()
                .filter(|(_, c)| c.last != Last::Removed)
                .map(|(n, _)| n.clone())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    Json(json!({ "names": names })).into_response()
}

/// `docker inspect`: whether the service behind the name answers now, or what was done to it.
async fn inspect(State(s): State<Arc<ControlState>>, Path(name): Path<String>) -> Response {
    let Some(c) = s.container(&name) else {
        return no_such(&name);
    };
    if c.last == Last::Removed {
        return no_such(&name);
    }
    let spec = FaultSpec {
        instance: c.instance.clone(),
        service: c.service,
        kind: FaultKind::Stop,
    };
    let networks: Vec<&String> = c.networks.keys().collect();
    // A partitioned container runs, and its healthcheck (run inside it) passes.
    if c.last == Last::Running && !c.reachable() {
        return Json(json!({ "status": "running", "health": "healthy", "networks": networks })).into_response();
    }
    let body = match (s.reference.answers(&spec).await, c.last) {
        (Ok(()), _) => json!({ "status": "running", "health": "healthy", "networks": networks }),
        (Err(_), Last::Paused) => json!({ "status": "paused" }),
        (Err(_), Last::Running) => json!({ "status": "running", "health": "unhealthy" }),
        (Err(_), _) => json!({ "status": "exited" }),
    };
    Json(body).into_response()
}

async fn env(State(s): State<Arc<ControlState>>, Path((name, var)): Path<(String, String)>) -> Response {
    match s.container(&name) {
        Some(c) if c.last != Last::Removed => match c.env.get(&var) {
            Some(value) => Json(json!({ "value": value })).into_response(),
            None => error(StatusCode::NOT_FOUND, format!("{var} is not set in {name}")),
        },
        _ => no_such(&name),
    }
}

#[derive(Deserialize)]
struct RedisCli {
    args: Vec<String>,
    auth: Option<String>,
    tls: bool,
}

/// `docker exec <store> redis-cli ...`: the store wants its password, and at HEAD speaks TLS only.
async fn redis_cli(State(s): State<Arc<ControlState>>, Path(name): Path<String>, Json(q): Json<RedisCli>) -> Response {
    match s.container(&name) {
        Some(c) if c.service == Service::RevocationStore && c.last == Last::Running => {}
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{name} is not the running revocation store"),
            );
        }
        None => return no_such(&name),
    }
    if s.generation == Generation::Head && !q.tls {
        return error(
            StatusCode::BAD_REQUEST,
            "Error: Connection reset by peer (the store speaks TLS only)",
        );
    }
    if q.auth.as_deref() != Some(s.store_password.as_str()) {
        return error(StatusCode::BAD_REQUEST, "(error) NOAUTH Authentication required.");
    }
    let [command, keys @ ..] = q.args.as_slice() else {
        return error(StatusCode::BAD_REQUEST, "(error) no command");
    };
    if !command.eq_ignore_ascii_case("DEL") {
        return error(StatusCode::BAD_REQUEST, format!("(error) {command} is not emulated"));
    }
    let url = s.reference.blacklist.url();
    let deleted = async {
        let client = ::redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        ::redis::cmd("DEL")
            .arg(keys)
            .query_async::<i64>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    };
    match deleted.await {
        Ok(n) => Json(json!({ "output": format!("(integer) {n}") })).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, format!("(error) {e}")),
    }
}

#[derive(Deserialize)]
struct NetworkChange {
    network: String,
    alias: Option<String>,
}

/// `docker network disconnect|connect [--alias A] NETWORK NAME`. Off any home network, or back on
/// it without its service name, the service keeps running but its callers cannot reach it: the
/// reference partitions it (a pause, as it looks to its callers) until every home network has it
/// back under its name.
async fn network(
    State(s): State<Arc<ControlState>>,
    Path((name, action)): Path<(String, String)>,
    Json(q): Json<NetworkChange>,
) -> Response {
    let Some(c) = s.container(&name) else {
        return no_such(&name);
    };
    if c.last == Last::Removed {
        return no_such(&name);
    }
    let mut after = c.clone();
    match action.as_str() {
        "disconnect" if after.networks.remove(&q.network).is_none() => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("container {name} is not connected to network {}", q.network),
            );
        }
        "connect" if after.networks.contains_key(&q.network) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("endpoint with name {name} already exists in network {}", q.network),
            );
        }
        "connect" => {
            after.networks.insert(q.network.clone(), q.alias.clone());
        }
        "disconnect" => {}
        other => return error(StatusCode::BAD_REQUEST, format!("network {other} is not emulated")),
    }
    let spec = FaultSpec {
        instance: c.instance.clone(),
        service: c.service,
        kind: FaultKind::Partition,
    };
    let result = match (c.reachable(), after.reachable()) {
        (true, false) => s.reference.apply(&spec).await,
        (false, true) => s.reference.restore(&spec).await,
        _ => Ok(()),
    };
    match result {
        Ok(()) => {
            if let Ok(mut containers) = s.containers.lock() {
                containers.insert(name.clone(), after);
            }
            Json(json!({ "name": name })).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `docker stop|kill|pause|unpause|start|restart`.
async fn act(State(s): State<Arc<ControlState>>, Path((name, verb)): Path<(String, String)>) -> Response {
    let Some(c) = s.container(&name) else {
        return no_such(&name);
    };
    if c.last == Last::Removed {
        return no_such(&name);
    }
    let spec = |kind| FaultSpec {
        instance: c.instance.clone(),
        service: c.service,
        kind,
    };
    let (result, last) = match verb.as_str() {
        "stop" => (s.reference.apply(&spec(FaultKind::Stop)).await, Last::Exited),
        "kill" => (s.reference.apply(&spec(FaultKind::Kill)).await, Last::Exited),
        "pause" => (s.reference.apply(&spec(FaultKind::Pause)).await, Last::Paused),
        "unpause" => (s.reference.restore(&spec(FaultKind::Pause)).await, Last::Running),
        "start" if c.last == Last::Running => (Ok(()), Last::Running),
        "start" => (s.reference.restore(&spec(FaultKind::Stop)).await, Last::Running),
        "restart" => {
            let stopped = s.reference.apply(&spec(FaultKind::Stop)).await;
            let started = match stopped {
                Ok(()) => s.reference.restore(&spec(FaultKind::Stop)).await,
                Err(e) => Err(e),
            };
            (started, Last::Running)
        }
        other => return error(StatusCode::BAD_REQUEST, format!("{other} is not emulated")),
    };
    match result {
        Ok(()) => {
            s.set(&name, last);
            Json(json!({ "name": name })).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(Deserialize, Default)]
struct Deploy {
    #[serde(default)]
    seed: bool,
}

/// `./dive spoke down|up <code>` and deploys: a whole stack at once; a deploy leaves the
/// instance's MongoDB empty unless it seeds.
async fn stack(
    State(s): State<Arc<ControlState>>,
    Path((code, action)): Path<(String, String)>,
    body: Option<Json<Deploy>>,
) -> Response {
    let Ok(inst) = s.reference.instance(&code) else {
        return error(StatusCode::NOT_FOUND, format!("no spoke {code} is deployed"));
    };
    let spec = |kind| FaultSpec {
        instance: inst.code.clone(),
        service: Service::Stack,
        kind,
    };
    let result = match action.as_str() {
        "down" if is_hub(&code) => return error(StatusCode::BAD_REQUEST, "USA is the hub, not a spoke"),
        "down" => s.reference.apply(&spec(FaultKind::Stop)).await.map(|()| Last::Removed),
        "up" => s
            .reference
            .restore(&spec(FaultKind::Stop))
            .await
            .map(|()| Last::Running),
        "deploy" => {
            let seed = body.is_some_and(|b| b.seed);
            let resources = if seed {
                seed_resources(&inst.code, s.reference.behaviour.seeded_resources)
            } else {
                HashMap::new()
            };
            if let Ok(mut docs) = inst.resources.write() {
                *docs = resources;
            }
            Ok(Last::Running)
        }
        other => return error(StatusCode::BAD_REQUEST, format!("{other} is not emulated")),
    };
    match result {
        Ok(last) => {
            s.set_stack(&code, last);
            Json(json!({ "stack": code, "action": action })).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
