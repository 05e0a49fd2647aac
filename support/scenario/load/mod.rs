//! Phase 4.5 in a scenario: constant-rate load on the route that needs the faulted dependency
//! (the affected stream) and on a route that does not (the unrelated stream), through five
//! phases: baseline, fault, breaker OPEN, recovery from the restore, and after the instance
//! settled. Health is polled beside the load, so breaker states land on the same timeline as the
//! latencies. Once the load stops, the four requirements are judged on its records: fail fast,
//! bounded damage, recovery of the tail, no collateral; [`diagnose`] says why when one fails.

mod diagnose;

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::deployment::instance::Instance;
use crate::deployment::load::Stream;
use crate::deployment::traffic::{Tallied, Tallies, Traffic};
use crate::fault::FaultGuard;
use crate::infra::config::must_config;
use crate::infra::load::{self as generator, Counts, Lag, Plan, Recorder, Run, WINDOW};
use crate::infra::poll::{eventually, holds_for};
use crate::scenario::diagnose::{breaker_did_not_open, dependency_status};
use crate::scenario::{Scenario, steady_now};
use crate::vocab::breaker::BreakerConfig;
use crate::vocab::fault::{FaultKind, Service};
use crate::vocab::finding::Finding;
use crate::vocab::health::{Breaker, BreakerState, BreakerStats, Detailed};
use crate::vocab::load::{LoadReport, PhaseMark, Route, breaker_in_front_of, client_timeout_at, has_fallback, millis};
use crate::vocab::slo::{Budget, LOAD_TICK, ratio};
use crate::vocab::units::{ms, secs};

/// The phases of a scenario under load, in order.
pub const BASELINE: &str = "baseline";
pub const FAULT: &str = "fault";
/// From the breaker seen OPEN to the restore, or until it is seen to leave OPEN (the affected
/// stream only).
pub const OPEN: &str = "open";
/// From the breaker seen to leave OPEN while the fault lasts (a HALF_OPEN trial against the
/// still failed dependency) to the restore (the affected stream only).
pub const PROBING: &str = "probing";
pub const RECOVERY: &str = "recovery";
pub const AFTER: &str = "after";

/// The share of the load that goes to the unrelated route: enough for a request in every window.
const UNRELATED_SHARE: f64 = 0.25;

/// How the bound every tail is held to reads in reports.
const TAIL_BOUND: &str = "4.5 tail factor x baseline p99 + 4.5 tail slack";

