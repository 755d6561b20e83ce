//! Rate limits shared by every router node, kept in the session store's Redis
//! (`rate_limit.shared = true`).
//!
//! - One Lua script (GCRA, like the local limiter) checks and charges every bucket of a
//!   request atomically: all pass and are charged, or none is. Times come from Redis's own
//!   clock (`TIME`), so the nodes' clocks do not matter; each bucket expires (`PX`) when its
//!   theoretical arrival time is reached, so idle clients cost nothing.
//! - Keys: `{key_prefix}rl:{route}:{client address}` and `{key_prefix}rl:{route}:k:{hash}` —
//!   an API key is stored only as (half of) its SHA-256, never as sent.
//! - Redis Cluster: a client address's bucket and an API key's live in different slots, and
//!   one script may touch one slot only, so there each bucket is checked by a script of its
//!   own, the address first: a request then passing its address limit but not its key limit
//!   has still been charged on its address (one request's worth).
//! - Fail-open: the local limit has already passed when this runs, so when Redis is not
//!   connected, down, slow (the store's `timeout`) or fails, the request passes; counted in
//!   `switchyard_rate_limit_fallbacks_total{route}` and logged at most once per
//!   [`LOG_EVERY`]. A connection error marks the session store down, so later requests skip
//!   Redis at once until the store's own probe finds it again (within about a second).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::logging::Throttle;

/// Fallbacks are logged at most this often (they are all counted).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// GCRA over all of `KEYS` at once. `ARGV[2i-1]`, `ARGV[2i]`: key i's interval and tolerance
/// (microseconds). Each key holds its theoretical arrival time (TAT, microseconds of Redis
/// time). Returns `{0, 0}` when every key passes (all are charged), else
/// `{i, wait in microseconds}` for the first key over its limit (none is charged).
const GCRA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  if tat - now > tolerance then
    return {i, tat - now - tolerance}
  end
  tats[i] = tat + interval
end
for i, key in ipairs(KEYS) do
  local ttl_ms = math.max(1, math.ceil((tats[i] - now) / 1000))
  redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', ttl_ms)
end
return {0, 0}
";

/// `redis::Script` sends `EVALSHA`, and the script itself once after a `NOSCRIPT` (a new or
/// restarted server).
static SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(GCRA));

/// Fallback lines: one per [`LOG_EVERY`], shared by every route of the process.
static FALLBACK_LOG: Throttle = Throttle::new(LOG_EVERY);

/// One limit's GCRA parameters in microseconds (Redis's `TIME` resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    interval_us: u64,
    tolerance_us: u64,
}

impl Gcra {
    /// `rate` requests a second with bursts of up to `burst` — as [`super::Limiter::new`].
    pub fn new(rate: u32, burst: u32) -> Gcra {
        let interval_us = (1_000_000 / u64::from(rate.max(1))).max(1);
        Gcra {
            interval_us,
            tolerance_us: interval_us.saturating_mul(u64::from(burst.max(1)).saturating_sub(1)),
        }
    }
}

/// A route's limits as checked in Redis.
#[derive(Debug)]
pub struct SharedRates {
    pub per_ip: Option<Gcra>,
    pub per_key: Option<Gcra>,
}

/// The Redis key of a client address's bucket on `route`.
fn ip_key(prefix: &str, route: &str, ip: IpAddr) -> String {
    format!("{prefix}rl:{route}:{ip}")
}

/// The Redis key of an API key's bucket on `route`: the key's SHA-256 (first 16 bytes),
/// the same on every node and not the key itself.
fn key_key(prefix: &str, route: &str, value: &[u8]) -> String {
    let digest = Sha256::digest(value);
    let mut key = format!("{prefix}rl:{route}:k:");
    for byte in &digest[..16] {
        let _ = write!(key, "{byte:02x}");
    }
    key
}

/// The Redis connection a shared limit counts through (the session store's): its key prefix,
/// a connection while it is up, its call timeout, and where a failed call is reported. A trait,
/// so the policy needs nothing of the session store above it.
pub trait RedisLink {
    fn key_prefix(&self) -> &str;
    fn connection(&self) -> Option<crate::redis_conn::RedisConn>;
    fn timeout(&self) -> Duration;
    fn unreachable(&self, why: &str);
}

