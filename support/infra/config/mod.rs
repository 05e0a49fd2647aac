//! The suite's configuration: every environment variable it understands, read once into one typed
//! value. Nothing else in the suite reads the environment. A bad value stops the run with one line
//! that names the variable and the fix, before any fault or traffic.

// The one module allowed to read the environment (see clippy.toml).
#![allow(clippy::disallowed_methods)]

mod file;
mod live;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use reqwest::Url;

use crate::infra::exec::Exec;
use crate::vocab::coalition::{self, DEFAULT_TEST_PASSWORD, HUB};
use crate::vocab::slo::LOAD_TICK;

/// What the tests run against.
#[derive(Debug, Clone)]
pub enum Target {
    Reference(ReferenceConfig),
    Live(Box<LiveConfig>),
}

/// Which DIVE the reference deployment reproduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// DIVE as the plan intends it: every requirement holds.
    Intended,
    /// DIVE as shipped at commit 15a319e6.
    DiveV15a,
    /// DIVE as shipped at commit d85d9ec4.
    DiveHead,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::Intended, Profile::DiveV15a, Profile::DiveHead];

    pub fn name(self) -> &'static str {
        match self {
            Profile::Intended => "intended",
            Profile::DiveV15a => "dive-v15a",
            Profile::DiveHead => "dive-head",
        }
    }
}

/// Where the reference deployment gets Redis and the monitoring programs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// Programs found on PATH, run as child processes.
    Local,
    /// Official images through testcontainers; needs a Docker daemon.
    Docker,
}

#[derive(Debug, Clone)]
pub struct ReferenceConfig {
    pub profile: Profile,
    /// Explicit choice from `DIVE_REFERENCE_RUNTIME`; `None` picks Docker only when a daemon answers.
    pub runtime: Option<Runtime>,
}

/// A secret read from the environment: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// How HTTPS peers are verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Trust exactly the certificates of this PEM bundle.
    CaBundle(PathBuf),
    /// No verification at all (`DIVE_TLS_INSECURE=1`).
    Insecure,
}

