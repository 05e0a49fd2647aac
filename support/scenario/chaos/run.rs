//! Runs one chaos schedule against a deployment and records its history: authorized traffic, a
//! revoked token's probes and health observations on every instance (and the hub's list of
//! spokes), while one task applies and restores the schedule's faults at their times, each through
//! the instance's fault guard and ledger. After the last restore the workers keep going until every
//! instance is in steady state or the recovery budget has passed; then the checkers judge the
//! history. Only `infra::poll` waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::Url;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::checkers::{Recovery, Rules, Violation, check_all, recovery_times};
use super::history::{BreakerSeen, History, OpKind, RequestOutcome, RevocationOutcome};
use super::schedule::{Schedule, ScheduledFault};
use crate::deployment::Deployment;
use crate::deployment::instance::{Access, HEALTH_TIMEOUT, Instance};
use crate::deployment::traffic::Traffic;
use crate::fault::FaultGuard;
use crate::infra::http::{Http, join};
use crate::infra::poll::{Pace, eventually, until};
use crate::vocab::api::{DecidedBy, FederationHealth};
use crate::vocab::fault::Service;
use crate::vocab::finding::Finding;
use crate::vocab::health::{Breaker, Detailed, Overall};
use crate::vocab::units::secs;

/// What one run of a schedule produced.
#[derive(Debug, Clone)]
pub struct ChaosRun {
    pub schedule: Schedule,
    pub history: History,
    pub violations: Vec<Violation>,
    pub recoveries: Vec<Recovery>,
}

impl ChaosRun {
    pub fn failed(&self) -> bool {
        !self.violations.is_empty()
    }
}

/// The shared, growing history, and the clock every operation is timed against.
#[derive(Clone)]
struct Recorder {
    start: Instant,
    history: Arc<Mutex<History>>,
}

impl Recorder {
    fn at(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.start)
    }

    fn record(&self, instance: &str, invoked: Instant, kind: OpKind) {
        let (invoked, completed) = (self.at(invoked), self.at(Instant::now()));
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        history.record(instance, invoked, completed, kind);
    }

    fn snapshot(&self) -> History {
        self.history.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// The background workers; aborted when dropped, so a panicking caller leaves none behind.
struct Workers(Vec<JoinHandle<()>>);

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in &self.0 {
            worker.abort();
        }
    }
}

/// A revoked token, for the probes that check it stays refused.
pub struct Revoked {
    pub token: String,
    pub jti: String,
}

/// Runs `schedule` on `d`, `tick` setting the pace of every worker. `revoked` is a token revoked
/// on the hub just before (its probes run on every instance), when the caller made one.
pub async fn run_schedule(
    d: &Deployment,
    schedule: &Schedule,
    rules: &Rules,
    tick: Duration,
    revoked: Option<&Revoked>,
) -> Result<ChaosRun, Finding> {
    let mut traffic = Vec::new();
    for inst in d.instances() {
        traffic.push((inst.code.clone(), Traffic::prepare(inst, tick).await?));
    }
    let recorder = Recorder {
        start: Instant::now(),
        history: Arc::new(Mutex::new(History::new())),
    };
    let mut workers = Vec::new();
    for (code, traffic) in traffic {
        workers.push(tokio::spawn(requests(recorder.clone(), code, traffic, tick)));
    }
    for inst in d.instances() {
        let probe = (inst.http().clone(), inst.health_url("/detailed"));
        workers.push(tokio::spawn(health(
            recorder.clone(),
            inst.code.clone(),
            probe,
            tick * 2,
        )));
        if let Some(revoked) = revoked {
            let probe = (inst.access(), revoked.token.clone(), revoked.jti.clone());
            workers.push(tokio::spawn(revocations(recorder.clone(), probe, tick * 4)));
        }
    }
    let hub = d.hub();
    if !d.spokes().is_empty() {
        let (http, url) = (hub.http().clone(), hub.backend.clone());
        workers.push(tokio::spawn(spokes_listed(
            recorder.clone(),
            hub.code.clone(),
            http,
            url,
            tick * 4,
        )));
    }
    let workers = Workers(workers);
    let faulted = run_faults(d, schedule, &recorder).await;
    let budget = rules.recovery_budget(schedule);
    let instances: Vec<String> = d.instances().iter().map(|i| i.code.clone()).collect();
    let settle = rules.resolution * 2;
    let _ = eventually("steady state on every instance", tick, budget + settle, || async {
        let history = recorder.snapshot();
        let late: Vec<String> = recovery_times(&history, schedule, rules)
            .into_iter()
            .filter(|r| r.took.is_none() && instances.contains(&r.instance))
            .map(|r| r.instance)
            .collect();
        if late.is_empty() {
            Ok(())
        } else {
            Err(format!("not yet steady: {}", late.join(", ")))
        }
    })
    .await;
    drop(workers);
    faulted?;
    let history = recorder.snapshot();
    Ok(ChaosRun {
        schedule: schedule.clone(),
        violations: check_all(&history, schedule, rules),
        recoveries: recovery_times(&history, schedule, rules),
        history,
    })
}

