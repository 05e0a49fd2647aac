//! Waits across instances: a revoked token refused everywhere, an issued token accepted
//! everywhere, the hub's view of a spoke, a new token accepted everywhere after an outage.

use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use crate::deployment::ask_each;
use crate::deployment::instance::Instance;
use crate::infra::poll::{eventually, holds_for};
use crate::scenario::diagnose::{self, NotListed, NotRefused, TokensRefused};
use crate::scenario::{Scenario, TICK};
use crate::vocab::slo::{Budget, tick_among};
use crate::vocab::units::secs;

impl Scenario {
    /// Polls every instance concurrently until it stops accepting `token`, each measured with
    /// millisecond precision against `budget`. Returns, per instance, the latency or what it last
    /// answered; the caller turns a miss into a finding.
    pub async fn rejected_everywhere(
        &mut self,
        instances: &[&Instance],
        token: &str,
        budget: Budget,
    ) -> Vec<(String, Result<Duration, NotRefused>)> {
        // 50 ms keeps each instance under 20 requests/s.
        const FAST_TICK: Duration = Duration::from_millis(50);
        let names: Vec<&str> = instances.iter().map(|i| i.code.as_str()).collect();
        self.probing(format!(
            "GET /api/resources with the revoked token on {} at once, every {}, budget {}",
            names.join(", "),
            secs(FAST_TICK),
            secs(budget.limit)
        ));
        // Local tasks: the polls run concurrently on the test's own runtime.
        let polls = tokio::task::LocalSet::new();
        let mut results = polls
            .run_until(async {
                let mut tasks = tokio::task::JoinSet::new();
                for (order, access) in instances.iter().map(|i| i.access()).enumerate() {
                    let token = token.to_string();
                    let deadline = budget.deadline();
                    tasks.spawn_local(async move {
                        let what = format!("{} rejecting the revoked token", access.code);
                        let accepted = Cell::new(false);
                        let rejected = eventually(&what, FAST_TICK, deadline, async || {
                            let answer = access.accepts(&token).await;
                            accepted.set(answer == Ok(true));
                            match answer {
                                Ok(false) => Ok(()),
                                Ok(true) => Err("still accepted (HTTP 200)".to_string()),
                                Err(e) => Err(e),
                            }
                        })
                        .await;
                        let result = rejected.map(|m| m.elapsed).map_err(|t| NotRefused {
                            accepted: accepted.get(),
                            seen: t.to_string(),
                        });
                        (order, access.code.clone(), result)
                    });
                }
                tasks.join_all().await
            })
            .await;
        results.sort_by_key(|(order, _, _)| *order);
        let mut out = Vec::new();
        for (_, code, result) in results {
            if let Ok(latency) = &result {
                self.measured(&format!("{code} rejects the revoked token"), *latency, budget);
            }
            out.push((code, result));
        }
        out
    }

    /// For `window`, every instance must keep accepting `token`. When one stops, records the
    /// diagnosis (who refused, who failed to answer) and returns false.
    pub async fn accepted_everywhere(&mut self, instances: &[&Instance], token: &str, window: Duration) -> bool {
        let stopped = RefCell::new(TokensRefused::default());
        let what = format!(
            "{} keep accepting an issued token",
            instances.iter().map(|i| i.code.as_str()).collect::<Vec<_>>().join(", ")
        );
        let tick = tick_among(instances.len());
        self.probing(format!(
            "GET /api/resources with the issued token every {} for {}",
            secs(tick),
            secs(window)
        ));
        let held = holds_for(&what, tick, window, async || {
            let mut seen = TokensRefused::default();
            let answers = ask_each(instances, |inst| inst.accepts(token)).await;
            for (inst, answer) in instances.iter().zip(answers) {
                match answer {
                    Ok(true) => {}
                    Ok(false) => seen.refused.push(inst.code.clone()),
                    Err(e) => seen.errors.push(e),
                }
            }
            if seen.refused.is_empty() && seen.errors.is_empty() {
                return Ok("all accept".to_string());
            }
            let mut lines: Vec<String> = seen.refused.iter().map(|c| format!("{c} answered HTTP 401")).collect();
            lines.extend(seen.errors.iter().cloned());
            stopped.replace(seen);
            Err(lines.join("; "))
        })
        .await;
        match held {
            Ok(h) => {
                self.report(format!("held for {}: {what}", secs(h.window)));
                true
            }
            Err(broke) => {
                let stopped = TokensRefused {
                    what: broke.to_string(),
                    ..stopped.into_inner()
                };
                self.finding(diagnose::tokens_stopped_working(&stopped));
                false
            }
        }
    }

    /// Waits until the hub's federation health lists (`listed`) or stops listing spoke `code` as
    /// unhealthy; prints the latency against `bound`, the bound on paper. When it never does,
    /// records the diagnosis and returns `None`.
    pub async fn spoke_listed(&mut self, hub: &Instance, code: &str, listed: bool, bound: Budget) -> Option<Duration> {
        let answers = Cell::new(0u32);
        let what = format!(
            "hub {} {code} as unhealthy",
            if listed { "lists" } else { "no longer lists" }
        );
        self.probing(format!(
            "GET /api/federation/health every {} until {what}, bound {}",
            secs(TICK),
            secs(bound.limit)
        ));
        let seen = eventually(&what, TICK, bound.deadline(), || async {
            let health = hub.federation_health().await?;
            answers.set(answers.get() + 1);
            let present = health
                .unhealthy_spokes
                .iter()
                .any(|s| s.instance_code.eq_ignore_ascii_case(code));
            if present == listed {
                Ok(())
            } else {
                let codes: Vec<&str> = health
                    .unhealthy_spokes
                    .iter()
                    .map(|s| s.instance_code.as_str())
                    .collect();
                Err(format!("unhealthy spokes: [{}]", codes.join(", ")))
            }
        })
        .await;
        match seen {
            Ok(m) => {
                self.measured(&what, m.elapsed, bound);
                Some(m.elapsed)
            }
            Err(t) => {
                let seen = NotListed {
                    answers: answers.get(),
                    last: t.to_string(),
                };
                self.finding(diagnose::listing_wrong(code, listed, &seen));
                None
            }
        }
    }

    /// After the hub's Keycloak is back: a newly issued token must be accepted by every instance;
    /// measured from `since` against `budget`.
    pub async fn new_token_everywhere(
        &mut self,
        hub: &Instance,
        everyone: &[&Instance],
        budget: Budget,
        since: Instant,
    ) -> Option<Duration> {
        let what = "a new hub token accepted everywhere";
        self.probing(format!(
            "a direct grant, then GET /api/resources on every instance, every {}, budget {}",
            secs(TICK),
            secs(budget.limit)
        ));
        let done = eventually(
            what,
            TICK,
            budget.deadline().saturating_sub(since.elapsed()),
            || async {
                let token = hub.token_for(&hub.credentials.user).await.map_err(|f| f.message)?;
                let answers = ask_each(everyone, |inst| inst.accepts(&token)).await;
                match everyone.iter().zip(answers).find(|(_, a)| *a != Ok(true)) {
                    Some((inst, _)) => Err(format!("{} refuses it", inst.code)),
                    None => Ok(()),
                }
            },
        )
        .await;
        match done {
            Ok(_) => {
                let latency = since.elapsed();
                self.measured(what, latency, budget);
                Some(latency)
            }
            Err(t) => {
                self.event(t.to_string());
                None
            }
        }
    }
}
