//! Authentication: whose a bearer token is, and revocation (the blacklist routes and the check on
//! every request). A backend authenticates in one of two ways, by profile:
//! - as the plan needs it: the signature first, against the keys of the token's issuer (RS256
//!   only, a trusted issuer, `exp` with DIVE's 30 s clock tolerance), then the session checked
//!   with Keycloak through the keycloak breaker;
//! - as DIVE ships it (D11): the token is only decoded; Keycloak's introspection answer is cached
//!   under the token's first 16 characters and its issuer for 300 s, refusals included, and a
//!   cached answer is taken as it is; the issuer's keys are used only when introspection fails.
//!   At 15a319e6 the request's identity is the answer's; at HEAD the answer's claims win, the
//!   token fills in what the answer lacks, and the revocation check uses the answer's `jti`.

use super::*;
use crate::reference::behaviour::Generation;
use crate::reference::standins::Introspection;
use crate::vocab::tokens;

/// DIVE's clock tolerance when it verifies a token itself (`validateWithJwks`).
const CLOCK_TOLERANCE_S: u64 = 30;

/// How long DIVE keeps an introspection answer (`token-introspection.service.ts`), at time scale 1.
const INTROSPECTION_CACHE: Duration = Duration::from_secs(300);

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": "Unauthorized", "message": message })),
    )
        .into_response()
}

/// A decoded, unchecked header or claims object.
type Object = serde_json::Map<String, serde_json::Value>;

impl Backend {
    pub(super) async fn jwks(&self, issuer: &str, url: &Url) -> Result<JwkSet, String> {
        // DIVE caches JWKS for an hour: existing tokens keep validating while Keycloak is down.
        let ttl = if self.cfg.behaviour.jwks_uncached {
            Duration::ZERO
        } else {
            Duration::from_secs(3600).mul_f64(self.cfg.time_scale)
        };
        if let Some((set, at)) = self.jwks.lock().ok().and_then(|j| j.get(issuer).cloned())
            && at.elapsed() < ttl
        {
            return Ok(set);
        }
        let set: JwkSet = self
            .get_ok(url.clone(), self.timeout(5000))
            .await?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(mut j) = self.jwks.lock() {
            j.insert(issuer.to_string(), (set.clone(), Instant::now()));
        }
        Ok(set)
    }

