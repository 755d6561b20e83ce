//! The TOML file as written: serde structs that mirror it key for key. Unknown keys are
//! rejected here; everything else (references, ranges, addresses) is checked in
//! [`super::validate`], which turns these into the typed [`super::Config`].
//!
//! Every table whose keys are all optional has `#[serde(default)]` and one `Default` impl
//! beside it; the field docs say each value and why.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The whole file.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub node: RawNode,
    pub log: RawLog,
    pub listeners: Vec<RawListener>,
    pub routes: Vec<RawRoute>,
    pub pools: Vec<RawPool>,
    pub regions: Vec<RawRegion>,
    /// The region directory and client location (`GET /v1/regions`).
    pub directory: RawDirectory,
    /// Request size limits on every listener.
    pub limits: RawLimits,
    pub sessions: RawSessions,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSessions {
    /// `"memory"` (default; one node) or `"redis"` (shared by every node using it).
    pub store: SessionStore,
    /// Environment variable holding the token-signing key. Default `SWITCHYARD_COOKIE_KEY`;
    /// when it is unset a random key is used and tokens last only as long as the process.
    pub cookie_key_env: String,
    /// A file holding the key instead (its content, whitespace trimmed). Wins over the
    /// environment variable when both are set.
    pub cookie_key_file: Option<String>,
    /// A session idle this long is forgotten. Default 1 h.
    pub ttl: DurationStr,
    /// Key rotation: environment variable with the previous key, whose tokens are still
    /// accepted (and re-issued with the current key) for `previous_key_window`.
    pub previous_key_env: Option<String>,
    /// Default 24 h.
    pub previous_key_window: DurationStr,
    /// With `store = "redis"`: `redis://` or `rediss://` URL (user and password in it for
    /// AUTH). Default `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// Prefix of every session key. Default `switchyard:session:`.
    pub key_prefix: String,
    /// Longest wait for one Redis call before the store counts as down. Default 100 ms.
    pub store_timeout: DurationStr,
    /// Redis Sentinel: `host:port` of each sentinel. When set, the master's address comes
    /// from the sentinels (asked again whenever the store is down, so a failover is
    /// followed); `redis_url` then only gives the master's user, password, database and TLS.
    pub sentinels: Vec<String>,
    /// The master name the sentinels monitor. Default `mymaster`.
    pub sentinel_master: String,
    /// Redis Cluster: `host:port` of some of its nodes (the rest are found from them).
    /// `redis_url` then only gives the user, password and TLS. Not with `sentinels`.
    pub cluster_nodes: Vec<String>,
    /// When a session is moved, how long the router waits for the backend's close (relaying
    /// what the backend still sends) before it closes the client. Default 2 s.
    pub handoff_linger: DurationStr,
    /// Most session records one node keeps; past it the oldest are dropped. Default 1,000,000.
    pub max_records: usize,
    /// With the Redis store: how long Redis keeps the record of a session whose client has
    /// not come back with its token yet (nor held a WebSocket session). Its first return
    /// writes the record with the full `ttl`. What token-less requests can put in Redis is
    /// then their rate times this, not times `ttl`. Default 60 s (or `ttl` when shorter); at
    /// most `ttl`.
    pub unconfirmed_ttl: Option<DurationStr>,
}

impl Default for RawSessions {
    fn default() -> Self {
        RawSessions {
            store: SessionStore::Memory,
            cookie_key_env: "SWITCHYARD_COOKIE_KEY".to_string(),
            cookie_key_file: None,
            ttl: DurationStr::secs(3600),
            previous_key_env: None,
            previous_key_window: DurationStr::secs(24 * 3600),
            redis_url: "redis://127.0.0.1:6379".to_string(),
            key_prefix: "switchyard:session:".to_string(),
            store_timeout: DurationStr::millis(100),
            sentinels: Vec::new(),
            sentinel_master: "mymaster".to_string(),
            cluster_nodes: Vec::new(),
            handoff_linger: DurationStr::secs(2),
            max_records: DEFAULT_MAX_RECORDS,
            unconfirmed_ttl: None,
        }
    }
}

