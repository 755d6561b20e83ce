//! State shared between the planes: the route table, pool snapshots and per-backend atomics.
//! Actors write it; the request path only reads it (and bumps atomics).

pub mod handoff;
pub mod sessions;
pub mod snapshot;
pub mod stats;
pub mod table;

pub use handoff::{CloseSession, MoveTo};
pub use sessions::SessionRegistry;
pub use snapshot::{BackendEntry, BackendState, Health, PoolHandle, PoolSnapshot};
pub use stats::{BackendStats, InflightGuard, PeakEwma};
pub use table::{Route, RouteTable};
