//! Immutable pool snapshots: what the request path reads, what pool actors publish.
//!
//! A [`PoolHandle`] holds the current [`PoolSnapshot`] behind `arc-swap`: readers take it with
//! one atomic load and never block; the owning `PoolActor` replaces it whole when membership,
//! addresses or states change. Live counters ([`super::BackendStats`]) are shared by every snapshot of
//! the same backend, so they survive republication.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use super::backend::{BackendEntry, BackendState};
use super::balance::Balancer;
use super::sessions::SessionRegistry;
use crate::config::Algorithm;
use crate::policy::shed::Shedder;

/// A pool's membership at one moment, with the balancer built over its eligible backends.
#[derive(Debug)]
pub struct PoolSnapshot {
    /// Increases with every publication.
    pub version: u64,
    /// Every member, in configuration order.
    pub backends: Vec<Arc<BackendEntry>>,
    /// Members that take new requests, in configuration order: what balancers choose from.
    pub eligible: Vec<Arc<BackendEntry>>,
    pub balancer: Balancer,
    /// True when too few backends are up and the pool routes across all of them.
    pub panic: bool,
    /// True when nobody takes requests because every candidate is overloaded (not failing).
    pub overloaded: bool,
}

impl PoolSnapshot {
    /// Who takes requests:
    /// - normally the backends that are `Up`;
    /// - in panic (fewer than `panic_threshold` percent up, but some): every backend that is
    ///   not overloaded, so the few left are not crushed by the whole load (Envoy's panic mode);
    /// - none up: the `Unknown` ones if any (a pool whose first checks are still running tries
    ///   them rather than fail), else nobody — requests get 503 `no_healthy_backend`.
    ///
    /// `ramping`: some backend is in slow start, its weight lowered; round robin then balances
    /// by weight (smoothly) until the ramp ends.
    pub fn build(
        version: u64,
        backends: Vec<Arc<BackendEntry>>,
        algorithm: &Algorithm,
        panic_threshold: u32,
        ramping: bool,
    ) -> PoolSnapshot {
        // Drained backends are out of the pool for every purpose but being listed.
        let active: Vec<_> = backends.iter().filter(|b| !b.state.is_drained()).collect();
        let up = active
            .iter()
            .filter(|b| b.state == BackendState::Up)
            .count();
        // A full backend is not a failed one: it does not count towards panic.
        let full = active
            .iter()
            .filter(|b| b.state == BackendState::Overloaded)
            .count();
        let panic = up > 0 && up * 100 < panic_threshold as usize * (active.len() - full);
        let pick = |keep: &dyn Fn(BackendState) -> bool| -> Vec<Arc<BackendEntry>> {
            active
                .iter()
                .filter(|b| keep(b.state))
                .map(|b| Arc::clone(b))
                .collect()
        };
        let eligible = if panic {
            pick(&|s| s != BackendState::Overloaded)
        } else if up > 0 {
            pick(&|s| s == BackendState::Up)
        } else {
            pick(&|s| s == BackendState::Unknown)
        };
        let balancer = match algorithm {
            Algorithm::RoundRobin if ramping => {
                Balancer::build(&Algorithm::WeightedRoundRobin, &eligible)
            }
            _ => Balancer::build(algorithm, &eligible),
        };
        let overloaded =
            eligible.is_empty() && active.iter().any(|b| b.state == BackendState::Overloaded);
        PoolSnapshot {
            version,
            backends,
            eligible,
            balancer,
            panic,
            overloaded,
        }
    }
}

/// The published snapshot of one pool.
#[derive(Debug)]
pub struct PoolHandle {
    pub id: Arc<str>,
    /// Balancer and panic threshold; changed by a reload (control plane only: the request
    /// path reads the balancer built into each snapshot).
    settings: std::sync::Mutex<(Algorithm, u32)>,
    /// The pool's live sessions by backend (what a drain closes).
    pub sessions: SessionRegistry,
    /// Load shedding: the limit and the requests admitted under it.
    pub shed: Arc<Shedder>,
    current: ArcSwap<PoolSnapshot>,
}

