//! The route table: which route a request belongs to, and the pools routes send to.
//!
//! Built once from a [`Config`] (and again on reload); immutable afterwards. Matching is a
//! short linear scan in precedence order: host-specific routes before any-host ones, longer
//! prefixes before shorter, so the first hit is the most specific.

use std::sync::Arc;

use super::backend::{BackendEntry, BackendState};
use super::outcomes::Outcomes;
use super::shadow::Shadow;
use super::snapshot::PoolHandle;
use super::split::{Split, Variant, WeightsFrom};
use super::stats::BackendStats;
use crate::config::{
    Algorithm, Config, HealthConfig, HealthKind, Overflow, PoolConfig, RouteConfig, Timeouts,
};
use crate::policy::retry::RetryBudget;

/// One route, ready for the request path.
#[derive(Debug)]
pub struct Route {
    pub id: Arc<str>,
    host: Option<String>,
    prefix: String,
    pub strip_prefix: bool,
    pub sticky: bool,
    /// The pools the route sends to: one, or the parts of its split (in the config's order).
    pub variants: Box<[Variant]>,
    /// How a request picks among `variants`; `None` with one pool.
    pub split: Option<Split>,
    /// Where a share of its requests is mirrored.
    pub shadow: Option<Shadow>,
    pub timeouts: Timeouts,
    pub retries: u32,
    pub retry_non_idempotent: bool,
    pub budget: RetryBudget,
    pub retry_buffer_bytes: u64,
    /// What to do when the pool has no capacity.
    pub overflow: Overflow,
    pub overflow_load: Option<f64>,
    /// 0: no limit.
    pub max_body_bytes: u64,
    pub rates: Option<crate::policy::ratelimit::RouteRates>,
    /// Share of the pool's `max_inflight` this route may fill (percent).
    pub shed_share: u32,
}

impl Route {
    /// The host it matches (`None`: any).
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The route's first pool (its only one without a split).
    pub fn pool(&self) -> &Arc<PoolHandle> {
        &self.variants[0].pool
    }

    /// Whether the route sends to `pool`.
    pub fn sends_to(&self, pool: &str) -> bool {
        self.variants.iter().any(|v| &*v.pool.id == pool)
    }

    /// True when `path` is the prefix itself or continues it at a `/` boundary.
    pub fn matches_path(&self, path: &str) -> bool {
        prefix_matches(&self.prefix, path)
    }

    fn matches_host(&self, host: Option<&str>) -> bool {
        match (&self.host, host) {
            (None, _) => true,
            (Some(want), Some(got)) => want.eq_ignore_ascii_case(strip_port(got)),
            (Some(_), None) => false,
        }
    }

