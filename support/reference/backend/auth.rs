//! Authentication: token verification against the issuers' keys, the session check through the
//! keycloak breaker, and revocation (the blacklist routes and the check on every request).

use super::*;

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
        let unauthorized = |message: &str| {
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "Unauthorized", "message": message })),
            )
                .into_response()
        };
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("Missing authorization header"))?
            .to_string();
        let kid = jsonwebtoken::decode_header(&token)
            .ok()
            .and_then(|h| h.kid)
            .ok_or_else(|| unauthorized("Invalid token"))?;
        let mut claims = None;
        for (issuer, jwks_url) in &self.cfg.issuers {
            let Ok(set) = self.jwks(issuer, jwks_url).await else {
                continue;
            };
            let Some(key) = set.find(&kid).and_then(|jwk| DecodingKey::from_jwk(jwk).ok()) else {
                continue;
            };
            let mut validation = Validation::new(Algorithm::RS256);
            validation.set_issuer(&[issuer]);
            validation.validate_aud = false;
            if let Ok(data) = jsonwebtoken::decode::<Claims>(&token, &key, &validation) {
                claims = Some(data.claims);
                break;
            }
        }
        let claims = claims.ok_or_else(|| unauthorized("Invalid or expired token"))?;
        if self.cfg.behaviour.breakers_wired {
            // Session check against Keycloak; when it fails the locally verified token stands.
            let url = join(
                &self.cfg.keycloak,
                &format!("/realms/{}/protocol/openid-connect/token/introspect", self.cfg.realm),
            );
            let form = [
                ("token", token.as_str()),
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
            let _ = self.through(Breaker::Keycloak, true, call).await;
        }
        if self.cfg.behaviour.revocation_enforced
            && let Some(message) = self.revoked(&claims).await
        {
            return Err(unauthorized(message));
        }
        Ok((token, claims))
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
