//! `RawConfig` → `Config`: every check, every error with its key path. Collects all problems
//! instead of stopping at the first, so one run of `check-config` shows them all.

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::raw::{
    AlgorithmName, HealthCheck, InitialHealth, RawBackend, RawConfig, RawPool, RawRoute,
    SessionStore,
};
use super::suggest::closest;
use super::{
    Algorithm, BackendAddress, BackendConfig, Config, ConfigError, ConfigIssue, HashKey,
    HealthConfig, HealthKind, ListenerConfig, LogConfig, NodeConfig, OutlierConfig, PoolConfig,
    RegionConfig, RetryBudgetConfig, RouteConfig, Timeouts,
};

/// Shortest admin token accepted: a guessable token would make the admin API an open door.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;
/// Largest accepted backend weight: enough for percentages with two decimals.
pub const MAX_WEIGHT: u32 = 10_000;
/// Largest accepted retry count: more only multiplies load during an outage.
pub const MAX_RETRIES: u32 = 10;
/// Largest request body kept for retries: memory per request must stay bounded.
pub const MAX_RETRY_BUFFER_BYTES: u64 = 16 * 1024 * 1024;
/// Longest accepted health, ejection and flap duration: longer ones are typos, and could
/// overflow time arithmetic.
pub const MAX_CONTROL_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Fastest accepted re-resolution interval for host-name backends.
pub const MIN_RESOLVE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Issues(Vec<ConfigIssue>);

impl Issues {
    fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue {
            key: key.into(),
            message: message.into(),
        });
    }
}

/// Validates a parsed file into a [`Config`], or returns every problem found.
/// Why `id` cannot name a backend (it appears in metrics labels, logs, headers and admin API
/// paths): `None` when it can. One rule for the config file and the admin API.
pub fn backend_id_problem(id: &str) -> Option<String> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(&c));
    (!valid).then(|| format!("{id:?} must be 1-128 letters, digits, '-', '_', '.' or ':'"))
}

pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let mut issues = Issues::default();
    // Ids are unique within their kind (a route and its pool may share a name, as in the
    // design's example); backend ids are unique across all pools, since operators address
    // backends by id alone.
    let mut ids: HashMap<(&'static str, String), String> = HashMap::new();
    let mut claim_id = |issues: &mut Issues, kind: &'static str, key: String, id: &str| {
        if id.trim().is_empty() {
            issues.push(key, "ids must not be empty");
        } else if let Some(first) = ids.get(&(kind, id.to_string())) {
            issues.push(key, format!("{kind} id {id:?} is already used by {first}"));
        } else {
            ids.insert((kind, id.to_string()), key);
        }
    };

    let listen = socket_addr(&mut issues, "node.listen", &raw.node.listen);
    let admin_listen = socket_addr(&mut issues, "node.admin_listen", &raw.node.admin_listen);
    let workers = match raw.node.workers {
        Some(0) => {
            issues.push("node.workers", "must be at least 1");
            1
        }
        Some(n) if n > 256 => {
            issues.push("node.workers", format!("{n} is more than 256"));
            1
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if raw
        .log
        .access_path
        .as_deref()
        .is_some_and(|p| p.trim().is_empty())
    {
        issues.push(
            "log.access_path",
            "must not be empty (leave it out for stdout)",
        );
    }

    let mut listeners = Vec::new();
    for (i, l) in raw.listeners.iter().enumerate() {
        claim_id(&mut issues, "listener", format!("listeners[{i}].id"), &l.id);
        let key = format!("listeners[{i}].address");
        let tls = l.tls.as_ref().map(|t| {
            if t.certificates.is_empty() {
                issues.push(
                    format!("listeners[{i}].tls.certificates"),
                    "list at least one certificate",
                );
            }
            let certificates: Vec<_> = t
                .certificates
                .iter()
                .map(|c| super::CertificateConfig {
                    names: c
                        .names
                        .iter()
                        .map(|n| n.trim().to_ascii_lowercase())
                        .collect(),
                    cert: c.cert.clone().into(),
                    key: c.key.clone().into(),
                })
                .collect();
            for (j, c) in certificates.iter().enumerate() {
                if let Err(reason) = crate::tls::load_certified(&c.cert, &c.key) {
                    issues.push(format!("listeners[{i}].tls.certificates[{j}]"), reason);
                }
            }
            super::TlsConfig { certificates }
        });
        if tls.is_some() && l.redirect_https {
            issues.push(
                format!("listeners[{i}].redirect_https"),
                "only for plain listeners (this one terminates TLS)",
            );
        }
        if l.max_connections == Some(0) {
            issues.push(
                format!("listeners[{i}].max_connections"),
                "must be at least 1 (leave it out for no limit of its own)",
            );
        }
        let mut proxy_protocol_from = Vec::new();
        for (j, text) in l.proxy_protocol_from.iter().enumerate() {
            match super::Cidr::parse(text) {
                Ok(cidr) => proxy_protocol_from.push(cidr),
                Err(reason) => {
                    issues.push(format!("listeners[{i}].proxy_protocol_from[{j}]"), reason)
                }
            }
        }
        if !l.proxy_protocol && !l.proxy_protocol_from.is_empty() {
            issues.push(
                format!("listeners[{i}].proxy_protocol_from"),
                "only with proxy_protocol = true",
            );
        }
        if let Some(address) = socket_addr(&mut issues, &key, &l.address) {
            listeners.push(ListenerConfig {
                id: l.id.clone(),
                address,
                tls,
                redirect_https: l.redirect_https,
                proxy_protocol: l.proxy_protocol,
                proxy_protocol_from,
                max_connections: l.max_connections,
            });
        }
    }

    let mut pools = Vec::new();
    for (i, p) in raw.pools.iter().enumerate() {
        claim_id(&mut issues, "pool", format!("pools[{i}].id"), &p.id);
        for (j, b) in p.backends.iter().enumerate() {
            claim_id(
                &mut issues,
                "backend",
                format!("pools[{i}].backends[{j}].id"),
                &b.id,
            );
            if let Some(problem) = backend_id_problem(&b.id) {
                issues.push(format!("pools[{i}].backends[{j}].id"), problem);
            }
        }
        if let Some(pool) = pool(&mut issues, i, p) {
            pools.push(pool);
        }
    }

    let pool_index: HashMap<&str, usize> = raw
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let mut routes = Vec::new();
    let mut matches: HashSet<(Option<String>, String)> = HashSet::new();
    for (i, r) in raw.routes.iter().enumerate() {
        claim_id(&mut issues, "route", format!("routes[{i}].id"), &r.id);
        if let Some(route) = route(
            &mut issues,
            i,
            r,
            &pool_index,
            &raw.limits,
            raw.sessions.store == SessionStore::Redis,
        ) {
            if !matches.insert((route.host.clone(), route.path_prefix.clone())) {
                issues.push(
                    format!("routes[{i}].path_prefix"),
                    format!(
                        "another route already matches host {} and prefix {:?}",
                        route.host.as_deref().unwrap_or("*"),
                        route.path_prefix
                    ),
                );
            }
            routes.push(route);
        }
    }

    let mut regions = Vec::new();
    let mut region_names = HashSet::new();
    for (i, r) in raw.regions.iter().enumerate() {
        if r.name.trim().is_empty() {
            issues.push(format!("regions[{i}].name"), "must not be empty");
        } else if !region_names.insert(r.name.as_str()) {
            issues.push(
                format!("regions[{i}].name"),
                format!("region {:?} is listed twice", r.name),
            );
        }
        if let Some(loc) = r.location {
            if !(-90.0..=90.0).contains(&loc.lat) {
                issues.push(
                    format!("regions[{i}].location.lat"),
                    "must be within -90..=90",
                );
            }
            if !(-180.0..=180.0).contains(&loc.lon) {
                issues.push(
                    format!("regions[{i}].location.lon"),
                    "must be within -180..=180",
                );
            }
        }
        let endpoint = r.endpoint.as_ref().and_then(|text| match public_url(text) {
            Ok(url) => Some(url),
            Err(reason) => {
                issues.push(format!("regions[{i}].endpoint"), reason);
                None
            }
        });
        let internal_text = r
            .internal
            .clone()
            .or_else(|| endpoint.clone().filter(|u| u.starts_with("http://")));
        let internal = internal_text
            .as_ref()
            .and_then(|text| match endpoint_addr(text) {
                Ok((_, addr)) => Some(addr),
                Err(reason) => {
                    let key = match r.internal.is_some() {
                        true => "internal",
                        false => "endpoint",
                    };
                    issues.push(format!("regions[{i}].{key}"), reason);
                    None
                }
            });
        if r.capacity == Some(0) {
            issues.push(format!("regions[{i}].capacity"), "must be at least 1");
        }
        regions.push(RegionConfig {
            name: r.name.clone(),
            location: r.location.map(|l| (l.lat, l.lon)),
            endpoint,
            endpoint_addr: internal,
            capacity: r.capacity,
        });
    }
    for (i, r) in regions.iter().enumerate() {
        if r.name != raw.node.region && r.endpoint.is_none() {
            issues.push(
                format!("regions[{i}].endpoint"),
                "required for every region but this node's own (clients and other regions reach it there)",
            );
        }
    }
    let directory = directory(&raw.directory, &mut issues);
    if raw.limits.max_uri_bytes < 256 {
        issues.push("limits.max_uri_bytes", "must be at least 256");
    }
    if raw.limits.max_header_bytes < 1024 {
        issues.push("limits.max_header_bytes", "must be at least 1024");
    }
    for (key, value) in [
        ("limits.header_timeout", raw.limits.header_timeout.0),
        ("limits.idle_timeout", raw.limits.idle_timeout.0),
        ("limits.write_timeout", raw.limits.write_timeout.0),
    ] {
        if value < Duration::from_millis(100) {
            issues.push(key, "must be at least 100ms");
        }
    }
    if raw.limits.burst_per_ip == Some(0) {
        issues.push(
            "limits.burst_per_ip",
            "must be at least 1 (set rate_per_ip = 0 for no limit)",
        );
    }
    if !regions.is_empty() && !region_names.contains(raw.node.region.as_str()) {
        issues.push(
            "node.region",
            format!("no region named {:?} in [[regions]]", raw.node.region),
        );
    }
    if raw.node.max_connections == 0 {
        issues.push("node.max_connections", "must be at least 1");
    }
    let mut trusted_proxies = Vec::new();
    for (i, text) in raw.node.trusted_proxies.iter().enumerate() {
        match super::Cidr::parse(text) {
            Ok(cidr) => trusted_proxies.push(cidr),
            Err(reason) => issues.push(format!("node.trusted_proxies[{i}]"), reason),
        }
    }
    let admin_token = match &raw.node.admin_token_file {
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) if text.trim().len() >= MIN_ADMIN_TOKEN_BYTES => Some(text.trim().to_string()),
            Ok(_) => {
                issues.push(
                    "node.admin_token_file",
                    format!("{path:?} holds a token shorter than {MIN_ADMIN_TOKEN_BYTES} bytes"),
                );
                None
            }
            Err(err) => {
                issues.push(
                    "node.admin_token_file",
                    format!("cannot read {path:?}: {err}"),
                );
                None
            }
        },
    };
    let cookie_key = match &raw.sessions.cookie_key_file {
        None => None,
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => Some(text.trim().as_bytes().to_vec()),
            Ok(_) => {
                issues.push("sessions.cookie_key_file", format!("{path:?} is empty"));
                None
            }
            Err(err) => {
                issues.push(
                    "sessions.cookie_key_file",
                    format!("cannot read {path:?}: {err}"),
                );
                None
            }
        },
    };
    let redis = match raw.sessions.store {
        SessionStore::Memory => None,
        SessionStore::Redis => {
            if let Err(err) = redis::Client::open(raw.sessions.redis_url.as_str()) {
                issues.push(
                    "sessions.redis_url",
                    format!("{:?}: {err}", raw.sessions.redis_url),
                );
            }
            if raw.sessions.store_timeout.0.is_zero() {
                issues.push("sessions.store_timeout", "must be more than 0");
            }
            for (i, sentinel) in raw.sessions.sentinels.iter().enumerate() {
                let valid = sentinel
                    .rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
                if !valid {
                    issues.push(
                        format!("sessions.sentinels[{i}]"),
                        format!("{sentinel:?} is not host:port"),
                    );
                }
            }
            if !raw.sessions.sentinels.is_empty() && raw.sessions.sentinel_master.is_empty() {
                issues.push("sessions.sentinel_master", "must not be empty");
            }
            Some(super::RedisConfig {
                url: raw.sessions.redis_url.clone(),
                key_prefix: raw.sessions.key_prefix.clone(),
                timeout: raw.sessions.store_timeout.0,
                sentinels: raw.sessions.sentinels.clone(),
                sentinel_master: raw.sessions.sentinel_master.clone(),
                unconfirmed_ttl: raw.sessions.unconfirmed_ttl.as_ref().map_or(
                    super::raw::DEFAULT_UNCONFIRMED_TTL.min(raw.sessions.ttl.0),
                    |d| d.0,
                ),
            })
        }
    };
    if redis.is_none() && !raw.sessions.sentinels.is_empty() {
        issues.push("sessions.sentinels", "only used with store = \"redis\"");
    }
    if raw.sessions.previous_key_window.0 > Duration::from_secs(30 * 24 * 3600) {
        issues.push("sessions.previous_key_window", "must be at most 30 days");
    }
    if raw.sessions.ttl.0.is_zero() {
        issues.push("sessions.ttl", "must be more than 0");
    }
    if raw.node.shutdown_timeout.0.is_zero() {
        issues.push("node.shutdown_timeout", "must be more than 0");
    }
    if raw.node.shutdown_delay.0 > Duration::from_secs(3600) {
        issues.push("node.shutdown_delay", "must be at most 1 hour");
    }
    if raw.node.shutdown_timeout.0 > Duration::from_secs(3600) {
        issues.push("node.shutdown_timeout", "must be at most 1 hour");
    }
    if raw.node.shutdown_spread.0 > Duration::from_secs(3600) {
        issues.push("node.shutdown_spread", "must be at most 1 hour");
    }
    let unconfirmed = raw.sessions.unconfirmed_ttl.as_ref().map(|d| d.0);
    if unconfirmed.is_some_and(|d| d < Duration::from_secs(1)) {
        issues.push("sessions.unconfirmed_ttl", "must be at least 1s");
    } else if unconfirmed.is_some_and(|d| d > raw.sessions.ttl.0) {
        issues.push(
            "sessions.unconfirmed_ttl",
            format!("must be at most sessions.ttl ({:?})", raw.sessions.ttl.0),
        );
    }
    if raw.sessions.max_records == 0 {
        issues.push("sessions.max_records", "must be at least 1");
    }
    if raw.sessions.handoff_linger.0 > Duration::from_secs(60) {
        issues.push("sessions.handoff_linger", "must be at most 60 seconds");
    }

    match (listen, admin_listen, issues.0.is_empty()) {
        (Some(listen), Some(admin_listen), true) => Ok(Config {
            node: NodeConfig {
                region: raw.node.region,
                listen,
                admin_listen,
                workers,
                shutdown_timeout: raw.node.shutdown_timeout.0,
                shutdown_delay: raw.node.shutdown_delay.0,
                shutdown_spread: raw.node.shutdown_spread.0,
                trusted_proxies,
                max_connections: raw.node.max_connections,
                admin_token,
                admin_token_env: raw.node.admin_token_env,
            },
            log: LogConfig {
                access: raw.log.access,
                format: raw.log.format,
                level: raw.log.level,
                access_path: raw.log.access_path.map(std::path::PathBuf::from),
            },
            listeners,
            routes,
            pools,
            regions,
            directory,
            limits: super::Limits {
                max_uri_bytes: raw.limits.max_uri_bytes,
                max_header_bytes: raw.limits.max_header_bytes,
                max_connections_per_ip: raw.limits.max_connections_per_ip,
                max_streams_per_connection: raw.limits.max_streams_per_connection,
                header_timeout: raw.limits.header_timeout.0,
                idle_timeout: raw.limits.idle_timeout.0,
                write_timeout: raw.limits.write_timeout.0,
            },
            sessions: super::SessionsConfig {
                cookie_key_env: raw.sessions.cookie_key_env,
                cookie_key,
                ttl: raw.sessions.ttl.0,
                previous_key_env: raw.sessions.previous_key_env,
                previous_key_window: raw.sessions.previous_key_window.0,
                redis,
                handoff_linger: raw.sessions.handoff_linger.0,
                max_records: raw.sessions.max_records,
            },
            source: None,
        }),
        _ => Err(ConfigError { issues: issues.0 }),
    }
}

