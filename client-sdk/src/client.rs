//! The client: regions in order (static, or from a router's `/v1/regions`), each with one or
//! more router endpoints tried in turn; requests over HTTP/1.1 or HTTP/2 (TLS with rustls)
//! with per-attempt and overall deadlines, retries only where safe, `Retry-After` honoured,
//! full-jitter backoff under a retry budget, a circuit breaker per region and failover to the
//! next region.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use crate::backoff::Backoff;
use crate::breaker::BreakerConfig;
use crate::budget::{BudgetConfig, RetryBudget};
use crate::connector::TimedConnector;
use crate::directory::DirectoryState;
use crate::error::{Error, ErrorKind};
pub(crate) use crate::exchange::host_of;
pub use crate::region::Region;
pub use crate::request::{Request, Response, StreamingResponse};
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
    /// Connecting to a router, TCP and TLS handshake together. Default 1 s.
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
    /// Retries of a request. Default base 50 ms, cap 2 s.
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
    #[serde(with = "crate::config::duration")]
    pub send_timeout: Duration,
    /// Sessions: full-jitter window of the first reconnect after `4001`/`4003` without
    /// `retry_after_ms`. Default 1 s.
    #[serde(with = "crate::config::duration")]
    pub moved_jitter: Duration,
    /// Sessions: full-jitter window of the first reconnect after `4002`. Default 500 ms.
    #[serde(with = "crate::config::duration")]
    pub backend_lost_jitter: Duration,
    /// Sessions: backoff after `1013`, a dead path or a failed reconnect. Default base 1 s,
    /// cap 30 s.
    pub reconnect_backoff: Backoff,
    /// Sessions: give up reconnecting after this long (a terminal `Closed`). Default 5 min.
    #[serde(with = "crate::config::duration")]
    pub reconnect_give_up: Duration,
    /// Sessions: called before each reconnect attempt. Default none. Not plain data: left out
    /// of any serialised form.
    #[serde(skip)]
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
            retry_after_cap: crate::pacing::RETRY_AFTER_CAP_DEFAULT,
            user_agent: format!("switchyard-client/{}", env!("CARGO_PKG_VERSION")),
            max_response_bytes: MAX_RESPONSE_BYTES_DEFAULT,
            body_idle_timeout: Duration::from_secs(30),
            tls: TlsConfig::default(),
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
    ///
    /// ```
    /// let client = switchyard_client::Client::builder()
    ///     .region_endpoints("eu-west", ["https://eu-1.example.net", "https://eu-2.example.net"])
    ///     .region("us-east", "https://us.example.net")
    ///     .build()?;
    /// # Ok::<(), switchyard_client::Error>(())
    /// ```
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
    setter!(replay_buffer: usize);
    setter!(replay_buffer_bytes: usize);
    setter!(event_buffer: usize);
    setter!(send_timeout: Duration);
    setter!(moved_jitter: Duration);
    setter!(backend_lost_jitter: Duration);
    setter!(reconnect_backoff: Backoff);
    setter!(reconnect_give_up: Duration);
    setter!(on_reconnect: Option<crate::pacing::ReconnectHook>);

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
        let connector = TimedConnector::new(https, config.connect_timeout);
        let http = HyperClient::builder(TokioExecutor::new()).build(connector);
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
/// The longest any duration setting may be.
const MAX_DURATION: Duration = Duration::from_secs(30 * 86_400);

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
        ("ping_interval", config.ping_interval),
        ("ping_timeout", config.ping_timeout),
        ("send_timeout", config.send_timeout),
        ("reconnect_give_up", config.reconnect_give_up),
    ];
    if let Some((name, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
        return Err(format!("{name} must be more than 0"));
    }
    // Every duration is added to a clock somewhere: none may be so large that it overflows.
    let others = [
        ("breaker.cool_off", config.breaker.cool_off),
        ("retry_after_cap", config.retry_after_cap),
        ("moved_jitter", config.moved_jitter),
        ("backend_lost_jitter", config.backend_lost_jitter),
        ("backoff.base", config.backoff.base),
        ("backoff.cap", config.backoff.cap),
        ("reconnect_backoff.base", config.reconnect_backoff.base),
        ("reconnect_backoff.cap", config.reconnect_backoff.cap),
    ];
    for (name, d) in positive.iter().chain(&others) {
        if *d > MAX_DURATION {
            return Err(format!(
                "{name} is {d:?}: at most {} days",
                MAX_DURATION.as_secs() / 86_400
            ));
        }
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

type Http = HyperClient<TimedConnector, Full<Bytes>>;

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) http: Http,
    /// TLS for `wss://` sessions (ALPN `http/1.1` only: the upgrade is HTTP/1.1).
    pub(crate) ws_tls: Arc<rustls::ClientConfig>,
    pub(crate) regions: RwLock<Vec<Arc<Region>>>,
    /// When the directory was read and is due again.
    pub(crate) directory: Mutex<DirectoryState>,
    /// Held while the directory is read: one read in flight, the others wait for it.
    pub(crate) directory_reading: Arc<tokio::sync::Mutex<()>>,
    pub(crate) directory_fetches: AtomicU64,
    pub(crate) session: Mutex<Option<String>>,
    pub(crate) budget: RetryBudget,
    pub(crate) stats: Stats,
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
        let body = match Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
            .collect()
            .await
        {
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
    ///
    /// ```no_run
    /// # async fn run(client: switchyard_client::Client) -> Result<(), switchyard_client::Error> {
    /// let req = switchyard_client::Request::new(http::Method::GET, "/stream/movie");
    /// let mut resp = client.request_streaming(req).await?;
    /// while let Some(chunk) = resp.chunk().await? {
    ///     println!("{} bytes", chunk.len());
    /// }
    /// # Ok(())
    /// # }
    /// ```
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
}

impl From<&ClientConfig> for crate::pacing::PacingConfig {
    /// A server-given wait is capped at the larger of `retry_after_cap` and the reconnect
    /// backoff's cap: a router spreading reconnects over a long window must be obeyed.
    fn from(config: &ClientConfig) -> Self {
        crate::pacing::PacingConfig {
            moved_jitter: config.moved_jitter,
            backend_lost_jitter: config.backend_lost_jitter,
            backoff: config.reconnect_backoff,
            retry_after_cap: config.retry_after_cap.max(config.reconnect_backoff.cap),
        }
    }
}
