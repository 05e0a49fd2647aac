//! Authorized traffic, the only thing that moves DIVE's breakers (contract section 3): a token,
//! resource ids from `GET /api/resources` (paged at HEAD), then one `GET /api/resources/:id` per
//! call. At HEAD a decision cached for a (user, resource) pair never reaches OPA nor its breaker,
//! so each call asks for the resource whose decision is oldest, one no longer cached where it can:
//! the tally says how many answers came from OPA, from the local fallback and from the cache. The
//! caller sets the pace (one request per `eventually` tick), which keeps the rate bounded.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, Url};

use crate::deployment::instance::{DecisionClock, Instance};
use crate::infra::http::{Http, join};
use crate::infra::os::random_u64;
use crate::infra::poll::Pace;
use crate::vocab::api::{DecidedBy, ResourceAnswer};
use crate::vocab::authz::{LONGEST_CACHE_TTL, cache_ttl};
use crate::vocab::finding::Finding;
use crate::vocab::slo::TICK;

/// One request sent and what came back.
#[derive(Debug, Clone)]
pub struct Sent {
    pub at: Instant,
    pub resource: String,
    /// `None` when nothing answered.
    pub status: Option<u16>,
    /// Who decided a 200 or 403; `None` for any other answer.
    pub decided_by: Option<DecidedBy>,
}

impl Sent {
    /// The answer was decided by the backend's local fallback instead of OPA.
    pub fn fallback(&self) -> bool {
        self.decided_by == Some(DecidedBy::LocalFallback)
    }

    /// The request went through the opa breaker: OPA answered, or the breaker failed or refused it.
    pub fn reached_opa_breaker(&self) -> bool {
        matches!(self.decided_by, Some(DecidedBy::Opa | DecidedBy::LocalFallback))
    }
}

impl fmt::Display for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by = match self.decided_by {
            Some(DecidedBy::LocalFallback) => " (local-fallback)",
            Some(DecidedBy::Cache) => " (decision cache)",
            _ => "",
        };
        match self.status {
            Some(s) => write!(f, "{s}{by}"),
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
    /// Decided by the backend's local fallback (OPA failed, or its breaker refused the call).
    pub fallback: usize,
    /// Answered from HEAD's decision cache: neither OPA nor its breaker saw these.
    pub cache_hits: usize,
    pub unauthorized: usize,
    pub not_found: usize,
    pub server_error: usize,
    pub no_answer: usize,
}

impl Tally {
    /// Requests that went through the opa breaker (decided by OPA or by the local fallback).
    pub fn through_opa_breaker(&self) -> usize {
        self.decided - self.cache_hits
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sent: {} decided (HTTP 200/403: {} by OPA, {} by local fallback, {} from the decision cache), {} x HTTP 401, {} x HTTP 404, {} x HTTP 5xx, {} unanswered",
            self.sent,
            self.decided,
            self.decided - self.fallback - self.cache_hits,
            self.fallback,
            self.cache_hits,
            self.unauthorized,
            self.not_found,
            self.server_error,
            self.no_answer
        )
    }
}

/// A resource traffic asks for, and how long DIVE's decision cache keeps a decision on it.
#[derive(Debug, Clone)]
struct Target {
    id: String,
    cached_for: Duration,
}

pub struct Traffic {
    http: Http,
    backend: Url,
    token: String,
    targets: Vec<Target>,
    decided: DecisionClock,
    next: usize,
    log: Arc<Mutex<Vec<Sent>>>,
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.decided.save();
    }
}

/// Reads the tally of a traffic that is busy elsewhere.
#[derive(Clone)]
pub struct Tallies(Arc<Mutex<Vec<Sent>>>);

/// Traffic whose requests can be counted: the evidence a wait reports when what it waited for
/// never came.
pub trait Tallied {
    /// The tally of every request sent after `since`.
    fn tally_since(&self, since: Instant) -> Tally;
}

impl Tallied for Tallies {
    fn tally_since(&self, since: Instant) -> Tally {
        tally(&self.0, since)
    }
}

impl Tallied for Pump {
    fn tally_since(&self, since: Instant) -> Tally {
        tally(&self.log, since)
    }
}

impl Tallied for Traffic {
    fn tally_since(&self, since: Instant) -> Tally {
        tally(&self.log, since)
    }
}

/// Traffic sent in the background, one request per tick, until stopped.
pub struct Pump {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Sent>>>,
    task: Option<tokio::task::JoinHandle<Traffic>>,
}

impl Pump {
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
        match s.decided_by {
            Some(DecidedBy::LocalFallback) => t.fallback += 1,
            Some(DecidedBy::Cache) => t.cache_hits += 1,
            _ => {}
        }
    }
    t
}

