//! Load shedding: a pool with `max_inflight` admits a request only while fewer than its
//! route's share of it are admitted (75% for `low` priority routes, 90% `normal`, 100%
//! `high`), so low-priority traffic is shed first. A slot is claimed atomically and held until
//! the request's answer head arrives (or it fails). Over the share the request waits up to the
//! pool's `queue_timeout` for a slot, then gets 503 `overloaded` with `Retry-After`, before any
//! backend sees it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::Instant;
use crate::error::Error;

/// How often a waiting request looks for room again.
const RECHECK: Duration = Duration::from_millis(2);

/// One pool's shedding state: its limit (set from the config, changed by a reload) and the
/// requests admitted under it. The pool's handle holds one; the request path claims from it.
#[derive(Debug)]
pub struct Shedder {
    /// Most requests in flight (0: off).
    max_inflight: AtomicU32,
    /// Longest wait for room.
    queue_timeout_ms: AtomicU64,
    /// Requests admitted under `max_inflight` and not yet answered (their head).
    admitted: AtomicU32,
}

impl Default for Shedder {
    fn default() -> Shedder {
        Shedder {
            max_inflight: AtomicU32::new(0),
            queue_timeout_ms: AtomicU64::new(100),
            admitted: AtomicU32::new(0),
        }
    }
}

impl Shedder {
    /// Load shedding settings (from the config; a reload changes them).
    pub fn set(&self, max_inflight: Option<u32>, queue_timeout: Duration) {
        self.max_inflight
            .store(max_inflight.unwrap_or(0), Ordering::Relaxed);
        self.queue_timeout_ms
            .store(queue_timeout.as_millis() as u64, Ordering::Relaxed);
    }

    /// `(max in flight, longest wait)`; `None` when the pool sheds nothing.
    pub fn limits(&self) -> Option<(u32, Duration)> {
        match self.max_inflight.load(Ordering::Relaxed) {
            0 => None,
            max => Some((
                max,
                Duration::from_millis(self.queue_timeout_ms.load(Ordering::Relaxed)),
            )),
        }
    }

    /// Takes one of `limit` admission slots; `false` when all are taken. Claimed atomically,
    /// so requests arriving together cannot all see room.
    pub fn try_admit(&self, limit: u32) -> bool {
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives an admission slot back.
    pub fn release(&self) {
        let _ = self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// A claimed admission slot; given back on drop.
pub struct Admission {
    shedder: Arc<Shedder>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.shedder.release();
    }
}

/// Waits (bounded) for an admission slot of a pool (`pool` names it in the metric and the
/// error) for a route that may fill `share` percent of it; `None` when the pool sheds nothing.
pub async fn admit(
    shedder: &Arc<Shedder>,
    share: u32,
    route: &str,
    pool: &str,
) -> Result<Option<Admission>, Error> {
    let Some((max, wait)) = shedder.limits() else {
        return Ok(None);
    };
    let limit = (u64::from(max) * u64::from(share) / 100).max(1) as u32;
    let deadline = Instant::now() + wait;
    loop {
        if shedder.try_admit(limit) {
            return Ok(Some(Admission {
                shedder: shedder.clone(),
            }));
        }
        if Instant::now() >= deadline {
            metrics::counter!("switchyard_shed_total", "route" => route.to_string(), "pool" => pool.to_string())
                .increment(1);
            return Err(Error::Shed {
                pool: pool.to_string(),
            });
        }
        actix_rt::time::sleep(RECHECK).await;
    }
}
