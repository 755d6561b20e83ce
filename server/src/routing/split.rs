//! Which of a route's pools serves a request: the route's one pool, or a part of its weighted
//! `split`. A viewer is assigned by weighted rendezvous hashing of a stable key — a configured
//! header or cookie, else its session token — so it stays in one pool across requests, router
//! nodes and restarts, and changing a part's weight only moves viewers into or out of that
//! part (never between the others). The weights can change at run time (admin calls
//! and rollouts swap them whole); the request path reads them without a lock. A blue-green
//! route (`pool` + `standby`) is a split whose weights give everything to one colour.

use std::sync::Arc;

use actix_web::http::header::{self as ax, HeaderName};
use arc_swap::ArcSwap;
use metrics::{Counter, Histogram};

use super::outcomes::Outcomes;
use super::snapshot::PoolHandle;
use crate::config::{HashKey, SplitBy};
use crate::routing::balance::hash::{hash_bytes, hash_u64};

/// One pool a route sends to, with the route's counters on it.
#[derive(Debug)]
pub struct Variant {
    pub pool: Arc<PoolHandle>,
    /// The route's position among the routes that send to this pool: indexes the pool's
    /// per-backend counters.
    pub slot: usize,
    /// `Some` when the pool balances by consistent hash.
    pub hash_key: Option<HashKey>,
    /// The route's request durations on this pool.
    pub latency: Histogram,
    /// Requests the split sent here (`switchyard_split_requests_total`); `None` without a split.
    pub chosen: Option<Counter>,
    /// The route's HTTP requests on this pool, their failures and latencies: what a canary's
    /// judgement compares.
    pub outcomes: Outcomes,
}

/// A route's weighted split among its variants.
#[derive(Debug)]
pub struct Split {
    weights: ArcSwap<Weights>,
    /// The weights the config gave (what a reset returns to).
    configured: Vec<u32>,
    /// One per variant: see [`salt`].
    salts: Vec<u64>,
    by: By,
    override_header: Option<HeaderName>,
    /// The response header naming the pool that served the request, when configured.
    pub response_header: Option<HeaderName>,
}

#[derive(Debug)]
enum By {
    Session,
    Header(HeaderName),
    Cookie(String),
}

/// A split's weights, one per variant, and where they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weights {
    pub values: Vec<u32>,
    pub from: WeightsFrom,
}

/// Who set a split's weights. The admin API's and a rollout's outlive reloads (while the
/// route keeps its pools); a reset returns to the config's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFrom {
    Config,
    Admin,
    Rollout,
}

impl WeightsFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            WeightsFrom::Config => "config",
            WeightsFrom::Admin => "admin",
            WeightsFrom::Rollout => "rollout",
        }
    }
}

impl Weights {
    /// The one part that takes traffic, when all the others weigh 0 (a blue-green route, a
    /// split set to one pool): requests go there without a key.
    pub fn sole(&self) -> Option<usize> {
        let mut taking = self.values.iter().enumerate().filter(|(_, w)| **w > 0);
        match (taking.next(), taking.next()) {
            (Some((at, _)), None) => Some(at),
            _ => None,
        }
    }
}

/// What a request is assigned by.
pub enum Assign {
    /// A part: the override header's, the one taking traffic, or the configured key's.
    Chosen(usize),
    /// None of those: by the request's session token (issued to it when it has none).
    Session,
}

impl Split {
    /// A split with `weights` (one per variant, in order). Header names were validated.
    pub fn new(
        weights: Vec<u32>,
        pools: &[&str],
        by: &SplitBy,
        override_header: Option<&str>,
        response_header: Option<&str>,
    ) -> Split {
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).ok();
        Split {
            weights: ArcSwap::from_pointee(Weights {
                values: weights.clone(),
                from: WeightsFrom::Config,
            }),
            configured: weights,
            salts: pools.iter().map(|p| salt(p)).collect(),
            by: match by {
                SplitBy::Session => By::Session,
                SplitBy::Header(h) => name(h).map_or(By::Session, By::Header),
                SplitBy::Cookie(c) => By::Cookie(c.clone()),
            },
            override_header: override_header.and_then(name),
            response_header: response_header.and_then(name),
        }
    }

    /// The weights now, one per variant.
    pub fn weights(&self) -> Arc<Weights> {
        self.weights.load_full()
    }

    /// The weights the config gave.
    pub fn configured(&self) -> &[u32] {
        &self.configured
    }

    /// Replaces the weights whole (as many as the variants, not all 0: the caller checks).
    pub fn set(&self, weights: Weights) {
        self.weights.store(Arc::new(weights));
    }

    /// Back to the config's weights.
    pub fn reset(&self) {
        self.set(Weights {
            values: self.configured.clone(),
            from: WeightsFrom::Config,
        });
    }

    /// How the request is assigned: the override header naming one of `variants`' pools,
    /// else the one part that takes traffic (no key needed), else the part of the configured
    /// key when the request carries it (one read of the weights), else by its session.
    pub fn assign(&self, headers: &ax::HeaderMap, variants: &[Variant]) -> Assign {
        if let Some(name) = &self.override_header
            && let Some(wanted) = headers.get(name)
            && let Some(at) = variants
                .iter()
                .position(|v| v.pool.id.as_bytes() == wanted.as_bytes())
        {
            return Assign::Chosen(at);
        }
        let weights = self.weights.load();
        if let Some(sole) = weights.sole() {
            return Assign::Chosen(sole);
        }
        let value = match &self.by {
            By::Session => None,
            By::Header(name) => headers.get(name).map(|v| v.as_bytes()),
            By::Cookie(name) => crate::headers::cookie(headers, name),
        };
        match value {
            Some(key) if !key.is_empty() => {
                Assign::Chosen(pick(&weights.values, &self.salts, hash_bytes(key)))
            }
            _ => Assign::Session,
        }
    }

    /// The part that `key` falls in.
    pub fn pick(&self, key: &[u8]) -> usize {
        pick(&self.weights.load().values, &self.salts, hash_bytes(key))
    }
}