    pub(super) async fn authenticate(&self, headers: &HeaderMap) -> Result<(String, Claims), Response> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("Missing or invalid Authorization header"))?
            .to_string();
        let (Ok(header), Ok(raw)) = (tokens::header(&token), tokens::claims(&token)) else {
            return Err(unauthorized("Unable to decode token or missing issuer claim"));
        };
        let Some(iss) = tokens::text(&raw, "iss").map(str::to_string) else {
            return Err(unauthorized("Unable to decode token or missing issuer claim"));
        };
        let claims = if self.cfg.behaviour.introspection_cache_by_prefix {
            self.as_shipped(&token, &header, &raw, &iss).await?
        } else {
            self.as_intended(&token, &header, &raw, &iss).await?
        };
        if self.cfg.behaviour.revocation_enforced
            && let Some(message) = self.revoked(&claims).await
        {
            return Err(unauthorized(message));
        }
        Ok((token, claims))
    }

    /// The JWKS URL of `iss`, when this backend trusts it.
    fn trusted(&self, iss: &str) -> Option<&Url> {
        self.cfg.issuers.iter().find(|(i, _)| i == iss).map(|(_, url)| url)
    }

    /// Signature first, then the session.
    async fn as_intended(&self, token: &str, header: &Object, raw: &Object, iss: &str) -> Result<Claims, Response> {
        let unverified = || serde_json::from_value::<Claims>(serde_json::Value::Object(raw.clone())).ok();
        if tokens::text(header, "alg").is_some_and(|a| a.eq_ignore_ascii_case("none")) {
            // R13: an unsigned token taken at its word.
            return match unverified() {
                Some(claims) if self.cfg.behaviour.alg_none_accepted => Ok(claims),
                _ => Err(unauthorized("invalid algorithm")),
            };
        }
        let Some(jwks_url) = self.trusted(iss) else {
            // R15: the key a token carries in its own header vouches for its issuer.
            if self.cfg.behaviour.header_key_trusted
                && let Some(key) = header
                    .get("jwk")
                    .and_then(|j| serde_json::from_value::<Jwk>(j.clone()).ok())
                    .and_then(|jwk| DecodingKey::from_jwk(&jwk).ok())
            {
                return self.checked(token, &key, iss).map_err(|e| unauthorized(&e));
            }
            return Err(unauthorized(&format!(
                "Issuer {iss} is not in the list of trusted issuers"
            )));
        };
        let unchecked_here = self
            .cfg
            .behaviour
            .unverified_while_keycloak_down
            .is_some_and(|c| c.eq_ignore_ascii_case(&self.cfg.code));
        if unchecked_here && self.session_check(token, true).await.is_err() {
            // R12: Keycloak does not answer, and this spoke lets the token's word stand.
            return unverified().ok_or_else(|| unauthorized("Invalid token"));
        }
        let claims = self
            .verified(token, header, iss, jwks_url)
            .await
            .map_err(|e| unauthorized(&e))?;
        if !unchecked_here && self.cfg.behaviour.breakers_wired {
            // When the session check fails, the locally verified token stands.
            let _ = self.session_check(token, true).await;
        }
        Ok(claims)
    }

    /// The session check against this instance's Keycloak, through the keycloak breaker when
    /// `wired`.
    async fn session_check(&self, token: &str, wired: bool) -> Result<(), CallError> {
        let url = join(
            &self.cfg.keycloak,
            &format!("/realms/{}/protocol/openid-connect/token/introspect", self.cfg.realm),
        );
        let form = [
            ("token", token),
            ("client_id", &self.cfg.client_id),
            ("client_secret", &self.cfg.client_secret),
        ];
        let call = async {
            let r = self
                .client
                .post(url)
                .form(&form)
                .timeout(self.timeout(2000))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if r.status().is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {}", r.status()))
            }
        };
        self.through(Breaker::Keycloak, wired && self.cfg.behaviour.breakers_wired, call)
            .await
    }

    /// The token verified against the keys `iss` publishes at `jwks_url`.
    async fn verified(&self, token: &str, header: &Object, iss: &str, jwks_url: &Url) -> Result<Claims, String> {
        let kid = tokens::text(header, "kid").ok_or("Missing key ID in token header")?;
        let set = self.jwks(iss, jwks_url).await?;
        let key = set
            .find(kid)
            .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
            .ok_or_else(|| format!("Unable to find a signing key that matches '{kid}'"))?;
        self.checked(token, &key, iss)
    }

    /// RS256 with `key`, issued by `iss`, unexpired within the clock tolerance (R14: expiry not
    /// checked).
    fn checked(&self, token: &str, key: &DecodingKey, iss: &str) -> Result<Claims, String> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[iss]);
        validation.validate_aud = false;
        validation.leeway = CLOCK_TOLERANCE_S;
        validation.validate_exp = !self.cfg.behaviour.expiry_unchecked;
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "jwt expired",
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => "invalid signature",
                    jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => "invalid algorithm",
                    jsonwebtoken::errors::ErrorKind::InvalidIssuer => "jwt issuer invalid",
                    _ => "Invalid token",
                }
                .to_string()
            })
    }

    /// DIVE as shipped (D11): the introspection answer, from the prefix-keyed cache or from the
    /// issuer's Keycloak, and the identity each commit makes of it.
    async fn as_shipped(&self, token: &str, header: &Object, raw: &Object, iss: &str) -> Result<Claims, Response> {
        // HEAD checks the issuer against its list first; 15a319e6 has no list.
        if self.cfg.behaviour.generation == Generation::Head && self.trusted(iss).is_none() {
            return Err(unauthorized(&format!(
                "Issuer {iss} is not in the list of trusted issuers"
            )));
        }
        let key = format!("introspect:{}:{iss}", tokens::cache_prefix(token));
        let cached = self
            .introspections
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(answer, _)| answer);
        let answer = match cached {
            Some(answer) => answer,
            None => match self.introspect(token, iss).await {
                Ok(answer) => {
                    // Kept whatever it says, `active: false` included; a hit does not extend it.
                    let until = Instant::now() + INTROSPECTION_CACHE.mul_f64(self.cfg.time_scale);
                    if let Ok(mut c) = self.introspections.lock() {
                        c.insert(key, (answer.clone(), until));
                    }
                    answer
                }
                // Introspection failed: only now are the issuer's keys used; this is not cached.
                Err(_) => {
                    let jwks_url = self
                        .trusted(iss)
                        .ok_or_else(|| unauthorized("JWKS URI not available"))?;
                    let claims = self
                        .verified(token, header, iss, jwks_url)
                        .await
                        .map_err(|e| unauthorized(&e))?;
                    Introspection::of(&claims)
                }
            },
        };
        if !answer.active {
            return Err(unauthorized("Invalid token"));
        }
        let presented = |name: &str| tokens::text(raw, name).map(str::to_string);
        let text = |answered: &Option<String>, name: &str| match self.cfg.behaviour.generation {
            // 15a319e6 builds the user from the answer alone.
            Generation::V15a => answered.clone().unwrap_or_default(),
            // HEAD: the answer's value, else the presented token's.
            Generation::Head => answered.clone().or_else(|| presented(name)).unwrap_or_default(),
        };
        let number = |name: &str| raw.get(name).and_then(serde_json::Value::as_u64).unwrap_or(0);
        Ok(Claims {
            iss: iss.to_string(),
            sub: text(&answer.sub, "sub"),
            jti: text(&answer.jti, "jti"),
            exp: answer.exp.unwrap_or_else(|| number("exp")),
            iat: number("iat"),
            azp: text(&answer.client_id, "azp"),
            unique_id: text(&answer.unique_id, "uniqueID"),
            clearance: text(&answer.clearance, "clearance"),
            country_of_affiliation: text(&answer.country_of_affiliation, "countryOfAffiliation"),
        })
    }

    /// Keycloak's introspection of `token` at its issuer, with this backend's own client. The
    /// reference asks only issuers it knows: for any other, discovery fails as it does in DIVE
    /// when the issuer does not answer.
    async fn introspect(&self, token: &str, iss: &str) -> Result<Introspection, String> {
        if self.trusted(iss).is_none() {
            return Err(format!("discovery of {iss} failed"));
        }
        let url = Url::parse(&format!("{iss}/protocol/openid-connect/token/introspect")).map_err(|e| e.to_string())?;
        let form = [
            ("token", token),
            ("client_id", &self.cfg.client_id),
            ("client_secret", &self.cfg.client_secret),
        ];
        let call = async {
            let r = self
                .client
                .post(url)
                .form(&form)
                .timeout(self.timeout(5000))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!("HTTP {}", r.status()));
            }
            r.json::<Introspection>().await.map_err(|e| e.to_string())
        };
        self.through(Breaker::Keycloak, self.cfg.behaviour.breakers_wired, call)
            .await
            .map_err(|e| e.to_string())
    }

    /// The blacklist check of every authenticated request; fails open when the store is down.
    pub(super) async fn revoked(&self, claims: &Claims) -> Option<&'static str> {
        let keys = (
            format!("blacklist:{}", claims.jti),
            format!("user-revoked:{}", claims.unique_id),
        );
        let found = redis_op(&self.cfg.blacklist_redis, self.timeout(1000), |mut c| async move {
            redis::pipe()
                .exists(&keys.0)
                .exists(&keys.1)
                .query_async::<(bool, bool)>(&mut c)
                .await
        })
        .await;
        match found {
            Ok((true, _)) => Some("Token has been revoked"),
            Ok((_, true)) => Some("User session has been terminated"),
            _ => None,
        }
    }
}

