//! Power of two choices over peak-EWMA latency (linkerd2-proxy's and Finagle's default): pick
//! two backends at random, send to the cheaper, where cost = latency estimate × (in-flight + 1)
//! ÷ weight. Fast backends get more, slow or overloaded ones shed load within a few requests,
//! and no global scan or lock is needed.

use std::sync::Arc;

use crate::clock::now_ns;
use crate::routing::backend::BackendEntry;

#[derive(Debug, Default)]
pub struct P2cEwma;

impl P2cEwma {
    pub fn first(&self, backends: &[Arc<BackendEntry>]) -> usize {
        let len = backends.len();
        if len == 1 {
            return 0;
        }
        let a = fastrand::usize(..len);
        let b = (a + 1 + fastrand::usize(..len - 1)) % len;
        let now = now_ns();
        if cost(&backends[b], now) < cost(&backends[a], now) {
            b
        } else {
            a
        }
    }
}

fn cost(backend: &BackendEntry, now: u64) -> f64 {
    let pending = f64::from(backend.stats.inflight()) + 1.0;
    backend.stats.ewma.estimate_ns(now) * pending / f64::from(backend.weight.max(1))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::clock::now_ns;
    use crate::config::Algorithm;
    use crate::routing::balance::Balancer;
    use crate::routing::balance::testing::{backends, first_counts};

    /// Backends whose estimates were all last updated at the same moment, so that only the
    /// samples differ.
    fn measured(latencies_ms: &[u64]) -> Vec<std::sync::Arc<crate::routing::BackendEntry>> {
        let pool = backends(&vec![1; latencies_ms.len()]);
        let now = now_ns();
        for (b, ms) in pool.iter().zip(latencies_ms) {
            b.stats.ewma.observe(Duration::from_millis(*ms), now);
        }
        pool
    }

    #[test]
    fn a_slow_backend_gets_little() {
        let pool = measured(&[50, 1, 1]);
        let b = Balancer::build(&Algorithm::P2cEwma, &pool);
        let counts = first_counts(&b, &pool, 3_000);
        // It only wins when drawn against itself, which p2c never does: it gets nothing.
        assert_eq!(counts[0], 0, "counts {counts:?}");
        assert!(counts[1] > 1_200 && counts[2] > 1_200, "counts {counts:?}");
    }

    #[test]
    fn equal_backends_share_evenly() {
        let pool = measured(&[1, 1, 1]);
        let b = Balancer::build(&Algorithm::P2cEwma, &pool);
        for count in first_counts(&b, &pool, 30_000) {
            assert!((9_400..10_600).contains(&count), "count {count}");
        }
    }

    #[test]
    fn in_flight_work_raises_the_cost() {
        let pool = measured(&[1, 1]);
        let _held: Vec<_> = (0..5).map(|_| pool[1].stats.start_request()).collect();
        let b = Balancer::build(&Algorithm::P2cEwma, &pool);
        assert_eq!(first_counts(&b, &pool, 100), vec![100, 0]);
    }
}
