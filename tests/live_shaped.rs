//! The live-shaped reference as a service: `scripts/live-shaped` starts this (ignored) test, which
//! poses as the live DIVE named by `DIVE_LIVE_SHAPED`, writes the environment of a live run
//! against it to `<state dir>/live-shaped.env`, and serves until `<state dir>/live-shaped.stop`
//! appears. The four phases then run against it with `DIVE_TARGET=live`, as against any DIVE.

use std::time::Duration;

use dive_resilience::infra::config::must_config;
use dive_resilience::infra::poll::holds_for;
use dive_resilience::reference::live_shaped::{Form, LiveShaped};

#[tokio::test]
#[ignore = "a service for scripts/live-shaped, not a test of its own"]
async fn serve_a_live_shaped_dive() {
    let config = must_config();
    let name = config.live_shaped.as_deref().unwrap_or("head-intended");
    let scale = config.reference_scale();
    let form = Form::named(name, scale)
        .unwrap_or_else(|| panic!("DIVE_LIVE_SHAPED: `{name}` is not a form; use one of {:?}", Form::NAMES));
    let dir = config.state_dir.clone();
    let shaped = LiveShaped::start(form, &["TST", "FRA", "DEU"], scale, &dir)
        .await
        .unwrap_or_else(|e| panic!("the live-shaped DIVE did not start: {e}"));
    let vars = shaped.vars(&dir.join("run"));
    let mut lines: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
    lines.sort();
    let env = dir.join("live-shaped.env");
    std::fs::write(&env, lines.join("\n") + "\n").expect("the environment file is written");
    eprintln!("serving live-shaped {name}: {}", env.display());
    let stop = dir.join("live-shaped.stop");
    let served = holds_for(
        "serving",
        Duration::from_millis(500),
        Duration::from_secs(4 * 3600),
        async || {
            if stop.exists() {
                Err("asked to stop".to_string())
            } else {
                Ok("serving".to_string())
            }
        },
    )
    .await;
    eprintln!("live-shaped {name} served for {served:?}");
    for call in shaped.calls() {
        eprintln!("ran: {call}");
    }
}
