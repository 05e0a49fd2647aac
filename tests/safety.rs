//! The harness's own promises to an operator: no fault outlives it (SIGINT, SIGTERM, SIGKILL),
//! and bad input is refused with one clear line before anything is injected. The signal tests
//! run a scenario in a child process against a live configuration whose "DIVE" is a reference
//! deployment and whose container runtime is a fake that records its calls.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dive_resilience::deployment::silences::Silences;
use dive_resilience::fault::ledger::Ledger;
use dive_resilience::infra::config::{Config, Trust, must_config};
use dive_resilience::infra::exec::Exec;
use dive_resilience::infra::os::random_hex;
use dive_resilience::infra::poll::{eventually, holds_for};
use dive_resilience::prelude::*;

const CHILD: &str = "child_holds_a_live_fault_until_signalled";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// A scratch folder under the target directory, fresh for each test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// The live configuration a child uses to reach `dive` (a reference deployment) through the
/// fake container runtime.
fn live_vars(dive: &Deployment, dir: &Path) -> HashMap<String, String> {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, dive.reference_ca_pem().expect("a reference deployment")).expect("CA file");
    let hub = dive.hub();
    let vars = [
        ("DIVE_TARGET", "live".to_string()),
        ("DIVE_ROOT", fixture("fake-dive").display().to_string()),
        ("HUB_BACKEND_URL", hub.backend.to_string()),
        ("HUB_KEYCLOAK_URL", hub.keycloak.to_string()),
        ("DIVE_CA_CERT", ca.display().to_string()),
        (
            "DIVE_KEYCLOAK_CLIENT_SECRET",
            hub.credentials.client_secret.expose().to_string(),
        ),
        ("DIVE_CONTAINER_RUNTIME", fixture("fake-runtime").display().to_string()),
        ("DIVE_STATE_DIR", dir.join("state").display().to_string()),
        ("FAKE_RUNTIME_LOG", dir.join("runtime.log").display().to_string()),
        ("FAKE_RUNTIME_STATE", dir.join("containers").display().to_string()),
    ];
    vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[tokio::test]
#[ignore = "a child process of the signal tests, not a test of its own"]
async fn child_holds_a_live_fault_until_signalled() {
    let d = Deployment::from_config()
        .await
        .expect("the parent gives a valid live configuration");
    let _opa = d
        .hub()
        .fault(Service::Opa, FaultKind::Stop)
        .await
        .expect("the fault applies");
    let wait = holds_for(
        "holding the fault until a signal",
        Duration::from_millis(200),
        Duration::from_secs(60),
        async || Ok("held".to_string()),
    );
    wait.await.expect("nothing breaks while holding");
}

/// Runs the child scenario, waits until its fault is in the ledger, sends `signal`, and returns
/// the scratch folder and the child's exit code.
async fn interrupt_child(name: &str, signal: libc::c_int) -> (PathBuf, Option<i32>) {
    let dive = Deployment::reference(Profile::Intended)
        .await
        .expect("reference deployment");
    let dir = scratch(name);
    let mut child = child(CHILD, &live_vars(&dive, &dir)).spawn().expect("child starts");
    let ledger_dir = dir.join("state/ledger");
    let log = dir.join("runtime.log");
    eventually(
        "the child's fault in the ledger",
        Duration::from_millis(100),
        Duration::from_secs(60),
        || async {
            let entries = std::fs::read_dir(&ledger_dir).map(|d| d.count()).unwrap_or(0);
            let stopped = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("stop dive-hub-opa");
            if entries == 1 && stopped {
                Ok(())
            } else {
                Err(format!("{entries} ledger entries, opa stopped: {stopped}"))
            }
        },
    )
    .await
    .expect("the child applies its fault");
    let pid = child.id().expect("child pid") as libc::pid_t;
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the child exits")
        .expect("status");
    (dir, status.code())
}

fn runtime_calls(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("runtime.log")).unwrap_or_default()
}

