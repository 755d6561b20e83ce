//! A route's shadow: the pool that a share of its requests is mirrored to, the limits that
//! keep the mirror from ever weighing on the route's own requests, and its counters. The
//! mirroring itself is the request path's (`proxy::shadow`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use metrics::{Counter, Histogram};

use super::snapshot::PoolHandle;
use crate::config::{HashKey, ShadowConfig};

#[derive(Debug)]
pub struct Shadow {
    pub pool: Arc<PoolHandle>,
    /// `Some` when the shadow pool balances by consistent hash: mirrors spread as its own
    /// traffic would.
    pub hash_key: Option<HashKey>,
    per_million: u32,
    pub timeout: Duration,
    pub max_body_bytes: u64,
    max_concurrent: u32,
    inflight: Arc<AtomicU32>,
    /// Shared with the mirrors in flight (one reference each, not a handle per counter).
    pub counts: Arc<ShadowCounts>,
}

/// `switchyard_shadow_requests_total{route,pool,outcome}` and the two latencies.
#[derive(Debug)]
pub struct ShadowCounts {
    /// Primary and shadow answered with the same status class.
    pub agree: Counter,
    /// Both answered, with different status classes.
    pub disagree: Counter,
    /// The shadow did not answer (connect failure, timeout, no backend).
    pub failed: Counter,
    /// Not mirrored: `max_concurrent` shadow requests were in flight.
    pub skipped_busy: Counter,
    /// Not mirrored: the body was streamed or over `max_body_bytes`.
    pub skipped_body: Counter,
    /// The shadow's time to its answer's head, and the primary's for the same requests.
    pub shadow_latency: Histogram,
    pub primary_latency: Histogram,
}

/// A place among the shadow's requests in flight, given back on drop.
#[derive(Debug)]
pub struct Permit(Arc<AtomicU32>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Shadow {
    pub fn new(
        route: &str,
        pool: Arc<PoolHandle>,
        hash_key: Option<HashKey>,
        config: &ShadowConfig,
    ) -> Shadow {
        let outcome = |outcome: &'static str| {
            metrics::counter!(
                "switchyard_shadow_requests_total",
                "route" => route.to_string(),
                "pool" => pool.id.to_string(),
                "outcome" => outcome,
            )
        };
        let latency = |of: &'static str| {
            metrics::histogram!(
                "switchyard_shadow_duration_seconds",
                "route" => route.to_string(),
                "pool" => pool.id.to_string(),
                "of" => of,
            )
        };
        let counts = ShadowCounts {
            agree: outcome("agree"),
            disagree: outcome("disagree"),
            failed: outcome("failed"),
            skipped_busy: outcome("skipped_busy"),
            skipped_body: outcome("skipped_body"),
            shadow_latency: latency("shadow"),
            primary_latency: latency("primary"),
        };
        Shadow {
            hash_key,
            per_million: config.per_million,
            timeout: config.timeout,
            max_body_bytes: config.max_body_bytes,
            max_concurrent: config.max_concurrent,
            inflight: Arc::new(AtomicU32::new(0)),
            counts: Arc::new(counts),
            pool,
        }
    }

    /// Whether this request is in the mirrored share.
    pub fn sampled(&self) -> bool {
        self.per_million >= 1_000_000 || fastrand::u32(0..1_000_000) < self.per_million
    }

    /// A place among the requests in flight, unless `max_concurrent` are.
    pub fn permit(&self) -> Option<Permit> {
        let taken = self
            .inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_concurrent).then_some(n + 1)
            });
        taken.ok().map(|_| Permit(self.inflight.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_stop_at_the_limit_and_come_back_on_drop() {
        let inflight = Arc::new(AtomicU32::new(0));
        let take = || {
            inflight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < 2).then_some(n + 1)
                })
                .ok()
                .map(|_| Permit(inflight.clone()))
        };
        let (a, b) = (take(), take());
        assert!(a.is_some() && b.is_some());
        assert!(take().is_none(), "a third permit past a limit of 2");
        drop(a);
        assert!(take().is_some(), "a dropped permit was not given back");
    }
}
