//! Waits on DIVE's breakers: until one reaches a state under traffic, recovery driven request by
//! request, a breaker holding its state without traffic, and the whole instance settling back to
//! steady state.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use crate::deployment::instance::Instance;
use crate::deployment::traffic::{Pump, Tallied, Traffic};
use crate::infra::poll::{TimedOut, eventually, holds_for};
use crate::scenario::diagnose::{self, BreakerHold};
use crate::scenario::{Scenario, TICK, steady_now};
use crate::vocab::api::DecidedBy;
use crate::vocab::breaker::BreakerConfig;
use crate::vocab::finding::Finding;
use crate::vocab::health::{Breaker, BreakerState, Detailed};
use crate::vocab::slo::Budget;
use crate::vocab::units::secs;

impl Scenario {
    /// Waits until `breaker` on `inst` is in state `want` while `pump` sends traffic, and prints
    /// the latency against `budget`, measured from the scenario's last change (the fault's
    /// command, or the restored service answering). When it never gets there, records why.
    pub async fn breaker_reaches(
        &mut self,
        inst: &Instance,
        pump: &impl Tallied,
        breaker: Breaker,
        want: BreakerState,
        budget: Budget,
    ) -> Option<Duration> {
        let since = self.origin();
        let last: RefCell<Option<Detailed>> = RefCell::new(None);
        let what = format!("{} {breaker} breaker {want}", inst.code);
        self.probing(format!(
            "GET {}/detailed every {} until {what}, budget {} (gives up at {}), while authorized traffic flows",
            inst.health_base,
            secs(TICK),
            secs(budget.limit),
            secs(budget.deadline())
        ));
        let deadline = self.left_of(budget.deadline());
        let reached = eventually(&what, TICK, deadline, || async {
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
            Ok(_) => {
                let latency = since.elapsed();
                self.measured(&what, latency, budget);
                Some(latency)
            }
            Err(timeout) => {
                self.event(timeout.to_string());
                let last = match last.into_inner() {
                    Some(d) => Some(d),
                    None => self.patient_read(inst).await.map(|(d, _)| d),
                };
                let stats = last.as_ref().and_then(|d| d.circuit_breakers).map(|b| b.get(breaker));
                let dependency = last.as_ref().and_then(|d| diagnose::dependency_status(d, breaker));
                let tally = pump.tally_since(since);
                let finding = if want == BreakerState::Open {
                    let threshold = BreakerConfig::dive(breaker, self.time_scale).failure_threshold;
                    diagnose::breaker_did_not_open(breaker, stats, dependency, tally, threshold)
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
    /// The calls that succeeded through the breaker since it was last seen OPEN are counted: DIVE's
    /// closes at its success threshold of them, not sooner, and not never.
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
        let dive = BreakerConfig::dive(breaker, self.time_scale);
        let mut moves: Vec<(Instant, String)> = Vec::new();
        let mut last: Option<BreakerState> = None;
        let mut successes = 0usize;
        let mut closed_after: Option<usize> = None;
        let deadline = budget.deadline().saturating_sub(since.elapsed());
        // DIVE closes a HALF_OPEN breaker after at most 3 successes: a breaker still HALF_OPEN
        // after this many successful calls through it will not close, and waiting longer proves nothing.
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
            // A call that succeeded through the breaker: OPA's own answer for the opa breaker; any
            // decided answer for the others, whose calls sit on every request's path.
            let through = match breaker {
                Breaker::Opa => sent.decided_by == Some(DecidedBy::Opa),
                _ => sent.decided_by.is_some(),
            };
            match stats.state {
                BreakerState::Open => successes = 0,
                _ if through => successes += 1,
                _ => {}
            }
            let left_open = last.is_some_and(|l| l != BreakerState::Closed);
            if stats.state == BreakerState::Closed && left_open {
                closed_after = Some(successes);
            }
            last = Some(stats.state);
            // Straight from OPEN to CLOSED (its first call through also closed it) is past HALF_OPEN.
            let past = want == BreakerState::HalfOpen && stats.state == BreakerState::Closed;
            match stats.state {
                s if s == want || past => Ok(true),
                BreakerState::HalfOpen if successes >= STUCK_AFTER => Ok(false),
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
        let exclusive = !self.live;
        if let Some(early) = closed_after.and_then(|n| diagnose::closed_early(breaker, n, dive, exclusive)) {
            self.finding(early);
        }
        match reached {
            Ok(m) if m.value => {
                let latency = since.elapsed();
                self.measured(&format!("{what} (from the dependency answering)"), latency, budget);
                Some(latency)
            }
            Ok(_) => {
                self.finding(diagnose::stuck_half_open(breaker, successes, dive));
                None
            }
            Err(timeout) => {
                self.finding(Finding::fail(format!("{what} not reached: {timeout}")));
                None
            }
        }
    }

    /// The way back after a restore, request by request: `breaker` HALF_OPEN, then CLOSED, each
    /// measured from `since` (the dependency answering) against `budget`. Both times, or `None`
    /// when either never came (the finding says why).
    pub async fn recovers(
        &mut self,
        inst: &Instance,
        traffic: &mut Traffic,
        breaker: Breaker,
        budget: Budget,
        since: Instant,
    ) -> Option<(Duration, Duration)> {
        let half_open = self
            .drive_until(inst, traffic, breaker, BreakerState::HalfOpen, budget, since)
            .await;
        let closed = self
            .drive_until(inst, traffic, breaker, BreakerState::Closed, budget, since)
            .await;
        half_open.zip(closed)
    }

    /// Reads `breaker` for `window` (sending nothing itself); every reading must satisfy `keep`.
    /// Says whether it held, moved (to what, after how long), or could not be read.
    pub async fn breaker_holds(
        &mut self,
        inst: &Instance,
        breaker: Breaker,
        window: Duration,
        keep: impl Fn(BreakerState) -> bool,
    ) -> BreakerHold {
        let what = format!("{} {breaker} breaker", inst.code);
        self.probing(format!(
            "GET {}/detailed every {} for {}: {what}",
            inst.health_base,
            secs(TICK),
            secs(window)
        ));
        let moved_to = Cell::new(None);
        let held = holds_for(&what, TICK, window, async || {
            let stats = self.breaker(inst, breaker).await?;
            if keep(stats.state) {
                Ok(stats.to_string())
            } else {
                moved_to.set(Some(stats.state));
                Err(stats.to_string())
            }
        })
        .await;
        match (held, moved_to.get()) {
            (Ok(h), _) => BreakerHold::Held {
                state: h.last_seen,
                for_: h.window,
            },
            (Err(broke), Some(to)) => BreakerHold::Moved { to, after: broke.after },
            (Err(broke), None) => BreakerHold::Unread(broke.to_string()),
        }
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

    pub(crate) async fn steady(&self, inst: &Instance, deadline: Duration) -> Result<(), TimedOut> {
        eventually(
            &format!("{} back to steady state", inst.code),
            TICK,
            deadline,
            || async {
                let d = self.detailed(inst).await.map_err(|e| e.to_string())?;
                steady_now(&d)
            },
        )
        .await
        .map(|_| ())
    }
}
