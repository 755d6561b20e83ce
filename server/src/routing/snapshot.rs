//! Immutable pool snapshots: what the request path reads, what pool actors publish.
//!
//! A [`PoolHandle`] holds the current [`PoolSnapshot`] behind `arc-swap`: readers take it with
//! one atomic load and never block; the owning `PoolActor` replaces it whole when membership,
//! addresses or states change. Live counters ([`BackendStats`]) are shared by every snapshot of
//! the same backend, so they survive republication.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use http::uri::Authority;

use super::stats::BackendStats;
use crate::balance::Balancer;
use crate::config::Algorithm;

/// Whether a backend takes new requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendState {
    /// Takes new requests.
    Up,
    /// Takes nothing new (failed checks, ejected, or unresolvable).
    Down,
}

impl BackendState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Up => "up",
            BackendState::Down => "down",
        }
    }
}

/// One backend as the request path sees it at one moment.
#[derive(Debug)]
pub struct BackendEntry {
    pub id: Arc<str>,
    pub addr: SocketAddr,
    /// `addr` as a URI authority, built once per snapshot instead of once per request.
    pub authority: Authority,
    pub weight: u32,
    pub state: BackendState,
    pub stats: Arc<BackendStats>,
}

impl BackendEntry {
    pub fn new(
        id: Arc<str>,
        addr: SocketAddr,
        weight: u32,
        state: BackendState,
        stats: Arc<BackendStats>,
    ) -> BackendEntry {
        let authority = Authority::try_from(addr.to_string().as_str())
            .expect("a socket address is always a valid authority");
        BackendEntry {
            id,
            addr,
            authority,
            weight,
            state,
            stats,
        }
    }
}

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
}

impl PoolSnapshot {
    pub fn build(
        version: u64,
        backends: Vec<Arc<BackendEntry>>,
        algorithm: &Algorithm,
    ) -> PoolSnapshot {
        let eligible: Vec<_> = backends
            .iter()
            .filter(|b| b.state == BackendState::Up)
            .cloned()
            .collect();
        let balancer = Balancer::build(algorithm, &eligible);
        PoolSnapshot {
            version,
            backends,
            eligible,
            balancer,
        }
    }
}

/// The published snapshot of one pool.
#[derive(Debug)]
pub struct PoolHandle {
    pub id: Arc<str>,
    pub algorithm: Algorithm,
    current: ArcSwap<PoolSnapshot>,
}

impl PoolHandle {
    pub fn new(id: Arc<str>, algorithm: Algorithm, first: PoolSnapshot) -> PoolHandle {
        PoolHandle {
            id,
            algorithm,
            current: ArcSwap::from_pointee(first),
        }
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
