//! The suite's HTTP(S) client: trusts exactly the CA bundle it is given (or, when the user asked,
//! nothing is verified), and decodes JSON into typed models, showing the raw body when it cannot.

use std::fmt;
use std::time::Duration;

use reqwest::{Certificate, Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::infra::config::Trust;

/// A failed exchange, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// No answer: refused, reset, TLS failure or timeout.
    Transport { url: String, reason: String },
    /// An answer whose body is not the expected JSON.
    Decode {
        url: String,
        status: u16,
        reason: String,
        body: String,
    },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Transport { url, reason } => write!(f, "{url}: no answer ({reason})"),
            HttpError::Decode {
                url,
                status,
                reason,
                body,
            } => {
                write!(
                    f,
                    "{url}: HTTP {status} with a body that does not decode ({reason}): {body}"
                )
            }
        }
    }
}

impl std::error::Error for HttpError {}

/// A typed answer.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    pub status: StatusCode,
    pub body: T,
}

#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
}

/// Default per-request timeout; health calls while MongoDB is down pass a longer one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl Http {
    /// A client that trusts exactly the certificates in `ca_pem` (no system roots).
    pub fn trusting(ca_pem: &[u8]) -> Result<Http, String> {
        let certs = Certificate::from_pem_bundle(ca_pem).map_err(|e| format!("CA bundle: {e}"))?;
        if certs.is_empty() {
            return Err("CA bundle holds no certificate".to_string());
        }
        Self::build(reqwest::Client::builder().tls_certs_only(certs))
    }

    /// The client a configuration asks for: exactly its CA bundle, or no verification at all.
    pub fn for_trust(trust: &Trust) -> Result<Http, String> {
        match trust {
            Trust::Insecure => Http::insecure(),
            Trust::CaBundle(path) => {
                let pem = std::fs::read(path).map_err(|e| format!("DIVE_CA_CERT {}: {e}", path.display()))?;
                Http::trusting(&pem)
            }
        }
    }

    /// A client that verifies nothing. Only for `DIVE_TLS_INSECURE=1`.
    pub fn insecure() -> Result<Http, String> {
        Self::build(reqwest::Client::builder().tls_danger_accept_invalid_certs(true))
    }

    fn build(builder: reqwest::ClientBuilder) -> Result<Http, String> {
        super::crypto::install();
        let client = builder
            .timeout(DEFAULT_TIMEOUT)
            .connect_timeout(Duration::from_secs(3))
            .no_proxy()
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Http { client })
    }

    pub fn request(&self, method: Method, url: &Url) -> RequestBuilder {
        self.client.request(method, url.clone())
    }

    /// Sends `request` and decodes a JSON body of any status.
    pub async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<Answer<T>, HttpError> {
        let (status, url, text) = self.text(request).await?;
        match serde_json::from_str(&text) {
            Ok(body) => Ok(Answer { status, body }),
            Err(e) => Err(HttpError::Decode {
                url,
                status: status.as_u16(),
                reason: e.to_string(),
                body: clip(&text),
            }),
        }
    }

    /// Sends `request` and returns status, URL and body text.
    pub async fn text(&self, request: RequestBuilder) -> Result<(StatusCode, String, String), HttpError> {
        let request = request.build().map_err(|e| HttpError::Transport {
            url: "<request>".to_string(),
            reason: e.to_string(),
        })?;
        let url = request.url().to_string();
        let response = self.client.execute(request).await.map_err(|e| HttpError::Transport {
            url: url.clone(),
            reason: chain(&e),
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| HttpError::Transport {
            url: url.clone(),
            reason: chain(&e),
        })?;
        Ok((status, url, text))
    }

    /// `GET url` must answer 2xx; otherwise says what it answered.
    pub async fn get_ok(&self, url: &Url, timeout: Duration) -> Result<(), String> {
        let (status, _, body) = self
            .text(self.request(Method::GET, url).timeout(timeout))
            .await
            .map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{url} answered {status}: {}", body.trim()))
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, url: &Url, timeout: Duration) -> Result<Answer<T>, HttpError> {
        self.json(self.request(Method::GET, url).timeout(timeout)).await
    }
}

/// The whole cause chain of an error: reqwest hides the useful part (refused, certificate) deep.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn clip(text: &str) -> String {
    const MAX: usize = 400;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &text[..end], text.len())
}

/// Joins a path onto a base URL, keeping the base's own path.
pub fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path.trim_start_matches('/'));
    url.set_path(&joined);
    url
}
