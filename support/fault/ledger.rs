//! The ledger: one JSON file per change the suite made to a target and has not undone yet (a fault,
//! a user's revocation lock-out, a container of the reference's Docker runtime), written before
//! the change and removed once it is undone. A run that dies leaves its entries behind; the next
//! run restores them first ([`Ledger::sweep`]), and a signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT)
//! stops this process's load and restores its own before it exits ([`restore_on_signal`]).
//!
//! An entry, `<state dir>/ledger/<pid>-<what>-<random>.json`:
//! `{"owner_pid": 4242, "owner_start": 981234, "change": {"change": "fault", "instance": "USA",
//! "service": "opa", "kind": "stop"}, "undo": [["docker", "start", "dive-hub-opa"]]}`;
//! `undo: null` means the change dies with its owner (the reference deployment is its child).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::infra::exec::Exec;
use crate::infra::os::{alive, process_start, random_hex};
use crate::vocab::fault::FaultSpec;

/// Something the suite changed on a target that must be undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A fault on one service.
    Fault(FaultSpec),
    /// A revocation's lock-out of a user (`user-revoked:<user>` in the revocation store).
    Lockout { user: String },
    /// A container the reference deployment started through its Docker runtime.
    Container { id: String },
    /// An AlertManager silence of the alerts a live run induces.
    Silence { id: String, alertmanager: String },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Fault(spec) => write!(f, "{spec}"),
            Change::Lockout { user } => write!(f, "the revocation lock-out of {user}"),
            Change::Container { id } => write!(f, "reference container {id}"),
            Change::Silence { id, alertmanager } => write!(f, "silence {id} in AlertManager {alertmanager}"),
        }
    }
}

impl Change {
    /// A word for the entry's file name.
    fn slug(&self) -> String {
        match self {
            Change::Fault(spec) => format!(
                "{}-{}",
                spec.instance.to_lowercase(),
                spec.service.name().replace(' ', "-")
            ),
            Change::Lockout { .. } => "lockout".to_string(),
            Change::Container { .. } => "container".to_string(),
            Change::Silence { .. } => "silence".to_string(),
        }
    }
}

/// One change as written to the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub owner_pid: u32,
    /// Start time of the owner (from /proc), so a reused pid is not mistaken for the owner.
    pub owner_start: u64,
    pub change: Change,
    /// Commands that undo the change from any process; `None` when it dies with its owner.
    pub undo: Option<Vec<Vec<String>>>,
}

impl LedgerEntry {
    fn owner_alive(&self) -> bool {
        alive(self.owner_pid, self.owner_start)
    }
}

/// How long one undo command may take: a whole spoke's `./dive spoke up` runs DIVE's start
/// pipeline, whose Keycloak alone has a 120 s start period.
pub const UNDO_DEADLINE: Duration = Duration::from_secs(600);

/// The folder of ledger entries, one file per change not yet undone.
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

    /// Writes an entry for `change`, owned by this process, before the change is made.
    pub fn record(&self, change: Change, undo: Option<Vec<Vec<String>>>) -> Result<PathBuf, String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("ledger {}: {e}", self.dir.display()))?;
        let pid = std::process::id();
        let path = self.dir.join(format!("{pid}-{}-{}.json", change.slug(), random_hex()));
        let entry = LedgerEntry {
            owner_pid: pid,
            owner_start: process_start(pid).unwrap_or(0),
            change,
            undo,
        };
        let text = serde_json::to_string_pretty(&entry).map_err(|e| e.to_string())?;
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

    /// Every entry, with its file; an entry that cannot be read is said, not skipped silently.
    pub fn entries(&self) -> Vec<(PathBuf, LedgerEntry)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for path in dir.filter_map(|e| e.ok()).map(|e| e.path()) {
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let read = std::fs::read_to_string(&path).map_err(|e| e.to_string());
            match read.and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string())) {
                Ok(entry) => out.push((path, entry)),
                Err(e) => eprintln!(
                    "ledger: cannot read {} ({e}); look at it and undo what it names by hand",
                    path.display()
                ),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Changes of runs that are no longer alive.
    pub fn orphans(&self) -> Vec<LedgerEntry> {
        self.entries()
            .into_iter()
            .map(|(_, e)| e)
            .filter(|e| !e.owner_alive())
            .collect()
    }

    /// Undoes every change a dead run left behind. Returns one line per entry, saying what was
    /// repaired; an entry whose undo fails stays for the next run.
    pub async fn sweep(&self) -> Vec<String> {
        let orphans = self.entries().into_iter().filter(|(_, e)| !e.owner_alive()).collect();
        undo_entries(orphans, "left behind by run").await
    }

    /// Undoes the changes this process holds (on SIGINT/SIGTERM, before it exits).
    pub async fn restore_own(&self) -> Vec<String> {
        let own = self
            .entries()
            .into_iter()
            .filter(|(_, e)| e.owner_pid == std::process::id())
            .collect();
        undo_entries(own, "held by interrupted run").await
    }
}

