//! Phase 4.4 of the plan: chaos that can be replayed and shrunk. A seed draws a bounded schedule
//! of faults (stop, kill, pause, partition) on the hub's and the spokes' dependencies; while it
//! runs, traffic, a revoked token's probes and health readings go on on every instance and are
//! recorded as a history, which three checkers judge afterwards (4.4-breakers, 4.4-answers,
//! 4.4-recovery). A failing schedule is shrunk to a smallest failing one. On the reference: a few
//! fixed CI seeds and one fresh seed per run, printed with the command that replays it; on a live
//! DIVE only with `DIVE_CHAOS=1`.

use dive_resilience::infra::config::{Target, must_config};
use dive_resilience::prelude::*;
use dive_resilience::scenario::chaos::phase::{self, Outcome, Replay, Source};
use dive_resilience::scenario::chaos::{Limits, Schedule};
use dive_resilience::vocab::fault::FaultKind as Kind;

/// Seeds every CI run replays on the intended reference (hub and spokes).
const CI_SEEDS: [u64; 2] = [7, 2026];

/// The test that replays any seed or journaled schedule on the configured target.
const FRESH: &str = "chaos_fresh_seed_keeps_dive_correct";

/// Replays spent shrinking a failing CI schedule.
const MAX_REPLAYS: usize = 8;

/// Runs the schedule `source` draws on `deployment`; fresh deployments for the shrinker's replays
/// come from `fresh`.
async fn chaos_on<F>(
    deployment: Result<Deployment, Finding>,
    source: Source,
    replay: Replay,
    max_replays: usize,
    fresh: F,
) -> (Verdict, Outcome)
where
    F: AsyncFn() -> Result<Deployment, Finding>,
{
    let mut outcome = Outcome::default();
    let verdict = run_on(deployment, "4.4-chaos", async |d: &Deployment, s: &mut Scenario| {
        let schedule = source.schedule(&phase::limits(d));
        outcome = phase::chaos(d, s, schedule, replay, max_replays, fresh).await?;
        Ok(())
    })
    .await;
    (verdict, outcome)
}

#[rstest::rstest]
#[tokio::test]
async fn chaos_ci_seed_keeps_dive_correct(#[values(CI_SEEDS[0], CI_SEEDS[1])] seed: u64) {
    let fresh = async || Deployment::reference_federation(Profile::Intended, &[]).await;
    // The fresh-seed test runs the same limits on the same deployment: it replays a CI seed exactly.
    let replay = Replay::Configured(FRESH);
    let (verdict, _) = chaos_on(fresh().await, Source::Seed(seed), replay, MAX_REPLAYS, fresh).await;
    verdict.must_pass();
}

/// One fresh seed per run (or `DIVE_CHAOS_SEED`, or `DIVE_CHAOS_SCHEDULE`), printed with the
/// command that replays it, on the configured target: a live DIVE only with `DIVE_CHAOS=1`.
#[tokio::test]
async fn chaos_fresh_seed_keeps_dive_correct() {
    let config = must_config();
    if matches!(config.target, Target::Live(_)) && !config.chaos.live && !config.dry_run {
        eprintln!(
            "[4.4-chaos] not run: chaos on a live DIVE needs DIVE_CHAOS=1 (DIVE_DRY_RUN=1 shows the schedule and its commands)"
        );
        return;
    }
    let source = Source::configured().unwrap_or_else(|f| panic!("{f}"));
    let fresh = async || Deployment::federation().await;
    let (verdict, _) = chaos_on(fresh().await, source, Replay::Configured(FRESH), MAX_REPLAYS, fresh).await;
    verdict.must_pass();
}

// ------------------------------------------------------------------ self-check

/// R11 needs two faults: a breaker's dependency down past its open timeout (so its trial call
/// fails in HALF_OPEN) while another breaker is OPEN. Hub only, three dependencies, short faults.
fn self_check_limits() -> Limits {
    let scale = must_config().reference_scale();
    let scaled = |s: u64| std::time::Duration::from_secs(s).mul_f64(scale);
    Limits {
        instances: vec!["USA".to_string()],
        services: vec![Service::Opa, Service::Keycloak, Service::Kas],
        kinds: Kind::ALL.to_vec(),
        max_faults: 3,
        max_concurrent: 2,
        min_duration: scaled(10),
        max_duration: scaled(45),
        total: scaled(60),
        allow_all_critical: false,
    }
}

/// The first of these seeds whose schedule shows R11 is shrunk; each tries one run.
const SELF_CHECK_SEEDS: [u64; 3] = [26, 0, 19];