/// A load running against one instance while a scenario faults one of its services.
pub struct Load {
    service: Service,
    breaker: Option<Breaker>,
    rate: f64,
    cap: f64,
    /// Raised to stop the load; dropping it (the scenario is over) stops it too.
    stop: watch::Sender<bool>,
    /// The affected stream first, then the unrelated one.
    streams: Vec<Running>,
    /// Phase starts: (phase, when, the affected stream only).
    marks: Vec<(&'static str, Instant, bool)>,
    started: Instant,
    fault_at: Option<Instant>,
    open_at: Option<Instant>,
    restored_at: Option<Instant>,
    /// When the breaker was first seen to leave OPEN before the restore: its trial calls wait
    /// for the failed dependency, which is how a breaker probes, so fail fast is judged before.
    left_open_at: Option<Instant>,
    /// The breaker at the end of the OPEN window: R9's evidence.
    open_stats: Option<BreakerStats>,
    tallies: Option<Tallies>,
    polls: u64,
}

struct Running {
    name: &'static str,
    route: Route,
    rate: f64,
    task: JoinHandle<(Result<Run, String>, Stream)>,
}

impl Load {
    fn mark(&mut self, phase: &'static str, at: Instant, affected_only: bool) {
        self.marks.push((phase, at, affected_only));
    }
}

/// One stream's history once the load stopped.
struct Finished {
    route: Route,
    recorder: Recorder,
}

impl Scenario {
    /// Starts constant-rate load on `inst` for a fault of `service`: the configured rate
    /// (`DIVE_LOAD_RATE`), three quarters to `GET /api/resources/:id`, which needs every
    /// dependency, a quarter to a route that does not need `service`. The baseline phase begins.
    pub async fn start_load(&mut self, inst: &Instance, service: Service) -> Result<Load, Finding> {
        let config = must_config();
        let (rate, cap) = (config.load_rate, config.load_max_rate);
        let unrelated = Route::unrelated_to(service);
        let rates = [rate * (1.0 - UNRELATED_SHARE), rate * UNRELATED_SHARE];
        let affected = inst.load_stream(Route::Resource, rates[0]).await?;
        let other = inst.load_stream(unrelated, rates[1]).await?;
        let tallies = affected.tallies();
        let timeout = self.budget_of("4.5 client timeout").limit;
        // Bounded whatever happens to the scenario: every phase's deadline and a restore's minute.
        let duration = [
            "4.5 baseline",
            "4.5 fast again",
            "4.5 open window",
            "4.5 recovery",
            "4.5 after",
        ]
        .iter()
        .map(|id| self.budget_of(id).deadline())
        .sum::<Duration>()
            + Duration::from_secs(60);
        let (stop, _) = watch::channel(false);
        let started = Instant::now();
        let streams = [("affected", affected, rates[0]), ("unrelated", other, rates[1])]
            .into_iter()
            .map(|(name, stream, rate)| {
                let plan = Plan {
                    rate,
                    duration,
                    // As many as the target could hold up to the timeout: past it, drop.
                    max_in_flight: (rate * timeout.as_secs_f64()).ceil() as usize + 1,
                    timeout,
                };
                let (route, stopped) = (stream.route(), stop.subscribe());
                // The request's own timeout is longer, so the generator's decides: timed out.
                let patience = timeout + Duration::from_secs(1);
                let task = tokio::spawn(async move {
                    let mut stream = stream;
                    let run = generator::run(&plan, stopped, |_| stream.request(patience)).await;
                    (run, stream)
                });
                Running {
                    name,
                    route,
                    rate,
                    task,
                }
            })
            .collect();
        let polls = 1.0 / LOAD_TICK.as_secs_f64();
        self.report(format!(
            "load: {} req/s to {} and {} req/s to {} (does not need {service}), health polled every {}: {} req/s in all (cap {cap}); each request waits at most {}",
            rates[0],
            Route::Resource,
            rates[1],
            unrelated,
            secs(LOAD_TICK),
            rate + polls,
            secs(timeout)
        ));
        let mut load = Load {
            service,
            breaker: breaker_in_front_of(service),
            rate,
            cap,
            stop,
            streams,
            marks: Vec::new(),
            started,
            fault_at: None,
            open_at: None,
            restored_at: None,
            left_open_at: None,
            open_stats: None,
            tallies,
            polls: 0,
        };
        load.mark(BASELINE, started, false);
        Ok(load)
    }

    /// The baseline: load and health polls for the `4.5 baseline` window, before any fault.
    pub async fn baseline(&mut self, inst: &Instance, load: &mut Load) {
        let window = self.budget_of("4.5 baseline").limit;
        self.watch_under_load(inst, load, window, "baseline", None).await;
    }

    /// Faults `service` of `inst` while `load` runs. The fault phase begins as the command is
    /// given, not when it returns: a request that failed while the command ran (a process being
    /// stopped) belongs to the fault, never to the baseline.
    pub async fn fault_under_load(
        &mut self,
        inst: &Instance,
        load: &mut Load,
        kind: FaultKind,
    ) -> Result<FaultGuard, Finding> {
        let fault_at = Instant::now();
        load.fault_at = Some(fault_at);
        load.mark(FAULT, fault_at, false);
        self.fault(inst, load.service, kind).await
    }

