//! Rate limits per client address and per API key, per route: GCRA (the generic cell rate
//! algorithm, a token bucket kept as one timestamp per key), so a key costs 16 bytes and a
//! check is one short lock on one of 16 shards. A request over the limit gets 429 with
//! `Retry-After` saying when it would pass. With `shared = true` the same limits are then
//! checked across every router node in Redis ([`shared`]).

pub mod shared;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::now_ns;

const SHARDS: usize = 16;
/// A shard past this many keys drops the idle ones (their bucket is full again anyway).
const SWEEP_AT: usize = 4096;

/// One limit: `rate` requests a second with bursts of up to `burst`.
#[derive(Debug)]
pub struct Limiter<K> {
    /// Nanoseconds between requests at the steady rate.
    interval: u64,
    /// How far ahead of now a key's theoretical arrival time may run: the burst.
    tolerance: u64,
    shards: Vec<Mutex<HashMap<K, u64>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(rate: u32, burst: u32) -> Limiter<K> {
        let interval = 1_000_000_000 / u64::from(rate.max(1));
        Limiter {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1)).saturating_sub(1)),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }

    /// `Ok` when a request of `key` may pass now; `Err(wait)` until it would.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = now_ns();
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= SWEEP_AT {
            map.retain(|_, tat| *tat > now);
        }
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        if tat - now > self.tolerance {
            return Err(Duration::from_nanos(tat - now - self.tolerance));
        }
        map.insert(key.clone(), tat + self.interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_steady_rate_and_other_keys_are_apart() {
        let limiter: Limiter<&str> = Limiter::new(10, 5);
        for i in 0..5 {
            assert!(limiter.check(&"a").is_ok(), "burst request {i}");
        }
        let wait = limiter
            .check(&"a")
            .expect_err("the sixth is over the burst");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(
            limiter.check(&"b").is_ok(),
            "another key has its own bucket"
        );
        std::thread::sleep(Duration::from_millis(110));
        assert!(limiter.check(&"a").is_ok(), "one more after 1/rate");
    }
}

/// A route's limits, from its `rate_limit`.
#[derive(Debug)]
pub struct RouteRates {
    per_ip: Option<Limiter<std::net::IpAddr>>,
    /// Keyed by a hash of the header value: a client-chosen value costs 8 bytes, however long.
    per_key: Option<(actix_web::http::header::HeaderName, Limiter<u64>)>,
    key_hasher: std::collections::hash_map::RandomState,
    /// The same limits across every node (`shared = true`).
    shared: Option<shared::SharedRates>,
}

impl RouteRates {
    pub fn new(config: &crate::config::RateLimitConfig) -> RouteRates {
        RouteRates {
            per_ip: config.per_ip.map(|(rate, burst)| Limiter::new(rate, burst)),
            per_key: config.per_key.as_ref().and_then(|(header, rate, burst)| {
                actix_web::http::header::HeaderName::from_bytes(header.as_bytes())
                    .ok()
                    .map(|name| (name, Limiter::new(*rate, *burst)))
            }),
            key_hasher: Default::default(),
            shared: config.shared.then(|| shared::SharedRates {
                per_ip: config
                    .per_ip
                    .map(|(rate, burst)| shared::Gcra::new(rate, burst)),
                per_key: config
                    .per_key
                    .as_ref()
                    .map(|(_, rate, burst)| shared::Gcra::new(*rate, *burst)),
            }),
        }
    }

    /// Whether a request from `peer` (with its headers) may pass; counted when not. The
    /// node's own limits come first — they alone hold off a flood, without a Redis call —
    /// then, on a shared route, the limits across nodes in `store` (fail-open).
    pub async fn check(
        &self,
        route: &str,
        headers: &actix_web::http::header::HeaderMap,
        peer: Option<std::net::IpAddr>,
        store: Option<&crate::session::SharedStore>,
    ) -> Result<(), crate::error::Error> {
        let limited = |by: &'static str, scope: &'static str, retry_after: Duration| {
            metrics::counter!("switchyard_rate_limited_total", "route" => route.to_string(), "by" => by, "scope" => scope)
                .increment(1);
            crate::error::Error::RateLimited { by, retry_after }
        };
        // One host's IPv6 /64 is one client, or it could walk past the limit.
        let peer = peer.map(crate::conn::client_key);
        if let (Some(limiter), Some(ip)) = (&self.per_ip, peer) {
            limiter
                .check(&ip)
                .map_err(|wait| limited("client address", "local", wait))?;
        }
        let key = self
            .per_key
            .as_ref()
            .and_then(|(header, limiter)| Some((headers.get(header)?, limiter)));
        if let Some((key, limiter)) = key {
            limiter
                .check(&self.key_hasher.hash_one(key.as_bytes()))
                .map_err(|wait| limited("key", "local", wait))?;
        }
        if let Some(shared) = &self.shared {
            shared
                .check(route, peer, key.map(|(k, _)| k.as_bytes()), store)
                .await
                .map_err(|(by, wait)| limited(by, "shared", wait))?;
        }
        Ok(())
    }
}
