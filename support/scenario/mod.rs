//! One scenario of the plan: preflight, one fault, traffic, a measured wait against a budget,
//! restore, postcheck, journal. [`run`] drives a scenario body and returns its [`Verdict`]; the
//! body records measurements and findings on the [`Scenario`] it is handed.

pub mod alerts;
pub mod breakers;
pub mod chaos;
pub mod diagnose;
pub mod federation;
pub mod load;
pub mod observer;
pub mod stages;
pub mod start;
pub mod status;
pub mod trust;

use std::io::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::deployment::Deployment;
use crate::deployment::instance::Instance;
use crate::deployment::traffic::{Pump, Tallied};
use crate::fault::{FaultGuard, Restored};
use crate::infra::config::must_config;
use crate::infra::http::HttpError;
use crate::report;
use crate::vocab::blast::SCENARIOS;
use crate::vocab::fault::{FaultKind, FaultSpec, Service};
use crate::vocab::finding::{Defect, Finding, Severity, redacted};
use crate::vocab::health::{Breaker, BreakerState, BreakerStats, Detailed, Overall};
use crate::vocab::journal::{AlertState, EventKind, Journal, Outcome};
use crate::vocab::slo::{self, Budget, Requirement, requirement};
use crate::vocab::units::{ms, secs};
use observer::Observer;

pub use crate::vocab::slo::TICK;

/// The least time a wait gets, however late it starts: one health call, on any target.
const LAST_LOOK: Duration = Duration::from_secs(5);

pub struct Scenario {
    pub requirement: &'static Requirement,
    pub time_scale: f64,
    /// A live DIVE: reference-only defects (R*) are never named on it.
    live: bool,
    /// When the last change the scenario made took effect: the command of its last fault, or the
    /// moment its last restored service answered. Waits for the consequences measure from here.
    origin: Option<Instant>,
    journal: Journal,
    findings: Vec<Finding>,
    /// Behind a lock because the polls observe through `&self` while they borrow the scenario.
    observer: Mutex<Observer>,
}

impl Scenario {
    fn new(requirement: &'static Requirement, deployment: &Deployment) -> Scenario {
        Scenario {
            requirement,
            time_scale: deployment.time_scale,
            live: deployment.is_live(),
            origin: None,
            journal: Journal::new(requirement.id, requirement.text, &deployment.target),
            findings: Vec::new(),
            observer: Mutex::new(Observer::new(deployment.time_scale)),
        }
    }

    /// The requirement's own budget, scaled.
    #[track_caller]
    pub fn budget(&self) -> Budget {
        slo::budget(self.requirement.id, self.time_scale)
    }

    /// Any budget of the requirement table, scaled: another requirement's (a recovery first opens a
    /// breaker within 4.1's) or one the suite derives (a window to hold).
    #[track_caller]
    pub fn budget_of(&self, id: &str) -> Budget {
        slo::budget(id, self.time_scale)
    }

    /// Where the waits for the consequences of the last change measure from: the last fault's
    /// command, or the moment the last restored service answered; now if nothing changed yet.
    pub fn origin(&self) -> Instant {
        self.origin.unwrap_or_else(Instant::now)
    }

    /// What is left of `deadline` counted from [`Scenario::origin`], but never less than one last
    /// look: a wait that follows another one that used the time up still reads the state once.
    pub fn left_of(&self, deadline: Duration) -> Duration {
        deadline.saturating_sub(self.origin().elapsed()).max(LAST_LOOK)
    }

    /// A timestamped event for the journal (and the test's captured output).
    pub fn event(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("[{}] {text}", self.requirement.id);
        self.record(Instant::now(), text, EventKind::Note);
    }

    /// A line the operator always sees, even when the test passes (written past libtest's capture).
    pub fn report(&mut self, line: impl Into<String>) {
        let line = line.into();
        let _ = writeln!(std::io::stderr(), "[{}] {line}", self.requirement.id);
        self.record(Instant::now(), line, EventKind::Note);
    }

