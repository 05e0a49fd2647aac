//! Layer 3, faults as guards. A fault is written to the ledger before it is applied, its effect is
//! verified, and it is undone when the guard is restored or dropped (also on panic); the ledger
//! entry goes only once the service answers again. Every run first sweeps the ledger and restores
//! what a killed run left behind.
//!
//! The fault layer knows no target: a target (the reference deployment, a live DIVE) implements
//! [`Control`], and the guard and the ledger work through it.

pub mod ledger;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::infra::poll::eventually;
use crate::vocab::fault::FaultSpec;
use crate::vocab::units::secs;
use ledger::{Change, Ledger};

/// A boxed future, so that [`Control`] can be used as a trait object.
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a fault could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultError {
    /// The command failed, the ledger could not record the fault, or the fault never took effect.
    Failed(String),
    /// DIVE's CLI exited 0 and did nothing (contract section 9).
    CliNoEffect(String),
}

impl std::fmt::Display for FaultError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FaultError::Failed(text) | FaultError::CliNoEffect(text) => f.write_str(text),
        }
    }
}

/// What a target does for the fault layer.
pub trait Control: Send + Sync {
    /// Applies the fault; `Ok` once the command that applies it returned (and, for a command of
    /// DIVE's CLI, once its effect was seen).
    fn apply<'a>(&'a self, fault: &'a FaultSpec) -> Fut<'a, Result<(), FaultError>>;
    /// Undoes the fault; `Ok` once the command that undoes it returned.
    fn restore<'a>(&'a self, fault: &'a FaultSpec) -> Fut<'a, Result<(), String>>;
    /// Whether the faulted service answers its own probe; `Err` says what was seen instead.
    fn answers<'a>(&'a self, fault: &'a FaultSpec) -> Fut<'a, Result<(), String>>;
    /// How long the service may take to answer again after its restore (a whole spoke runs DIVE's
    /// start pipeline: minutes).
    fn restore_deadline(&self, fault: &FaultSpec) -> Duration;
    /// The commands that undo `change` from another process, for the ledger; `None` when the
    /// change dies with this process (the reference deployment is its child).
    fn undo_commands(&self, change: &Change) -> Option<Vec<Vec<String>>>;
    /// Lifts the lock-out a revocation leaves on `user` (contract section 7).
    fn lift_lockout<'a>(&'a self, user: &'a str) -> Fut<'a, Result<(), String>>;
}

/// How long a fault gets to take effect.
const EFFECT_DEADLINE: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_millis(100);

/// An applied fault. Restore it with [`FaultGuard::restore`] to measure the recovery; dropping it
/// restores too.
#[must_use = "dropping a fault guard restores the fault at once"]
pub struct FaultGuard {
    spec: FaultSpec,
    control: Arc<dyn Control>,
    ledger_entry: Option<PathBuf>,
    commanded_at: Instant,
    effect_after: Duration,
    restored: bool,
}

/// What a restore measured.
#[derive(Debug, Clone)]
pub struct Restored {
    /// When the service answered its own probe again.
    pub answered_at: Instant,
    /// From the restore command to that answer.
    pub took: Duration,
}

impl FaultGuard {
    /// Records, applies and verifies a fault: the service must stop answering its probe.
    pub async fn apply(control: Arc<dyn Control>, spec: FaultSpec, ledger: &Ledger) -> Result<FaultGuard, FaultError> {
        let change = Change::Fault(spec.clone());
        let undo = control.undo_commands(&change);
        let ledger_entry = Some(ledger.record(change, undo).map_err(FaultError::Failed)?);
        let mut guard = FaultGuard {
            spec,
            control,
            ledger_entry,
            commanded_at: Instant::now(),
            effect_after: Duration::ZERO,
            restored: false,
        };
        guard.control.apply(&guard.spec).await?;
        guard.commanded_at = Instant::now();
        let (spec, control) = (&guard.spec, &guard.control);
        let took_effect = eventually(&format!("{spec} to take effect"), TICK, EFFECT_DEADLINE, || async {
            match control.answers(spec).await {
                Ok(()) => Err(format!("{} still answers", spec.service)),
                Err(down) => Ok(down),
            }
        })
        .await
        .map_err(|t| FaultError::Failed(format!("the fault never took effect: {t}")))?;
        guard.effect_after = guard.commanded_at.elapsed();
        eprintln!(
            "fault applied: {spec} (no answer {} after the command returned: {})",
            secs(guard.effect_after),
            took_effect.value
        );
        Ok(guard)
    }

    pub fn spec(&self) -> &FaultSpec {
        &self.spec
    }