fn socket_addr(issues: &mut Issues, key: &str, text: &str) -> Option<SocketAddr> {
    match text.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            issues.push(
                key,
                format!("{text:?} is not an ip:port address (e.g. \"127.0.0.1:8080\")"),
            );
            None
        }
    }
}

fn pool(issues: &mut Issues, i: usize, p: &RawPool) -> Option<PoolConfig> {
    let before = issues.0.len();
    let algorithm = match p.algorithm {
        AlgorithmName::RoundRobin => Some(Algorithm::RoundRobin),
        AlgorithmName::WeightedRoundRobin => Some(Algorithm::WeightedRoundRobin),
        AlgorithmName::LeastConnections => Some(Algorithm::LeastConnections),
        AlgorithmName::Random => Some(Algorithm::Random),
        AlgorithmName::P2cEwma => Some(Algorithm::P2cEwma),
        AlgorithmName::ConsistentHash => {
            hash_key(issues, i, p.hash_key.as_deref()).map(Algorithm::ConsistentHash)
        }
    };
    if p.hash_key.is_some() && p.algorithm != AlgorithmName::ConsistentHash {
        issues.push(
            format!("pools[{i}].hash_key"),
            "only applies to algorithm = \"consistent_hash\"",
        );
    }
    if p.resolve_interval.0 < MIN_RESOLVE_INTERVAL {
        issues.push(
            format!("pools[{i}].resolve_interval"),
            format!("must be at least {MIN_RESOLVE_INTERVAL:?}"),
        );
    }
    if p.backends.is_empty() {
        issues.push(
            format!("pools[{i}].backends"),
            format!("pool {:?} has no backends; a pool needs at least one", p.id),
        );
    }
    let backends: Vec<_> = p
        .backends
        .iter()
        .enumerate()
        .filter_map(|(j, b)| backend(issues, &format!("pools[{i}].backends[{j}]"), b))
        .collect();
    let health = health(issues, i, &p.health);
    let o = &p.outlier;
    for (name, d) in [
        ("base_ejection", o.base_ejection.0),
        ("max_ejection", o.max_ejection.0),
    ] {
        if d > MAX_CONTROL_DURATION {
            issues.push(
                format!("pools[{i}].outlier.{name}"),
                format!("{d:?} is more than a day"),
            );
        }
    }
    if p.max_inflight == Some(0) {
        issues.push(
            format!("pools[{i}].max_inflight"),
            "must be at least 1 (leave it out for no limit)",
        );
    }
    if p.queue_timeout.0 > Duration::from_secs(60) {
        issues.push(format!("pools[{i}].queue_timeout"), "must be at most 60 s");
    }
    if p.slow_start.0 > MAX_CONTROL_DURATION || p.resolve_interval.0 > MAX_CONTROL_DURATION {
        issues.push(
            format!("pools[{i}]"),
            "slow_start and resolve_interval must be at most a day",
        );
    }
    if o.max_ejection_percent > 100 {
        issues.push(
            format!("pools[{i}].outlier.max_ejection_percent"),
            "must be 0..=100",
        );
    }
    if o.base_ejection.0.is_zero() || o.max_ejection.0 < o.base_ejection.0 {
        issues.push(
            format!("pools[{i}].outlier.max_ejection"),
            "base_ejection must be more than 0 and max_ejection at least base_ejection",
        );
    }
    if p.panic_threshold > 100 {
        issues.push(
            format!("pools[{i}].panic_threshold"),
            "must be 0..=100 (percent)",
        );
    }
    let tls = p
        .tls
        .as_ref()
        .and_then(|t| pool_tls(issues, i, t, &p.backends, &backends));
    (issues.0.len() == before).then(|| PoolConfig {
        id: p.id.clone(),
        algorithm: algorithm.expect("no issue was recorded, so the algorithm parsed"),
        resolve_interval: p.resolve_interval.0,
        backends,
        health: health.expect("no issue was recorded, so the health config parsed"),
        outlier: OutlierConfig {
            consecutive_failures: o.consecutive_failures,
            base_ejection: o.base_ejection.0,
            max_ejection: o.max_ejection.0,
            max_ejection_percent: o.max_ejection_percent,
        },
        panic_threshold: p.panic_threshold,
        slow_start: p.slow_start.0,
        max_inflight: p.max_inflight,
        queue_timeout: p.queue_timeout.0,
        tls,
    })
}

