//! One scenario of the plan: preflight, one fault, traffic, a measured wait against a budget,
//! restore, postcheck, journal. [`run`] drives a scenario body and returns its [`Verdict`]; the
//! body records measurements and findings on the [`Scenario`] it is handed.

use std::cell::RefCell;
use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::config::must_config;
use crate::deployment::{Deployment, Instance};
use crate::diagnose;
use crate::fault::{FaultGuard, Restored};
use crate::finding::{Defect, Finding, Severity};
use crate::journal::Journal;
use crate::model::{Breaker, BreakerState, Detailed, Overall};
use crate::poll::{eventually, holds_for, secs};
use crate::slo::{Budget, Requirement, requirement};
use crate::traffic::Pump;

/// Polling period of every scenario wait: fine enough for 250 ms resolution, and with one
/// request and one health call per tick the harness stays under 20 requests/s.
pub const TICK: Duration = Duration::from_millis(125);

pub struct Scenario {
    pub requirement: &'static Requirement,
    pub time_scale: f64,
    journal: Journal,
    findings: Vec<Finding>,
}

impl Scenario {
    fn new(requirement: &'static Requirement, deployment: &Deployment) -> Scenario {
        Scenario {
            requirement,
            time_scale: deployment.time_scale,
            journal: Journal::new(requirement.id, &deployment.target),
            findings: Vec::new(),
        }
    }

    /// The requirement's own budget, scaled.
    #[track_caller]
    pub fn budget(&self) -> Budget {
        let plan = self
            .requirement
            .budget
            .unwrap_or_else(|| panic!("{} has no budget in the plan", self.requirement.id));
        Budget::scaled(self.requirement.id, plan, self.time_scale)
    }

    /// A budget derived by the suite (stated in the README), scaled.
    pub fn budget_for(&self, label: &'static str, plan: Duration) -> Budget {
        Budget::scaled(label, plan, self.time_scale)
    }

    /// A timestamped event for the journal (and the test's captured output).
    pub fn event(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("[{}] {text}", self.requirement.id);
        self.journal.event(Instant::now(), text);
    }

    /// A line the operator always sees, even when the test passes (written past libtest's capture).
    pub fn report(&mut self, line: impl Into<String>) {
        let line = line.into();
        let _ = writeln!(std::io::stderr(), "[{}] {line}", self.requirement.id);
        self.journal.event(Instant::now(), line);
    }

    /// Prints a measurement next to its budget, pass or fail; over budget is a finding.
    pub fn measured(&mut self, what: &str, measured: Duration, budget: Budget) -> bool {
        self.report(budget.line(what, measured));
        self.journal.measurement(what, measured, Some(budget.limit));
        let within = measured <= budget.limit;
        if !within {
            self.finding(Finding::fail(format!(
                "{what} took {}, over the budget of {}",
                secs(measured),
                secs(budget.limit)
            )));
        }
        within
    }

    /// A measurement that has no budget in the plan, printed and journaled.
    pub fn observed(&mut self, what: &str, measured: Duration) {
        self.report(format!("{what} after {} (no budget in the plan)", secs(measured)));
        self.journal.measurement(what, measured, None);
    }

    /// What the scenario has found so far.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Records a finding and carries on (several can be true at once).
    pub fn finding(&mut self, finding: Finding) {
        self.report(finding.to_string());
        self.findings.push(finding);
    }

    /// Steady state before any fault: healthy, every breaker CLOSED. Otherwise a precondition
    /// failure, and nothing is injected.
    pub async fn preflight(&mut self, inst: &Instance) -> Result<(), Finding> {
        if inst.health_base == "/api/health" {
            self.finding(
                Finding::note(format!(
                    "{} serves its health API at /api/health; the plan and DIVE's own scripts call /health",
                    inst.code
                ))
                .defect(Defect::D9),
            );
        }
        let d = inst
            .detailed()
            .await
            .map_err(|e| Finding::precondition(format!("{} health API: {e}", inst.code)))?;
        let breakers = d
            .circuit_breakers
            .ok_or_else(|| Finding::precondition(format!("{} not in steady state: {}", inst.code, d.summary())))?;
        let open: Vec<_> = Breaker::ALL
            .iter()
            .filter(|b| breakers.get(**b).state != BreakerState::Closed)
            .collect();
        if d.status != Overall::Healthy || !open.is_empty() {
            return Err(Finding::precondition(format!(
                "{} not in steady state before the fault: {}",
                inst.code,
                d.summary()
            )));
        }
        self.event(format!("preflight: {} healthy, every breaker CLOSED", inst.code));
        Ok(())
    }

