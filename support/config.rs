//! The suite's configuration: every environment variable it understands, read once into one typed
//! value. Nothing else in the suite reads the environment. A bad value stops the run with one line
//! that names the variable and the fix, before any fault or traffic.

use std::collections::HashMap;
use std::fmt;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use reqwest::Url;

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
    /// Backend and Keycloak URLs of each spoke in `Config::spokes`.
    pub spokes: Vec<SpokeUrls>,
    /// `DIVE_LIVE_DEPLOY=1`: 5.1-deploy runs a clean-slate deploy through `./dive`.
    pub deploy: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpokeUrls {
    pub code: String,
    pub backend: Url,
    pub keycloak: Url,
}

/// Port offsets of the instance codes the suite knows (contract section 1).
pub const PORT_OFFSETS: &[(&str, u16)] = &[
    ("USA", 0),
    ("EST", 8),
    ("FRA", 10),
    ("DEU", 11),
    ("GBR", 31),
    ("TST", 200),
    ("DEV", 201),
    ("QAA", 202),
];

/// The port offset of a known instance code.
pub fn port_offset(code: &str) -> Option<u16> {
    PORT_OFFSETS
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(code))
        .map(|(_, o)| *o)
}

#[derive(Debug, Clone)]
pub struct Config {
    pub target: Target,
    /// DIVE's timers multiplied by this; 1 for live.
    pub time_scale: f64,
    /// Where journals and the fault ledger live.
    pub state_dir: PathBuf,
    /// `DIVE_DRY_RUN=1`: show what each scenario would do to the target, and do nothing to it.
    pub dry_run: bool,
    /// Running in CI (`CI` set): nothing that should run may be skipped.
    pub ci: bool,
    /// Spoke codes of the multi-spoke phase (`DIVE_SPOKES`, default TST,FRA,DEU), upper case.
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
}

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

/// Default password of DIVE's seeded test users (contract section 6).
const DEFAULT_TEST_PASSWORD: &str = "TestUser2025!Pilot";

