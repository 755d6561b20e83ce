//! What a pool knows of each backend: its address, weight, the checks' verdict, ejection,
//! load report, slow start, an operator's drain, and the live counters the request path keeps.

use crate::clock::Instant;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::SpawnHandle;

use crate::routing::{BackendState, BackendStats};
use crate::upstream::tls::BackendTls;

pub(super) struct Member {
    pub(super) id: Arc<str>,
    pub(super) addr: SocketAddr,
    pub(super) weight: u32,
    /// What the backend's active checks say (`Up`, `Down` or `Unknown`).
    pub(super) health: BackendState,
    /// Set while passively ejected.
    pub(super) ejected_until: Option<Instant>,
    pub(super) times_ejected: u32,
    /// When the backend last came back from an ejection (to forgive old ejections).
    pub(super) back_since: Option<Instant>,
    /// When it (re)joined, while its slow start lasts.
    pub(super) joined_at: Option<Instant>,
    /// From its load report: share of its weight to use (percent), and whether it is full.
    pub(super) load_percent: u32,
    pub(super) overloaded: bool,
    pub(super) stats: Arc<BackendStats>,
    /// An operator's drain, from the request until `undrain`.
    pub(super) drain: Option<DrainState>,
    /// Held down by flap damping (its checks pass, it stays down a while).
    pub(super) held_down: bool,
    /// Leaving the pool (removed by a reload or the admin API): dropped once drained.
    pub(super) removing: bool,
    /// Its pool's TLS settings for it (kept across publications, so the keep-alive pool's
    /// key stays the same); `None`: plain TCP.
    pub(super) tls: Option<Arc<BackendTls>>,
}

/// A drain under way (or done).
pub(super) struct DrainState {
    pub(super) started: Instant,
    pub(super) deadline: Instant,
    /// Every session listed when the drain began has been asked to close.
    pub(super) spread_done: bool,
    /// Nothing is left on the backend: it shows `drained`.
    pub(super) drained: bool,
    /// The spread closes and the deadline sweep, cancelled by `undrain`.
    pub(super) tasks: Vec<SpawnHandle>,
}

impl Member {
    pub(super) fn new(
        id: Arc<str>,
        addr: SocketAddr,
        weight: u32,
        health: BackendState,
        stats: Arc<BackendStats>,
        tls: Option<Arc<BackendTls>>,
    ) -> Member {
        Member {
            id,
            addr,
            weight,
            health,
            ejected_until: None,
            times_ejected: 0,
            back_since: None,
            joined_at: None,
            load_percent: 100,
            overloaded: false,
            stats,
            drain: None,
            held_down: false,
            removing: false,
            tls,
        }
    }

    /// An operator's drain says most; then failed checks, an ejection, a full backend, and
    /// the checks' verdict.
    pub(super) fn state(&self) -> BackendState {
        if let Some(drain) = &self.drain {
            return match drain.drained {
                true => BackendState::Drained,
                false => BackendState::Draining,
            };
        }
        match (self.health, self.ejected_until) {
            (BackendState::Down, _) => BackendState::Down,
            (_, Some(_)) => BackendState::Ejected,
            (BackendState::Up, None) if self.overloaded => BackendState::Overloaded,
            (health, None) => health,
        }
    }
}