/// Default `[sessions] unconfirmed_ttl` (or the session `ttl` when that is shorter).
pub const DEFAULT_UNCONFIRMED_TTL: Duration = Duration::from_secs(60);

/// Default `[sessions] max_records`.
pub const DEFAULT_MAX_RECORDS: usize = 1_000_000;

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawNode {
    /// Region this node belongs to. Default `"local"`.
    pub region: String,
    /// Public listener. Default `0.0.0.0:8080`, like most HTTP proxies' first example.
    pub listen: String,
    /// Admin listener (`/metrics`, `/healthz`, `/readyz`). Default `127.0.0.1:9901`: loopback
    /// only, because it exposes internals.
    pub admin_listen: String,
    /// Request-path worker threads. Default: the number of cores.
    pub workers: Option<usize>,
    /// How long a graceful stop waits for in-flight requests and sessions. Default 30 s.
    pub shutdown_timeout: DurationStr,
    /// On SIGTERM/SIGINT, how long `/readyz` fails before the listeners stop accepting, so
    /// load balancers in front notice first. Default 5 s.
    pub shutdown_delay: DurationStr,
    /// On a graceful stop, the live sessions are moved one at a time over this window (at
    /// most half of `shutdown_timeout`), so their reconnects do not arrive at the other nodes
    /// at once. Default 5 s.
    pub shutdown_spread: DurationStr,
    /// Most client HTTP connections open at once on this node's public listeners; past it
    /// the listeners stop accepting (connections wait in the backlog) until some close.
    /// Upgraded WebSocket sessions are counted by `max_sessions`, not here. Default 10000.
    pub max_connections: usize,
    /// Proxies (CIDRs) whose `X-Forwarded-For` is believed: from them, the client is the
    /// rightmost address in it that is not itself a trusted proxy. Default none.
    pub trusted_proxies: Vec<String>,
    /// A file holding the admin API's bearer token. Without it the token comes from the
    /// environment variable `admin_token_env`; with neither, the admin API is read-only.
    pub admin_token_file: Option<String>,
    /// Default `SWITCHYARD_ADMIN_TOKEN`.
    pub admin_token_env: String,
}