impl Config {
    /// Reads the configuration from `vars` (the process environment in [`config`]; a map in tests).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |name: &str| vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let flag = |name: &'static str| -> Result<bool, ConfigError> {
            match get(name) {
                None | Some("0") | Some("false") => Ok(false),
                Some("1") | Some("true") => Ok(true),
                Some(other) => Err(bad(name, format!("`{other}` is not a flag; use 1 or 0"))),
            }
        };
        let (allow_remote, insecure) = (flag("DIVE_ALLOW_REMOTE")?, flag("DIVE_TLS_INSECURE")?);
        let state_dir = get("DIVE_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dive-resilience"));

        let spokes = spoke_codes(get("DIVE_SPOKES").unwrap_or("TST,FRA,DEU"))?;
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
                const REFERENCE_ONLY: [&str; 3] = ["DIVE_PROFILE", "DIVE_TIME_SCALE", "DIVE_REFERENCE_RUNTIME"];
                for var in REFERENCE_ONLY {
                    if get(var).is_some() {
                        return Err(bad(
                            var,
                            "applies to the reference target only; unset it for DIVE_TARGET=live",
                        ));
                    }
                }
                Target::Live(Box::new(live_config(&get, &spokes, allow_remote, insecure)?))
            }
            other => {
                return Err(bad(
                    "DIVE_TARGET",
                    format!("unknown target `{other}`; use reference (the default) or live"),
                ));
            }
        };

        let time_scale = match (&target, get("DIVE_TIME_SCALE")) {
            (Target::Live(_), _) => 1.0,
            (Target::Reference(_), None) => 0.1,
            (Target::Reference(_), Some(raw)) => match raw.parse::<f64>() {
                Ok(scale) if scale > 0.0 && scale <= 1.0 => scale,
                _ => {
                    return Err(bad(
                        "DIVE_TIME_SCALE",
                        format!("`{raw}` is not a number in (0, 1]; use 0.1 (default) up to 1 (DIVE's real timers)"),
                    ));
                }
            },
        };

        Ok(Config {
            target,
            time_scale,
            state_dir,
            ci: get("CI").is_some_and(|v| v != "0" && v != "false"),
            dry_run: flag("DIVE_DRY_RUN")?,
            spokes,
            revoke_user: get("DIVE_REVOKE_USER").unwrap_or("testuser-usa-5").to_string(),
            run_id: get("NEXTEST_RUN_ID").map(str::to_string).unwrap_or_else(|| {
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

fn spoke_codes(raw: &str) -> Result<Vec<String>, ConfigError> {
    let codes: Vec<String> = raw
        .split(',')
        .map(|c| c.trim().to_uppercase())
        .filter(|c| !c.is_empty())
        .collect();
    let known = || {
        PORT_OFFSETS
            .iter()
            .skip(1)
            .map(|(c, _)| *c)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if codes.is_empty() {
        return Err(bad(
            "DIVE_SPOKES",
            format!("lists no spoke; name one or more of {}", known()),
        ));
    }
    for code in &codes {
        if code == "USA" || port_offset(code).is_none() {
            return Err(bad(
                "DIVE_SPOKES",
                format!("unknown spoke code `{code}`; use codes among {}", known()),
            ));
        }
    }
    Ok(codes)
}

fn live_config<'a>(
    get: &dyn Fn(&str) -> Option<&'a str>,
    spokes: &[String],
    allow_remote: bool,
    insecure: bool,
) -> Result<LiveConfig, ConfigError> {
    let root = PathBuf::from(
        get("DIVE_ROOT").ok_or_else(|| bad("DIVE_ROOT", "not set; point it at the DIVE checkout that holds ./dive"))?,
    );
    if !root.join("dive").is_file() {
        return Err(bad(
            "DIVE_ROOT",
            format!(
                "{} has no ./dive; point it at the top of a DIVE checkout",
                root.display()
            ),
        ));
    }
    let hub_backend = url_var(get, "HUB_BACKEND_URL", "https://localhost:4000", allow_remote)?;
    let hub_keycloak = url_var(get, "HUB_KEYCLOAK_URL", "https://localhost:8443", allow_remote)?;
    let trust = if insecure {
        Trust::Insecure
    } else {
        Trust::CaBundle(ca_bundle(get, &root)?)
    };
    Ok(LiveConfig {
        root,
        hub_backend,
        hub_keycloak,
        trust,
        client_secret: get("DIVE_KEYCLOAK_CLIENT_SECRET").map(Secret::new),
        user: get("DIVE_TEST_USER").unwrap_or("testuser-usa-1").to_string(),
        password: Secret::new(get("DIVE_TEST_PASSWORD").unwrap_or(DEFAULT_TEST_PASSWORD)),
        container_runtime: get("DIVE_CONTAINER_RUNTIME").unwrap_or("docker").to_string(),
        prometheus: url_var(get, "PROMETHEUS_URL", "http://localhost:9090", allow_remote)?,
        alertmanager: url_var(get, "ALERTMANAGER_URL", "http://localhost:9093", allow_remote)?,
        spokes: spokes
            .iter()
            .map(|code| spoke_urls(get, code, allow_remote))
            .collect::<Result<_, _>>()?,
        deploy: match get("DIVE_LIVE_DEPLOY") {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(bad(
                    "DIVE_LIVE_DEPLOY",
                    format!("`{other}` is not a flag; use 1 to allow a clean-slate deploy"),
                ));
            }
        },
    })
}

/// A spoke's URLs: the contract's port table, overridable with `DIVE_SPOKE_<CODE>_BACKEND_URL`
/// and `DIVE_SPOKE_<CODE>_KEYCLOAK_URL`.
fn spoke_urls<'a>(
    get: &dyn Fn(&str) -> Option<&'a str>,
    code: &str,
    allow_remote: bool,
) -> Result<SpokeUrls, ConfigError> {
    let offset = port_offset(code).unwrap_or_default();
    let backend_var = format!("DIVE_SPOKE_{code}_BACKEND_URL");
    let keycloak_var = format!("DIVE_SPOKE_{code}_KEYCLOAK_URL");
    let backend = url_var(
        get,
        &backend_var,
        &format!("https://localhost:{}", 4000 + offset),
        allow_remote,
    )?;
    let keycloak = url_var(
        get,
        &keycloak_var,
        &format!("https://localhost:{}", 8443 + offset),
        allow_remote,
    )?;
    Ok(SpokeUrls {
        code: code.to_string(),
        backend,
        keycloak,
    })
}

/// Parses a URL variable and refuses a host that does not resolve to loopback only, unless the
/// user opted in with `DIVE_ALLOW_REMOTE=1`.
pub fn url_var<'a>(
    get: &dyn Fn(&str) -> Option<&'a str>,
    var: &str,
    default: &str,
    allow_remote: bool,
) -> Result<Url, ConfigError> {
    let raw = get(var).unwrap_or(default);
    let url = Url::parse(raw).map_err(|e| {
        bad(
            var,
            format!("`{raw}` is not a URL ({e}); use the form https://localhost:4000"),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(
            var,
            format!("`{raw}` is not http(s); use the form https://localhost:4000"),
        ));
    }
    let host = url.host_str().ok_or_else(|| bad(var, format!("`{raw}` has no host")))?;
    if !allow_remote {
        let port = url.port_or_known_default().unwrap_or(443);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(|e| bad(var, format!("cannot resolve `{host}` ({e}); check the URL")))?
            .collect();
        if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(bad(
                var,
                format!(
                    "`{host}` is not loopback; the suite injects faults, so set DIVE_ALLOW_REMOTE=1 only if you mean to test that host"
                ),
            ));
        }
    }
    Ok(url)
}

/// The CA bundle: `DIVE_CA_CERT`, else DIVE's copies of the mkcert root (v15a, then HEAD), else
/// mkcert's own. The file must hold at least one PEM certificate.
fn ca_bundle<'a>(get: &dyn Fn(&str) -> Option<&'a str>, root: &Path) -> Result<PathBuf, ConfigError> {
    let path = match get("DIVE_CA_CERT") {
        Some(p) => PathBuf::from(p),
        None => {
            let mut candidates = vec![
                root.join("instances/hub/certs/rootCA.pem"),
                root.join("certs/ca-bundle/rootCA.pem"),
            ];
            if let Some(dir) = mkcert_caroot() {
                candidates.push(dir.join("rootCA.pem"));
            }
            candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
                bad(
                    "DIVE_CA_CERT",
                    "not set and no rootCA.pem under DIVE_ROOT; set it to DIVE's CA bundle (or DIVE_TLS_INSECURE=1 to skip verification)",
                )
            })?
        }
    };
    let pem = std::fs::read(&path).map_err(|e| {
        bad(
            "DIVE_CA_CERT",
            format!(
                "cannot read {} ({e}); point it at a readable PEM bundle",
                path.display()
            ),
        )
    })?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(path),
        _ => Err(bad(
            "DIVE_CA_CERT",
            format!(
                "{} holds no PEM certificate; point it at DIVE's rootCA.pem",
                path.display()
            ),
        )),
    }
}

