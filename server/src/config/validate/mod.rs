//! `RawConfig` → `Config`: every check of the file's values, each problem with its key path,
//! all of them collected rather than stopping at the first.
//!
//! Pure: nothing here reads a file or resolves a name (that is [`super::load`]), so the same
//! text always gives the same answer. One module per section of the file; this one only
//! puts them together. The `Config` it builds has every listener, pool and backend even when
//! there are problems (a value that did not pass stands in as a harmless fallback; only
//! routes with problems are left out, as the load step has nothing to do for routes), so the
//! load step can still check every file and name. It is never handed out then.

mod address;
mod limits;
mod listeners;
mod node;
mod pools;
mod regions;
mod routes;
mod sessions;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};

use super::raw::RawConfig;
use super::{Cidr, Config, ConfigIssue};

pub use address::{backend_address, internal_url};
pub use node::MIN_ADMIN_TOKEN_BYTES;
pub use pools::{MAX_CONTROL_DURATION, MAX_WEIGHT, MIN_RESOLVE_INTERVAL, backend_id_problem};
pub use routes::{MAX_RETRIES, MAX_RETRY_BUFFER_BYTES, MAX_SPLIT_WEIGHT};

/// Checks a parsed file: the typed config, and every problem found (none: it is valid).
pub fn validate(raw: RawConfig) -> (Config, Vec<ConfigIssue>) {
    let mut issues = Issues::default();
    let mut ids = Ids::default();
    let node = node::node(&raw.node, &mut issues);
    let log = node::log(&raw.log, &mut issues);
    let listeners = listeners::listeners(&raw.listeners, &mut ids, &mut issues);
    let pools = pools::pools(&raw.pools, &mut ids, &mut issues);
    let routes = routes::routes(&raw, &mut ids, &mut issues);
    let regions = regions::regions(&raw.regions, &raw.node.region, &mut issues);
    let directory = regions::directory(&raw.directory, &mut issues);
    let limits = limits::limits(&raw.limits, &mut issues);
    let sessions = sessions::sessions(&raw.sessions, &mut issues);
    let config = Config {
        node,
        log,
        listeners,
        routes,
        pools,
        regions,
        directory,
        limits,
        sessions,
        source: None,
    };
    (config, issues.0)
}

/// The problems found so far.
#[derive(Default)]
pub(super) struct Issues(Vec<ConfigIssue>);

impl Issues {
    pub(super) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue {
            key: key.into(),
            message: message.into(),
        });
    }

    /// How many so far: a section compares it before and after to know whether it passed.
    pub(super) fn count(&self) -> usize {
        self.0.len()
    }
}

/// Ids already used, by kind. Ids are unique within their kind (a route and its pool may
/// share a name, as in the design's example); backend ids are unique across all pools, since
/// operators address backends by id alone.
#[derive(Default)]
pub(super) struct Ids(HashMap<(&'static str, String), String>);

impl Ids {
    /// Records `id` of a `kind` written at `key`, or says where it was used first.
    pub(super) fn claim(&mut self, issues: &mut Issues, kind: &'static str, key: String, id: &str) {
        if id.trim().is_empty() {
            issues.push(key, "ids must not be empty");
        } else if let Some(first) = self.0.get(&(kind, id.to_string())) {
            issues.push(key, format!("{kind} id {id:?} is already used by {first}"));
        } else {
            self.0.insert((kind, id.to_string()), key);
        }
    }
}

/// Stands in for an address that did not parse (never used: the config is refused).
pub(super) const NO_ADDRESS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// A listening address, `ip:port` (names are not resolved for listeners).
pub(super) fn socket_addr(issues: &mut Issues, key: &str, text: &str) -> SocketAddr {
    text.parse::<SocketAddr>().unwrap_or_else(|_| {
        issues.push(
            key,
            format!("{text:?} is not an ip:port address (e.g. \"127.0.0.1:8080\")"),
        );
        NO_ADDRESS
    })
}

/// A list of CIDRs at `key` (`node.trusted_proxies`): the ones that parse.
pub(super) fn cidrs(issues: &mut Issues, key: &str, texts: &[String]) -> Vec<Cidr> {
    let mut cidrs = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        match Cidr::parse(text) {
            Ok(cidr) => cidrs.push(cidr),
            Err(reason) => issues.push(format!("{key}[{i}]"), reason),
        }
    }
    cidrs
}

/// A header name as configured: trimmed and lower-case, or why it is not one.
pub(super) fn header_name(text: &str) -> Result<String, String> {
    let name = text.trim().to_ascii_lowercase();
    match http::HeaderName::from_bytes(name.as_bytes()) {
        Ok(_) => Ok(name),
        Err(_) => Err(format!("{text:?} is not a header name")),
    }
}