    /// Journals a typed event, after the changes the polls observed before it.
    fn record(&mut self, at: Instant, text: String, kind: EventKind) {
        self.flush_observations();
        self.journal.event(at, text, kind);
    }

    /// Moves the observed changes into the journal (they were printed when seen), and the
    /// judgements of the breakers' transitions into the findings.
    fn flush_observations(&mut self) {
        let observer = self.observer.get_mut().unwrap_or_else(PoisonError::into_inner);
        let pending = std::mem::take(&mut observer.pending);
        let judged = std::mem::take(&mut observer.judged);
        for (at, text, kind) in pending {
            self.journal.event(at, text, kind);
        }
        for finding in judged {
            self.finding(finding);
        }
    }

    /// `GET {health}/detailed` on `inst`, journaling every change of status or breaker state it
    /// shows. Every poll of the scenario reads health through here, so the timeline sees each
    /// transition the polls saw.
    pub async fn detailed(&self, inst: &Instance) -> Result<Detailed, HttpError> {
        let asked = Instant::now();
        let d = inst.detailed().await?;
        let mut observer = self.observer.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = observer.pending.len();
        observer.detailed(asked, Instant::now(), &inst.code, &d);
        // Printed now rather than at the flush, so the test's output keeps the order of events.
        for (_, text, _) in &observer.pending[seen..] {
            eprintln!("[{}] {text}", self.requirement.id);
        }
        Ok(d)
    }

    /// One breaker's stats on `inst`, read (and observed) through [`Scenario::detailed`].
    pub async fn breaker(&self, inst: &Instance, breaker: Breaker) -> Result<BreakerStats, String> {
        let d = self.detailed(inst).await.map_err(|e| e.to_string())?;
        d.circuit_breakers.map(|b| b.get(breaker)).ok_or_else(|| d.summary())
    }

    /// Journals the state of an alert when it differs from the last one recorded for it.
    /// `alert` names the alert and what tells its instances apart: `CircuitBreakerOpen{service=opa}`.
    pub fn alert_state(&mut self, alert: &str, state: AlertState) {
        let observer = self.observer.get_mut().unwrap_or_else(PoisonError::into_inner);
        let seen = observer.pending.len();
        observer.alert(Instant::now(), alert, state);
        for (_, text, _) in &observer.pending[seen..] {
            eprintln!("[{}] {text}", self.requirement.id);
        }
        self.flush_observations();
    }

    /// Applies one fault to one of `inst`'s services and journals when it took effect.
    pub async fn fault(&mut self, inst: &Instance, service: Service, kind: FaultKind) -> Result<FaultGuard, Finding> {
        let guard = inst.fault(service, kind).await?;
        self.fault_applied(&guard);
        Ok(guard)
    }

    /// Journals a fault as applied: by this scenario, or by the one beside it that shares the
    /// outage ([`run_side_by_side`]). The waits for its consequences measure from its command.
    pub fn fault_applied(&mut self, guard: &FaultGuard) {
        let fault = guard.spec().clone();
        self.origin = Some(guard.commanded_at());
        self.record(
            guard.commanded_at(),
            format!(
                "fault applied: {fault} (seen to take effect {} after the command returned)",
                secs(guard.effect_after())
            ),
            EventKind::FaultApplied { fault },
        );
    }

    /// Says what the next wait probes and for how long: visible in a dry run, journaled always.
    fn probing(&mut self, line: String) {
        if must_config().dry_run {
            self.report(format!("probe: {line}"));
        } else {
            self.event(format!("probe: {line}"));
        }
    }