#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub root: PathBuf,
    pub hub_backend: Url,
    pub hub_keycloak: Url,
    pub trust: Trust,
    pub client_secret: Option<Secret>,
    pub user: String,
    pub password: Secret,
    /// The program that stops and starts DIVE's containers (`docker` unless overridden).
    pub container_runtime: String,
    /// DIVE's Prometheus (`PROMETHEUS_URL`; HTTPS at HEAD).
    pub prometheus: Url,
    /// DIVE's AlertManager (`ALERTMANAGER_URL`).
    pub alertmanager: Url,
    /// The backend URL of each spoke in `Config::spokes`; with `discover_spokes`, of every spoke
    /// DIVE knows, from which the deployment keeps those that run.
    pub spokes: Vec<SpokeUrls>,
    /// `DIVE_SPOKES=all`: the spokes are those whose containers run, cross-checked against the
    /// hub's federation registry when the deployment starts.
    pub discover_spokes: bool,
    /// `DIVE_LIVE_DEPLOY=1`: 5.1-deploy runs a clean-slate deploy through `./dive`.
    pub deploy: bool,
    /// `DIVE_SILENCE_ALERTS=1`: each test silences the catalogue's alerts in DIVE's AlertManager
    /// while it runs (see `deployment::silences`).
    pub silence_alerts: bool,
    /// `DIVE_REVOCATION_STORE`: the store's container, when the hub backend's
    /// `BLACKLIST_REDIS_URL` does not lead to it.
    pub revocation_store: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpokeUrls {
    pub code: String,
    pub backend: Url,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    /// DIVE's timers multiplied by this: 0.1 on the reference unless set, 1 on a live DIVE unless
    /// it runs shortened timers.
    pub time_scale: f64,
    /// Where journals and the fault ledger live.
    pub state_dir: PathBuf,
    /// `DIVE_DRY_RUN=1`: show what each scenario would do to the target, and do nothing to it.
    pub dry_run: bool,
    /// Running in CI (`CI` set): nothing that should run may be skipped.
    pub ci: bool,
    /// Spoke codes of the multi-spoke phase (`DIVE_SPOKES`, default TST,FRA,DEU), upper case: any
    /// spoke DIVE knows. On a live target they must not clash on host ports (see
    /// `coalition::clashes`); the reference gives every instance ephemeral ports, so there they may.
    /// `all` is every NATO spoke on the reference, and on a live target none here: the live
    /// deployment finds the spokes DIVE runs (`LiveConfig::discover_spokes`).
    pub spokes: Vec<String>,
    /// The user whose token the revocation scenario revokes (`DIVE_REVOKE_USER`): dedicated to
    /// it, because a revocation locks the user out until it expires.
    pub revoke_user: String,
    /// Names this run's journal folder: nextest's run id, else start time and process id.
    pub run_id: String,
    /// The Docker daemon's socket (`DOCKER_HOST=unix://...`, else the standard path).
    pub docker_socket: PathBuf,
    /// Inherited variables that change the behaviour of `./dive` (`INSTANCE`,
    /// `COMPOSE_PROJECT_NAME`, every `*_LOADED`): removed from its environment.
    pub dive_leaky_vars: Vec<String>,
    /// `DIVE_LIVE_SHAPED`: which DIVE the live-shaped reference poses as when the suite serves
    /// one for a live run of its own (`scripts/live-shaped`): `head-intended`, `dive-head`,
    /// `dive-v15a`.
    pub live_shaped: Option<String>,
    /// Phase 4.5: requests per second the load sends to an instance (`DIVE_LOAD_RATE`).
    pub load_rate: f64,
    /// Phase 4.5: the most requests per second the harness may send while it loads an instance,
    /// its health polls included (`DIVE_LOAD_MAX_RATE`; [`LOAD_RATE_CAP`] unless lifted).
    pub load_max_rate: f64,
    /// Phase 4.4's chaos: which schedule runs, and whether it may run on a live DIVE.
    pub chaos: ChaosConfig,
}

/// `DIVE_CHAOS`, `DIVE_CHAOS_SEED`, `DIVE_CHAOS_SCHEDULE`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChaosConfig {
    /// `DIVE_CHAOS=1`: the operator allows chaos on a live DIVE (the reference always allows it).
    pub live: bool,
    /// `DIVE_CHAOS_SEED`: the seed of the one schedule to run, replacing a fresh one.
    pub seed: Option<u64>,
    /// `DIVE_CHAOS_SCHEDULE`: a journaled schedule (JSON) to replay exactly, a shrunk one included.
    pub schedule: Option<PathBuf>,
}

/// The load a shared deployment gets by default, in requests per second: with the health polls
/// of a scenario under load (one every [`LOAD_TICK`]) the harness sends 20 a second in all.
pub const DEFAULT_LOAD_RATE: f64 = 15.0;

/// The cap on what the harness sends while it loads a target, polls included, unless
/// `DIVE_LOAD_MAX_RATE` lifts it: the design's 20 requests a second to a shared target.
pub const LOAD_RATE_CAP: f64 = 20.0;

/// The most `DIVE_LOAD_MAX_RATE` may allow: the highest rate at which the generator's schedule
/// lag held under 1 ms at p99 on a two-core machine (docs/load-under-failure.md); it keeps pace
/// far beyond that, so the generator is never the bottleneck.
pub const LOAD_RATE_CEILING: f64 = 1_000.0;

/// The least load rate: each of a scenario's two streams (a quarter goes to the unrelated route)
/// must put a request in every one-second window.
pub const MIN_LOAD_RATE: f64 = 4.0;

/// One bad variable: which one, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub var: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration: {}: {}", self.var, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn bad(var: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var: var.to_string(),
        problem: problem.into(),
    }
}

