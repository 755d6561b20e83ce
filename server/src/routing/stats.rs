//! Per-backend live counters shared by the control plane and the request path. Everything here
//! is an atomic: the request path updates it without locks, actors read it when they decide.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge};

use super::outcomes::{Outcomes, Tally};
use crate::clock::now_ns;

/// How far back a backend's recent figures (`requests per second`, error rate, p99) look.
pub const RECENT: Duration = Duration::from_secs(10);

/// How fast the peak-EWMA forgets a slow response: linkerd2-proxy and Finagle use 10 s.
pub const EWMA_DECAY: Duration = Duration::from_secs(10);
/// Latency assumed for a backend that has not answered yet: low enough that new backends get
/// traffic, high enough that one of them is not flooded before its first answer.
pub const EWMA_DEFAULT_RTT: Duration = Duration::from_millis(1);

/// Live state of one backend.
#[derive(Debug)]
pub struct BackendStats {
    inflight: AtomicU32,
    sessions: AtomicU32,
    /// Failed requests in a row (connect failures, timeouts, 5xx): passive outlier detection.
    consecutive_failures: AtomicU32,
    /// Most sessions this backend takes; 0 is no limit.
    max_sessions: AtomicU32,
    pub ewma: PeakEwma,
    inflight_gauge: Gauge,
    sessions_gauge: Gauge,
    connect_failures: Counter,
    /// Request counters by route slot (see `Route::slot`) then status class 1xx..5xx;
    /// replaced when a reload changes the pool's routes.
    requests: arc_swap::ArcSwap<Vec<[Counter; 5]>>,
    /// Every answer (or failure) of this backend: status and time to the answer's head.
    pub outcomes: Outcomes,
    /// Readings of `outcomes`, one a second (the pool actor's), covering [`RECENT`].
    readings: Mutex<VecDeque<(Instant, Tally)>>,
}

/// A backend's figures over the last [`RECENT`] (or since its first reading).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recent {
    pub seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    /// Percent of `requests`.
    pub error_rate: f64,
    /// Time to the answer's head, ms; `None` without requests.
    pub p99_ms: Option<f64>,
}

/// The request counters of one backend, one set per route in slot order.
fn route_counters(pool: &str, backend: &str, routes: &[String]) -> Vec<[Counter; 5]> {
    routes
        .iter()
        .map(|route| {
            ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|class| {
                metrics::counter!(
                    "switchyard_requests_total",
                    "route" => route.clone(),
                    "pool" => pool.to_string(),
                    "backend" => backend.to_string(),
                    "status_class" => class,
                )
            })
        })
        .collect()
}

impl BackendStats {
    /// `routes` are the ids of the routes that send to this backend's pool, in slot order.
    pub fn new(pool: &str, backend: &str, routes: &[String]) -> BackendStats {
        let requests = arc_swap::ArcSwap::from_pointee(route_counters(pool, backend, routes));
        BackendStats {
            inflight: AtomicU32::new(0),
            sessions: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            max_sessions: AtomicU32::new(0),
            ewma: PeakEwma::new(EWMA_DEFAULT_RTT, EWMA_DECAY),
            inflight_gauge: metrics::gauge!(
                "switchyard_backend_inflight",
                "pool" => pool.to_string(),
                "backend" => backend.to_string(),
            ),
            sessions_gauge: metrics::gauge!(
                "switchyard_backend_sessions",
                "pool" => pool.to_string(),
                "backend" => backend.to_string(),
            ),
            connect_failures: metrics::counter!(
                "switchyard_upstream_connect_failures_total",
                "pool" => pool.to_string(),
                "backend" => backend.to_string(),
            ),
            requests,
            outcomes: Outcomes::default(),
            // The first reading is the backend's start: its figures cover its first seconds too.
            readings: Mutex::new(VecDeque::from([(Instant::now(), Tally::default())])),
        }
    }

