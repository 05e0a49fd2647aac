//! Why a tail under load was over its bound, in DIVE's terms. A reference defect is named only
//! on its own evidence: requests that took as long as the failed dependency's client timeout
//! while nothing should have waited for it.

use std::time::Duration;

use crate::vocab::fault::Service;
use crate::vocab::finding::{Defect, Finding};
use crate::vocab::health::{Breaker, BreakerState, BreakerStats};
use crate::vocab::load::{Class, Counts, Route, Summary, millis};
use crate::vocab::units::secs;

/// The affected requests did not fail fast once the breaker was OPEN (or, where no breaker stands
/// in front of `service`, while it was down). R9 on its evidence: the breaker OPEN and rejecting
/// at the end of the phase, and half the requests taking at least `service`'s client `timeout`:
/// the backend knew the dependency was down and waited for it all the same. `control` is the p50
/// of the other route over the fault: when it too is past the timeout, the whole instance was
/// slow (a busy machine), and no defect is named.
#[allow(clippy::too_many_arguments)]
pub fn slow_once_open(
    service: Service,
    breaker: Option<Breaker>,
    phase: &Summary,
    baseline_p99: Duration,
    bound: Duration,
    stats: Option<BreakerStats>,
    timeout: Duration,
    control: Duration,
) -> Finding {
    let tail = format!(
        "p99 {} over the bound of {} (baseline p99 {}); {phase}",
        millis(phase.latency.p99),
        millis(bound),
        millis(baseline_p99)
    );
    let Some(breaker) = breaker else {
        return Finding::fail(format!("requests slowed while {service} was down: {tail}"));
    };
    let rejecting = stats.filter(|s| s.state == BreakerState::Open && s.reject_count > 0);
    match rejecting {
        Some(stats) if phase.latency.p50 >= timeout && control < timeout => Finding::fail(format!(
            "once the {breaker} breaker was OPEN, requests still waited for {service}: half took {} or more, as long as its client timeout of {}, while the breaker rejected every call ({stats}) and the route that does not need {service} answered within {} at p50; {tail}",
            millis(phase.latency.p50),
            secs(timeout),
            millis(control)
        ))
        .defect(Defect::R9),
        _ if control >= timeout => Finding::fail(format!(
            "once the {breaker} breaker was OPEN, requests did not fail fast, but the route that does not need {service} was as slow (p50 {}): the instance, or the machine, was slow, not only the path through {service}; {tail}",
            millis(control)
        )),
        _ => Finding::fail(format!(
            "once the {breaker} breaker was OPEN, requests did not fail fast: {tail}"
        )),
    }
}

/// Requests failed while `service`, which has a fallback, was down. R1 on its evidence: with
/// only the cache Redis down, authorization answered 5xx.
pub fn damage(service: Service, counts: &Counts) -> Finding {
    let (total, failed) = (counts.total(), counts.failed());
    let never = counts.get(Class::Timeout) + counts.get(Class::NoAnswer) + counts.get(Class::Dropped);
    let finding = Finding::fail(format!(
        "{failed} of {total} requests failed while {service} was down ({counts}; {never} never answered): DIVE has a fallback for it, so none may"
    ));
    if service == Service::CacheRedis && counts.get(Class::ServerError) > 0 {
        return finding.defect(Defect::R1);
    }
    finding
}

