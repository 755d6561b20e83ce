//! The client: regions in order (static, or from a router's `/v1/regions`), each with one or
//! more router endpoints tried in turn; requests over HTTP/1.1 or HTTP/2 (TLS with rustls)
//! with per-attempt and overall deadlines, retries only where safe, `Retry-After` honoured,
//! full-jitter backoff under a retry budget, a circuit breaker per region and failover to the
//! next region.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::breaker::{Breaker, BreakerConfig};
use crate::budget::{BudgetConfig, RetryBudget};
use crate::directory::{self, Listing};
use crate::error::{Error, ErrorKind, Source};
pub use crate::request::{Request, Response, StreamingResponse};
use crate::telemetry;
use crate::tls::{self, TlsConfig};

/// The router's sticky-session header.
pub const SESSION_HEADER: &str = "x-switchyard-session";
/// The router's own-error header: present only on answers the router made itself.
pub const ROUTER_ERROR_HEADER: &str = "x-switchyard-error";
/// Default `max_response_bytes`: 8 MiB.
pub const MAX_RESPONSE_BYTES_DEFAULT: u64 = 8 << 20;

/// Where a client keeps its session id between runs (the app decides: a file, the keychain…).
pub trait SessionPersistence: Send + Sync {
    fn load(&self) -> Option<String>;
    fn save(&self, token: &str);
}

/// One region as configured: a name and its routers' endpoints, tried in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub name: String,
    /// `http://host:port` or `https://host[:port]`, no path.
    pub endpoints: Vec<String>,
}

/// One region the client may use.
#[derive(Debug)]
pub struct Region {
    pub name: String,
    /// Its routers, in the order tried.
    pub endpoints: Vec<String>,
    breaker: Breaker,
    /// The endpoint that answered last: tried first next time.
    preferred: AtomicUsize,
    /// No request before this (the region's `Retry-After`).
    hold: Mutex<Option<Instant>>,
}

impl Region {
    fn new(name: &str, endpoints: &[String], breaker: BreakerConfig) -> Region {
        Region {
            name: name.to_string(),
            endpoints: endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            breaker: Breaker::for_region(breaker, name),
            preferred: AtomicUsize::new(0),
            hold: Mutex::new(None),
        }
    }

    /// The endpoint tried first (the one that answered last).
    pub fn endpoint(&self) -> &str {
        let n = self.endpoints.len().max(1);
        self.endpoints
            .get(self.preferred.load(Ordering::Relaxed) % n)
            .map_or("", String::as_str)
    }

    /// The endpoints in the order to try them now: the preferred one, then the others in turn.
    pub(crate) fn endpoints_in_turn(&self) -> impl Iterator<Item = (usize, &str)> {
        let n = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed) % n.max(1);
        (0..n).map(move |k| {
            let i = (first + k) % n;
            (i, self.endpoints[i].as_str())
        })
    }

    pub(crate) fn prefer(&self, index: usize) {
        self.preferred.store(index, Ordering::Relaxed);
    }

    /// How long the region asked to be left alone from now (`Retry-After`).
    fn held_for(&self) -> Duration {
        self.hold
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map_or(Duration::ZERO, |t| {
                t.saturating_duration_since(Instant::now())
            })
    }

    fn hold_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut hold = self.hold.lock().unwrap_or_else(|e| e.into_inner());
        *hold = Some(hold.map_or(until, |h| h.max(until)));
    }
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

