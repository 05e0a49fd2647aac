//! `check`: is a live target reachable as configured? Every probe reads only: no fault, no login,
//! no traffic, no ledger sweep. The live entry point (`scripts/live`) runs it before anything else.

use std::time::Duration;

use reqwest::Method;

use super::control::container_name;
use super::{answering_scheme, probe_health_base};
use crate::infra::config::LiveConfig;
use crate::infra::exec::Exec;
use crate::infra::http::{Http, join};
use crate::vocab::coalition::HUB;
use crate::vocab::fault::Service;

/// One probe of the check: what was asked, and what came back.
pub struct Checked {
    pub what: String,
    pub result: Result<String, String>,
}

/// Probes the hub's backend and Keycloak, every configured spoke, Prometheus, AlertManager and the
/// container runtime.
pub async fn check(live: &LiveConfig) -> Vec<Checked> {
    let mut probes = Vec::new();
    let http = match Http::for_trust(&live.trust) {
        Ok(http) => http,
        Err(e) => {
            probes.push(Checked {
                what: "TLS trust".to_string(),
                result: Err(e),
            });
            return probes;
        }
    };
    let mut backends = vec![(HUB.to_string(), live.hub_backend.clone())];
    if !live.discover_spokes {
        backends.extend(live.spokes.iter().map(|s| (s.code.clone(), s.backend.clone())));
    }
    for (code, backend) in backends {
        probes.push(Checked {
            what: format!("{code} backend at {backend}"),
            result: probe_health_base(&http, &backend)
                .await
                .map(|base| format!("health API at {base}"))
                .map_err(|f| f.message),
        });
    }
    let realm = join(
        &live.hub_keycloak,
        "/realms/dive-v3-broker-usa/.well-known/openid-configuration",
    );
    // HEAD serves its monitoring over HTTPS whatever the URL says: ask as the live target does.
    let prometheus = answering_scheme(&http, &live.prometheus, "/-/ready").await;
    let alertmanager = answering_scheme(&http, &live.alertmanager, "/-/ready").await;
    let monitoring = [
        ("hub Keycloak realm", realm),
        ("Prometheus", join(&prometheus, "/-/ready")),
        ("AlertManager", join(&alertmanager, "/-/ready")),
    ];
    for (what, url) in monitoring {
        let asked = http.request(Method::GET, &url).timeout(Duration::from_secs(10));
        probes.push(Checked {
            what: format!("{what} at {url}"),
            result: match http.text(asked).await {
                Ok((status, _, _)) if status.is_success() => Ok(format!("HTTP {}", status.as_u16())),
                Ok((status, _, _)) => Err(format!("answered HTTP {}", status.as_u16())),
                Err(e) => Err(e.to_string()),
            },
        });
    }
    let listed = Exec::new(&live.container_runtime)
        .args(["ps", "--format", "{{.Names}}"])
        .must_succeed()
        .await;
    let hub_backend = container_name(HUB, Service::Backend);
    probes.push(Checked {
        what: format!("{} lists DIVE's containers", live.container_runtime),
        result: match listed {
            Ok(out) if out.stdout.lines().any(|l| l.trim() == hub_backend) => Ok(format!(
                "{} containers running, {hub_backend} among them",
                out.stdout.lines().count()
            )),
            Ok(_) => Err(format!("{hub_backend} is not running")),
            Err(e) => Err(e),
        },
    });
    probes
}