/// A fault's start or end, in the order they happen (an end before a start at the same moment).
enum Step<'a> {
    Apply(&'a ScheduledFault),
    Restore(&'a ScheduledFault),
}

/// Applies and restores every fault of `schedule` at its time, through the fault guards; a fault
/// that cannot be applied ends the run (every applied one is restored as its guard drops).
async fn run_faults(d: &Deployment, schedule: &Schedule, recorder: &Recorder) -> Result<(), Finding> {
    let mut steps: Vec<(Duration, u8, Step)> = Vec::new();
    for fault in &schedule.faults {
        steps.push((fault.start, 1, Step::Apply(fault)));
        steps.push((fault.end(), 0, Step::Restore(fault)));
    }
    steps.sort_by_key(|(at, order, step)| {
        let id = match step {
            Step::Apply(f) | Step::Restore(f) => f.id,
        };
        (*at, *order, id)
    });
    let mut guards: HashMap<usize, FaultGuard> = HashMap::new();
    for (at, _, step) in steps {
        until(recorder.start + at).await;
        match step {
            Step::Apply(fault) => {
                let inst = target_of(d, fault)?;
                let invoked = Instant::now();
                let guard = inst.fault(fault.service, fault.kind).await?;
                eprintln!("[4.4-chaos] {} applied: {fault}", secs(recorder.at(invoked)));
                recorder.record(&fault.instance, invoked, OpKind::FaultApplied { fault_id: fault.id });
                guards.insert(fault.id, guard);
            }
            Step::Restore(fault) => {
                let Some(guard) = guards.remove(&fault.id) else {
                    continue;
                };
                let invoked = Instant::now();
                guard
                    .restore()
                    .await
                    .map_err(|e| Finding::fail(format!("could not restore {fault}: {e}")))?;
                eprintln!("[4.4-chaos] {} restored: {fault}", secs(recorder.at(invoked)));
                recorder.record(&fault.instance, invoked, OpKind::FaultRestored { fault_id: fault.id });
            }
        }
    }
    Ok(())
}

/// The instance whose control applies `fault`: the revocation store is the hub's, whichever
/// instance the schedule names.
fn target_of<'a>(d: &'a Deployment, fault: &ScheduledFault) -> Result<&'a Instance, Finding> {
    if fault.service == Service::RevocationStore {
        Ok(d.hub())
    } else {
        d.instance(&fault.instance)
    }
}

/// Authorized requests, one per tick.
async fn requests(recorder: Recorder, code: String, mut traffic: Traffic, tick: Duration) {
    let mut pace = Pace::new(tick);
    loop {
        let invoked = Instant::now();
        let sent = traffic.send().await;
        let outcome = match sent.status {
            Some(status @ (200 | 403)) => RequestOutcome::Decided {
                status,
                fallback: sent.decided_by == Some(DecidedBy::LocalFallback),
                cached: sent.decided_by == Some(DecidedBy::Cache),
            },
            Some(401) => RequestOutcome::Unauthorized,
            Some(404) => RequestOutcome::NotFound,
            // A 5xx, or any other answer no working DIVE gives this request: a failure either way.
            Some(status) => RequestOutcome::ServerError(status),
            None => RequestOutcome::NoAnswer,
        };
        let resource = sent.resource;
        recorder.record(&code, invoked, OpKind::Request { resource, outcome });
        pace.next().await;
    }
}

/// Detailed health, every `every`: the overall status and every breaker.
async fn health(recorder: Recorder, code: String, (http, url): (Http, Url), every: Duration) {
    let mut pace = Pace::new(every);
    loop {
        let invoked = Instant::now();
        // The error fallback and a health API that does not answer show no breakers: unhealthy.
        let (overall, breakers) = match http.get::<Detailed>(&url, HEALTH_TIMEOUT).await.map(|a| a.body) {
            Ok(d) => {
                let breakers = d.circuit_breakers.map_or_else(Vec::new, |b| {
                    Breaker::ALL
                        .into_iter()
                        .map(|breaker| {
                            let stats = b.get(breaker);
                            BreakerSeen {
                                breaker,
                                state: stats.state,
                                failures: stats.failures,
                            }
                        })
                        .collect()
                });
                (d.status, breakers)
            }
            Err(_) => (Overall::Unhealthy, Vec::new()),
        };
        recorder.record(&code, invoked, OpKind::Health { overall, breakers });
        pace.next().await;
    }
}

/// The revoked token, presented every `every`.
async fn revocations(recorder: Recorder, (access, token, jti): (Access, String, String), every: Duration) {
    let mut pace = Pace::new(every);
    loop {
        let invoked = Instant::now();
        let outcome = match access.accepts(&token).await {
            Ok(true) => RevocationOutcome::Accepted,
            Ok(false) => RevocationOutcome::Refused,
            Err(_) => RevocationOutcome::NoAnswer,
        };
        let kind = OpKind::Revocation {
            jti: jti.clone(),
            revoked_at: Duration::ZERO,
            outcome,
        };
        recorder.record(&access.code, invoked, kind);
        pace.next().await;
    }
}

/// The hub's list of unhealthy spokes, every `every`.
async fn spokes_listed(recorder: Recorder, hub: String, http: Http, backend: Url, every: Duration) {
    let url = join(&backend, "/api/federation/health");
    let mut pace = Pace::new(every);
    loop {
        let invoked = Instant::now();
        let answer = http.get::<FederationHealth>(&url, Duration::from_secs(10)).await;
        let unhealthy = match answer {
            Ok(a) => Some(a.body.unhealthy_spokes.into_iter().map(|s| s.instance_code).collect()),
            Err(_) => None,
        };
        recorder.record(&hub, invoked, OpKind::Spokes { unhealthy });
        pace.next().await;
    }
}
