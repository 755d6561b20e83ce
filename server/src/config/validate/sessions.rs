//! `[sessions]`: session tokens, their keys and lifetimes, and the Redis store. The cookie
//! key file is read by the load step.

use std::time::Duration;

use super::Issues;
use crate::config::raw::{DEFAULT_UNCONFIRMED_TTL, RawSessions, SessionStore};
use crate::config::{RedisConfig, SessionsConfig};

/// Longest a moved session's backend may take to close: the client waits that long.
const MAX_HANDOFF_LINGER: Duration = Duration::from_secs(60);
/// Longest the previous cookie key is honoured: a rotation that never ends is no rotation.
const MAX_PREVIOUS_KEY_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

pub(super) fn sessions(raw: &RawSessions, issues: &mut Issues) -> SessionsConfig {
    let redis = match raw.store {
        SessionStore::Memory => {
            if !raw.sentinels.is_empty() {
                issues.push("sessions.sentinels", "only used with store = \"redis\"");
            }
            if !raw.cluster_nodes.is_empty() {
                issues.push("sessions.cluster_nodes", "only used with store = \"redis\"");
            }
            None
        }
        SessionStore::Redis => Some(redis(raw, issues)),
    };
    if raw.previous_key_window.0 > MAX_PREVIOUS_KEY_WINDOW {
        issues.push("sessions.previous_key_window", "must be at most 30 days");
    }
    if raw.ttl.0.is_zero() {
        issues.push("sessions.ttl", "must be more than 0");
    }
    let unconfirmed = raw.unconfirmed_ttl.as_ref().map(|d| d.0);
    if unconfirmed.is_some_and(|d| d < Duration::from_secs(1)) {
        issues.push("sessions.unconfirmed_ttl", "must be at least 1s");
    } else if unconfirmed.is_some_and(|d| d > raw.ttl.0) {
        issues.push(
            "sessions.unconfirmed_ttl",
            format!("must be at most sessions.ttl ({:?})", raw.ttl.0),
        );
    }
    if raw.max_records == 0 {
        issues.push("sessions.max_records", "must be at least 1");
    }
    if raw.handoff_linger.0 > MAX_HANDOFF_LINGER {
        issues.push("sessions.handoff_linger", "must be at most 60 seconds");
    }
    SessionsConfig {
        cookie_key_env: raw.cookie_key_env.clone(),
        // Read from the file by the load step.
        cookie_key: None,
        cookie_key_file: raw.cookie_key_file.as_ref().map(std::path::PathBuf::from),
        ttl: raw.ttl.0,
        previous_key_env: raw.previous_key_env.clone(),
        previous_key_window: raw.previous_key_window.0,
        redis,
        handoff_linger: raw.handoff_linger.0,
        max_records: raw.max_records,
    }
}

fn redis(raw: &RawSessions, issues: &mut Issues) -> RedisConfig {
    // Parses the URL only; nothing is connected.
    if let Err(err) = redis::Client::open(raw.redis_url.as_str()) {
        issues.push("sessions.redis_url", format!("{:?}: {err}", raw.redis_url));
    }
    if raw.store_timeout.0.is_zero() {
        issues.push("sessions.store_timeout", "must be more than 0");
    }
    for (list, addresses) in [
        ("sessions.sentinels", &raw.sentinels),
        ("sessions.cluster_nodes", &raw.cluster_nodes),
    ] {
        for (i, address) in addresses.iter().enumerate() {
            let valid = address
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                issues.push(
                    format!("{list}[{i}]"),
                    format!("{address:?} is not host:port"),
                );
            }
        }
    }
    if !raw.sentinels.is_empty() && !raw.cluster_nodes.is_empty() {
        issues.push(
            "sessions.cluster_nodes",
            "not with sessions.sentinels: a Redis Cluster fails over by itself",
        );
    }
    if !raw.sentinels.is_empty() && raw.sentinel_master.is_empty() {
        issues.push("sessions.sentinel_master", "must not be empty");
    }
    RedisConfig {
        url: raw.redis_url.clone(),
        key_prefix: raw.key_prefix.clone(),
        timeout: raw.store_timeout.0,
        sentinels: raw.sentinels.clone(),
        sentinel_master: raw.sentinel_master.clone(),
        cluster_nodes: raw.cluster_nodes.clone(),
        unconfirmed_ttl: raw
            .unconfirmed_ttl
            .map_or(DEFAULT_UNCONFIRMED_TTL.min(raw.ttl.0), |d| d.0),
    }
}
