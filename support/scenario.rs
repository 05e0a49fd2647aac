//! One scenario of the plan: preflight, one fault, traffic, a measured wait against a budget,
//! restore, postcheck, journal. [`run`] drives a scenario body and returns its [`Verdict`]; the
//! body records measurements and findings on the [`Scenario`] it is handed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::must_config;
use crate::deployment::{Deployment, Instance};
use crate::diagnose;
use crate::fault::{FaultGuard, FaultKind, Restored, Service};
use crate::finding::{Defect, Finding, Severity};
use crate::http::HttpError;
use crate::journal::{AlertState, EventKind, Journal, Outcome, ms};
use crate::model::{Breaker, BreakerState, BreakerStats, Detailed, Overall};
use crate::poll::{Broke, Held, eventually, holds_for, secs};
use crate::report;
use crate::slo::{Budget, Requirement, requirement};
use crate::traffic::{Pump, Traffic};

/// Polling period of every scenario wait: fine enough for 250 ms resolution, and with one
/// request and one health call per tick the harness stays under 20 requests/s.
pub const TICK: Duration = Duration::from_millis(125);

pub struct Scenario {
    pub requirement: &'static Requirement,
    pub time_scale: f64,
    journal: Journal,
    findings: Vec<Finding>,
    /// Behind a lock because the polls observe through `&self` while they borrow the scenario.
    observer: Mutex<Observer>,
}

/// The last state seen of every health status, breaker and alert, so that only changes are
/// journaled. Changes wait in `pending` until the scenario next records something.
#[derive(Default)]
struct Observer {
    health: HashMap<String, Overall>,
    breakers: HashMap<(String, Breaker), BreakerState>,
    alerts: HashMap<String, AlertState>,
    pending: Vec<(Instant, String, EventKind)>,
}

impl Observer {
    fn detailed(&mut self, at: Instant, instance: &str, d: &Detailed) {
        let from = self.health.insert(instance.to_string(), d.status);
        if from != Some(d.status) {
            let text = match from {
                Some(from) => format!("{instance} status {from} -> {}", d.status),
                None => format!("{instance} status {}", d.status),
            };
            let kind = EventKind::HealthChanged {
                instance: instance.to_string(),
                from,
                to: d.status,
            };
            self.pending.push((at, text, kind));
        }
        // The error fallback has no breakers: keep the last states seen rather than invent one.
        let Some(breakers) = &d.circuit_breakers else {
            return;
        };
        for breaker in Breaker::ALL {
            let to = breakers.get(breaker).state;
            let from = self.breakers.insert((instance.to_string(), breaker), to);
            if from == Some(to) {
                continue;
            }
            let text = match from {
                Some(from) => format!("{instance} {breaker} breaker {from} -> {to}"),
                None => format!("{instance} {breaker} breaker {to}"),
            };
            let kind = EventKind::BreakerChanged {
                instance: instance.to_string(),
                breaker,
                from,
                to,
            };
            self.pending.push((at, text, kind));
        }
    }

    fn alert(&mut self, at: Instant, alert: &str, to: AlertState) {
        let from = self.alerts.insert(alert.to_string(), to);
        if from == Some(to) {
            return;
        }
        let text = match from {
            Some(from) => format!("alert {alert} {from} -> {to}"),
            None => format!("alert {alert} {to}"),
        };
        let kind = EventKind::AlertChanged {
            alert: alert.to_string(),
            from,
            to,
        };
        self.pending.push((at, text, kind));
    }
}

