//! Load under failure (phase 4.5) as data: the classes a request under load falls in, the latency
//! percentiles read from HDR histograms per phase and per second, the generator's schedule lag,
//! the routes DIVE serves that load is sent to, and the load section of a scenario's journal.
//! The generator that produces these is `infra::load`; the timeline and the summary read them
//! back from journals.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::vocab::fault::Service;
use crate::vocab::health::Breaker;

/// What became of a request, without its status code: the unit that is counted and judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Authorization answered with OPA's decision (200 or 403).
    Decided,
    /// Authorization answered by the backend's local fallback.
    Fallback,
    /// Answered from DIVE's decision cache.
    CacheHit,
    /// A route that decides nothing (a listing, liveness) answered 2xx.
    Answered,
    Unauthorized,
    NotFound,
    ServerError,
    Other,
    Timeout,
    NoAnswer,
    Dropped,
}

impl Class {
    /// Every class, in the order reports list them.
    pub const ALL: [Class; 11] = [
        Class::Decided,
        Class::Fallback,
        Class::CacheHit,
        Class::Answered,
        Class::Unauthorized,
        Class::NotFound,
        Class::ServerError,
        Class::Other,
        Class::Timeout,
        Class::NoAnswer,
        Class::Dropped,
    ];

    /// The request was answered as users want: a decision (by OPA, the local fallback or the
    /// cache; a 403 is an answer too) or a 2xx of a route that decides nothing. Everything else is
    /// a failure the user felt.
    pub fn answered_ok(self) -> bool {
        matches!(
            self,
            Class::Decided | Class::Fallback | Class::CacheHit | Class::Answered
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            Class::Decided => "decided",
            Class::Fallback => "fallback",
            Class::CacheHit => "cache hit",
            Class::Answered => "answered",
            Class::Unauthorized => "x 401",
            Class::NotFound => "x 404",
            Class::ServerError => "x 5xx",
            Class::Other => "other status",
            Class::Timeout => "timed out",
            Class::NoAnswer => "unanswered",
            Class::Dropped => "dropped",
        }
    }
}

/// How many requests fell in each class; classes that never occurred are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Counts(BTreeMap<Class, u64>);

impl Counts {
    pub fn add(&mut self, class: Class) {
        *self.0.entry(class).or_default() += 1;
    }

    pub fn get(&self, class: Class) -> u64 {
        self.0.get(&class).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Requests not answered OK (see [`Class::answered_ok`]).
    pub fn failed(&self) -> u64 {
        self.0.iter().filter(|(c, _)| !c.answered_ok()).map(|(_, n)| n).sum()
    }

    /// The classes that occurred, with their counts, in report order.
    pub fn iter(&self) -> impl Iterator<Item = (Class, u64)> + '_ {
        self.0.iter().map(|(c, n)| (*c, *n))
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no requests");
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(class, n)| format!("{n} {}", class.label()))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// The percentiles of one HDR histogram of latencies (microseconds in the journal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Requests in the histogram.
    pub count: u64,
    #[serde(rename = "p50_us", with = "micros")]
    pub p50: Duration,
    #[serde(rename = "p90_us", with = "micros")]
    pub p90: Duration,
    #[serde(rename = "p99_us", with = "micros")]
    pub p99: Duration,
    #[serde(rename = "p999_us", with = "micros")]
    pub p999: Duration,
    #[serde(rename = "max_us", with = "micros")]
    pub max: Duration,
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
            millis(self.p50),
            millis(self.p90),
            millis(self.p99),
            millis(self.p999),
            millis(self.max)
        )
    }
}

/// One phase of a scenario under load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub phase: String,
    /// Every request scheduled in the phase, dropped ones included.
    pub requests: u64,
    /// Every request sent, whatever became of it: what users waited.
    pub latency: Latency,
    /// Only the requests answered OK.
    pub ok: Latency,
    pub outcomes: Counts,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} req, {}; {}",
            self.phase, self.requests, self.latency, self.outcomes
        )
    }
}

/// One second of a run, by intended send time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// From the start of the run.
    #[serde(rename = "start_ms", with = "whole_millis")]
    pub start: Duration,
    pub requests: u64,
    /// Every request sent in the window, as in [`Summary::latency`].
    pub latency: Latency,
    pub outcomes: Counts,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} s: {} req, p50 {}, p99 {}, max {}; {}",
            self.start.as_secs(),
            self.requests,
            millis(self.latency.p50),
            millis(self.latency.p99),
            millis(self.latency.max),
            self.outcomes
        )
    }
}

