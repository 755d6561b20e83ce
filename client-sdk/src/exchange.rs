//! The retry loop of a request: attempts at the picked region (its routers in turn), what
//! each outcome means — retry here, move to the next region, wait for `Retry-After`, give
//! up — under the deadline and the retry budget.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::time::Instant;
use tracing::Instrument;

use crate::client::{Client, ROUTER_ERROR_HEADER, SESSION_HEADER};
use crate::error::{Error, ErrorKind, Source};
use crate::region::Region;
use crate::request::Request;
use crate::telemetry;
use crate::tls;

/// How one attempt ended.
enum Outcome {
    /// An answer to hand back (2xx–4xx but 429): its head and body.
    Done(http::response::Parts, Incoming),
    /// A failure retrying cannot fix (a backend's 500, an invalid request, a TLS failure).
    /// `reached` when the region answered (its breaker counts a success).
    Fail {
        kind: ErrorKind,
        reached: bool,
        source: Option<Source>,
    },
    /// Try again: `safe` when the request surely did not reach a backend (any method may be
    /// retried), `move_on` when the next attempt should use another region, `wait` a
    /// server-given delay (Retry-After).
    Again {
        error: ErrorKind,
        safe: bool,
        move_on: bool,
        timeout: bool,
        wait: Option<Duration>,
        source: Option<Source>,
    },
}

