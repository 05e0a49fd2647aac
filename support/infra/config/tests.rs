//! Every bad value is refused with one line naming the variable; good ones read as documented.

use super::*;

fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_vars(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

fn fails_on(pairs: &[(&str, &str)], var: &str, says: &str) {
    refused(cfg(pairs), var, says);
}

fn refused(result: Result<Config, ConfigError>, var: &str, says: &str) {
    let err = result.expect_err("bad configuration");
    assert_eq!(err.var, var, "{err}");
    let line = err.to_string();
    assert!(line.contains(says), "{line}");
    assert!(!line.contains('\n'), "one line: {line}");
}

/// A valid live target (the fake DIVE checkout and the test CA), changed by `extra`; an empty
/// value unsets a variable.
fn live(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let fixture = |name: &str| Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
    let mut vars: HashMap<String, String> = [
        ("DIVE_TARGET", "live".to_string()),
        ("DIVE_ROOT", fixture("fake-dive").display().to_string()),
        ("DIVE_CA_CERT", fixture("tls/test-ca.pem").display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_vars(&vars)
}

#[test]
fn defaults_are_the_intended_reference_at_one_tenth() {
    let c = cfg(&[]).expect("empty environment is valid");
    assert_eq!(c.profile(), Some(Profile::Intended));
    assert_eq!(c.time_scale, 0.1);
}

#[test]
fn unknown_target_and_profile_are_refused() {
    fails_on(
        &[("DIVE_TARGET", "staging")],
        "DIVE_TARGET",
        "use reference (the default) or live",
    );
    fails_on(
        &[("DIVE_PROFILE", "v16")],
        "DIVE_PROFILE",
        "use intended, dive-v15a or dive-head",
    );
}

#[rstest::rstest]
#[case("0")]
#[case("-1")]
#[case("1.5")]
#[case("fast")]
fn time_scale_out_of_range_is_refused(#[case] bad: &str) {
    fails_on(
        &[("DIVE_TIME_SCALE", bad)],
        "DIVE_TIME_SCALE",
        "is not a number in (0, 1]",
    );
}

#[test]
fn time_scale_one_runs_dives_real_timers() {
    assert_eq!(cfg(&[("DIVE_TIME_SCALE", "1")]).map(|c| c.time_scale), Ok(1.0));
}

#[test]
fn live_needs_a_dive_checkout() {
    fails_on(&[("DIVE_TARGET", "live")], "DIVE_ROOT", "point it at the DIVE checkout");
    fails_on(
        &[("DIVE_TARGET", "live"), ("DIVE_ROOT", "/nonexistent")],
        "DIVE_ROOT",
        "has no ./dive",
    );
}

#[test]
fn live_refuses_reference_only_variables() {
    refused(
        live(&[("DIVE_PROFILE", "dive-head")]),
        "DIVE_PROFILE",
        "reference target only",
    );
    let scaled = live(&[("DIVE_TIME_SCALE", "0.1")]).expect("a live DIVE may run shortened timers");
    assert_eq!(scaled.time_scale, 0.1);
    assert_eq!(
        live(&[]).map(|c| c.time_scale).ok(),
        Some(1.0),
        "DIVE's own timers by default"
    );
}

#[test]
fn urls_must_be_urls_and_loopback_unless_allowed() {
    refused(
        live(&[("HUB_BACKEND_URL", "localhost:4000")]),
        "HUB_BACKEND_URL",
        "not http(s)",
    );
    refused(
        live(&[("HUB_BACKEND_URL", "https//nohost")]),
        "HUB_BACKEND_URL",
        "is not a URL",
    );
    let remote = ("HUB_KEYCLOAK_URL", "https://192.0.2.10:8443");
    refused(live(&[remote]), "HUB_KEYCLOAK_URL", "DIVE_ALLOW_REMOTE=1");
    assert!(live(&[remote, ("DIVE_ALLOW_REMOTE", "1")]).is_ok());
    assert!(live(&[]).is_ok(), "localhost defaults are loopback");
}

#[test]
fn ca_bundle_must_exist_and_hold_a_certificate() {
    refused(
        live(&[("DIVE_CA_CERT", "/nonexistent/rootCA.pem")]),
        "DIVE_CA_CERT",
        "cannot read",
    );
    let not_pem = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("Cargo.toml")
        .display()
        .to_string();
    refused(
        live(&[("DIVE_CA_CERT", &not_pem)]),
        "DIVE_CA_CERT",
        "holds no PEM certificate",
    );
}

#[test]
fn spokes_must_be_known_codes() {
    fails_on(
        &[("DIVE_SPOKES", "TST,XYZ")],
        "DIVE_SPOKES",
        "`XYZ` is not a code DIVE knows (NATO, partner, test or ISO 3166 alpha-3)",
    );
    fails_on(
        &[("DIVE_SPOKES", "FRAN")],
        "DIVE_SPOKES",
        "`FRAN` is not a code DIVE knows",
    );
    fails_on(&[("DIVE_SPOKES", "usa")], "DIVE_SPOKES", "`usa` is the hub");
    fails_on(&[("DIVE_SPOKES", "FRA,fra")], "DIVE_SPOKES", "names `FRA` twice");
    fails_on(&[("DIVE_SPOKES", " , ")], "DIVE_SPOKES", "lists no spoke");
    assert_eq!(
        cfg(&[("DIVE_SPOKES", "fra, deu")]).map(|c| c.spokes),
        Ok(vec!["FRA".to_string(), "DEU".to_string()])
    );
}

#[test]
fn spokes_may_be_any_code_dive_knows() {
    assert_eq!(
        cfg(&[("DIVE_SPOKES", "alb,Nzl,SEC,bra,twn")]).map(|c| c.spokes),
        Ok(["ALB", "NZL", "SEC", "BRA", "TWN"].map(String::from).to_vec())
    );
}

#[test]
fn all_spokes_is_every_nato_spoke_on_the_reference_and_found_on_a_live_target() {
    let spokes = cfg(&[("DIVE_SPOKES", "all")]).map(|c| c.spokes).expect("valid");
    assert_eq!(spokes.len(), 31);
    assert_eq!((spokes[0].as_str(), spokes[30].as_str()), ("ALB", "GBR"));
    let c = live(&[("DIVE_SPOKES", "ALL")]).expect("valid live configuration");
    let Target::Live(live) = &c.target else { panic!("live") };
    // None named: every code DIVE knows is a candidate, kept when its container runs.
    assert!(c.spokes.is_empty() && live.discover_spokes);
    assert_eq!(live.spokes.len(), 208);
}

#[test]
fn live_spoke_urls_follow_the_port_table() {
    let c = live(&[("DIVE_SPOKES", "DEU,tst,CHE")]).expect("valid live configuration");
    let Target::Live(live) = &c.target else { panic!("live") };
    let backends: Vec<_> = live
        .spokes
        .iter()
        .map(|s| (s.code.as_str(), s.backend.as_str()))
        .collect();
    assert_eq!(
        backends,
        [
            ("DEU", "https://localhost:4011/"), // not the plan's 4008, which is EST
            ("TST", "https://localhost:4200/"),
            ("CHE", "https://localhost:4088/"),
        ]
    );
}

#[test]
fn live_spokes_that_clash_on_host_ports_are_refused() {
    refused(
        live(&[("DIVE_SPOKES", "EST,FRA,SVN")]),
        "DIVE_SPOKES",
        "EST and SVN both bind host port 8451 (EST keycloak https, SVN opa): one host cannot run that; leave out a spoke",
    );
    refused(
        live(&[("DIVE_SPOKES", "MEX,AUT")]),
        "DIVE_SPOKES",
        "MEX and AUT both bind host ports 3114 (frontend), 4114 (backend)",
    );
    refused(
        live(&[("DIVE_SPOKES", "HRV")]),
        "DIVE_SPOKES",
        "USA and HRV both bind host port 8085 (USA kas, HRV keycloak http)",
    );
    refused(
        live(&[("DIVE_SPOKES", "BRA")]),
        "DIVE_SPOKES",
        "USA and BRA both bind host port 9093 (USA alertmanager, BRA kas)",
    );
    refused(
        live(&[("DIVE_SPOKES", "BIH")]),
        "DIVE_SPOKES",
        "BIH binds host port 9091 (opa, kas) twice",
    );
}

#[test]
fn reference_spokes_may_share_dives_host_ports() {
    // The reference binds ephemeral ports, so DIVE's clashes do not reach it.
    assert!(cfg(&[("DIVE_SPOKES", "EST,SVN,MEX,AUT,HRV")]).is_ok());
}

#[test]
fn insecure_needs_no_ca_and_secrets_do_not_print() {
    let c = live(&[
        ("DIVE_CA_CERT", ""),
        ("DIVE_TLS_INSECURE", "1"),
        ("DIVE_TEST_PASSWORD", "hunter2"),
    ])
    .expect("insecure is allowed when asked");
    let Target::Live(live) = &c.target else { panic!("live") };
    assert_eq!(live.trust, Trust::Insecure);
    assert!(!format!("{c:?}").contains("hunter2"));
    fails_on(&[("DIVE_TLS_INSECURE", "yes")], "DIVE_TLS_INSECURE", "is not a flag");
}

#[test]
fn chaos_takes_a_seed_or_a_schedule_and_runs_live_only_when_asked() {
    let c = cfg(&[]).expect("valid");
    assert_eq!(c.chaos, ChaosConfig::default());
    let seeded = cfg(&[("DIVE_CHAOS_SEED", "42"), ("DIVE_CHAOS", "1")]).expect("valid");
    assert_eq!((seeded.chaos.seed, seeded.chaos.live), (Some(42), true));
    fails_on(
        &[("DIVE_CHAOS_SEED", "forty")],
        "DIVE_CHAOS_SEED",
        "use the number a chaos run printed",
    );
    fails_on(&[("DIVE_CHAOS", "yes")], "DIVE_CHAOS", "use 1 or 0");
    fails_on(
        &[("DIVE_CHAOS_SCHEDULE", "/nonexistent.json")],
        "DIVE_CHAOS_SCHEDULE",
        "is not a file",
    );
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let file = file.display().to_string();
    let replay = cfg(&[("DIVE_CHAOS_SCHEDULE", &file)]).expect("valid");
    assert_eq!(replay.chaos.schedule.as_deref(), Some(Path::new(&file)));
    fails_on(
        &[("DIVE_CHAOS_SCHEDULE", &file), ("DIVE_CHAOS_SEED", "7")],
        "DIVE_CHAOS_SCHEDULE",
        "set one of them",
    );
}

#[test]
fn the_load_rate_defaults_under_the_cap_with_its_polls() {
    let c = cfg(&[]).expect("valid");
    assert_eq!((c.load_rate, c.load_max_rate), (DEFAULT_LOAD_RATE, LOAD_RATE_CAP));
    assert!(c.load_rate + 1.0 / LOAD_TICK.as_secs_f64() <= c.load_max_rate);
    assert_eq!(
        live(&[]).map(|c| c.load_rate).ok(),
        Some(DEFAULT_LOAD_RATE),
        "the same on a live target"
    );
}

#[rstest::rstest]
#[case("fast")]
#[case("0")]
#[case("-3")]
#[case("NaN")]
#[case("2")]
fn a_load_rate_that_is_not_a_rate_is_refused(#[case] bad: &str) {
    fails_on(
        &[("DIVE_LOAD_RATE", bad)],
        "DIVE_LOAD_RATE",
        "is not a number of requests per second",
    );
}

#[test]
fn the_cap_holds_unless_explicitly_lifted() {
    fails_on(
        &[("DIVE_LOAD_RATE", "20")],
        "DIVE_LOAD_RATE",
        "20 requests/s plus 4 health polls/s is over the cap of 20/s a shared deployment gets; lower it, or lift the cap deliberately with DIVE_LOAD_MAX_RATE",
    );
    refused(
        live(&[("DIVE_LOAD_RATE", "200")]),
        "DIVE_LOAD_RATE",
        "over the cap of 20/s",
    );
    let lifted = cfg(&[("DIVE_LOAD_RATE", "200"), ("DIVE_LOAD_MAX_RATE", "250")]).expect("lifted on purpose");
    assert_eq!((lifted.load_rate, lifted.load_max_rate), (200.0, 250.0));
    fails_on(
        &[("DIVE_LOAD_RATE", "300"), ("DIVE_LOAD_MAX_RATE", "250")],
        "DIVE_LOAD_RATE",
        "over the cap of 250/s a shared deployment gets; lower it or raise DIVE_LOAD_MAX_RATE",
    );
    assert_eq!(
        cfg(&[("DIVE_LOAD_RATE", "8")]).map(|c| c.load_rate),
        Ok(8.0),
        "lower is always allowed"
    );
}

#[rstest::rstest]
#[case("many")]
#[case("0")]
#[case("5000")]
fn a_cap_that_is_not_a_rate_the_generator_holds_is_refused(#[case] bad: &str) {
    fails_on(
        &[("DIVE_LOAD_MAX_RATE", bad)],
        "DIVE_LOAD_MAX_RATE",
        "is not a number of requests per second in (0, 1000]",
    );
}

#[test]
fn a_run_id_names_one_folder_inside_the_state_folder() {
    assert_eq!(
        cfg(&[("DIVE_RUN_ID", "live-2026")]).map(|c| c.run_id),
        Ok("live-2026".to_string())
    );
    fails_on(&[("DIVE_RUN_ID", "../elsewhere")], "DIVE_RUN_ID", "names a folder");
    fails_on(&[("DIVE_RUN_ID", "..")], "DIVE_RUN_ID", "names a folder");
}

#[test]
fn a_configuration_file_sets_what_the_environment_does_not() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dive-live.example.toml");
    let example = example.display().to_string();
    let c = live(&[
        ("DIVE_CONFIG", &example),
        ("HUB_KEYCLOAK_URL", "https://127.0.0.1:9443"),
    ])
    .expect("the example, its checkout and CA overridden by variables");
    let Target::Live(live) = &c.target else { panic!("live") };
    assert_eq!(live.hub_backend.as_str(), "https://localhost:4000/");
    // The environment wins over the file.
    assert_eq!(live.hub_keycloak.as_str(), "https://127.0.0.1:9443/");
    assert!(live.silence_alerts);
    assert_eq!(c.spokes, ["DEU", "FRA"]);
    let backends: Vec<_> = live
        .spokes
        .iter()
        .map(|s| (s.code.as_str(), s.backend.as_str()))
        .collect();
    assert_eq!(
        backends,
        [("DEU", "https://localhost:4011/"), ("FRA", "https://localhost:4010/")]
    );
    assert_eq!(c.revoke_user, "testuser-usa-5");

    let dir = std::env::temp_dir().join(format!("dive-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp folder");
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "[hub]\nbackend_url = \"https://localhost:4000\"\n").expect("written");
    let typo = typo.display().to_string();
    fails_on(
        &[("DIVE_CONFIG", &typo)],
        "DIVE_CONFIG",
        "unknown key `hub.backend_url`",
    );
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "target = \n").expect("written");
    let broken = broken.display().to_string();
    fails_on(&[("DIVE_CONFIG", &broken)], "DIVE_CONFIG", "is not valid TOML");
    fails_on(
        &[("DIVE_CONFIG", "/nonexistent/dive.toml")],
        "DIVE_CONFIG",
        "cannot read",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
