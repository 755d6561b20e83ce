//! State shared between the planes: the route table, pool snapshots and per-backend atomics.
//! Actors write it; the request path only reads it (and bumps atomics).
//!
//! Inside, from the bottom: per-backend counters ([`stats`]) and entries ([`backend`]), the
//! balancers that order a pool's entries ([`balance`]), the snapshots that hold entries and a
//! balancer ([`snapshot`]), and the route table over the pools ([`table`]).

pub mod backend;
pub mod balance;
pub mod handoff;
pub mod outcomes;
pub mod sessions;
pub mod shadow;
pub mod snapshot;
pub mod split;
pub mod stats;
pub mod table;

pub use backend::{BackendEntry, BackendState, Health};
pub use handoff::{CloseSession, MoveTo};
pub use sessions::SessionRegistry;
pub use snapshot::{PoolHandle, PoolSnapshot};
pub use split::{Split, Variant};
pub use stats::{BackendStats, InflightGuard, PeakEwma};
pub use table::{Route, RouteTable};
