//! The client: regions in order (static, or from a router's `/v1/regions`), requests with
//! per-attempt and overall deadlines, retries only where safe, full-jitter backoff under a
//! retry budget, a circuit breaker per region and failover to the next region.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::breaker::{Breaker, BreakerConfig};
use crate::budget::{BudgetConfig, RetryBudget};
use crate::error::{Error, ErrorKind};

/// The router's sticky-session header.
pub const SESSION_HEADER: &str = "x-switchyard-session";
/// The router's own-error header: present only on answers the router made itself.
pub const ROUTER_ERROR_HEADER: &str = "x-switchyard-error";

/// Where a client keeps its session id between runs (the app decides: a file, the keychain…).
pub trait SessionPersistence: Send + Sync {
    fn load(&self) -> Option<String>;
    fn save(&self, token: &str);
}

/// One region the client may use.
#[derive(Debug)]
pub struct Region {
    pub name: String,
    /// `http://host:port`, no trailing `/`.
    pub endpoint: String,
    breaker: Breaker,
}

/// Counters the app can read.
#[derive(Debug, Default)]
pub struct Stats {
    pub attempts: AtomicU64,
    pub retries: AtomicU64,
    pub failovers: AtomicU64,
    pub reconnects: AtomicU64,
}

/// A snapshot of [`Stats`] plus the budget left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub attempts: u64,
    pub retries: u64,
    pub failovers: u64,
    pub reconnects: u64,
    pub budget_left: u32,
}

/// Everything a client is built with; every field has a documented default.
#[derive(Clone)]
pub struct ClientConfig {
    /// Regions in order of preference, `(name, "http://host:port")`. Default none.
    pub regions: Vec<(String, String)>,
    /// A router's `/v1/regions` URL: the region order comes from there (nearest healthy
    /// first), read at the first request, every `directory_refresh`, and after a region fails.
    /// Default none.
    pub directory: Option<String>,
    /// Default 30 s.
    pub directory_refresh: Duration,
    /// Connecting to a router. Default 1 s.
    pub connect_timeout: Duration,
    /// One attempt, connect to whole answer. Default 5 s.
    pub attempt_timeout: Duration,
    /// The whole request, retries and waits included. Default 15 s.
    pub deadline: Duration,
    /// Attempts per request, the first included. Default 3.
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub budget: BudgetConfig,
    pub breaker: BreakerConfig,
    /// Longest `Retry-After` honoured. Default 10 s.
    pub retry_after_cap: Duration,
    /// Default `switchyard-client/<version>`.
    pub user_agent: String,
    /// Default none (the session id lives as long as the client).
    pub persistence: Option<Arc<dyn SessionPersistence>>,
    /// Sessions: how often to ping. Default 10 s.
    pub ping_interval: Duration,
    /// Sessions: no pong (or any frame) this long after a ping means the connection is dead.
    /// Default 5 s.
    pub ping_timeout: Duration,
    /// Sessions: messages kept while reconnecting. Default 256.
    pub send_queue: usize,
    /// Sessions: reconnect after a backend's own close code too. Default false.
    pub reconnect_on_backend_close: bool,
    /// Sessions: sent messages kept for re-sending after a handoff (the replay buffer), by
    /// count. Default 256.
    pub replay_buffer: usize,
    /// Sessions: the replay buffer's bound in payload bytes. Default 1 MiB.
    pub replay_buffer_bytes: usize,
    /// Sessions: events waiting for the app to read them; when full the session stops reading
    /// its socket (back-pressure reaches the router). Default 1024.
    pub event_buffer: usize,
    /// Sessions: longest one socket write may take; past it the connection counts as dead.
    /// Default 10 s.
    pub send_timeout: Duration,
    /// Sessions: full-jitter window of the first reconnect after `4001`/`4003` without
    /// `retry_after_ms`. Default 1 s.
    pub moved_jitter: Duration,
    /// Sessions: full-jitter window of the first reconnect after `4002`. Default 500 ms.
    pub backend_lost_jitter: Duration,
    /// Sessions: backoff after `1013`, a dead path or a failed reconnect. Default base 1 s,
    /// cap 30 s.
    pub reconnect_backoff: Backoff,
    /// Sessions: give up reconnecting after this long (a terminal `Closed`). Default 5 min.
    pub reconnect_give_up: Duration,
    /// Sessions: called before each reconnect attempt. Default none. Not plain data: left out
    /// of any serialised form.
    pub on_reconnect: Option<crate::pacing::ReconnectHook>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            regions: Vec::new(),
            directory: None,
            directory_refresh: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(15),
            max_attempts: 3,
            backoff: Backoff::default(),
            budget: BudgetConfig::default(),
            breaker: BreakerConfig::default(),
            retry_after_cap: Duration::from_secs(10),
            user_agent: format!("switchyard-client/{}", env!("CARGO_PKG_VERSION")),
            persistence: None,
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            send_queue: 256,
            reconnect_on_backend_close: false,
            replay_buffer: 256,
            replay_buffer_bytes: 1 << 20,
            event_buffer: 1024,
            send_timeout: Duration::from_secs(10),
            moved_jitter: crate::pacing::MOVED_JITTER_DEFAULT,
            backend_lost_jitter: crate::pacing::BACKEND_LOST_JITTER_DEFAULT,
            reconnect_backoff: crate::pacing::RECONNECT_BACKOFF_DEFAULT,
            reconnect_give_up: crate::pacing::RECONNECT_GIVE_UP_DEFAULT,
            on_reconnect: None,
        }
    }
}

