//! The suite's own signing key: an RSA key no realm serves or trusts, picked once per process,
//! with which the token-trust phase (5.2) signs the tokens it forges. A forgery signed by it is
//! valid nowhere, and nothing the suite sends is signed by a key anyone else holds.
//!
//! ring, the suite's one crypto library ([`crate::infra::crypto`]), cannot generate RSA keys, so
//! the key is one of the test-only keys of the pool ([`crate::infra::keys`]) that no realm ever
//! serves, picked at random per process so that runs differ; its `kid` is made per process too.

use std::sync::OnceLock;

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey};

use crate::infra::keys;
use crate::infra::os::{random_hex, random_u64};

/// The key and its public JWK (`kid` `dive-resilience-<random>`).
pub fn throwaway_key() -> Result<&'static (EncodingKey, Jwk), String> {
    static KEY: OnceLock<Result<(EncodingKey, Jwk), String>> = OnceLock::new();
    KEY.get_or_init(|| {
        let count = u64::try_from(keys::untrusted_keys()).unwrap_or(0);
        if count == 0 {
            return Err("the test key pool has no key that no realm serves".to_string());
        }
        let n = usize::try_from(random_u64() % count).unwrap_or(0);
        let key = keys::untrusted_key(n)?;
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).map_err(|e| format!("JWK: {e}"))?;
        jwk.common.key_id = Some(format!("dive-resilience-{}", random_hex()));
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok((key, jwk))
    })
    .as_ref()
    .map_err(Clone::clone)
}
#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation, decode};

    use super::*;
    use crate::vocab::tokens::{self, Claimed};

    fn genuine() -> String {
        let (key, jwk) = throwaway_key().expect("a key");
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = jwk.common.key_id.clone();
        let claims = serde_json::json!({
            "iss": "https://localhost:8443/realms/dive-v3-broker-usa",
            "jti": "j1", "uniqueID": "testuser-usa-1", "clearance": "UNCLASSIFIED",
            "countryOfAffiliation": "USA", "exp": 4_102_444_800u64,
        });
        jsonwebtoken::encode(&header, &claims, key).expect("signed")
    }

    fn who() -> Claimed {
        Claimed {
            unique_id: "forged".to_string(),
            clearance: "TOP_SECRET".to_string(),
            country: "USA".to_string(),
            jti: "forged-jti".to_string(),
        }
    }

    fn verifies(token: &str, jwk: &Jwk) -> bool {
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_aud = false;
        decode::<serde_json::Value>(token, &DecodingKey::from_jwk(jwk).expect("a key"), &v).is_ok()
    }

    #[test]
    fn the_throwaway_key_is_no_realms() {
        let (_, jwk) = throwaway_key().expect("a key");
        let modulus = |jwk: &Jwk| match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) => rsa.n.clone(),
            other => panic!("not an RSA key: {other:?}"),
        };
        for n in 0..keys::REALM_KEYS {
            let realm =
                Jwk::from_encoding_key(&keys::realm_key(n).expect("a realm key"), Algorithm::RS256).expect("a JWK");
            assert_ne!(modulus(&realm), modulus(jwk), "realm key {n}");
        }
    }

    #[test]
    fn crafted_tokens_are_signed_by_the_throwaway_key_and_keep_or_break_the_prefix_as_meant() {
        let (key, jwk) = throwaway_key().expect("a key");
        let genuine = genuine();
        let forged = tokens::forged(&genuine, &who(), key).expect("forged");
        assert_eq!(
            tokens::segments(&forged).unwrap().header,
            tokens::segments(&genuine).unwrap().header
        );
        assert!(verifies(&forged, jwk), "signed by the throwaway key");
        let reordered = tokens::reordered(&genuine, &who(), key).expect("reordered");
        assert_ne!(tokens::cache_prefix(&reordered), tokens::cache_prefix(&genuine));
        assert_eq!(tokens::header(&reordered), tokens::header(&genuine), "the same members");
        assert!(verifies(&reordered, jwk));
        assert_eq!(
            tokens::header(&reordered).unwrap().get("kid"),
            tokens::header(&genuine).unwrap().get("kid")
        );
        let foreign =
            tokens::foreign(&genuine, "https://untrusted.invalid/realms/x", &who(), key, jwk).expect("foreign");
        let carried: Jwk = serde_json::from_value(tokens::header(&foreign).unwrap()["jwk"].clone()).expect("a JWK");
        assert!(verifies(&foreign, &carried), "verifies with the key it carries");
        assert_eq!(
            tokens::text(&tokens::claims(&foreign).unwrap(), "iss"),
            Some("https://untrusted.invalid/realms/x")
        );
    }
}