/// `mkcert -CAROOT`, when mkcert is installed.
fn mkcert_caroot() -> Option<PathBuf> {
    let out = std::process::Command::new("mkcert").arg("-CAROOT").output().ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !dir.trim().is_empty()).then(|| PathBuf::from(dir.trim()))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn fails_on(pairs: &[(&str, &str)], var: &str, says: &str) {
        refused(cfg(pairs), var, says);
    }

    fn refused(result: Result<Config, ConfigError>, var: &str, says: &str) {
        let err = result.expect_err("bad configuration");
        assert_eq!(err.var, var, "{err}");
        let line = err.to_string();
        assert!(line.contains(says), "{line}");
        assert!(!line.contains('\n'), "one line: {line}");
    }

    /// A valid live target (the fake DIVE checkout and the test CA), changed by `extra`; an empty
    /// value unsets a variable.
    fn live(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let fixture = |name: &str| Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
        let mut vars: HashMap<String, String> = [
            ("DIVE_TARGET", "live".to_string()),
            ("DIVE_ROOT", fixture("fake-dive").display().to_string()),
            ("DIVE_CA_CERT", fixture("tls/test-ca.pem").display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_vars(&vars)
    }

    #[test]
    fn defaults_are_the_intended_reference_at_one_tenth() {
        let c = cfg(&[]).expect("empty environment is valid");
        assert_eq!(c.profile(), Some(Profile::Intended));
        assert_eq!(c.time_scale, 0.1);
    }

    #[test]
    fn unknown_target_and_profile_are_refused() {
        fails_on(
            &[("DIVE_TARGET", "staging")],
            "DIVE_TARGET",
            "use reference (the default) or live",
        );
        fails_on(
            &[("DIVE_PROFILE", "v16")],
            "DIVE_PROFILE",
            "use intended, dive-v15a or dive-head",
        );
    }

    #[rstest::rstest]
    #[case("0")]
    #[case("-1")]
    #[case("1.5")]
    #[case("fast")]
    fn time_scale_out_of_range_is_refused(#[case] bad: &str) {
        fails_on(
            &[("DIVE_TIME_SCALE", bad)],
            "DIVE_TIME_SCALE",
            "is not a number in (0, 1]",
        );
    }

    #[test]
    fn time_scale_one_runs_dives_real_timers() {
        assert_eq!(cfg(&[("DIVE_TIME_SCALE", "1")]).map(|c| c.time_scale), Ok(1.0));
    }

    #[test]
    fn live_needs_a_dive_checkout() {
        fails_on(&[("DIVE_TARGET", "live")], "DIVE_ROOT", "point it at the DIVE checkout");
        fails_on(
            &[("DIVE_TARGET", "live"), ("DIVE_ROOT", "/nonexistent")],
            "DIVE_ROOT",
            "has no ./dive",
        );
    }

    #[test]
    fn live_refuses_reference_only_variables() {
        refused(
            live(&[("DIVE_TIME_SCALE", "0.5")]),
            "DIVE_TIME_SCALE",
            "reference target only",
        );
    }

    #[test]
    fn urls_must_be_urls_and_loopback_unless_allowed() {
        refused(
            live(&[("HUB_BACKEND_URL", "localhost:4000")]),
            "HUB_BACKEND_URL",
            "not http(s)",
        );
        refused(
            live(&[("HUB_BACKEND_URL", "https//nohost")]),
            "HUB_BACKEND_URL",
            "is not a URL",
        );
        let remote = ("HUB_KEYCLOAK_URL", "https://192.0.2.10:8443");
        refused(live(&[remote]), "HUB_KEYCLOAK_URL", "DIVE_ALLOW_REMOTE=1");
        assert!(live(&[remote, ("DIVE_ALLOW_REMOTE", "1")]).is_ok());
        assert!(live(&[]).is_ok(), "localhost defaults are loopback");
    }

    #[test]
    fn ca_bundle_must_exist_and_hold_a_certificate() {
        refused(
            live(&[("DIVE_CA_CERT", "/nonexistent/rootCA.pem")]),
            "DIVE_CA_CERT",
            "cannot read",
        );
        let not_pem = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("Cargo.toml")
            .display()
            .to_string();
        refused(
            live(&[("DIVE_CA_CERT", &not_pem)]),
            "DIVE_CA_CERT",
            "holds no PEM certificate",
        );
    }

    #[test]
    fn spokes_must_be_known_codes() {
        fails_on(&[("DIVE_SPOKES", "TST,XYZ")], "DIVE_SPOKES", "unknown spoke code `XYZ`");
        fails_on(&[("DIVE_SPOKES", "USA")], "DIVE_SPOKES", "unknown spoke code `USA`");
        assert_eq!(
            cfg(&[("DIVE_SPOKES", "fra, deu")]).map(|c| c.spokes),
            Ok(vec!["FRA".to_string(), "DEU".to_string()])
        );
    }

    #[test]
    fn live_spoke_urls_follow_the_port_table() {
        let c = live(&[("DIVE_SPOKES", "DEU")]).expect("valid live configuration");
        let Target::Live(live) = &c.target else { panic!("live") };
        assert_eq!(
            live.spokes[0].backend.as_str(),
            "https://localhost:4011/",
            "DEU is 4011, not the plan's 4008"
        );
    }

    #[test]
    fn insecure_needs_no_ca_and_secrets_do_not_print() {
        let c = live(&[
            ("DIVE_CA_CERT", ""),
            ("DIVE_TLS_INSECURE", "1"),
            ("DIVE_TEST_PASSWORD", "hunter2"),
        ])
        .expect("insecure is allowed when asked");
        let Target::Live(live) = &c.target else { panic!("live") };
        assert_eq!(live.trust, Trust::Insecure);
        assert!(!format!("{c:?}").contains("hunter2"));
        fails_on(&[("DIVE_TLS_INSECURE", "yes")], "DIVE_TLS_INSECURE", "is not a flag");
    }
}
