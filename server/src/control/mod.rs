//! The control plane: actix actors that own every piece of mutable routing state.
//!
//! ```text
//! RouterSupervisor          starts the tree, keeps the metrics exporter tidy
//!  ├─ RegionActor           the local region: its pools
//!  ├─ RemoteRegionActor     one per remote region: probes its routers (/v1/status)
//!      └─ PoolActor         one per pool: membership, publishes PoolSnapshots
//!          └─ BackendActor  one per backend: health checks, address re-resolution
//!  └─ Rollouts             this node's canary rollouts (shared through Redis)
//!      └─ RolloutActor      one per rollout: applies its weights, reports and judges
//! SessionActor              one per live WebSocket session: runs its relay, obeys CloseSession
//! ```
//! Actors never sit on the request path: they publish immutable snapshots through `arc-swap`
//! (see [`crate::routing`]) and the request path reads those. Children run under actix
//! [`Supervisor`](actix::Supervisor)s; a panic inside a handler is caught by [`guard`], logged,
//! and turned into a stop, which the supervisor answers with a restart.

pub mod backend;
pub mod guard;
pub mod pool;
pub mod region;
pub mod reload;
pub mod remote;
pub mod rollout;
pub mod session;
pub mod supervisor;

pub use backend::{BackendActor, BackendChanged};
pub use guard::{GetRestarts, InjectPanic};
pub use pool::PoolActor;
pub use region::RegionActor;
pub use session::{CloseSession, SessionActor, SessionTimers};
pub use supervisor::RouterSupervisor;