impl Scenario {
    fn new(requirement: &'static Requirement, deployment: &Deployment) -> Scenario {
        Scenario {
            requirement,
            time_scale: deployment.time_scale,
            journal: Journal::new(requirement.id, requirement.text, &deployment.target),
            findings: Vec::new(),
            observer: Mutex::new(Observer::default()),
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

    /// Another requirement's budget, scaled (a recovery test first opens a breaker within 4.1's).
    pub fn budget_of(&self, id: &'static str) -> Budget {
        let r = requirement(id);
        Budget::scaled(r.id, r.budget.unwrap_or_default(), self.time_scale)
    }

    /// A budget derived by the suite (stated in the README), scaled.
    pub fn budget_for(&self, label: &'static str, plan: Duration) -> Budget {
        Budget::scaled(label, plan, self.time_scale)
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

    /// Moves the observed changes into the journal (they were printed when seen).
    fn flush_observations(&mut self) {
        let pending = std::mem::take(&mut self.observer.get_mut().unwrap_or_else(PoisonError::into_inner).pending);
        for (at, text, kind) in pending {
            self.journal.event(at, text, kind);
        }
    }

    /// `GET {health}/detailed` on `inst`, journaling every change of status or breaker state it
    /// shows. Every poll of the scenario reads health through here, so the timeline sees each
    /// transition the polls saw.
    pub async fn detailed(&self, inst: &Instance) -> Result<Detailed, HttpError> {
        let d = inst.detailed().await?;
        let mut observer = self.observer.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = observer.pending.len();
        observer.detailed(Instant::now(), &inst.code, &d);
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
        let fault = guard.spec().clone();
        self.record(
            guard.applied_at(),
            format!("fault applied: {fault}"),
            EventKind::FaultApplied { fault },
        );
        Ok(guard)
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
        let d = self
            .detailed(inst)
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
        // The slowest breaker re-admits a call 60 s after its last failure; 90 s leaves room.
        let deadline = Duration::from_secs(90).mul_f64(self.time_scale) + Duration::from_secs(3);
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
        self.probing(format!(
            "GET {}/detailed every {} until {what}, budget {} (gives up at {}), while authorized traffic flows",
            inst.health_base,
            secs(TICK),
            secs(budget.limit),
            secs(budget.deadline())
        ));
        let reached = eventually(&what, TICK, budget.deadline(), || async {
            let d = self.detailed(inst).await.map_err(|e| e.to_string())?;
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

    /// Recovery, request by request: sends one request per tick and reads `breaker` after each,
    /// until it is in state `want`. The latency counts from `since` (the moment the dependency
    /// answered its own probe); each state change is journaled with the request that caused it.
    pub async fn drive_until(
        &mut self,
        inst: &Instance,
        traffic: &mut Traffic,
        breaker: Breaker,
        want: BreakerState,
        budget: Budget,
        since: Instant,
    ) -> Option<Duration> {
        let what = format!("{} {breaker} breaker {want}", inst.code);
        let mut moves: Vec<(Instant, String)> = Vec::new();
        let mut last: Option<BreakerState> = None;
        let mut since_half_open = 0usize;
        let deadline = budget.deadline().saturating_sub(since.elapsed());
        // DIVE closes a HALF_OPEN breaker after at most 3 successes: a breaker still HALF_OPEN
        // after this many answered calls through it will not close, and waiting longer proves nothing.
        const STUCK_AFTER: usize = 6;
        self.probing(format!(
            "one GET /api/resources/:id, then GET {}/detailed, every {} until {what}, budget {} from the dependency answering",
            inst.health_base, secs(TICK), secs(budget.limit)
        ));
        let reached = eventually(&what, TICK, deadline, async || {
            let sent = traffic.send().await;
            let stats = self.breaker(inst, breaker).await?;
            if last.is_some_and(|l| l != stats.state) {
                let from = last.map_or(String::new(), |l| l.to_string());
                moves.push((
                    Instant::now(),
                    format!(
                        "request for {} ({sent}) moved {breaker} {from} -> {}",
                        sent.resource, stats.state
                    ),
                ));
            }
            if stats.state == BreakerState::HalfOpen && sent.status.is_some() && !sent.fallback {
                since_half_open += 1;
            }
            last = Some(stats.state);
            match stats.state {
                s if s == want => Ok(true),
                BreakerState::HalfOpen if since_half_open >= STUCK_AFTER => Ok(false),
                _ => Err(stats.to_string()),
            }
        })
        .await;
        for (at, text) in moves {
            self.event(format!(
                "+{} after the dependency answered: {text}",
                secs(at.saturating_duration_since(since))
            ));
        }
        match reached {
            Ok(m) if m.value => {
                let latency = since.elapsed();
                self.measured(&format!("{what} (from the dependency answering)"), latency, budget);
                Some(latency)
            }
            Ok(_) => {
                self.finding(
                    Finding::fail(format!(
                        "{breaker} breaker stayed HALF_OPEN through {since_half_open} calls that succeeded through it (DIVE closes after at most 3): it never closes"
                    ))
                    .defect(Defect::R2),
                );
                None
            }
            Err(timeout) => {
                self.finding(Finding::fail(format!("{what} not reached: {timeout}")));
                None
            }
        }
    }

    /// Reads `breaker` for `window` without sending traffic; every reading must satisfy `keep`.
    pub async fn breaker_holds(
        &mut self,
        inst: &Instance,
        breaker: Breaker,
        window: Duration,
        keep: impl Fn(BreakerState) -> bool,
    ) -> Result<Held, Broke> {
        let what = format!("{} {breaker} breaker", inst.code);
        self.probing(format!(
            "GET {}/detailed every {} for {}, no traffic: {what}",
            inst.health_base,
            secs(TICK),
            secs(window)
        ));
        holds_for(&what, TICK, window, async || {
            let stats = self.breaker(inst, breaker).await?;
            if keep(stats.state) {
                Ok(stats.to_string())
            } else {
                Err(stats.to_string())
            }
        })
        .await
    }

    /// Healthy with every breaker CLOSED, measured from `since` against `budget`, while `traffic`
    /// keeps the calls that close breakers flowing.
    pub async fn settles(
        &mut self,
        inst: &Instance,
        traffic: &Pump,
        budget: Budget,
        since: Instant,
    ) -> Option<Duration> {
        let what = format!("{} healthy with every breaker CLOSED", inst.code);
        self.probing(format!(
            "GET {}/detailed every {} until {what}, budget {}",
            inst.health_base,
            secs(TICK),
            secs(budget.limit)
        ));
        match self
            .steady(inst, budget.deadline().saturating_sub(since.elapsed()))
            .await
        {
            Ok(()) => {
                let latency = since.elapsed();
                self.measured(&what, latency, budget);
                Some(latency)
            }
            Err(t) => {
                let tally = traffic.tally_since(since);
                self.finding(Finding::fail(format!("{what} not reached: {t} (traffic: {tally})")));
                None
            }
        }
    }

    async fn steady(&self, inst: &Instance, deadline: Duration) -> Result<(), crate::poll::TimedOut> {
        eventually(
            &format!("{} back to steady state", inst.code),
            TICK,
            deadline,
            || async {
                let d = self.detailed(inst).await.map_err(|e| e.to_string())?;
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
        .await
        .map(|_| ())
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
        self.probing(format!(
            "GET {}/detailed every {} until {what} (gives up at {})",
            inst.health_base,
            secs(TICK),
            secs(deadline)
        ));
        let reached = eventually(&what, TICK, deadline, || async {
            let d = self.detailed(inst).await.map_err(|e| e.to_string())?;
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
        self.probing(format!(
            "GET {}/detailed every {} for {}: {what}",
            inst.health_base,
            secs(TICK),
            secs(window)
        ));
        let held = holds_for(&what, TICK, window, || async {
            let d = self.detailed(inst).await.map_err(|e| e.to_string())?;
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

    /// Polls every instance concurrently until it stops accepting `token`, each measured with
    /// millisecond precision against `budget`. Returns, per instance, the latency or what it last
    /// saw; the caller turns a miss into a finding.
    pub async fn rejected_everywhere(
        &mut self,
        instances: &[&Instance],
        token: &str,
        budget: Budget,
    ) -> Vec<(String, Result<Duration, String>)> {
        // 50 ms keeps each instance under 20 requests/s.
        const FAST_TICK: Duration = Duration::from_millis(50);
        let names: Vec<&str> = instances.iter().map(|i| i.code.as_str()).collect();
        self.probing(format!(
            "GET /api/resources with the revoked token on {} at once, every {}, budget {}",
            names.join(", "),
            secs(FAST_TICK),
            secs(budget.limit)
        ));
        // Local tasks: the polls run concurrently on the test's own runtime.
        let polls = tokio::task::LocalSet::new();
        let mut results = polls
            .run_until(async {
                let mut tasks = tokio::task::JoinSet::new();
                for (order, access) in instances.iter().map(|i| i.access()).enumerate() {
                    let token = token.to_string();
                    let deadline = budget.deadline();
                    tasks.spawn_local(async move {
                        let what = format!("{} rejecting the revoked token", access.code);
                        let rejected = eventually(&what, FAST_TICK, deadline, async || {
                            match access.accepts(&token).await {
                                Ok(false) => Ok(()),
                                Ok(true) => Err("still accepted (200)".to_string()),
                                Err(e) => Err(e),
                            }
                        });
                        (
                            order,
                            access.code.clone(),
                            rejected.await.map(|m| m.elapsed).map_err(|t| t.to_string()),
                        )
                    });
                }
                tasks.join_all().await
            })
            .await;
        results.sort_by_key(|(order, _, _)| *order);
        let mut out = Vec::new();
        for (_, code, result) in results {
            if let Ok(latency) = &result {
                self.measured(&format!("{code} rejects the revoked token"), *latency, budget);
            }
            out.push((code, result));
        }
        out
    }

    /// For `window`, every instance must keep accepting `token`. Returns the instances that
    /// stopped, with what they answered.
    pub async fn accepted_everywhere(
        &mut self,
        instances: &[&Instance],
        token: &str,
        window: Duration,
    ) -> Result<(), String> {
        let what = format!(
            "{} keep accepting an issued token",
            instances.iter().map(|i| i.code.as_str()).collect::<Vec<_>>().join(", ")
        );
        self.probing(format!(
            "GET /api/resources with the issued token every {} for {}",
            secs(TICK),
            secs(window)
        ));
        let held = holds_for(&what, TICK, window, async || {
            let mut refused = Vec::new();
            for inst in instances {
                match inst.accepts(token).await {
                    Ok(true) => {}
                    Ok(false) => refused.push(format!("{} answered 401", inst.code)),
                    Err(e) => refused.push(e),
                }
            }
            if refused.is_empty() {
                Ok("all accept".to_string())
            } else {
                Err(refused.join("; "))
            }
        })
        .await;
        match held {
            Ok(h) => {
                self.report(format!("held for {}: {what}", secs(h.window)));
                Ok(())
            }
            Err(broke) => Err(broke.to_string()),
        }
    }

    /// Waits until the hub's federation health lists (`listed`) or stops listing spoke `code` as
    /// unhealthy; prints the latency against `bound`, the bound on paper.
    pub async fn spoke_listed(&mut self, hub: &Instance, code: &str, listed: bool, bound: Budget) -> Option<Duration> {
        let what = format!(
            "hub {} {code} as unhealthy",
            if listed { "lists" } else { "no longer lists" }
        );
        self.probing(format!(
            "GET /api/federation/health every {} until {what}, bound {}",
            secs(TICK),
            secs(bound.limit)
        ));
        let seen = eventually(&what, TICK, bound.deadline(), || async {
            let health = hub.federation_health().await?;
            let present = health
                .unhealthy_spokes
                .iter()
                .any(|s| s.instance_code.eq_ignore_ascii_case(code));
            if present == listed {
                Ok(())
            } else {
                Err(format!("unhealthy spokes: {:?}", health.unhealthy_spokes))
            }
        })
        .await;
        match seen {
            Ok(m) => {
                self.measured(&what, m.elapsed, bound);
                Some(m.elapsed)
            }
            Err(t) => {
                self.event(t.to_string());
                None
            }
        }
    }

    /// After the hub's Keycloak is back: a newly issued token must be accepted by every instance;
    /// measured from `since` against `budget`.
    pub async fn new_token_everywhere(
        &mut self,
        hub: &Instance,
        everyone: &[&Instance],
        budget: Budget,
        since: Instant,
    ) -> Option<Duration> {
        let what = "a new hub token accepted everywhere";
        self.probing(format!(
            "a direct grant, then GET /api/resources on every instance, every {}, budget {}",
            secs(TICK),
            secs(budget.limit)
        ));
        let done = eventually(
            what,
            TICK,
            budget.deadline().saturating_sub(since.elapsed()),
            || async {
                let token = hub.token_for(&hub.credentials.user).await.map_err(|f| f.message)?;
                for inst in everyone {
                    if inst.accepts(&token).await != Ok(true) {
                        return Err(format!("{} refuses it", inst.code));
                    }
                }
                Ok(())
            },
        )
        .await;
        match done {
            Ok(_) => {
                let latency = since.elapsed();
                self.measured(what, latency, budget);
                Some(latency)
            }
            Err(t) => {
                self.event(t.to_string());
                None
            }
        }
    }

    /// Restores a fault and journals how long the service took to answer again.
    pub async fn restore(&mut self, fault: FaultGuard) -> Result<Restored, Finding> {
        let spec = fault.spec().clone();
        let restored = fault.restore().await.map_err(Finding::fail)?;
        self.record(
            restored.answered_at,
            format!("restored: {spec}; answering after {}", secs(restored.took)),
            EventKind::FaultRestored {
                fault: spec,
                restore_ms: ms(restored.took),
            },
        );
        Ok(restored)
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
    let header = format!("{}: {} on {}", requirement.id, requirement.text, deployment.target);
    if must_config().dry_run {
        scenario.report(header);
    } else {
        scenario.event(header);
    }
    let result = body(&deployment, &mut scenario).await;
    scenario.finish(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detailed(status: &str, opa: &str) -> Detailed {
        let closed = r#"{"state":"CLOSED","failures":0,"rejectCount":0}"#;
        let body = format!(
            r#"{{"status":"{status}","timestamp":"t","circuitBreakers":{{"opa":{{"state":"{opa}","failures":0,"rejectCount":0}},"keycloak":{closed},"mongodb":{closed},"kas":{closed}}}}}"#
        );
        serde_json::from_str(&body).expect("a detailed body")
    }

    #[test]
    fn the_observer_journals_first_sight_and_changes_only() {
        let mut o = Observer::default();
        let now = Instant::now();
        o.detailed(now, "USA", &detailed("healthy", "CLOSED"));
        assert_eq!(o.pending.len(), 5, "first sight: health and four breakers");
        o.detailed(now, "USA", &detailed("healthy", "CLOSED"));
        assert_eq!(o.pending.len(), 5, "nothing changed");
        o.detailed(now, "USA", &detailed("unhealthy", "OPEN"));
        let texts: Vec<&str> = o.pending[5..].iter().map(|(_, t, _)| t.as_str()).collect();
        assert_eq!(
            texts,
            ["USA status healthy -> unhealthy", "USA opa breaker CLOSED -> OPEN"]
        );
        // The error fallback has no breakers: the last states stand.
        let fallback: Detailed =
            serde_json::from_str(r#"{"status":"unhealthy","timestamp":"t","error":"x"}"#).expect("fallback");
        o.detailed(now, "USA", &fallback);
        assert_eq!(o.pending.len(), 7);
        o.alert(now, "CircuitBreakerOpen{service=opa}", AlertState::Firing);
        o.alert(now, "CircuitBreakerOpen{service=opa}", AlertState::Firing);
        assert!(matches!(
            o.pending.last(),
            Some((
                _,
                _,
                EventKind::AlertChanged {
                    from: None,
                    to: AlertState::Firing,
                    ..
                }
            ))
        ));
        assert_eq!(o.pending.len(), 8);
    }
}
