//! Smooth weighted round robin (nginx's algorithm): shares follow the weights, and the heavy
//! backend's turns are interleaved with the others' instead of coming in bursts.
//!
//! The sequence is computed once per snapshot (the control plane's work), so a pick is one
//! atomic increment and an index.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::routing::backend::BackendEntry;

/// Longest precomputed sequence; larger weight sums are scaled down to fit, keeping ratios.
pub const MAX_SEQUENCE: u64 = 1 << 16;

#[derive(Debug)]
pub struct WeightedRoundRobin {
    sequence: Vec<u32>,
    next: AtomicUsize,
}

impl WeightedRoundRobin {
    pub fn new(backends: &[Arc<BackendEntry>]) -> WeightedRoundRobin {
        let weights: Vec<u64> = backends
            .iter()
            .map(|b| u64::from(b.weight.max(1)))
            .collect();
        WeightedRoundRobin {
            sequence: smooth_sequence(&weights),
            next: AtomicUsize::new(0),
        }
    }

    pub fn first(&self, len: usize) -> usize {
        if self.sequence.is_empty() {
            return 0;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.sequence.len();
        (self.sequence[turn] as usize).min(len - 1)
    }
}

/// One full cycle of nginx's smooth weighted round robin: each turn, every backend gains its
/// weight; the one with the most is picked and loses the total.
fn smooth_sequence(weights: &[u64]) -> Vec<u32> {
    if weights.is_empty() {
        return Vec::new();
    }
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let mut weights: Vec<u64> = weights.iter().map(|w| w / g).collect();
    let total: u64 = weights.iter().sum();
    if total > MAX_SEQUENCE {
        weights = weights
            .iter()
            .map(|w| (w * MAX_SEQUENCE / total).max(1))
            .collect();
    }
    let total: i64 = weights.iter().sum::<u64>() as i64;
    let mut current = vec![0i64; weights.len()];
    (0..total)
        .map(|_| {
            for (c, w) in current.iter_mut().zip(&weights) {
                *c += *w as i64;
            }
            let (best, _) = current
                .iter()
                .enumerate()
                .max_by_key(|&(i, c)| (*c, std::cmp::Reverse(i)))
                .expect("weights is not empty");
            current[best] -= total;
            best as u32
        })
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Algorithm;
    use crate::routing::balance::Balancer;
    use crate::routing::balance::testing::{backends, first_counts};

    #[test]
    fn shares_follow_weights() {
        let pool = backends(&[5, 1, 1]);
        let b = Balancer::build(&Algorithm::WeightedRoundRobin, &pool);
        assert_eq!(first_counts(&b, &pool, 700), vec![500, 100, 100]);
    }

    #[test]
    fn the_heavy_backend_is_not_picked_in_a_burst() {
        // nginx's documented example: weights 5,1,1 give a a b a c a a, never five a's in a row.
        assert_eq!(smooth_sequence(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn huge_weights_are_scaled_but_keep_their_ratio() {
        let seq = smooth_sequence(&[10_000 * 7, 10_000 * 3 + 1]);
        assert!(seq.len() as u64 <= MAX_SEQUENCE);
        let zeros = seq.iter().filter(|&&i| i == 0).count() as f64 / seq.len() as f64;
        assert!((0.69..0.71).contains(&zeros), "share {zeros}");
    }
}