/// A part's salt: the hash of its pool's id, so a part keeps its keys whatever its place in
/// the list, and a key's score in a split differs from its place on a consistent-hash ring.
pub fn salt(pool: &str) -> u64 {
    hash_bytes(pool.as_bytes())
}

/// Weighted rendezvous hashing: each part with a weight scores the key by `w / −ln(u)`, `u` a
/// uniform draw in (0, 1) from the key's hash and the part's salt (splitmix64's finaliser, as
/// the consistent-hash balancer's hashes); the highest score wins. A part wins a key with
/// probability `w / Σw`, every node and version of the router scores alike, and changing one
/// part's weight only moves keys into it (raised) or out of it (lowered), never between others.
pub fn pick(weights: &[u32], salts: &[u64], key: u64) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, (&w, &salt)) in weights.iter().zip(salts).enumerate() {
        if w == 0 {
            continue;
        }
        let h = hash_u64(key ^ salt);
        // 53 bits into (0, 1): never 0 (ln), never 1 (a score of infinity).
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let score = f64::from(w) / -u.ln();
        if score > best.1 {
            best = (i, score);
        }
    }
    // All weights 0 (refused by validation and by the admin API): the first part.
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOLS: [&str; 3] = ["api-v1", "api-v2", "api-v3"];

    fn part(weights: &[u32], key: u32) -> usize {
        let salts: Vec<u64> = POOLS.iter().map(|p| salt(p)).collect();
        pick(
            weights,
            &salts,
            hash_bytes(format!("viewer-{key}").as_bytes()),
        )
    }

    fn shares(weights: &[u32], keys: u32) -> Vec<f64> {
        let mut counts = vec![0u32; weights.len()];
        for k in 0..keys {
            counts[part(weights, k)] += 1;
        }
        counts
            .iter()
            .map(|&c| f64::from(c) / f64::from(keys))
            .collect()
    }

    #[test]
    fn keys_land_within_a_percent_of_the_weights() {
        for weights in [vec![95, 5], vec![50, 50], vec![1, 2, 7], vec![9_999, 1]] {
            let total: u32 = weights.iter().sum();
            for (share, w) in shares(&weights, 100_000).iter().zip(&weights) {
                let want = f64::from(*w) / f64::from(total);
                assert!(
                    (share - want).abs() <= 0.01,
                    "{weights:?}: {share} for a weight of {want}"
                );
            }
        }
    }

    #[test]
    fn changing_one_weight_only_moves_keys_into_or_out_of_that_part() {
        // A canary's steps are "raise the canary" (only the relative weights matter), then a
        // third part, a lowered baseline, a part removed.
        let steps: [&[u32]; 7] = [
            &[99, 1, 0],
            &[99, 5, 0],
            &[99, 25, 0],
            &[99, 25, 30],
            &[50, 25, 30],
            &[50, 0, 30],
            &[50, 0, 1],
        ];
        for pair in steps.windows(2) {
            let changed: Vec<usize> = (0..3).filter(|&i| pair[0][i] != pair[1][i]).collect();
            let &[moved] = &changed[..] else {
                panic!("steps change one weight at a time: {pair:?}");
            };
            for k in 0..20_000 {
                let (before, after) = (part(pair[0], k), part(pair[1], k));
                assert!(
                    before == after || before == moved || after == moved,
                    "key {k} moved from part {before} to {after} going {:?} -> {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
    }

    #[test]
    fn a_zero_weight_takes_nothing_and_the_extremes_stay_in_range() {
        let salts = [salt("a"), salt("b"), salt("c")];
        for key in [0, 1, u64::MAX, 0x8000_0000_0000_0000] {
            assert_eq!(pick(&[0, 1, 0], &salts, key), 1);
            assert_eq!(pick(&[1, 0, 0], &salts, key), 0);
            assert_eq!(pick(&[0, 0, 0], &salts, key), 0);
        }
    }
}