impl Config {
    /// Reads the configuration from `vars` (the process environment in [`config`]; a map in tests).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        // DIVE_CONFIG: a file's settings first, then every variable that is set wins over them.
        let merged;
        let vars = match vars.get("DIVE_CONFIG").map(|v| v.trim()).filter(|v| !v.is_empty()) {
            Some(path) => {
                let mut from_file = file::vars_of(Path::new(path))?;
                from_file.extend(
                    vars.iter()
                        .filter(|(_, v)| !v.trim().is_empty())
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
                merged = from_file;
                &merged
            }
            None => vars,
        };
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let flag = |name: &'static str| -> Result<bool, ConfigError> {
            match get(name) {
                None | Some("0") | Some("false") => Ok(false),
                Some("1") | Some("true") => Ok(true),
                Some(other) => Err(bad(name, format!("`{other}` is not a flag; use 1 or 0"))),
            }
        };
        let (allow_remote, insecure) = (flag("DIVE_ALLOW_REMOTE")?, flag("DIVE_TLS_INSECURE")?);
        if let Some(id) = get("DIVE_RUN_ID")
            && (id.starts_with('.')
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        {
            return Err(bad(
                "DIVE_RUN_ID",
                format!("`{id}` names a folder: use letters, digits, '-', '_' and '.' (not first) only"),
            ));
        }
        let state_dir = get("DIVE_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dive-resilience"));

        // `all`: on a live target the spokes DIVE has deployed, found when the deployment starts; on
        // the reference, every NATO spoke.
        let all_spokes = get("DIVE_SPOKES").is_some_and(|s| s.trim().eq_ignore_ascii_case("all"));
        let mut spokes = if all_spokes {
            coalition::nato_spokes().map(str::to_string).collect()
        } else {
            spoke_codes(get("DIVE_SPOKES").unwrap_or("TST,FRA,DEU"))?
        };
        let target = match get("DIVE_TARGET").unwrap_or("reference") {
            "reference" => {
                let profile = match get("DIVE_PROFILE").unwrap_or("intended") {
                    "intended" => Profile::Intended,
                    "dive-v15a" => Profile::DiveV15a,
                    "dive-head" => Profile::DiveHead,
                    other => {
                        return Err(bad(
                            "DIVE_PROFILE",
                            format!("unknown profile `{other}`; use intended, dive-v15a or dive-head"),
                        ));
                    }
                };
                let runtime = match get("DIVE_REFERENCE_RUNTIME") {
                    None => None,
                    Some("local") => Some(Runtime::Local),
                    Some("docker") => Some(Runtime::Docker),
                    Some(other) => {
                        return Err(bad(
                            "DIVE_REFERENCE_RUNTIME",
                            format!("unknown runtime `{other}`; use local or docker, or unset it"),
                        ));
                    }
                };
                Target::Reference(ReferenceConfig { profile, runtime })
            }
            "live" => {
                const REFERENCE_ONLY: [&str; 2] = ["DIVE_PROFILE", "DIVE_REFERENCE_RUNTIME"];
                for var in REFERENCE_ONLY {
                    if get(var).is_some() {
                        return Err(bad(
                            var,
                            "applies to the reference target only; unset it for DIVE_TARGET=live",
                        ));
                    }
                }
                if all_spokes {
                    spokes.clear();
                }
                Target::Live(Box::new(live::live_config(
                    &get,
                    &spokes,
                    all_spokes,
                    allow_remote,
                    insecure,
                )?))
            }
            other => {
                return Err(bad(
                    "DIVE_TARGET",
                    format!("unknown target `{other}`; use reference (the default) or live"),
                ));
            }
        };

