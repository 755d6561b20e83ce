//! Typed construction of a config file, for tests and the demo: the file's own [`raw`] structs
//! filled with typed values (required keys through `new`, every other key from its default,
//! changed with struct update syntax), rendered as TOML. What they build then goes through
//! the same parse → validate → load as a file does, so a built config is checked as strictly.
//!
//! ```
//! use switchyard::config::raw::{AlgorithmName, RawBackend, RawConfig, RawPool, RawRoute};
//!
//! let mut file = RawConfig::default();
//! file.node.listen = "127.0.0.1:0".to_string();
//! file.routes.push(RawRoute::new("api", "/api", "api"));
//! file.pools.push(RawPool {
//!     algorithm: AlgorithmName::LeastConnections,
//!     backends: vec![RawBackend::new("a1", "127.0.0.1:9001")],
//!     ..RawPool::new("api")
//! });
//! let config = file.build().unwrap();
//! assert_eq!(config.pools[0].backends[0].id, "a1");
//! ```
//!
//! [`raw`]: super::raw

use serde::Serialize;

use super::raw::{
    AlgorithmName, DurationStr, Overflow, Priority, RawBackend, RawConfig, RawPool, RawRoute,
};
use super::{Config, ConfigError};

impl RawConfig {
    /// The whole file as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("every raw config renders as TOML")
    }

    /// Renders the file and loads it, as [`Config::from_toml_str`] would the same text.
    pub fn build(&self) -> Result<Config, ConfigError> {
        Config::from_toml_str(&self.to_toml())
    }
}

impl RawRoute {
    /// A route sending `path_prefix` to `pool`, every other key at its default.
    pub fn new(id: &str, path_prefix: &str, pool: &str) -> RawRoute {
        RawRoute {
            id: id.to_string(),
            host: None,
            path_prefix: path_prefix.to_string(),
            strip_prefix: false,
            sticky: false,
            pool: Some(pool.to_string()),
            split: None,
            standby: None,
            shadow: None,
            split_by: None,
            split_override_header: None,
            split_response_header: None,
            timeouts: Default::default(),
            retries: super::raw::default_retries(),
            retry_non_idempotent: false,
            retry_budget: Default::default(),
            retry_buffer_bytes: super::raw::default_retry_buffer_bytes(),
            overflow: Overflow::default(),
            overflow_load: None,
            max_body_bytes: super::raw::default_max_body_bytes(),
            rate_limit: None,
            priority: Priority::default(),
        }
    }

    /// Its `[[routes]]` table, to put in a file beside others: the keys that differ from
    /// their defaults.
    pub fn to_toml(&self) -> String {
        let pool = self.pool.as_deref().unwrap_or_default();
        let defaults = RawRoute::new(&self.id, &self.path_prefix, pool);
        table_toml("routes", self, &defaults, &["id", "path_prefix", "pool"])
    }
}

impl RawPool {
    /// A pool without backends, every other key at its default.
    pub fn new(id: &str) -> RawPool {
        RawPool {
            id: id.to_string(),
            algorithm: AlgorithmName::default(),
            hash_key: None,
            resolve_interval: super::raw::default_resolve_interval(),
            backends: Vec::new(),
            health: Default::default(),
            outlier: Default::default(),
            panic_threshold: super::raw::default_panic_threshold(),
            slow_start: DurationStr::default(),
            max_inflight: None,
            queue_timeout: super::raw::default_queue_timeout(),
            tls: None,
            protocol: Default::default(),
        }
    }

    /// Its `[[pools]]` table, to put in a file beside others: the keys that differ from
    /// their defaults.
    pub fn to_toml(&self) -> String {
        table_toml("pools", self, &RawPool::new(&self.id), &["id"])
    }
}

impl RawBackend {
    /// A backend at `address` (`ip:port` or `host:port`) with weight 1 and no session limit.
    pub fn new(id: &str, address: impl ToString) -> RawBackend {
        RawBackend {
            id: id.to_string(),
            address: address.to_string(),
            weight: super::raw::default_weight(),
            max_sessions: None,
        }
    }
}

/// A table's keys inline, `{ kind = "http", interval = "100ms", … }`: for a value such as a
/// pool's `health` written into a file by hand.
pub fn inline(table: &impl Serialize) -> String {
    toml::Value::Table(toml_table(table)).to_string()
}

/// `[[name]]` and one `key = value` line (nested tables inline) per key of `table` that is
/// in `keep` or differs from `defaults`, so the text reads as if written by hand and can be
/// appended to a file whatever else it holds.
fn table_toml(
    name: &str,
    table: &impl Serialize,
    defaults: &impl Serialize,
    keep: &[&str],
) -> String {
    let (table, defaults) = (toml_table(table), toml_table(defaults));
    let mut text = format!("[[{name}]]\n");
    for (key, value) in &table {
        if keep.contains(&key.as_str()) || defaults.get(key) != Some(value) {
            text.push_str(&format!("{key} = {value}\n"));
        }
    }
    text
}

fn toml_table(table: &impl Serialize) -> toml::Table {
    toml::Table::try_from(table).expect("every raw table renders as TOML")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::{HealthCheck, RawHealth};

    #[test]
    fn a_built_file_loads_like_the_same_text() {
        let mut file = RawConfig::default();
        file.node.listen = "127.0.0.1:0".to_string();
        file.routes.push(RawRoute {
            priority: Priority::High,
            ..RawRoute::new("api", "/api", "api")
        });
        file.pools.push(RawPool {
            health: RawHealth {
                kind: HealthCheck::Http,
                interval: DurationStr::millis(1500),
                timeout: DurationStr::millis(200),
                ..Default::default()
            },
            backends: vec![RawBackend {
                weight: 3,
                ..RawBackend::new("a1", "127.0.0.1:9001")
            }],
            ..RawPool::new("api")
        });
        let config = file
            .build()
            .unwrap_or_else(|err| panic!("{err}\n{}", file.to_toml()));
        assert_eq!(config.routes[0].shed_share, 100);
        assert_eq!(config.pools[0].backends[0].weight, 3);
        assert_eq!(
            config.pools[0].health.interval,
            std::time::Duration::from_millis(1500)
        );
    }

    #[test]
    fn tables_render_to_append_to_a_file() {
        let text = format!(
            "{}{}",
            RawRoute::new("api", "/api", "api").to_toml(),
            RawPool {
                backends: vec![RawBackend::new("a1", "127.0.0.1:9001")],
                ..RawPool::new("api")
            }
            .to_toml()
        );
        let config = Config::from_toml_str(&text).unwrap_or_else(|err| panic!("{err}\n{text}"));
        assert_eq!(config.routes[0].path_prefix, "/api");
    }
}
