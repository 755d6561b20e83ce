//! Round robin: each backend in turn, weights ignored. For short, uniform requests (`/api`).

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn first(&self, len: usize) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % len
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Algorithm;
    use crate::routing::balance::Balancer;
    use crate::routing::balance::testing::{backends, first_counts};

    #[test]
    fn every_backend_gets_the_same_share() {
        let pool = backends(&[1, 5, 1]);
        let b = Balancer::build(&Algorithm::RoundRobin, &pool);
        assert_eq!(first_counts(&b, &pool, 300), vec![100, 100, 100]);
    }

    #[test]
    fn turns_go_in_order() {
        let pool = backends(&[1, 1, 1]);
        let b = Balancer::build(&Algorithm::RoundRobin, &pool);
        let firsts: Vec<_> = (0..6)
            .map(|_| b.candidates(&pool, 0).next().unwrap())
            .collect();
        assert_eq!(firsts, vec![0, 1, 2, 0, 1, 2]);
    }
}