/// Everything a client is built with; every field has a documented default. As data (JSON,
/// TOML: [`ClientConfig::from_json`], [`ClientConfig::from_toml`]) the field names are the
/// builder's method names and durations are strings such as `"250ms"`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// Regions in order of preference, each with its routers' endpoints. Default none.
    pub regions: Vec<RegionConfig>,
    /// A router's `/v1/regions` URL: the region order comes from there (nearest healthy
    /// first; unhealthy or evacuating regions last), read at the first request, again when
    /// its `ttl_s` (else `directory_refresh`) has passed, and after a region fails.
    /// Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// Default 30 s.
    #[serde(with = "crate::config::duration")]
    pub directory_refresh: Duration,
    /// Connecting to a router (TCP and TLS). Default 1 s.
    #[serde(with = "crate::config::duration")]
    pub connect_timeout: Duration,
    /// One attempt, connect to whole answer. Default 5 s.
    #[serde(with = "crate::config::duration")]
    pub attempt_timeout: Duration,
    /// The whole request, retries and waits included. Default 15 s.
    #[serde(with = "crate::config::duration")]
    pub deadline: Duration,
    /// Attempts per request, the first included. Default 3.
    pub max_attempts: u32,
    #[serde(
        with = "crate::config::BackoffDef",
        default = "crate::config::default_backoff"
    )]
    pub backoff: Backoff,
    pub budget: BudgetConfig,
    pub breaker: BreakerConfig,
    /// Longest `Retry-After` honoured. Default 10 s.
    #[serde(with = "crate::config::duration")]
    pub retry_after_cap: Duration,
    /// Default `switchyard-client/<version>`.
    pub user_agent: String,
    /// Largest response body [`Client::request`] reads; past it the request fails with
    /// [`ErrorKind::BodyTooLarge`] (use [`Client::request_streaming`]). Default 8 MiB.
    pub max_response_bytes: u64,
    /// Streamed bodies: longest wait for the next chunk. Default 30 s.
    #[serde(with = "crate::config::duration")]
    pub body_idle_timeout: Duration,
    /// Trusted roots and the app's own CA for `https://` and `wss://`. Default: the bundled
    /// web roots.
    pub tls: TlsConfig,
    /// Default none (the session id lives as long as the client).
    #[serde(skip)]
    pub persistence: Option<Arc<dyn SessionPersistence>>,
    /// Sessions: how often to ping. Default 10 s.
    #[serde(with = "crate::config::duration")]
    pub ping_interval: Duration,
    /// Sessions: no pong (or any frame) this long after a ping means the connection is dead.
    /// Default 5 s.
    #[serde(with = "crate::config::duration")]
    pub ping_timeout: Duration,
    /// Sessions: messages kept while reconnecting. Default 256.
    pub send_queue: usize,
    /// Sessions: reconnect after a backend's own close code too. Default false.
    pub reconnect_on_backend_close: bool,
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
            max_response_bytes: MAX_RESPONSE_BYTES_DEFAULT,
            body_idle_timeout: Duration::from_secs(30),
            tls: TlsConfig::default(),
            persistence: None,
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            send_queue: 256,
            reconnect_on_backend_close: false,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_string(self) {
            Ok(json) => write!(f, "ClientConfig {json}"),
            Err(_) => f.write_str("ClientConfig { .. }"),
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
    /// A builder starting from `config` (e.g. read by [`ClientConfig::from_json`]).
    pub fn from_config(config: ClientConfig) -> ClientBuilder {
        ClientBuilder { config }
    }

    /// Adds a region (in order of preference): a name and its router's `http://host:port`
    /// or `https://host`. The same name again adds another endpoint to that region.
    pub fn region(self, name: impl Into<String>, endpoint: impl Into<String>) -> Self {
        self.region_endpoints(name, [endpoint])
    }

    /// Adds a region with several routers, tried in turn (a connect failure moves to the next
    /// one) before the next region.
    pub fn region_endpoints<E: Into<String>>(
        mut self,
        name: impl Into<String>,
        endpoints: impl IntoIterator<Item = E>,
    ) -> Self {
        let name = name.into();
        let endpoints = endpoints
            .into_iter()
            .map(|e| e.into().trim_end_matches('/').to_string());
        match self.config.regions.iter_mut().find(|r| r.name == name) {
            Some(region) => region.endpoints.extend(endpoints),
            None => self.config.regions.push(RegionConfig {
                name,
                endpoints: endpoints.collect(),
            }),
        }
        self
    }

    /// Reads the region order from a router's `/v1/regions` (e.g.
    /// `https://eu-west.example.net/v1/regions?lat=48.86&lon=2.35`).
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
    setter!(max_response_bytes: u64);
    setter!(body_idle_timeout: Duration);
    setter!(tls: TlsConfig);
    setter!(ping_interval: Duration);
    setter!(ping_timeout: Duration);
    setter!(send_queue: usize);
    setter!(reconnect_on_backend_close: bool);

    /// Trusts the CA certificates in this PEM text too (a private CA).
    pub fn tls_ca_pem(mut self, pem: impl Into<String>) -> Self {
        self.config.tls.ca_pem = Some(pem.into());
        self
    }

    /// Trusts the CA certificates in this PEM file too.
    pub fn tls_ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.config.tls.ca_file = Some(path.into());
        self
    }

    /// Which public roots to trust (bundled web roots by default).
    pub fn tls_roots(mut self, roots: tls::Roots) -> Self {
        self.config.tls.roots = roots;
        self
    }

    pub fn persistence(mut self, store: Arc<dyn SessionPersistence>) -> Self {
        self.config.persistence = Some(store);
        self
    }

    /// Checks the configuration and builds the client; a setting that cannot work is an
    /// [`ErrorKind::Config`] naming it.
    pub fn build(self) -> Result<Client, Error> {
        let config = self.config;
        check(&config).map_err(|why| Error::invalid(ErrorKind::Config(why)))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls::client_config(&config.tls, tls::ALPN_HTTP)?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(connector);
        let http = HyperClient::builder(TokioExecutor::new()).build(https);
        let ws_tls = Arc::new(tls::client_config(&config.tls, tls::ALPN_WEBSOCKET)?);
        let regions = config
            .regions
            .iter()
            .map(|r| Arc::new(Region::new(&r.name, &r.endpoints, config.breaker)))
            .collect();
        let session = config.persistence.as_ref().and_then(|p| p.load());
        Ok(Client {
            inner: Arc::new(Inner {
                budget: RetryBudget::new(config.budget),
                http,
                ws_tls,
                regions: RwLock::new(regions),
                directory: Mutex::new(DirectoryState::default()),
                directory_reading: Arc::new(tokio::sync::Mutex::new(())),
                directory_fetches: AtomicU64::new(0),
                session: Mutex::new(session),
                stats: Stats::default(),
                config,
            }),
        })
    }
}