impl Traffic {
    /// Authorized traffic to `inst` as its configured user, over the resources that user may list:
    /// enough of them that, at this pace, the decision cache holds none by the time it comes back.
    pub async fn prepare(inst: &Instance, tick: Duration) -> Result<Traffic, Finding> {
        let token = inst.token_for(&inst.credentials.user).await?;
        let longest = LONGEST_CACHE_TTL.mul_f64(inst.time_scale);
        // Twice what one cache lifetime holds at this pace: traffic that comes right after other
        // traffic still finds as many decisions the cache does not hold.
        let wanted = (longest.as_secs_f64() / tick.as_secs_f64()).ceil() as usize * 5 / 2 + 20;
        let resources = inst.resources(&token, wanted).await?;
        let targets: Vec<Target> = resources
            .into_iter()
            .map(|r| Target {
                cached_for: r
                    .classification
                    .as_deref()
                    .map_or(LONGEST_CACHE_TTL, cache_ttl)
                    .mul_f64(inst.time_scale),
                id: r.resource_id,
            })
            .collect();
        // Earlier traffic (another scenario, another client) asked from the start of the list:
        // beginning anywhere else meets fewer of the decisions it left in the cache.
        let next = usize::try_from(random_u64()).unwrap_or(0) % targets.len().max(1);
        Ok(Traffic {
            http: inst.http().clone(),
            backend: inst.backend.clone(),
            token,
            targets,
            decided: inst.decisions.clone(),
            next,
            log: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// The next resource to ask for: in turn, skipping those whose decision the cache still holds;
    /// when every one is held, the one decided longest ago.
    fn pick(&mut self) -> usize {
        let n = self.targets.len();
        let age = |i: usize| self.decided.age(&self.targets[i].id);
        let fresh = (0..n)
            .map(|k| (self.next + k) % n)
            .find(|&i| age(i).is_none_or(|age| age >= self.targets[i].cached_for));
        let i = fresh.unwrap_or_else(|| (0..n).max_by_key(|&i| age(i)).unwrap_or(0));
        self.next = i + 1;
        i
    }

    /// Sends one request, for the resource [`Traffic::pick`] chooses.
    pub async fn send(&mut self) -> Sent {
        self.dispatch(None).await
    }

    /// Picks the next resource now and returns its request, to be awaited anywhere (the load
    /// generator has many in flight at once); what comes back is logged and kept in the decision
    /// clock as [`Traffic::send`] does. `patience` bounds the request instead of the client's
    /// default timeout.
    pub fn dispatch(&mut self, patience: Option<Duration>) -> impl Future<Output = Sent> + Send + 'static {
        let i = self.pick();
        let resource = self.targets[i].id.clone();
        let url = join(&self.backend, &format!("/api/resources/{resource}"));
        let mut request = self.http.request(Method::GET, &url).bearer_auth(&self.token);
        if let Some(patience) = patience {
            request = request.timeout(patience);
        }
        let (http, decided, log) = (self.http.clone(), self.decided.clone(), self.log.clone());
        async move {
            let at = Instant::now();
            let sent = match http.text(request).await {
                Ok((status, _, body)) => {
                    let decided = matches!(status.as_u16(), 200 | 403);
                    let decided_by = decided
                        .then(|| {
                            serde_json::from_str::<ResourceAnswer>(&body)
                                .map(|a| a.decided_by())
                                .ok()
                        })
                        .flatten();
                    Sent {
                        at,
                        resource,
                        status: Some(status.as_u16()),
                        decided_by,
                    }
                }
                Err(_) => Sent {
                    at,
                    resource,
                    status: None,
                    decided_by: None,
                },
            };
            // OPA's own decisions are cached from now; a cache hit says a decision made by someone
            // else is still held, for at most its TTL from now. A fallback is never cached.
            if matches!(sent.decided_by, Some(DecidedBy::Opa | DecidedBy::Cache)) {
                decided.decided_now(&sent.resource);
            }
            if let Ok(mut log) = log.lock() {
                log.push(sent.clone());
            }
            sent
        }
    }

    /// The tally of this traffic's requests, readable while the traffic itself is elsewhere (in
    /// a pump, under the load generator).
    pub fn tallies(&self) -> Tallies {
        Tallies(self.log.clone())
    }

    /// Every request sent so far.
    pub fn log(&self) -> Vec<Sent> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
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
                let id = &self.targets[i % self.targets.len()].id;
                let url = join(&self.backend, &format!("/api/resources/{id}"));
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
    /// Authorized traffic to `GET /api/resources/:id` as the configured user, paced at one request
    /// per scenario tick.
    pub async fn traffic(&self) -> Result<Traffic, Finding> {
        Traffic::prepare(self, TICK).await
    }
}
