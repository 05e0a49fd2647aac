//! Waits on an instance's overall status, and on authorization that must keep answering while a
//! dependency is down.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use crate::deployment::instance::Instance;
use crate::deployment::traffic::{Pump, Tallied};
use crate::infra::poll::{eventually, holds_for};
use crate::scenario::diagnose::{self, AuthorizationBroke};
use crate::scenario::{Scenario, TICK};
use crate::vocab::finding::Finding;
use crate::vocab::health::{Breaker, Detailed, Overall, Probe};
use crate::vocab::slo::Budget;
use crate::vocab::units::secs;

impl Scenario {
    /// With a critical dependency (`name`, behind `breaker`) stopped, DIVE answers its health
    /// `unhealthy` with HTTP 503; when it does not, the diagnosis says what it answered instead.
    pub async fn critical_status(&mut self, inst: &Instance, name: &str, breaker: Breaker, budget: Budget) {
        if let Err(last) = self.status_reaches(inst, Overall::Unhealthy, budget.deadline()).await {
            let reported_down =
                last.as_ref().and_then(|d| diagnose::dependency_status(d, breaker)) == Some(Probe::Down);
            self.finding(diagnose::critical_down_status(name, last.as_ref(), reported_down));
        }
    }

    /// Waits until the overall status of `inst` is `want`, answered with the HTTP code DIVE gives
    /// it; prints how long that took. On timeout returns the last health seen, for the caller's
    /// diagnosis.
    pub async fn status_reaches(
        &mut self,
        inst: &Instance,
        want: Overall,
        deadline: Duration,
    ) -> Result<Duration, Option<Detailed>> {
        // From the scenario's last change, like every consequence of it.
        let since = self.origin();
        let deadline = self.left_of(deadline);
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
            let done = d.is(want);
            let summary = d.summary();
            last.replace(Some(d));
            if done { Ok(()) } else { Err(summary) }
        })
        .await;
        match reached {
            Ok(_) => {
                let latency = since.elapsed();
                self.observed(&what, latency);
                Ok(latency)
            }
            Err(timeout) => {
                self.event(timeout.to_string());
                // A reading that came in time and was not `want` is the answer; none at all, ask again.
                let late = match last.into_inner() {
                    Some(d) => return Err(Some(d)),
                    None => self.patient_read(inst).await,
                };
                let (late, took) = match late {
                    Some((d, took)) if d.is(want) => (d, took),
                    other => return Err(other.map(|(d, _)| d)),
                };
                let latency = since.elapsed();
                self.finding(Finding::fail(format!(
                    "{what} only after {}, past the {} the scenario allows: the health call that said so took {} ({})",
                    secs(latency),
                    secs(deadline),
                    secs(took),
                    late.summary()
                )));
                Ok(latency)
            }
        }
    }

    /// One more read of `inst`'s health when none came back in time, as patient as DIVE's health
    /// API needs (15a319e6 takes a minute or more with MongoDB down), so that a diagnosis still
    /// rests on what the instance says; journals how long it took.
    pub(crate) async fn patient_read(&mut self, inst: &Instance) -> Option<(Detailed, Duration)> {
        self.event(format!(
            "no health answer from {} came back in time; reading it once more, as long as it takes",
            inst.code
        ));
        let asked = Instant::now();
        let read = self.detailed(inst).await;
        let took = asked.elapsed();
        match read {
            Ok(d) => {
                self.event(format!(
                    "{} answered its health after {}: {}",
                    inst.code,
                    secs(took),
                    d.summary()
                ));
                Some((d, took))
            }
            Err(e) => {
                self.event(format!(
                    "{} did not answer its health within {}: {e}",
                    inst.code,
                    secs(took)
                ));
                None
            }
        }
    }

    /// For `window`, authorization must keep answering (200/403, never 5xx or silence) and the
    /// status must never be unhealthy while only `down` (non-critical services) are down. When it
    /// breaks, records the diagnosis and returns false.
    pub async fn authorization_answers(&mut self, inst: &Instance, pump: &Pump, window: Duration, down: &str) -> bool {
        let since = Instant::now();
        let last: RefCell<Option<Detailed>> = RefCell::new(None);
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
            last.replace(Some(d.clone()));
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
        let what_broke = match held {
            Ok(_) if tally.decided > 0 => {
                self.report(format!("held for {}: {what} ({tally})", secs(window)));
                return true;
            }
            Ok(_) => format!("no request was decided within {} ({tally})", secs(window)),
            Err(broke) => broke.to_string(),
        };
        let broke = AuthorizationBroke {
            what: what_broke,
            traffic: tally,
            health: last.into_inner(),
        };
        self.finding(diagnose::authorization_broke(&format!("with only {down} down"), &broke));
        false
    }
}