    /// Right after the fault: waits under load for the breaker in front of the service to open
    /// (its OPEN phase begins when it is seen so), then keeps the load on for the
    /// `4.5 open window`, and reads the breaker once more at its end.
    pub async fn through_the_fault(&mut self, inst: &Instance, load: &mut Load) {
        let fault_at = *load.fault_at.get_or_insert_with(|| self.origin());
        if !load.marks.iter().any(|(phase, _, _)| *phase == FAULT) {
            load.mark(FAULT, fault_at, false);
        }
        if let Some(breaker) = load.breaker {
            let deadline = self.left_of(self.budget_of("4.5 fast again").deadline());
            let what = format!("{} {breaker} breaker OPEN under load", inst.code);
            self.probing(format!(
                "GET {}/detailed every {} until {what} (gives up at {})",
                inst.health_base,
                secs(LOAD_TICK),
                secs(deadline)
            ));
            let last: RefCell<Option<Detailed>> = RefCell::new(None);
            let polls = Cell::new(0);
            let opened = eventually(&what, LOAD_TICK, deadline, || async {
                polls.set(polls.get() + 1);
                let d = self.detailed(inst).await.map_err(|e| e.to_string())?;
                let open = d
                    .circuit_breakers
                    .is_some_and(|b| b.get(breaker).state == BreakerState::Open);
                let summary = d.summary();
                last.replace(Some(d));
                if open { Ok(()) } else { Err(summary) }
            })
            .await;
            load.polls += polls.get();
            match opened {
                Ok(_) => {
                    let at = Instant::now();
                    load.open_at = Some(at);
                    load.mark(OPEN, at, true);
                    self.observed(&what, at.saturating_duration_since(fault_at));
                }
                Err(timeout) => {
                    self.event(timeout.to_string());
                    let last = last.into_inner();
                    let stats = last.as_ref().and_then(|d| d.circuit_breakers).map(|b| b.get(breaker));
                    let dependency = last.as_ref().and_then(|d| dependency_status(d, breaker));
                    let tally = load
                        .tallies
                        .as_ref()
                        .map(|t| t.tally_since(fault_at))
                        .unwrap_or_default();
                    let threshold = BreakerConfig::dive(breaker, self.time_scale).failure_threshold;
                    self.finding(breaker_did_not_open(breaker, stats, dependency, tally, threshold));
                }
            }
        }
        let window = self.budget_of("4.5 open window").limit;
        let phase = if load.open_at.is_some() {
            "breaker OPEN"
        } else {
            "fault"
        };
        let watched = load.open_at.and(load.breaker);
        let left = self.watch_under_load(inst, load, window, phase, watched).await;
        if let (Some(open_at), Some(breaker)) = (load.open_at, watched) {
            // The judged OPEN window ends when the breaker is seen to leave OPEN, when the window
            // is over, and at the latest when its first trial could come: its open timeout after
            // the fault, since it cannot have opened before. A slow health call (one that waits on
            // the failed dependency) sees OPEN late and overruns the window; this bound holds.
            let first_trial = fault_at + BreakerConfig::dive(breaker, self.time_scale).timeout;
            let bounded = left.unwrap_or(open_at + window).min(first_trial);
            let end = bounded.max(open_at);
            load.left_open_at = Some(end);
            load.mark(PROBING, end, true);
            let why = if left.is_some_and(|l| l <= first_trial) {
                "it was seen to leave OPEN"
            } else if bounded == first_trial {
                "its first trial could come then (its open timeout after the fault)"
            } else {
                "the open window is over"
            };
            self.event(format!(
                "the judged OPEN window of the {breaker} breaker ends {} after it was seen OPEN, with {} still down: {why}",
                secs(end.saturating_duration_since(open_at)),
                load.service
            ));
        }
        if let Some(breaker) = load.breaker {
            load.polls += 1;
            load.open_stats = self.breaker(inst, breaker).await.ok();
        }
    }

