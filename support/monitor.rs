//! Phase 4.3's machinery: the catalogue of the ten alerts the suite holds DIVE to, the monitoring
//! pair of a deployment ([`Monitors`]: Prometheus and AlertManager clients, and for the reference
//! the processes behind them), the preflight of the alert pipeline, the staged waits that measure
//! how an alert travels from a breaker to AlertManager, and the generated `promtool` unit tests.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Url;

use crate::alertmanager::{AlertManager, AmState, GettableAlert};
use crate::deployment::{Deployment, Instance};
use crate::finding::{Defect, Finding, Severity};
use crate::http::Http;
use crate::poll::{eventually, secs};
use crate::prometheus::{Alert, AlertState, Prometheus, TargetHealth};
use crate::reference::monitoring::{
    LocalMonitoring, RULE_FIXTURES, SCRAPE_INTERVAL, fixture, go_duration, scale_rules,
};
use crate::scenario::{Scenario, TICK};
use crate::slo::Budget;

/// Who writes an alert's input series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Producer {
    /// The backend, in every version.
    Backend,
    /// The backend, but only where D2 is fixed.
    BackendD2,
    /// An exporter DIVE does not run (and the reference does not have).
    Exporter,
}

/// One of the ten alerts of contract section 5.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertSpec {
    pub name: &'static str,
    pub component: &'static str,
    pub severity: &'static str,
    /// DIVE's `for`, at time scale 1.
    pub for_plan: Duration,
    pub inputs: &'static [&'static str],
    pub producer: Producer,
    /// promtool input series (DIVE's labels as scraped) and values that make the condition hold.
    pub unit_inputs: &'static [(&'static str, &'static str)],
}

const fn m(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

const BREAKER: &str = r#"{exported_service="opa",instance="hub",job="hub-backend"}"#;

/// The ten alerts, in the contract's order.
pub const ALERTS: [AlertSpec; 10] = [
    AlertSpec {
        name: "CircuitBreakerOpen",
        component: "resilience",
        severity: "critical",
        for_plan: m(1),
        inputs: &["dive_v3_circuit_breaker_state"],
        producer: Producer::Backend,
        unit_inputs: &[("dive_v3_circuit_breaker_state", "2")],
    },
    AlertSpec {
        name: "CircuitBreakerHalfOpen",
        component: "resilience",
        severity: "warning",
        for_plan: m(5),
        inputs: &["dive_v3_circuit_breaker_state"],
        producer: Producer::Backend,
        unit_inputs: &[("dive_v3_circuit_breaker_state", "1")],
    },
    AlertSpec {
        name: "HighCircuitBreakerRejects",
        component: "resilience",
        severity: "warning",
        for_plan: m(2),
        inputs: &["dive_v3_circuit_breaker_rejects_total"],
        producer: Producer::BackendD2,
        unit_inputs: &[("dive_v3_circuit_breaker_rejects_total", "0+5")],
    },
    AlertSpec {
        name: "CircuitBreakerFailuresHigh",
        component: "resilience",
        severity: "warning",
        for_plan: m(1),
        inputs: &["dive_v3_circuit_breaker_failures"],
        producer: Producer::Backend,
        unit_inputs: &[("dive_v3_circuit_breaker_failures", "5")],
    },
    AlertSpec {
        name: "DBConnectionPoolExhausted",
        component: "database",
        severity: "critical",
        for_plan: m(5),
        inputs: &["dive_v3_db_connections_active", "dive_v3_db_connections_total"],
        producer: Producer::BackendD2,
        unit_inputs: &[
            ("dive_v3_db_connections_active", "10"),
            ("dive_v3_db_connections_total", "10"),
        ],
    },
    AlertSpec {
        name: "DBConnectionErrors",
        component: "database",
        severity: "warning",
        for_plan: m(2),
        inputs: &["dive_v3_db_connection_errors_total"],
        producer: Producer::BackendD2,
        unit_inputs: &[("dive_v3_db_connection_errors_total", "0+2")],
    },
    AlertSpec {
        name: "DBNoIdleConnections",
        component: "database",
        severity: "warning",
        for_plan: m(5),
        inputs: &["dive_v3_db_connections_idle", "dive_v3_db_connections_active"],
        producer: Producer::BackendD2,
        unit_inputs: &[
            ("dive_v3_db_connections_idle", "0"),
            ("dive_v3_db_connections_active", "10"),
        ],
    },
    AlertSpec {
        name: "OrchestrationDBDown",
        component: "database",
        severity: "critical",
        for_plan: m(2),
        inputs: &["pg_up"],
        producer: Producer::Exporter,
        unit_inputs: &[("pg_up", "0")],
    },
    AlertSpec {
        name: "MongoDBConnectionIssues",
        component: "database",
        severity: "warning",
        for_plan: m(5),
        inputs: &["mongodb_connections_totalcreated", "mongodb_connections_current"],
        producer: Producer::Exporter,
        unit_inputs: &[
            ("mongodb_connections_totalcreated", "7"),
            ("mongodb_connections_current", "3"),
        ],
    },
    AlertSpec {
        name: "MongoDBHealthDegraded",
        component: "database",
        severity: "critical",
        for_plan: m(3),
        inputs: &["dive_v3_mongodb_health"],
        producer: Producer::Backend,
        unit_inputs: &[("dive_v3_mongodb_health", "0")],
    },
];

/// Looks an alert of the catalogue up by name.
#[track_caller]
pub fn alert(name: &str) -> &'static AlertSpec {
    ALERTS
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no alert `{name}` in the catalogue"))
}

