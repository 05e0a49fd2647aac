//! Authorized traffic, the only thing that moves DIVE's breakers (contract section 3): a token,
//! the resource ids from `GET /api/resources`, then one `GET /api/resources/:id` per call, each
//! with the next id so a decision cache cannot hide a call from the OPA breaker. The caller sets
//! the pace (one request per `eventually` tick), which keeps the rate bounded.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, Url};

use crate::deployment::instance::Instance;
use crate::infra::http::{Http, join};
use crate::infra::poll::Pace;
use crate::vocab::api::ResourceAnswer;
use crate::vocab::finding::Finding;

/// One request sent and what came back.
#[derive(Debug, Clone)]
pub struct Sent {
    pub at: Instant,
    pub resource: String,
    /// `None` when nothing answered.
    pub status: Option<u16>,
    /// The answer was decided by the backend's local fallback instead of OPA.
    pub fallback: bool,
}

impl fmt::Display for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "{s}{}", if self.fallback { " (local-fallback)" } else { "" }),
            None => f.write_str("no answer"),
        }
    }
}

/// Counts of answers, by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub sent: usize,
    /// 200 or 403: authorization answered.
    pub decided: usize,
    pub fallback: usize,
    pub unauthorized: usize,
    pub not_found: usize,
    pub server_error: usize,
    pub no_answer: usize,
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sent: {} decided (200/403, {} by local fallback), {} x 401, {} x 404, {} x 5xx, {} unanswered",
            self.sent,
            self.decided,
            self.fallback,
            self.unauthorized,
            self.not_found,
            self.server_error,
            self.no_answer
        )
    }
}

pub struct Traffic {
    http: Http,
    backend: Url,
    token: String,
    ids: Vec<String>,
    next: usize,
    log: Arc<Mutex<Vec<Sent>>>,
}

/// Traffic sent in the background, one request per tick, until stopped.
pub struct Pump {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Sent>>>,
    task: Option<tokio::task::JoinHandle<Traffic>>,
}

impl Pump {
    pub fn tally_since(&self, since: Instant) -> Tally {
        tally(&self.log, since)
    }

    /// Stops sending and hands the traffic back.
    pub async fn stop(mut self) -> Result<Traffic, String> {
        self.stop.store(true, Ordering::Relaxed);
        let task = self.task.take().ok_or("traffic already stopped")?;
        task.await.map_err(|e| format!("traffic task: {e}"))
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn tally(log: &Mutex<Vec<Sent>>, since: Instant) -> Tally {
    let mut t = Tally::default();
    let Ok(log) = log.lock() else { return t };
    for s in log.iter().filter(|s| s.at >= since) {
        t.sent += 1;
        match s.status {
            Some(200) | Some(403) => t.decided += 1,
            Some(401) => t.unauthorized += 1,
            Some(404) => t.not_found += 1,
            Some(c) if c >= 500 => t.server_error += 1,
            Some(_) => {}
            None => t.no_answer += 1,
        }
        if s.fallback {
            t.fallback += 1;
        }
    }
    t
}

impl Traffic {
    /// Authorized traffic to `inst` as its configured user, over the resources that user may list.
    pub async fn prepare(inst: &Instance) -> Result<Traffic, Finding> {
        let token = inst.token_for(&inst.credentials.user).await?;
        let ids = inst.resource_ids(&token).await?;
        Ok(Traffic {
            http: inst.http().clone(),
            backend: inst.backend.clone(),
            token,
            ids,
            next: 0,
            log: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Sends one request for the next resource id.
    pub async fn send(&mut self) -> Sent {
        let resource = self.ids[self.next % self.ids.len()].clone();
        self.next += 1;
        let url = join(&self.backend, &format!("/api/resources/{resource}"));
        let request = self.http.request(Method::GET, &url).bearer_auth(&self.token);
        let at = Instant::now();
        let sent = match self.http.text(request).await {
            Ok((status, _, body)) => Sent {
                at,
                resource,
                status: Some(status.as_u16()),
                fallback: serde_json::from_str::<ResourceAnswer>(&body).is_ok_and(|a| a.local_fallback()),
            },
            Err(_) => Sent {
                at,
                resource,
                status: None,
                fallback: false,
            },
        };
        if let Ok(mut log) = self.log.lock() {
            log.push(sent.clone());
        }
        sent
    }

    /// Every request sent so far.
    pub fn log(&self) -> Vec<Sent> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The tally of every request sent after `since`.
    pub fn tally_since(&self, since: Instant) -> Tally {
        tally(&self.log, since)
    }

    /// Sends one request per `tick` in the background until the pump is stopped.
    pub fn pump(mut self, tick: Duration) -> Pump {
        let stop = Arc::new(AtomicBool::new(false));
        let log = self.log.clone();
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut pace = Pace::new(tick);
            while !flag.load(Ordering::Relaxed) {
                self.send().await;
                pace.next().await;
            }
            self
        });
        Pump {
            stop,
            log,
            task: Some(task),
        }
    }

    /// Sends `n` requests at once, each allowed to wait `patience` for its answer: against a frozen
    /// MongoDB they hold their pool connections (4.3-pool). Dropping the result lets go.
    pub fn hold(&self, n: usize, patience: Duration) -> HeldRequests {
        let tasks = (0..n)
            .map(|i| {
                let url = join(
                    &self.backend,
                    &format!("/api/resources/{}", self.ids[i % self.ids.len()]),
                );
                let request = self
                    .http
                    .request(Method::GET, &url)
                    .bearer_auth(&self.token)
                    .timeout(patience);
                let http = self.http.clone();
                tokio::spawn(async move {
                    let _ = http.text(request).await;
                })
            })
            .collect();
        HeldRequests(tasks)
    }
}

/// Requests held open by [`Traffic::hold`]; dropping them lets go.
pub struct HeldRequests(Vec<tokio::task::JoinHandle<()>>);

impl Drop for HeldRequests {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Instance {
    /// Authorized traffic to `GET /api/resources/:id` as the configured user.
    pub async fn traffic(&self) -> Result<Traffic, Finding> {
        Traffic::prepare(self).await
    }
}