impl SharedRates {
    /// Checks and charges the request's buckets in Redis: `Err((by, wait))` when one is over
    /// its limit; `Ok` when all pass, and when Redis cannot say (counted, see the module).
    pub async fn check(
        &self,
        route: &str,
        peer: Option<IpAddr>,
        key: Option<&[u8]>,
        store: Option<&dyn RedisLink>,
    ) -> Result<(), (&'static str, Duration)> {
        let Some(store) = store else {
            fall_back(route, "the session store is not Redis");
            return Ok(());
        };
        let prefix = store.key_prefix();
        let mut buckets: Vec<(&'static str, Gcra, String)> = Vec::with_capacity(2);
        if let (Some(gcra), Some(ip)) = (self.per_ip, peer) {
            buckets.push(("client address", gcra, ip_key(prefix, route, ip)));
        }
        if let (Some(gcra), Some(value)) = (self.per_key, key) {
            buckets.push(("key", gcra, key_key(prefix, route, value)));
        }
        if buckets.is_empty() {
            return Ok(());
        }
        let Some(mut conn) = store.connection() else {
            fall_back(route, "Redis is not connected");
            return Ok(());
        };
        let groups: Vec<&[(&'static str, Gcra, String)]> = match conn.is_cluster() {
            true => buckets.chunks(1).collect(),
            false => vec![&buckets[..]],
        };
        for group in groups {
            let mut script = SCRIPT.prepare_invoke();
            for (_, gcra, key) in group {
                script.key(key).arg(gcra.interval_us).arg(gcra.tolerance_us);
            }
            let answer: Result<redis::RedisResult<(usize, u64)>, _> =
                tokio::time::timeout(store.timeout(), script.invoke_async(&mut conn)).await;
            match answer {
                Ok(Ok((0, _))) => {}
                Ok(Ok((i, wait_us))) => {
                    return match group.get(i - 1) {
                        Some((by, _, _)) => Err((by, Duration::from_micros(wait_us))),
                        None => {
                            fall_back(route, "unexpected answer from the rate limit script");
                            Ok(())
                        }
                    };
                }
                Ok(Err(err)) => {
                    if err.is_io_error()
                        || err.is_connection_refusal()
                        || err.is_connection_dropped()
                        || err.is_timeout()
                    {
                        store.unreachable(&err.to_string());
                    }
                    fall_back(route, &err.to_string());
                    return Ok(());
                }
                Err(_) => {
                    store.unreachable("timed out");
                    fall_back(route, "timed out");
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Redis could not decide: the request passes on the local limit alone. Counted always,
/// logged at most once per [`LOG_EVERY`] (an outage would otherwise log every request).
fn fall_back(route: &str, why: &str) {
    metrics::counter!("switchyard_rate_limit_fallbacks_total", "route" => route.to_string())
        .increment(1);
    if let Some(left_out) = FALLBACK_LOG.allow() {
        tracing::warn!(
            route,
            reason = why,
            left_out,
            "shared rate limit unavailable: local limits only (fail-open; see switchyard_rate_limit_fallbacks_total)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_key_is_stored_hashed_and_the_same_on_every_node() {
        let key = key_key("p:", "api", b"secret-api-key");
        assert!(key.starts_with("p:rl:api:k:"), "{key}");
        assert!(!key.contains("secret"), "{key}");
        assert_eq!(key.len(), "p:rl:api:k:".len() + 32);
        assert_eq!(key, key_key("p:", "api", b"secret-api-key"));
        assert_ne!(key, key_key("p:", "api", b"another-key"));
        assert_eq!(
            ip_key("p:", "api", "10.0.0.1".parse().unwrap()),
            "p:rl:api:10.0.0.1"
        );
    }

    #[test]
    fn parameters_match_the_local_limiter() {
        let g = Gcra::new(10, 5);
        assert_eq!((g.interval_us, g.tolerance_us), (100_000, 400_000));
        // Absurd rates still give a non-zero interval.
        assert_eq!(Gcra::new(u32::MAX, 1).interval_us, 1);
    }
}
