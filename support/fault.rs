//! Faults as guards. A fault is written to the ledger before it is applied, its effect is
//! verified, and it is undone when the guard is restored or dropped (also on panic); the ledger
//! entry goes only once the service answers again. Every run first sweeps the ledger and
//! restores what a killed run left behind.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::deployment::Control;
use crate::dive::Exec;
use crate::poll::{eventually, secs};

/// A service of one DIVE instance, as the suite can fault it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    Backend,
    Opa,
    Keycloak,
    Mongodb,
    Kas,
    /// The cache Redis.
    Redis,
    /// The shared token blacklist (hub's `redis-blacklist`).
    BlacklistRedis,
    /// The whole instance (`./dive --instance <code> spoke down`).
    Stack,
}

impl Service {
    /// The suffix of DIVE's container name: `dive-hub-<suffix>`, `dive-spoke-<code>-<suffix>`.
    pub fn container_suffix(self) -> &'static str {
        match self {
            Service::Backend => "backend",
            Service::Opa => "opa",
            Service::Keycloak => "keycloak",
            Service::Mongodb => "mongodb",
            Service::Kas => "kas",
            Service::Redis => "redis",
            Service::BlacklistRedis => "redis-blacklist",
            // The stack is judged by its backend.
            Service::Stack => "backend",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Service::Stack => f.write_str("whole stack"),
            other => f.write_str(other.container_suffix()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Graceful stop (`docker stop`): the port closes.
    Stop,
    /// Abrupt end (`docker kill`): the port closes, connections are cut.
    Kill,
    /// Frozen (`docker pause`): connections are accepted and never answered.
    Pause,
}

impl FaultKind {
    pub fn verb(self) -> &'static str {
        match self {
            FaultKind::Stop => "stop",
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
        }
    }
}

/// One fault on one service of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    pub instance: String,
    pub service: Service,
    pub kind: FaultKind,
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} on {}", self.kind.verb(), self.service, self.instance)
    }
}

/// How long a service gets to come back after its restore before the guard gives up.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(120);
/// How long a fault gets to take effect.
const EFFECT_DEADLINE: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_millis(100);

/// An applied fault. Restore it with [`FaultGuard::restore`] to measure the recovery; dropping it
/// restores too.
#[must_use = "dropping a fault guard restores the fault at once"]
pub struct FaultGuard {
    spec: FaultSpec,
    control: Arc<Control>,
    ledger_entry: Option<PathBuf>,
    applied_at: Instant,
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
    pub async fn apply(control: Arc<Control>, spec: FaultSpec, ledger: &Ledger) -> Result<FaultGuard, String> {
        let entry = LedgerEntry::new(&spec, control.restore_argv(&spec));
        let ledger_entry = Some(ledger.record(&entry)?);
        let mut guard = FaultGuard {
            spec,
            control,
            ledger_entry,
            applied_at: Instant::now(),
            restored: false,
        };
        guard.control.apply(&guard.spec).await?;
        let http = guard.control.http();
        let spec = guard.spec.clone();
        let control = guard.control.clone();
        let took_effect = eventually(&format!("{spec} to take effect"), TICK, EFFECT_DEADLINE, || async {
            match control.answers(&http, &spec).await {
                Ok(()) => Err(format!("{} still answers", spec.service)),
                Err(down) => Ok(down),
            }
        })
        .await
        .map_err(|t| format!("the fault never took effect: {t}"))?;
        guard.applied_at = Instant::now();
        eprintln!(
            "fault applied: {spec} (no answer after {}: {})",
            secs(took_effect.elapsed),
            took_effect.value
        );
        Ok(guard)
    }

    pub fn spec(&self) -> &FaultSpec {
        &self.spec
    }

    /// When the fault was seen to take effect.
    pub fn applied_at(&self) -> Instant {
        self.applied_at
    }

    /// Undoes the fault and waits until the service answers its own probe.
    pub async fn restore(mut self) -> Result<Restored, String> {
        self.restored = true;
        restore_and_wait(
            &self.control,
            &self.spec,
            self.ledger_entry.take(),
            &self.control.http(),
        )
        .await
    }
}

async fn restore_and_wait(
    control: &Control,
    spec: &FaultSpec,
    ledger_entry: Option<PathBuf>,
    http: &crate::http::Http,
) -> Result<Restored, String> {
    let start = Instant::now();
    control.restore(spec).await?;
    eventually(
        &format!("{} answering after restore", spec.service),
        TICK,
        RECOVERY_DEADLINE,
        || async { control.answers(http, spec).await },
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
        // Drop cannot await: restore on a thread of its own, with its own runtime and a fresh
        // client, so nothing waits on the (possibly blocked) runtime of the test.
        let control = self.control.clone();
        let spec = self.spec.clone();
        let entry = self.ledger_entry.take();
        let outcome = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let http = control.fresh_http()?;
                restore_and_wait(&control, &spec, entry, &http).await
            })
        })
        .join();
        match outcome {
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
                "FAULT NOT RESTORED: {}: the restore panicked; the next run restores it from the ledger",
                self.spec
            ),
        }
    }
}

