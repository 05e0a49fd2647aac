//! DIVE's classifications and the decision cache of HEAD (contract section 6): which decisions it
//! keeps, and for how long, so that traffic meant for OPA asks for decisions the cache does not hold.

use std::time::Duration;

/// DIVE's classification ladder, lowest first; test user `-n` holds level `n - 1`.
pub const CLASSIFICATIONS: [&str; 5] = ["UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET", "TOP_SECRET"];

/// The rank of a classification on the ladder; unknown ones rank above everything.
pub fn rank(classification: &str) -> usize {
    CLASSIFICATIONS
        .iter()
        .position(|c| *c == classification)
        .unwrap_or(usize::MAX)
}

/// How long HEAD's decision cache keeps a decision on a resource of `classification`, at time
/// scale 1 (`decision-cache.service.ts`): 120 s UNCLASSIFIED, 60 CONFIDENTIAL, 30 SECRET,
/// 15 TOP_SECRET, their NATO and COSMIC names alike; anything else (RESTRICTED included) 60 s.
pub fn cache_ttl(classification: &str) -> Duration {
    let normalised = classification.trim().to_uppercase().replace([' ', '-'], "_");
    let seconds = match normalised.as_str() {
        "UNCLASSIFIED" | "NATO_UNCLASSIFIED" => 120,
        "NATO_RESTRICTED" => 90,
        "CONFIDENTIAL" | "NATO_CONFIDENTIAL" => 60,
        "SECRET" | "NATO_SECRET" => 30,
        "TOP_SECRET" | "COSMIC_TOP_SECRET" => 15,
        _ => 60,
    };
    Duration::from_secs(seconds)
}

/// The longest a decision stays cached, whatever the resource.
pub const LONGEST_CACHE_TTL: Duration = Duration::from_secs(120);

/// How long HEAD's introspection cache keeps an answer of Keycloak (both commits, D11).
pub const INTROSPECTION_CACHE_TTL: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_follow_the_classification_as_dive_writes_it() {
        assert_eq!(cache_ttl("UNCLASSIFIED"), Duration::from_secs(120));
        assert_eq!(cache_ttl("nato-secret"), Duration::from_secs(30));
        assert_eq!(
            cache_ttl("RESTRICTED"),
            Duration::from_secs(60),
            "no entry: DIVE's default"
        );
        assert_eq!(cache_ttl("TOP SECRET"), Duration::from_secs(15));
        assert!(rank("SECRET") > rank("CONFIDENTIAL") && rank("BOGUS") == usize::MAX);
    }
}