async fn undo_entries(entries: Vec<(PathBuf, LedgerEntry)>, whose: &str) -> Vec<String> {
    let mut report = Vec::new();
    for (path, entry) in entries {
        let Some(commands) = &entry.undo else {
            report.push(format!(
                "ledger: {} {whose} {}: it died with that run; nothing to restore",
                entry.change, entry.owner_pid
            ));
            Ledger::clear(&path);
            continue;
        };
        let mut failed = None;
        for argv in commands {
            let Some((program, args)) = argv.split_first() else {
                continue;
            };
            let exec = Exec::new(program).args(args.iter().cloned()).deadline(UNDO_DEADLINE);
            if let Err(e) = exec.must_succeed().await {
                failed = Some(e);
            }
        }
        match failed {
            None => {
                report.push(format!("ledger: restored {} {whose} {}", entry.change, entry.owner_pid));
                Ledger::clear(&path);
            }
            Some(e) => report.push(format!(
                "ledger: could not restore {} {whose} {}: {e}",
                entry.change, entry.owner_pid
            )),
        }
    }
    report
}

/// On SIGINT, SIGTERM, SIGHUP or SIGQUIT, stops every load of this process, undoes every change
/// it holds, then exits (130, 143, 129, 131).
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
                let (Ok(mut int), Ok(mut term), Ok(mut hup), Ok(mut quit)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                    signal(SignalKind::hangup()),
                    signal(SignalKind::quit()),
                ) else {
                    eprintln!("no signal handler: faults are still restored by the next run's ledger sweep");
                    return;
                };
                let (name, code) = tokio::select! {
                    _ = int.recv() => ("SIGINT", 130),
                    _ = term.recv() => ("SIGTERM", 143),
                    _ = hup.recv() => ("SIGHUP", 129),
                    _ = quit.recv() => ("SIGQUIT", 131),
                };
                // No request of any load starts after the signal; then the faults go.
                crate::infra::load::halt_all();
                eprintln!("{name}: load stopped; restoring every active fault before exiting");
                for line in ledger.restore_own().await {
                    eprintln!("{line}");
                }
                std::process::exit(code);
            });
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::fault::{FaultKind, Service};

    #[test]
    fn an_entry_reads_back_and_names_its_change() {
        let dir = std::env::temp_dir().join(format!("dive-ledger-test-{}", random_hex()));
        let ledger = Ledger::new(&dir);
        let fault = Change::Fault(FaultSpec {
            instance: "USA".to_string(),
            service: Service::Opa,
            kind: FaultKind::Stop,
        });
        let undo = Some(vec![vec![
            "docker".to_string(),
            "start".to_string(),
            "dive-hub-opa".to_string(),
        ]]);
        let path = ledger.record(fault.clone(), undo.clone()).expect("recorded");
        ledger
            .record(
                Change::Lockout {
                    user: "testuser-usa-5".to_string(),
                },
                None,
            )
            .expect("recorded");
        let entries = ledger.entries();
        assert_eq!(entries.len(), 2);
        let (_, first) = entries.iter().find(|(p, _)| *p == path).expect("the fault's entry");
        assert_eq!((&first.change, &first.undo), (&fault, &undo));
        assert!(ledger.orphans().is_empty(), "this process owns them");
        assert_eq!(fault.to_string(), "stop opa on USA");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