// ---------------------------------------------------------------- ledger

/// One fault as written to the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub owner_pid: u32,
    /// Start time of the owner (from /proc), so a reused pid is not mistaken for the owner.
    pub owner_start: u64,
    pub fault: FaultSpec,
    /// Commands that undo the fault (live targets); `None` when the fault dies with its owner
    /// (the reference deployment is a child of the test process).
    pub restore: Option<Vec<Vec<String>>>,
}

impl LedgerEntry {
    pub fn new(fault: &FaultSpec, restore: Option<Vec<Vec<String>>>) -> LedgerEntry {
        LedgerEntry {
            owner_pid: std::process::id(),
            owner_start: process_start(std::process::id()).unwrap_or(0),
            fault: fault.clone(),
            restore,
        }
    }

    fn owner_alive(&self) -> bool {
        process_start(self.owner_pid) == Some(self.owner_start)
    }
}

/// Field 22 of /proc/<pid>/stat: the process start time, in clock ticks since boot.
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// The folder of ledger entries, one file per active fault.
#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
}

impl Ledger {
    pub fn new(state_dir: &Path) -> Ledger {
        Ledger {
            dir: state_dir.join("ledger"),
        }
    }

    pub fn record(&self, entry: &LedgerEntry) -> Result<PathBuf, String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("ledger {}: {e}", self.dir.display()))?;
        let name = format!(
            "{}-{}-{}-{}.json",
            entry.owner_pid,
            entry.fault.instance.to_lowercase(),
            entry.fault.service,
            crate::reference::standins::random_hex()
        );
        let path = self.dir.join(name);
        let text = serde_json::to_string_pretty(entry).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("ledger {}: {e}", path.display()))?;
        Ok(path)
    }

    pub fn clear(path: &Path) {
        if let Err(e) = std::fs::remove_file(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("ledger: cannot remove {}: {e}", path.display());
        }
    }

    /// Every entry, with its file.
    fn entries(&self) -> Vec<(PathBuf, LedgerEntry)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| {
                Some((
                    p.clone(),
                    serde_json::from_str(&std::fs::read_to_string(&p).ok()?).ok()?,
                ))
            })
            .collect()
    }

    /// Faults of runs that are no longer alive.
    pub fn orphans(&self) -> Vec<FaultSpec> {
        self.entries()
            .into_iter()
            .filter(|(_, e)| !e.owner_alive())
            .map(|(_, e)| e.fault)
            .collect()
    }

    /// Restores every fault a dead run left behind. Returns one line per entry, saying what was
    /// repaired; an entry whose restore fails stays for the next run.
    pub async fn sweep(&self) -> Vec<String> {
        let orphans = self.entries().into_iter().filter(|(_, e)| !e.owner_alive()).collect();
        restore_entries(orphans, "left behind by run").await
    }

    /// Restores the faults this process holds (on SIGINT/SIGTERM, before it exits).
    pub async fn restore_own(&self) -> Vec<String> {
        let own = self
            .entries()
            .into_iter()
            .filter(|(_, e)| e.owner_pid == std::process::id())
            .collect();
        restore_entries(own, "held by interrupted run").await
    }
}

async fn restore_entries(entries: Vec<(PathBuf, LedgerEntry)>, whose: &str) -> Vec<String> {
    let mut report = Vec::new();
    for (path, entry) in entries {
        let Some(commands) = &entry.restore else {
            report.push(format!(
                "ledger: {} {whose} {}: its reference deployment dies with that run; nothing to restore",
                entry.fault, entry.owner_pid
            ));
            Ledger::clear(&path);
            continue;
        };
        let mut failed = None;
        for argv in commands {
            let Some((program, args)) = argv.split_first() else {
                continue;
            };
            let exec = Exec::new(program)
                .args(args.iter().cloned())
                .deadline(Duration::from_secs(60));
            if let Err(e) = exec.must_succeed().await {
                failed = Some(e);
            }
        }
        match failed {
            None => {
                report.push(format!("ledger: restored {} {whose} {}", entry.fault, entry.owner_pid));
                Ledger::clear(&path);
            }
            Some(e) => report.push(format!(
                "ledger: could not restore {} {whose} {}: {e}",
                entry.fault, entry.owner_pid
            )),
        }
    }
    report
}

/// On SIGINT or SIGTERM, restores every fault this process holds, then exits (130 or 143).
/// Installed once per process, with the first deployment.
pub fn restore_on_signal(ledger: Ledger) {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                eprintln!("no signal handler: faults are still restored by the next run's ledger sweep");
                return;
            };
            rt.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
                else {
                    eprintln!("no signal handler: faults are still restored by the next run's ledger sweep");
                    return;
                };
                let (name, code) = tokio::select! {
                    _ = int.recv() => ("SIGINT", 130),
                    _ = term.recv() => ("SIGTERM", 143),
                };
                eprintln!("{name}: restoring every active fault before exiting");
                for line in ledger.restore_own().await {
                    eprintln!("{line}");
                }
                std::process::exit(code);
            });
        });
    });
}