impl Default for RawNode {
    fn default() -> Self {
        RawNode {
            region: "local".to_string(),
            listen: "0.0.0.0:8080".to_string(),
            admin_listen: "127.0.0.1:9901".to_string(),
            workers: None,
            shutdown_timeout: DurationStr::secs(30),
            shutdown_delay: DurationStr::secs(5),
            shutdown_spread: DurationStr::secs(5),
            max_connections: 10_000,
            trusted_proxies: Vec::new(),
            admin_token_file: None,
            admin_token_env: "SWITCHYARD_ADMIN_TOKEN".to_string(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLog {
    /// One access-log line per request. Default on: an operator expects to see traffic.
    pub access: bool,
    /// `"text"` (default) or `"json"`.
    pub format: LogFormat,
    /// Log filter in `RUST_LOG` syntax; `RUST_LOG` itself wins when set. Default `"info"`.
    pub level: String,
    /// A file for the access lines (appended to, buffered; reopened on SIGHUP for log
    /// rotation) instead of stdout. Default: none, access lines go to stdout with the rest.
    pub access_path: Option<String>,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            access: true,
            format: LogFormat::Text,
            level: "info".to_string(),
            access_path: None,
        }
    }
}

/// An extra plain-HTTP listener beside `node.listen`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub id: String,
    pub address: String,
    /// Terminate TLS here with these certificates.
    pub tls: Option<RawTls>,
    /// Plain listeners only: answer every request with a 308 to the same URL on HTTPS (on
    /// the first TLS listener's port). Default false.
    #[serde(default)]
    pub redirect_https: bool,
    /// Connections start with a PROXY protocol header (v1 or v2) from the L4 balancer in front:
    /// its source address is the client's. Default false.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// With `proxy_protocol`: the balancers (CIDRs) allowed to send the header; a connection
    /// from anywhere else is closed before a byte of it is read (HAProxy's `expect-proxy`
    /// with a source list). Default: any — the listener must then be reachable only by them.
    #[serde(default)]
    pub proxy_protocol_from: Vec<String>,
    /// Most connections open at once on this listener (HAProxy's `maxconn` on a `bind`): a
    /// connection past it waits, unserved, for one to close — up to `[limits] header_timeout`,
    /// then it is closed. Default: only `node.max_connections` (all listeners together).
    pub max_connections: Option<u32>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// The first one also answers clients that send no server name or an unknown one.
    pub certificates: Vec<RawCertificate>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    /// Server names (SNI) it answers, e.g. `["example.com", "*.example.com"]`.
    #[serde(default)]
    pub names: Vec<String>,
    /// PEM certificate chain file.
    pub cert: String,
    /// PEM private key file.
    pub key: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub id: String,
    /// Host to match (port ignored, case-insensitive); absent = any host.
    pub host: Option<String>,
    /// Path prefix matched on segment boundaries. Default `/` (everything).
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// Remove the prefix before forwarding (`/api/x` → `/x`). Default false.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Keep a client's session on one backend (tokens, see `[sessions]`). Default false.
    #[serde(default)]
    pub sticky: bool,
    /// The pool that serves the route. Either this or `split`.
    pub pool: Option<String>,
    /// A weighted split among pools in place of `pool`:
    /// `[{ pool = "api-v1", weight = 95 }, { pool = "api-v2", weight = 5 }]`. Each viewer is
    /// assigned by a hash of `split_by`, so it stays in one pool across requests and nodes.
    pub split: Option<Vec<RawSplitPart>>,
    /// Blue-green: the pool that takes over when the admin API switches the route
    /// (`POST /admin/v1/routes/{id}/switch`); `pool` serves until then. Not with `split`.
    pub standby: Option<String>,
    /// Shadow traffic: a share of the route's requests also sent to another pool, answers
    /// discarded: `{ pool = "api-v2", percent = 10 }`.
    pub shadow: Option<RawShadow>,
    /// What assigns a viewer to a pool of the split: `{ header = "x-user-id" }` or
    /// `{ cookie = "uid" }`. Default: the session token (a first request without one is
    /// given one and assigned by it).
    pub split_by: Option<RawSplitBy>,
    /// A header whose value, a pool of the split, picks that pool (for testers); off when
    /// absent.
    pub split_override_header: Option<String>,
    /// A response header naming the pool that served the request; off when absent.
    pub split_response_header: Option<String>,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    /// Extra attempts on another backend after a failure before any answer byte reached the
    /// client. Default 1.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Also retry non-idempotent methods (POST, PATCH) after failures other than connect
    /// failures. Default false: the backend may have acted on them.
    #[serde(default)]
    pub retry_non_idempotent: bool,
    /// Cap on retries so an outage cannot become a retry storm.
    #[serde(default)]
    pub retry_budget: RawRetryBudget,
    /// Request bodies up to this size (with a Content-Length) are read whole first so a retry
    /// can send them again; larger ones are streamed and never retried. Default 64 KiB.
    #[serde(default = "default_retry_buffer_bytes")]
    pub retry_buffer_bytes: u64,
    /// When the local pool has no capacity (no eligible backend, or the region's load over
    /// `overflow_load`): `"off"` (default: 503), `"forward"` (proxy to the nearest healthy
    /// region's router, one hop at most) or `"redirect"` (307 to it; WebSocket sessions get
    /// close `4003`).
    #[serde(default)]
    pub overflow: Overflow,
    /// Local region load (0–1+) above which the route overflows too. Default: only when no
    /// backend takes work.
    pub overflow_load: Option<f64>,
    /// Largest request body with a `Content-Length` (413 beyond, before any byte is read).
    /// Default 33554432 (32 MiB); 0 means no limit.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Rate limits of the route (per client address and per API key). Default: per client
    /// address as `[limits] rate_per_ip` says, no key limit.
    pub rate_limit: Option<RawRateLimit>,
    /// Who is shed first when its pool is over `max_inflight`: `"low"`, `"normal"`
    /// (default) or `"high"`.
    #[serde(default)]
    pub priority: Priority,
}

/// One pool of a route's `split`: `{ pool = "api-v2", weight = 5 }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSplitPart {
    pub pool: String,
    /// Its share against the other parts' weights (0 takes no traffic but the override's).
    pub weight: i64,
}

