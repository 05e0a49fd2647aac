//! Federation: a spoke's heartbeats to its hub, and the hub's view of its spokes.

use super::*;

/// A spoke heartbeats its hub every 30 s, as DIVE's spokes do.
pub(super) async fn send_heartbeats(backend: Weak<Backend>) {
    let (period, hub) = match backend.upgrade() {
        Some(b) => match &b.cfg.hub {
            Some(hub) => (
                Duration::from_secs(30).mul_f64(b.cfg.time_scale),
                join(hub, "/api/federation/heartbeat"),
            ),
            None => return,
        },
        None => return,
    };
    let mut every = tokio::time::interval(period);
    loop {
        every.tick().await;
        let Some(b) = backend.upgrade() else { return };
        let beat = json!({ "instanceCode": b.cfg.code });
        // A missed heartbeat is what the hub's federation health is for: nothing to do here.
        let _ = b
            .client
            .post(hub.clone())
            .json(&beat)
            .timeout(b.timeout(5000))
            .send()
            .await;
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Heartbeat {
    pub(super) instance_code: String,
}

pub(super) async fn heartbeat(State(b): State<Arc<Backend>>, Json(h): Json<Heartbeat>) -> Response {
    let silence = silence(&b);
    if let Ok(mut beats) = b.heartbeats.lock() {
        let last = beats.entry(h.instance_code.to_uppercase()).or_insert_with(Instant::now);
        // R18: a spoke once marked unhealthy stays so, whatever it sends.
        let marked = last.elapsed() > silence;
        if !(b.cfg.behaviour.unhealthy_spokes_stick && marked) {
            *last = Instant::now();
        }
    }
    Json(json!({ "success": true })).into_response()
}

/// How long a spoke may stay silent before the hub lists it unhealthy: 90 s.
fn silence(b: &Backend) -> Duration {
    Duration::from_secs(90).mul_f64(b.cfg.time_scale)
}

/// `GET /api/federation/status`: the hub's registry, the hub first, then its registered spokes.
pub(super) async fn federation_status(State(b): State<Arc<Backend>>) -> Response {
    let instances: Vec<_> = std::iter::once(&b.cfg.code)
        .chain(&b.cfg.registered_spokes)
        .map(|code| json!({ "code": code.to_uppercase(), "status": "approved" }))
        .collect();
    Json(json!({ "instances": instances })).into_response()
}

/// `GET /api/federation/health`: a spoke is unhealthy after 90 s without a heartbeat.
pub(super) async fn federation_health(State(b): State<Arc<Backend>>) -> Response {
    let silence = silence(&b);
    let beats = b.heartbeats.lock().map(|h| h.clone()).unwrap_or_default();
    let mut unhealthy: Vec<_> = beats
        .iter()
        .filter(|(_, at)| !b.cfg.behaviour.heartbeats_ignored && at.elapsed() > silence)
        .map(|(code, at)| {
            json!({
                "spokeId": format!("spoke-{}", code.to_lowercase()),
                "instanceCode": code,
                "lastHeartbeat": format!("{:.1} s ago", at.elapsed().as_secs_f64()),
            })
        })
        .collect();
    unhealthy.sort_by_key(|v| v["instanceCode"].as_str().map(str::to_string));
    Json(json!({ "healthy": unhealthy.is_empty(), "unhealthySpokes": unhealthy, "totalSpokes": beats.len() }))
        .into_response()
}
