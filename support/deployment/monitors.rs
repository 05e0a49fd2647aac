//! The monitoring pair of a deployment: Prometheus and AlertManager clients, the rule files in
//! use, and the checks of the alert pipeline (rules loaded, targets up, AlertManager connected,
//! input series present), which return findings for the scenario to record.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;

use crate::deployment::instance::Instance;
use crate::infra::alertmanager::{AlertManager, AmState, GettableAlert};
use crate::infra::http::Http;
use crate::infra::poll::eventually;
use crate::infra::prometheus::{Alert, Prometheus, RuleState, TargetHealth};
use crate::vocab::alerts::{AlertSpec, Producer, SCRAPE_INTERVAL};
use crate::vocab::coalition::instance_label;
use crate::vocab::finding::{Defect, Finding};
use crate::vocab::slo;

/// Where DIVE keeps its Prometheus rule files, under `DIVE_ROOT`, at both commits (contract
/// section 5; not where its Prometheus looks for them, which is D3).
pub const DIVE_RULES_DIR: &str = "docker/instances/shared/config/prometheus/rules";

const TICK: Duration = Duration::from_millis(125);

/// Prometheus and AlertManager of one deployment.
pub struct Monitors {
    pub prometheus: Prometheus,
    pub alertmanager: AlertManager,
    /// The rule files in use: those Prometheus was given (reference), DIVE's own (live).
    pub rule_files: Vec<PathBuf>,
    /// Where the rule files were looked for, for the line that says none was found.
    pub rules_source: String,
    pub time_scale: f64,
    /// The suite's own silence of the catalogue's alerts, when it holds one (a live run with
    /// `DIVE_SILENCE_ALERTS=1`): an alert suppressed by it alone still counts as delivered.
    pub silence: Option<String>,
    /// Whatever runs the pair (the reference's processes); nothing for a live DIVE.
    _keep: Option<Box<dyn Any + Send + Sync>>,
}

/// What the pipeline check saw when nothing was broken.
#[derive(Debug, Clone)]
pub struct PipelineOk {
    pub rules: usize,
    pub targets: usize,
}

impl Monitors {
    /// A monitoring pair the suite runs itself; `keep` lives as long as the clients.
    pub fn started(
        prometheus: Url,
        alertmanager: Url,
        http: Http,
        rule_files: Vec<PathBuf>,
        time_scale: f64,
        keep: Box<dyn Any + Send + Sync>,
    ) -> Monitors {
        Monitors {
            prometheus: Prometheus::new(prometheus, http.clone()),
            alertmanager: AlertManager::new(alertmanager, http),
            rules_source: "the rule files the suite gave Prometheus".to_string(),
            rule_files,
            time_scale,
            silence: None,
            _keep: Some(keep),
        }
    }

