//! `[[routes]]`: what each route matches, where it sends, and its timeouts, retries, rate
//! limits and overflow.

use std::collections::{HashMap, HashSet};

use super::{Ids, Issues, header_name};
use crate::config::raw::{
    RawConfig, RawLimits, RawRateLimit, RawRoute, RawShadow, RawSplitBy, SessionStore,
};
use crate::config::suggest::closest;
use crate::config::{
    RateLimitConfig, RetryBudgetConfig, RouteConfig, ShadowConfig, SplitBy, SplitConfig, Timeouts,
};

/// Largest accepted retry count: more only multiplies load during an outage.
pub const MAX_RETRIES: u32 = 10;
/// Largest weight of a part of a split: room for shares finer than a percent (basis points
/// and beyond), and sums that stay far from overflowing.
pub const MAX_SPLIT_WEIGHT: i64 = 1_000_000;
/// Largest request body kept for retries: memory per request must stay bounded.
pub const MAX_RETRY_BUFFER_BYTES: u64 = 16 * 1024 * 1024;

/// The routes that passed, in file order; two routes may not match the same host and prefix.
pub(super) fn routes(raw: &RawConfig, ids: &mut Ids, issues: &mut Issues) -> Vec<RouteConfig> {
    let pools: HashMap<&str, usize> = raw
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let redis_store = raw.sessions.store == SessionStore::Redis;
    let mut routes = Vec::new();
    let mut matches: HashSet<(Option<String>, String)> = HashSet::new();
    for (i, r) in raw.routes.iter().enumerate() {
        ids.claim(issues, "route", format!("routes[{i}].id"), &r.id);
        let Some(route) = route(i, r, &pools, &raw.limits, redis_store, issues) else {
            continue;
        };
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
    routes
}

/// One route, or `None` when it has a problem (nothing in the load step needs routes).
fn route(
    i: usize,
    r: &RawRoute,
    pools: &HashMap<&str, usize>,
    limits: &RawLimits,
    redis_store: bool,
    issues: &mut Issues,
) -> Option<RouteConfig> {
    let key = |k: &str| format!("routes[{i}].{k}");
    let before = issues.count();
    let (pool, split) = targets(i, r, pools, issues);
    let serving: Vec<usize> = match &split {
        Some(split) => split.parts.iter().map(|&(p, _)| p).collect(),
        None => pool.into_iter().collect(),
    };
    let shadow = r
        .shadow
        .as_ref()
        .and_then(|raw| shadow(i, raw, pools, &serving, issues));
    if let Some(load) = r.overflow_load
        && !(load.is_finite() && load > 0.0)
    {
        issues.push(key("overflow_load"), "must be more than 0 (e.g. 0.9)");
    }
    let rate_limit = rate_limit(i, r.rate_limit.as_ref(), limits, redis_store, issues);
    let path_prefix = normalize_prefix(&r.path_prefix);
    if !r.path_prefix.starts_with('/') || r.path_prefix.contains(['?', '#', ' ']) {
        issues.push(
            key("path_prefix"),
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
            key("host"),
            format!("{h:?} must be a bare host name (no port, scheme or path)"),
        );
    }
    if r.retry_buffer_bytes > MAX_RETRY_BUFFER_BYTES {
        issues.push(
            key("retry_buffer_bytes"),
            format!(
                "{} is more than {MAX_RETRY_BUFFER_BYTES}",
                r.retry_buffer_bytes
            ),
        );
    }
    if r.retry_budget.percent > 100 {
        issues.push(key("retry_budget.percent"), "must be 0..=100");
    }
    if r.retries > MAX_RETRIES {
        issues.push(
            key("retries"),
            format!("{} is more than {MAX_RETRIES}", r.retries),
        );
    }
    for (name, d) in [
        ("connect", r.timeouts.connect.0),
        ("response", r.timeouts.response.0),
        ("idle", r.timeouts.idle.0),
    ] {
        if d.is_zero() {
            issues.push(key(&format!("timeouts.{name}")), "must be more than 0");
        }
    }
    if issues.count() != before {
        return None;
    }
    Some(RouteConfig {
        id: r.id.clone(),
        host,
        path_prefix,
        strip_prefix: r.strip_prefix,
        sticky: r.sticky,
        pool: pool.expect("no issue was recorded, so the pool exists"),
        split,
        shadow,
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

/// Largest `shadow.max_concurrent`: each holds a backend connection.
pub const MAX_SHADOW_CONCURRENT: u32 = 10_000;

/// A route's shadow: a known pool that does not serve the route, a share in (0, 100], a
/// timeout, limits.
fn shadow(
    i: usize,
    raw: &RawShadow,
    pools: &HashMap<&str, usize>,
    serving: &[usize],
    issues: &mut Issues,
) -> Option<ShadowConfig> {
    let key = |k: &str| format!("routes[{i}].shadow.{k}");
    let before = issues.count();
    let pool = pools.get(raw.pool.as_str()).copied();
    match pool {
        None => {
            let hint = closest(&raw.pool, pools.keys().copied())
                .map(|name| format!(" (did you mean {name:?}?)"))
                .unwrap_or_default();
            issues.push(key("pool"), format!("no pool named {:?}{hint}", raw.pool));
        }
        // A pool that serves the route (its pool, a part of its split, its standby) would get
        // some requests twice, a POST included.
        Some(p) if serving.contains(&p) => issues.push(
            key("pool"),
            format!(
                "{:?} serves the route (its pool, a part of its split or its standby): a shadow is another pool",
                raw.pool
            ),
        ),
        Some(_) => {}
    }
    if !(raw.percent.is_finite() && raw.percent > 0.0 && raw.percent <= 100.0) {
        issues.push(
            key("percent"),
            format!("{} is not within (0, 100]", raw.percent),
        );
    }
    if raw.timeout.0.is_zero() {
        issues.push(key("timeout"), "must be more than 0");
    }
    if !(1..=MAX_SHADOW_CONCURRENT).contains(&raw.max_concurrent) {
        issues.push(
            key("max_concurrent"),
            format!(
                "{} is not within 1..={MAX_SHADOW_CONCURRENT}",
                raw.max_concurrent
            ),
        );
    }
    if raw.max_body_bytes > MAX_RETRY_BUFFER_BYTES {
        issues.push(
            key("max_body_bytes"),
            format!(
                "{} is more than {MAX_RETRY_BUFFER_BYTES}",
                raw.max_body_bytes
            ),
        );
    }
    if issues.count() != before {
        return None;
    }
    Some(ShadowConfig {
        pool: pool?,
        per_million: (raw.percent * 10_000.0).round() as u32,
        timeout: raw.timeout.0,
        max_body_bytes: raw.max_body_bytes,
        max_concurrent: raw.max_concurrent,
    })
}

/// Where a route sends: its `pool` (with its `standby`, a blue-green split giving everything
/// to `pool`), or its `split` (whose first pool is returned as the route's pool). Exactly one
/// of `pool` and `split` must be set.
fn targets(
    i: usize,
    r: &RawRoute,
    pools: &HashMap<&str, usize>,
    issues: &mut Issues,
) -> (Option<usize>, Option<SplitConfig>) {
    let key = |k: &str| format!("routes[{i}].{k}");
    let find = |name: &str, at: String, issues: &mut Issues| {
        let found = pools.get(name).copied();
        if found.is_none() {
            let hint = closest(name, pools.keys().copied())
                .map(|name| format!(" (did you mean {name:?}?)"))
                .unwrap_or_default();
            issues.push(at, format!("no pool named {name:?}{hint}"));
        }
        found
    };
    let header = |name: &str, text: &Option<String>, issues: &mut Issues| {
        text.as_deref().and_then(|text| {
            super::header_name(text)
                .map_err(|e| issues.push(key(name), e))
                .ok()
        })
    };
    let parts = match (&r.pool, &r.split) {
        (Some(_), Some(_)) => {
            issues.push(
                key("split"),
                "a route has either `pool` or `split`, not both",
            );
            return (None, None);
        }
        (None, None) => {
            issues.push(
                key("pool"),
                "missing: the pool that serves the route (or a `split` among pools)",
            );
            return (None, None);
        }
        (Some(pool), None) => {
            if r.split_by.is_some() {
                issues.push(key("split_by"), "applies only to a route with `split`");
            }
            let active = find(pool, key("pool"), issues);
            let Some(standby) = &r.standby else {
                for (name, set) in [
                    ("split_override_header", r.split_override_header.is_some()),
                    ("split_response_header", r.split_response_header.is_some()),
                ] {
                    if set {
                        issues.push(
                            key(name),
                            "applies only to a route with `split` or `standby`",
                        );
                    }
                }
                return (active, None);
            };
            if standby == pool {
                issues.push(
                    key("standby"),
                    format!("{standby:?} is the route's `pool`: the standby is another pool"),
                );
            }
            let standby = find(standby, key("standby"), issues);
            // Blue-green: a split that gives everything to the active colour.
            let split = match (active, standby) {
                (Some(active), Some(standby)) => Some(SplitConfig {
                    parts: vec![(active, 1), (standby, 0)],
                    by: SplitBy::Session,
                    override_header: header(
                        "split_override_header",
                        &r.split_override_header,
                        issues,
                    ),
                    response_header: header(
                        "split_response_header",
                        &r.split_response_header,
                        issues,
                    ),
                }),
                _ => None,
            };
            return (active, split);
        }
        (None, Some(parts)) => parts,
    };
    if r.standby.is_some() {
        issues.push(
            key("standby"),
            "a route has either `split` or `standby` (blue-green), not both",
        );
    }
    if parts.is_empty() {
        issues.push(key("split"), "needs at least one pool");
        return (None, None);
    }
    let mut found = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = |k: &str| format!("routes[{i}].split[{j}].{k}");
        let pool = find(&part.pool, at("pool"), issues);
        if parts[..j].iter().any(|p| p.pool == part.pool) {
            issues.push(
                at("pool"),
                format!("{:?} is already in the split", part.pool),
            );
        }
        if !(0..=MAX_SPLIT_WEIGHT).contains(&part.weight) {
            issues.push(
                at("weight"),
                format!("{} is not within 0..={MAX_SPLIT_WEIGHT}", part.weight),
            );
        }
        found.push((pool, part.weight.clamp(0, MAX_SPLIT_WEIGHT) as u32));
    }
    if parts.iter().all(|p| p.weight == 0) {
        issues.push(
            key("split"),
            "every weight is 0: at least one pool must take traffic",
        );
    }
    let by = match &r.split_by {
        None => SplitBy::Session,
        Some(RawSplitBy::Header(text)) => super::header_name(text)
            .map(SplitBy::Header)
            .unwrap_or_else(|e| {
                issues.push(key("split_by.header"), e);
                SplitBy::Session
            }),
        Some(RawSplitBy::Cookie(name)) => {
            let bad = name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
            if bad {
                issues.push(
                    key("split_by.cookie"),
                    format!("{name:?} is not a cookie name"),
                );
            }
            SplitBy::Cookie(name.clone())
        }
    };
    let split = SplitConfig {
        by,
        override_header: header("split_override_header", &r.split_override_header, issues),
        response_header: header("split_response_header", &r.split_response_header, issues),
        parts: found
            .iter()
            .filter_map(|(pool, weight)| pool.map(|p| (p, *weight)))
            .collect(),
    };
    let first = found.first().and_then(|(pool, _)| *pool);
    (first, Some(split))
}

/// A route's rate limits: its own, else the node's default per-address limit (`[limits]
/// rate_per_ip`); `None` when neither limits anything.
fn rate_limit(
    i: usize,
    raw: Option<&RawRateLimit>,
    limits: &RawLimits,
    redis_store: bool,
    issues: &mut Issues,
) -> Option<RateLimitConfig> {
    let default_per_ip = (limits.rate_per_ip > 0).then(|| {
        let rate = limits.rate_per_ip;
        (rate, limits.burst_per_ip.unwrap_or(rate.saturating_mul(2)))
    });
    let Some(l) = raw else {
        return default_per_ip.map(|per_ip| RateLimitConfig {
            per_ip: Some(per_ip),
            per_key: None,
            shared: false,
        });
    };
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
        && let Err(reason) = header_name(header)
    {
        issues.push(format!("{key}.key_header"), reason);
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
    (per_ip.is_some() || per_key.is_some()).then_some(RateLimitConfig {
        per_ip,
        per_key,
        shared: l.shared,
    })
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

    const POOLS: &str = r#"
        [[pools]]
        id = "v1"
        backends = [{ id = "a", address = "127.0.0.1:1" }]
        [[pools]]
        id = "v2"
        backends = [{ id = "b", address = "127.0.0.1:2" }]
    "#;

    /// The issues of a file with these pools and one route with `keys` after its prefix.
    fn issues(keys: &str) -> String {
        let text = format!("{POOLS}\n[[routes]]\nid = \"r\"\npath_prefix = \"/\"\n{keys}\n");
        match crate::Config::from_toml_str(&text) {
            Ok(_) => panic!("accepted:\n{keys}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn a_split_is_validated_into_its_pools_weights_and_options() {
        let text = format!(
            "{POOLS}\n[[routes]]\nid = \"r\"\npath_prefix = \"/\"\n\
             split = [{{ pool = \"v1\", weight = 95 }}, {{ pool = \"v2\", weight = 5 }}]\n\
             split_by = {{ cookie = \"uid\" }}\nsplit_override_header = \"X-Variant\"\n\
             split_response_header = \"x-pool\"\n"
        );
        let config = crate::Config::from_toml_str(&text).unwrap();
        let route = &config.routes[0];
        assert_eq!(route.pool, 0, "the first part is the route's pool");
        assert_eq!(
            route.split,
            Some(SplitConfig {
                parts: vec![(0, 95), (1, 5)],
                by: SplitBy::Cookie("uid".into()),
                override_header: Some("x-variant".into()),
                response_header: Some("x-pool".into()),
            })
        );
    }

    #[test]
    fn bad_splits_are_refused_naming_the_key() {
        let split = |parts: &str| format!("split = [{parts}]");
        for (keys, want) in [
            (
                "pool = \"v1\"\nsplit = [{ pool = \"v2\", weight = 1 }]".to_string(),
                "routes[0].split: a route has either `pool` or `split`, not both",
            ),
            (
                String::new(),
                "routes[0].pool: missing: the pool that serves the route (or a `split` among pools)",
            ),
            (split(""), "routes[0].split: needs at least one pool"),
            (
                split("{ pool = \"v1\", weight = -1 }, { pool = \"v2\", weight = 1 }"),
                "routes[0].split[0].weight: -1 is not within 0..=1000000",
            ),
            (
                split("{ pool = \"v1\", weight = 0 }, { pool = \"v2\", weight = 0 }"),
                "routes[0].split: every weight is 0: at least one pool must take traffic",
            ),
            (
                split("{ pool = \"v1\", weight = 1 }, { pool = \"v3\", weight = 1 }"),
                "routes[0].split[1].pool: no pool named \"v3\" (did you mean \"v1\"?)",
            ),
            (
                split("{ pool = \"v1\", weight = 1 }, { pool = \"v1\", weight = 2 }"),
                "routes[0].split[1].pool: \"v1\" is already in the split",
            ),
            (
                format!(
                    "{}\nsplit_by = {{ header = \"bad header\" }}",
                    split("{ pool = \"v1\", weight = 1 }")
                ),
                "routes[0].split_by.header: \"bad header\" is not a header name",
            ),
            (
                format!(
                    "{}\nsplit_by = {{ cookie = \"a;b\" }}",
                    split("{ pool = \"v1\", weight = 1 }")
                ),
                "routes[0].split_by.cookie: \"a;b\" is not a cookie name",
            ),
            (
                "pool = \"v1\"\nsplit_response_header = \"x-pool\"".to_string(),
                "routes[0].split_response_header: applies only to a route with `split` or `standby`",
            ),
            (
                "pool = \"v1\"\nstandby = \"v1\"".to_string(),
                "routes[0].standby: \"v1\" is the route's `pool`: the standby is another pool",
            ),
            (
                "pool = \"v1\"\nstandby = \"v3\"".to_string(),
                "routes[0].standby: no pool named \"v3\"",
            ),
            (
                format!(
                    "{}\nstandby = \"v2\"",
                    split("{ pool = \"v1\", weight = 1 }")
                ),
                "routes[0].standby: a route has either `split` or `standby` (blue-green), not both",
            ),
            (
                "pool = \"v1\"\nstandby = \"v2\"\nsplit_by = { header = \"x-user\" }".to_string(),
                "routes[0].split_by: applies only to a route with `split`",
            ),
        ] {
            let got = issues(&keys);
            assert!(
                got.contains(want),
                "`{want}` missing for:\n{keys}\ngot:\n{got}"
            );
        }
    }

    #[test]
    fn bad_shadows_are_refused_naming_the_key() {
        for (shadow, want) in [
            (
                "{ pool = \"v3\" }",
                "routes[0].shadow.pool: no pool named \"v3\"",
            ),
            (
                "{ pool = \"v1\" }",
                "routes[0].shadow.pool: \"v1\" serves the route",
            ),
            (
                "{ pool = \"v2\" }\nstandby = \"v2\"",
                "routes[0].shadow.pool: \"v2\" serves the route",
            ),
            (
                "{ pool = \"v2\", percent = 0 }",
                "routes[0].shadow.percent: 0 is not within (0, 100]",
            ),
            (
                "{ pool = \"v2\", percent = 101 }",
                "routes[0].shadow.percent: 101 is not within (0, 100]",
            ),
            (
                "{ pool = \"v2\", timeout = \"0s\" }",
                "routes[0].shadow.timeout: must be more than 0",
            ),
            (
                "{ pool = \"v2\", max_concurrent = 0 }",
                "routes[0].shadow.max_concurrent: 0 is not within 1..=10000",
            ),
            (
                "{ pool = \"v2\", max_body_bytes = 99999999 }",
                "routes[0].shadow.max_body_bytes: 99999999 is more than 16777216",
            ),
        ] {
            let got = issues(&format!("pool = \"v1\"\nshadow = {shadow}"));
            assert!(got.contains(want), "`{want}` missing for {shadow}:\n{got}");
        }
    }

    #[test]
    fn prefixes_are_normalised() {
        assert_eq!(normalize_prefix("/api/"), "/api");
        assert_eq!(normalize_prefix("/"), "/");
        assert_eq!(normalize_prefix("//"), "/");
    }
}
