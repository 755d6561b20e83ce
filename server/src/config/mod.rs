//! Configuration: one TOML file, in three steps.
//!
//! 1. [`parse`]: text → [`raw`] structs that mirror the file, every syntax-level problem
//!    (unknown keys, wrong types, bad durations) reported at once;
//! 2. [`validate`]: raw → [`Config`], pure (no file read, no name resolved), every value
//!    checked and each problem named by its key path;
//! 3. [`load`]: the files the config names are read and host names resolved.
//!
//! [`Config::from_toml_str`] and [`Config::load`] run all three and report every problem of
//! all three together. Code past them never re-checks anything: a `Config` that exists is
//! one whose references resolve, whose ids are unique and whose addresses parsed. It holds
//! plain data only (no live TLS object), so this module depends on nothing above it but for
//! the load step.

pub mod builder;
mod load;
mod parse;
pub mod raw;
mod suggest;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use load::parse_address;
pub use raw::{LogFormat, MAX_DURATION, Overflow};
pub use validate::{
    MAX_CONTROL_DURATION, MAX_RETRIES, MAX_RETRY_BUFFER_BYTES, MAX_SPLIT_WEIGHT, MAX_WEIGHT,
    MIN_ADMIN_TOKEN_BYTES, MIN_RESOLVE_INTERVAL, backend_id_problem,
};

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub node: NodeConfig,
    pub log: LogConfig,
    /// Extra plain listeners besides `node.listen`.
    pub listeners: Vec<ListenerConfig>,
    /// In file order; matching picks the most specific (see [`crate::routing::RouteTable`]).
    pub routes: Vec<RouteConfig>,
    pub pools: Vec<PoolConfig>,
    pub regions: Vec<RegionConfig>,
    pub directory: DirectoryConfig,
    pub limits: Limits,
    pub sessions: SessionsConfig,
    /// The file it was loaded from (what a reload reads again); `None` when built from text.
    pub source: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct SessionsConfig {
    pub cookie_key_env: String,
    /// Read at load: the key from `cookie_key_file`.
    pub cookie_key: Option<Vec<u8>>,
    pub cookie_key_file: Option<std::path::PathBuf>,
    pub ttl: Duration,
    pub previous_key_env: Option<String>,
    pub previous_key_window: Duration,
    /// `Some` when sessions are shared through Redis.
    pub redis: Option<RedisConfig>,
    /// How long a moved session waits for its backend's close before closing the client.
    pub handoff_linger: Duration,
    /// Most session records this node keeps.
    pub max_records: usize,
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    pub url: String,
    pub key_prefix: String,
    pub timeout: Duration,
    /// Sentinels to ask for the master's address (empty: `url` names the server).
    pub sentinels: Vec<String>,
    pub sentinel_master: String,
    /// Redis Cluster seed nodes (empty: not a cluster).
    pub cluster_nodes: Vec<String>,
    /// Redis TTL of a session's record until its client first comes back.
    pub unconfirmed_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub region: String,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub workers: usize,
    pub shutdown_timeout: Duration,
    pub shutdown_delay: Duration,
    /// Live sessions are moved over this window on a graceful stop (at most half of
    /// `shutdown_timeout`).
    pub shutdown_spread: Duration,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Most client HTTP connections at once (all workers).
    pub max_connections: usize,
    /// The admin API's bearer token (from `admin_token_file`, read at load, or later from
    /// the environment variable `admin_token_env`). `None`: the admin API is read-only.
    pub admin_token: Option<String>,
    pub admin_token_file: Option<std::path::PathBuf>,
    pub admin_token_env: String,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub access: bool,
    pub format: LogFormat,
    pub level: String,
    /// Where access lines go instead of stdout.
    pub access_path: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub id: String,
    pub address: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub redirect_https: bool,
    pub proxy_protocol: bool,
    /// Balancers allowed to send the PROXY header (empty: any).
    pub proxy_protocol_from: Vec<Cidr>,
    pub max_connections: Option<u32>,
}

/// A TLS listener's certificates; the first is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub certificates: Vec<CertificateConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateConfig {
    /// Lower-case.
    pub names: Vec<String>,
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub id: String,
    /// Lower-case host without port; `None` matches any host.
    pub host: Option<String>,
    /// Normalised: starts with `/`, no trailing `/` unless it is exactly `/`.
    pub path_prefix: String,
    pub strip_prefix: bool,
    pub sticky: bool,
    /// Index into [`Config::pools`] of the pool that serves the route (the first of a split).
    pub pool: usize,
    /// A weighted split among pools (`split` in place of `pool`); `None` for one pool.
    pub split: Option<SplitConfig>,
    /// Requests mirrored to another pool.
    pub shadow: Option<ShadowConfig>,
    pub timeouts: Timeouts,
    pub retries: u32,
    pub retry_non_idempotent: bool,
    pub retry_budget: RetryBudgetConfig,
    pub retry_buffer_bytes: u64,
    pub overflow: Overflow,
    /// Local region load above which the route overflows too.
    pub overflow_load: Option<f64>,
    /// 0: no limit.
    pub max_body_bytes: u64,
    pub rate_limit: Option<RateLimitConfig>,
    /// Share of the pool's `max_inflight` this route may fill, in percent (75, 90 or 100).
    pub shed_share: u32,
}