/// A route that does not need `service` slowed or failed while it was down. R10 on its
/// evidence: half its requests took at least `service`'s client `timeout`, so they waited on the
/// failed dependency although they never call it, while the affected route (`control`, its p50
/// over the fault) answered faster than that timeout: the wait was the route's, not the
/// machine's.
pub fn collateral(
    service: Service,
    route: Route,
    phase: &Summary,
    baseline_p99: Duration,
    bound: Duration,
    timeout: Duration,
    control: Duration,
) -> Finding {
    let seen = format!(
        "p99 {} against the bound of {} (baseline p99 {}); {phase}",
        millis(phase.latency.p99),
        millis(bound),
        millis(baseline_p99)
    );
    if phase.latency.p50 >= timeout && control < timeout {
        return Finding::fail(format!(
            "{route}, which never calls {service}, waited for it while it was down: half its requests took {} or more, as long as {service}'s client timeout of {}, while the route that does need {service} answered within {} at p50; {seen}",
            millis(phase.latency.p50),
            secs(timeout),
            millis(control)
        ))
        .defect(Defect::R10);
    }
    Finding::fail(format!(
        "{route}, which does not need {service}, lost its baseline while {service} was down: {seen}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::load::Latency;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A phase of 100 requests answered by `class`, half within `p50`, the slowest at `p99`.
    fn phase(p50: u64, p99: u64, class: Class) -> Summary {
        let mut outcomes = Counts::default();
        (0..100).for_each(|_| outcomes.add(class));
        let latency = Latency {
            count: 100,
            p50: ms(p50),
            p90: ms(p99),
            p99: ms(p99),
            p999: ms(p99),
            max: ms(p99),
        };
        Summary {
            phase: "open".to_string(),
            requests: 100,
            latency,
            ok: latency,
            outcomes,
        }
    }

    fn stats(state: BreakerState, reject_count: u64) -> Option<BreakerStats> {
        Some(BreakerStats {
            state,
            failures: 5,
            reject_count,
        })
    }

    #[test]
    fn r9_needs_an_open_rejecting_breaker_and_waits_as_long_as_the_timeout() {
        let slow = phase(1_004, 1_020, Class::Fallback);
        let named = slow_once_open(
            Service::Opa,
            Some(Breaker::Opa),
            &slow,
            ms(9),
            ms(218),
            stats(BreakerState::Open, 40),
            ms(500),
            ms(20),
        );
        assert_eq!(named.defect, Some(Defect::R9), "{named}");
        assert!(named.message.contains("half took 1004 ms or more"), "{named}");
        let tag = |p: &Summary, s, timeout| {
            slow_once_open(Service::Opa, Some(Breaker::Opa), p, ms(9), ms(218), s, timeout, ms(20)).defect
        };
        let everything_slow = slow_once_open(
            Service::Opa,
            Some(Breaker::Opa),
            &slow,
            ms(9),
            ms(218),
            stats(BreakerState::Open, 40),
            ms(500),
            ms(900),
        );
        assert_eq!(
            everything_slow.defect, None,
            "the other route was as slow: {everything_slow}"
        );
        assert!(everything_slow.message.contains("was as slow"), "{everything_slow}");
        assert_eq!(tag(&slow, stats(BreakerState::HalfOpen, 40), ms(500)), None, "not OPEN");
        assert_eq!(
            tag(&slow, stats(BreakerState::Open, 0), ms(500)),
            None,
            "rejecting nothing"
        );
        assert_eq!(tag(&slow, None, ms(500)), None, "no breaker read");
        let busy = phase(120, 400, Class::Fallback);
        assert_eq!(
            tag(&busy, stats(BreakerState::Open, 40), ms(500)),
            None,
            "slow, but nowhere near the timeout"
        );
        let unbreakered = slow_once_open(Service::CacheRedis, None, &slow, ms(9), ms(218), None, ms(500), ms(20));
        assert_eq!(unbreakered.defect, None);
    }

    #[test]
    fn r1_needs_5xx_with_only_the_cache_redis_down() {
        let mut errors = Counts::default();
        (0..3).for_each(|_| errors.add(Class::ServerError));
        (0..7).for_each(|_| errors.add(Class::Decided));
        let named = damage(Service::CacheRedis, &errors);
        assert_eq!(named.defect, Some(Defect::R1), "{named}");
        assert!(
            named
                .message
                .starts_with("3 of 10 requests failed while cache redis was down"),
            "{named}"
        );
        assert_eq!(
            damage(Service::Opa, &errors).defect,
            None,
            "5xx with OPA down are not R1"
        );
        let mut timeouts = Counts::default();
        timeouts.add(Class::Timeout);
        assert_eq!(damage(Service::CacheRedis, &timeouts).defect, None, "no 5xx, no R1");
    }

    #[test]
    fn r10_needs_the_unrelated_route_to_wait_as_long_as_the_timeout() {
        let waited = collateral(
            Service::Opa,
            Route::Listing,
            &phase(1_001, 1_010, Class::Answered),
            ms(8),
            ms(216),
            ms(500),
            ms(12),
        );
        assert_eq!(waited.defect, Some(Defect::R10), "{waited}");
        let machine = collateral(
            Service::Opa,
            Route::Listing,
            &phase(1_001, 1_010, Class::Answered),
            ms(8),
            ms(216),
            ms(500),
            ms(800),
        );
        assert_eq!(machine.defect, None, "the affected route was as slow: {machine}");
        assert!(
            waited.message.starts_with("GET /api/resources, which never calls opa"),
            "{waited}"
        );
        let busy = collateral(
            Service::Opa,
            Route::Listing,
            &phase(90, 300, Class::Answered),
            ms(8),
            ms(216),
            ms(500),
            ms(12),
        );
        assert_eq!(busy.defect, None, "slow, not waiting on OPA: {busy}");
        let failing = collateral(
            Service::Mongodb,
            Route::Liveness,
            &phase(3, 5, Class::ServerError),
            ms(4),
            ms(208),
            ms(200),
            ms(3),
        );
        assert_eq!(failing.defect, None, "failures without the wait are not R10: {failing}");
    }
}