    /// A live DIVE's monitoring. The rule files in use are DIVE's own, under `dive_root`; when
    /// none is there, none is checked (and the rule check says where it looked).
    pub fn live(prometheus: &Url, alertmanager: &Url, http: Http, dive_root: &Path, time_scale: f64) -> Monitors {
        let dir = dive_root.join(DIVE_RULES_DIR);
        let mut rule_files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
                    .collect()
            })
            .unwrap_or_default();
        rule_files.sort();
        Monitors {
            prometheus: Prometheus::new(prometheus.clone(), http.clone()),
            alertmanager: AlertManager::new(alertmanager.clone(), http),
            rule_files,
            rules_source: format!("{}/*.yml", dir.display()),
            time_scale,
            silence: None,
            _keep: None,
        }
    }

    /// Both answer `/-/ready`.
    pub async fn wait_ready(&self) -> Result<(), Finding> {
        let deadline = Duration::from_secs(30);
        eventually("Prometheus ready", Duration::from_millis(100), deadline, || async {
            self.prometheus.ready().await
        })
        .await
        .map_err(|t| Finding::precondition(format!("Prometheus at {}: {t}", self.prometheus.base)))?;
        eventually("AlertManager ready", Duration::from_millis(100), deadline, || async {
            self.alertmanager.ready().await
        })
        .await
        .map_err(|t| Finding::precondition(format!("AlertManager at {}: {t}", self.alertmanager.base)))?;
        Ok(())
    }

    /// The scrape interval, scaled: the natural grain of every wait on Prometheus.
    pub fn scrape_interval(&self) -> Duration {
        SCRAPE_INTERVAL.mul_f64(self.time_scale)
    }

    /// Checks every link of the alert chain that `needed` alerts depend on: rules loaded (D3),
    /// every backend target up and every instance scraped (D8), AlertManager connected, every
    /// input series present (D2). Returns the breaks as findings (empty when none), or a
    /// precondition when Prometheus itself cannot be asked.
    pub async fn pipeline(
        &self,
        instances: &[&Instance],
        needed: &[&AlertSpec],
    ) -> Result<(Vec<Finding>, PipelineOk), Finding> {
        let mut breaks = Vec::new();
        let settle = slo::budget("4.3-pipeline settle", self.time_scale).limit;

        let rules = self.prometheus.alert_rules().await.map_err(Finding::precondition)?;
        let missing: Vec<_> = needed
            .iter()
            .filter(|a| !rules.iter().any(|r| r.name == a.name))
            .map(|a| a.name)
            .collect();
        if !missing.is_empty() {
            breaks.push(
                Finding::fail(format!(
                    "Prometheus has {} alert rules loaded; missing {}",
                    rules.len(),
                    missing.join(", ")
                ))
                .defect(Defect::D3),
            );
        }

        let targets = eventually("every target scraped once", TICK, settle, || async {
            // Prometheus hands discovered targets to its scrapers only every 5 s: empty is not done.
            let t = self.prometheus.targets().await?;
            if t.is_empty() {
                return Err("no targets yet".to_string());
            }
            match t.iter().find(|t| t.health == TargetHealth::Unknown) {
                Some(unknown) => Err(format!("{} not scraped yet", unknown.scrape_url)),
                None => Ok(t),
            }
        })
        .await
        .map_err(|t| Finding::precondition(t.to_string()))?
        .value;
        for t in targets.iter().filter(|t| t.health == TargetHealth::Down) {
            breaks.push(
                Finding::fail(format!(
                    "Prometheus target {} ({}) is down: {}",
                    t.scrape_pool, t.scrape_url, t.last_error
                ))
                .defect(Defect::D8),
            );
        }
        for inst in instances {
            let label = instance_label(&inst.code);
            let scraped = targets
                .iter()
                .any(|t| t.health == TargetHealth::Up && t.labels.get("instance") == Some(&label));
            if !scraped {
                let seen: Vec<_> = targets
                    .iter()
                    .map(|t| format!("{} {:?} {:?}", t.scrape_url, t.health, t.labels))
                    .collect();
                breaks.push(
                    Finding::fail(format!(
                        "no Prometheus target with instance=\"{label}\" is up: {} is not monitored (targets: {})",
                        inst.code,
                        seen.join("; ")
                    ))
                    .defect(Defect::D8),
                );
            }
        }

        let connected = eventually("Prometheus connected to AlertManager", TICK, settle, || async {
            let ams = self.prometheus.alertmanagers().await?;
            if ams.is_empty() {
                Err("no active AlertManager".to_string())
            } else {
                Ok(ams)
            }
        })
        .await;
        if let Err(t) = connected {
            breaks.push(Finding::fail(format!(
                "Prometheus does not send to AlertManager at {}: {t}",
                self.alertmanager.base
            )));
        }

        for a in needed {
            for input in a.inputs {
                if self.has_samples(input).await {
                    continue;
                }
                breaks.push(match a.producer {
                    // Its series appears at its first event: absent now proves nothing yet.
                    Producer::BackendOnEvent(_) => continue,
                    Producer::Exporter => Finding::fail(format!(
                        "{} depends on {input}, which has no samples: no exporter produces it",
                        a.name
                    )),
                    Producer::Backend => Finding::fail(format!("{} depends on {input}, which has no samples", a.name)),
                });
            }
        }
        let ok = PipelineOk {
            rules: rules.len(),
            targets: targets.len(),
        };
        Ok((breaks, ok))
    }

    /// Whether the series `metric` has at least one sample.
    pub async fn has_samples(&self, metric: &str) -> bool {
        let samples = self.prometheus.query(&format!("count({metric})")).await;
        samples.is_ok_and(|s| !s.is_empty())
    }

    /// The Prometheus alerts named `name` whose labels include `matchers`.
    pub async fn prometheus_alerts(&self, name: &str, matchers: &[(&str, &str)]) -> Result<Vec<Alert>, String> {
        let all = self.prometheus.alerts().await?;
        Ok(all
            .into_iter()
            .filter(|a| a.labels.get("alertname").map(String::as_str) == Some(name))
            .filter(|a| {
                matchers
                    .iter()
                    .all(|(k, v)| a.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect())
    }

    /// The AlertManager alerts named `name` whose labels include `matchers`.
    pub async fn am_alerts(&self, name: &str, matchers: &[(&str, &str)]) -> Result<Vec<GettableAlert>, String> {
        let mut all = vec![("alertname", name)];
        all.extend_from_slice(matchers);
        self.alertmanager.alerts(&all).await
    }

    /// `Ok` when the PromQL `promql` returns a sample.
    pub async fn series_present(&self, promql: &str) -> Result<(), String> {
        let samples = self.prometheus.query(promql).await?;
        if samples.is_empty() {
            Err(format!("`{promql}` is empty"))
        } else {
            Ok(())
        }
    }

    /// `Ok` when an alert `name` with `labels` is in one of the states `want` in Prometheus.
    pub async fn prometheus_state(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        want: &[RuleState],
    ) -> Result<(), String> {
        let alerts = self.prometheus_alerts(name, labels).await?;
        if alerts.iter().any(|a| want.contains(&a.state)) {
            Ok(())
        } else {
            Err(format!(
                "{name}: {:?}",
                alerts.iter().map(|a| a.state).collect::<Vec<_>>()
            ))
        }
    }

    /// Why an alert did not fire, when the pipeline says: the rule is not loaded (D3). (An input
    /// written only at its event is judged where the event is driven: `Scenario::written_after`.)
    pub async fn why_silent(&self, spec: &AlertSpec) -> Option<Finding> {
        let rules = self.prometheus.alert_rules().await.ok()?;
        if !rules.iter().any(|r| r.name == spec.name) {
            return Some(
                Finding::fail(format!(
                    "{} cannot fire: Prometheus has {} alert rules and not this one",
                    spec.name,
                    rules.len()
                ))
                .defect(Defect::D3),
            );
        }
        None
    }
}

/// Whether an AlertManager alert is firing and not suppressed.
/// An alert AlertManager would send: active, or held back by nothing but the suite's own silence
/// (`silence`, see `deployment::silences`).
pub fn delivered(a: &GettableAlert, silence: Option<&str>) -> bool {
    match a.status.state {
        AmState::Active => true,
        AmState::Suppressed => {
            a.status.inhibited_by.is_empty()
                && !a.status.silenced_by.is_empty()
                && a.status.silenced_by.iter().all(|s| Some(s.as_str()) == silence)
        }
        AmState::Unprocessed => false,
    }
}

#[cfg(test)]
mod delivery_tests {
    use super::*;

    fn alert(state: &str, silenced_by: &[&str], inhibited_by: &[&str]) -> GettableAlert {
        let body = serde_json::json!({
            "labels": {"alertname": "CircuitBreakerOpen"}, "startsAt": "", "endsAt": "", "fingerprint": "f",
            "status": {"state": state, "silencedBy": silenced_by, "inhibitedBy": inhibited_by}
        });
        serde_json::from_value(body).expect("an alert")
    }

    #[test]
    fn only_the_suites_own_silence_leaves_an_alert_delivered() {
        assert!(delivered(&alert("active", &[], &[]), None));
        assert!(delivered(&alert("suppressed", &["ours"], &[]), Some("ours")));
        assert!(!delivered(&alert("suppressed", &["someone's"], &[]), Some("ours")));
        assert!(!delivered(
            &alert("suppressed", &["ours", "someone's"], &[]),
            Some("ours")
        ));
        assert!(!delivered(&alert("suppressed", &["ours"], &["f2"]), Some("ours")));
        assert!(!delivered(&alert("suppressed", &[], &["f2"]), None));
        assert!(!delivered(&alert("unprocessed", &[], &[]), None));
    }
}
