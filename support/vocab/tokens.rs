//! JSON Web Tokens as text: their three base64url segments, their header and claims read without
//! any check, and the tokens the token-trust phase (5.2) crafts from a genuine one. Crafting is
//! string surgery plus one signature with a key the caller supplies (the suite's throwaway key),
//! so every crafted token is made per run and is valid nowhere.
//!
//! DIVE caches Keycloak's introspection answer under the token's first 16 characters and its
//! issuer (D11). Those 16 characters are the start of the encoded header, the same for every
//! token of a realm, so what a crafted token keeps of the genuine header decides which cache entry
//! it meets: [`forged`] keeps the genuine header byte for byte, [`reordered`] says the same in a
//! different order and so starts differently.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value};

/// How many leading characters of a token DIVE's introspection cache keys on (D11).
pub const CACHE_PREFIX_LEN: usize = 16;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding (RFC 7515, section 2).
pub fn b64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Decodes base64url, padded or not.
pub fn from_b64url(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c)
            .ok_or_else(|| format!("not base64url: {:?}", char::from(c)))?;
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// The three segments of a compact JWS: encoded header, encoded payload, signature (which may
/// be empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments<'a> {
    pub header: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
}

pub fn segments(token: &str) -> Result<Segments<'_>, String> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => Ok(Segments {
            header,
            payload,
            signature,
        }),
        _ => Err("a JWT has three segments separated by dots".to_string()),
    }
}

fn object(segment: &str, what: &str) -> Result<Map<String, Value>, String> {
    let bytes = from_b64url(segment).map_err(|e| format!("{what}: {e}"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(format!("{what} is not a JSON object")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// The header, decoded and not checked.
pub fn header(token: &str) -> Result<Map<String, Value>, String> {
    object(segments(token)?.header, "JWT header")
}

/// The claims, decoded and not checked.
pub fn claims(token: &str) -> Result<Map<String, Value>, String> {
    object(segments(token)?.payload, "JWT claims")
}

/// A string member of a header or claims object.
pub fn text<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    object.get(name).and_then(Value::as_str)
}

/// The characters DIVE's introspection cache keys on (with the issuer).
pub fn cache_prefix(token: &str) -> &str {
    token.get(..CACHE_PREFIX_LEN).unwrap_or(token)
}

/// Who a crafted token claims to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// DIVE's `uniqueID` (and the token's `sub`, `preferred_username`).
    pub unique_id: String,
    pub clearance: String,
    pub country: String,
    /// A `jti` no genuine token has.
    pub jti: String,
}

/// The genuine claims with the identity replaced by `who`; expiry and issuer kept.
fn claiming(genuine: &str, who: &Claimed) -> Result<Map<String, Value>, String> {
    let mut claims = claims(genuine)?;
    for (name, value) in [
        ("uniqueID", &who.unique_id),
        ("sub", &who.unique_id),
        ("preferred_username", &who.unique_id),
        ("clearance", &who.clearance),
        ("countryOfAffiliation", &who.country),
        ("jti", &who.jti),
    ] {
        claims.insert(name.to_string(), Value::String(value.clone()));
    }
    Ok(claims)
}

fn encode_json(value: &Map<String, Value>) -> String {
    b64url(Value::Object(value.clone()).to_string().as_bytes())
}

/// `header.payload.signature`, signed RS256 with `key`.
fn signed(header: &str, payload: &str, key: &EncodingKey) -> Result<String, String> {
    let input = format!("{header}.{payload}");
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), key, Algorithm::RS256)
        .map_err(|e| format!("signing a crafted token: {e}"))?;
    Ok(format!("{input}.{signature}"))
}

/// A forgery: the genuine token's header byte for byte (so its first 16 characters are the
/// realm's) and its issuer, the identity `who`, signed by `key`, which no realm trusts.
pub fn forged(genuine: &str, who: &Claimed, key: &EncodingKey) -> Result<String, String> {
    let header = segments(genuine)?.header;
    signed(header, &encode_json(&claiming(genuine, who)?), key)
}

/// The same forgery with the genuine header's members reordered (another member first): it says
/// the same thing but its first 16 characters differ, so no cache entry of a genuine token answers
/// for it.
pub fn reordered(genuine: &str, who: &Claimed, key: &EncodingKey) -> Result<String, String> {
    let original = segments(genuine)?.header;
    // Written out by hand: a JSON map may sort its keys, and the order is the point here.
    let members: Vec<String> = header(genuine)?
        .into_iter()
        .map(|(name, value)| format!("{}:{value}", Value::String(name)))
        .collect();
    let encoded = (0..members.len())
        .map(|first| {
            let mut order = members.clone();
            order.rotate_left(first);
            b64url(format!("{{{}}}", order.join(",")).as_bytes())
        })
        .find(|h| h.get(..CACHE_PREFIX_LEN) != original.get(..CACHE_PREFIX_LEN))
        .ok_or_else(|| "no order of the genuine header's members starts differently".to_string())?;
    signed(&encoded, &encode_json(&claiming(genuine, who)?), key)
}