impl Client {
    /// The retry loop: attempts until an answer to return (head and body still to read) or
    /// an error.
    pub(crate) async fn exchange(
        &self,
        req: &Request,
    ) -> Result<(http::response::Parts, Incoming, String, u32), Error> {
        req.check()?;
        let config = &self.inner.config;
        let deadline = Instant::now() + config.deadline;
        self.refresh_directory_within(false, config.deadline).await;
        let mut avoid: Vec<String> = Vec::new();
        let mut attempt = 0u32;
        let Some(mut region) = self.pick(&avoid) else {
            return Err(self.no_region(deadline));
        };
        loop {
            attempt += 1;
            self.inner.stats.attempts.fetch_add(1, Ordering::Relaxed);
            telemetry::attempt(&region.name);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::new(
                    ErrorKind::Deadline(config.deadline),
                    Some(&region.name),
                    attempt,
                    true,
                ));
            }
            let limit = req.timeout.unwrap_or(config.attempt_timeout).min(left);
            let span = tracing::debug_span!("attempt", attempt, region = %region.name, method = %req.method, path = %req.path);
            let outcome = self.attempt(req, &region, limit).instrument(span).await;
            let (error, safe, move_on, timeout, wait, source) = match outcome {
                Outcome::Done(parts, body) => {
                    self.region_ok(&region);
                    self.inner.budget.success();
                    self.remember_session(&parts.headers);
                    return Ok((parts, body, region.name.clone(), attempt));
                }
                Outcome::Fail {
                    kind,
                    reached,
                    source,
                } => {
                    if reached {
                        self.region_ok(&region);
                    }
                    return Err(
                        Error::new(kind, Some(&region.name), attempt, false).with_source(source)
                    );
                }
                Outcome::Again {
                    error,
                    safe,
                    move_on,
                    timeout,
                    wait,
                    source,
                } => (error, safe, move_on, timeout, wait, source),
            };
            if let Some(wait) = wait {
                region.hold_for(wait.min(config.retry_after_cap));
            }
            if move_on {
                self.region_failed(&region);
                avoid.push(region.name.clone());
                let left = deadline.saturating_duration_since(Instant::now());
                self.refresh_directory_within(true, left).await;
            } else if timeout {
                self.region_failed(&region);
            } else if matches!(error, ErrorKind::Status { .. }) {
                // A backend's 5xx or 429 came through the region: the region itself works.
                self.region_ok(&region);
            }
            let give_up = |kind: ErrorKind, retryable: bool, source: Option<Source>| {
                Err(Error::new(kind, Some(&region.name), attempt, retryable).with_source(source))
            };
            if !(safe || req.retryable_method()) {
                return give_up(error, false, source);
            }
            if attempt >= config.max_attempts {
                return give_up(error, true, source);
            }
            let Some(next) = self.pick(&avoid) else {
                return give_up(error, true, source);
            };
            let same = next.name == region.name;
            let pause = match (same, wait) {
                // Another region is a fresh start: no need to wait (unless it asked).
                (false, _) => Duration::ZERO,
                // The server said how long: that is the region's hold, below.
                (true, Some(_)) => Duration::ZERO,
                (true, None) => config.backoff.delay(attempt - 1),
            }
            .max(next.held_for());
            // The deadline first: a retry that cannot happen in time costs the budget nothing
            // and is not waited for. The error says the deadline; its source, the last error.
            if Instant::now() + pause >= deadline {
                let last: Source = Arc::new(error);
                return Err(Error::new(
                    ErrorKind::Deadline(config.deadline),
                    Some(&region.name),
                    attempt,
                    true,
                )
                .with_source(Some(last)));
            }
            if !self.inner.budget.try_retry(timeout) {
                tracing::debug!(attempt, "retry budget spent: not retrying");
                return give_up(ErrorKind::BudgetExhausted, true, Some(Arc::new(error)));
            }
            self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
            telemetry::retry(&next.name);
            if !same {
                self.inner.stats.failovers.fetch_add(1, Ordering::Relaxed);
                telemetry::failover(&next.name);
            }
            tokio::time::sleep(pause).await;
            region = next;
        }
    }

    /// Why no region could be picked: none known yet (the directory did not answer in
    /// time), or every breaker open.
    fn no_region(&self, deadline: Instant) -> Error {
        match (&self.inner.config.directory, self.region_list().is_empty()) {
            (Some(url), true) if Instant::now() >= deadline => Error::new(
                ErrorKind::Deadline(self.inner.config.deadline),
                None,
                0,
                true,
            )
            .with_source(Some(Arc::new(ErrorKind::Connect(format!(
                "no region known yet: the directory {url} did not answer in time"
            ))))),
            (Some(url), true) => Error::new(
                ErrorKind::Connect(format!(
                    "no region known: the directory {url} could not be read"
                )),
                None,
                0,
                true,
            ),
            _ => Error::new(ErrorKind::NoRegion, None, 0, true),
        }
    }

    /// One attempt at `region`: its endpoints in turn until one connects.
    async fn attempt(&self, req: &Request, region: &Region, limit: Duration) -> Outcome {
        let started = Instant::now();
        let mut last = None;
        for (index, endpoint) in region.endpoints_in_turn() {
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            match self.attempt_at(req, endpoint, left).await {
                // Only a failed connect moves to the region's next router.
                again @ Outcome::Again {
                    error: ErrorKind::Connect(_),
                    ..
                } => {
                    tracing::debug!(endpoint, "router unreachable: trying the region's next one");
                    last = Some(again);
                }
                Outcome::Again {
                    error: ErrorKind::Timeout(_),
                    safe,
                    move_on,
                    timeout,
                    wait,
                    source,
                } => {
                    // The attempt's limit, not what was left of it for this endpoint.
                    return Outcome::Again {
                        error: ErrorKind::Timeout(limit),
                        safe,
                        move_on,
                        timeout,
                        wait,
                        source,
                    };
                }
                outcome => {
                    region.prefer(index);
                    return outcome;
                }
            }
        }
        last.unwrap_or(Outcome::Again {
            error: ErrorKind::Timeout(limit),
            safe: false,
            move_on: false,
            timeout: true,
            wait: None,
            source: None,
        })
    }

    /// One exchange with one router, up to the answer's head.
    async fn attempt_at(&self, req: &Request, endpoint: &str, limit: Duration) -> Outcome {
        let url = format!("{endpoint}{}", req.path);
        let mut builder = http::Request::builder()
            .method(req.method.clone())
            .uri(url.as_str())
            .header(http::header::USER_AGENT, &self.inner.config.user_agent);
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        if let Some(token) = self.session_id()
            && !req.headers.contains_key(SESSION_HEADER)
        {
            builder = builder.header(SESSION_HEADER, token);
        }
        let request = match builder.body(Full::new(req.body.clone())) {
            Ok(request) => request,
            Err(err) => {
                return Outcome::Fail {
                    kind: ErrorKind::Invalid(format!("cannot build a request for {url}: {err}")),
                    reached: false,
                    source: Some(Arc::new(err)),
                };
            }
        };
        let resp = match tokio::time::timeout(limit, self.inner.http.request(request)).await {
            Err(_) => {
                return Outcome::Again {
                    error: ErrorKind::Timeout(limit),
                    safe: false,
                    move_on: false,
                    timeout: true,
                    wait: None,
                    source: None,
                };
            }
            Ok(Err(err)) => return failed_exchange(err, endpoint),
            Ok(Ok(resp)) => resp,
        };
        let (parts, body) = resp.into_parts();
        let status = parts.status;
        let failing = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
        if !failing {
            return Outcome::Done(parts, body);
        }
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let router_error = header(ROUTER_ERROR_HEADER).map(str::to_string);
        let wait = header(http::header::RETRY_AFTER.as_str()).and_then(crate::retry_after::parse);
        // Retry-After counts on the router's own errors and on every 429 and 503.
        let wait = wait.filter(|_| {
            router_error.is_some()
                || matches!(
                    status,
                    StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                )
        });
        // The failed answer's body is not needed: let the connection go back to the pool.
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), body.collect()).await;
        });
        let error = ErrorKind::Status {
            status: status.as_u16(),
            router_error: router_error.clone(),
        };
        match router_error.as_deref() {
            // The region cannot serve this at all: go to the next region (the request never
            // reached a backend, so any method may go again).
            Some("no_healthy_backend" | "overloaded" | "no_route") => Outcome::Again {
                error,
                safe: true,
                move_on: true,
                timeout: false,
                wait,
                source: None,
            },
            Some("upstream_connect" | "rate_limited") => Outcome::Again {
                error,
                safe: true,
                move_on: false,
                timeout: false,
                wait,
                source: None,
            },
            // The backend's own 502/503/504 or 429 (or the router's timeout): retry where safe,
            // honouring Retry-After.
            _ if matches!(status.as_u16(), 429 | 502 | 503 | 504) => Outcome::Again {
                error,
                safe: false,
                move_on: false,
                timeout: status == StatusCode::GATEWAY_TIMEOUT,
                wait,
                source: None,
            },
            _ => Outcome::Fail {
                kind: error,
                reached: true,
                source: None,
            },
        }
    }
}

/// A request that got no answer: a TLS failure (final, and no fault of the region), a failed
/// connect (nothing reached a backend), or a connection that broke.
fn failed_exchange(err: hyper_util::client::legacy::Error, endpoint: &str) -> Outcome {
    if let Some(reason) = tls::tls_failure(&err) {
        return Outcome::Fail {
            kind: ErrorKind::Tls {
                host: host_of(endpoint),
                reason,
            },
            reached: false,
            source: Some(Arc::new(err)),
        };
    }
    let connect = err.is_connect();
    let text = error_chain(&err);
    Outcome::Again {
        error: match connect {
            true => ErrorKind::Connect(format!("{endpoint}: {text}")),
            false => ErrorKind::Transport(text),
        },
        // A request whose connection never opened reached no backend.
        safe: connect,
        move_on: connect,
        timeout: false,
        wait: None,
        source: Some(Arc::new(err)),
    }
}

/// An error and its causes, `: `-separated (hyper's own text is often just "client error").
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// The `host[:port]` of an endpoint URL, for messages.
pub(crate) fn host_of(endpoint: &str) -> String {
    endpoint
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| endpoint.to_string())
}
