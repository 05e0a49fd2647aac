//! The RSA keys the reference Keycloak realms sign their tokens with, and keys that no realm
//! trusts, for the tokens the suite forges (phase 5.2, through [`crate::infra::throwaway`]). The
//! pool lives in the infrastructure layer because both the reference deployment (realm keys) and
//! the scenarios (forgeries, on any target) take keys from it.
//!
//! They come from a fixed pool of test-only RSA-2048 keys (`fixtures/keys/`, valid nowhere)
//! instead of being generated per test. Every test is its own process under nextest, and a
//! deployment needs one key per realm (the hub and up to 31 spokes): generating an RSA-2048 key
//! takes 60 to 300 ms of CPU even optimised (median 126 ms with aws-lc-rs on a 2-core machine),
//! up to 4 s per test for 32 realms, where taking one from the pool costs well under a
//! millisecond. It also keeps the build lean: ring, the suite's one crypto library
//! ([`crate::infra::crypto`]), signs and verifies RSA but cannot generate RSA keys, and a second
//! library only for key generation would cost more to compile than it is worth.

use std::sync::LazyLock;

use jsonwebtoken::EncodingKey;
use rustls_pki_types::PrivatePkcs1KeyDer;
use rustls_pki_types::pem::PemObject;

use crate::infra::crypto;

/// Keys `0..REALM_KEYS` of the pool belong to realms; the rest are never served by any realm.
pub const REALM_KEYS: usize = 32;

const POOL_PEM: &[u8] = include_bytes!("../../fixtures/keys/test-only-rsa-2048.pem");

/// The pool as PKCS#1 DER, in file order.
static POOL: LazyLock<Result<Vec<Vec<u8>>, String>> = LazyLock::new(|| {
    PrivatePkcs1KeyDer::pem_slice_iter(POOL_PEM)
        .map(|key| key.map(|k| k.secret_pkcs1_der().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("test RSA keys in fixtures/keys/: {e}"))
});

fn pooled(index: usize, what: &str) -> Result<EncodingKey, String> {
    crypto::install();
    let pool = POOL.as_ref().map_err(Clone::clone)?;
    pool.get(index)
        .map(|der| EncodingKey::from_rsa_der(der))
        .ok_or_else(|| format!("no test RSA key for {what}: fixtures/keys/ holds {} keys", pool.len()))
}

/// The signing key of realm `n` of a deployment (0 is the hub's). Realms of one deployment get
/// distinct keys; deployments in different processes share them, harmlessly: each trusts only
/// the JWKS of its own realms.
pub fn realm_key(n: usize) -> Result<EncodingKey, String> {
    if n >= REALM_KEYS {
        return Err(format!(
            "no test RSA key for realm {n}: the pool has keys for {REALM_KEYS} realms"
        ));
    }
    pooled(n, &format!("realm {n}"))
}

/// How many keys of the pool no realm ever serves.
pub fn untrusted_keys() -> usize {
    POOL.as_ref().map_or(0, |pool| pool.len().saturating_sub(REALM_KEYS))
}

/// A key that no reference realm ever serves, for forging tokens: `n` picks one of several, so a
/// test can forge with keys that differ from each other too.
pub fn untrusted_key(n: usize) -> Result<EncodingKey, String> {
    pooled(REALM_KEYS + n, &format!("forgery {n}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use jsonwebtoken::Algorithm;
    use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};

    use super::*;

    fn modulus(key: &EncodingKey) -> String {
        match Jwk::from_encoding_key(key, Algorithm::RS256).expect("a JWK").algorithm {
            AlgorithmParameters::RSA(rsa) => rsa.n,
            other => panic!("not an RSA key: {other:?}"),
        }
    }

    #[test]
    fn the_pool_holds_distinct_rsa_2048_keys_for_every_realm_and_some_forgers() {
        let mut moduli = BTreeSet::new();
        for n in 0..REALM_KEYS {
            moduli.insert(modulus(&realm_key(n).expect("a realm key")));
        }
        for n in 0..4 {
            moduli.insert(modulus(&untrusted_key(n).expect("a forger's key")));
        }
        assert_eq!(moduli.len(), REALM_KEYS + 4, "every key differs");
        // 2048 bits: 256 bytes, 342 characters of unpadded base64url.
        assert!(moduli.iter().all(|n| n.len() == 342), "RSA-2048");
        assert!(realm_key(REALM_KEYS).is_err());
        assert!(untrusted_keys() >= 4, "keys for forgeries: {}", untrusted_keys());
        assert!(untrusted_key(untrusted_keys()).is_err());
    }
}