/// A route's weighted split, validated: at least one pool, no pool twice, weights that sum
/// to more than 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitConfig {
    /// `(index into [`Config::pools`], weight)`, in file order.
    pub parts: Vec<(usize, u32)>,
    pub by: SplitBy,
    /// Lower-case header name.
    pub override_header: Option<String>,
    /// Lower-case header name.
    pub response_header: Option<String>,
}

/// A route's shadow traffic, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowConfig {
    /// Index into [`Config::pools`].
    pub pool: usize,
    /// Mirrored requests per million.
    pub per_million: u32,
    pub timeout: std::time::Duration,
    pub max_body_bytes: u64,
    pub max_concurrent: u32,
}

/// What assigns a viewer to a part of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitBy {
    /// The session token (one is issued to a request without it).
    Session,
    /// A request header (lower-case name); a request without it is assigned by its session.
    Header(String),
    /// A cookie; a request without it is assigned by its session.
    Cookie(String),
}

/// A route's rate limits, validated: `(rate per second, burst)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub per_ip: Option<(u32, u32)>,
    /// Lower-case header name, and its limit.
    pub per_key: Option<(String, u32, u32)>,
    /// Also checked in Redis, across nodes (see `policy::ratelimit::shared`).
    pub shared: bool,
}

/// `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_uri_bytes: u64,
    pub max_header_bytes: u64,
    /// 0: no limit.
    pub max_connections_per_ip: u32,
    /// 0: no limit.
    pub max_streams_per_connection: u32,
    pub h2_initial_stream_window: u32,
    pub h2_initial_connection_window: u32,
    pub h2_max_frame_size: u32,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// A blocked write to a client fails after this long.
    pub write_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryBudgetConfig {
    pub percent: u32,
    pub min_per_s: u32,
}

/// A route's timeouts toward its backends (`[routes.timeouts]`): the upstream layer's type.
pub use crate::upstream::{Timeouts, UpstreamProtocol};

#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub id: String,
    pub algorithm: Algorithm,
    pub resolve_interval: Duration,
    pub backends: Vec<BackendConfig>,
    pub health: HealthConfig,
    pub outlier: OutlierConfig,
    /// Percent; 0 disables panic routing.
    pub panic_threshold: u32,
    /// Zero: off.
    pub slow_start: Duration,
    /// Load shedding: `None` is off.
    pub max_inflight: Option<u32>,
    pub queue_timeout: Duration,
    /// TLS to the backends; `None`: plain TCP.
    pub tls: Option<PoolTlsConfig>,
    /// HTTP/1.1 or HTTP/2 to the backends.
    pub protocol: UpstreamProtocol,
}

/// A pool's `tls`: what its backends' certificates are checked against. Equal when a reload
/// would change nothing (same file, same name, same certificates), so an unchanged pool keeps
/// its connections and a changed CA (same path, new content) is picked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolTlsConfig {
    /// The CA file, as written.
    pub ca: std::path::PathBuf,
    /// Its certificates (DER), read at load.
    pub ca_certificates: Vec<Vec<u8>>,
    /// Name sent as SNI and checked; `None`: each backend's host.
    pub server_name: Option<String>,
    /// ALPN offers `h2` (a pool with `protocol = "h2"`) rather than `http/1.1`.
    pub h2: bool,
}

/// Active health checks of a pool's backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    pub kind: HealthKind,
    /// The pool's protocol: HTTP and gRPC checks are sent over HTTP/2 for an `h2` pool.
    pub protocol: UpstreamProtocol,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// True when backends count as healthy before their first check.
    pub initially_healthy: bool,
    pub flap: FlapConfig,
}

/// Flap damping: comebacks counted within `window`; at `threshold` the next comeback is held
/// for `penalty`, doubled per further flap, capped at `max_penalty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapConfig {
    /// 0 disables damping.
    pub threshold: u32,
    pub window: Duration,
    pub penalty: Duration,
    pub max_penalty: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthKind {
    None,
    Tcp,
    /// `expect` empty means any 2xx or 3xx; `load_report`: read a load report from the body.
    Http {
        path: String,
        expect: Vec<u16>,
        load_report: bool,
        /// A slower answer fails the check.
        max_response_time: Option<Duration>,
    },
    /// `grpc.health.v1.Health/Check` for `service` must answer `SERVING`.
    Grpc {
        service: String,
    },
}

