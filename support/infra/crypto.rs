//! The suite's one cryptography library, ring, for TLS and for JWTs.
//!
//! rustls (the HTTPS client, the reference deployment's HTTPS servers, the Docker client) and
//! jsonwebtoken (the reference Keycloak's RS256 tokens and the backends that verify them) each
//! need a crypto provider. Both get ring here, so a build compiles one crypto library and no C
//! toolchain project: their default, aws-lc-rs, was the largest single item of a first build.
//! ring signs and verifies RSA but cannot generate RSA keys; the reference realms sign with
//! test-only keys from a fixed pool instead (`reference/keys.rs` says why that is also faster).
//!
//! [`install`] must run before the first TLS configuration, HTTPS client or JWT of a process;
//! every constructor that makes one calls it.

use std::sync::Once;

use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::jwk::ThumbprintHash;
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature::{self as sig, RsaKeyPair, RsaPublicKeyComponents};
use ring::{digest, hmac, rand};

/// Makes ring the process's provider for rustls and jsonwebtoken. Cheap and idempotent.
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Either fails only when something installed a provider first; that one then serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let _ = JWT.install_default();
    });
}

/// jsonwebtoken on ring, for the algorithms the suite signs or verifies with: the RSA family
/// (RS*, PS*) and HMAC (HS*, which a forger may try). ES* and EdDSA are refused.
static JWT: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    jwk_utils: JwkUtils {
        extract_rsa_public_key_components: rsa_public_components,
        extract_ec_public_key_coordinates: |_, _| Err(ErrorKind::InvalidEcdsaKey.into()),
        compute_digest: thumbprint,
    },
};

#[derive(Clone, Copy)]
enum Scheme {
    Hmac(hmac::Algorithm),
    Rsa(&'static dyn sig::RsaEncoding, &'static sig::RsaParameters),
}

