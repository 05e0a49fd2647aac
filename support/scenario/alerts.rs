//! Phase 4.3's waits: the alert pipeline checked before any fault, an alert followed from its
//! condition to AlertManager, and the stage by stage path of CircuitBreakerOpen as it opens and
//! resolves.

use std::time::{Duration, Instant};

use crate::deployment::Deployment;
use crate::deployment::instance::Instance;
use crate::deployment::monitors::{Monitors, delivered};
use crate::infra::alertmanager::{AmState, SUITE_LABEL};
use crate::infra::poll::eventually;
use crate::infra::prometheus::RuleState;
use crate::scenario::diagnose;
use crate::scenario::stages::Stages;
use crate::scenario::{Scenario, TICK};
use crate::vocab::alerts::{AlertSpec, PIPELINE_ON_PAPER, alert};
use crate::vocab::coalition::instance_label;
use crate::vocab::finding::Finding;
use crate::vocab::journal::AlertState;
use crate::vocab::slo::Budget;
use crate::vocab::units::secs;

impl Scenario {
    /// Waits for the next stage of `stages`, printing and journaling it; `Err` says which stage
    /// never came and what was seen last.
    async fn stage<F>(&mut self, stages: &mut Stages, what: &str, probe: F) -> Result<Duration, Finding>
    where
        F: AsyncFnMut() -> Result<(), String>,
    {
        match stages.reach(what, TICK, probe).await {
            Ok(stage) => {
                self.observed(&format!("stage {}: {what}", stage.number), stage.since_previous);
                self.report(format!(
                    "stage {}: {} since the breaker changed",
                    stage.number,
                    secs(stage.since_origin)
                ));
                Ok(stage.since_origin)
            }
            Err(t) => Err(Finding::fail(format!("stage {} never reached: {t}", stages.next()))),
        }
    }
}

impl Scenario {
    /// After `event` was driven on `inst` (`seen` is its evidence, such as a rejectCount), the
    /// backend's `/metrics` must carry a sample of `metric`: prom-client creates the series at its
    /// first event, so only now does its absence show that the backend never writes it (D2).
    pub async fn written_after(&mut self, inst: &Instance, metric: &str, event: &str, seen: &str) -> bool {
        match inst.metrics().await {
            Ok(text) => match diagnose::not_written(&inst.code, &text, metric, event, seen) {
                None => {
                    self.event(format!("{} writes {metric} after {event} ({seen})", inst.code));
                    true
                }
                Some(d2) => {
                    self.finding(d2);
                    false
                }
            },
            Err(e) => {
                self.finding(Finding::fail(format!("{} /metrics: {e}", inst.code)));
                false
            }
        }
    }

    /// Checks the alert pipeline that `needed` alerts depend on, before any fault: each break is
    /// recorded as a finding, and any break ends the scenario before a fault is injected.
    pub async fn pipeline_preflight(
        &mut self,
        mon: &Monitors,
        d: &Deployment,
        needed: &[&AlertSpec],
    ) -> Result<(), Finding> {
        let instances: Vec<&Instance> = d.instances().iter().collect();
        let (breaks, ok) = mon.pipeline(&instances, needed).await?;
        if breaks.is_empty() {
            self.event(format!(
                "pipeline preflight: {} rules, {} targets up, AlertManager connected, inputs present",
                ok.rules, ok.targets
            ));
            return self.alerts_quiet(mon, needed).await;
        }
        let n = breaks.len();
        for finding in breaks {
            self.finding(finding);
        }
        Err(Finding::fail(format!(
            "the alert pipeline has {n} break(s); no fault injected"
        )))
    }