/// How late the generator came to each request's turn (actual start minus due time): when it fell
/// behind its schedule and by how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lag {
    /// Scheduling steps taken: one per record, dropped requests included.
    pub steps: u64,
    #[serde(rename = "p50_us", with = "micros")]
    pub p50: Duration,
    #[serde(rename = "p99_us", with = "micros")]
    pub p99: Duration,
    #[serde(rename = "max_us", with = "micros")]
    pub max: Duration,
    /// Steps that came more than the generator's lateness threshold after their due time.
    pub late: u64,
    /// Due time of the first late request, from the start.
    #[serde(rename = "first_late_ms", with = "maybe_millis")]
    pub first_late: Option<Duration>,
}

impl Lag {
    pub fn fell_behind(&self) -> bool {
        self.late > 0
    }
}

impl fmt::Display for Lag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p50, p99, max) = (millis(self.p50), millis(self.p99), millis(self.max));
        write!(f, "schedule lag p50 {p50}, p99 {p99}, max {max}")?;
        match self.first_late {
            Some(at) => write!(
                f,
                "; fell behind: {} of {} requests started more than 1 ms late, first at {:.1} s",
                self.late,
                self.steps,
                at.as_secs_f64()
            ),
            None => write!(f, "; kept the schedule for all {} requests", self.steps),
        }
    }
}

/// A route of DIVE's backend that load is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// `GET /api/resources/:id` with a token: Keycloak's session check, MongoDB, OPA (or the
    /// local fallback), and KAS for an allowed encrypted resource. The route every dependency of
    /// phase 4.5 sits on.
    Resource,
    /// `GET /api/resources` with a token: the token and MongoDB, never OPA nor KAS.
    Listing,
    /// `GET {health}/live`: calls nothing.
    Liveness,
}

impl Route {
    pub fn label(self) -> &'static str {
        match self {
            Route::Resource => "GET /api/resources/:id",
            Route::Listing => "GET /api/resources",
            Route::Liveness => "GET {health}/live",
        }
    }

    /// A route of the same deployment that does not need `service` (contract sections 2, 3, 8),
    /// so its latency must not move while `service` is down: the listing for OPA, KAS and the
    /// cache Redis; liveness for Keycloak (every token's session check) and MongoDB (the listing
    /// reads it).
    pub fn unrelated_to(service: Service) -> Route {
        match service {
            Service::Opa | Service::Kas | Service::CacheRedis => Route::Listing,
            _ => Route::Liveness,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Whether requests still answer while `service` is down: DIVE falls back on a local clearance
/// check without OPA, on the locally verified token without Keycloak, on no key without KAS, and
/// the cache Redis is not on the request path (contract section 8). Without MongoDB there is no
/// resource to answer with: 500.
pub fn has_fallback(service: Service) -> bool {
    service != Service::Mongodb
}

/// The breaker DIVE puts in front of `service` on the request path, if any (contract section 3):
/// the cache Redis has none.
pub fn breaker_in_front_of(service: Service) -> Option<Breaker> {
    match service {
        Service::Opa => Some(Breaker::Opa),
        Service::Keycloak => Some(Breaker::Keycloak),
        Service::Mongodb => Some(Breaker::Mongodb),
        Service::Kas => Some(Breaker::Kas),
        _ => None,
    }
}

/// How long DIVE's backend waits for `service` on a request before it gives up, at time scale 1:
/// OPA's decision call and KAS's key release 5 s, Keycloak's session check 2 s, a MongoDB
/// connection from the pool 2 s, a Redis command 5 s (contract section 2). A request that waits
/// on a dependency takes at least this long; one that does not, far less.
pub fn client_timeout(service: Service) -> Duration {
    Duration::from_secs(match service {
        Service::Keycloak | Service::Mongodb => 2,
        _ => 5,
    })
}

/// [`client_timeout`] as a target running at `time_scale` applies it: scaled, but never under
/// one second, as the reference floors its scaled timeouts (below a second, a fresh loopback
/// connection on a loaded two-core machine would read as a dependency down). At DIVE's own
/// timers (time scale 1) it is DIVE's timeout.
pub fn client_timeout_at(service: Service, time_scale: f64) -> Duration {
    client_timeout(service).mul_f64(time_scale).max(Duration::from_secs(1))
}

/// When a phase of a load began, in milliseconds since the scenario started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseMark {
    pub phase: String,
    pub at_ms: u64,
}

/// One stream of load as the journal keeps it: what was sent and at what rate, the HDR summary
/// of each phase, every one-second window and the generator's schedule lag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// What the stream stands for: `affected` (needs the faulted dependency) or `unrelated`.
    pub stream: String,
    pub route: Route,
    /// Requests per second, as scheduled.
    pub rate: f64,
    /// When the schedule started, in milliseconds since the scenario started.
    pub start_ms: u64,
    pub marks: Vec<PhaseMark>,
    /// One summary per phase, in the order the phases began.
    pub phases: Vec<Summary>,
    pub overall: Summary,
    /// One per second of intended send time from `start_ms`, empty seconds included.
    pub windows: Vec<Window>,
    pub lag: Lag,
}