    /// Right after the restore: the recovery phase begins when the service answered; waits under
    /// load until the instance is healthy with every breaker CLOSED, then keeps the load on for
    /// the `4.5 after` window.
    pub async fn recovers_under_load(&mut self, inst: &Instance, load: &mut Load) {
        let restored_at = self.origin();
        load.restored_at = Some(restored_at);
        load.mark(RECOVERY, restored_at, false);
        let deadline = self.left_of(self.budget_of("4.5 recovery").deadline());
        let what = format!("{} healthy with every breaker CLOSED under load", inst.code);
        self.probing(format!(
            "GET {}/detailed every {} until {what} (gives up at {})",
            inst.health_base,
            secs(LOAD_TICK),
            secs(deadline)
        ));
        let polls = Cell::new(0);
        let settled = eventually(&what, LOAD_TICK, deadline, || async {
            polls.set(polls.get() + 1);
            let d = self.detailed(inst).await.map_err(|e| e.to_string())?;
            steady_now(&d)
        })
        .await;
        load.polls += polls.get();
        match settled {
            Ok(_) => self.observed(&what, restored_at.elapsed()),
            Err(t) => {
                let tally = load
                    .tallies
                    .as_ref()
                    .map(|t| t.tally_since(restored_at))
                    .unwrap_or_default();
                self.finding(Finding::fail(format!(
                    "the instance did not return to steady state under load after the restore: {t} (traffic: {tally})"
                )));
            }
        }
        load.mark(AFTER, Instant::now(), false);
        let window = self.budget_of("4.5 after").limit;
        self.watch_under_load(inst, load, window, "after", None).await;
    }

    /// Stops the load, journals each stream (its HDR summary per phase, its windows, the
    /// generator's lag) and judges the four requirements. Returns the authorization traffic, for
    /// the postcheck.
    pub async fn judge_load(&mut self, mut load: Load) -> Result<Traffic, Finding> {
        load.stop.send_replace(true);
        let took = load.started.elapsed();
        let mut finished = Vec::new();
        let mut traffic = None;
        for Running {
            name,
            route,
            rate,
            task,
        } in std::mem::take(&mut load.streams)
        {
            let (run, stream) = task
                .await
                .map_err(|e| Finding::fail(format!("the {name} load stopped abnormally: {e}")))?;
            let run = run.map_err(Finding::precondition)?;
            traffic = traffic.or(stream.into_traffic());
            let mut recorder = run.recorder;
            for (phase, at, affected_only) in &load.marks {
                if name == "affected" || !affected_only {
                    let mut at = tokio::time::Instant::from_std(*at);
                    if *phase == FAULT {
                        // What was still waiting when the fault began is the fault's.
                        at = recorder.in_flight_since(at);
                    }
                    recorder.mark_phase(phase, at);
                }
            }
            self.journal_load(name, route, rate, &recorder, run.lag);
            finished.push(Finished { route, recorder });
        }
        self.rate_kept(&load, &finished, took);
        let [affected, unrelated] = finished.as_slice() else {
            return Err(Finding::fail("the load did not record its two streams"));
        };
        self.baseline_answers(affected)?;
        self.fails_fast(&load, &affected.recorder, &unrelated.recorder);
        self.damage_bounded(&load, &affected.recorder);
        self.tail_recovers(&load, &affected.recorder);
        self.no_collateral(&load, unrelated, &affected.recorder);
        traffic.ok_or_else(|| Finding::fail("the load gave no authorization traffic back"))
    }

