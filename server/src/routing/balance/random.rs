//! Random choice, weighted when weights differ. Stateless across requests: no shared counter
//! to contend on, which is why `/search` uses it.

use std::sync::Arc;

use crate::routing::backend::BackendEntry;

#[derive(Debug)]
pub struct Random {
    /// Running weight totals when weights differ; `None` for a uniform choice.
    cumulative: Option<Vec<u64>>,
}

impl Random {
    pub fn new(backends: &[Arc<BackendEntry>]) -> Random {
        let uniform = backends.windows(2).all(|w| w[0].weight == w[1].weight);
        let cumulative = (!uniform).then(|| {
            backends
                .iter()
                .scan(0u64, |sum, b| {
                    *sum += u64::from(b.weight.max(1));
                    Some(*sum)
                })
                .collect()
        });
        Random { cumulative }
    }

    pub fn first(&self, len: usize) -> usize {
        match &self.cumulative {
            None => fastrand::usize(..len),
            Some(cumulative) => {
                let total = *cumulative.last().expect("built from a non-empty pool");
                let ticket = fastrand::u64(..total);
                cumulative.partition_point(|&c| c <= ticket).min(len - 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Algorithm;
    use crate::routing::balance::Balancer;
    use crate::routing::balance::testing::{backends, first_counts};

    #[test]
    fn uniform_within_tolerance() {
        let pool = backends(&[1, 1, 1, 1]);
        let b = Balancer::build(&Algorithm::Random, &pool);
        for count in first_counts(&b, &pool, 20_000) {
            // Expected 5,000 each; 4.5 standard deviations is about 275.
            assert!((4_700..5_300).contains(&count), "count {count}");
        }
    }

    #[test]
    fn weighted_when_weights_differ() {
        let pool = backends(&[3, 1]);
        let b = Balancer::build(&Algorithm::Random, &pool);
        let counts = first_counts(&b, &pool, 20_000);
        assert!((14_700..15_300).contains(&counts[0]), "counts {counts:?}");
    }
}