    /// The path to send upstream: with the prefix removed when the route strips it.
    pub fn upstream_path<'a>(&self, path: &'a str) -> &'a str {
        if !self.strip_prefix || self.prefix == "/" {
            return path;
        }
        match &path[self.prefix.len().min(path.len())..] {
            "" => "/",
            rest => rest,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// A backend's state before its first health check.
pub fn initial_state(health: &HealthConfig) -> BackendState {
    if health.kind == HealthKind::None || health.initially_healthy {
        BackendState::Up
    } else {
        BackendState::Unknown
    }
}

/// `/api` matches `/api` and `/api/x`, never `/apix`; `/` matches everything.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// What a rebuild changed among the pools.
#[derive(Debug, Default)]
pub struct PoolChanges {
    /// New pools, with their first handle.
    pub added: Vec<(PoolConfig, Arc<PoolHandle>)>,
    /// Pools kept (same id), with their new config and the ids of the routes now using them.
    pub kept: Vec<(PoolConfig, Vec<String>)>,
    /// Ids of pools the new config no longer has.
    pub removed: Vec<String>,
}

/// All routes and pools of one configuration.
#[derive(Debug)]
pub struct RouteTable {
    /// In match precedence order.
    routes: Vec<Arc<Route>>,
    pub pools: Vec<Arc<PoolHandle>>,
}

/// Weights set through the admin API outlive a reload while the route splits among the same
/// pools; a route whose pools changed starts from its config's weights (logged).
fn keep_admin_weights(route: &Route, previous: &RouteTable) {
    let Some(split) = &route.split else {
        return;
    };
    let Some((old, old_split)) = previous
        .routes
        .iter()
        .find(|r| r.id == route.id)
        .and_then(|r| Some((r, r.split.as_ref()?)))
    else {
        return;
    };
    let weights = old_split.weights();
    if weights.from == WeightsFrom::Config {
        return;
    }
    let pools = |r: &Route| {
        r.variants
            .iter()
            .map(|v| v.pool.id.clone())
            .collect::<Vec<_>>()
    };
    if pools(old) == pools(route) {
        split.set((*weights).clone());
    } else {
        tracing::warn!(route = %route.id, "the route's pools changed: weights set through the admin API are dropped, the config's apply");
    }
}

/// The pools a route sends to, as indexes into the config's pools: its split's parts in
/// order, or its one pool.
fn route_pools(route: &RouteConfig) -> impl Iterator<Item = usize> + '_ {
    let parts = route
        .split
        .as_ref()
        .map(|s| &s.parts[..])
        .unwrap_or_default();
    let single = route.split.is_none().then_some(route.pool);
    parts.iter().map(|&(p, _)| p).chain(single)
}

impl RouteTable {
    /// Builds the table and every pool's first snapshot (all backends up) from a config.
    pub fn build(config: &Config) -> RouteTable {
        RouteTable::rebuild(config, None).0
    }

