//! Real monitoring for a reference deployment: a Prometheus and an AlertManager started per test
//! on loopback with generated configuration, DIVE's scrape labels, the suite's rule files and
//! DIVE's routes and inhibitions, every timer scaled like the rest of the reference. The profile
//! decides which of DIVE's monitoring defects are reproduced (D3 rule path, D4 inhibition, D8
//! stale targets). Processes die with the deployment (see [`super::redis::Spawner`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

use super::behaviour::Behaviour;
use super::container::Ledgered;
use super::ports::Lease;
use crate::fault::ledger::Ledger;
use crate::infra::config::must_config;
use crate::infra::exec::{Spawner, Tied, runs};
use crate::vocab::alerts::SCRAPE_INTERVAL;
use crate::vocab::units::{go_duration, parse_duration};

/// The rule files the suite ships (DIVE's real durations; scaled per run).
pub const RULE_FIXTURES: &[&str] = &["fixtures/prometheus/rules/dive-resilience.yml"];
const ALERTMANAGER_FIXTURE: &str = "fixtures/alertmanager/alertmanager.yml";

/// A backend Prometheus scrapes: DIVE's job name and the `instance` label it sets.
#[derive(Debug, Clone)]
pub struct ScrapeTarget {
    pub job: String,
    pub instance: String,
    pub address: String,
}

/// The monitoring pair of one reference deployment: child processes, or containers.
pub struct ReferenceMonitoring {
    pub prometheus: Url,
    pub alertmanager: Url,
    /// The generated rule files this Prometheus was told to load (scaled), for `promtool`.
    pub rule_files: Vec<PathBuf>,
    _processes: Vec<Tied>,
    /// The two ports, held for as long as the programs may listen on them.
    _ports: Vec<Lease>,
    // Held only so that the containers live as long as the deployment.
    _containers: Vec<Ledgered>,
    // The stale targets' ports, held so no other process takes them: they accept connections and
    // never answer, so every scrape of them times out.
    _stale: Vec<std::net::TcpListener>,
}

/// Rewrites every `for:` and every range selector `[..]` of a rule file by `time_scale`.
pub fn scale_rules(text: &str, time_scale: f64) -> String {
    let scale = |raw: &str| parse_duration(raw).map(|d| go_duration(d.mul_f64(time_scale)));
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(raw) = trimmed.strip_prefix("for: ")
            && let Some(scaled) = scale(raw)
        {
            out.push_str(&format!("{indent}for: {scaled}\n"));
            continue;
        }
        let mut rewritten = String::new();
        let mut rest = line;
        while let Some(open) = rest.find('[') {
            let Some(close) = rest[open..].find(']') else { break };
            let inner = &rest[open + 1..open + close];
            rewritten.push_str(&rest[..=open]);
            rewritten.push_str(&scale(inner).unwrap_or_else(|| inner.to_string()));
            rewritten.push(']');
            rest = &rest[open + close + 1..];
        }
        rewritten.push_str(rest);
        out.push_str(&rewritten);
        out.push('\n');
    }
    out
}

/// The fixture files, read from the crate.
pub fn fixture(path: &str) -> Result<String, String> {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).map_err(|e| format!("{}: {e}", full.display()))
}

/// AlertManager's configuration for the profile: DIVE's, with the plan's breaker inhibition
/// only where D4 is fixed.
pub fn alertmanager_config(behaviour: &Behaviour, time_scale: f64) -> Result<String, String> {
    let d = |s: u64| go_duration(Duration::from_secs(s).mul_f64(time_scale));
    let plan = if behaviour.cb_inhibition {
        "  - source_matchers: ['alertname=\"CircuitBreakerOpen\"']\n    target_matchers: ['alertname=\"HighCircuitBreakerRejects\"']\n    equal: [exported_service, instance]"
    } else {
        ""
    };
    Ok(fixture(ALERTMANAGER_FIXTURE)?
        .replace("${RESOLVE_TIMEOUT}", &d(300))
        .replace("${GROUP_WAIT}", &d(30))
        .replace("${GROUP_INTERVAL}", &d(300))
        .replace("${REPEAT_INTERVAL}", &d(4 * 3600))
        .replace("${CRITICAL_GROUP_WAIT}", &d(10))
        .replace("${PLAN_INHIBITIONS}", plan))
}