/// An unsigned token (`alg: none`, empty signature) claiming `who`, with the genuine issuer.
pub fn alg_none(genuine: &str, who: &Claimed) -> Result<String, String> {
    let mut header = Map::new();
    header.insert("alg".to_string(), Value::String("none".to_string()));
    header.insert("typ".to_string(), Value::String("JWT".to_string()));
    Ok(format!(
        "{}.{}.",
        encode_json(&header),
        encode_json(&claiming(genuine, who)?)
    ))
}

/// The genuine token with its signature cut off: header and claims untouched.
pub fn signature_cut(genuine: &str) -> Result<String, String> {
    let s = segments(genuine)?;
    Ok(format!("{}.{}.", s.header, s.payload))
}

/// A token of an issuer nobody trusts: `issuer` as `iss`, the identity `who`, signed by `key`,
/// whose public half `jwk` it carries in its header (so it verifies, for whoever takes a token's
/// word for its own key).
pub fn foreign(genuine: &str, issuer: &str, who: &Claimed, key: &EncodingKey, jwk: &Jwk) -> Result<String, String> {
    let mut header = Map::new();
    header.insert("alg".to_string(), Value::String("RS256".to_string()));
    header.insert("typ".to_string(), Value::String("JWT".to_string()));
    if let Some(kid) = &jwk.common.key_id {
        header.insert("kid".to_string(), Value::String(kid.clone()));
    }
    let public = serde_json::to_value(jwk).map_err(|e| format!("JWK: {e}"))?;
    header.insert("jwk".to_string(), public);
    let mut claims = claiming(genuine, who)?;
    claims.insert("iss".to_string(), Value::String(issuer.to_string()));
    signed(&encode_json(&header), &encode_json(&claims), key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_every_length() {
        for n in 0..40u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37).wrapping_add(n)).collect();
            assert_eq!(from_b64url(&b64url(&bytes)).expect("decodes"), bytes, "{n} bytes");
        }
        assert_eq!(b64url(b"{\"alg\":\"RS256\","), "eyJhbGciOiJSUzI1NiIs");
        assert_eq!(
            from_b64url("eyJhbGciOiJub25lIn0=").expect("padded"),
            b"{\"alg\":\"none\"}"
        );
        assert!(from_b64url("a+b").is_err(), "not the URL alphabet");
    }

    /// A token shaped like Keycloak's (its header serialised as Keycloak does), unsigned.
    fn keycloak_like() -> String {
        let header = b64url(br#"{"alg":"RS256","typ" : "JWT","kid" : "abc"}"#);
        let claims = b64url(
            br#"{"iss":"https://localhost:8443/realms/dive-v3-broker-usa","jti":"j1","uniqueID":"testuser-usa-1","clearance":"UNCLASSIFIED","countryOfAffiliation":"USA","exp":4102444800}"#,
        );
        format!("{header}.{claims}.c2ln")
    }

    fn who() -> Claimed {
        Claimed {
            unique_id: "forged-1".to_string(),
            clearance: "TOP_SECRET".to_string(),
            country: "USA".to_string(),
            jti: "forged-jti".to_string(),
        }
    }

    #[test]
    fn every_rs256_header_of_a_realm_starts_alike_and_alg_none_does_not() {
        let genuine = keycloak_like();
        assert_eq!(cache_prefix(&genuine), "eyJhbGciOiJSUzI1");
        let none = alg_none(&genuine, &who()).expect("crafted");
        assert_eq!(cache_prefix(&none), "eyJhbGciOiJub25l");
        assert_eq!(text(&header(&none).expect("header"), "alg"), Some("none"));
        assert!(none.ends_with('.'), "no signature");
    }

    #[test]
    fn a_cut_signature_keeps_header_and_claims() {
        let genuine = keycloak_like();
        let cut = signature_cut(&genuine).expect("cut");
        assert_eq!(segments(&cut).expect("three segments").signature, "");
        assert_eq!(claims(&cut), claims(&genuine));
        assert_eq!(cache_prefix(&cut), cache_prefix(&genuine));
    }

    #[test]
    fn claiming_replaces_the_identity_and_keeps_issuer_and_expiry() {
        let claims = claiming(&keycloak_like(), &who()).expect("claims");
        assert_eq!(text(&claims, "uniqueID"), Some("forged-1"));
        assert_eq!(text(&claims, "clearance"), Some("TOP_SECRET"));
        assert_eq!(text(&claims, "jti"), Some("forged-jti"));
        assert_eq!(
            text(&claims, "iss"),
            Some("https://localhost:8443/realms/dive-v3-broker-usa")
        );
        assert_eq!(claims.get("exp").and_then(Value::as_u64), Some(4_102_444_800));
    }

    #[test]
    fn malformed_tokens_are_told_apart() {
        assert!(segments("a.b").is_err());
        assert!(segments("a.b.c.d").is_err());
        assert!(header("not-base64!.e30.").is_err());
        assert!(claims("e30.W10.").expect_err("an array").contains("not a JSON object"));
    }
}
