//! `[node]` and `[log]`: this process's addresses, workers, stop timings and trusted proxies,
//! and its logging.

use std::time::Duration;

use super::{Issues, cidrs, socket_addr};
use crate::config::raw::{RawLog, RawNode};
use crate::config::{LogConfig, NodeConfig};

/// Shortest admin token accepted: a guessable token would make the admin API an open door.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;
/// Most request-path workers: more only adds contention on any machine the router runs on.
const MAX_WORKERS: usize = 256;
/// Longest stop timing: a longer one keeps a SIGTERM from ever finishing.
const MAX_STOP_TIMING: Duration = Duration::from_secs(3600);

pub(super) fn node(raw: &RawNode, issues: &mut Issues) -> NodeConfig {
    let listen = socket_addr(issues, "node.listen", &raw.listen);
    let admin_listen = socket_addr(issues, "node.admin_listen", &raw.admin_listen);
    let workers = match raw.workers {
        Some(0) => {
            issues.push("node.workers", "must be at least 1");
            1
        }
        Some(n) if n > MAX_WORKERS => {
            issues.push("node.workers", format!("{n} is more than {MAX_WORKERS}"));
            1
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    if raw.max_connections == 0 {
        issues.push("node.max_connections", "must be at least 1");
    }
    if raw.shutdown_timeout.0.is_zero() {
        issues.push("node.shutdown_timeout", "must be more than 0");
    }
    for (key, value) in [
        ("node.shutdown_delay", raw.shutdown_delay.0),
        ("node.shutdown_timeout", raw.shutdown_timeout.0),
        ("node.shutdown_spread", raw.shutdown_spread.0),
    ] {
        if value > MAX_STOP_TIMING {
            issues.push(key, "must be at most 1 hour");
        }
    }
    let admin_token_file = raw.admin_token_file.as_ref().map(std::path::PathBuf::from);
    NodeConfig {
        region: raw.region.clone(),
        listen,
        admin_listen,
        workers,
        shutdown_timeout: raw.shutdown_timeout.0,
        shutdown_delay: raw.shutdown_delay.0,
        shutdown_spread: raw.shutdown_spread.0,
        trusted_proxies: cidrs(issues, "node.trusted_proxies", &raw.trusted_proxies),
        max_connections: raw.max_connections,
        // Read from the file by the load step.
        admin_token: None,
        admin_token_file,
        admin_token_env: raw.admin_token_env.clone(),
    }
}

pub(super) fn log(raw: &RawLog, issues: &mut Issues) -> LogConfig {
    if raw
        .access_path
        .as_deref()
        .is_some_and(|p| p.trim().is_empty())
    {
        issues.push(
            "log.access_path",
            "must not be empty (leave it out for stdout)",
        );
    }
    LogConfig {
        access: raw.access,
        format: raw.format,
        level: raw.level.clone(),
        access_path: raw.access_path.as_ref().map(std::path::PathBuf::from),
    }
}