/// `shadow = { pool = "api-v2", percent = 10, timeout = "1s", max_body_bytes = 65536,
/// max_concurrent = 100 }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawShadow {
    pub pool: String,
    /// Share of the route's requests mirrored, in percent (0 < percent ≤ 100). Default 100.
    #[serde(default = "default_shadow_percent")]
    pub percent: f64,
    /// Longest wait for the shadow's answer (connect included). Default 1 s.
    #[serde(default = "default_shadow_timeout")]
    pub timeout: DurationStr,
    /// Requests with a larger body (or a streamed one) are not mirrored. Default 64 KiB.
    #[serde(default = "default_shadow_body")]
    pub max_body_bytes: u64,
    /// Mirrored requests in flight at once, per node; past it requests are not mirrored.
    /// Default 100.
    #[serde(default = "default_shadow_concurrent")]
    pub max_concurrent: u32,
}

fn default_shadow_percent() -> f64 {
    100.0
}

fn default_shadow_timeout() -> DurationStr {
    DurationStr::secs(1)
}

fn default_shadow_body() -> u64 {
    64 * 1024
}

fn default_shadow_concurrent() -> u32 {
    100
}

/// `split_by`: the request value a viewer is assigned by.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RawSplitBy {
    Header(String),
    Cookie(String),
}

/// `rate_limit = { per_ip = 1000, burst = 2000, key_header = "x-api-key", per_key = 100 }`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Requests a second per client address. Default `[limits] rate_per_ip`; 0: no limit
    /// per address on this route.
    pub per_ip: Option<u32>,
    /// Requests allowed at once per address. Default 2 × `per_ip`.
    pub burst: Option<u32>,
    /// Header naming the caller (an API key, a user id): limited by `per_key`.
    pub key_header: Option<String>,
    pub per_key: Option<u32>,
    /// Default 2 × `per_key`.
    pub key_burst: Option<u32>,
    /// Keep these limits in the session store's Redis, so they hold across every router
    /// node rather than per node (one Redis round trip per request). Needs
    /// `[sessions] store = "redis"`. Default false.
    #[serde(default)]
    pub shared: bool,
}

// Routes, pools and backends have required keys (`id`, `pool`, `address`), so they cannot take
// a container-level `Default`: their optional keys' defaults are these functions instead.

/// Default `max_body_bytes`: 32 MiB, enough for any API call, small enough to refuse a
/// mistaken upload before reading it.
pub(super) fn default_max_body_bytes() -> u64 {
    32 * 1024 * 1024
}

/// Default `retry_buffer_bytes`: 64 KiB, what most API requests fit in.
pub(super) fn default_retry_buffer_bytes() -> u64 {
    64 * 1024
}

/// Finagle's and Linkerd's retry budget: retries may add `percent` of the route's requests,
/// plus `min_per_s` retries a second whatever the traffic.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRetryBudget {
    /// Default 20.
    pub percent: u32,
    /// Default 10.
    pub min_per_s: u32,
}

impl Default for RawRetryBudget {
    fn default() -> Self {
        RawRetryBudget {
            percent: 20,
            min_per_s: 10,
        }
    }
}