/// `POST /api/auth/blacklist-token`: the bearer token is only decoded, then both keys are written.
pub(super) async fn blacklist_token(State(b): State<Arc<Backend>>, headers: HeaderMap) -> Response {
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return bad_request("Missing token");
    };
    // DIVE only decodes the token here; it does not verify it.
    let Ok(data) = jsonwebtoken::dangerous::insecure_decode::<Claims>(token) else {
        return bad_request("Invalid token");
    };
    let claims = data.claims;
    let ttl = claims.exp.saturating_sub(unix_now()).max(60);
    let value = json!({ "jti": claims.jti, "uniqueID": claims.unique_id, "revokedAt": unix_now() }).to_string();
    let keys = (
        format!("blacklist:{}", claims.jti),
        format!("user-revoked:{}", claims.unique_id),
    );
    let written = redis_op(&b.cfg.blacklist_redis, b.timeout(5000), |mut c| async move {
        redis::pipe()
            .set_ex(&keys.0, &value, ttl)
            .set_ex(&keys.1, &value, ttl)
            .query_async::<()>(&mut c)
            .await
    })
    .await;
    match written {
        Ok(()) => {
            Json(json!({ "message": "Token blacklisted", "jti": claims.jti, "uniqueID": claims.unique_id, "ttl": ttl }))
                .into_response()
        }
        Err(e) => server_error(format!("blacklist store: {e}")),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct CheckRequest {
    pub(super) jti: String,
}

/// `POST /api/blacklist/check`: no authentication.
pub(super) async fn blacklist_check(State(b): State<Arc<Backend>>, Json(q): Json<CheckRequest>) -> Response {
    let key = format!("blacklist:{}", q.jti);
    let found = redis_op(&b.cfg.blacklist_redis, b.timeout(5000), |mut c| async move {
        redis::cmd("EXISTS").arg(&key).query_async::<bool>(&mut c).await
    })
    .await;
    // v15a's check fails closed when the store is down; HEAD's fails open.
    let listed = found.unwrap_or(!b.cfg.behaviour.revocation_enforced);
    Json(json!({ "jti": q.jti, "isBlacklisted": listed })).into_response()
}