    /// Takes a reading of the outcomes (the pool actor does, once a second), keeping what
    /// [`RECENT`] needs.
    pub fn take_reading(&self, now: Instant) {
        let tally = self.outcomes.tally();
        let mut readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        readings.push_back((now, tally));
        while readings.len() > 1
            && readings
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= RECENT)
        {
            readings.pop_front();
        }
    }

    /// The figures since the oldest reading kept (up to [`RECENT`] ago).
    pub fn recent(&self, now: Instant) -> Recent {
        let oldest = self
            .readings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .front()
            .cloned();
        let (since, window) = match oldest {
            Some((t, tally)) => (
                now.saturating_duration_since(t).as_secs_f64(),
                self.outcomes.tally().since(&tally),
            ),
            None => (0.0, Tally::default()),
        };
        Recent {
            seconds: since,
            requests: window.requests,
            errors: window.errors,
            // Over at least a second: one request just after start is not a thousand a second.
            rps: window.requests as f64 / since.max(1.0),
            error_rate: window.error_rate() * 100.0,
            p99_ms: window.quantile(0.99).map(|d| d.as_secs_f64() * 1000.0),
        }
    }

    pub fn inflight(&self) -> u32 {
        self.inflight.load(Ordering::Relaxed)
    }

    pub fn sessions(&self) -> u32 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// In-flight requests plus open sessions: what `least_connections` minimises.
    pub fn load(&self) -> u64 {
        u64::from(self.inflight()) + u64::from(self.sessions())
    }

    /// Sets the session capacity (`None`: no limit).
    pub fn set_max_sessions(&self, max: Option<u32>) {
        self.max_sessions.store(max.unwrap_or(0), Ordering::Relaxed);
    }

    /// True when the backend holds as many sessions as it may.
    pub fn sessions_full(&self) -> bool {
        let max = self.max_sessions.load(Ordering::Relaxed);
        max != 0 && self.sessions() >= max
    }

    /// Counts an open session until the guard drops.
    pub fn start_session(self: &Arc<Self>) -> SessionGuard {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        SessionGuard {
            stats: self.clone(),
        }
    }

    /// Takes one of the backend's session slots, or `None` when it is full. Sessions opening
    /// at the same moment each get their own slot, so `max_sessions` holds under a burst and
    /// least-connection placement sees a session from the moment it is placed.
    pub fn try_start_session(self: &Arc<Self>) -> Option<SessionGuard> {
        let max = self.max_sessions.load(Ordering::Relaxed);
        self.sessions
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (max == 0 || n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| SessionGuard {
                stats: self.clone(),
            })
    }

    /// Counts a request as in flight until the guard drops.
    pub fn start_request(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::Relaxed);
        InflightGuard {
            stats: self.clone(),
        }
    }

    /// Copies the live counters into their gauges. Called by the pool actor once a second, so
    /// the request path touches only the atomic, not the metrics registry.
    pub fn publish_gauges(&self) {
        self.inflight_gauge.set(f64::from(self.inflight()));
        self.sessions_gauge.set(f64::from(self.sessions()));
    }

    /// Reports a request's outcome for outlier detection: a success ends a failure streak.
    pub fn record_outcome(&self, success: bool) {
        if success {
            // Read first: most requests succeed, and a store would dirty a shared cache line.
            if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                self.consecutive_failures.store(0, Ordering::Relaxed);
            }
        } else {
            self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// Starts a new streak (after an ejection).
    pub fn reset_failures(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// Counts a failed attempt to connect (each one, including those retried elsewhere).
    pub fn record_connect_failure(&self) {
        self.connect_failures.increment(1);
    }

    /// A reload changed the routes sending to this backend's pool (ids in slot order).
    pub fn set_routes(&self, pool: &str, backend: &str, routes: &[String]) {
        self.requests
            .store(Arc::new(route_counters(pool, backend, routes)));
    }

    /// Counts a finished request under its route slot and status, `took` to its answer's head
    /// (or its failure).
    pub fn record_status(&self, slot: usize, status: u16, took: Duration) {
        self.outcomes.record(status, took);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(counters) = self.requests.load().get(slot) {
            counters[class].increment(1);
        }
    }
}

/// Decrements the open-session count on drop.
#[derive(Debug)]
pub struct SessionGuard {
    stats: Arc<BackendStats>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.stats.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decrements the in-flight count on drop (including when a client goes away mid-response).
#[derive(Debug)]
pub struct InflightGuard {
    stats: Arc<BackendStats>,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.stats.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Peak-sensitive exponentially weighted moving average of response latency (Finagle's and
/// linkerd2-proxy's "peak EWMA"): a slower sample replaces the estimate at once, faster samples
/// pull it down with a time-based decay. Lossy under races by design: a lost update between two
/// concurrent samples changes nothing that matters to a balancer.
#[derive(Debug)]
pub struct PeakEwma {
    rtt_ns: AtomicU64,
    stamp_ns: AtomicU64,
    decay_ns: f64,
}

impl PeakEwma {
    pub fn new(initial: Duration, decay: Duration) -> PeakEwma {
        PeakEwma {
            rtt_ns: AtomicU64::new((initial.as_nanos() as f64).to_bits()),
            stamp_ns: AtomicU64::new(now_ns()),
            decay_ns: decay.as_nanos() as f64,
        }
    }

    /// Records one observed latency at time `now` (from [`now_ns`]).
    pub fn observe(&self, rtt: Duration, now: u64) {
        let sample = rtt.as_nanos() as f64;
        let prev = f64::from_bits(self.rtt_ns.load(Ordering::Relaxed));
        let w = self.weight_since(now);
        let next = if sample > prev {
            sample
        } else {
            prev * w + sample * (1.0 - w)
        };
        self.rtt_ns.store(next.to_bits(), Ordering::Relaxed);
        self.stamp_ns.store(now, Ordering::Relaxed);
    }

    /// The estimate in nanoseconds at time `now`. Decays toward zero while no sample arrives,
    /// so a backend that once was slow and then got no traffic is tried again (tower's
    /// `PeakEwma` does the same).
    pub fn estimate_ns(&self, now: u64) -> f64 {
        f64::from_bits(self.rtt_ns.load(Ordering::Relaxed)) * self.weight_since(now)
    }

    fn weight_since(&self, now: u64) -> f64 {
        let elapsed = now.saturating_sub(self.stamp_ns.load(Ordering::Relaxed)) as f64;
        (-elapsed / self.decay_ns).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_sample_is_taken_at_once_and_fast_ones_decay_it() {
        let ewma = PeakEwma::new(Duration::from_millis(1), Duration::from_secs(10));
        let t0 = now_ns();
        ewma.observe(Duration::from_millis(100), t0);
        assert_eq!(ewma.estimate_ns(t0), 100e6);
        // One decay period later a fast sample pulls it most of the way down.
        let t1 = t0 + 10_000_000_000;
        ewma.observe(Duration::from_millis(1), t1);
        let est = ewma.estimate_ns(t1) / 1e6;
        assert!((37.0..38.0).contains(&est), "estimate {est} ms");
        // A tiny gap barely moves it.
        ewma.observe(Duration::from_millis(1), t1 + 1_000_000);
        assert!(ewma.estimate_ns(t1 + 1_000_000) / 1e6 > 36.0);
        // Left alone, it decays so the backend is tried again.
        assert!(ewma.estimate_ns(t1 + 60_000_000_000) / 1e6 < 0.2);
    }

    #[test]
    fn inflight_counts_until_the_guard_drops() {
        let stats = Arc::new(BackendStats::new("p", "b", &["r".to_string()]));
        let a = stats.start_request();
        let b = stats.start_request();
        assert_eq!(stats.inflight(), 2);
        drop(a);
        assert_eq!(stats.load(), 1);
        drop(b);
        assert_eq!(stats.inflight(), 0);
    }
}