    /// Polls health every [`LOAD_TICK`] for `window` while the load runs: nothing is judged, what
    /// changes is journaled (the timeline's breaker lanes). With `open` given, returns when that
    /// breaker was first seen out of OPEN, if it was.
    async fn watch_under_load(
        &mut self,
        inst: &Instance,
        load: &mut Load,
        window: Duration,
        phase: &str,
        open: Option<Breaker>,
    ) -> Option<Instant> {
        let what = format!("{} under load, {phase}", inst.code);
        self.probing(format!(
            "GET {}/detailed every {} for {}: {what}",
            inst.health_base,
            secs(LOAD_TICK),
            secs(window)
        ));
        let polls = Cell::new(0);
        let left_open: Cell<Option<Instant>> = Cell::new(None);
        let _ = holds_for(&what, LOAD_TICK, window, || async {
            polls.set(polls.get() + 1);
            // A health call that fails is a state worth seeing, not the end of the window.
            Ok(match self.detailed(inst).await {
                Ok(d) => {
                    let state = open.and_then(|b| d.circuit_breakers.map(|all| all.get(b).state));
                    if state.is_some_and(|s| s != BreakerState::Open) && left_open.get().is_none() {
                        left_open.set(Some(Instant::now()));
                    }
                    d.summary()
                }
                Err(e) => format!("health: {e}"),
            })
        })
        .await;
        load.polls += polls.get();
        left_open.get()
    }

    /// Puts one stream in the journal and its HDR summary per phase in the output.
    fn journal_load(&mut self, name: &'static str, route: Route, rate: f64, recorder: &Recorder, lag: Lag) {
        let at_ms = |at: Instant| ms(self.journal.since_start(at));
        let start_ms = at_ms(recorder.start().into_std());
        let phases = recorder.summaries();
        for summary in &phases {
            self.report(format!("{name} {route}: {summary}"));
        }
        self.report(format!("{name} load: {lag}"));
        if lag.fell_behind() && lag.p99 >= generator::LATE {
            self.finding(Finding::note(format!(
                "the load generator fell behind its schedule on the {name} stream ({lag}): this machine was too busy for the rate"
            )));
        }
        let marks: Vec<PhaseMark> = recorder
            .marks()
            .map(|(offset, phase)| PhaseMark {
                phase: phase.to_string(),
                at_ms: start_ms + ms(offset),
            })
            .collect();
        let report = LoadReport {
            stream: name.to_string(),
            route,
            rate,
            start_ms,
            marks,
            phases,
            overall: recorder.overall(),
            windows: recorder.windows(),
            lag,
        };
        self.journal.load.push(report);
    }

    /// What the harness sent while it loaded the instance, polls included, against the cap.
    fn rate_kept(&mut self, load: &Load, finished: &[Finished], took: Duration) {
        let requests: u64 = finished.iter().map(|f| f.recorder.overall().requests).sum();
        let sent = requests + load.polls;
        let per_second = sent as f64 / took.as_secs_f64().max(1.0);
        self.report(format!(
            "the harness sent {sent} requests in {} ({requests} of load at {} req/s, {} health polls): {per_second:.1} req/s (cap {})",
            secs(took),
            load.rate,
            load.polls,
            load.cap
        ));
        if per_second > load.cap {
            self.finding(Finding::fail(format!(
                "the harness sent {per_second:.1} requests a second, over the cap of {} (DIVE_LOAD_MAX_RATE)",
                load.cap
            )));
        }
    }

    /// The baseline must be answered: a load that fails before any fault measures nothing.
    fn baseline_answers(&mut self, affected: &Finished) -> Result<(), Finding> {
        let baseline = affected.recorder.summary(BASELINE);
        if baseline.requests == 0 || baseline.outcomes.failed() > 0 {
            return Err(Finding::precondition(format!(
                "the load's baseline on {} did not answer cleanly before any fault ({}): nothing after it can be judged",
                affected.route, baseline.outcomes
            )));
        }
        Ok(())
    }

    /// The bound a later tail of `recorder` is held to: factor x baseline p99 + slack.
    fn bound(&self, recorder: &Recorder) -> Duration {
        let baseline = recorder.summary(BASELINE).latency.p99;
        baseline.mul_f64(ratio("4.5 tail factor")) + self.budget_of("4.5 tail slack").limit
    }