    /// Prints a measurement next to its budget, pass or fail; over budget is a finding.
    pub fn measured(&mut self, what: &str, measured: Duration, budget: Budget) -> bool {
        self.report(budget.line(what, measured));
        self.journal
            .measurement(what, measured, Some((budget.label, budget.limit)));
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

    /// Records a finding and carries on (several can be true at once). On a live DIVE a
    /// reference-only defect is never named: the finding stands, without the tag.
    pub fn finding(&mut self, mut finding: Finding) {
        if self.live && finding.defect.is_some_and(|d| d.reference_only()) {
            finding.defect = None;
        }
        self.report(finding.to_string());
        self.findings.push(finding);
    }

    /// Steady state before any fault: healthy, every breaker CLOSED. A breaker an earlier
    /// scenario left OPEN or HALF_OPEN is first driven closed by traffic (DIVE's breakers move only
    /// inside calls), saying so. Anything else out of steady state is a precondition failure, and
    /// nothing is injected.
    pub async fn preflight(&mut self, inst: &Instance) -> Result<(), Finding> {
        if let Some(d9) = diagnose::moved_health_api(&inst.code, &inst.health_base) {
            self.finding(d9);
        }
        let mut d = self
            .detailed(inst)
            .await
            .map_err(|e| Finding::precondition(format!("{} health API: {e}", inst.code)))?;
        if d.status == Overall::Healthy && !all_closed(&d) {
            self.report(format!(
                "preflight: {} is healthy but {}: driving traffic until every breaker is CLOSED before judging",
                inst.code,
                d.summary()
            ));
            let started = Instant::now();
            let traffic = inst.traffic().await?.pump(TICK);
            let settled = self.steady(inst, self.budget_of("steady state").limit).await;
            let tally = traffic.tally_since(started);
            drop(traffic);
            if let Err(t) = settled {
                return Err(Finding::precondition(format!(
                    "{} did not settle before the fault: {t} (traffic: {tally})",
                    inst.code
                )));
            }
            self.finding(Finding::note(format!(
                "preflight: {} was left with {} by what ran before; every breaker CLOSED after {} of traffic ({tally})",
                inst.code,
                d.summary(),
                secs(started.elapsed())
            )));
            d = self
                .detailed(inst)
                .await
                .map_err(|e| Finding::precondition(format!("{} health API: {e}", inst.code)))?;
        }
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
        self.record(
            Instant::now(),
            format!("preflight: {} healthy, every breaker CLOSED", inst.code),
            EventKind::Preflight {
                instance: inst.code.clone(),
            },
        );
        Ok(())
    }

    /// Steady state after the restore: healthy and every breaker CLOSED. Breakers close only
    /// under traffic (D7), so the postcheck drives it, bounded by the slowest breaker's timeout.
    pub async fn postcheck(&mut self, inst: &Instance, traffic: &Pump) {
        let started = Instant::now();
        let deadline = self.budget_of("steady state").limit;
        let settled = self.steady(inst, deadline).await;
        let postcheck = EventKind::Postcheck {
            instance: inst.code.clone(),
            settled: settled.is_ok(),
        };
        match settled {
            Ok(()) => {
                let text = format!(
                    "postcheck: {} healthy, every breaker CLOSED after {}",
                    inst.code,
                    secs(started.elapsed())
                );
                self.record(Instant::now(), text, postcheck);
            }
            Err(t) => {
                self.record(
                    Instant::now(),
                    format!("postcheck: {} did not settle", inst.code),
                    postcheck,
                );
                self.finding(Finding::fail(format!(
                    "the system did not return to steady state after the restore: {t} (traffic: {})",
                    traffic.tally_since(started)
                )));
            }
        }
    }

    /// Restores a fault and journals how long the service took to answer again.
    pub async fn restore(&mut self, fault: FaultGuard) -> Result<Restored, Finding> {
        let spec = fault.spec().clone();
        let restored = fault.restore().await.map_err(Finding::fail)?;
        self.fault_restored(spec, &restored);
        Ok(restored)
    }

    /// Journals a fault as restored, by this scenario or by the one beside it that shares the
    /// outage. The waits for the way back measure from the moment the service answered.
    pub fn fault_restored(&mut self, spec: FaultSpec, restored: &Restored) {
        self.origin = Some(restored.answered_at);
        self.record(
            restored.answered_at,
            format!("restored: {spec}; answering after {}", secs(restored.took)),
            EventKind::FaultRestored {
                fault: spec,
                restore_ms: ms(restored.took),
            },
        );
    }

    fn finish(mut self, result: Result<(), Finding>) -> Verdict {
        if let Err(f) = result {
            self.finding(f);
        }
        self.flush_observations();
        self.journal.verdict = Outcome::of(&self.findings);
        self.journal.findings = self.findings.clone();
        let dir = must_config().state_dir.join(&must_config().run_id);
        report::scenario_finished(&self.journal, &dir);
        Verdict {
            requirement: self.requirement.id,
            target: self.journal.target.clone(),
            findings: self.findings,
        }
    }
}

/// Every breaker of a detailed health answer is CLOSED (the error fallback has none: not closed).
fn all_closed(d: &Detailed) -> bool {
    d.circuit_breakers
        .is_some_and(|b| Breaker::ALL.iter().all(|k| b.get(*k).state == BreakerState::Closed))
}

/// Steady state, as one health answer shows it: healthy with every breaker CLOSED; else what it
/// shows instead.
pub(crate) fn steady_now(d: &Detailed) -> Result<(), String> {
    if d.status == Overall::Healthy && all_closed(d) {
        Ok(())
    } else {
        Err(d.summary())
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

    /// Every requirement of scenarios run side by side holds; a failure names each one that does not.
    #[track_caller]
    pub fn all_must_pass(verdicts: &[Verdict]) {
        let failed: Vec<String> = verdicts
            .iter()
            .filter(|v| !v.failures().is_empty())
            .map(Verdict::describe)
            .collect();
        assert!(
            failed.is_empty(),
            "{} of {} requirements do not hold: {}",
            failed.len(),
            verdicts.len(),
            failed.join("\n")
        );
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
    /// Returns the whole diagnosis, redacted, for the self-check to pin with a snapshot.
    #[track_caller]
    #[must_use = "pin the diagnosis: insta::assert_snapshot!(verdict.must_fail_naming(..))"]
    pub fn must_fail_naming(&self, defects: &[Defect]) -> String {
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
        self.diagnosis()
    }

    /// Every failure, one per line, with what varies from run to run redacted.
    pub fn diagnosis(&self) -> String {
        let state_dir = must_config().state_dir.to_string_lossy();
        let lines: Vec<String> = self
            .failures()
            .iter()
            .map(|f| {
                let tag = f.defect.map(|d| format!("[{d}: {}] ", d.title())).unwrap_or_default();
                format!("{:?} {tag}{}", f.severity, redacted(&f.message, &state_dir))
            })
            .collect();
        lines.join("\n")
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
    match deployment {
        Ok(d) => run_with(&d, id, body).await,
        Err(f) => not_started(id, f),
    }
}

/// Runs `body` against a deployment that outlives it, so several scenarios can share one.
pub async fn run_with<F>(deployment: &Deployment, id: &str, body: F) -> Verdict
where
    F: AsyncFnOnce(&Deployment, &mut Scenario) -> Result<(), Finding>,
{
    let mut scenario = begin(deployment, id);
    let result = body(deployment, &mut scenario).await;
    scenario.finish(result)
}

/// Runs scenarios that observe one outage side by side, so a live run waits out DIVE's timers
/// once for all of them: `body` gets one [`Beside`] per id, each with its own requirement,
/// journal and verdict.
pub async fn run_side_by_side<const N: usize, F>(
    deployment: Result<Deployment, Finding>,
    ids: [&str; N],
    body: F,
) -> [Verdict; N]
where
    F: AsyncFnOnce(&Deployment, &mut [Beside; N]),
{
    let d = match deployment {
        Ok(d) => d,
        Err(f) => return ids.map(|id| not_started(id, f.clone())),
    };
    let mut all = ids.map(|id| Beside {
        s: begin(&d, id),
        result: Ok(()),
        faulted: false,
    });
    body(&d, &mut all).await;
    all.map(|b| b.s.finish(b.result))
}

/// One scenario of a side-by-side run and how it has fared: after a step fails it takes no further
/// part, as a scenario run alone stops at its first error; once the shared fault was applied its
/// postcheck still runs.
pub struct Beside {
    s: Scenario,
    result: Result<(), Finding>,
    faulted: bool,
}

impl Beside {
    /// Runs `step` on the scenario while it takes part, and keeps the error that ends its part.
    pub async fn step<F>(&mut self, step: F)
    where
        F: AsyncFnOnce(&mut Scenario) -> Result<(), Finding>,
    {
        if self.result.is_ok() {
            self.result = step(&mut self.s).await;
        }
    }

    /// Ends the scenario's part with `f`, unless an earlier error already did.
    fn fail(&mut self, f: &Finding) {
        if self.result.is_ok() {
            self.result = Err(f.clone());
        }
    }

    /// Ends the part of every scenario still taking part with `f`: a step they all needed failed.
    pub fn fail_all(all: &mut [Beside], f: Finding) {
        all.iter_mut().for_each(|b| b.fail(&f));
    }

    /// Applies one fault to `inst` for every scenario still taking part, journaled in each.
    pub async fn fault_all(
        all: &mut [Beside],
        inst: &Instance,
        service: Service,
        kind: FaultKind,
    ) -> Option<FaultGuard> {
        if all.iter().all(|b| b.result.is_err()) {
            return None;
        }
        match inst.fault(service, kind).await {
            Ok(guard) => {
                for b in all.iter_mut().filter(|b| b.result.is_ok()) {
                    b.faulted = true;
                    b.s.fault_applied(&guard);
                }
                Some(guard)
            }
            Err(f) => {
                Beside::fail_all(all, f);
                None
            }
        }
    }

    /// Restores the shared fault, journaled in every scenario that saw it applied.
    pub async fn restore_all(all: &mut [Beside], guard: FaultGuard) -> Option<Restored> {
        let spec = guard.spec().clone();
        match guard.restore().await {
            Ok(restored) => {
                for b in all.iter_mut().filter(|b| b.faulted) {
                    b.s.fault_restored(spec.clone(), &restored);
                }
                Some(restored)
            }
            Err(e) => {
                Beside::fail_all(all, Finding::fail(e));
                None
            }
        }
    }

    /// Every scenario that saw the fault checks steady state after the restore; the first one's
    /// postcheck waits for it, the others see it at once.
    pub async fn postcheck_all(all: &mut [Beside], inst: &Instance, traffic: &Pump) {
        for b in all.iter_mut().filter(|b| b.faulted) {
            b.s.postcheck(inst, traffic).await;
        }
    }
}

/// The verdict of a scenario whose deployment never started.
fn not_started(id: &str, f: Finding) -> Verdict {
    let requirement = requirement(id);
    let _ = writeln!(std::io::stderr(), "[{id}] {f}");
    Verdict {
        requirement: requirement.id,
        target: "(not started)".to_string(),
        findings: vec![f],
    }
}

/// A scenario of requirement `id` on `deployment`, its header printed (in a dry run, with what it
/// would do to the target).
fn begin(deployment: &Deployment, id: &str) -> Scenario {
    let requirement = requirement(id);
    let mut scenario = Scenario::new(requirement, deployment);
    let header = format!("{}: {} on {}", requirement.id, requirement.text, deployment.target);
    if must_config().dry_run {
        scenario.report(header);
        // What the scenario would do to the target, as the blast-radius catalogue declares it.
        for s in SCENARIOS.iter().filter(|s| s.requirement == requirement.id) {
            scenario.report(format!(
                "DRY RUN: {}::{} {}; at most {} min at DIVE's real timers",
                s.binary,
                s.test,
                s.touches.describe(),
                s.at_most.as_secs().div_ceil(60)
            ));
        }
    } else {
        scenario.event(header);
    }
    scenario
}