/// Default `path_prefix`: `/`, everything.
pub(super) fn default_prefix() -> String {
    "/".to_string()
}
/// Default `retries`: one more attempt on another backend.
pub(super) fn default_retries() -> u32 {
    1
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTimeouts {
    /// TCP connect to a backend. Default 1 s.
    pub connect: DurationStr,
    /// Until the backend's response head arrives. Default 15 s (HAProxy's `timeout server`
    /// examples use tens of seconds; API routes should set less).
    pub response: DurationStr,
    /// Longest silence while a response body streams. Default 60 s.
    pub idle: DurationStr,
}

impl Default for RawTimeouts {
    fn default() -> Self {
        RawTimeouts {
            connect: DurationStr::secs(1),
            response: DurationStr::secs(15),
            idle: DurationStr::secs(60),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub id: String,
    /// Balancer. Default `round_robin`.
    #[serde(default)]
    pub algorithm: AlgorithmName,
    /// Key for `consistent_hash`: `"client_ip"` (default) or `"header:NAME"`.
    pub hash_key: Option<String>,
    /// How often host-name addresses are resolved again. Default 30 s.
    #[serde(default = "default_resolve_interval")]
    pub resolve_interval: DurationStr,
    #[serde(default)]
    pub backends: Vec<RawBackend>,
    /// Active health checks.
    #[serde(default)]
    pub health: RawHealth,
    /// Passive outlier detection from the request path.
    #[serde(default)]
    pub outlier: RawOutlier,
    /// Below this share of healthy backends (percent), route across all of them rather than
    /// overload the few left (Envoy's panic threshold). Default 50; 0 disables.
    #[serde(default = "default_panic_threshold")]
    pub panic_threshold: u32,
    /// A backend that comes back (from down or ejected) gets its weight ramped from 10% to
    /// full over this window. Default "0s": off, as in HAProxy and Envoy.
    #[serde(default)]
    pub slow_start: DurationStr,
    /// Load shedding: most requests in flight to the pool at once (all its backends). Over it
    /// a request waits up to `queue_timeout` for room, then gets 503 + Retry-After. Routes
    /// with `priority = "low"` are shed at 75% of it, `"normal"` at 90%, `"high"` at 100%.
    /// Default none.
    pub max_inflight: Option<u32>,
    /// Default 100 ms.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: DurationStr,
    /// TLS to the pool's backends, verified against a CA file. Default none: plain TCP.
    pub tls: Option<RawPoolTls>,
    /// What the backends speak: `"http1"` (default) or `"h2"` (HTTP/2: ALPN `h2` over TLS,
    /// prior knowledge over plain TCP; one multiplexed connection per backend and worker).
    #[serde(default)]
    pub protocol: PoolProtocol,
}

/// `tls = { ca = "...", server_name = "..." }` of a pool.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPoolTls {
    /// PEM file of the CA certificates a backend's certificate must chain to (the only trust
    /// roots: public CAs are not trusted). Required.
    pub ca: String,
    /// Name sent as SNI and checked against each backend's certificate. Default: the host of
    /// the backend's `address` (its name, or its IP, checked against IP SANs).
    pub server_name: Option<String>,
}

/// Default `queue_timeout`: 100 ms, short enough that a shed request still has time to retry
/// elsewhere.
pub(super) fn default_queue_timeout() -> DurationStr {
    DurationStr::millis(100)
}

/// Default `panic_threshold`: 50 %, Envoy's.
pub(super) fn default_panic_threshold() -> u32 {
    50
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawHealth {
    /// `"tcp"` (default: a connect must succeed), `"http"` (a GET of `path` must answer with an
    /// expected status) or `"none"` (every backend counts as healthy).
    pub kind: HealthCheck,
    /// Path of HTTP checks. Default `/health`.
    pub path: String,
    /// Service name a gRPC check asks about (`grpc.health.v1.Health/Check`). Default `""`:
    /// the server as a whole.
    pub service: Option<String>,
    /// Statuses that pass an HTTP check. Default: any 2xx or 3xx (as HAProxy).
    pub expect: Option<Vec<u16>>,
    /// Between checks of one backend, shortened by up to 20% at random. Default 1 s: with
    /// `fall = 3` a dead backend is marked down within 3 s, as the design brief asks.
    pub interval: DurationStr,
    /// One check's limit. Default 500 ms.
    pub timeout: DurationStr,
    /// Consecutive passes that make an unhealthy backend healthy. Default 2.
    pub rise: u32,
    /// Consecutive failures that make a healthy backend unhealthy. Default 3.
    pub fall: u32,
    /// State before the first check: `"unknown"` (default: takes traffic only after its first
    /// pass) or `"healthy"`.
    pub initial: InitialHealth,
    /// An HTTP check slower than this fails even with a good status (e.g. "200ms"). Default:
    /// none, only `timeout` applies.
    pub max_response_time: Option<DurationStr>,
    /// Read a load report from HTTP check answers and lower the backend's weight as it nears
    /// capacity (see docs/CONFIG.md for the JSON shape). Default false.
    pub load_report: bool,
    /// Flap damping: a backend that came back this many times within `flap_window` is held
    /// down on its next comeback. Default 3; 0 disables.
    pub flap_threshold: u32,
    /// Default 60 s: comebacks older than this are forgotten.
    pub flap_window: DurationStr,
    /// First hold; each further flap in the window doubles it. Default 10 s.
    pub flap_penalty: DurationStr,
    /// Longest hold. Default 5 min.
    pub flap_max_penalty: DurationStr,
}

impl Default for RawHealth {
    fn default() -> Self {
        RawHealth {
            kind: HealthCheck::Tcp,
            path: "/health".to_string(),
            service: None,
            expect: None,
            interval: DurationStr::secs(1),
            timeout: DurationStr::millis(500),
            rise: 2,
            fall: 3,
            initial: InitialHealth::Unknown,
            max_response_time: None,
            load_report: false,
            flap_threshold: 3,
            flap_window: DurationStr::secs(60),
            flap_penalty: DurationStr::secs(10),
            flap_max_penalty: DurationStr::secs(300),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawOutlier {
    /// Consecutive failed requests (connect failures, 5xx, timeouts) that eject a backend.
    /// Default 5 (Envoy's); 0 disables passive ejection.
    pub consecutive_failures: u32,
    /// First ejection's length; the n-th lasts n times as long. Default 10 s.
    pub base_ejection: DurationStr,
    /// Longest ejection. Default 2 min.
    pub max_ejection: DurationStr,
    /// Most of a pool that may be ejected at once (at least one backend always may). Default 50.
    pub max_ejection_percent: u32,
}

impl Default for RawOutlier {
    fn default() -> Self {
        RawOutlier {
            consecutive_failures: 5,
            base_ejection: DurationStr::secs(10),
            max_ejection: DurationStr::secs(120),
            max_ejection_percent: 50,
        }
    }
}

/// Default `resolve_interval`: 30 s, a common DNS TTL.
pub(super) fn default_resolve_interval() -> DurationStr {
    DurationStr::secs(30)
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub id: String,
    /// `ip:port` or `host:port`.
    pub address: String,
    /// Relative share for weighted balancers. Default 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Most WebSocket sessions this backend holds; a full backend takes no new ones (and when
    /// every backend is full, a new session gets 503 before any upgrade). Default: no limit.
    pub max_sessions: Option<u32>,
}

/// Default `weight`: 1, every backend alike.
pub(super) fn default_weight() -> u32 {
    1
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegion {
    pub name: String,
    pub location: Option<RawLocation>,
    /// Public router endpoint of the region, `http(s)://host[:port]`: what clients are told.
    /// Required for every region but this node's own.
    pub endpoint: Option<String>,
    /// Where other regions' routers reach it, `http://host:port`, for probes and forwarded
    /// requests. Default: `endpoint` when that is `http://`. A region with neither is listed
    /// but never probed nor forwarded to.
    pub internal: Option<String>,
    /// Sessions plus in-flight requests the region is sized for: its load is its use over
    /// this. Without it, load is the share of its backends that take no work.
    pub capacity: Option<u64>,
}

/// `[limits]`: request head limits (Envoy's edge defaults where it has them).
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLimits {
    /// Longest request target (path and query). Default 8192 (414 beyond).
    pub max_uri_bytes: u64,
    /// Largest request head: every header's name and value. Default 61440, Envoy's 60 KiB
    /// (431 beyond). The HTTP parser also refuses more than 96 headers with 431.
    pub max_header_bytes: u64,
    /// Most connections open at once from one client address (the PROXY header's source on
    /// listeners that take one); a connection over it gets `429` to its first request and is
    /// closed. Trusted proxies (`node.trusted_proxies`) are not limited. Default 1000; 0: off.
    pub max_connections_per_ip: u32,
    /// Requests a second per client address on every route that does not set its own
    /// `rate_limit.per_ip` (the design brief's 1,000 at the balancer). Default 1000; 0: off.
    pub rate_per_ip: u32,
    /// Requests at once over `rate_per_ip`. Default 2 × `rate_per_ip`.
    pub burst_per_ip: Option<u32>,
    /// HTTP/2 streams open at once on one client connection: advertised to the client as
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`, and a stream over it is refused with
    /// `RST_STREAM(REFUSED_STREAM)`, which clients retry. Default 100, HAProxy's
    /// `tune.h2.max-concurrent-streams`; 0: no limit (nothing advertised).
    pub max_streams_per_connection: u32,
    /// HTTP/2 initial stream flow-control window (`SETTINGS_INITIAL_WINDOW_SIZE`): how much
    /// of one request body a client may send before the router reads it. Default 1 MiB.
    pub h2_initial_stream_window: u32,
    /// HTTP/2 initial connection flow-control window. Default 2 MiB.
    pub h2_initial_connection_window: u32,
    /// HTTP/2 `SETTINGS_MAX_FRAME_SIZE`. Default 16384 (the protocol's).
    pub h2_max_frame_size: u32,
    /// Time a client has to send a whole request head once its connection is open (or, on
    /// a kept-alive connection, once it starts the next one): slow-header (slowloris)
    /// clients get 408 and are closed. Default 10 s, Envoy's edge advice.
    pub header_timeout: DurationStr,
    /// A client connection idle this long between requests is closed. Default 75 s (nginx's
    /// `keepalive_timeout`). WebSocket sessions have their own liveness (pings).
    pub idle_timeout: DurationStr,
    /// A client that takes no bytes of an answer for this long — its receive window and the
    /// socket's buffer full — is cut (HAProxy's `timeout client` on a blocked send), freeing
    /// its connection, the backend connection and its place in flight. Applies to HTTP
    /// answers and WebSocket sessions alike; a client that reads slowly but steadily is never
    /// cut. Default 30 s.
    pub write_timeout: DurationStr,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_uri_bytes: 8192,
            max_header_bytes: 60 * 1024,
            max_connections_per_ip: 1000,
            rate_per_ip: 1000,
            burst_per_ip: None,
            max_streams_per_connection: 100,
            h2_initial_stream_window: 1024 * 1024,
            h2_initial_connection_window: 2 * 1024 * 1024,
            h2_max_frame_size: 16_384,
            header_timeout: DurationStr::secs(10),
            idle_timeout: DurationStr::secs(75),
            write_timeout: DurationStr::secs(30),
        }
    }
}

/// `[directory]`: how regions are probed and ordered, and how clients are located.
#[derive(Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDirectory {
    /// TTL suggested to clients for the directory answer. Default 30 s.
    pub ttl: DurationStr,
    /// How often each remote region's routers are probed (`GET /v1/status`). Default 1 s.
    pub probe_interval: DurationStr,
    /// Default 500 ms.
    pub probe_timeout: DurationStr,
    /// Passed probes before an unhealthy region is healthy again. Default 2.
    pub rise: u32,
    /// Failed probes before a region is unhealthy. Default 3.
    pub fall: u32,
    /// Header an edge in front sets to the client's `lat,lon`; only honoured from
    /// `trusted_proxies`. Default `x-client-geo`.
    pub geo_header: String,
    /// CIDRs whose `geo_header` is believed. Default none.
    pub trusted_proxies: Vec<String>,
    /// Client address ranges and where they are.
    pub locations: Vec<RawCidrLocation>,
}

impl Default for RawDirectory {
    fn default() -> Self {
        RawDirectory {
            ttl: DurationStr::secs(30),
            probe_interval: DurationStr::secs(1),
            probe_timeout: DurationStr::millis(500),
            rise: 2,
            fall: 3,
            geo_header: "x-client-geo".to_string(),
            trusted_proxies: Vec::new(),
            locations: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCidrLocation {
    pub cidr: String,
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    pub lat: f64,
    pub lon: f64,
}

/// A duration written as a human string: `"250ms"`, `"10s"`, `"1h"`.
///
/// Hand-written rather than `humantime_serde`: its error ("expected a duration") shows neither
/// what was written nor how to write it, and every key also needs the [`MAX_DURATION`] cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurationStr(pub Duration);

impl DurationStr {
    pub const fn secs(secs: u64) -> DurationStr {
        DurationStr(Duration::from_secs(secs))
    }

    pub const fn millis(millis: u64) -> DurationStr {
        DurationStr(Duration::from_millis(millis))
    }
}

/// The longest duration any key takes: past it a time would overflow somewhere, and no
/// router setting needs more.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

impl Serialize for DurationStr {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_str(&humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for DurationStr {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let text = String::deserialize(de)?;
        let duration = humantime::parse_duration(text.trim()).map_err(|err| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({err}); write it like \"250ms\", \"10s\" or \"1h\""
            ))
        })?;
        if duration > MAX_DURATION {
            return Err(serde::de::Error::custom(format!(
                "{text:?} is longer than any setting takes (at most 30 days)"
            )));
        }
        Ok(DurationStr(duration))
    }
}

/// An enum of the settings that take one of a few words. Its `Deserialize` names the setting
/// and lists the words (`unknown overflow "teleport"; expected one of off, forward,
/// redirect`), where serde's derived one would say only `unknown variant`.
macro_rules! closed_set {
    ($(#[$meta:meta])* $name:ident, $what:literal {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every accepted word, in the order the docs list them.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The word as written in the file.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                ser.serialize_str(self.name())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, String> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?}; expected one of {}",
                        $what,
                        $name::NAMES.join(", ")
                    )),
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
                String::deserialize(de)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

closed_set! {
    /// A pool's `protocol`: the HTTP version its backends speak.
    PoolProtocol, "protocol" {
        #[default]
        Http1 = "http1",
        H2 = "h2",
    }
}

closed_set! {
    /// `[sessions] store`: where session records live.
    SessionStore, "store" {
        /// In this process (default; one node).
        #[default]
        Memory = "memory",
        /// In Redis, shared by every node using it.
        Redis = "redis",
    }
}

closed_set! {
    /// `[log] format`.
    LogFormat, "format" {
        #[default]
        Text = "text",
        Json = "json",
    }
}

closed_set! {
    /// What a route does when its local pool has no capacity (`overflow`).
    Overflow, "overflow" {
        /// Answer 503 (default).
        #[default]
        Off = "off",
        /// Proxy to the nearest healthy remote region's router (one hop at most).
        Forward = "forward",
        /// Tell the client to move: 307 for requests, close `4003` for sessions.
        Redirect = "redirect",
    }
}

closed_set! {
    /// A route's `priority`: who is shed first when its pool is over `max_inflight`.
    Priority, "priority" {
        Low = "low",
        #[default]
        Normal = "normal",
        High = "high",
    }
}

impl Priority {
    /// Share of the pool's `max_inflight` a route of this priority may fill, in percent.
    pub fn shed_share(self) -> u32 {
        match self {
            Priority::Low => 75,
            Priority::Normal => 90,
            Priority::High => 100,
        }
    }
}

closed_set! {
    /// A pool's `algorithm` as written (`consistent_hash` takes its key from `hash_key`).
    AlgorithmName, "algorithm" {
        #[default]
        RoundRobin = "round_robin",
        WeightedRoundRobin = "weighted_round_robin",
        LeastConnections = "least_connections",
        Random = "random",
        P2cEwma = "p2c_ewma",
        ConsistentHash = "consistent_hash",
    }
}

closed_set! {
    /// A pool's `health.kind`.
    HealthCheck, "kind" {
        /// A connect must succeed (default).
        #[default]
        Tcp = "tcp",
        /// A GET of `path` must answer with an expected status.
        Http = "http",
        /// The gRPC health protocol must answer `SERVING` (pools with `protocol = "h2"`).
        Grpc = "grpc",
        /// Every backend counts as healthy.
        None = "none",
    }
}

closed_set! {
    /// A pool's `health.initial`: a backend's state before its first check.
    InitialHealth, "initial" {
        /// Takes traffic only after its first pass (default).
        #[default]
        Unknown = "unknown",
        Healthy = "healthy",
    }
}