/// The plan's path from a breaker to AlertManager, at scale 1: the backend's 10 s gauge poll, one
/// 15 s scrape and one 15 s evaluation on top of the rule's `for` (contract section 5).
pub const PIPELINE_ON_PAPER: Duration = Duration::from_secs(40);

impl AlertSpec {
    /// When the alert should be visible in AlertManager at the latest, on paper, scaled.
    pub fn paper_bound(&self, time_scale: f64) -> Duration {
        (self.for_plan + PIPELINE_ON_PAPER).mul_f64(time_scale)
    }
}

/// `instance` label of a DIVE instance's scrape target: `hub` for the hub, else its code.
pub fn target_instance(inst: &Instance) -> String {
    if inst.code.eq_ignore_ascii_case("USA") {
        "hub".to_string()
    } else {
        inst.code.to_lowercase()
    }
}

/// Prometheus and AlertManager of one deployment.
pub struct Monitors {
    pub prometheus: Prometheus,
    pub alertmanager: AlertManager,
    /// The rule files in use: those Prometheus was given (reference), DIVE's own (live).
    pub rule_files: Vec<PathBuf>,
    pub time_scale: f64,
    _local: Option<LocalMonitoring>,
}

impl Monitors {
    pub fn local(local: LocalMonitoring, http: Http, time_scale: f64) -> Monitors {
        Monitors {
            prometheus: Prometheus::new(local.prometheus.clone(), http.clone()),
            alertmanager: AlertManager::new(local.alertmanager.clone(), http),
            rule_files: local.rule_files.clone(),
            time_scale,
            _local: Some(local),
        }
    }

