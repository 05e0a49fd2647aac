//! The journal of a scenario: every event with its time, the measurements with their budgets, the
//! findings and the verdict, written as JSON under `<state dir>/<run id>/`. Secrets never enter it.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::finding::Finding;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Milliseconds since the scenario started.
    pub t_ms: u64,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub what: String,
    pub measured_ms: u64,
    pub budget_ms: Option<u64>,
    pub within_budget: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Journal {
    pub requirement: String,
    pub target: String,
    pub started_unix_ms: u64,
    pub events: Vec<Event>,
    pub measurements: Vec<Measurement>,
    pub findings: Vec<Finding>,
    pub verdict: String,
    #[serde(skip)]
    started: Option<Instant>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Journal {
    pub fn new(requirement: &str, target: &str) -> Journal {
        Journal {
            requirement: requirement.to_string(),
            target: target.to_string(),
            started_unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).map(ms).unwrap_or(0),
            events: Vec::new(),
            measurements: Vec::new(),
            findings: Vec::new(),
            verdict: "running".to_string(),
            started: Some(Instant::now()),
        }
    }

    pub fn since_start(&self, at: Instant) -> Duration {
        self.started
            .map(|s| at.saturating_duration_since(s))
            .unwrap_or_default()
    }

    pub fn event(&mut self, at: Instant, text: impl Into<String>) {
        let t_ms = ms(self.since_start(at));
        self.events.push(Event {
            t_ms,
            text: text.into(),
        });
    }

    pub fn measurement(&mut self, what: &str, measured: Duration, budget: Option<Duration>) {
        self.measurements.push(Measurement {
            what: what.to_string(),
            measured_ms: ms(measured),
            budget_ms: budget.map(ms),
            within_budget: budget.is_none_or(|b| measured <= b),
        });
    }

    /// Writes the journal as `<dir>/<requirement>-<n>.json` and returns the path.
    pub fn write(&self, dir: &std::path::Path) -> Result<PathBuf, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        for n in 1.. {
            let path = dir.join(format!("{}-{n}.json", self.requirement));
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(text.as_bytes())
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    return Ok(path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        unreachable!("an unbounded range always yields a free name")
    }
}
