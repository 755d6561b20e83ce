//! Consistent hashing on a ring (ketama style): each backend owns many points on a 64-bit
//! ring, a key goes to the owner of the first point at or after its hash. Adding or removing
//! one backend of N moves about 1/N of the keys, all to or from that backend. The key is the
//! client IP or a named header (chosen per pool; see `config::HashKey`).

use std::sync::Arc;

use super::hash::hash_bytes;
use crate::routing::backend::BackendEntry;

/// Ring points per unit of weight: enough that shares stay within a few percent of even.
pub const POINTS_PER_WEIGHT: usize = 160;
/// Most points one backend may own, whatever its weight.
pub const MAX_POINTS_PER_BACKEND: usize = 16 * 1024;

#[derive(Debug)]
pub struct ConsistentHash {
    /// (point, index into the eligible list), sorted by point.
    ring: Vec<(u64, u32)>,
}

impl ConsistentHash {
    pub fn new(backends: &[Arc<BackendEntry>]) -> ConsistentHash {
        let mut ring = Vec::new();
        for (i, b) in backends.iter().enumerate() {
            let points = (b.weight.max(1) as usize * POINTS_PER_WEIGHT).min(MAX_POINTS_PER_BACKEND);
            // Points come from the backend's id, not its address or position, so a backend
            // keeps its keys when others come and go or when its address is re-resolved.
            let mut label = Vec::with_capacity(b.id.len() + 8);
            for p in 0..points {
                label.clear();
                label.extend_from_slice(b.id.as_bytes());
                label.push(b'#');
                label.extend_from_slice(&(p as u32).to_le_bytes());
                ring.push((hash_bytes(&label), i as u32));
            }
        }
        ring.sort_unstable();
        ConsistentHash { ring }
    }

    /// Owner of `key` (a hash from [`hash_bytes`]).
    pub fn first(&self, len: usize, key: u64) -> usize {
        if self.ring.is_empty() {
            return 0;
        }
        let at = self.ring.partition_point(|&(point, _)| point < key);
        let (_, owner) = self.ring[at % self.ring.len()];
        (owner as usize).min(len - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Algorithm, HashKey};
    use crate::routing::balance::Balancer;
    use crate::routing::balance::testing::{backends, named};

    fn owners(pool: &[Arc<BackendEntry>], keys: usize) -> Vec<String> {
        let b = Balancer::build(&Algorithm::ConsistentHash(HashKey::ClientIp), pool);
        (0..keys)
            .map(|k| {
                let key = hash_bytes(format!("viewer-{k}").as_bytes());
                pool[b.candidates(pool, key).next().unwrap()].id.to_string()
            })
            .collect()
    }

    #[test]
    fn the_same_key_always_lands_on_the_same_backend() {
        let pool = backends(&[1, 1, 1]);
        assert_eq!(owners(&pool, 1_000), owners(&pool, 1_000));
    }

    #[test]
    fn adding_one_backend_of_n_moves_about_one_nth_of_keys_all_to_it() {
        let keys = 20_000;
        let ten = backends(&[1; 10]);
        let before = owners(&ten, keys);
        let mut eleven = ten.clone();
        eleven.push(named("b10", 1));
        let after = owners(&eleven, keys);
        let moved: Vec<_> = (0..keys).filter(|&k| before[k] != after[k]).collect();
        let share = moved.len() as f64 / keys as f64;
        // Ideal 1/11 = 0.091.
        assert!((0.06..0.12).contains(&share), "moved {share}");
        assert!(
            moved.iter().all(|&k| after[k] == "b10"),
            "keys moved between old backends"
        );
    }

    #[test]
    fn removing_one_backend_moves_only_its_keys() {
        let keys = 20_000;
        let ten = backends(&[1; 10]);
        let before = owners(&ten, keys);
        let nine: Vec<_> = ten.iter().filter(|b| &*b.id != "b3").cloned().collect();
        let after = owners(&nine, keys);
        for k in 0..keys {
            if before[k] != "b3" {
                assert_eq!(
                    before[k], after[k],
                    "key {k} moved though its backend stayed"
                );
            }
        }
        let share = before.iter().filter(|o| *o == "b3").count() as f64 / keys as f64;
        assert!((0.06..0.14).contains(&share), "b3 owned {share}");
    }

    #[test]
    fn shares_are_roughly_even() {
        let pool = backends(&[1; 5]);
        let owners = owners(&pool, 50_000);
        for b in &pool {
            let share = owners.iter().filter(|o| **o == *b.id).count() as f64 / 50_000.0;
            assert!((0.15..0.25).contains(&share), "{} owns {share}", b.id);
        }
    }
}