/// A pool's `tls`: the CA file must hold a usable CA certificate, and every backend must have
/// a name to verify (the configured one, or its host).
fn pool_tls(
    issues: &mut Issues,
    i: usize,
    t: &super::raw::RawPoolTls,
    raw_backends: &[RawBackend],
    backends: &[BackendConfig],
) -> Option<std::sync::Arc<crate::upstream::tls::PoolTls>> {
    if t.ca.trim().is_empty() {
        issues.push(
            format!("pools[{i}].tls.ca"),
            "must name a PEM file of CA certificates",
        );
        return None;
    }
    let loaded = match crate::upstream::tls::PoolTls::load(
        std::path::Path::new(&t.ca),
        t.server_name.as_deref(),
    ) {
        Ok(loaded) => loaded,
        Err(issue) => {
            issues.push(format!("pools[{i}].tls.{}", issue.key), issue.message);
            return None;
        }
    };
    let mut usable = true;
    for b in backends {
        if let Err(reason) = loaded.name_for(&b.address) {
            let j = raw_backends.iter().position(|r| r.id == b.id).unwrap_or(0);
            issues.push(format!("pools[{i}].backends[{j}].address"), reason);
            usable = false;
        }
    }
    usable.then(|| std::sync::Arc::new(loaded))
}