    /// A measurement of phase 4.5 against a bound or budget: printed and journaled, pass or
    /// fail; the caller says why when it fails.
    fn judged(&mut self, what: &str, measured: Duration, label: &'static str, limit: Duration) -> bool {
        let budget = Budget { label, limit };
        self.report(budget.line(what, measured));
        self.journal.measurement(what, measured, Some((label, limit)));
        measured <= limit
    }

    /// A budget read in one-second windows: a window is judged whole, so the measurement can be
    /// up to one window late at any time scale.
    fn windowed(&self, id: &'static str) -> (&'static str, Duration) {
        (id, self.budget_of(id).limit + WINDOW)
    }

    /// Fail fast: once the breaker is OPEN (or through the fault, where no breaker stands in
    /// front of the service), the affected requests' p99 within the bound of the baseline.
    fn fails_fast(&mut self, load: &Load, affected: &Recorder, unrelated: &Recorder) {
        let phase = match (load.breaker, load.open_at) {
            (_, Some(_)) => OPEN,
            (None, None) => FAULT,
            // The breaker never opened: that finding is made; there is no OPEN phase to judge.
            (Some(_), None) => return,
        };
        let summary = affected.summary(phase);
        let baseline = affected.summary(BASELINE).latency.p99;
        let bound = self.bound(affected);
        let what = match phase {
            OPEN => "affected p99 once the breaker is OPEN".to_string(),
            _ => format!("affected p99 with {} down", load.service),
        };
        if summary.latency.count == 0 {
            let late = match (load.breaker, load.open_at, load.fault_at) {
                (Some(breaker), Some(open), Some(fault)) => format!(
                    ": the {breaker} breaker was seen OPEN only {} after the fault, when its first trial could already come ({} open timeout); health answered that slowly while {} was down, so at this time scale (DIVE_TIME_SCALE) fail fast cannot be judged",
                    secs(open.saturating_duration_since(fault)),
                    secs(BreakerConfig::dive(breaker, self.time_scale).timeout),
                    load.service
                ),
                _ => String::new(),
            };
            self.finding(Finding::precondition(format!(
                "{what}: no request was sent in that phase{late}"
            )));
            return;
        }
        if !self.judged(&what, summary.latency.p99, TAIL_BOUND, bound) {
            let timeout = client_timeout_at(load.service, self.time_scale);
            self.finding(diagnose::slow_once_open(
                load.service,
                load.breaker,
                &summary,
                baseline,
                bound,
                load.open_stats,
                timeout,
                unrelated.summary(FAULT).latency.p50,
            ));
        }
    }

    /// Bounded damage: the share of the affected requests that failed while the fault lasted, per
    /// class, within what the service's fallback allows; and how long until answers were fast
    /// again after the fault began.
    fn damage_bounded(&mut self, load: &Load, affected: &Recorder) {
        let (Some(fault_at), Some(restored_at)) = (load.fault_at, load.restored_at) else {
            return;
        };
        let mut counts = Counts::default();
        for record in affected
            .in_phase(FAULT)
            .chain(affected.in_phase(OPEN))
            .chain(affected.in_phase(PROBING))
        {
            counts.add(record.outcome.class());
        }
        let (total, failed) = (counts.total(), counts.failed());
        let shares: Vec<String> = counts
            .iter()
            .map(|(class, n)| format!("{} {:.1} %", class.label(), 100.0 * n as f64 / total.max(1) as f64))
            .collect();
        let share = failed as f64 / total.max(1) as f64;
        let (id, allowed) = if has_fallback(load.service) {
            ("4.5 damage with a fallback", ratio("4.5 damage with a fallback"))
        } else {
            ("4.5 damage without a fallback", ratio("4.5 damage without a fallback"))
        };
        self.report(format!(
            "while {} was down: {total} requests, {failed} failed ({:.1} %, allowed {:.0} % by {id}): {}",
            load.service,
            100.0 * share,
            100.0 * allowed,
            shares.join(", ")
        ));
        if share > allowed {
            self.finding(diagnose::damage(load.service, &counts));
        }
        let bound = self.bound(affected);
        let (label, limit) = self.windowed("4.5 fast again");
        let what = "answers fast again after the fault began";
        // Until the end of the judged OPEN window: the breaker's trials after it wait, as they must.
        let until = load.left_open_at.unwrap_or(restored_at);
        match affected.fast_again_between(
            tokio::time::Instant::from_std(fault_at),
            tokio::time::Instant::from_std(until),
            bound,
        ) {
            Some(after) => {
                if !self.judged(what, after, label, limit) {
                    self.finding(Finding::fail(format!(
                        "answers were fast again (p99 of every window within {}) only {} after the fault began, over {}",
                        millis(bound),
                        secs(after),
                        secs(limit)
                    )));
                }
            }
            None => {
                let end = match (load.left_open_at, load.breaker) {
                    (Some(_), Some(breaker)) => {
                        format!("between the fault and the end of the {breaker} breaker's judged OPEN window")
                    }
                    _ => "between the fault and the restore".to_string(),
                };
                self.finding(Finding::fail(format!(
                    "answers were never fast again (p99 of every later window within {}) {end}",
                    millis(bound)
                )))
            }
        }
    }