    /// Steady state after the restore: healthy and every breaker CLOSED. Breakers close only
    /// under traffic (D7), so the postcheck drives it, bounded by the slowest breaker's timeout.
    pub async fn postcheck(&mut self, inst: &Instance, _traffic: &Pump) {
        let deadline = Duration::from_secs(150).mul_f64(self.time_scale) + Duration::from_secs(15);
        let settled = eventually(
            &format!("{} back to steady state", inst.code),
            TICK,
            deadline,
            || async {
                let d = inst.detailed().await.map_err(|e| e.to_string())?;
                let closed = d
                    .circuit_breakers
                    .is_some_and(|b| Breaker::ALL.iter().all(|k| b.get(*k).state == BreakerState::Closed));
                if d.status == Overall::Healthy && closed {
                    Ok(())
                } else {
                    Err(d.summary())
                }
            },
        )
        .await;
        match settled {
            Ok(m) => self.event(format!(
                "postcheck: {} healthy, every breaker CLOSED after {}",
                inst.code,
                secs(m.elapsed)
            )),
            Err(t) => self.finding(Finding::fail(format!(
                "the system did not return to steady state after the restore: {t}"
            ))),
        }
    }

    /// Waits until `breaker` on `inst` is in state `want` while `pump` sends traffic, and prints
    /// the latency against `budget`. When it never gets there, records why.
    pub async fn breaker_reaches(
        &mut self,
        inst: &Instance,
        pump: &Pump,
        breaker: Breaker,
        want: BreakerState,
        budget: Budget,
    ) -> Option<Duration> {
        let since = Instant::now();
        let last: RefCell<Option<Detailed>> = RefCell::new(None);
        let what = format!("{} {breaker} breaker {want}", inst.code);
        let reached = eventually(&what, TICK, budget.deadline(), || async {
            let d = inst.detailed().await.map_err(|e| e.to_string())?;
            let stats = d.circuit_breakers.map(|b| b.get(breaker));
            let summary = d.summary();
            last.replace(Some(d));
            match stats {
                Some(s) if s.state == want => Ok(()),
                _ => Err(summary),
            }
        })
        .await;
        match reached {
            Ok(m) => {
                self.measured(&what, m.elapsed, budget);
                Some(m.elapsed)
            }
            Err(timeout) => {
                self.event(timeout.to_string());
                let last = last.into_inner();
                let stats = last.as_ref().and_then(|d| d.circuit_breakers).map(|b| b.get(breaker));
                let dependency = last.as_ref().and_then(|d| diagnose::dependency_status(d, breaker));
                let tally = pump.tally_since(since);
                let finding = if want == BreakerState::Open {
                    diagnose::breaker_did_not_open(breaker, stats, dependency, tally)
                } else {
                    Finding::fail(format!("{what} never observed: {timeout} (traffic: {tally})"))
                };
                self.finding(finding);
                None
            }
        }
    }

    /// Waits until the overall status of `inst` is `want`; prints how long that took. On timeout
    /// returns the last health seen, for the caller's diagnosis.
    pub async fn status_reaches(
        &mut self,
        inst: &Instance,
        want: Overall,
        deadline: Duration,
    ) -> Result<Duration, Option<Detailed>> {
        let last: RefCell<Option<Detailed>> = RefCell::new(None);
        let what = format!("{} status {want}", inst.code);
        let reached = eventually(&what, TICK, deadline, || async {
            let d = inst.detailed().await.map_err(|e| e.to_string())?;
            let done = d.status == want;
            let summary = d.summary();
            last.replace(Some(d));
            if done { Ok(()) } else { Err(summary) }
        })
        .await;
        match reached {
            Ok(m) => {
                self.observed(&what, m.elapsed);
                Ok(m.elapsed)
            }
            Err(timeout) => {
                self.event(timeout.to_string());
                Err(last.into_inner())
            }
        }
    }

