//! Balancers: given a pool's eligible backends, the order in which to try them.
//!
//! Every balancer answers the same question the same way (Pingora's shape): an iterator of
//! candidates in preference order. The request path takes the first; a retry takes the next
//! one it has not tried. Health filtering is not a balancer's job: a snapshot's `eligible`
//! list already holds only backends that take new requests, and the balancer is rebuilt with
//! every snapshot.
//!
//! Each balancer is its own module with one job: choose the first candidate. The rest of the
//! order walks the eligible list from there, which spreads retries evenly.

pub mod consistent_hash;
pub mod hash;
pub mod least_connections;
pub mod p2c_ewma;
pub mod random;
pub mod round_robin;
pub mod weighted_round_robin;

use std::sync::Arc;

use crate::config::Algorithm;
use crate::routing::backend::BackendEntry;

pub use consistent_hash::ConsistentHash;
pub use least_connections::LeastConnections;
pub use p2c_ewma::P2cEwma;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use weighted_round_robin::WeightedRoundRobin;

/// A pool's balancer, built over one snapshot's eligible backends.
#[derive(Debug)]
pub enum Balancer {
    RoundRobin(RoundRobin),
    WeightedRoundRobin(WeightedRoundRobin),
    LeastConnections(LeastConnections),
    Random(Random),
    P2cEwma(P2cEwma),
    ConsistentHash(ConsistentHash),
}

impl Balancer {
    pub fn build(algorithm: &Algorithm, eligible: &[Arc<BackendEntry>]) -> Balancer {
        match algorithm {
            Algorithm::RoundRobin => Balancer::RoundRobin(RoundRobin::default()),
            Algorithm::WeightedRoundRobin => {
                Balancer::WeightedRoundRobin(WeightedRoundRobin::new(eligible))
            }
            Algorithm::LeastConnections => Balancer::LeastConnections(LeastConnections::default()),
            Algorithm::Random => Balancer::Random(Random::new(eligible)),
            Algorithm::P2cEwma => Balancer::P2cEwma(P2cEwma),
            Algorithm::ConsistentHash(_) => Balancer::ConsistentHash(ConsistentHash::new(eligible)),
        }
    }

    /// Candidates (indexes into `eligible`) in preference order. `key` is the request's hash
    /// key; only `consistent_hash` reads it.
    pub fn candidates(&self, eligible: &[Arc<BackendEntry>], key: u64) -> Candidates {
        let len = eligible.len();
        if len == 0 {
            return Candidates::empty();
        }
        let first = match self {
            Balancer::RoundRobin(b) => b.first(len),
            Balancer::WeightedRoundRobin(b) => b.first(len),
            Balancer::LeastConnections(b) => b.first(eligible),
            Balancer::Random(b) => b.first(len),
            Balancer::P2cEwma(b) => b.first(eligible),
            Balancer::ConsistentHash(b) => b.first(len, key),
        };
        Candidates::starting_at(first, len)
    }
}

/// Indexes `first, first+1, …` around the eligible list, each once.
#[derive(Debug, Clone)]
pub struct Candidates {
    start: usize,
    len: usize,
    taken: usize,
    /// Tried first, then skipped in the usual order (a sticky session's backend).
    preferred: Option<usize>,
    preferred_yielded: bool,
}

impl Candidates {
    pub fn empty() -> Candidates {
        Candidates {
            start: 0,
            len: 0,
            taken: 0,
            preferred: None,
            preferred_yielded: false,
        }
    }

    /// The same order with `index` moved to the front.
    pub fn prefer(mut self, index: usize) -> Candidates {
        if index < self.len {
            self.preferred = Some(index);
        }
        self
    }

    fn starting_at(start: usize, len: usize) -> Candidates {
        debug_assert!(start < len);
        Candidates {
            start,
            len,
            taken: 0,
            preferred: None,
            preferred_yielded: false,
        }
    }
}

impl Iterator for Candidates {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if let Some(p) = self.preferred
            && !self.preferred_yielded
        {
            self.preferred_yielded = true;
            return Some(p);
        }
        loop {
            if self.taken == self.len {
                return None;
            }
            let i = (self.start + self.taken) % self.len;
            self.taken += 1;
            if Some(i) != self.preferred {
                return Some(i);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use crate::routing::{BackendEntry, BackendState, BackendStats};

    /// Backends `b0, b1, …` with the given weights, all up.
    pub fn backends(weights: &[u32]) -> Vec<Arc<BackendEntry>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| named(&format!("b{i}"), w))
            .collect()
    }

    pub fn named(id: &str, weight: u32) -> Arc<BackendEntry> {
        Arc::new(BackendEntry::new(
            id.into(),
            "127.0.0.1:1".parse().unwrap(),
            weight,
            BackendState::Up,
            Arc::new(BackendStats::new("test", id, &[])),
        ))
    }

    /// How often each index came first over `n` picks.
    pub fn first_counts(
        balancer: &super::Balancer,
        backends: &[Arc<BackendEntry>],
        n: usize,
    ) -> Vec<usize> {
        let mut counts = vec![0; backends.len()];
        for i in 0..n {
            let first = balancer
                .candidates(backends, super::hash::hash_u64(i as u64))
                .next()
                .unwrap();
            counts[first] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_visit_every_backend_once_from_the_first() {
        let order: Vec<_> = Candidates::starting_at(2, 4).collect();
        assert_eq!(order, vec![2, 3, 0, 1]);
        let sticky: Vec<_> = Candidates::starting_at(2, 4).prefer(0).collect();
        assert_eq!(
            sticky,
            vec![0, 2, 3, 1],
            "the preferred one first, then the rest once"
        );
        assert_eq!(Candidates::empty().next(), None);
    }

    #[test]
    fn an_empty_pool_has_no_candidates() {
        for algorithm in [
            Algorithm::RoundRobin,
            Algorithm::WeightedRoundRobin,
            Algorithm::LeastConnections,
            Algorithm::Random,
            Algorithm::P2cEwma,
            Algorithm::ConsistentHash(crate::config::HashKey::ClientIp),
        ] {
            let b = Balancer::build(&algorithm, &[]);
            assert_eq!(b.candidates(&[], 7).count(), 0, "{algorithm:?}");
        }
    }
}
