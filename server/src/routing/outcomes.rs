//! What a route's requests to one pool came to — how many, how many failed, how long they
//! took — as atomics the request path bumps (a few relaxed adds per request) and the control
//! plane reads whole. A [`Tally`] is such a reading: it subtracts (the requests of a window are
//! the reading at its end less the one at its start) and adds (the same window on every node
//! gives the cluster's), and it is what a canary's judgement compares.
//!
//! Latencies go into fixed log-scale buckets, eight per doubling (a quantile read from them is
//! at most 12.5 % over the true one), from 1 µs to about 67 s: additive across nodes, unlike a
//! quantile, at 1.7 KiB per route and pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Buckets per doubling.
const SUB: u32 = 8;
/// Doublings covered: 2^26 µs is about 67 s; longer requests land in the last bucket.
const OCTAVES: u32 = 26;
pub const BUCKETS: usize = ((OCTAVES + 1) * SUB) as usize;

/// A route's outcomes on one pool since the router started.
#[derive(Debug)]
pub struct Outcomes {
    requests: AtomicU64,
    errors: AtomicU64,
    buckets: Box<[AtomicU64]>,
}

impl Default for Outcomes {
    fn default() -> Self {
        Outcomes {
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// Whether an answer counts as a failure of the pool: a 5xx (the backend's own, or the
/// router's 502/503/504 for it). A client's 4xx is not the pool's failure.
pub fn is_error(status: u16) -> bool {
    status >= 500
}

/// The bucket of a latency in µs.
fn bucket(us: u64) -> usize {
    let us = us.max(1);
    let octave = 63 - us.leading_zeros(); // floor(log2)
    let index = if octave < 3 {
        // 1..8 µs: one bucket each (fewer than SUB values per doubling).
        us as u32
    } else {
        octave * SUB + ((us >> (octave - 3)) as u32 & (SUB - 1))
    };
    (index as usize).min(BUCKETS - 1)
}

/// The largest latency in µs that falls in bucket `index`.
fn upper_us(index: usize) -> u64 {
    let index = index as u32;
    if index < 3 * SUB {
        return u64::from(index.max(1));
    }
    let (octave, sub) = (index / SUB, index % SUB);
    let lower = (u64::from(SUB + sub)) << (octave - 3);
    lower + (1u64 << (octave - 3)) - 1
}

impl Outcomes {
    /// One answer: its status and how long the request took.
    pub fn record(&self, status: u16, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if is_error(status) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn tally(&self) -> Tally {
        Tally {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// A reading of [`Outcomes`], or of a window of them, or of the same window summed over nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub requests: u64,
    pub errors: u64,
    /// Requests per latency bucket; empty reads as all zero.
    pub buckets: Vec<u64>,
}

impl Tally {
    /// What happened between `earlier` and this reading (counts never go down; a reading
    /// from a restarted process is taken as starting from zero).
    pub fn since(&self, earlier: &Tally) -> Tally {
        if earlier.requests > self.requests {
            return self.clone();
        }
        Tally {
            requests: self.requests - earlier.requests,
            errors: self.errors.saturating_sub(earlier.errors),
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.buckets.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }

    /// Adds another node's reading of the same window.
    pub fn add(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.errors += other.errors;
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
    }

    /// Failed requests per request (0 without requests).
    pub fn error_rate(&self) -> f64 {
        match self.requests {
            0 => 0.0,
            n => self.errors as f64 / n as f64,
        }
    }

    /// The latency under which a share `q` (0–1) of the requests finished, to the upper bound
    /// of its bucket; `None` without requests.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_micros(upper_us(i)));
            }
        }
        Some(Duration::from_micros(upper_us(BUCKETS - 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_latency_lands_in_a_bucket_whose_bound_is_within_an_eighth_over_it() {
        let (mut us, mut previous) = (1u64, 0);
        while us < 60_000_000 {
            let b = bucket(us);
            let upper = upper_us(b);
            assert!(
                upper >= us,
                "{us} µs in bucket {b} whose upper bound is {upper}"
            );
            assert!(
                upper as f64 <= us as f64 * 1.125,
                "{us} µs in bucket {b} whose upper bound is {upper}"
            );
            assert!(b >= previous, "{us} µs went to a lower bucket");
            previous = b;
            us = us + 1 + us / 7;
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket(0), bucket(1));
    }

    #[test]
    fn a_window_is_a_difference_and_nodes_add_up() {
        let outcomes = Outcomes::default();
        for _ in 0..90 {
            outcomes.record(200, Duration::from_millis(10));
        }
        let start = outcomes.tally();
        for _ in 0..95 {
            outcomes.record(200, Duration::from_millis(10));
        }
        for _ in 0..5 {
            outcomes.record(503, Duration::from_millis(200));
        }
        let window = outcomes.tally().since(&start);
        assert_eq!((window.requests, window.errors), (100, 5));
        assert!((window.error_rate() - 0.05).abs() < 1e-9);
        let p99 = window.quantile(0.99).unwrap();
        assert!(
            p99 >= Duration::from_millis(200) && p99 <= Duration::from_millis(220),
            "{p99:?}"
        );
        let p50 = window.quantile(0.5).unwrap();
        assert!(
            p50 >= Duration::from_millis(10) && p50 <= Duration::from_millis(11),
            "{p50:?}"
        );

        let mut cluster = window.clone();
        cluster.add(&window);
        assert_eq!((cluster.requests, cluster.errors), (200, 10));
        assert_eq!(cluster.quantile(0.99), window.quantile(0.99));
        assert_eq!(Tally::default().quantile(0.99), None);
        // A reading from a restarted node is a fresh start, not a negative window.
        assert_eq!(Tally::default().since(&start), Tally::default());
    }
}
