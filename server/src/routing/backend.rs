//! One backend as a pool snapshot holds it: its identity and address, its state (health
//! verdict, drain, ejection) and its live counters ([`BackendStats`], shared by every snapshot
//! of the same backend). Below the balancers, which choose among these entries.

use std::net::SocketAddr;
use std::sync::Arc;

use http::uri::Authority;

use super::stats::BackendStats;

/// Whether a backend takes new requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendState {
    /// Passed its health checks: takes new requests.
    Up,
    /// Failed its health checks.
    Down,
    /// Not checked yet (health `initial = "unknown"`).
    Unknown,
    /// Taken out by passive outlier detection until its ejection ends and a check passes.
    Ejected,
    /// Healthy, but its load report says it is at capacity: no new work.
    Overloaded,
    /// An operator drains it: no new work; its sessions are being moved.
    Draining,
    /// Drained: no new work, nothing left on it.
    Drained,
}

impl BackendState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Up => "up",
            BackendState::Down => "down",
            BackendState::Unknown => "unknown",
            BackendState::Ejected => "ejected",
            BackendState::Overloaded => "overloaded",
            BackendState::Draining => "draining",
            BackendState::Drained => "drained",
        }
    }

    /// Taken out by an operator: never a candidate, not even in panic mode, and not counted
    /// when panic mode weighs how many are up.
    pub fn is_drained(self) -> bool {
        matches!(self, BackendState::Draining | BackendState::Drained)
    }
}

/// What a backend's health looks like apart from an operator's drain (for the admin API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// The active checks' verdict: `Up`, `Down` or `Unknown`.
    pub checks: BackendState,
    /// Passing its checks again but held down by flap damping.
    pub held_down: bool,
    /// Ramping up after it (re)joined: its weight is below the configured one for a while.
    pub slow_start: bool,
    /// Its weight in the config (or as last set through the admin API).
    pub configured_weight: u32,
    /// Its effective weight as a percent of `configured_weight` (below 100 while slow start
    /// ramps it or a load report scales it down).
    pub weight_percent: u32,
    /// An operator's drain under way: when whatever is left is closed (none once drained).
    pub drain_deadline: Option<crate::clock::Instant>,
    pub ejected: bool,
    pub overloaded: bool,
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
    pub health: Health,
    pub stats: Arc<BackendStats>,
    /// How to speak TLS to it (its pool's `tls`); `None`: plain TCP.
    pub tls: Option<Arc<crate::upstream::tls::BackendTls>>,
    /// HTTP/1.1 or HTTP/2 (its pool's `protocol`).
    pub protocol: crate::upstream::UpstreamProtocol,
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
            health: Health {
                checks: state,
                held_down: false,
                slow_start: false,
                configured_weight: weight,
                weight_percent: 100,
                drain_deadline: None,
                ejected: state == BackendState::Ejected,
                overloaded: state == BackendState::Overloaded,
            },
            stats,
            tls: None,
            protocol: crate::upstream::UpstreamProtocol::Http1,
        }
    }

    pub fn with_protocol(mut self, protocol: crate::upstream::UpstreamProtocol) -> BackendEntry {
        self.protocol = protocol;
        self
    }

    pub fn with_tls(mut self, tls: Option<Arc<crate::upstream::tls::BackendTls>>) -> BackendEntry {
        self.tls = tls;
        self
    }

    pub fn with_health(mut self, health: Health) -> BackendEntry {
        self.health = health;
        self
    }
}