    /// Builds the table for a (re)loaded config. Pools that `previous` already has keep their
    /// handle — their snapshot, live counters and session registry — so requests and sessions
    /// under way are untouched; their actors apply the new settings. Returns what changed.
    pub fn rebuild(config: &Config, previous: Option<&RouteTable>) -> (RouteTable, PoolChanges) {
        let mut slots = vec![Vec::<String>::new(); config.pools.len()];
        for route in &config.routes {
            for pool in route_pools(route) {
                slots[pool].push(route.id.clone());
            }
        }
        let mut changes = PoolChanges::default();
        let pools: Vec<Arc<PoolHandle>> = config
            .pools
            .iter()
            .zip(&slots)
            .map(|(pool, route_ids)| {
                if let Some(kept) = previous.and_then(|t| t.pool(&pool.id)) {
                    changes.kept.push((pool.clone(), route_ids.clone()));
                    return kept.clone();
                }
                let backends = pool
                    .backends
                    .iter()
                    .map(|b| {
                        let stats = Arc::new(BackendStats::new(&pool.id, &b.id, route_ids));
                        stats.set_max_sessions(b.max_sessions);
                        let tls = pool.tls.as_ref().map(|t| t.backend_tls(&b.address));
                        Arc::new(
                            BackendEntry::new(
                                b.id.as_str().into(),
                                b.address.resolved,
                                b.weight,
                                initial_state(&pool.health),
                                stats,
                            )
                            .with_tls(tls)
                            .with_protocol(pool.protocol),
                        )
                    })
                    .collect();
                let handle = Arc::new(PoolHandle::new(
                    pool.id.as_str().into(),
                    pool.algorithm.clone(),
                    pool.panic_threshold,
                    backends,
                ));
                handle.set_shedding(pool.max_inflight, pool.queue_timeout);
                changes.added.push((pool.clone(), handle.clone()));
                handle
            })
            .collect();
        if let Some(previous) = previous {
            changes.removed = previous
                .pools
                .iter()
                .filter(|p| !config.pools.iter().any(|c| *c.id == *p.id))
                .map(|p| p.id.to_string())
                .collect();
        }
        let mut next_slot = vec![0usize; config.pools.len()];
        let mut routes: Vec<Arc<Route>> = config
            .routes
            .iter()
            .map(|r| {
                let variants: Box<[Variant]> = route_pools(r)
                    .map(|p| {
                        let slot = next_slot[p];
                        next_slot[p] += 1;
                        let pool = pools[p].clone();
                        Variant {
                            slot,
                            hash_key: match &config.pools[p].algorithm {
                                Algorithm::ConsistentHash(key) => Some(key.clone()),
                                _ => None,
                            },
                            latency: metrics::histogram!(
                                "switchyard_request_duration_seconds",
                                "route" => r.id.clone(),
                                "pool" => pool.id.to_string(),
                            ),
                            chosen: r.split.as_ref().map(|_| {
                                metrics::counter!(
                                    "switchyard_split_requests_total",
                                    "route" => r.id.clone(),
                                    "pool" => pool.id.to_string(),
                                )
                            }),
                            outcomes: Outcomes::default(),
                            pool,
                        }
                    })
                    .collect();
                let split = r.split.as_ref().map(|s| {
                    let pools: Vec<&str> = s
                        .parts
                        .iter()
                        .map(|&(p, _)| config.pools[p].id.as_str())
                        .collect();
                    Split::new(
                        s.parts.iter().map(|&(_, w)| w).collect(),
                        &pools,
                        &s.by,
                        s.override_header.as_deref(),
                        s.response_header.as_deref(),
                    )
                });
                Arc::new(Route {
                    id: r.id.as_str().into(),
                    host: r.host.clone(),
                    prefix: r.path_prefix.clone(),
                    strip_prefix: r.strip_prefix,
                    sticky: r.sticky,
                    variants,
                    split,
                    shadow: r.shadow.as_ref().map(|s| {
                        let hash_key = match &config.pools[s.pool].algorithm {
                            Algorithm::ConsistentHash(key) => Some(key.clone()),
                            _ => None,
                        };
                        Shadow::new(&r.id, pools[s.pool].clone(), hash_key, s)
                    }),
                    timeouts: r.timeouts,
                    retries: r.retries,
                    retry_non_idempotent: r.retry_non_idempotent,
                    budget: RetryBudget::new(r.retry_budget, &r.id),
                    retry_buffer_bytes: r.retry_buffer_bytes,
                    overflow: r.overflow,
                    overflow_load: r.overflow_load,
                    max_body_bytes: r.max_body_bytes,
                    rates: r
                        .rate_limit
                        .as_ref()
                        .map(crate::policy::ratelimit::RouteRates::new),
                    shed_share: r.shed_share,
                })
            })
            .collect();
        if let Some(previous) = previous {
            for route in &routes {
                keep_admin_weights(route, previous);
            }
        }
        // Stable sort keeps file order among equals.
        routes.sort_by_key(|r| (r.host.is_none(), std::cmp::Reverse(r.prefix.len())));
        (RouteTable { routes, pools }, changes)
    }