impl LoadReport {
    /// The summary of `phase`, if the stream had one.
    pub fn phase(&self, phase: &str) -> Option<&Summary> {
        self.phases.iter().find(|s| s.phase == phase)
    }

    /// Where the last window ends, in milliseconds since the scenario started.
    pub fn end_ms(&self) -> u64 {
        self.start_ms + 1_000 * self.windows.len() as u64
    }
}

/// A latency as the load reports print it: microseconds below a millisecond (schedule lag lives
/// there), one decimal below 10 ms, whole milliseconds above.
pub fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if d < Duration::from_millis(1) {
        format!("{} µs", d.as_micros())
    } else if d < Duration::from_millis(10) {
        format!("{ms:.1} ms").replace(".0 ms", " ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Durations as whole microseconds.
mod micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_micros)
    }
}

/// Durations as whole milliseconds.
mod whole_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Optional durations as whole milliseconds, or null.
mod maybe_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(d).map(|ms| ms.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_print_at_a_useful_resolution() {
        assert_eq!(millis(Duration::from_micros(420)), "420 µs");
        assert_eq!(millis(Duration::from_micros(3_000)), "3 ms");
        assert_eq!(millis(Duration::from_micros(3_240)), "3.2 ms");
        assert_eq!(millis(Duration::from_millis(1_000)), "1000 ms");
    }

    #[test]
    fn a_load_report_round_trips_through_the_journal() {
        let mut outcomes = Counts::default();
        for class in [Class::Fallback, Class::Decided, Class::Timeout] {
            outcomes.add(class);
        }
        let latency = Latency {
            count: 3,
            p50: Duration::from_micros(1_500),
            p90: Duration::from_millis(40),
            p99: Duration::from_millis(900),
            p999: Duration::from_millis(900),
            max: Duration::from_millis(901),
        };
        let summary = Summary {
            phase: "fault".to_string(),
            requests: 3,
            latency,
            ok: latency,
            outcomes: outcomes.clone(),
        };
        let report = LoadReport {
            stream: "affected".to_string(),
            route: Route::Resource,
            rate: 12.0,
            start_ms: 2_500,
            marks: vec![PhaseMark {
                phase: "fault".to_string(),
                at_ms: 3_100,
            }],
            phases: vec![summary.clone()],
            overall: summary,
            windows: vec![Window {
                start: Duration::from_secs(1),
                requests: 3,
                latency,
                outcomes,
            }],
            lag: Lag {
                steps: 3,
                p50: Duration::from_micros(80),
                p99: Duration::from_micros(400),
                max: Duration::from_millis(2),
                late: 1,
                first_late: Some(Duration::from_millis(700)),
            },
        };
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["phases"][0]["outcomes"]["timeout"], 1);
        assert_eq!(json["windows"][0]["start_ms"], 1_000);
        assert_eq!(json["phases"][0]["latency"]["p50_us"], 1_500);
        assert_eq!(json["lag"]["first_late_ms"], 700);
        let back: LoadReport = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, report);
        assert_eq!(back.end_ms(), 3_500);
        assert_eq!(back.phase("fault").map(|s| s.outcomes.failed()), Some(1));
    }

    #[test]
    fn the_unrelated_route_calls_nothing_the_fault_took_away() {
        assert_eq!(Route::unrelated_to(Service::Opa), Route::Listing);
        assert_eq!(Route::unrelated_to(Service::CacheRedis), Route::Listing);
        assert_eq!(Route::unrelated_to(Service::Keycloak), Route::Liveness);
        assert_eq!(Route::unrelated_to(Service::Mongodb), Route::Liveness);
        assert!(has_fallback(Service::Opa) && !has_fallback(Service::Mongodb));
        assert_eq!(client_timeout(Service::Opa), Duration::from_secs(5));
        assert_eq!(client_timeout_at(Service::Opa, 1.0), Duration::from_secs(5));
        assert_eq!(client_timeout_at(Service::Opa, 0.1), Duration::from_secs(1), "floored");
        assert_eq!(client_timeout_at(Service::Keycloak, 0.8), Duration::from_millis(1600));
        assert_eq!(breaker_in_front_of(Service::Kas), Some(Breaker::Kas));
        assert_eq!(breaker_in_front_of(Service::CacheRedis), None);
    }
}