/// Two rounds of drops: three faults, then two.
const SELF_CHECK_REPLAYS: usize = 5;

async fn with_r11() -> Result<Deployment, Finding> {
    Deployment::reference_with_defects(Profile::Intended, &[Defect::R11]).await
}

async fn self_check_run(seed: u64) -> (Verdict, Outcome) {
    let schedule = Schedule::generate(seed, &self_check_limits());
    let replay = Replay::Fixed("self_check_chaos_finds_a_breaker_stuck_open_and_shrinks_it_to_two_faults");
    chaos_on(
        with_r11().await,
        Source::Journaled(schedule),
        replay,
        SELF_CHECK_REPLAYS,
        with_r11,
    )
    .await
}

#[tokio::test]
async fn self_check_chaos_finds_a_breaker_stuck_open_and_shrinks_it_to_two_faults() {
    for seed in SELF_CHECK_SEEDS {
        let (verdict, outcome) = self_check_run(seed).await;
        let Some(shrunk) = outcome.shrunk else { continue };
        assert_eq!(shrunk.schedule.faults.len(), 2, "{shrunk}");
        insta::assert_snapshot!(verdict.must_fail_naming(&[Defect::R11]));
        return;
    }
    panic!("no seed of {SELF_CHECK_SEEDS:?} found R11 within the CI budget");
}

#[tokio::test]
async fn self_check_a_failing_seed_replays_to_the_same_schedule_and_verdict() {
    let seed = SELF_CHECK_SEEDS[0];
    assert_eq!(
        Schedule::generate(seed, &self_check_limits()),
        Schedule::generate(seed, &self_check_limits())
    );
    let run = async || {
        let schedule = Schedule::generate(seed, &self_check_limits());
        let d = with_r11().await.unwrap_or_else(|f| panic!("{f}"));
        phase::run_once(&d, &schedule).await.unwrap_or_else(|f| panic!("{f}"))
    };
    let (first, second) = tokio::join!(run(), run());
    let verdict = |r: &dive_resilience::scenario::chaos::ChaosRun| {
        let mut v: Vec<_> = r
            .violations
            .iter()
            .map(|v| (v.checker, v.instance.clone(), v.defect))
            .collect();
        v.dedup();
        v
    };
    assert!(first.failed(), "seed {seed} should fail");
    assert_eq!(first.schedule, second.schedule);
    assert_eq!(verdict(&first), verdict(&second));
}

// ------------------------------------------------------------------ the live code, on a live-shaped DIVE

/// A partition on a live DIVE is DIVE's own recipe, run through the live target's code against
/// the live-shaped reference: `docker network disconnect` from every network its callers use, and
/// back with `docker network connect --alias`, under the same guards and ledger; the checkers
/// hold over the history.
#[tokio::test]
async fn live_shaped_chaos_partitions_through_dives_networks() {
    use dive_resilience::reference::live_shaped::LiveShaped;
    use dive_resilience::scenario::chaos::ScheduledFault;
    let deployment = Deployment::live_shaped("head-intended", |_| {}).await;
    let mut calls = Vec::new();
    let verdict = run_on(deployment, "4.4-chaos", async |d: &Deployment, s: &mut Scenario| {
        let spoke = d.spokes().first().map_or("USA".to_string(), |i| i.code.clone());
        let at = |tenths: u64| std::time::Duration::from_millis(100 * tenths).mul_f64(d.time_scale * 10.0);
        let partition = |id, instance: &str, service, start, length| ScheduledFault {
            id,
            instance: instance.to_string(),
            service,
            kind: Kind::Partition,
            start: at(start),
            duration: at(length),
        };
        let schedule = Schedule {
            seed: 0,
            limits: phase::limits(d),
            faults: vec![
                partition(0, "USA", Service::Opa, 5, 15),
                partition(1, &spoke, Service::Keycloak, 10, 15),
            ],
        };
        let replay = Replay::Fixed("live_shaped_chaos_partitions_through_dives_networks");
        let no_replays = async || Err(Finding::precondition("a passing run is not shrunk"));
        phase::chaos(d, s, schedule, replay, 0, no_replays).await?;
        calls = d.kept::<LiveShaped>().map(LiveShaped::calls).unwrap_or_default();
        Ok(())
    })
    .await;
    verdict.must_pass();
    let network: Vec<&String> = calls.iter().filter(|c| c.contains("network")).collect();
    assert!(
        network.iter().any(|c| c.contains("disconnect")) && network.iter().any(|c| c.contains("connect")),
        "{calls:#?}"
    );
}