        // The reference runs DIVE's timers at a tenth by default; a live DIVE at its own (a DIVE
        // deliberately run with shortened timers, such as the live-shaped reference, says so here).
        let time_scale = match (&target, get("DIVE_TIME_SCALE")) {
            (Target::Live(_), None) => 1.0,
            (Target::Reference(_), None) => 0.1,
            (_, Some(raw)) => match raw.parse::<f64>() {
                Ok(scale) if scale > 0.0 && scale <= 1.0 => scale,
                _ => {
                    return Err(bad(
                        "DIVE_TIME_SCALE",
                        format!("`{raw}` is not a number in (0, 1]; use 0.1 (default) up to 1 (DIVE's real timers)"),
                    ));
                }
            },
        };

        let (load_rate, load_max_rate) = load_rates(get("DIVE_LOAD_RATE"), get("DIVE_LOAD_MAX_RATE"))?;
        let chaos = ChaosConfig {
            live: flag("DIVE_CHAOS")?,
            seed: match get("DIVE_CHAOS_SEED") {
                None => None,
                Some(raw) => Some(raw.parse::<u64>().map_err(|_| {
                    bad(
                        "DIVE_CHAOS_SEED",
                        format!("`{raw}` is not a seed; use the number a chaos run printed, such as 42"),
                    )
                })?),
            },
            schedule: match get("DIVE_CHAOS_SCHEDULE") {
                None => None,
                Some(path) if Path::new(path).is_file() => Some(PathBuf::from(path)),
                Some(path) => {
                    return Err(bad(
                        "DIVE_CHAOS_SCHEDULE",
                        format!(
                            "`{path}` is not a file; point it at a schedule a chaos run journaled (schedule-*.json)"
                        ),
                    ));
                }
            },
        };
        if chaos.seed.is_some() && chaos.schedule.is_some() {
            return Err(bad(
                "DIVE_CHAOS_SCHEDULE",
                "names a schedule and DIVE_CHAOS_SEED a seed; set one of them",
            ));
        }

        Ok(Config {
            target,
            time_scale,
            load_rate,
            load_max_rate,
            state_dir,
            ci: get("CI").is_some_and(|v| v != "0" && v != "false"),
            dry_run: flag("DIVE_DRY_RUN")?,
            spokes,
            revoke_user: get("DIVE_REVOKE_USER").unwrap_or("testuser-usa-5").to_string(),
            // DIVE_RUN_ID: one run folder for several test processes (scripts/live runs each
            // scenario on its own and wants one summary).
            run_id: get("DIVE_RUN_ID")
                .or(get("NEXTEST_RUN_ID"))
                .map(str::to_string)
                .unwrap_or_else(|| {
                    let secs = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    format!("{secs}-{}", std::process::id())
                }),
            docker_socket: get("DOCKER_HOST")
                .and_then(|h| h.strip_prefix("unix://"))
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock")),
            live_shaped: get("DIVE_LIVE_SHAPED").map(str::to_string),
            chaos,
            dive_leaky_vars: vars
                .keys()
                .filter(|k| *k == "INSTANCE" || *k == "COMPOSE_PROJECT_NAME" || k.ends_with("_LOADED"))
                .cloned()
                .collect(),
        })
    }

    /// The time scale of reference deployments in this run: the configured one on the reference
    /// target; on a live target (self-checks, dry-run rehearsals) the reference default, 0.1.
    pub fn reference_scale(&self) -> f64 {
        match self.target {
            Target::Reference(_) => self.time_scale,
            Target::Live(_) => 0.1,
        }
    }

    pub fn profile(&self) -> Option<Profile> {
        match &self.target {
            Target::Reference(r) => Some(r.profile),
            Target::Live(_) => None,
        }
    }
}