/// Builds a [`Client`].
#[derive(Default)]
pub struct ClientBuilder {
    config: ClientConfig,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    };
}

impl ClientBuilder {
    /// Adds a region (in order of preference): a name and its router's `http://host:port`.
    pub fn region(mut self, name: impl Into<String>, endpoint: impl Into<String>) -> Self {
        let endpoint = endpoint.into().trim_end_matches('/').to_string();
        self.config.regions.push((name.into(), endpoint));
        self
    }

    /// Reads the region order from a router's `/v1/regions` (e.g.
    /// `http://127.0.0.1:8080/v1/regions?lat=48.86&lon=2.35`).
    pub fn directory(mut self, url: impl Into<String>) -> Self {
        self.config.directory = Some(url.into());
        self
    }

    setter!(directory_refresh: Duration);
    setter!(connect_timeout: Duration);
    setter!(attempt_timeout: Duration);
    setter!(deadline: Duration);
    setter!(max_attempts: u32);
    setter!(backoff: Backoff);
    setter!(budget: BudgetConfig);
    setter!(breaker: BreakerConfig);
    setter!(retry_after_cap: Duration);
    setter!(user_agent: String);
    setter!(ping_interval: Duration);
    setter!(ping_timeout: Duration);
    setter!(send_queue: usize);
    setter!(reconnect_on_backend_close: bool);
    setter!(replay_buffer: usize);
    setter!(replay_buffer_bytes: usize);
    setter!(event_buffer: usize);
    setter!(send_timeout: Duration);
    setter!(moved_jitter: Duration);
    setter!(backend_lost_jitter: Duration);
    setter!(reconnect_backoff: Backoff);
    setter!(reconnect_give_up: Duration);
    setter!(on_reconnect: Option<crate::pacing::ReconnectHook>);