    /// A live DIVE's monitoring. The rule files in use are DIVE's own, under `dive_root`
    /// (`config/prometheus/rules/*.yml`); only when that folder holds none are the suite's
    /// fixtures checked instead.
    pub fn live(prometheus: &Url, alertmanager: &Url, http: Http, dive_root: &std::path::Path) -> Monitors {
        let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut dive_rules: Vec<PathBuf> = std::fs::read_dir(dive_root.join("config/prometheus/rules"))
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "yml"))
                    .collect()
            })
            .unwrap_or_default();
        dive_rules.sort();
        let rule_files = if dive_rules.is_empty() {
            RULE_FIXTURES.iter().map(|f| crate_dir.join(f)).collect()
        } else {
            dive_rules
        };
        Monitors {
            prometheus: Prometheus::new(prometheus.clone(), http.clone()),
            alertmanager: AlertManager::new(alertmanager.clone(), http),
            rule_files,
            time_scale: 1.0,
            _local: None,
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

    /// Checks every link of the alert chain that `needed` alerts depend on, before any fault:
    /// rules loaded (D3), every backend target up and every instance scraped (D8), AlertManager
    /// connected, every input series present (D2). Each break is a finding; any break ends the
    /// scenario before a fault is injected.
    pub async fn preflight(&self, s: &mut Scenario, d: &Deployment, needed: &[&AlertSpec]) -> Result<(), Finding> {
        let before = s_failures(s);
        let settle = self.scrape_interval() * 4 + Duration::from_secs(10);

        let rules = self.prometheus.alert_rules().await.map_err(Finding::precondition)?;
        let missing: Vec<_> = needed
            .iter()
            .filter(|a| !rules.iter().any(|r| r.name == a.name))
            .map(|a| a.name)
            .collect();
        if !missing.is_empty() {
            s.finding(
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
            s.finding(
                Finding::fail(format!(
                    "Prometheus target {} ({}) is down: {}",
                    t.scrape_pool, t.scrape_url, t.last_error
                ))
                .defect(Defect::D8),
            );
        }
        for inst in d.instances() {
            let label = target_instance(inst);
            let scraped = targets
                .iter()
                .any(|t| t.health == TargetHealth::Up && t.labels.get("instance") == Some(&label));
            if !scraped {
                s.finding(
                    Finding::fail(format!(
                        "no Prometheus target with instance=\"{label}\" is up: {} is not monitored (targets: {})",
                        inst.code,
                        targets
                            .iter()
                            .map(|t| format!("{} {:?} {:?}", t.scrape_url, t.health, t.labels))
                            .collect::<Vec<_>>()
                            .join("; ")
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
            s.finding(Finding::fail(format!(
                "Prometheus does not send to AlertManager at {}: {t}",
                self.alertmanager.base
            )));
        }

        for a in needed {
            for input in a.inputs {
                let samples = self
                    .prometheus
                    .query(&format!("count({input})"))
                    .await
                    .unwrap_or_default();
                if !samples.is_empty() {
                    continue;
                }
                let finding = match a.producer {
                    Producer::BackendD2 => Finding::fail(format!(
                        "{} depends on {input}, which has no samples: the backend never writes it",
                        a.name
                    ))
                    .defect(Defect::D2),
                    Producer::Exporter => Finding::fail(format!(
                        "{} depends on {input}, which has no samples: no exporter produces it",
                        a.name
                    )),
                    Producer::Backend => Finding::fail(format!("{} depends on {input}, which has no samples", a.name)),
                };
                s.finding(finding);
            }
        }

        let breaks = s_failures(s) - before;
        if breaks > 0 {
            return Err(Finding::fail(format!(
                "the alert pipeline has {breaks} break(s); no fault injected"
            )));
        }
        s.event(format!(
            "pipeline preflight: {} rules, {} targets up, AlertManager connected, inputs present",
            rules.len(),
            targets.len()
        ));
        Ok(())
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

    /// Waits until alert `spec` (labels `matchers`) fires in Prometheus and is listed in
    /// AlertManager, measured from `since` (when its condition was induced) and printed against
    /// the budget: the plan's 5 minutes, or the bound on paper where the rule's `for` makes the
    /// plan's budget impossible (a finding about the plan).
    pub async fn alert_fires(
        &self,
        s: &mut Scenario,
        spec: &AlertSpec,
        matchers: &[(&str, &str)],
        since: Instant,
    ) -> Option<Duration> {
        // Every alert requirement of the plan has the same 5-minute budget.
        let plan = s.budget_for("plan 4.3 alert budget", Duration::from_secs(300));
        let paper = spec.paper_bound(self.time_scale);
        let budget = if paper > plan.limit {
            s.finding(Finding::note(format!(
                "{}: `for: {}` plus up to {} of pipeline is {} on paper, over the plan's budget of {}; judged against the bound on paper",
                spec.name,
                secs(spec.for_plan.mul_f64(self.time_scale)),
                secs(PIPELINE_ON_PAPER.mul_f64(self.time_scale)),
                secs(paper),
                secs(plan.limit)
            )));
            Budget {
                label: "bound on paper",
                limit: paper,
            }
        } else {
            plan
        };
        let deadline = budget.deadline().saturating_sub(since.elapsed());
        let what = format!("{} firing in Prometheus", spec.name);
        let firing = eventually(&what, TICK, deadline, || async {
            let alerts = self.prometheus_alerts(spec.name, matchers).await?;
            if alerts.iter().any(|a| a.state == AlertState::Firing) {
                Ok(())
            } else {
                Err(format!("{:?}", alerts.iter().map(|a| a.state).collect::<Vec<_>>()))
            }
        })
        .await;
        if let Err(t) = firing {
            let why = self.why_silent(spec).await;
            s.finding(why.unwrap_or_else(|| Finding::fail(format!("{}: {t}", spec.name))));
            return None;
        }
        s.alert_state(spec.name, crate::journal::AlertState::Firing);
        s.observed(&what, since.elapsed());
        let what = format!("{} listed in AlertManager", spec.name);
        let deadline = budget.deadline().saturating_sub(since.elapsed());
        let listed = eventually(&what, TICK, deadline, || async {
            let alerts = self.am_alerts(spec.name, matchers).await?;
            match alerts.first() {
                Some(a) => Ok(a.status.state),
                None => Err("absent".to_string()),
            }
        })
        .await;
        match listed {
            Ok(m) => {
                let took = since.elapsed();
                if m.value == AmState::Suppressed {
                    s.alert_state(spec.name, crate::journal::AlertState::Suppressed);
                }
                s.measured(&format!("{what} ({:?})", m.value), took, budget);
                Some(took)
            }
            Err(t) => {
                s.finding(Finding::fail(format!(
                    "{} fires in Prometheus but AlertManager never lists it: {t}",
                    spec.name
                )));
                None
            }
        }
    }

    /// Why an alert did not fire, when the pipeline says: the rule is not loaded (D3) or its
    /// input has no samples (D2).
    async fn why_silent(&self, spec: &AlertSpec) -> Option<Finding> {
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
        for input in spec.inputs {
            if self.prometheus.query(&format!("count({input})")).await.ok()?.is_empty()
                && spec.producer == Producer::BackendD2
            {
                return Some(
                    Finding::fail(format!("{} cannot fire: {input} has no samples", spec.name)).defect(Defect::D2),
                );
            }
        }
        None
    }

    /// Generates `promtool` unit tests for every alert of the catalogue against the rule files in
    /// use and runs them: each rule must fire once its condition has held for its `for`, and not
    /// before. Returns promtool's output, or why it failed.
    pub fn promtool_test_rules(&self, dir: &std::path::Path) -> Result<String, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let interval = self.scrape_interval();
        let range = Duration::from_secs(300).mul_f64(self.time_scale);
        let mut tests = String::new();
        for a in &ALERTS {
            let for_ = a.for_plan.mul_f64(self.time_scale);
            let fire_at = for_ + range + interval * 2;
            let steps = ((fire_at + interval * 4).as_secs_f64() / interval.as_secs_f64()).ceil() as u64;
            tests.push_str(&format!("  - interval: {}\n    input_series:\n", go_duration(interval)));
            for (metric, start) in a.unit_inputs {
                let labels = if metric.starts_with("dive_v3_circuit") {
                    BREAKER.to_string()
                } else if metric.starts_with("dive_v3_db") {
                    r#"{db_type="mongodb",error_type="timeout",instance="hub",job="hub-backend"}"#.to_string()
                } else if *metric == "pg_up" {
                    r#"{datname="orchestration",instance="postgres-exporter"}"#.to_string()
                } else {
                    r#"{instance="hub",job="hub-backend"}"#.to_string()
                };
                let values = if start.contains('+') {
                    format!("{start}x{steps}")
                } else {
                    format!("{start}+0x{steps}")
                };
                tests.push_str(&format!(
                    "      - series: '{metric}{labels}'\n        values: '{values}'\n"
                ));
            }
            let count = |state: &str| format!("count(ALERTS{{alertname=\"{}\",alertstate=\"{state}\"}})", a.name);
            tests.push_str(&format!(
                "    promql_expr_test:\n      - expr: '{}'\n        eval_time: {}\n        exp_samples: [{{labels: '{{}}', value: 1}}]\n      - expr: '{}'\n        eval_time: 0s\n        exp_samples: []\n",
                count("firing"),
                go_duration(fire_at),
                count("firing"),
            ));
        }
        let files: Vec<String> = self
            .rule_files
            .iter()
            .map(|p| format!("  - '{}'", p.display()))
            .collect();
        let text = format!(
            "# Generated by the DIVE resilience suite for the rule files in use.\nrule_files:\n{}\nevaluation_interval: {}\ntests:\n{tests}",
            files.join("\n"),
            go_duration(interval)
        );
        let path = dir.join("alerts.test.yml");
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("running promtool test rules {}", path.display());
        let out = Command::new("promtool")
            .arg("test")
            .arg("rules")
            .arg(&path)
            .output()
            .map_err(|e| format!("promtool: {e}; install it (apt-get install -y prometheus)"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "promtool test rules {} exited {}: {text}",
                path.display(),
                out.status
            ))
        }
    }

    /// The rule files in use, scaled as Prometheus got them (live: the fixtures unscaled).
    pub fn rule_text(&self) -> Result<String, String> {
        let mut out = String::new();
        for f in RULE_FIXTURES {
            out.push_str(&scale_rules(&fixture(f)?, self.time_scale));
        }
        Ok(out)
    }
}

fn s_failures(s: &Scenario) -> usize {
    s.findings().iter().filter(|f| f.severity != Severity::Note).count()
}

/// Whether an AlertManager alert is firing and not suppressed.
pub fn is_active(a: &GettableAlert) -> bool {
    a.status.state == AmState::Active
}

/// A chain of measured stages from one origin (the moment a breaker changed state): each stage
/// is printed with the time since the previous one and since the origin.
pub struct Stages {
    origin: Instant,
    previous: Instant,
    deadline: Duration,
    reached: usize,
}

impl Stages {
    pub fn from(origin: Instant, deadline: Duration) -> Stages {
        Stages {
            origin,
            previous: origin,
            deadline,
            reached: 0,
        }
    }

    /// Waits for the next stage; `Err` says which stage never came and what was seen last.
    pub async fn reach<F>(&mut self, s: &mut Scenario, what: &str, probe: F) -> Result<Duration, Finding>
    where
        F: AsyncFnMut() -> Result<(), String>,
    {
        let remaining = self.deadline.saturating_sub(self.origin.elapsed());
        let n = self.reached + 1;
        match eventually(what, TICK, remaining, probe).await {
            Ok(_) => {
                let now = Instant::now();
                s.observed(&format!("stage {n}: {what}"), now - self.previous);
                s.report(format!(
                    "stage {n}: {} since the breaker changed",
                    secs(now - self.origin)
                ));
                self.previous = now;
                self.reached = n;
                Ok(now - self.origin)
            }
            Err(t) => Err(Finding::fail(format!("stage {n} never reached: {t}"))),
        }
    }

    /// From the origin to the last stage reached.
    pub fn total(&self) -> Duration {
        self.previous - self.origin
    }
}

impl Monitors {
    /// Breaker `service` on `inst` has just opened: follows CircuitBreakerOpen through the
    /// pipeline (gauge scraped, pending, firing, active in AlertManager) and judges the total
    /// against `budget`, next to the bound on paper.
    pub async fn open_travels(
        &self,
        s: &mut Scenario,
        inst: &Instance,
        service: &str,
        budget: Budget,
    ) -> Result<(), Finding> {
        let instance = target_instance(inst);
        let labels = [("exported_service", service), ("instance", instance.as_str())];
        let spec = alert("CircuitBreakerOpen");
        let mut stages = Stages::from(Instant::now(), budget.deadline());
        let gauge =
            format!("dive_v3_circuit_breaker_state{{exported_service=\"{service}\",instance=\"{instance}\"}} == 2");
        stages
            .reach(s, "state gauge 2 (OPEN) polled and scraped", || {
                self.series_present(&gauge)
            })
            .await?;
        stages
            .reach(s, "CircuitBreakerOpen pending in Prometheus", || {
                self.prometheus_state(spec.name, &labels, &[AlertState::Pending, AlertState::Firing])
            })
            .await?;
        s.alert_state("CircuitBreakerOpen", crate::journal::AlertState::Pending);
        stages
            .reach(s, "CircuitBreakerOpen firing in Prometheus", || {
                self.prometheus_state(spec.name, &labels, &[AlertState::Firing])
            })
            .await?;
        s.alert_state("CircuitBreakerOpen", crate::journal::AlertState::Firing);
        stages
            .reach(s, "CircuitBreakerOpen active in AlertManager", || async {
                let alerts = self.am_alerts(spec.name, &labels).await?;
                if alerts.iter().any(is_active) {
                    Ok(())
                } else {
                    Err(format!(
                        "{:?}",
                        alerts.iter().map(|a| a.status.state).collect::<Vec<_>>()
                    ))
                }
            })
            .await?;
        s.report(format!(
            "bound on paper: for {} + poll, scrape and evaluation {} = {}",
            secs(spec.for_plan.mul_f64(self.time_scale)),
            secs(PIPELINE_ON_PAPER.mul_f64(self.time_scale)),
            secs(spec.paper_bound(self.time_scale))
        ));
        s.measured(
            "CircuitBreakerOpen active in AlertManager after the breaker opened",
            stages.total(),
            budget,
        );
        Ok(())
    }

    /// Breaker `service` on `inst` has just closed: follows CircuitBreakerOpen out of the
    /// pipeline (gauge scraped, gone from Prometheus, gone from AlertManager).
    pub async fn resolve_travels(
        &self,
        s: &mut Scenario,
        inst: &Instance,
        service: &str,
        budget: Budget,
    ) -> Result<(), Finding> {
        let instance = target_instance(inst);
        let labels = [("exported_service", service), ("instance", instance.as_str())];
        let name = "CircuitBreakerOpen";
        let mut stages = Stages::from(Instant::now(), budget.deadline());
        let gauge =
            format!("dive_v3_circuit_breaker_state{{exported_service=\"{service}\",instance=\"{instance}\"}} == 0");
        stages
            .reach(s, "state gauge 0 (CLOSED) polled and scraped", || {
                self.series_present(&gauge)
            })
            .await?;
        stages
            .reach(s, "CircuitBreakerOpen inactive in Prometheus", || async {
                let alerts = self.prometheus_alerts(name, &labels).await?;
                if alerts.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{:?}", alerts.iter().map(|a| a.state).collect::<Vec<_>>()))
                }
            })
            .await?;
        stages
            .reach(s, "CircuitBreakerOpen gone from AlertManager", || async {
                let alerts = self.am_alerts(name, &labels).await?;
                if alerts.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "still listed: {:?}",
                        alerts.iter().map(|a| a.status.state).collect::<Vec<_>>()
                    ))
                }
            })
            .await?;
        s.alert_state("CircuitBreakerOpen", crate::journal::AlertState::Resolved);
        s.report(format!(
            "bound on paper: 0 to {} after the condition clears",
            secs(PIPELINE_ON_PAPER.mul_f64(self.time_scale))
        ));
        s.measured(
            "CircuitBreakerOpen gone from AlertManager after the breaker closed",
            stages.total(),
            budget,
        );
        Ok(())
    }

    async fn series_present(&self, promql: &str) -> Result<(), String> {
        let samples = self.prometheus.query(promql).await?;
        if samples.is_empty() {
            Err(format!("`{promql}` is empty"))
        } else {
            Ok(())
        }
    }

    async fn prometheus_state(&self, name: &str, labels: &[(&str, &str)], want: &[AlertState]) -> Result<(), String> {
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
}

/// Requests that hang on a frozen MongoDB and so hold its pool connections (4.3-pool).
pub struct PoolLoad {
    http: Http,
    backend: Url,
    token: String,
    ids: Vec<String>,
}

/// Held requests; dropping them lets go.
pub struct Held(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Held {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl PoolLoad {
    /// Token and resource ids, fetched while MongoDB still answers.
    pub async fn prepare(inst: &Instance) -> Result<PoolLoad, Finding> {
        let token = inst.token_for(&inst.credentials.user).await?;
        let url = crate::http::join(&inst.backend, "/api/resources");
        let list = inst
            .http()
            .json::<crate::model::ResourceList>(inst.http().request(reqwest::Method::GET, &url).bearer_auth(&token))
            .await
            .map_err(|e| Finding::precondition(format!("cannot list resources: {e}")))?;
        let ids: Vec<String> = list.body.resources.into_iter().map(|r| r.resource_id).collect();
        if ids.is_empty() {
            return Err(Finding::precondition(format!("GET {url} lists no resources")));
        }
        Ok(PoolLoad {
            http: inst.http().clone(),
            backend: inst.backend.clone(),
            token,
            ids,
        })
    }

    /// Sends `n` requests at once, each allowed to wait `patience` for its answer.
    pub fn hold(&self, n: usize, patience: Duration) -> Held {
        let tasks = (0..n)
            .map(|i| {
                let url = crate::http::join(
                    &self.backend,
                    &format!("/api/resources/{}", self.ids[i % self.ids.len()]),
                );
                let request = self
                    .http
                    .request(reqwest::Method::GET, &url)
                    .bearer_auth(&self.token)
                    .timeout(patience);
                let http = self.http.clone();
                tokio::spawn(async move {
                    let _ = http.text(request).await;
                })
            })
            .collect();
        Held(tasks)
    }
}

/// The `## ` sections of a runbook: heading, and how many remediation steps (numbered lines) it has.
pub fn runbook_sections(text: &str) -> Vec<(String, usize)> {
    let mut sections: Vec<(String, usize)> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            sections.push((heading.trim().to_string(), 0));
        } else if let Some(last) = sections.last_mut() {
            let step = line
                .split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            if step {
                last.1 += 1;
            }
        }
    }
    sections
}