fn health(issues: &mut Issues, i: usize, h: &super::raw::RawHealth) -> Option<HealthConfig> {
    let key = |k: &str| format!("pools[{i}].health.{k}");
    let before = issues.0.len();
    let kind = match h.kind {
        HealthCheck::None => HealthKind::None,
        HealthCheck::Tcp => HealthKind::Tcp,
        HealthCheck::Http => {
            if !h.path.starts_with('/') || h.path.contains([' ', '\r', '\n']) {
                issues.push(
                    key("path"),
                    format!("{:?} must start with '/' and hold no spaces", h.path),
                );
            }
            let expect = h.expect.clone().unwrap_or_default();
            if expect.iter().any(|s| !(100..=599).contains(s)) {
                issues.push(key("expect"), "statuses must be within 100..=599");
            }
            HealthKind::Http {
                path: h.path.clone(),
                expect,
                load_report: h.load_report,
                max_response_time: h.max_response_time.map(|d| d.0),
            }
        }
    };
    if h.max_response_time.is_some() && h.kind != HealthCheck::Http {
        issues.push(key("max_response_time"), "only applies to kind = \"http\"");
    }
    if h.load_report && h.kind != HealthCheck::Http {
        issues.push(key("load_report"), "only applies to kind = \"http\"");
    }
    if h.expect.is_some() && h.kind != HealthCheck::Http {
        issues.push(key("expect"), "only applies to kind = \"http\"");
    }
    if h.interval.0 < Duration::from_millis(100) {
        issues.push(key("interval"), "must be at least 100ms");
    }
    if h.timeout.0.is_zero() || h.timeout.0 > h.interval.0 {
        issues.push(
            key("timeout"),
            "must be more than 0 and at most the interval",
        );
    }
    if h.rise == 0 || h.fall == 0 {
        issues.push(key("rise"), "rise and fall must be at least 1");
    }
    let initially_healthy = h.initial == InitialHealth::Healthy;
    for (name, d) in [
        ("interval", h.interval.0),
        ("timeout", h.timeout.0),
        ("flap_window", h.flap_window.0),
        ("flap_penalty", h.flap_penalty.0),
        ("flap_max_penalty", h.flap_max_penalty.0),
    ] {
        if d > MAX_CONTROL_DURATION {
            issues.push(key(name), format!("{d:?} is more than a day"));
        }
    }
    if h.flap_penalty.0.is_zero() || h.flap_max_penalty.0 < h.flap_penalty.0 {
        issues.push(
            key("flap_max_penalty"),
            "flap_penalty must be more than 0 and flap_max_penalty at least flap_penalty",
        );
    }
    (issues.0.len() == before).then_some(HealthConfig {
        kind,
        interval: h.interval.0,
        timeout: h.timeout.0,
        rise: h.rise,
        fall: h.fall,
        initially_healthy,
        flap: super::FlapConfig {
            threshold: h.flap_threshold,
            window: h.flap_window.0,
            penalty: h.flap_penalty.0,
            max_penalty: h.flap_max_penalty.0,
        },
    })
}

