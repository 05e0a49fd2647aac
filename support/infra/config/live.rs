//! The live target's part of the configuration: where DIVE is, how to reach and trust it, whose
//! credentials to use, and the guard against testing a host that is not this machine.

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};

use reqwest::Url;

use super::*;

pub(super) fn live_config<'a>(
    get: &dyn Fn(&str) -> Option<&'a str>,
    spokes: &[String],
    discover_spokes: bool,
    allow_remote: bool,
    insecure: bool,
) -> Result<LiveConfig, ConfigError> {
    // With `all`, every code is a candidate; the clash check then applies to those that run.
    let candidates: Vec<String> = if discover_spokes {
        coalition::known_spokes().map(str::to_string).collect()
    } else {
        spokes.to_vec()
    };
    // One host cannot bind a port twice, so DIVE cannot run spokes whose ports clash side by side
    // (the reference can: its ports are ephemeral).
    let site: Vec<&str> = std::iter::once(HUB).chain(spokes.iter().map(String::as_str)).collect();
    if let Some(clash) = coalition::clashes(&site).into_iter().next() {
        return Err(bad(
            "DIVE_SPOKES",
            format!("{clash}: one host cannot run that; leave out a spoke this line names"),
        ));
    }
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
        spokes: candidates
            .iter()
            .map(|code| spoke_urls(get, code, allow_remote))
            .collect::<Result<_, _>>()?,
        discover_spokes,
        revocation_store: get("DIVE_REVOCATION_STORE").map(str::to_string),
        silence_alerts: match get("DIVE_SILENCE_ALERTS") {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(bad(
                    "DIVE_SILENCE_ALERTS",
                    format!("`{other}` is not a flag; use 1 to silence the alerts a run induces"),
                ));
            }
        },
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

/// A spoke's backend: `https://localhost:<backend port>` by DIVE's port rules, overridable with
/// `DIVE_SPOKE_<CODE>_BACKEND_URL`. (Tokens always come from the hub's Keycloak: the suite tests
/// what hub-issued tokens do on spokes.)
fn spoke_urls<'a>(
    get: &dyn Fn(&str) -> Option<&'a str>,
    code: &str,
    allow_remote: bool,
) -> Result<SpokeUrls, ConfigError> {
    let ports =
        coalition::ports(code).ok_or_else(|| bad("DIVE_SPOKES", format!("`{code}` is not a code DIVE knows")))?;
    let backend_var = format!("DIVE_SPOKE_{code}_BACKEND_URL");
    let backend = url_var(
        get,
        &backend_var,
        &format!("https://localhost:{}", ports.backend),
        allow_remote,
    )?;
    Ok(SpokeUrls {
        code: code.to_string(),
        backend,
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
    let out = Exec::new("mkcert")
        .arg("-CAROOT")
        .deadline(std::time::Duration::from_secs(10))
        .run_blocking()
        .ok()?;
    let dir = out.stdout.trim();
    (out.success() && !dir.is_empty()).then(|| PathBuf::from(dir))
}
