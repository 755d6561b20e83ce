//! The data plane: the request path from client to backend and back.
//!
//! It reads the route table and pool snapshots (one `arc-swap` load each), bumps per-backend
//! atomics, and never awaits an actor mailbox. One pipeline ([`pipeline`]: admit → route →
//! limits → place → choose upstream → exchange / upgrade → classify → log) serves both entry
//! points: [`http`] (the public listener's handler, exchanging through [`forward`]) and
//! [`websocket`] (upgrades, relayed by a session actor). [`region`]: the public region
//! endpoints and the overflow decision; [`shadow`]: requests mirrored to a route's shadow
//! pool; [`error`]: the request path's error and the router's
//! own answers; [`state`]: what a listener's workers share. The client side toward backends
//! is [`crate::upstream`]; policies are in [`crate::policy`].

pub mod error;
pub mod forward;
pub mod http;
pub mod pipeline;
pub mod region;
pub mod shadow;
pub mod state;
pub mod websocket;

pub use self::http::handle;
pub use self::state::ProxyState;