    /// The most specific route for a host (from `Host`, may carry a port) and path.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        self.routes
            .iter()
            .find(|r| r.matches_host(host) && r.matches_path(path))
    }

    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.iter()
    }

    pub fn pool(&self, id: &str) -> Option<&Arc<PoolHandle>> {
        self.pools.iter().find(|p| &*p.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(toml: &str) -> RouteTable {
        RouteTable::build(&Config::from_toml_str(toml).unwrap())
    }

    const POOLS: &str = r#"
        [[pools]]
        id = "a"
        backends = [{ id = "a1", address = "127.0.0.1:1" }]
        [[pools]]
        id = "b"
        backends = [{ id = "b1", address = "127.0.0.1:2" }]
    "#;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/"));
        assert!(prefix_matches("/api", "/api/x/y"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(!prefix_matches("/api", "/ap"));
        assert!(prefix_matches("/", "/anything"));
    }

    #[test]
    fn the_most_specific_route_wins() {
        let t = table(&format!(
            r#"{POOLS}
            [[routes]]
            id = "all"
            pool = "a"
            [[routes]]
            id = "api"
            path_prefix = "/api"
            pool = "a"
            [[routes]]
            id = "api-v2"
            path_prefix = "/api/v2"
            pool = "b"
            [[routes]]
            id = "tv-api"
            host = "TV.example.net"
            path_prefix = "/api"
            pool = "b"
            "#
        ));
        let id = |host, path| t.find(host, path).map(|r| r.id.to_string());
        assert_eq!(id(None, "/api/v2/x").as_deref(), Some("api-v2"));
        assert_eq!(id(None, "/api/v1").as_deref(), Some("api"));
        assert_eq!(id(None, "/apix").as_deref(), Some("all"));
        assert_eq!(
            id(Some("tv.example.net:8080"), "/api/v2").as_deref(),
            Some("tv-api")
        );
        assert_eq!(id(Some("other"), "/api").as_deref(), Some("api"));
    }

    #[test]
    fn no_route_without_a_catch_all() {
        let t = table(&format!(
            "{POOLS}\n[[routes]]\nid = \"api\"\npath_prefix = \"/api\"\npool = \"a\"\n"
        ));
        assert!(t.find(None, "/stream").is_none());
    }

    #[test]
    fn stripping_keeps_a_leading_slash() {
        let t = table(&format!(
            "{POOLS}\n[[routes]]\nid = \"api\"\npath_prefix = \"/api\"\nstrip_prefix = true\npool = \"a\"\n"
        ));
        let r = t.find(None, "/api/x").unwrap();
        assert_eq!(r.upstream_path("/api/x"), "/x");
        assert_eq!(r.upstream_path("/api"), "/");
    }

    #[test]
    fn routes_to_one_pool_get_distinct_slots() {
        let t = table(&format!(
            "{POOLS}\n[[routes]]\nid = \"r1\"\npath_prefix = \"/x\"\npool = \"a\"\n[[routes]]\nid = \"r2\"\npath_prefix = \"/y\"\npool = \"a\"\n"
        ));
        let mut slots: Vec<_> = t.routes().map(|r| r.variants[0].slot).collect();
        slots.sort();
        assert_eq!(slots, vec![0, 1]);
    }

    /// A table rebuilt from `split` after one whose route split 1/1 over a and b, with the
    /// weights set by the admin API to 0/1.
    fn reloaded(split: &str) -> Vec<u32> {
        let route = |split: &str| {
            Config::from_toml_str(&format!(
                "{POOLS}\n[[pools]]\nid = \"c\"\nbackends = [{{ id = \"c1\", address = \"127.0.0.1:3\" }}]\n\
                 [[routes]]\nid = \"r\"\npath_prefix = \"/\"\nsplit = [{split}]\n"
            ))
            .unwrap()
        };
        let before = RouteTable::build(&route(
            "{ pool = \"a\", weight = 1 }, { pool = \"b\", weight = 1 }",
        ));
        let old = before.routes().next().unwrap().split.as_ref().unwrap();
        old.set(crate::routing::split::Weights {
            values: vec![0, 1],
            from: crate::routing::split::WeightsFrom::Admin,
        });
        let (after, _) = RouteTable::rebuild(&route(split), Some(&before));
        let split = after.routes().next().unwrap().split.as_ref().unwrap();
        split.weights().values.clone()
    }

    #[test]
    fn admin_weights_outlive_a_reload_only_while_the_route_keeps_its_pools() {
        // Same pools, other config weights: the admin's stay.
        assert_eq!(
            reloaded("{ pool = \"a\", weight = 9 }, { pool = \"b\", weight = 1 }"),
            [0, 1]
        );
        // Other pools: the config's apply.
        assert_eq!(
            reloaded("{ pool = \"a\", weight = 9 }, { pool = \"c\", weight = 1 }"),
            [9, 1]
        );
    }
}
