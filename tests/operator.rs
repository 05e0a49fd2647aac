//! The operator's commands, as ignored tests that `scripts/live` and `scripts/ledger` run by name
//! (the crate has no binary): `check` (the configuration and the target's reachability, touching
//! nothing), `plan` (what a live run would do, scenario by scenario), `ledger_show` and
//! `ledger_restore`. The one test that runs by default keeps the blast-radius catalogue in step
//! with the scenario tests.

use std::path::Path;

use dive_resilience::deployment::live::check::check;
use dive_resilience::fault::ledger::Ledger;
use dive_resilience::infra::config::{Target, config};
use dive_resilience::vocab::blast::{SCENARIOS, SIDE_BY_SIDE, Touches, live_run};

/// `scripts/live` tells a failed check (exit 3) from a configuration error (a line starting
/// `configuration:`, exit 2) by this word.
const PRECONDITION: &str = "PRECONDITION";

fn must_config() -> &'static dive_resilience::infra::config::Config {
    match config() {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
#[ignore = "an operator's command: scripts/live runs it"]
async fn check_the_configuration_and_reach_the_target() {
    let config = must_config();
    let Target::Live(live) = &config.target else {
        println!("check: the reference target needs no check: every test starts its own deployment");
        return;
    };
    println!("check: configuration valid; live DIVE at {}", live.hub_backend);
    let mut failed = 0;
    for probe in check(live).await {
        match probe.result {
            Ok(seen) => println!("check: {}: ok ({seen})", probe.what),
            Err(e) => {
                failed += 1;
                println!("check: {}: FAILED: {e}", probe.what);
            }
        }
    }
    assert!(
        failed == 0,
        "{PRECONDITION} {failed} check(s) failed: see the lines above"
    );
}

#[test]
#[ignore = "an operator's command: scripts/live runs it"]
fn plan_what_a_live_run_does() {
    plan(false);
}

#[test]
#[ignore = "an operator's command: scripts/live --read-only runs it"]
fn plan_the_read_only_subset() {
    plan(true);
}

/// Prints one `plan:` line per test a live run takes, then the total.
fn plan(read_only: bool) {
    let config = must_config();
    let mut total = std::time::Duration::ZERO;
    println!("plan: scenario | requirement | what it does to the target | at most");
    for s in live_run()
        .into_iter()
        .filter(|s| !read_only || s.touches == Touches::ReadOnly)
    {
        total += s.at_most;
        println!(
            "plan: {}::{} | {} | {} | {}",
            s.binary,
            s.test,
            s.requirements.join(", "),
            s.touches.describe(),
            minutes(s.at_most)
        );
    }
    if let Target::Live(live) = &config.target
        && live.deploy
    {
        println!("plan: DIVE_LIVE_DEPLOY=1: 5.1-deploy first runs ./dive hub deploy and ./dive spoke deploy");
    }
    println!("plan: at most {} in all, one scenario at a time", minutes(total));
}

fn minutes(d: std::time::Duration) -> String {
    format!("{} min", d.as_secs().div_ceil(60))
}

#[test]
#[ignore = "an operator's command: scripts/ledger runs it"]
fn ledger_show() {
    let ledger = Ledger::new(&must_config().state_dir);
    let entries = ledger.entries();
    if entries.is_empty() {
        println!("ledger: empty: no change of the suite is left on any target");
    }
    for (path, entry) in entries {
        let undo = entry.undo.as_ref().map_or("dies with its run".to_string(), |cmds| {
            cmds.iter().map(|c| c.join(" ")).collect::<Vec<_>>().join("; ")
        });
        println!(
            "ledger: {} (run {}) undo: {undo} [{}]",
            entry.change,
            entry.owner_pid,
            path.display()
        );
    }
}

#[tokio::test]
#[ignore = "an operator's command: scripts/ledger runs it"]
async fn ledger_restore() {
    let ledger = Ledger::new(&must_config().state_dir);
    let repaired = ledger.sweep().await;
    if repaired.is_empty() {
        println!("ledger: nothing to restore");
    }
    for line in &repaired {
        println!("{line}");
    }
    let left = ledger.orphans();
    assert!(
        left.is_empty(),
        "{} change(s) could not be undone and stay in the ledger: undo them by hand (scripts/ledger show)",
        left.len()
    );
}

/// Every scenario test of the phases is in the catalogue once, and everything in the catalogue
/// exists: a new scenario cannot reach a live run without saying what it does.
#[test]
fn every_scenario_test_declares_its_blast_radius() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let (mut found, mut ignored_tests) = (Vec::new(), Vec::new());
    for binary in [
        "failure_injection",
        "recovery",
        "alerts",
        "load_under_failure",
        "multi_spoke",
        "token_trust",
    ] {
        let text = std::fs::read_to_string(tests.join(format!("{binary}.rs"))).expect("a phase file");
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if !line.starts_with("#[tokio::test]") {
                continue;
            }
            let mut ignored = false;
            let Some(signature) = lines.find(|l| {
                ignored |= l.starts_with("#[ignore");
                l.starts_with("async fn ")
            }) else {
                continue;
            };
            let name = signature["async fn ".len()..].split('(').next().unwrap_or_default();
            // An ignored scenario runs only when asked by name: a live run asks for the side-by-side ones.
            if ignored {
                ignored_tests.push((binary, name.to_string()));
                continue;
            }
            let harness_only = ["self_check", "live_shaped", "mutated_evidence", "side_by_side"]
                .iter()
                .any(|p| name.starts_with(p));
            if !harness_only {
                found.push((binary, name.to_string()));
            }
        }
    }
    let listed: Vec<(&str, String)> = SCENARIOS.iter().map(|s| (s.binary, s.test.to_string())).collect();
    for test in &found {
        assert!(
            listed.contains(test),
            "{}::{} is not in vocab::blast::SCENARIOS",
            test.0,
            test.1
        );
    }
    for test in &listed {
        assert!(
            found.contains(test),
            "vocab::blast::SCENARIOS lists {}::{}, which is not a scenario test",
            test.0,
            test.1
        );
    }
    assert_eq!(found.len(), listed.len(), "a scenario is listed twice");
    for b in SIDE_BY_SIDE {
        assert!(
            ignored_tests.contains(&(b.binary, b.test.to_string())),
            "vocab::blast::SIDE_BY_SIDE lists {}::{}, which is not an ignored test (a live run asks for it by name)",
            b.binary,
            b.test
        );
    }
}
