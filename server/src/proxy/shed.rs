//! Load shedding: a pool with `max_inflight` admits a request only while fewer than its
//! route's share of it are in flight (75% for `low` priority routes, 90% `normal`, 100%
//! `high`), so low-priority traffic is shed first. Over it the request waits up to the pool's
//! `queue_timeout` for room, then gets 503 `overloaded` with `Retry-After`, before any backend
//! sees it.

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::routing::Route;

/// How often a waiting request looks for room again.
const RECHECK: Duration = Duration::from_millis(2);

/// Waits (bounded) until the route's pool has room for one more request.
pub async fn admit(route: &Route) -> Result<(), Error> {
    let Some((max, wait)) = route.pool.shedding() else {
        return Ok(());
    };
    let limit = (u64::from(max) * u64::from(route.shed_share) / 100).max(1);
    let deadline = Instant::now() + wait;
    loop {
        let inflight: u64 = route
            .pool
            .load()
            .backends
            .iter()
            .map(|b| u64::from(b.stats.inflight()))
            .sum();
        if inflight < limit {
            return Ok(());
        }
        if Instant::now() >= deadline {
            metrics::counter!("switchyard_shed_total", "route" => route.id.to_string(), "pool" => route.pool.id.to_string())
                .increment(1);
            return Err(Error::Shed {
                pool: route.pool.id.to_string(),
            });
        }
        actix_rt::time::sleep(RECHECK).await;
    }
}