    /// Recovery: after the restore, answers fast and right again within the recovery budget, and
    /// the tail of the after phase within the bound of the baseline.
    fn tail_recovers(&mut self, load: &Load, affected: &Recorder) {
        let Some(restored_at) = load.restored_at else {
            return;
        };
        let bound = self.bound(affected);
        let (label, limit) = self.windowed("4.5 recovery");
        let what = "answers fast and right again after the restore";
        match affected.recovered_after(tokio::time::Instant::from_std(restored_at), bound) {
            Some(after) => {
                if !self.judged(what, after, label, limit) {
                    self.finding(Finding::fail(format!(
                        "after the restore, answers were fast and right again only after {}, over {}",
                        secs(after),
                        secs(limit)
                    )));
                }
            }
            None => self.finding(Finding::fail(format!(
                "after the restore, answers never settled fast (p99 within {}) and right to the end of the load",
                millis(bound)
            ))),
        }
        let after = affected.summary(AFTER);
        if after.latency.count > 0
            && !self.judged("affected p99 after the restore", after.latency.p99, TAIL_BOUND, bound)
        {
            self.finding(Finding::fail(format!(
                "after the restore the tail stayed over the bound of the baseline: {after}"
            )));
        }
    }

    /// No collateral: the unrelated route keeps its baseline tail and answers while the fault
    /// lasts.
    fn no_collateral(&mut self, load: &Load, unrelated: &Finished, affected: &Recorder) {
        let fault = unrelated.recorder.summary(FAULT);
        if fault.latency.count == 0 {
            return;
        }
        let baseline = unrelated.recorder.summary(BASELINE).latency.p99;
        let bound = self.bound(&unrelated.recorder);
        let what = format!("{} p99 with {} down", unrelated.route, load.service);
        let fast = self.judged(&what, fault.latency.p99, TAIL_BOUND, bound);
        if !fast || fault.outcomes.failed() > 0 {
            let timeout = client_timeout_at(load.service, self.time_scale);
            self.finding(diagnose::collateral(
                load.service,
                unrelated.route,
                &fault,
                baseline,
                bound,
                timeout,
                fault_p50(affected),
            ));
        }
    }
}

/// The p50 of `recorder`'s requests over the whole fault (its fault and OPEN phases).
fn fault_p50(recorder: &Recorder) -> Duration {
    [FAULT, OPEN, PROBING]
        .iter()
        .map(|phase| recorder.summary(phase))
        .filter(|s| s.latency.count > 0)
        .map(|s| s.latency.p50)
        .max()
        .unwrap_or_default()
}
