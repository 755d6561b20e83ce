//! Load shedding: a pool with `max_inflight` admits a request only while fewer than its
//! route's share of it are admitted (75% for `low` priority routes, 90% `normal`, 100%
//! `high`), so low-priority traffic is shed first. A slot is claimed atomically and held until
//! the request's answer head arrives (or it fails). Over the share the request waits up to the
//! pool's `queue_timeout` for a slot, then gets 503 `overloaded` with `Retry-After`, before any
//! backend sees it.

use std::time::Duration;

use crate::clock::Instant;
use crate::error::Error;
use crate::routing::Route;

/// How often a waiting request looks for room again.
const RECHECK: Duration = Duration::from_millis(2);

/// A claimed admission slot; given back on drop.
pub struct Admission {
    pool: std::sync::Arc<crate::routing::PoolHandle>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.pool.release_admission();
    }
}

/// Waits (bounded) for an admission slot of the route's pool; `None` when the pool sheds
/// nothing.
pub async fn admit(route: &Route) -> Result<Option<Admission>, Error> {
    let Some((max, wait)) = route.pool.shedding() else {
        return Ok(None);
    };
    let limit = (u64::from(max) * u64::from(route.shed_share) / 100).max(1) as u32;
    let deadline = Instant::now() + wait;
    loop {
        if route.pool.try_admit(limit) {
            return Ok(Some(Admission {
                pool: route.pool.clone(),
            }));
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