/// Prometheus's configuration. With D3 the `rule_files` glob is DIVE's, relative to a directory
/// where the rules are not (so nothing loads); with D8 the stale spoke jobs are added, and a spoke
/// one of them names is scraped only there, as DIVE's file has one job per spoke.
pub fn prometheus_config(
    behaviour: &Behaviour,
    time_scale: f64,
    targets: &[ScrapeTarget],
    stale: &[ScrapeTarget],
    alertmanager: &str,
) -> String {
    // HEAD's AlertManager speaks HTTPS only: Prometheus reaches it with the deployment's CA.
    let am_scheme = if behaviour.https_monitoring {
        "      scheme: https\n      tls_config:\n        ca_file: ca.pem\n"
    } else {
        ""
    };
    let interval = go_duration(SCRAPE_INTERVAL.mul_f64(time_scale));
    let timeout = go_duration(SCRAPE_INTERVAL.mul_f64(time_scale).mul_f64(0.8));
    let rules = if behaviour.rules_loaded {
        "rules/*.yml"
    } else {
        "prometheus/rules/*.yml"
    };
    let mut out = format!(
        "global:\n  scrape_interval: {interval}\n  scrape_timeout: {timeout}\n  evaluation_interval: {interval}\n\
         rule_files:\n  - \"{rules}\"\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: [\"{alertmanager}\"]\n{am_scheme}\
         scrape_configs:\n"
    );
    let scraped = targets.iter().filter(|t| !stale.iter().any(|s| s.job == t.job));
    for t in scraped.chain(stale) {
        out.push_str(&format!(
            "  - job_name: \"{}\"\n    scheme: https\n    metrics_path: /metrics\n    tls_config:\n      ca_file: ca.pem\n\
             \x20   static_configs:\n      - targets: [\"{}\"]\n        labels:\n          instance: \"{}\"\n          service: backend\n",
            t.job, t.address, t.instance
        ));
    }
    out
}

/// Job names DIVE gives its spoke targets, with the stale host ports of contract section 5.
pub const STALE_SPOKE_JOBS: &[(&str, &str)] = &[("fra", "4001"), ("deu", "4003"), ("gbr", "4002"), ("est", "4008")];

/// The certificate and key Prometheus and AlertManager serve HTTPS with, as DIVE's HEAD does.
pub struct ServeTls {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What [`ReferenceMonitoring::configure`] wrote: where, and the ports to listen on.
pub struct Generated {
    /// `--web.config.file` of Prometheus and of AlertManager, when they serve HTTPS.
    web_configs: Option<(PathBuf, PathBuf)>,
    prom_dir: PathBuf,
    am_dir: PathBuf,
    prom_port: Lease,
    am_port: Lease,
    rule_files: Vec<PathBuf>,
    dir: PathBuf,
    stale: Vec<std::net::TcpListener>,
}

impl ReferenceMonitoring {
    /// Writes the configuration under `dir` and starts both programs as child processes.
    pub fn start(
        behaviour: &Behaviour,
        time_scale: f64,
        ca_pem: &str,
        serve_tls: Option<&ServeTls>,
        targets: &[ScrapeTarget],
        dir: &Path,
        spawner: &Arc<Spawner>,
    ) -> Result<ReferenceMonitoring, String> {
        if !runs("prometheus") {
            return Err(
                "prometheus is not installed: apt-get install -y prometheus prometheus-alertmanager (or start a Docker daemon)"
                    .to_string(),
            );
        }
        alertmanager_program()?;
        let g = Self::configure(behaviour, time_scale, ca_pem, serve_tls, targets, dir)?;
        Self::launch(g, time_scale, spawner)
    }