fn hash_key(issues: &mut Issues, i: usize, key: Option<&str>) -> Option<HashKey> {
    match key {
        None | Some("client_ip") => Some(HashKey::ClientIp),
        Some(key) => match key.strip_prefix("header:") {
            Some(name) if http::HeaderName::from_bytes(name.trim().as_bytes()).is_ok() => {
                Some(HashKey::Header(name.trim().to_ascii_lowercase()))
            }
            _ => {
                issues.push(
                    format!("pools[{i}].hash_key"),
                    format!("{key:?}: expected \"client_ip\" or \"header:NAME\""),
                );
                None
            }
        },
    }
}

fn backend(issues: &mut Issues, key: &str, b: &RawBackend) -> Option<BackendConfig> {
    if b.weight == 0 {
        issues.push(
            format!("{key}.weight"),
            "must be at least 1 (drain a backend instead of weighting it 0)",
        );
    } else if b.weight > MAX_WEIGHT {
        issues.push(
            format!("{key}.weight"),
            format!("{} is more than {MAX_WEIGHT}", b.weight),
        );
    }
    let address = match parse_address(&b.address) {
        Ok(address) => Some(address),
        Err(message) => {
            issues.push(format!("{key}.address"), message);
            None
        }
    };
    if b.max_sessions == Some(0) {
        issues.push(
            format!("{key}.max_sessions"),
            "must be at least 1 (drain a backend to stop new sessions)",
        );
    }
    Some(BackendConfig {
        id: b.id.clone(),
        address: address?,
        weight: b.weight,
        max_sessions: b.max_sessions,
    })
}

/// Parses `ip:port` or `host:port`, resolving a host name now.
pub fn parse_address(text: &str) -> Result<BackendAddress, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(BackendAddress {
            host: addr.ip().to_string(),
            port: addr.port(),
            is_name: false,
            resolved: addr,
        });
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{text:?} has no port; expected \"host:port\""));
    };
    let port: u16 = match port.parse() {
        Ok(port) if port > 0 => port,
        _ => {
            return Err(format!(
                "{text:?}: port {port:?} is not a number in 1..=65535"
            ));
        }
    };
    let valid_name = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_');
    if !valid_name {
        return Err(format!(
            "{text:?}: {host:?} is neither an IP address nor a host name"
        ));
    }
    let resolved = resolve(host, port)?;
    Ok(BackendAddress {
        host: host.to_string(),
        port,
        is_name: true,
        resolved,
    })
}

/// Resolves a host name, preferring IPv4 (most backends listen there first).
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|err| format!("cannot resolve {host:?}: {err}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{host:?} resolved to no address"))
}