fn ledger_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("state/ledger"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[rstest::rstest]
#[case::sigint(libc::SIGINT, 130)]
#[case::sigterm(libc::SIGTERM, 143)]
#[tokio::test]
async fn a_signal_restores_the_fault_before_exit(#[case] signal: libc::c_int, #[case] exit_code: i32) {
    let (dir, code) = interrupt_child(&format!("signal-{signal}"), signal).await;
    assert_eq!(code, Some(exit_code));
    let calls = runtime_calls(&dir);
    assert!(calls.contains("start dive-hub-opa"), "restored at exit: {calls}");
    assert_eq!(ledger_entries(&dir), 0, "the ledger is clear");
}

#[tokio::test]
async fn sigkill_leaves_the_fault_to_the_next_run_which_restores_it() {
    let (dir, code) = interrupt_child("sigkill", libc::SIGKILL).await;
    assert_eq!(code, None, "killed by the signal");
    assert!(
        !runtime_calls(&dir).contains("start dive-hub-opa"),
        "nothing could restore it at exit"
    );
    assert_eq!(ledger_entries(&dir), 1, "the fault is still in the ledger");
    let dive = Deployment::reference(Profile::Intended)
        .await
        .expect("reference deployment");
    let next = child(NEXT_RUN, &live_vars(&dive, &dir))
        .output()
        .await
        .expect("the next run runs");
    let stderr = String::from_utf8_lossy(&next.stderr);
    assert!(next.status.success(), "{stderr}");
    assert!(
        stderr.contains("ledger: restored stop opa on USA left behind by run"),
        "says what it repaired: {stderr}"
    );
    assert!(
        runtime_calls(&dir).contains("start dive-hub-opa"),
        "restored by the next run"
    );
    assert_eq!(ledger_entries(&dir), 0, "the ledger is clear");
}

#[tokio::test]
#[ignore = "a child process of the panic test, not a test of its own"]
async fn child_panics_holding_a_live_fault() {
    let d = Deployment::from_config()
        .await
        .expect("the parent gives a valid live configuration");
    let _opa = d
        .hub()
        .fault(Service::Opa, FaultKind::Stop)
        .await
        .expect("the fault applies");
    panic!("a scenario step panics while its fault is applied");
}

#[tokio::test]
async fn a_panic_restores_the_fault_as_it_unwinds() {
    let dive = Deployment::reference(Profile::Intended)
        .await
        .expect("reference deployment");
    let dir = scratch("panic");
    let run = child("child_panics_holding_a_live_fault", &live_vars(&dive, &dir))
        .output()
        .await
        .expect("the child runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "the child's test fails: {stderr}");
    assert!(stderr.contains("a scenario step panics"), "{stderr}");
    let calls = runtime_calls(&dir);
    assert!(calls.contains("stop dive-hub-opa"), "the fault was applied: {calls}");
    assert!(
        calls.contains("start dive-hub-opa"),
        "and undone while unwinding: {calls}"
    );
    assert_eq!(ledger_entries(&dir), 0, "the ledger is clear");
}

const NEXT_RUN: &str = "child_next_run_starts";

#[tokio::test]
#[ignore = "a child process of the SIGKILL test: the next run, which sweeps the ledger first"]
async fn child_next_run_starts() {
    Deployment::from_config()
        .await
        .expect("the next run reaches its target");
}

/// This test binary, running only the ignored child test `name` with `vars` as its environment.
/// Started directly rather than through `Exec`, which runs programs to completion: these tests
/// signal the child while it runs.
#[allow(clippy::disallowed_methods)]
fn child(name: &str, vars: &HashMap<String, String>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--ignored", "--exact", name, "--nocapture"])
        .envs(vars)
        .env_remove("DIVE_PROFILE")
        .env_remove("DIVE_TIME_SCALE")
        .env_remove("DIVE_REFERENCE_RUNTIME")
        .kill_on_drop(true);
    cmd
}

// ------------------------------------------------------------------ bad input at run time

/// A live configuration against a reference deployment, with `change` applied.
async fn live_config(name: &str, change: &[(&str, &str)]) -> (Deployment, Config, PathBuf) {
    let dive = Deployment::reference(Profile::Intended)
        .await
        .expect("reference deployment");
    let dir = scratch(name);
    let mut vars = live_vars(&dive, &dir);
    for (k, v) in change {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_vars(&vars).expect("a valid configuration");
    (dive, config, dir)
}

fn one_line(finding: &Finding) -> &str {
    assert!(!finding.message.contains('\n'), "one line: {}", finding.message);
    &finding.message
}

#[tokio::test]
async fn a_ca_that_does_not_match_the_server_is_refused() {
    let other_ca = fixture("tls/test-ca.pem").display().to_string();
    let (_dive, config, dir) = live_config("wrong-ca", &[("DIVE_CA_CERT", &other_ca)]).await;
    let err = Deployment::live_with(&config)
        .await
        .err()
        .expect("TLS verification fails");
    assert!(
        one_line(&err).contains("check HUB_BACKEND_URL and DIVE_CA_CERT"),
        "{err}"
    );
    assert!(
        err.message.to_lowercase().contains("certificate"),
        "names the certificate problem: {err}"
    );
    assert_eq!(runtime_calls(&dir), "", "nothing injected");
}

#[tokio::test]
async fn an_unreachable_target_is_refused() {
    let (_dive, config, dir) = live_config("unreachable", &[("HUB_BACKEND_URL", "https://127.0.0.1:9")]).await;
    let err = Deployment::live_with(&config)
        .await
        .err()
        .expect("nothing answers on port 9");
    assert!(
        one_line(&err).contains("no DIVE health API at https://127.0.0.1:9/"),
        "{err}"
    );
    assert_eq!(runtime_calls(&dir), "", "nothing injected");
}

#[tokio::test]
async fn wrong_credentials_are_refused_before_any_fault() {
    let (_dive, config, dir) = live_config("credentials", &[("DIVE_KEYCLOAK_CLIENT_SECRET", "not-the-secret")]).await;
    let live = Deployment::live_with(&config).await.expect("the target answers");
    let err = live.hub().traffic().await.err().expect("the token request is refused");
    assert!(one_line(&err).contains("answered 401"), "{err}");
    assert!(
        err.message.contains("DIVE_KEYCLOAK_CLIENT_SECRET"),
        "names the variable: {err}"
    );
    assert!(!err.message.contains("not-the-secret"), "never prints secrets: {err}");
    assert_eq!(runtime_calls(&dir), "", "nothing injected");
}

#[tokio::test]
async fn a_target_not_in_steady_state_fails_as_a_precondition() {
    let dive = Deployment::reference(Profile::Intended).await;
    let verdict = run_on(dive, "4.1-opa", async |d: &Deployment, s: &mut Scenario| {
        let _down = s.fault(d.hub(), Service::Opa, FaultKind::Stop).await?;
        s.preflight(d.hub()).await
    })
    .await;
    let failures = verdict.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        failures[0].severity,
        dive_resilience::vocab::finding::Severity::Precondition
    );
    assert!(
        one_line(failures[0]).contains("not in steady state before the fault: unhealthy (opa down"),
        "{failures:?}"
    );
}

#[tokio::test]
async fn missing_redis_server_is_named_with_both_ways_to_get_it() {
    let test_binary = std::env::current_exe().expect("test binary");
    let output = Exec::new(test_binary.display().to_string())
        .args([
            "--ignored",
            "--exact",
            "child_starts_a_reference_deployment",
            "--nocapture",
        ])
        .env("PATH", "")
        .env("DIVE_REFERENCE_RUNTIME", "local")
        .env_remove("DIVE_TARGET")
        .run()
        .await
        .expect("child runs");
    let stderr = &output.stderr;
    assert!(!output.success());
    assert!(
        stderr.contains("redis-server is not installed: install it (apt-get install -y redis-server)"),
        "{stderr}"
    );
    assert!(stderr.contains("DIVE_REFERENCE_RUNTIME=docker"), "{stderr}");
}

#[tokio::test]
#[ignore = "a child process of the missing-program test, not a test of its own"]
async fn child_starts_a_reference_deployment() {
    if let Err(finding) = Deployment::from_config().await {
        panic!("{finding}");
    }
}

// ------------------------------------------------------------------ dry run

#[tokio::test]
async fn dry_run_shows_the_plan_and_touches_nothing() {
    let dir = scratch("dry-run");
    let dive = Deployment::reference(Profile::Intended)
        .await
        .expect("reference deployment");
    let mut vars = live_vars(&dive, &dir);
    // Nothing answers here: a dry run must not even try.
    vars.insert("HUB_BACKEND_URL".to_string(), "https://127.0.0.1:9".to_string());
    vars.insert("DIVE_DRY_RUN".to_string(), "1".to_string());
    let out = child("child_runs_a_scenario", &vars)
        .output()
        .await
        .expect("child runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("on DRY RUN of live DIVE at https://127.0.0.1:9/: nothing is done to it"),
        "{stderr}"
    );
    assert!(stderr.contains("DRY RUN: fault stop opa on USA: would run"), "{stderr}");
    assert!(
        stderr.contains("stop dive-hub-opa`, verify its effect, later"),
        "{stderr}"
    );
    assert!(
        stderr.contains("probe: GET /health/detailed every 125 ms until USA opa breaker OPEN"),
        "{stderr}"
    );
    assert!(stderr.contains("(budget 3.0 s)"), "budgets are shown: {stderr}");
    assert_eq!(runtime_calls(&dir), "", "the container runtime was never called");
    assert_eq!(
        ledger_entries(&dir),
        0,
        "nothing was recorded as injected on the target"
    );
}

#[tokio::test]
#[ignore = "a child process of the dry-run test, not a test of its own"]
async fn child_runs_a_scenario() {
    let verdict = run("4.1-opa", async |d: &Deployment, s: &mut Scenario| {
        let (hub, budget) = (d.hub(), s.budget());
        s.preflight(hub).await?;
        let traffic = hub.traffic().await?.pump(TICK);
        let opa = s.fault(hub, Service::Opa, FaultKind::Stop).await?;
        s.breaker_reaches(hub, &traffic, Breaker::Opa, BreakerState::Open, budget)
            .await;
        s.restore(opa).await.map(|_| ())
    });
    verdict.await.must_pass();
}

// ------------------------------------------------------------------ fault kinds

#[rstest::rstest]
#[case::paused_opa(Service::Opa, FaultKind::Pause)]
#[case::killed_keycloak(Service::Keycloak, FaultKind::Kill)]
#[case::paused_redis(Service::CacheRedis, FaultKind::Pause)]
#[case::killed_blacklist(Service::RevocationStore, FaultKind::Kill)]
#[case::stopped_backend(Service::Backend, FaultKind::Stop)]
#[tokio::test]
async fn every_fault_kind_takes_effect_and_is_undone(#[case] service: Service, #[case] kind: FaultKind) {
    let dive = Deployment::reference(Profile::Intended)
        .await
        .expect("reference deployment");
    let hub = dive.hub();
    // `fault` returns only once the service has stopped answering its probe.
    let fault = hub.fault(service, kind).await.expect("the fault takes effect");
    let restored = fault.restore().await.expect("the service answers again");
    assert!(
        restored.took < Duration::from_secs(30),
        "restored in {:?}",
        restored.took
    );
    let healthy = eventually(
        "hub healthy again",
        Duration::from_millis(100),
        Duration::from_secs(30),
        || async {
            match hub.detailed().await {
                Ok(d) if d.status == Overall::Healthy => Ok(()),
                Ok(d) => Err(d.summary()),
                Err(e) => Err(e.to_string()),
            }
        },
    );
    healthy.await.expect("steady state after the restore");
}

/// The suite's silence is in the ledger with the line that expires it, and is expired on drop; a
/// run killed before its drop leaves the ledger line, which alone expires it (what the next run
/// does).
#[tokio::test]
async fn a_silence_is_ledgered_and_expired_on_drop_or_by_its_ledger_line() {
    let d = Deployment::reference_monitored(Profile::Intended)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    let am = &d.monitors().unwrap_or_else(|f| panic!("{f}")).alertmanager;
    let ledger = Ledger::new(&must_config().state_dir.join("silence-test").join(random_hex()));

    let held = Silences::create(am, &ledger, &Trust::Insecure, "safety")
        .await
        .expect("a silence");
    let id = held.id().to_string();
    assert_eq!(am.silence_state(&id).await.as_deref(), Ok("active"));
    assert_eq!(ledger.entries().len(), 1, "the silence is in the ledger");
    drop(held);
    assert_eq!(am.silence_state(&id).await.as_deref(), Ok("expired"));
    assert!(ledger.entries().is_empty(), "the ledger entry goes with the silence");

    let killed = Silences::create(am, &ledger, &Trust::Insecure, "safety")
        .await
        .expect("a silence");
    let id = killed.id().to_string();
    // A SIGKILL runs no drop.
    std::mem::forget(killed);
    let (_, entry) = ledger.entries().pop().expect("the silence is in the ledger");
    for line in entry.undo.expect("an undo line") {
        Exec::new(&line[0])
            .args(&line[1..])
            .must_succeed()
            .await
            .unwrap_or_else(|e| panic!("the ledger's line did not expire the silence: {e}"));
    }
    assert_eq!(am.silence_state(&id).await.as_deref(), Ok("expired"));
}