    pub fn persistence(mut self, store: Arc<dyn SessionPersistence>) -> Self {
        self.config.persistence = Some(store);
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let config = self.config;
        if config.regions.is_empty() && config.directory.is_none() {
            return Err(Error::new(
                ErrorKind::Invalid(
                    "no region and no directory: add .region(..) or .directory(..)".into(),
                ),
                None,
                0,
                false,
            ));
        }
        if config.max_attempts == 0 {
            return Err(Error::new(
                ErrorKind::Invalid("max_attempts must be at least 1".into()),
                None,
                0,
                false,
            ));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
        let regions = config
            .regions
            .iter()
            .map(|(name, endpoint)| Arc::new(region(name, endpoint, config.breaker)))
            .collect();
        let session = config.persistence.as_ref().and_then(|p| p.load());
        Ok(Client {
            inner: Arc::new(Inner {
                budget: RetryBudget::new(config.budget),
                http,
                regions: RwLock::new(regions),
                directory_read: Mutex::new(None),
                session: Mutex::new(session),
                stats: Stats::default(),
                config,
            }),
        })
    }
}

fn region(name: &str, endpoint: &str, breaker: BreakerConfig) -> Region {
    Region {
        name: name.to_string(),
        endpoint: endpoint.trim_end_matches('/').to_string(),
        breaker: Breaker::new(breaker),
    }
}

/// A Switchyard client. Cheap to clone; share one per app.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    http: HyperClient<HttpConnector, Full<Bytes>>,
    regions: RwLock<Vec<Arc<Region>>>,
    directory_read: Mutex<Option<Instant>>,
    session: Mutex<Option<String>>,
    pub(crate) budget: RetryBudget,
    pub(crate) stats: Stats,
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path and query, e.g. `/api/titles?page=2`.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Retry even though the method is not idempotent (the caller knows it is safe).
    pub retry_non_idempotent: bool,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Request {
        Request {
            method,
            path: path.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            retry_non_idempotent: false,
        }
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Request {
        self.body = body.into();
        self
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Request {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(HeaderName::from_static(name), v);
        }
        self
    }

    /// Opts a non-idempotent request into retries.
    pub fn retry_non_idempotent(mut self) -> Request {
        self.retry_non_idempotent = true;
        self
    }

    fn retryable_method(&self) -> bool {
        self.retry_non_idempotent
            || matches!(
                self.method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::TRACE
                    | Method::PUT
                    | Method::DELETE
            )
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The region that answered.
    pub region: String,
}

impl Response {
    /// The backend that answered (`X-Backend-Id`), if it said.
    pub fn backend(&self) -> Option<&str> {
        self.headers
            .get("x-backend-id")
            .and_then(|v| v.to_str().ok())
    }
}

/// How one attempt ended.
enum Outcome {
    Done(Response),
    /// A failure retrying cannot fix (a backend's 500, an invalid request).
    Fail(ErrorKind),
    /// Try again: `safe` when the request surely did not reach a backend (any method may be
    /// retried), `move_on` when the next attempt should use another region, `wait` a
    /// server-given delay (Retry-After).
    Again {
        error: ErrorKind,
        safe: bool,
        move_on: bool,
        timeout: bool,
        wait: Option<Duration>,
    },
}

impl Client {
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.inner.stats;
        StatsSnapshot {
            attempts: s.attempts.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            failovers: s.failovers.load(Ordering::Relaxed),
            reconnects: s.reconnects.load(Ordering::Relaxed),
            budget_left: self.inner.budget.left(),
        }
    }

    /// The session id (token) the router gave this client, if any.
    pub fn session_id(&self) -> Option<String> {
        self.inner
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn remember_session(&self, headers: &HeaderMap) {
        if let Some(token) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
            let mut session = self.inner.session.lock().unwrap_or_else(|e| e.into_inner());
            if session.as_deref() != Some(token) {
                *session = Some(token.to_string());
                if let Some(p) = &self.inner.config.persistence {
                    p.save(token);
                }
            }
        }
    }

    pub async fn get(&self, path: &str) -> Result<Response, Error> {
        self.request(Request::new(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Result<Response, Error> {
        self.request(Request::new(Method::POST, path).body(body))
            .await
    }

    /// The regions in the order requests try them.
    pub async fn regions(&self) -> Vec<(String, String)> {
        self.refresh_directory(false).await;
        self.region_list()
            .iter()
            .map(|r| (r.name.clone(), r.endpoint.clone()))
            .collect()
    }

    pub(crate) fn region_list(&self) -> Vec<Arc<Region>> {
        self.inner
            .regions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the directory when it is due (or `now`); keeps breakers of regions it knew.
    pub(crate) async fn refresh_directory(&self, now: bool) {
        let Some(url) = &self.inner.config.directory else {
            return;
        };
        {
            let read = self
                .inner
                .directory_read
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !now && read.is_some_and(|t| t.elapsed() < self.inner.config.directory_refresh) {
                return;
            }
        }
        let fetched = async {
            let req = http::Request::get(url.as_str())
                .header(http::header::USER_AGENT, &self.inner.config.user_agent)
                .body(Full::new(Bytes::new()))
                .ok()?;
            let resp = self.inner.http.request(req).await.ok()?;
            if !resp.status().is_success() {
                return None;
            }
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            let answer: serde_json::Value = serde_json::from_slice(&body).ok()?;
            let regions: Vec<(String, String, bool)> = answer["regions"]
                .as_array()?
                .iter()
                .filter_map(|r| {
                    Some((
                        r["name"].as_str()?.to_string(),
                        r["endpoint"].as_str()?.to_string(),
                        r["healthy"].as_bool().unwrap_or(true)
                            && !r["evacuating"].as_bool().unwrap_or(false),
                    ))
                })
                .collect();
            Some(regions)
        };
        let fetched = tokio::time::timeout(self.inner.config.attempt_timeout, fetched).await;
        *self
            .inner
            .directory_read
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let Ok(Some(listed)) = fetched else {
            tracing::debug!(
                url,
                "region directory unreachable: keeping the region order"
            );
            return;
        };
        let known = self.region_list();
        let mut next: Vec<Arc<Region>> = listed
            .iter()
            .map(|(name, endpoint, _)| {
                known
                    .iter()
                    .find(|r| r.name == *name && r.endpoint == endpoint.trim_end_matches('/'))
                    .cloned()
                    .unwrap_or_else(|| Arc::new(region(name, endpoint, self.inner.config.breaker)))
            })
            .collect();
        // Regions configured statically but not listed stay as a last resort.
        for r in known {
            if !next.iter().any(|n| n.name == r.name) {
                next.push(r);
            }
        }
        *self
            .inner
            .regions
            .write()
            .unwrap_or_else(|e| e.into_inner()) = next;
    }

    /// The first region whose breaker allows a request, skipping `avoid`.
    pub(crate) fn pick(&self, avoid: &[String]) -> Option<Arc<Region>> {
        let regions = self.region_list();
        regions
            .iter()
            .filter(|r| !avoid.contains(&r.name))
            .find(|r| r.breaker.allows())
            .or_else(|| regions.iter().find(|r| r.breaker.allows()))
            .cloned()
    }

    pub(crate) fn region_failed(&self, region: &Region) {
        region.breaker.failure();
    }

    pub(crate) fn region_ok(&self, region: &Region) {
        region.breaker.success();
    }

    /// Sends a request: retried only where safe, within the retry budget, failing over to
    /// the next region when this one cannot serve. A 4xx (but 429) is returned as a
    /// response; a 5xx or 429 that is still there when retries end is an error.
    pub async fn request(&self, req: Request) -> Result<Response, Error> {
        let config = &self.inner.config;
        let started = Instant::now();
        let deadline = started + config.deadline;
        self.refresh_directory(false).await;
        let mut avoid: Vec<String> = Vec::new();
        let mut previous: Option<String> = None;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let Some(region) = self.pick(&avoid) else {
                return Err(Error::new(
                    ErrorKind::NoRegion,
                    previous.as_deref(),
                    attempt - 1,
                    true,
                ));
            };
            if previous.as_ref().is_some_and(|p| *p != region.name) {
                self.inner.stats.failovers.fetch_add(1, Ordering::Relaxed);
            }
            previous = Some(region.name.clone());
            self.inner.stats.attempts.fetch_add(1, Ordering::Relaxed);
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::new(
                    ErrorKind::Deadline(config.deadline),
                    Some(&region.name),
                    attempt,
                    true,
                ));
            }
            let span = tracing::debug_span!("attempt", attempt, region = %region.name, method = %req.method, path = %req.path);
            let outcome = self
                .attempt(&req, &region, config.attempt_timeout.min(left))
                .instrument(span)
                .await;
            let (error, safe, move_on, timeout, wait) = match outcome {
                Outcome::Done(resp) => {
                    self.region_ok(&region);
                    self.inner.budget.success();
                    self.remember_session(&resp.headers);
                    return Ok(resp);
                }
                Outcome::Fail(kind) => {
                    // The region answered: it is reachable, whatever the backend said.
                    self.region_ok(&region);
                    return Err(Error::new(kind, Some(&region.name), attempt, false));
                }
                Outcome::Again {
                    error,
                    safe,
                    move_on,
                    timeout,
                    wait,
                } => (error, safe, move_on, timeout, wait),
            };
            if move_on {
                self.region_failed(&region);
                avoid.push(region.name.clone());
                self.refresh_directory(true).await;
            } else if timeout {
                self.region_failed(&region);
            } else if matches!(error, ErrorKind::Status { .. }) {
                // A backend's 5xx or 429 came through the region: the region itself works.
                self.region_ok(&region);
            }
            let may_retry = safe || req.retryable_method();
            let give_up = |kind: ErrorKind, retryable: bool| {
                // A final 4xx-ish answer would have been Done; a 5xx/429 is reported as an error.
                Err(Error::new(kind, Some(&region.name), attempt, retryable))
            };
            if !may_retry {
                return give_up(error, false);
            }
            if attempt >= config.max_attempts {
                return give_up(error, true);
            }
            let pause = match (wait, move_on) {
                (Some(server_said), _) => server_said.min(config.retry_after_cap),
                // Another region is a fresh start: no need to wait.
                (None, true) => Duration::ZERO,
                (None, false) => config.backoff.delay(attempt - 1),
            };
            // The deadline first: a retry that cannot happen in time costs the budget nothing.
            if Instant::now() + pause >= deadline {
                return Err(Error::new(
                    ErrorKind::Deadline(config.deadline),
                    Some(&region.name),
                    attempt,
                    true,
                ));
            }
            if !self.inner.budget.try_retry(timeout) {
                tracing::debug!(attempt, "retry budget spent: not retrying");
                return give_up(ErrorKind::BudgetExhausted, true);
            }
            self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(pause).await;
        }
    }

    async fn attempt(&self, req: &Request, region: &Region, timeout: Duration) -> Outcome {
        let url = format!("{}{}", region.endpoint, req.path);
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
        let Ok(request) = builder.body(Full::new(req.body.clone())) else {
            return Outcome::Fail(ErrorKind::Invalid(format!(
                "cannot build a request for {url}"
            )));
        };
        let exchange = async {
            let resp = self.inner.http.request(request).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes());
            Ok::<_, hyper_util::client::legacy::Error>((parts, body))
        };
        let (parts, body) = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                return Outcome::Again {
                    error: ErrorKind::Timeout(timeout),
                    safe: false,
                    move_on: false,
                    timeout: true,
                    wait: None,
                };
            }
            Ok(Err(err)) => {
                let connect = err.is_connect();
                return Outcome::Again {
                    error: match connect {
                        true => ErrorKind::Connect(err.to_string()),
                        false => ErrorKind::Transport(err.to_string()),
                    },
                    // A request whose connection never opened reached no backend.
                    safe: connect,
                    move_on: connect,
                    timeout: false,
                    wait: None,
                };
            }
            Ok(Ok(answer)) => answer,
        };
        let body = match body {
            Ok(body) => body,
            Err(err) => {
                return Outcome::Again {
                    error: ErrorKind::Transport(format!("the body broke: {err}")),
                    safe: false,
                    move_on: false,
                    timeout: false,
                    wait: None,
                };
            }
        };
        let status = parts.status;
        let router_error = parts
            .headers
            .get(ROUTER_ERROR_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let wait = parts
            .headers
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let resp = Response {
            status,
            headers: parts.headers,
            body,
            region: region.name.clone(),
        };
        let failing = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
        if !failing {
            return Outcome::Done(resp);
        }
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
                wait: None,
            },
            Some("upstream_connect") => Outcome::Again {
                error,
                safe: true,
                move_on: false,
                timeout: false,
                wait,
            },
            // The backend's own 502/503/504 or 429 (or the router's timeout): retry where safe,
            // honouring Retry-After.
            _ if matches!(status.as_u16(), 429 | 502 | 503 | 504) => Outcome::Again {
                error,
                safe: false,
                move_on: false,
                timeout: status == StatusCode::GATEWAY_TIMEOUT,
                wait,
            },
            _ => Outcome::Fail(error),
        }
    }
}