    /// When the command that applies the fault returned: the moment the dependency is gone, from
    /// which every latency of the scenario counts.
    pub fn commanded_at(&self) -> Instant {
        self.commanded_at
    }

    /// How long after the command the service was seen not to answer (the verification).
    pub fn effect_after(&self) -> Duration {
        self.effect_after
    }

    /// Undoes the fault and waits until the service answers its own probe.
    pub async fn restore(mut self) -> Result<Restored, String> {
        self.restored = true;
        restore_and_wait(self.control.as_ref(), &self.spec, self.ledger_entry.take()).await
    }
}

async fn restore_and_wait(
    control: &dyn Control,
    spec: &FaultSpec,
    ledger_entry: Option<PathBuf>,
) -> Result<Restored, String> {
    let start = Instant::now();
    control.restore(spec).await?;
    eventually(
        &format!("{} answering after restore", spec.service),
        TICK,
        control.restore_deadline(spec),
        || async { control.answers(spec).await },
    )
    .await
    .map_err(|t| format!("restored {spec} but it does not answer: {t}"))?;
    if let Some(path) = ledger_entry {
        Ledger::clear(&path);
    }
    Ok(Restored {
        answered_at: Instant::now(),
        took: start.elapsed(),
    })
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        if self.restored {
            return;
        }
        // Drop cannot await: restore on a thread of its own with its own runtime, so nothing waits
        // on the (possibly blocked) runtime of the test; wait for it no longer than the restore may
        // take, after which the ledger keeps the entry for the next run.
        let control = self.control.clone();
        let spec = self.spec.clone();
        let entry = self.ledger_entry.take();
        let patience = self.control.restore_deadline(&spec) + Duration::from_secs(30);
        let (done, outcome) = mpsc::channel();
        std::thread::spawn(move || {
            let restored = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(restore_and_wait(control.as_ref(), &spec, entry)));
            let _ = done.send(restored);
        });
        match outcome.recv_timeout(patience) {
            Ok(Ok(r)) => eprintln!(
                "fault restored on drop: {} (answering after {})",
                self.spec,
                secs(r.took)
            ),
            Ok(Err(e)) => eprintln!(
                "FAULT NOT RESTORED: {}: {e}; the next run restores it from the ledger",
                self.spec
            ),
            Err(_) => eprintln!(
                "FAULT NOT RESTORED: {}: no answer within {}; the next run restores it from the ledger",
                self.spec,
                secs(patience)
            ),
        }
    }
}

/// A user's revocation lock-out (contract section 7), from just before the revocation until it is
/// lifted. It is in the ledger like a fault, so a panic, Ctrl-C or a killed run still lifts it.
#[must_use = "dropping a lock-out lifts it at once"]
pub struct Lockout {
    user: String,
    control: Arc<dyn Control>,
    ledger_entry: Option<PathBuf>,
}

impl Lockout {
    /// Records the lock-out of `user` before the revocation that causes it.
    pub fn record(control: Arc<dyn Control>, user: &str, ledger: &Ledger) -> Result<Lockout, String> {
        let change = Change::Lockout { user: user.to_string() };
        let undo = control.undo_commands(&change);
        let ledger_entry = Some(ledger.record(change, undo)?);
        Ok(Lockout {
            user: user.to_string(),
            control,
            ledger_entry,
        })
    }

    /// The user locked out.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Lifts the lock-out; the ledger entry goes once it is lifted.
    pub async fn lift(mut self) -> Result<(), String> {
        let entry = self.ledger_entry.take();
        lift(self.control.as_ref(), &self.user, entry).await
    }
}

async fn lift(control: &dyn Control, user: &str, ledger_entry: Option<PathBuf>) -> Result<(), String> {
    control.lift_lockout(user).await?;
    if let Some(path) = ledger_entry {
        Ledger::clear(&path);
    }
    Ok(())
}

impl Drop for Lockout {
    fn drop(&mut self) {
        let Some(entry) = self.ledger_entry.take() else {
            return;
        };
        let (control, user) = (self.control.clone(), self.user.clone());
        let (done, outcome) = mpsc::channel();
        std::thread::spawn(move || {
            let lifted = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(lift(control.as_ref(), &user, Some(entry))));
            let _ = done.send(lifted);
        });
        match outcome.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(())) => eprintln!("lock-out of {} lifted on drop", self.user),
            Ok(Err(e)) => eprintln!(
                "LOCK-OUT NOT LIFTED: {}: {e}; the next run lifts it from the ledger",
                self.user
            ),
            Err(_) => eprintln!(
                "LOCK-OUT NOT LIFTED: {}: no answer within 60 s; the next run lifts it from the ledger",
                self.user
            ),
        }
    }
}
