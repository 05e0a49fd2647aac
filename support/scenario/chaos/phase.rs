//! Phase 4.4 as a scenario: the limits a schedule is drawn within, where the schedule comes from
//! (a seed, fresh or given, or a journaled schedule), and the scenario body: preflight on every
//! instance, the schedule shown and journaled, a token revoked, the run, the timeline, the
//! checkers' verdicts as findings, and, when one fails, the schedule shrunk on fresh deployments.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::checkers::{Rules, Violation};
use super::rng::fresh_seed;
use super::run::{ChaosRun, Revoked, run_schedule};
use super::schedule::{Limits, Schedule};
use super::shrink::{Shrunk, shrink};
use super::timeline::timeline;
use crate::deployment::Deployment;
use crate::infra::config::must_config;
use crate::scenario::{Scenario, TICK};
use crate::vocab::fault::{FaultKind, Service};
use crate::vocab::finding::Finding;

/// The health poll's period: one tick of slack on every judgement of time.
pub const RESOLUTION: Duration = Duration::from_millis(250);

/// The limits of the CI schedules on `d` (hub and spokes): at most four faults, two at once,
/// each 10-40 s of DIVE's time, all over within 80 s (8 s at the reference's scale 0.1), on the
/// dependencies behind DIVE's breakers, its caches and its revocation store.
pub fn limits(d: &Deployment) -> Limits {
    let scaled = |s: u64| Duration::from_secs(s).mul_f64(d.time_scale);
    Limits {
        instances: d.instances().iter().map(|i| i.code.clone()).collect(),
        services: vec![
            Service::Opa,
            Service::Keycloak,
            Service::Mongodb,
            Service::Kas,
            Service::CacheRedis,
            Service::RevocationStore,
        ],
        kinds: FaultKind::ALL.to_vec(),
        max_faults: 4,
        max_concurrent: 2,
        min_duration: scaled(10),
        max_duration: scaled(40),
        total: scaled(80),
        allow_all_critical: false,
    }
}

/// Where a run's schedule comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Drawn from this seed.
    Seed(u64),
    /// A journaled schedule, replayed as it is (a shrunk one, say).
    Journaled(Schedule),
}

impl Source {
    /// `DIVE_CHAOS_SCHEDULE`, else `DIVE_CHAOS_SEED`, else a fresh seed.
    pub fn configured() -> Result<Source, Finding> {
        let chaos = &must_config().chaos;
        if let Some(path) = &chaos.schedule {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Finding::precondition(format!("DIVE_CHAOS_SCHEDULE {}: {e}", path.display())))?;
            let schedule = serde_json::from_str(&text).map_err(|e| {
                Finding::precondition(format!(
                    "DIVE_CHAOS_SCHEDULE {} is not a schedule a chaos run journaled: {e}",
                    path.display()
                ))
            })?;
            return Ok(Source::Journaled(schedule));
        }
        Ok(Source::Seed(chaos.seed.unwrap_or_else(fresh_seed)))
    }

    pub fn schedule(&self, limits: &Limits) -> Schedule {
        match self {
            Source::Seed(seed) => Schedule::generate(*seed, limits),
            Source::Journaled(schedule) => schedule.clone(),
        }
    }
}

