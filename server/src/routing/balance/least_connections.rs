//! Least connections: the backend with the fewest in-flight requests plus open sessions,
//! relative to its weight. For long streams (`/stream`, `/ws`), where round robin would pile
//! hours-long work onto whoever was next.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::routing::backend::BackendEntry;

#[derive(Debug, Default)]
pub struct LeastConnections {
    /// Where the scan starts, so ties rotate instead of always going to the first backend.
    rotate: AtomicUsize,
}

impl LeastConnections {
    pub fn first(&self, backends: &[Arc<BackendEntry>]) -> usize {
        let len = backends.len();
        let start = self.rotate.fetch_add(1, Ordering::Relaxed) % len;
        let mut best = start;
        let mut best_load = backends[start].stats.load();
        let mut best_weight = u64::from(backends[start].weight.max(1));
        for step in 1..len {
            let i = (start + step) % len;
            let load = backends[i].stats.load();
            let weight = u64::from(backends[i].weight.max(1));
            // load_i / weight_i < best_load / best_weight, without division.
            if load * best_weight < best_load * weight {
                best = i;
                best_load = load;
                best_weight = weight;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Algorithm;
    use crate::routing::balance::Balancer;
    use crate::routing::balance::testing::{backends, first_counts};

    #[test]
    fn the_least_loaded_backend_is_chosen() {
        let pool = backends(&[1, 1, 1]);
        let _busy: Vec<_> = (0..3).map(|_| pool[0].stats.start_request()).collect();
        let _one = pool[2].stats.start_request();
        let b = Balancer::build(&Algorithm::LeastConnections, &pool);
        assert_eq!(first_counts(&b, &pool, 50), vec![0, 50, 0]);
    }

    #[test]
    fn ties_rotate() {
        let pool = backends(&[1, 1, 1, 1]);
        let b = Balancer::build(&Algorithm::LeastConnections, &pool);
        assert_eq!(first_counts(&b, &pool, 400), vec![100; 4]);
    }

    #[test]
    fn held_requests_spread_evenly() {
        // Each pick holds its request open: the pool fills level, like long streams do.
        let pool = backends(&[1, 1, 1]);
        let b = Balancer::build(&Algorithm::LeastConnections, &pool);
        let held: Vec<_> = (0..30)
            .map(|_| {
                pool[b.candidates(&pool, 0).next().unwrap()]
                    .stats
                    .start_request()
            })
            .collect();
        assert!(pool.iter().all(|p| p.stats.inflight() == 10));
        drop(held);
    }

    #[test]
    fn weight_scales_the_fair_share() {
        let pool = backends(&[2, 1]);
        let b = Balancer::build(&Algorithm::LeastConnections, &pool);
        let held: Vec<_> = (0..30)
            .map(|_| {
                pool[b.candidates(&pool, 0).next().unwrap()]
                    .stats
                    .start_request()
            })
            .collect();
        assert_eq!(
            (pool[0].stats.inflight(), pool[1].stats.inflight()),
            (20, 10)
        );
        drop(held);
    }
}