fn scheme(alg: Algorithm) -> Result<Scheme, Error> {
    Ok(match alg {
        Algorithm::HS256 => Scheme::Hmac(hmac::HMAC_SHA256),
        Algorithm::HS384 => Scheme::Hmac(hmac::HMAC_SHA384),
        Algorithm::HS512 => Scheme::Hmac(hmac::HMAC_SHA512),
        Algorithm::RS256 => Scheme::Rsa(&sig::RSA_PKCS1_SHA256, &sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => Scheme::Rsa(&sig::RSA_PKCS1_SHA384, &sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => Scheme::Rsa(&sig::RSA_PKCS1_SHA512, &sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => Scheme::Rsa(&sig::RSA_PSS_SHA256, &sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => Scheme::Rsa(&sig::RSA_PSS_SHA384, &sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => Scheme::Rsa(&sig::RSA_PSS_SHA512, &sig::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA => return Err(ErrorKind::InvalidAlgorithm.into()),
    })
}

struct Sign {
    alg: Algorithm,
    scheme: Scheme,
    key: EncodingKey,
}

impl Signer<Vec<u8>> for Sign {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        match self.scheme {
            Scheme::Hmac(alg) => {
                let secret = self.key.try_get_hmac_secret().map_err(signature::Error::from_source)?;
                Ok(hmac::sign(&hmac::Key::new(alg, secret), msg).as_ref().to_vec())
            }
            Scheme::Rsa(encoding, _) => {
                // The key holds PKCS#1 DER (EncodingKey::from_rsa_pem/der).
                let pair = RsaKeyPair::from_der(self.key.inner()).map_err(|_| signature::Error::new())?;
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(encoding, &rand::SystemRandom::new(), msg, &mut out)
                    .map_err(|_| signature::Error::new())?;
                Ok(out)
            }
        }
    }
}

impl JwtSigner for Sign {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

struct Verify {
    alg: Algorithm,
    scheme: Scheme,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for Verify {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let valid = match (self.scheme, self.key.kind()) {
            (Scheme::Hmac(alg), _) => {
                let secret = self.key.try_get_hmac_secret().map_err(signature::Error::from_source)?;
                hmac::verify(&hmac::Key::new(alg, secret), msg, signature).is_ok()
            }
            (Scheme::Rsa(_, params), DecodingKeyKind::SecretOrDer(der)) => {
                sig::UnparsedPublicKey::new(params, der).verify(msg, signature).is_ok()
            }
            (Scheme::Rsa(_, params), DecodingKeyKind::RsaModulusExponent { n, e }) => {
                RsaPublicKeyComponents { n, e }.verify(params, msg, signature).is_ok()
            }
        };
        if valid { Ok(()) } else { Err(signature::Error::new()) }
    }
}

impl JwtVerifier for Verify {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    if key.family() != alg.family() {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let scheme = scheme(*alg)?;
    Ok(Box::new(Sign {
        alg: *alg,
        scheme,
        key: key.clone(),
    }))
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    if key.family() != alg.family() {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let scheme = scheme(*alg)?;
    Ok(Box::new(Verify {
        alg: *alg,
        scheme,
        key: key.clone(),
    }))
}

/// `n` and `e` of an RSA private key in PKCS#1 DER, for its JWK.
fn rsa_public_components(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let pair = RsaKeyPair::from_der(der).map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?;
    let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((public.n, public.e))
}

fn thumbprint(data: &[u8], hash: ThumbprintHash) -> Vec<u8> {
    let alg = match hash {
        ThumbprintHash::SHA256 => &digest::SHA256,
        ThumbprintHash::SHA384 => &digest::SHA384,
        ThumbprintHash::SHA512 => &digest::SHA512,
    };
    digest::digest(alg, data).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{Header, Validation, decode, encode};
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Claims {
        sub: String,
        exp: u64,
    }

    fn claims() -> Claims {
        Claims {
            sub: "testuser-usa-1".to_string(),
            exp: jsonwebtoken::get_current_timestamp() + 60,
        }
    }

    /// Two test-only keys of the reference realms' pool.
    fn rsa_keys() -> (EncodingKey, EncodingKey) {
        use rustls_pki_types::PrivatePkcs1KeyDer;
        use rustls_pki_types::pem::PemObject;
        let pem = include_bytes!("../../fixtures/keys/test-only-rsa-2048.pem");
        let mut keys = PrivatePkcs1KeyDer::pem_slice_iter(pem)
            .map(|der| EncodingKey::from_rsa_der(der.expect("a PKCS#1 key").secret_pkcs1_der()));
        (keys.next().expect("a key"), keys.next().expect("a second key"))
    }

    #[test]
    fn rsa_tokens_verify_against_their_jwk_and_no_other() {
        install();
        let (key, other) = rsa_keys();
        for alg in [Algorithm::RS256, Algorithm::RS512, Algorithm::PS256] {
            let jwk = Jwk::from_encoding_key(&key, alg).expect("a JWK");
            let token = encode(&Header::new(alg), &claims(), &key).expect("signed");
            let decoding = DecodingKey::from_jwk(&jwk).expect("a decoding key");
            let data = decode::<Claims>(&token, &decoding, &Validation::new(alg)).expect("verifies");
            assert_eq!(data.claims.sub, "testuser-usa-1");

            let forged = encode(&Header::new(alg), &claims(), &other).expect("signed");
            let err = decode::<Claims>(&forged, &decoding, &Validation::new(alg)).expect_err("forged");
            assert_eq!(err.kind(), &ErrorKind::InvalidSignature);
        }
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        install();
        let (key, _) = rsa_keys();
        let jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("a JWK");
        let token = encode(&Header::new(Algorithm::RS256), &claims(), &key).expect("signed");
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = encode(
            &Header::new(Algorithm::RS256),
            &Claims {
                sub: "testuser-usa-4".to_string(),
                ..claims()
            },
            &key,
        )
        .expect("signed");
        parts[1] = other.split('.').nth(1).expect("a payload");
        let decoding = DecodingKey::from_jwk(&jwk).expect("a decoding key");
        let err =
            decode::<Claims>(&parts.join("."), &decoding, &Validation::new(Algorithm::RS256)).expect_err("tampered");
        assert_eq!(err.kind(), &ErrorKind::InvalidSignature);
    }

    #[test]
    fn hmac_tokens_round_trip() {
        install();
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"s"),
        )
        .expect("signed");
        let valid = decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"s"),
            &Validation::new(Algorithm::HS256),
        );
        assert!(valid.is_ok());
        let wrong = decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"t"),
            &Validation::new(Algorithm::HS256),
        );
        assert_eq!(wrong.expect_err("wrong secret").kind(), &ErrorKind::InvalidSignature);
    }

    #[test]
    fn jwk_thumbprints_are_sha256() {
        assert_eq!(
            thumbprint(b"abc", ThumbprintHash::SHA256)[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "SHA-256 of abc"
        );
    }
}