/// What a configuration must hold; the first problem, named by its field.
fn check(config: &ClientConfig) -> Result<(), String> {
    if config.regions.is_empty() && config.directory.is_none() {
        return Err("no region and no directory: add .region(..) or .directory(..)".into());
    }
    for (i, region) in config.regions.iter().enumerate() {
        if region.name.trim().is_empty() {
            return Err(format!("regions[{i}].name is empty"));
        }
        if region.endpoints.is_empty() {
            return Err(format!("regions[{i}] ({}): no endpoint", region.name));
        }
        for (k, endpoint) in region.endpoints.iter().enumerate() {
            check_url(endpoint, false)
                .map_err(|why| format!("regions[{i}].endpoints[{k}] {endpoint:?}: {why}"))?;
        }
    }
    if let Some(url) = &config.directory {
        check_url(url, true).map_err(|why| format!("directory {url:?}: {why}"))?;
    }
    let positive = [
        ("connect_timeout", config.connect_timeout),
        ("attempt_timeout", config.attempt_timeout),
        ("deadline", config.deadline),
        ("directory_refresh", config.directory_refresh),
        ("body_idle_timeout", config.body_idle_timeout),
    ];
    if let Some((name, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
        return Err(format!("{name} must be more than 0"));
    }
    if config.max_attempts == 0 {
        return Err("max_attempts must be at least 1".into());
    }
    if config.max_response_bytes == 0 {
        return Err("max_response_bytes must be at least 1".into());
    }
    if config.breaker.failures == 0 {
        return Err("breaker.failures must be at least 1".into());
    }
    if http::HeaderValue::from_str(&config.user_agent).is_err() {
        return Err(format!(
            "user_agent {:?} is not a valid header value",
            config.user_agent
        ));
    }
    Ok(())
}

/// An `http://` or `https://` URL with a host (and, unless `path_ok`, nothing after it).
fn check_url(url: &str, path_ok: bool) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|err| format!("not a URL ({err})"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("scheme {other}: expected http or https")),
        None => return Err("no scheme: expected http:// or https://".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    if !path_ok && uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err("a router endpoint has no path (the request's path is added to it)".into());
    }
    Ok(())
}

/// A Switchyard client. Cheap to clone; share one per app.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