/// The test that replays a run, and whether it takes its schedule from the environment.
#[derive(Debug, Clone, Copy)]
pub enum Replay {
    /// Honours `DIVE_CHAOS_SEED` and `DIVE_CHAOS_SCHEDULE` on the configured target.
    Configured(&'static str),
    /// Runs fixed seeds on a deployment of its own: running it again replays them.
    Fixed(&'static str),
}

impl Replay {
    fn seed(self, schedule: &Schedule) -> String {
        match self {
            Replay::Configured(test) => schedule.replay_command(test),
            Replay::Fixed(test) => format!(
                "cargo test --test chaos {test} (its seeds are fixed: seed {} draws this schedule again)",
                schedule.seed
            ),
        }
    }

    fn journaled(self, path: &std::path::Path) -> String {
        match self {
            Replay::Configured(test) => {
                format!("DIVE_CHAOS_SCHEDULE={} cargo test --test chaos {test}", path.display())
            }
            Replay::Fixed(test) => format!(
                "cargo test --test chaos {test} (journaled at {}; the test searches and shrinks again)",
                path.display()
            ),
        }
    }
}

/// What a chaos scenario hands back besides its verdict.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub run: Option<ChaosRun>,
    pub shrunk: Option<Shrunk>,
}

/// The rules the checkers hold `d` to.
pub fn rules(d: &Deployment) -> Rules {
    Rules::dive(d.time_scale, RESOLUTION)
}

/// One run of `schedule` on `d`, with a token of the revocation user revoked on the hub first
/// (its lock-out ledgered, and lifted after).
pub async fn run_once(d: &Deployment, schedule: &Schedule) -> Result<ChaosRun, Finding> {
    let hub = d.hub();
    let user = must_config().revoke_user.clone();
    let lockout = hub.lockout(&user)?;
    let token = hub.token_for(&user).await?;
    let blacklisted = hub.revoke(&token).await?;
    let revoked = Revoked {
        token,
        jti: blacklisted.jti,
    };
    let run = run_schedule(d, schedule, &rules(d), TICK, Some(&revoked)).await;
    let lifted = lockout.lift().await;
    let run = run?;
    lifted.map_err(|e| Finding::fail(format!("could not lift the revocation of {user}: {e}")))?;
    Ok(run)
}

/// The scenario body: runs `schedule` on `d`; when a checker fails, shrinks it within
/// `max_replays` runs, each on a deployment `fresh` starts. `replay` says how to run it again.
pub async fn chaos<F>(
    d: &Deployment,
    s: &mut Scenario,
    schedule: Schedule,
    replay: Replay,
    max_replays: usize,
    fresh: F,
) -> Result<Outcome, Finding>
where
    F: AsyncFn() -> Result<Deployment, Finding>,
{
    for inst in d.instances() {
        s.preflight(inst).await?;
    }
    s.report(format!("{schedule}"));
    // A journaled schedule (a shrunk one) is not what its seed draws: only the file replays it.
    if Schedule::generate(schedule.seed, &schedule.limits) == schedule {
        s.report(format!("replay: {}", replay.seed(&schedule)));
    }
    let name = format!("schedule-{}-{}", schedule.seed, schedule.faults.len());
    if let Some(path) = journal(&schedule, &name) {
        s.report(format!("replay this schedule exactly: {}", replay.journaled(&path)));
    }
    let run = run_once(d, &schedule).await?;
    if let Some(path) = journal(
        &run.history,
        &format!("history-{}-{}", schedule.seed, schedule.faults.len()),
    ) {
        s.event(format!(
            "history journaled: {} ({} operations)",
            path.display(),
            run.history.ops.len()
        ));
    }
    s.report(timeline(&schedule, &run.history, &run.violations));
    for recovery in &run.recoveries {
        s.report(format!("4.4-recovery: {recovery}"));
    }
    for v in &run.violations {
        s.finding(finding_of(v));
    }
    let mut outcome = Outcome {
        run: Some(run.clone()),
        shrunk: None,
    };
    if !run.failed() || must_config().dry_run {
        return Ok(outcome);
    }
    s.report(format!(
        "seed {} fails {}; shrinking within {max_replays} replays, each on a fresh deployment",
        schedule.seed,
        checkers_of(&run.violations)
    ));
    let last_failing = Mutex::new(run.clone());
    let shrunk = shrink(&schedule, max_replays, async |candidate: &Schedule| {
        let replay = match fresh().await {
            Ok(d) => run_once(&d, candidate).await,
            Err(e) => Err(e),
        };
        match replay {
            Ok(replay) if replay.failed() => {
                *last_failing.lock().unwrap_or_else(PoisonError::into_inner) = replay;
                true
            }
            Ok(_) => false,
            Err(e) => {
                eprintln!("[4.4-chaos] replay not judged: {e}");
                false
            }
        }
    })
    .await;
    let last_failing = last_failing.into_inner().unwrap_or_else(PoisonError::into_inner);
    s.report(format!("{shrunk}"));
    let name = format!("shrunk-{}-{}", shrunk.schedule.seed, shrunk.schedule.faults.len());
    if let Some(path) = journal(&shrunk.schedule, &name) {
        s.report(format!("replay the shrunk schedule: {}", replay.journaled(&path)));
    }
    if !shrunk.steps.is_empty() {
        s.report(timeline(
            &shrunk.schedule,
            &last_failing.history,
            &last_failing.violations,
        ));
    }
    s.finding(Finding::note(format!(
        "shrunk to {} faults in {} replays: {}",
        shrunk.schedule.faults.len(),
        shrunk.replays,
        shrunk
            .schedule
            .faults
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    )));
    outcome.shrunk = Some(shrunk);
    Ok(outcome)
}

/// A violation as a finding: the checker's requirement, what it saw, the defect it names.
fn finding_of(v: &Violation) -> Finding {
    let finding = Finding::fail(format!("{}: {}", v.checker, v.message));
    match v.defect {
        Some(defect) => finding.defect(defect),
        None => finding,
    }
}

fn checkers_of(violations: &[Violation]) -> String {
    let mut names: Vec<&str> = violations.iter().map(|v| v.checker.requirement()).collect();
    names.dedup();
    names.join(", ")
}

/// Writes `value` next to the run's journals as `<name>.json` (a schedule for
/// `DIVE_CHAOS_SCHEDULE`, a history); `None` (said on stderr) when it cannot.
fn journal(value: &impl serde::Serialize, name: &str) -> Option<PathBuf> {
    let config = must_config();
    let dir = config.state_dir.join(&config.run_id);
    let path = dir.join(format!("{name}.json"));
    let written = std::fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| serde_json::to_string_pretty(value).map_err(|e| e.to_string()))
        .and_then(|json| std::fs::write(&path, json).map_err(|e| e.to_string()));
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            eprintln!("[4.4-chaos] not journaled at {}: {e}", path.display());
            None
        }
    }
}