fn route(
    issues: &mut Issues,
    i: usize,
    r: &RawRoute,
    pools: &HashMap<&str, usize>,
    limits: &super::raw::RawLimits,
    redis_store: bool,
) -> Option<RouteConfig> {
    let before = issues.0.len();
    let pool = pools.get(r.pool.as_str()).copied();
    if pool.is_none() {
        let hint = closest(&r.pool, pools.keys().copied())
            .map(|name| format!(" (did you mean {name:?}?)"))
            .unwrap_or_default();
        issues.push(
            format!("routes[{i}].pool"),
            format!("no pool named {:?}{hint}", r.pool),
        );
    }
    if let Some(load) = r.overflow_load
        && !(load.is_finite() && load > 0.0)
    {
        issues.push(
            format!("routes[{i}].overflow_load"),
            "must be more than 0 (e.g. 0.9)",
        );
    }
    // The node's default per-address limit applies unless the route sets its own (0: none).
    let default_per_ip = (limits.rate_per_ip > 0).then(|| {
        let rate = limits.rate_per_ip;
        (rate, limits.burst_per_ip.unwrap_or(rate.saturating_mul(2)))
    });
    let rate_limit = r.rate_limit.as_ref().map(|l| {
        let key = format!("routes[{i}].rate_limit");
        let per_ip = match l.per_ip {
            Some(0) => None,
            Some(rate) => Some((rate, l.burst.unwrap_or(rate.saturating_mul(2)))),
            None => default_per_ip.map(|(rate, burst)| (rate, l.burst.unwrap_or(burst))),
        };
        let per_key = match (&l.key_header, l.per_key) {
            (Some(header), Some(rate)) => Some((
                header.trim().to_ascii_lowercase(),
                rate,
                l.key_burst.unwrap_or(rate.saturating_mul(2)),
            )),
            (None, None) => None,
            _ => {
                issues.push(&key, "key_header and per_key go together");
                None
            }
        };
        if l.per_ip == Some(0) && l.burst.is_some() {
            issues.push(format!("{key}.burst"), "no use with per_ip = 0 (no limit)");
        }
        for (name, value) in [
            ("burst", l.burst),
            ("per_key", per_key.as_ref().map(|p| p.1)),
            ("key_burst", per_key.as_ref().map(|p| p.2)),
        ] {
            if value == Some(0) {
                issues.push(
                    format!("{key}.{name}"),
                    "must be at least 1 (leave it out for no limit)",
                );
            }
        }
        if let Some((header, _, _)) = &per_key
            && actix_web::http::header::HeaderName::from_bytes(header.as_bytes()).is_err()
        {
            issues.push(
                format!("{key}.key_header"),
                format!("{header:?} is not a header name"),
            );
        }
        if l.per_ip.is_none()
            && l.burst.is_none()
            && per_key.is_none()
            && l.key_header.is_none()
            && !l.shared
        {
            issues.push(&key, "set per_ip, or key_header with per_key");
        }
        if l.shared && !redis_store {
            issues.push(
                format!("{key}.shared"),
                "needs the Redis store ([sessions] store = \"redis\"): shared limits live there",
            );
        } else if l.shared && per_ip.is_none() && per_key.is_none() {
            issues.push(
                format!("{key}.shared"),
                "no limit to share: per_ip is 0 (or [limits] rate_per_ip = 0) and no per_key",
            );
        }
        super::RateLimitConfig {
            per_ip,
            per_key,
            shared: l.shared,
        }
    });
    let rate_limit = match rate_limit {
        None => default_per_ip.map(|per_ip| super::RateLimitConfig {
            per_ip: Some(per_ip),
            per_key: None,
            shared: false,
        }),
        Some(l) if l.per_ip.is_none() && l.per_key.is_none() => None,
        some => some,
    };
    let path_prefix = normalize_prefix(&r.path_prefix);
    if !r.path_prefix.starts_with('/') || r.path_prefix.contains(['?', '#', ' ']) {
        issues.push(
            format!("routes[{i}].path_prefix"),
            format!(
                "{:?} must start with '/' and hold no '?', '#' or spaces",
                r.path_prefix
            ),
        );
    }
    let host = r.host.as_ref().map(|h| h.trim().to_ascii_lowercase());
    if let Some(h) = &host
        && (h.is_empty() || h.contains([':', '/', ' ']))
    {
        issues.push(
            format!("routes[{i}].host"),
            format!("{h:?} must be a bare host name (no port, scheme or path)"),
        );
    }
    if r.retry_buffer_bytes > MAX_RETRY_BUFFER_BYTES {
        issues.push(
            format!("routes[{i}].retry_buffer_bytes"),
            format!(
                "{} is more than {MAX_RETRY_BUFFER_BYTES}",
                r.retry_buffer_bytes
            ),
        );
    }
    if r.retry_budget.percent > 100 {
        issues.push(
            format!("routes[{i}].retry_budget.percent"),
            "must be 0..=100",
        );
    }
    if r.retries > MAX_RETRIES {
        issues.push(
            format!("routes[{i}].retries"),
            format!("{} is more than {MAX_RETRIES}", r.retries),
        );
    }
    for (name, d) in [
        ("connect", r.timeouts.connect.0),
        ("response", r.timeouts.response.0),
        ("idle", r.timeouts.idle.0),
    ] {
        if d.is_zero() {
            issues.push(
                format!("routes[{i}].timeouts.{name}"),
                "must be more than 0",
            );
        }
    }
    (issues.0.len() == before).then(|| RouteConfig {
        id: r.id.clone(),
        host,
        path_prefix,
        strip_prefix: r.strip_prefix,
        sticky: r.sticky,
        pool: pool.expect("no issue was recorded, so the pool exists"),
        timeouts: Timeouts {
            connect: r.timeouts.connect.0,
            response: r.timeouts.response.0,
            idle: r.timeouts.idle.0,
        },
        retries: r.retries,
        retry_non_idempotent: r.retry_non_idempotent,
        retry_budget: RetryBudgetConfig {
            percent: r.retry_budget.percent,
            min_per_s: r.retry_budget.min_per_s,
        },
        retry_buffer_bytes: r.retry_buffer_bytes,
        overflow: r.overflow,
        overflow_load: r.overflow_load,
        max_body_bytes: r.max_body_bytes,
        rate_limit,
        shed_share: r.priority.shed_share(),
    })
}