    /// For `window`, authorization must keep answering (200/403, never 5xx or silence) and the
    /// status must never be unhealthy. `Err` says what broke, for the caller's finding.
    pub async fn authorization_answers(
        &mut self,
        inst: &Instance,
        pump: &Pump,
        window: Duration,
    ) -> Result<(), String> {
        let since = Instant::now();
        let what = format!("{} authorization answering and status not unhealthy", inst.code);
        let held = holds_for(&what, TICK, window, || async {
            let d = inst.detailed().await.map_err(|e| e.to_string())?;
            let t = pump.tally_since(since);
            if d.status == Overall::Unhealthy {
                Err(format!("status {}", d.summary()))
            } else if t.server_error > 0 || t.no_answer > 0 {
                Err(format!("traffic {t}"))
            } else {
                Ok(format!("status {}, traffic {t}", d.status))
            }
        })
        .await;
        let tally = pump.tally_since(since);
        match held {
            Ok(_) if tally.decided > 0 => {
                self.report(format!("held for {}: {what} ({tally})", secs(window)));
                Ok(())
            }
            Ok(_) => Err(format!("no request was decided within {} ({tally})", secs(window))),
            Err(broke) => Err(broke.to_string()),
        }
    }

    /// Restores a fault and journals how long the service took to answer again.
    pub async fn restore(&mut self, fault: FaultGuard) -> Result<Restored, Finding> {
        let spec = fault.spec().to_string();
        let restored = fault.restore().await.map_err(Finding::fail)?;
        self.event(format!("restored: {spec}; answering after {}", secs(restored.took)));
        Ok(restored)
    }

    fn finish(mut self, result: Result<(), Finding>) -> Verdict {
        if let Err(f) = result {
            self.finding(f);
        }
        let failed = self.findings.iter().any(|f| f.severity != Severity::Note);
        self.journal.verdict = if failed { "fail" } else { "pass" }.to_string();
        self.journal.findings = self.findings.clone();
        let dir = must_config().state_dir.join(&must_config().run_id);
        match self.journal.write(&dir) {
            Ok(path) => eprintln!("journal: {}", path.display()),
            Err(e) => eprintln!("journal not written: {e}"),
        }
        Verdict {
            requirement: self.requirement.id,
            target: self.journal.target.clone(),
            findings: self.findings,
        }
    }
}

/// The outcome of one scenario.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub requirement: &'static str,
    pub target: String,
    pub findings: Vec<Finding>,
}

impl Verdict {
    pub fn failures(&self) -> Vec<&Finding> {
        self.findings.iter().filter(|f| f.severity != Severity::Note).collect()
    }

    fn describe(&self) -> String {
        let lines: Vec<String> = self.findings.iter().map(|f| format!("  - {f}")).collect();
        format!("{} on {}:\n{}", self.requirement, self.target, lines.join("\n"))
    }

    /// The requirement holds.
    #[track_caller]
    pub fn must_pass(&self) {
        assert!(
            self.failures().is_empty(),
            "requirement {} does not hold: {}",
            self.requirement,
            self.describe()
        );
    }

    /// The scenario failed (not as a precondition), with a finding naming each of `defects`.
    #[track_caller]
    pub fn must_fail_naming(&self, defects: &[Defect]) {
        let failures = self.failures();
        assert!(
            !failures.is_empty(),
            "expected {} to fail naming {defects:?}, but it passed: {}",
            self.requirement,
            self.describe()
        );
        assert!(
            failures.iter().all(|f| f.severity == Severity::Fail),
            "expected a diagnosis, got a precondition failure: {}",
            self.describe()
        );
        for d in defects {
            assert!(
                failures.iter().any(|f| f.defect == Some(*d)),
                "expected a finding naming {d} ({}); got: {}",
                d.title(),
                self.describe()
            );
        }
    }
}

/// Runs `body` against the configured deployment.
pub async fn run<F>(id: &str, body: F) -> Verdict
where
    F: AsyncFnOnce(&Deployment, &mut Scenario) -> Result<(), Finding>,
{
    run_on(Deployment::from_config().await, id, body).await
}

/// Runs `body` against `deployment` (a self-check passes a reference deployment of its choice).
pub async fn run_on<F>(deployment: Result<Deployment, Finding>, id: &str, body: F) -> Verdict
where
    F: AsyncFnOnce(&Deployment, &mut Scenario) -> Result<(), Finding>,
{
    let requirement = requirement(id);
    let deployment = match deployment {
        Ok(d) => d,
        Err(f) => {
            let _ = writeln!(std::io::stderr(), "[{id}] {f}");
            return Verdict {
                requirement: requirement.id,
                target: "(not started)".to_string(),
                findings: vec![f],
            };
        }
    };
    let mut scenario = Scenario::new(requirement, &deployment);
    scenario.event(format!(
        "{}: {} on {}",
        requirement.id, requirement.text, deployment.target
    ));
    let result = body(&deployment, &mut scenario).await;
    scenario.finish(result)
}
