//! `[[pools]]`: balancer, backends, active health checks, outlier detection, shedding and
//! backend TLS. Backend host names are resolved and CA files read by the load step.

use std::time::Duration;

use rustls::pki_types::ServerName;

use super::{Ids, Issues, NO_ADDRESS, address::backend_address, header_name};
use crate::config::raw::{
    AlgorithmName, HealthCheck, InitialHealth, PoolProtocol, RawBackend, RawHealth, RawPool,
    RawPoolTls,
};
use crate::config::{
    Algorithm, BackendAddress, BackendConfig, FlapConfig, HashKey, HealthConfig, HealthKind,
    OutlierConfig, PoolConfig, PoolTlsConfig, UpstreamProtocol,
};

/// Largest accepted backend weight: enough for percentages with two decimals.
pub const MAX_WEIGHT: u32 = 10_000;
/// Longest accepted health, ejection and flap duration: longer ones are typos, and could
/// overflow time arithmetic.
pub const MAX_CONTROL_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Fastest accepted re-resolution interval for host-name backends.
pub const MIN_RESOLVE_INTERVAL: Duration = Duration::from_secs(1);
/// Longest a shed request may wait for room: past it a client has long given up.
const MAX_QUEUE_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Every pool, in file order (so `pools[i]` in the load step is the file's `pools[i]`).
pub(super) fn pools(raw: &[RawPool], ids: &mut Ids, issues: &mut Issues) -> Vec<PoolConfig> {
    raw.iter()
        .enumerate()
        .map(|(i, p)| pool(i, p, ids, issues))
        .collect()
}

fn pool(i: usize, p: &RawPool, ids: &mut Ids, issues: &mut Issues) -> PoolConfig {
    let key = |k: &str| format!("pools[{i}].{k}");
    ids.claim(issues, "pool", key("id"), &p.id);
    let algorithm = match p.algorithm {
        AlgorithmName::RoundRobin => Algorithm::RoundRobin,
        AlgorithmName::WeightedRoundRobin => Algorithm::WeightedRoundRobin,
        AlgorithmName::LeastConnections => Algorithm::LeastConnections,
        AlgorithmName::Random => Algorithm::Random,
        AlgorithmName::P2cEwma => Algorithm::P2cEwma,
        AlgorithmName::ConsistentHash => {
            Algorithm::ConsistentHash(hash_key(i, p.hash_key.as_deref(), issues))
        }
    };
    if p.hash_key.is_some() && p.algorithm != AlgorithmName::ConsistentHash {
        issues.push(
            key("hash_key"),
            "only applies to algorithm = \"consistent_hash\"",
        );
    }
    if p.resolve_interval.0 < MIN_RESOLVE_INTERVAL {
        issues.push(
            key("resolve_interval"),
            format!("must be at least {MIN_RESOLVE_INTERVAL:?}"),
        );
    }
    if p.backends.is_empty() {
        issues.push(
            key("backends"),
            format!("pool {:?} has no backends; a pool needs at least one", p.id),
        );
    }
    let backends: Vec<_> = p
        .backends
        .iter()
        .enumerate()
        .map(|(j, b)| backend(&format!("pools[{i}].backends[{j}]"), b, ids, issues))
        .collect();
    let protocol = match p.protocol {
        PoolProtocol::Http1 => UpstreamProtocol::Http1,
        PoolProtocol::H2 => UpstreamProtocol::H2,
    };
    let health = health(i, &p.health, protocol, issues);
    let outlier = outlier(i, p, issues);
    if p.max_inflight == Some(0) {
        issues.push(
            key("max_inflight"),
            "must be at least 1 (leave it out for no limit)",
        );
    }
    if p.queue_timeout.0 > MAX_QUEUE_TIMEOUT {
        issues.push(key("queue_timeout"), "must be at most 60 s");
    }
    if p.slow_start.0 > MAX_CONTROL_DURATION || p.resolve_interval.0 > MAX_CONTROL_DURATION {
        issues.push(
            format!("pools[{i}]"),
            "slow_start and resolve_interval must be at most a day",
        );
    }
    if p.panic_threshold > 100 {
        issues.push(key("panic_threshold"), "must be 0..=100 (percent)");
    }
    let tls = p
        .tls
        .as_ref()
        .map(|t| tls(i, t, &backends, protocol, issues));
    PoolConfig {
        id: p.id.clone(),
        algorithm,
        resolve_interval: p.resolve_interval.0,
        backends,
        health,
        outlier,
        panic_threshold: p.panic_threshold,
        slow_start: p.slow_start.0,
        max_inflight: p.max_inflight,
        queue_timeout: p.queue_timeout.0,
        tls,
        protocol,
    }
}

/// A pool's `tls`: a CA file named (read by the load step), and every backend with a name
/// to verify (`server_name`, or its host; an invalid `server_name` is reported at load).
fn tls(
    i: usize,
    t: &RawPoolTls,
    backends: &[BackendConfig],
    protocol: UpstreamProtocol,
    issues: &mut Issues,
) -> PoolTlsConfig {
    if t.ca.trim().is_empty() {
        issues.push(
            format!("pools[{i}].tls.ca"),
            "must name a PEM file of CA certificates",
        );
    }
    if t.server_name.is_none() {
        for (j, b) in backends.iter().enumerate() {
            if b.address.is_name
                && let Err(err) = ServerName::try_from(b.address.host.as_str())
            {
                issues.push(
                    format!("pools[{i}].backends[{j}].address"),
                    format!(
                        "{:?} is not usable as a TLS server name ({err}); set the pool's tls.server_name",
                        b.address.host
                    ),
                );
            }
        }
    }
    PoolTlsConfig {
        ca: t.ca.clone().into(),
        // Read from the file by the load step.
        ca_certificates: Vec::new(),
        server_name: t.server_name.clone(),
        h2: protocol == UpstreamProtocol::H2,
    }
}

fn outlier(i: usize, p: &RawPool, issues: &mut Issues) -> OutlierConfig {
    let key = |k: &str| format!("pools[{i}].outlier.{k}");
    let o = &p.outlier;
    for (name, d) in [
        ("base_ejection", o.base_ejection.0),
        ("max_ejection", o.max_ejection.0),
    ] {
        if d > MAX_CONTROL_DURATION {
            issues.push(key(name), format!("{d:?} is more than a day"));
        }
    }
    if o.max_ejection_percent > 100 {
        issues.push(key("max_ejection_percent"), "must be 0..=100");
    }
    if o.base_ejection.0.is_zero() || o.max_ejection.0 < o.base_ejection.0 {
        issues.push(
            key("max_ejection"),
            "base_ejection must be more than 0 and max_ejection at least base_ejection",
        );
    }
    OutlierConfig {
        consecutive_failures: o.consecutive_failures,
        base_ejection: o.base_ejection.0,
        max_ejection: o.max_ejection.0,
        max_ejection_percent: o.max_ejection_percent,
    }
}

fn health(
    i: usize,
    h: &RawHealth,
    protocol: UpstreamProtocol,
    issues: &mut Issues,
) -> HealthConfig {
    let key = |k: &str| format!("pools[{i}].health.{k}");
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
        HealthCheck::Grpc => {
            if protocol != UpstreamProtocol::H2 {
                issues.push(
                    key("kind"),
                    "\"grpc\" checks need the pool's protocol = \"h2\" (gRPC runs over HTTP/2)",
                );
            }
            let service = h.service.clone().unwrap_or_default();
            if service.len() > 256 || service.chars().any(|c| c.is_control()) {
                issues.push(
                    key("service"),
                    format!("{service:?} must be at most 256 characters, none of them control characters"),
                );
            }
            HealthKind::Grpc { service }
        }
    };
    if h.kind != HealthCheck::Grpc && h.service.is_some() {
        issues.push(key("service"), "only applies to kind = \"grpc\"");
    }
    if h.kind != HealthCheck::Http {
        for (name, set) in [
            ("max_response_time", h.max_response_time.is_some()),
            ("load_report", h.load_report),
            ("expect", h.expect.is_some()),
        ] {
            if set {
                issues.push(key(name), "only applies to kind = \"http\"");
            }
        }
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
    HealthConfig {
        kind,
        protocol,
        interval: h.interval.0,
        timeout: h.timeout.0,
        rise: h.rise,
        fall: h.fall,
        initially_healthy: h.initial == InitialHealth::Healthy,
        flap: FlapConfig {
            threshold: h.flap_threshold,
            window: h.flap_window.0,
            penalty: h.flap_penalty.0,
            max_penalty: h.flap_max_penalty.0,
        },
    }
}

fn hash_key(i: usize, key: Option<&str>, issues: &mut Issues) -> HashKey {
    let Some(key) = key.filter(|k| *k != "client_ip") else {
        return HashKey::ClientIp;
    };
    match key.strip_prefix("header:").map(header_name) {
        Some(Ok(name)) => HashKey::Header(name),
        _ => {
            issues.push(
                format!("pools[{i}].hash_key"),
                format!("{key:?}: expected \"client_ip\" or \"header:NAME\""),
            );
            HashKey::ClientIp
        }
    }
}

fn backend(key: &str, b: &RawBackend, ids: &mut Ids, issues: &mut Issues) -> BackendConfig {
    ids.claim(issues, "backend", format!("{key}.id"), &b.id);
    if let Some(problem) = backend_id_problem(&b.id) {
        issues.push(format!("{key}.id"), problem);
    }
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
    let address = backend_address(&b.address).unwrap_or_else(|message| {
        issues.push(format!("{key}.address"), message);
        BackendAddress {
            host: b.address.clone(),
            port: 0,
            is_name: false,
            resolved: NO_ADDRESS,
        }
    });
    if b.max_sessions == Some(0) {
        issues.push(
            format!("{key}.max_sessions"),
            "must be at least 1 (drain a backend to stop new sessions)",
        );
    }
    BackendConfig {
        id: b.id.clone(),
        address,
        weight: b.weight,
        max_sessions: b.max_sessions,
    }
}