    /// Before a fault: none of `needed` is pending or firing in Prometheus, or listed in
    /// AlertManager, on any instance, so what fires next is this scenario's outage and not an
    /// earlier one's (an alert still firing would be "measured" at once). An alert an earlier
    /// scenario left is waited out, saying so: its look-back range, then the plan's resolve budget.
    async fn alerts_quiet(&mut self, mon: &Monitors, needed: &[&AlertSpec]) -> Result<(), Finding> {
        let lookback = needed.iter().map(|a| a.lookback).max().unwrap_or_default();
        let deadline = lookback.mul_f64(mon.time_scale) + self.budget_of("4.3-resolve").limit;
        let quiet = eventually("the alerts under test quiet", TICK, deadline, || async {
            let mut loud = Vec::new();
            for a in needed {
                let prometheus = mon.prometheus_alerts(a.name, &[]).await?.len();
                let listed = mon.am_alerts(a.name, &[]).await?;
                // The suite's own synthetic alerts (4.3-inhibit) are not DIVE's outages.
                let alertmanager = listed.iter().filter(|a| !a.labels.contains_key(SUITE_LABEL)).count();
                if prometheus + alertmanager > 0 {
                    loud.push(format!(
                        "{} ({prometheus} in Prometheus, {alertmanager} in AlertManager)",
                        a.name
                    ));
                }
            }
            if loud.is_empty() { Ok(()) } else { Err(loud.join(", ")) }
        })
        .await;
        match quiet {
            Ok(m) if m.attempts > 1 => {
                self.finding(Finding::note(format!(
                    "pipeline preflight: an alert under test was still active from what ran before; quiet after {}",
                    secs(m.elapsed)
                )));
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(t) => Err(Finding::precondition(format!(
                "an alert under test is still active from before this scenario, so its measurement would not be this outage's: {t}"
            ))),
        }
    }

    /// Waits until alert `spec` (labels `matchers`) fires in Prometheus and is listed in
    /// AlertManager, measured from `since` (when its condition was induced) and printed against
    /// the budget: the plan's 5 minutes, or the bound on paper where the rule's `for` makes the
    /// plan's budget impossible (a finding about the plan).
    pub async fn alert_fires(
        &mut self,
        mon: &Monitors,
        spec: &AlertSpec,
        matchers: &[(&str, &str)],
        since: Instant,
    ) -> Option<Duration> {
        // Every alert requirement of the plan has the same 5-minute budget: 4.3-ten's.
        let plan = self.budget_of("4.3-ten");
        let paper = spec.paper_bound(mon.time_scale);
        let budget = if paper > plan.limit {
            self.finding(Finding::note(format!(
                "{}: `for: {}` plus up to {} of pipeline is {} on paper, over the plan's budget of {}; judged against the bound on paper",
                spec.name,
                secs(spec.for_plan.mul_f64(mon.time_scale)),
                secs(PIPELINE_ON_PAPER.mul_f64(mon.time_scale)),
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
            let alerts = mon.prometheus_alerts(spec.name, matchers).await?;
            if alerts.iter().any(|a| a.state == RuleState::Firing) {
                Ok(())
            } else {
                Err(format!("{:?}", alerts.iter().map(|a| a.state).collect::<Vec<_>>()))
            }
        })
        .await;
        if let Err(t) = firing {
            let why = mon.why_silent(spec).await;
            self.finding(why.unwrap_or_else(|| Finding::fail(format!("{}: {t}", spec.name))));
            return None;
        }
        self.alert_state(spec.name, AlertState::Firing);
        self.observed(&what, since.elapsed());
        let what = format!("{} listed in AlertManager", spec.name);
        let deadline = budget.deadline().saturating_sub(since.elapsed());
        let listed = eventually(&what, TICK, deadline, || async {
            let alerts = mon.am_alerts(spec.name, matchers).await?;
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
                    self.alert_state(spec.name, AlertState::Suppressed);
                }
                self.measured(&format!("{what} ({:?})", m.value), took, budget);
                Some(took)
            }
            Err(t) => {
                self.finding(Finding::fail(format!(
                    "{} fires in Prometheus but AlertManager never lists it: {t}",
                    spec.name
                )));
                None
            }
        }
    }

    /// Breaker `service` on `inst` has just opened: follows CircuitBreakerOpen through the
    /// pipeline (gauge scraped, pending, firing, active in AlertManager) and judges the total
    /// against `budget`, next to the bound on paper.
    pub async fn open_travels(
        &mut self,
        mon: &Monitors,
        inst: &Instance,
        service: &str,
        budget: Budget,
    ) -> Result<(), Finding> {
        let instance = instance_label(&inst.code);
        let labels = [("exported_service", service), ("instance", instance.as_str())];
        let spec = alert("CircuitBreakerOpen");
        let mut stages = Stages::from(Instant::now(), budget.deadline());
        let gauge =
            format!("dive_v3_circuit_breaker_state{{exported_service=\"{service}\",instance=\"{instance}\"}} == 2");
        self.stage(&mut stages, "state gauge 2 (OPEN) polled and scraped", || {
            mon.series_present(&gauge)
        })
        .await?;
        self.stage(&mut stages, "CircuitBreakerOpen pending in Prometheus", || {
            mon.prometheus_state(spec.name, &labels, &[RuleState::Pending, RuleState::Firing])
        })
        .await?;
        self.alert_state("CircuitBreakerOpen", AlertState::Pending);
        self.stage(&mut stages, "CircuitBreakerOpen firing in Prometheus", || {
            mon.prometheus_state(spec.name, &labels, &[RuleState::Firing])
        })
        .await?;
        self.alert_state("CircuitBreakerOpen", AlertState::Firing);
        self.stage(&mut stages, "CircuitBreakerOpen active in AlertManager", || async {
            let alerts = mon.am_alerts(spec.name, &labels).await?;
            if alerts.iter().any(|a| delivered(a, mon.silence.as_deref())) {
                Ok(())
            } else {
                Err(format!(
                    "{:?}",
                    alerts.iter().map(|a| a.status.state).collect::<Vec<_>>()
                ))
            }
        })
        .await?;
        self.report(format!(
            "bound on paper: for {} + poll, scrape and evaluation {} = {}",
            secs(spec.for_plan.mul_f64(mon.time_scale)),
            secs(PIPELINE_ON_PAPER.mul_f64(mon.time_scale)),
            secs(spec.paper_bound(mon.time_scale))
        ));
        self.measured(
            "CircuitBreakerOpen active in AlertManager after the breaker opened",
            stages.total(),
            budget,
        );
        Ok(())
    }

    /// Breaker `service` on `inst` has just closed: follows CircuitBreakerOpen out of the
    /// pipeline (gauge scraped, gone from Prometheus, gone from AlertManager).
    pub async fn resolve_travels(
        &mut self,
        mon: &Monitors,
        inst: &Instance,
        service: &str,
        budget: Budget,
    ) -> Result<(), Finding> {
        let instance = instance_label(&inst.code);
        let labels = [("exported_service", service), ("instance", instance.as_str())];
        let name = "CircuitBreakerOpen";
        let mut stages = Stages::from(Instant::now(), budget.deadline());
        let gauge =
            format!("dive_v3_circuit_breaker_state{{exported_service=\"{service}\",instance=\"{instance}\"}} == 0");
        self.stage(&mut stages, "state gauge 0 (CLOSED) polled and scraped", || {
            mon.series_present(&gauge)
        })
        .await?;
        self.stage(&mut stages, "CircuitBreakerOpen inactive in Prometheus", || async {
            let alerts = mon.prometheus_alerts(name, &labels).await?;
            if alerts.is_empty() {
                Ok(())
            } else {
                Err(format!("{:?}", alerts.iter().map(|a| a.state).collect::<Vec<_>>()))
            }
        })
        .await?;
        self.stage(&mut stages, "CircuitBreakerOpen gone from AlertManager", || async {
            let alerts = mon.am_alerts(name, &labels).await?;
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
        self.alert_state("CircuitBreakerOpen", AlertState::Resolved);
        self.report(format!(
            "bound on paper: 0 to {} after the condition clears",
            secs(PIPELINE_ON_PAPER.mul_f64(mon.time_scale))
        ));
        self.measured(
            "CircuitBreakerOpen gone from AlertManager after the breaker closed",
            stages.total(),
            budget,
        );
        Ok(())
    }
}