/// `DIVE_LOAD_RATE` and `DIVE_LOAD_MAX_RATE`: the load's rate, and the cap on everything the
/// harness sends while it loads (the load plus its health polls), which only an explicit
/// `DIVE_LOAD_MAX_RATE` lifts.
fn load_rates(rate: Option<&str>, max: Option<&str>) -> Result<(f64, f64), ConfigError> {
    let number = |var: &str, raw: &str, range: &str, ok: &dyn Fn(f64) -> bool| -> Result<f64, ConfigError> {
        match raw.parse::<f64>() {
            Ok(n) if n.is_finite() && ok(n) => Ok(n),
            _ => Err(bad(
                var,
                format!("`{raw}` is not a number of requests per second {range}"),
            )),
        }
    };
    let max_rate = match max {
        None => LOAD_RATE_CAP,
        Some(raw) => number(
            "DIVE_LOAD_MAX_RATE",
            raw,
            &format!("in (0, {LOAD_RATE_CEILING}]; the generator holds no more"),
            &|n| n > 0.0 && n <= LOAD_RATE_CEILING,
        )?,
    };
    let rate = match rate {
        None => DEFAULT_LOAD_RATE,
        Some(raw) => number(
            "DIVE_LOAD_RATE",
            raw,
            &format!("of at least {MIN_LOAD_RATE}; the default is {DEFAULT_LOAD_RATE}"),
            &|n| n >= MIN_LOAD_RATE,
        )?,
    };
    let polls = 1.0 / LOAD_TICK.as_secs_f64();
    if rate + polls > max_rate {
        let fix = if max.is_some() {
            "lower it or raise DIVE_LOAD_MAX_RATE"
        } else {
            "lower it, or lift the cap deliberately with DIVE_LOAD_MAX_RATE"
        };
        return Err(bad(
            "DIVE_LOAD_RATE",
            format!(
                "{rate} requests/s plus {polls} health polls/s is over the cap of {max_rate}/s a shared deployment gets; {fix}"
            ),
        ));
    }
    Ok((rate, max_rate))
}

/// The spokes named in `DIVE_SPOKES`, in their canonical spelling: codes DIVE knows (NATO,
/// partner, test or ISO 3166 alpha-3), each once, never the hub.
fn spoke_codes(raw: &str) -> Result<Vec<String>, ConfigError> {
    const EXAMPLE: &str = "such as TST,FRA,DEU";
    let mut codes: Vec<String> = Vec::new();
    for code in raw.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let Some(known) = coalition::canonical(code) else {
            return Err(bad(
                "DIVE_SPOKES",
                format!(
                    "`{code}` is not a code DIVE knows (NATO, partner, test or ISO 3166 alpha-3); name spokes {EXAMPLE}"
                ),
            ));
        };
        if known == HUB {
            return Err(bad(
                "DIVE_SPOKES",
                format!("`{code}` is the hub, which every run has; name spokes only, {EXAMPLE}"),
            ));
        }
        if codes.iter().any(|c| c == known) {
            return Err(bad(
                "DIVE_SPOKES",
                format!("names `{known}` twice; name each spoke once"),
            ));
        }
        codes.push(known.to_string());
    }
    if codes.is_empty() {
        return Err(bad(
            "DIVE_SPOKES",
            format!("lists no spoke; name one or more, {EXAMPLE}"),
        ));
    }
    Ok(codes)
}

static CONFIG: OnceLock<Result<Config, ConfigError>> = OnceLock::new();

/// The configuration of this run, read from the environment on first use.
pub fn config() -> Result<&'static Config, &'static ConfigError> {
    CONFIG
        .get_or_init(|| {
            let vars: HashMap<String, String> = std::env::vars().collect();
            let cfg = Config::from_vars(&vars)?;
            if let Target::Live(live) = &cfg.target
                && live.trust == Trust::Insecure
            {
                eprintln!(
                    "WARNING: DIVE_TLS_INSECURE=1: TLS certificates are NOT verified; anyone on the path can read the tokens"
                );
            }
            Ok(cfg)
        })
        .as_ref()
}

/// Like [`config`], for tests: a bad configuration fails the test with its one line.
#[track_caller]
pub fn must_config() -> &'static Config {
    match config() {
        Ok(cfg) => cfg,
        Err(e) => panic!("{e}"),
    }
}