/// Passive outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierConfig {
    /// 0 disables it.
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    pub max_ejection_percent: u32,
}

/// The six balancers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    WeightedRoundRobin,
    LeastConnections,
    Random,
    P2cEwma,
    ConsistentHash(HashKey),
}

impl Algorithm {
    pub const NAMES: &'static [&'static str] = raw::AlgorithmName::NAMES;

    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::WeightedRoundRobin => "weighted_round_robin",
            Algorithm::LeastConnections => "least_connections",
            Algorithm::Random => "random",
            Algorithm::P2cEwma => "p2c_ewma",
            Algorithm::ConsistentHash(_) => "consistent_hash",
        }
    }
}

/// What `consistent_hash` hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    ClientIp,
    /// Lower-case header name; requests without it fall back to the client IP.
    Header(String),
}

#[derive(Debug, Clone)]
pub struct BackendConfig {
    pub id: String,
    pub address: BackendAddress,
    pub weight: u32,
    /// `None`: no limit.
    pub max_sessions: Option<u32>,
}

/// A backend address as written, and what it resolved to at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendAddress {
    /// Host as written (an IP literal or a name).
    pub host: String,
    pub port: u16,
    /// True when `host` is a name that must be resolved again from time to time.
    pub is_name: bool,
    /// The IP, or what the name resolved to at load.
    pub resolved: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct RegionConfig {
    pub name: String,
    /// `(lat, lon)` in degrees.
    pub location: Option<(f64, f64)>,
    /// Public router endpoint, `http(s)://host[:port]` without a trailing `/`.
    pub endpoint: Option<String>,
    /// Where other routers reach it, `http://host[:port]`: `internal`, else an `http://`
    /// endpoint.
    pub internal: Option<String>,
    /// `internal`'s address, resolved at load (what probes and forwarded requests use).
    pub endpoint_addr: Option<SocketAddr>,
    pub capacity: Option<u64>,
}

/// `[directory]`, validated.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    pub ttl: Duration,
    pub probe_interval: Duration,
    pub probe_timeout: Duration,
    pub rise: u32,
    pub fall: u32,
    /// Lower-case.
    pub geo_header: String,
    pub trusted_proxies: Vec<Cidr>,
    pub locations: Vec<(Cidr, (f64, f64))>,
}

/// An address range, `10.0.0.0/8` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Hand-written rather than `ipnet`'s parser: a bare address (`10.0.0.1`) is accepted as
    /// one host (ipnet wants a prefix), and [`Cidr::contains`] matches IPv4-mapped IPv6 peers
    /// against IPv4 ranges, which ipnet does not.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (text, None),
        };
        let network: std::net::IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: {ip:?} is not an IP address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => return Err(format!("{text:?}: prefix length must be 0..={max}")),
            },
        };
        Ok(Cidr { network, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let bits = |ip: std::net::IpAddr| -> (u128, u32) {
            match ip {
                std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => (u128::from(u32::from(v4)), 32),
                    None => (u128::from(v6), 128),
                },
            }
        };
        let (net, width) = bits(self.network);
        let (addr, addr_width) = bits(ip);
        if width != addr_width {
            return false;
        }
        let host_bits = width - u32::from(self.prefix);
        host_bits >= width || (net >> host_bits) == (addr >> host_bits)
    }
}

impl Config {
    /// Parses, validates and loads TOML text, reporting every problem of it at once.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let (raw, mut issues) = parse::parse(text);
        let Some(raw) = raw else {
            return Err(ConfigError { issues });
        };
        let (mut config, invalid) = validate::validate(raw);
        issues.extend(invalid);
        issues.extend(load::load(&mut config));
        match issues.is_empty() {
            true => Ok(config),
            false => Err(ConfigError { issues }),
        }
    }

    /// Reads a file, then parses, validates and loads it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
            issues: vec![ConfigIssue {
                key: path.display().to_string(),
                message: format!("cannot read: {err}"),
            }],
        })?;
        let mut config = Config::from_toml_str(&text)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    pub fn backend_count(&self) -> usize {
        self.pools.iter().map(|p| p.backends.len()).sum()
    }
}

/// Everything wrong with a config file, each with the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

/// One problem: `routes[2].pool: no pool named "strem"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Key path (`routes[2].pool`), or `line N` for a syntax error.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