impl PoolHandle {
    pub fn new(
        id: Arc<str>,
        algorithm: Algorithm,
        panic_threshold: u32,
        backends: Vec<Arc<BackendEntry>>,
    ) -> PoolHandle {
        let first = PoolSnapshot::build(1, backends, &algorithm, panic_threshold, false);
        PoolHandle {
            id,
            settings: std::sync::Mutex::new((algorithm, panic_threshold)),
            sessions: SessionRegistry::default(),
            shed: Arc::default(),
            current: ArcSwap::from_pointee(first),
        }
    }

    /// A snapshot of `backends` with this pool's balancer and panic threshold.
    pub fn snapshot(
        &self,
        version: u64,
        backends: Vec<Arc<BackendEntry>>,
        ramping: bool,
    ) -> PoolSnapshot {
        let (algorithm, panic_threshold) = self.settings();
        PoolSnapshot::build(version, backends, &algorithm, panic_threshold, ramping)
    }

    /// Load shedding settings (from the config; a reload changes them).
    pub fn set_shedding(&self, max_inflight: Option<u32>, queue_timeout: std::time::Duration) {
        self.shed.set(max_inflight, queue_timeout);
    }

    /// The pool's balancer and panic threshold now.
    pub fn settings(&self) -> (Algorithm, u32) {
        self.settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.settings().0
    }

    /// A reload changed the balancer or panic threshold; the next publication uses them.
    pub fn set_settings(&self, algorithm: Algorithm, panic_threshold: u32) {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner()) = (algorithm, panic_threshold);
    }

    /// The current snapshot: one atomic load, never blocks.
    pub fn load(&self) -> Guard<Arc<PoolSnapshot>> {
        self.current.load()
    }

    /// A counted reference to the current snapshot, for holders that outlive a request.
    pub fn load_full(&self) -> Arc<PoolSnapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot; requests already holding the old one finish with it.
    pub fn publish(&self, next: PoolSnapshot) {
        self.current.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::BackendStats;

    fn pool(states: &[BackendState]) -> Vec<Arc<BackendEntry>> {
        states
            .iter()
            .enumerate()
            .map(|(i, &state)| {
                let id = format!("b{i}");
                Arc::new(BackendEntry::new(
                    id.as_str().into(),
                    "127.0.0.1:1".parse().unwrap(),
                    1,
                    state,
                    Arc::new(BackendStats::new("p", &id, &[])),
                ))
            })
            .collect()
    }

    fn eligible(states: &[BackendState], threshold: u32) -> (Vec<String>, bool) {
        let snap = PoolSnapshot::build(1, pool(states), &Algorithm::RoundRobin, threshold, false);
        (
            snap.eligible.iter().map(|b| b.id.to_string()).collect(),
            snap.panic,
        )
    }

    use BackendState::{Down, Ejected, Overloaded, Unknown, Up};

    #[test]
    fn overloaded_backends_take_nothing_new_even_in_panic() {
        assert_eq!(eligible(&[Up, Overloaded], 0), (vec!["b0".into()], false));
        let (ids, panic) = eligible(&[Up, Overloaded, Down, Down, Down], 50);
        assert!(panic);
        assert_eq!(ids, vec!["b0", "b2", "b3", "b4"]);
        let (_, panic) = eligible(&[Up, Overloaded, Overloaded, Down], 50);
        assert!(!panic, "full backends do not count as failed");
        let snap = PoolSnapshot::build(
            1,
            pool(&[Overloaded, Down]),
            &Algorithm::RoundRobin,
            50,
            false,
        );
        assert!(snap.eligible.is_empty() && snap.overloaded);
    }

    #[test]
    fn only_up_backends_take_requests_normally() {
        assert_eq!(
            eligible(&[Up, Down, Up, Ejected], 50),
            (vec!["b0".into(), "b2".into()], false)
        );
    }

    #[test]
    fn below_the_panic_threshold_every_backend_takes_requests() {
        let (ids, panic) = eligible(&[Up, Down, Down, Ejected], 50);
        assert!(panic);
        assert_eq!(ids.len(), 4);
        let (_, panic) = eligible(&[Up, Down, Down, Ejected], 0);
        assert!(!panic, "a threshold of 0 disables panic routing");
    }

    #[test]
    fn with_nothing_up_unknown_backends_are_tried_and_down_ones_never() {
        assert_eq!(eligible(&[Unknown, Down], 50), (vec!["b0".into()], false));
        assert_eq!(eligible(&[Down, Ejected], 50), (vec![], false));
    }
}