type Http = HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    http: Http,
    /// TLS for `wss://` sessions (ALPN `http/1.1` only: the upgrade is HTTP/1.1).
    pub(crate) ws_tls: Arc<rustls::ClientConfig>,
    regions: RwLock<Vec<Arc<Region>>>,
    /// When the directory was read and is due again.
    directory: Mutex<DirectoryState>,
    /// Held while the directory is read: one read in flight, the others wait for it.
    directory_reading: Arc<tokio::sync::Mutex<()>>,
    directory_fetches: AtomicU64,
    session: Mutex<Option<String>>,
    pub(crate) budget: RetryBudget,
    pub(crate) stats: Stats,
}

#[derive(Default)]
struct DirectoryState {
    /// When the last read ended (success or not).
    read_at: Option<Instant>,
    /// When the list is due again.
    next_read: Option<Instant>,
}

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

    /// Whether `region`'s circuit breaker is open (or half-open) now; `None` for a region
    /// this client does not know.
    pub fn breaker_open(&self, region: &str) -> Option<bool> {
        self.region_list()
            .iter()
            .find(|r| r.name == region)
            .map(|r| r.breaker.is_open())
    }

    /// How many times the region directory was read (successfully or not).
    pub fn directory_reads(&self) -> u64 {
        self.inner.directory_fetches.load(Ordering::Relaxed)
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
        self.request(Request::new(http::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Result<Response, Error> {
        self.request(Request::new(http::Method::POST, path).body(body))
            .await
    }

    /// The regions in the order requests try them: `(name, first endpoint)`.
    pub async fn regions(&self) -> Vec<(String, String)> {
        self.refresh_directory(false).await;
        self.region_list()
            .iter()
            .map(|r| (r.name.clone(), r.endpoint().to_string()))
            .collect()
    }

    pub(crate) fn region_list(&self) -> Vec<Arc<Region>> {
        self.inner
            .regions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the directory when it is due (or, with `now`, unless a read ended since this
    /// call began), waiting at most `attempt_timeout`.
    pub(crate) async fn refresh_directory(&self, now: bool) {
        self.refresh_directory_within(now, self.inner.config.attempt_timeout)
            .await;
    }

    /// [`Client::refresh_directory`] for a caller with `budget` left (a request's remaining
    /// deadline). One read in flight at a time. While the client knows some region order, a
    /// due read runs in the background and the caller goes on with that order
    /// (stale-while-revalidate); with none yet, the caller waits for the read in flight (or
    /// makes it), at most `budget`.
    pub(crate) async fn refresh_directory_within(&self, now: bool, budget: Duration) {
        if self.inner.config.directory.is_none() {
            return;
        }
        let asked = Instant::now();
        if !self.directory_due(now, asked) {
            return;
        }
        if !self.region_list().is_empty() {
            if let Ok(reading) = self.inner.directory_reading.clone().try_lock_owned() {
                let client = self.clone();
                tokio::spawn(async move {
                    if client.directory_due(now, asked) {
                        client.read_directory().await;
                    }
                    drop(reading);
                });
            }
            return;
        }
        let wait = async {
            let _reading = self.inner.directory_reading.lock().await;
            // The read this caller waited for may be the one it needed.
            if self.directory_due(now, asked) {
                self.read_directory().await;
            }
        };
        if tokio::time::timeout(budget, wait).await.is_err() {
            tracing::debug!("no region directory within the request's deadline");
        }
    }

    /// Whether the directory should be read for a caller that asked at `asked`: never read,
    /// or (with `now`) not read since, or its time has come.
    fn directory_due(&self, now: bool, asked: Instant) -> bool {
        let state = self
            .inner
            .directory
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match (now, state.read_at, state.next_read) {
            (_, None, _) => true,
            // A read that ended after this call began is as fresh as one made now.
            (true, Some(read), _) => read < asked,
            (false, _, next) => next.is_none_or(|n| Instant::now() >= n),
        }
    }

    /// One read of the directory (the caller holds `directory_reading`): a good answer
    /// replaces the region order and says when to read again; a failed one keeps the order.
    async fn read_directory(&self) {
        let Some(url) = &self.inner.config.directory else {
            return;
        };
        self.inner.directory_fetches.fetch_add(1, Ordering::Relaxed);
        let fetched =
            tokio::time::timeout(self.inner.config.attempt_timeout, self.fetch_directory(url))
                .await
                .unwrap_or_else(|_| Err("no answer in time".into()));
        let finished = Instant::now();
        let next_read = match fetched {
            Ok(listing) => {
                let ttl = listing.ttl.unwrap_or(self.inner.config.directory_refresh);
                self.apply_directory(listing);
                finished + ttl
            }
            Err(why) => {
                tracing::debug!(
                    url,
                    why,
                    "region directory unreadable: keeping the region order"
                );
                finished + self.inner.config.directory_refresh
            }
        };
        let mut state = self
            .inner
            .directory
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        state.read_at = Some(finished);
        state.next_read = Some(next_read);
    }

    async fn fetch_directory(&self, url: &str) -> Result<Listing, String> {
        let req = http::Request::get(url)
            .header(http::header::USER_AGENT, &self.inner.config.user_agent)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|err| err.to_string())?;
        let resp = self
            .inner
            .http
            .request(req)
            .await
            .map_err(|err| error_chain(&err))?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        let limit = self.inner.config.max_response_bytes as usize;
        let body = Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|err| err.to_string())?
            .to_bytes();
        directory::parse(&body)
    }

    /// Replaces the region order with the directory's; keeps the breakers of regions it knew;
    /// regions configured statically but not listed stay as a last resort.
    fn apply_directory(&self, listing: Listing) {
        let known = self.region_list();
        let mut next: Vec<Arc<Region>> = listing
            .regions
            .iter()
            .map(|listed| {
                known
                    .iter()
                    .find(|r| r.name == listed.name && r.endpoints == listed.endpoints)
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Region::new(
                            &listed.name,
                            &listed.endpoints,
                            self.inner.config.breaker,
                        ))
                    })
            })
            .collect();
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

    /// The region to try next: the first whose breaker allows a request, not in `avoid` and
    /// not holding requests off (`Retry-After`); failing that one that holds them off (the
    /// caller waits); failing that any region whose breaker allows it.
    pub(crate) fn pick(&self, avoid: &[String]) -> Option<Arc<Region>> {
        let regions = self.region_list();
        let fresh = |r: &&Arc<Region>| !avoid.contains(&r.name);
        regions
            .iter()
            .filter(fresh)
            .find(|r| r.held_for().is_zero() && r.breaker.allows())
            .or_else(|| regions.iter().filter(fresh).find(|r| r.breaker.allows()))
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
    /// response; a 5xx or 429 that is still there when retries end is an error. The body is
    /// read whole, up to `max_response_bytes`.
    pub async fn request(&self, req: Request) -> Result<Response, Error> {
        let (parts, body, region, attempt) = self.exchange(&req).await?;
        let limit = self.inner.config.max_response_bytes;
        let body = match Limited::new(body, limit as usize).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                return Err(Error::new(
                    ErrorKind::BodyTooLarge { limit },
                    Some(&region),
                    attempt,
                    false,
                ));
            }
            Err(err) => {
                let kind = ErrorKind::Transport(format!("the body broke: {err}"));
                return Err(Error::new(kind, Some(&region), attempt, false)
                    .with_source(Some(Arc::from(err))));
            }
        };
        Ok(Response {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
            region,
        })
    }

    /// Like [`Client::request`], but returns once the answer's head is in: the body is read
    /// with [`StreamingResponse::chunk`], without a size limit, each chunk within
    /// `body_idle_timeout`. Retries and the deadline cover the way to the head.
    pub async fn request_streaming(&self, req: Request) -> Result<StreamingResponse, Error> {
        let (parts, body, region, _) = self.exchange(&req).await?;
        Ok(StreamingResponse {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            region,
            body,
            idle_timeout: self.inner.config.body_idle_timeout,
        })
    }

    /// The retry loop: attempts until an answer to return (head and body still to read) or
    /// an error.
    async fn exchange(
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
            let pause = match (Arc::ptr_eq(&next, &region), wait) {
                // Another region is a fresh start: no need to wait (unless it asked).
                (false, _) => Duration::ZERO,
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
            if next.name != region.name {
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
