//! Rate limits per client address and per API key, per route: GCRA (the generic cell rate
//! algorithm, a token bucket kept as one timestamp per key), so a key costs 16 bytes and a
//! check is one short lock on one of 16 shards. A request over the limit gets 429 with
//! `Retry-After` saying when it would pass. With `shared = true` the same limits are then
//! checked across every router node in Redis ([`shared`]). Time is [`crate::clock`]'s, so tests
//! move it instead of sleeping.

pub mod shared;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Epoch;

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
    /// Theoretical arrival times count nanoseconds from here.
    epoch: Epoch,
    shards: Vec<Mutex<HashMap<K, u64>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(rate: u32, burst: u32) -> Limiter<K> {
        let interval = 1_000_000_000 / u64::from(rate.max(1));
        Limiter {
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1)).saturating_sub(1)),
            epoch: Epoch::now(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
        }
    }

    /// `Ok` when a request of `key` may pass now; `Err(wait)` until it would.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = self.epoch.elapsed_ns();
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
        store: Option<&dyn shared::RedisLink>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_the_steady_rate_and_other_keys_are_apart() {
        let limiter: Limiter<&str> = Limiter::new(10, 5);
        for i in 0..5 {
            assert!(limiter.check(&"a").is_ok(), "burst request {i}");
        }
        let wait = limiter
            .check(&"a")
            .expect_err("the sixth is over the burst");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert_eq!(wait, Duration::from_millis(100), "time stood still: 1/rate");
        assert!(
            limiter.check(&"b").is_ok(),
            "another key has its own bucket"
        );
        tokio::time::advance(Duration::from_millis(99)).await;
        assert_eq!(
            limiter.check(&"a"),
            Err(Duration::from_millis(1)),
            "not before 1/rate"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(limiter.check(&"a").is_ok(), "one more after 1/rate");
        assert_eq!(
            limiter.check(&"a"),
            Err(Duration::from_millis(100)),
            "and only one"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_key_gets_its_whole_burst_back_and_no_more() {
        let limiter: Limiter<&str> = Limiter::new(10, 5);
        while limiter.check(&"a").is_ok() {}
        // A whole burst's worth of quiet (5 × 1/rate), and then some: still one burst.
        tokio::time::advance(Duration::from_secs(60)).await;
        let passed = (0..10).filter(|_| limiter.check(&"a").is_ok()).count();
        assert_eq!(passed, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_limit_without_redis_falls_back_to_the_local_one_on_the_same_clock() {
        let rates = RouteRates::new(&crate::config::RateLimitConfig {
            per_ip: Some((10, 5)),
            per_key: None,
            shared: true,
        });
        let headers = actix_web::http::header::HeaderMap::new();
        let peer = Some(std::net::IpAddr::from([192, 0, 2, 7]));
        let check = || rates.check("api", &headers, peer, None);
        for i in 0..5 {
            assert!(check().await.is_ok(), "burst request {i} (fail-open)");
        }
        let limited = check().await.expect_err("the local limit still refuses");
        assert_eq!(limited.kind(), "rate_limited");
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(check().await.is_ok(), "one more after 1/rate");
        assert!(check().await.is_err());
    }
}