    /// The same with the official images through testcontainers, on the host network so that
    /// they reach the loopback backends (compose reaches them through `host.docker.internal`).
    pub async fn start_docker(
        behaviour: &Behaviour,
        time_scale: f64,
        ca_pem: &str,
        targets: &[ScrapeTarget],
        dir: &Path,
    ) -> Result<ReferenceMonitoring, String> {
        let g = Self::configure(behaviour, time_scale, ca_pem, None, targets, dir)?;
        let resend = go_duration(Duration::from_secs(60).mul_f64(time_scale));
        let container = |image: &str, tag: &str, dir: &Path, mount: &str, ready: &str, cmd: Vec<String>| {
            GenericImage::new(image, tag)
                .with_wait_for(WaitFor::message_on_stderr(ready))
                .with_network("host")
                .with_mount(Mount::bind_mount(dir.display().to_string(), mount))
                .with_cmd(cmd)
                .start()
        };
        let am = container(
            "prom/alertmanager",
            "v0.25.0",
            &g.am_dir,
            "/etc/alertmanager",
            "Listening on",
            vec![
                "--config.file=/etc/alertmanager/alertmanager.yml".into(),
                "--storage.path=/alertmanager".into(),
                format!("--web.listen-address=127.0.0.1:{}", g.am_port.port()),
                "--cluster.listen-address=".into(),
            ],
        )
        .await
        .map_err(|e| format!("alertmanager container: {e}"))?;
        let prom = container(
            "prom/prometheus",
            "v2.42.0",
            &g.prom_dir,
            "/etc/prometheus",
            "Server is ready to receive web requests.",
            vec![
                "--config.file=/etc/prometheus/prometheus.yml".into(),
                "--storage.tsdb.path=/prometheus".into(),
                format!("--web.listen-address=127.0.0.1:{}", g.prom_port.port()),
                "--web.enable-lifecycle".into(),
                format!("--rules.alert.resend-delay={resend}"),
            ],
        )
        .await
        .map_err(|e| format!("prometheus container: {e}"))?;
        let ledger = Ledger::new(&must_config().state_dir);
        let containers = vec![Ledgered::new(am, &ledger)?, Ledgered::new(prom, &ledger)?];
        Ok(ReferenceMonitoring {
            prometheus: loopback(g.prom_port.port(), false)?,
            alertmanager: loopback(g.am_port.port(), false)?,
            rule_files: g.rule_files,
            _processes: Vec::new(),
            _ports: vec![g.prom_port, g.am_port],
            _containers: containers,
            _stale: g.stale,
        })
    }

    /// Writes Prometheus's and AlertManager's configuration for the profile under `dir`.
    fn configure(
        behaviour: &Behaviour,
        time_scale: f64,
        ca_pem: &str,
        serve_tls: Option<&ServeTls>,
        targets: &[ScrapeTarget],
        dir: &Path,
    ) -> Result<Generated, String> {
        let write = |path: &Path, text: &str| {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
        };
        let prom_dir = dir.join("prometheus");
        let am_dir = dir.join("alertmanager");
        // D3: DIVE's rules sit in a directory its glob does not reach.
        let rules_dir = if behaviour.rules_loaded {
            prom_dir.join("rules")
        } else {
            prom_dir.join("config/prometheus/rules")
        };
        let mut rule_files = Vec::new();
        for fixture_path in RULE_FIXTURES {
            let name = Path::new(fixture_path)
                .file_name()
                .ok_or("rule fixture without a name")?;
            let path = rules_dir.join(name);
            write(&path, &scale_rules(&fixture(fixture_path)?, time_scale))?;
            rule_files.push(path);
        }
        write(&prom_dir.join("ca.pem"), ca_pem)?;
        let mut web_configs = None;
        if let Some(tls) = serve_tls {
            let mut paths = Vec::new();
            for home in [&prom_dir, &am_dir] {
                let (cert, key, web) = (home.join("tls.crt"), home.join("tls.key"), home.join("web.yml"));
                write(&cert, &tls.cert_pem)?;
                write(&key, &tls.key_pem)?;
                let text = format!(
                    "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                    cert.display(),
                    key.display()
                );
                write(&web, &text)?;
                paths.push(web);
            }
            web_configs = Some((paths[0].clone(), paths[1].clone()));
        }
        write(
            &am_dir.join("alertmanager.yml"),
            &alertmanager_config(behaviour, time_scale)?,
        )?;

        // Stale spoke targets: DIVE's jobs on ports where nothing listens.
        let mut stale = Vec::new();
        let mut held = Vec::new();
        if behaviour.stale_spoke_targets {
            for (code, _) in STALE_SPOKE_JOBS {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("stale port: {e}"))?;
                let port = listener.local_addr().map_err(|e| format!("stale port: {e}"))?.port();
                held.push(listener);
                stale.push(ScrapeTarget {
                    job: format!("{code}-backend"),
                    instance: code.to_string(),
                    address: format!("127.0.0.1:{port}"),
                });
            }
        }
        let am_port = super::ports::lease().map_err(|e| format!("free port: {e}"))?;
        let prom_port = super::ports::lease().map_err(|e| format!("free port: {e}"))?;
        let am_addr = format!("127.0.0.1:{}", am_port.port());
        write(
            &prom_dir.join("prometheus.yml"),
            &prometheus_config(behaviour, time_scale, targets, &stale, &am_addr),
        )?;
        Ok(Generated {
            web_configs,
            prom_dir,
            am_dir,
            prom_port,
            am_port,
            rule_files,
            dir: dir.to_path_buf(),
            stale: held,
        })
    }

