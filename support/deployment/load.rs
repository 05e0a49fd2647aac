//! What phase 4.5's load sends to an instance: one stream per route, each handing the load
//! generator one request at a time. The authorization route goes through [`Traffic`], so each
//! request asks for a (user, resource) pair the decision cache does not hold; the other routes
//! are plain calls. Every answer is classified as the generator counts it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use reqwest::{Method, Url};

use crate::deployment::instance::Instance;
use crate::deployment::traffic::{Sent, Tallies, Traffic};
use crate::infra::http::{Http, join};
use crate::infra::load::Outcome;
use crate::vocab::api::DecidedBy;
use crate::vocab::finding::Finding;
use crate::vocab::load::Route;

/// One request of a stream, ready to be awaited at its due time.
pub type Request = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Requests to one route of one instance.
pub struct Stream {
    route: Route,
    sender: Sender,
}

enum Sender {
    /// Authorized requests for resources, picked past the decision cache.
    Resources(Traffic),
    /// The same call each time.
    Plain {
        http: Http,
        url: Url,
        token: Option<String>,
    },
}

impl Instance {
    /// A stream of requests to `route` of this instance at `rate` requests a second (the rate
    /// sizes how many resources the authorization route needs to stay past the decision cache).
    pub async fn load_stream(&self, route: Route, rate: f64) -> Result<Stream, Finding> {
        let sender = match route {
            Route::Resource => Sender::Resources(Traffic::prepare(self, Duration::from_secs_f64(1.0 / rate)).await?),
            Route::Listing => Sender::Plain {
                http: self.http().clone(),
                url: join(&self.backend, "/api/resources"),
                token: Some(self.token_for(&self.credentials.user).await?),
            },
            Route::Liveness => Sender::Plain {
                http: self.http().clone(),
                url: self.health_url("/live"),
                token: None,
            },
        };
        Ok(Stream { route, sender })
    }
}

impl Stream {
    pub fn route(&self) -> Route {
        self.route
    }

    /// The next request, bounded by `patience` (the generator's own timeout is the shorter, so
    /// a request that outwaits it counts as timed out rather than unanswered).
    pub fn request(&mut self, patience: Duration) -> Request {
        match &mut self.sender {
            Sender::Resources(traffic) => {
                let sent = traffic.dispatch(Some(patience));
                Box::pin(async move { authorization_outcome(&sent.await) })
            }
            Sender::Plain { http, url, token } => {
                let mut request = http.request(Method::GET, url).timeout(patience);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let http = http.clone();
                Box::pin(async move {
                    match http.text(request).await {
                        Ok((status, _, _)) => Outcome::of_plain_answer(status.as_u16()),
                        Err(_) => Outcome::NoAnswer,
                    }
                })
            }
        }
    }

    /// The tally of an authorization stream, readable while the generator holds the stream.
    pub fn tallies(&self) -> Option<Tallies> {
        match &self.sender {
            Sender::Resources(traffic) => Some(traffic.tallies()),
            Sender::Plain { .. } => None,
        }
    }

    /// The authorization traffic back, for what follows the load (the postcheck).
    pub fn into_traffic(self) -> Option<Traffic> {
        match self.sender {
            Sender::Resources(traffic) => Some(traffic),
            Sender::Plain { .. } => None,
        }
    }
}

/// An authorization answer as the generator counts it: who decided a 200 or 403, else its status.
pub fn authorization_outcome(sent: &Sent) -> Outcome {
    match sent.status {
        None => Outcome::NoAnswer,
        Some(status) => Outcome::of_answer(
            status,
            sent.decided_by == Some(DecidedBy::LocalFallback),
            sent.decided_by == Some(DecidedBy::Cache),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infra::load::Class;

    fn sent(status: Option<u16>, decided_by: Option<DecidedBy>) -> Sent {
        Sent {
            at: std::time::Instant::now(),
            resource: "doc-USA-ref-00001".to_string(),
            status,
            decided_by,
        }
    }

    #[test]
    fn answers_are_counted_as_the_tally_reads_them() {
        let class = |s, by| authorization_outcome(&sent(s, by)).class();
        assert_eq!(class(Some(200), Some(DecidedBy::Opa)), Class::Decided);
        assert_eq!(class(Some(403), Some(DecidedBy::LocalFallback)), Class::Fallback);
        assert_eq!(class(Some(200), Some(DecidedBy::Cache)), Class::CacheHit);
        assert_eq!(class(Some(500), None), Class::ServerError);
        assert_eq!(class(None, None), Class::NoAnswer);
    }
}
