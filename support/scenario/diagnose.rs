//! Turning "it timed out" into a finding in DIVE's terms: did the fault take effect, did the
//! traffic reach the dependency, did the breaker count anything at all.

use crate::deployment::traffic::Tally;
use crate::vocab::finding::{Defect, Finding};
use crate::vocab::health::{Breaker, BreakerStats, Detailed, Probe};

/// What `detailed` says about the dependency behind `breaker`.
pub fn dependency_status(detailed: &Detailed, breaker: Breaker) -> Option<Probe> {
    let s = detailed.services.as_ref()?;
    Some(match breaker {
        Breaker::Opa => s.opa.status,
        Breaker::Keycloak => s.keycloak.status,
        Breaker::Mongodb => s.mongodb.status,
        Breaker::Kas => s.kas.as_ref()?.status,
    })
}

/// Why `breaker` did not open although its dependency was faulted and traffic flowed.
pub fn breaker_did_not_open(
    breaker: Breaker,
    last: Option<BreakerStats>,
    dependency: Option<Probe>,
    traffic: Tally,
) -> Finding {
    if traffic.sent == 0 {
        return Finding::fail(format!(
            "no traffic reached the backend, so the {breaker} breaker was never exercised"
        ));
    }
    if traffic.unauthorized == traffic.sent {
        return Finding::fail(format!(
            "every request got 401 ({traffic}), so {breaker} was never called: the token is not accepted"
        ));
    }
    if traffic.not_found == traffic.sent {
        return Finding::fail(format!(
            "every request got 404 ({traffic}): unknown resource ids never reach {breaker}"
        ));
    }
    if dependency.is_some_and(|p| p != Probe::Down) {
        return Finding::fail(format!(
            "the fault never took effect: the backend still reports {breaker} {dependency:?} while it should be down"
        ));
    }
    let Some(stats) = last else {
        return Finding::fail(format!("the health API reported no breaker stats ({traffic})"));
    };
    if stats.failures == 0 {
        let finding = Finding::fail(format!(
            "{breaker} breaker stayed {stats} while {breaker} was down and traffic flowed ({traffic}): no request path calls it through its breaker"
        ));
        // DIVE wires only the opa breaker (D1); an unwired opa breaker is reference defect R3.
        return finding.defect(if breaker == Breaker::Opa {
            Defect::R3
        } else {
            Defect::D1
        });
    }
    Finding::fail(format!(
        "{breaker} breaker counted failures but did not open: {stats} ({traffic})"
    ))
}