    fn launch(g: Generated, time_scale: f64, spawner: &Arc<Spawner>) -> Result<ReferenceMonitoring, String> {
        let log = |name: &str| -> Result<Stdio, String> {
            std::fs::File::create(g.dir.join(name))
                .map(Stdio::from)
                .map_err(|e| format!("{name}: {e}"))
        };
        let mut am_args = vec![
            format!("--config.file={}", g.am_dir.join("alertmanager.yml").display()),
            format!("--storage.path={}", g.am_dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{}", g.am_port.port()),
            // No gossip port: each deployment's AlertManager stands alone.
            "--cluster.listen-address=".to_string(),
        ];
        let mut prom_args = vec![
            format!("--config.file={}", g.prom_dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", g.prom_dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{}", g.prom_port.port()),
            "--web.enable-lifecycle".to_string(),
            format!(
                "--rules.alert.resend-delay={}",
                go_duration(Duration::from_secs(60).mul_f64(time_scale))
            ),
        ];
        if let Some((prom_web, am_web)) = &g.web_configs {
            prom_args.push(format!("--web.config.file={}", prom_web.display()));
            am_args.push(format!("--web.config.file={}", am_web.display()));
        }
        let https = g.web_configs.is_some();
        let am = spawner.spawn(alertmanager_program()?, &am_args, log("alertmanager.log")?)?;
        let prom = spawner.spawn("prometheus", &prom_args, log("prometheus.log")?)?;
        Ok(ReferenceMonitoring {
            prometheus: loopback(g.prom_port.port(), https)?,
            alertmanager: loopback(g.am_port.port(), https)?,
            rule_files: g.rule_files,
            _processes: vec![am, prom],
            _ports: vec![g.prom_port, g.am_port],
            _containers: Vec::new(),
            _stale: g.stale,
        })
    }
}

/// AlertManager's program: Debian names it `prometheus-alertmanager`, upstream `alertmanager`.
fn alertmanager_program() -> Result<&'static str, String> {
    ["prometheus-alertmanager", "alertmanager"]
        .into_iter()
        .find(|p| runs(p))
        .ok_or_else(|| {
            "neither prometheus-alertmanager nor alertmanager is installed: apt-get install -y prometheus-alertmanager (or start a Docker daemon)".to_string()
        })
}

fn loopback(port: u16, https: bool) -> Result<Url, String> {
    let scheme = if https { "https" } else { "http" };
    Url::parse(&format!("{scheme}://127.0.0.1:{port}")).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_scale_for_and_ranges() {
        let text = "      - alert: X\n        expr: increase(x[5m]) > 10\n        for: 2m\n";
        assert_eq!(
            scale_rules(text, 0.1),
            "      - alert: X\n        expr: increase(x[30000ms]) > 10\n        for: 12000ms\n"
        );
    }
}