/// A public endpoint: `http://` or `https://`, a host, no path; returned without a trailing `/`.
fn public_url(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{text:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ']) {
        return Err(format!(
            "{text:?} must be a scheme and a host[:port], no path"
        ));
    }
    Ok(url.to_string())
}

/// `http://host:port[/]` → the normalised URL and its address (resolved now).
fn endpoint_addr(text: &str) -> Result<(String, SocketAddr), String> {
    let url = text.trim().trim_end_matches('/');
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!(
            "{text:?} must be an http:// URL (probes and forwarded requests speak plain HTTP between routers; set `internal` for an https endpoint)"
        ));
    };
    if rest.contains('/') {
        return Err(format!("{text:?} must have no path"));
    }
    let has_port = match rest.rfind(']') {
        Some(close) => rest[close..].contains(':'),
        None => rest.contains(':'),
    };
    let with_port = match has_port {
        true => rest.to_string(),
        false => format!("{rest}:80"),
    };
    let address = parse_address(&with_port).map_err(|reason| format!("{text:?}: {reason}"))?;
    Ok((url.to_string(), address.resolved))
}

fn directory(raw: &super::raw::RawDirectory, issues: &mut Issues) -> super::DirectoryConfig {
    let mut trusted = Vec::new();
    for (i, text) in raw.trusted_proxies.iter().enumerate() {
        match super::Cidr::parse(text) {
            Ok(cidr) => trusted.push(cidr),
            Err(reason) => issues.push(format!("directory.trusted_proxies[{i}]"), reason),
        }
    }
    let mut locations = Vec::new();
    for (i, l) in raw.locations.iter().enumerate() {
        let cidr = super::Cidr::parse(&l.cidr);
        if let Err(reason) = &cidr {
            issues.push(format!("directory.locations[{i}].cidr"), reason.clone());
        }
        if !(-90.0..=90.0).contains(&l.lat) {
            issues.push(
                format!("directory.locations[{i}].lat"),
                "must be within -90..=90",
            );
        }
        if !(-180.0..=180.0).contains(&l.lon) {
            issues.push(
                format!("directory.locations[{i}].lon"),
                "must be within -180..=180",
            );
        }
        if let Ok(cidr) = cidr {
            locations.push((cidr, (l.lat, l.lon)));
        }
    }
    if raw.rise == 0 {
        issues.push("directory.rise", "must be at least 1");
    }
    if raw.fall == 0 {
        issues.push("directory.fall", "must be at least 1");
    }
    if raw.probe_interval.0.is_zero() || raw.probe_timeout.0.is_zero() {
        issues.push(
            "directory.probe_interval",
            "probe interval and timeout must be more than 0",
        );
    }
    let geo_header = raw.geo_header.trim().to_ascii_lowercase();
    if actix_web::http::header::HeaderName::from_bytes(geo_header.as_bytes()).is_err() {
        issues.push(
            "directory.geo_header",
            format!("{:?} is not a header name", raw.geo_header),
        );
    }
    super::DirectoryConfig {
        ttl: raw.ttl.0,
        probe_interval: raw.probe_interval.0,
        probe_timeout: raw.probe_timeout.0,
        rise: raw.rise.max(1),
        fall: raw.fall.max(1),
        geo_header,
        trusted_proxies: trusted,
        locations,
    }
}

fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalised() {
        assert_eq!(normalize_prefix("/api/"), "/api");
        assert_eq!(normalize_prefix("/"), "/");
        assert_eq!(normalize_prefix("//"), "/");
    }

    #[test]
    fn addresses_parse() {
        let a = parse_address("127.0.0.1:8080").unwrap();
        assert!(!a.is_name);
        let a = parse_address("localhost:8080").unwrap();
        assert!(a.is_name);
        assert_eq!(a.resolved.port(), 8080);
        assert!(parse_address("localhost").unwrap_err().contains("no port"));
        assert!(parse_address("localhost:0").unwrap_err().contains("port"));
        assert!(
            parse_address("bad host:80")
                .unwrap_err()
                .contains("neither")
        );
        assert!(
            parse_address("no-such-host.invalid:80")
                .unwrap_err()
                .contains("cannot resolve")
        );
    }
}
