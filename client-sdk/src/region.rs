//! One region as the client uses it: its routers in the order to try them (the one that
//! answered last first), its circuit breaker, and the `Retry-After` it asked for.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::breaker::{Breaker, BreakerConfig};

/// One region the client may use.
#[derive(Debug)]
pub struct Region {
    pub name: String,
    /// Its routers, in the order tried.
    pub endpoints: Vec<String>,
    pub(crate) breaker: Breaker,
    /// The endpoint that answered last: tried first next time.
    preferred: AtomicUsize,
    /// No request before this (the region's `Retry-After`).
    hold: Mutex<Option<Instant>>,
}

impl Region {
    pub(crate) fn new(name: &str, endpoints: &[String], breaker: BreakerConfig) -> Region {
        Region {
            name: name.to_string(),
            endpoints: endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_string())
                .collect(),
            breaker: Breaker::for_region(breaker, name),
            preferred: AtomicUsize::new(0),
            hold: Mutex::new(None),
        }
    }

    /// The endpoint tried first (the one that answered last).
    pub fn endpoint(&self) -> &str {
        let n = self.endpoints.len().max(1);
        self.endpoints
            .get(self.preferred.load(Ordering::Relaxed) % n)
            .map_or("", String::as_str)
    }

    /// The endpoints in the order to try them now: the preferred one, then the others in turn.
    pub(crate) fn endpoints_in_turn(&self) -> impl Iterator<Item = (usize, &str)> {
        let n = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed) % n.max(1);
        (0..n).map(move |k| {
            let i = (first + k) % n;
            (i, self.endpoints[i].as_str())
        })
    }

    pub(crate) fn prefer(&self, index: usize) {
        self.preferred.store(index, Ordering::Relaxed);
    }

    /// Tries the endpoint after `endpoint` first from now on, when the region has more than
    /// one: a router that moved a session away (`4001`: draining or stopping) is asked last.
    pub(crate) fn prefer_after(&self, endpoint: &str) {
        let n = self.endpoints.len();
        if let Some(i) = self.endpoints.iter().position(|e| e == endpoint)
            && n > 1
        {
            self.prefer((i + 1) % n);
        }
    }

    /// How long the region asked to be left alone from now (`Retry-After`).
    pub(crate) fn held_for(&self) -> Duration {
        self.hold
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map_or(Duration::ZERO, |t| {
                t.saturating_duration_since(Instant::now())
            })
    }

    pub(crate) fn hold_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut hold = self.hold.lock().unwrap_or_else(|e| e.into_inner());
        *hold = Some(hold.map_or(until, |h| h.max(until)));
    }
}
