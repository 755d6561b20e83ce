//! The data plane: the request path from client to backend and back.
//!
//! It reads the route table and pool snapshots (one `arc-swap` load each), bumps per-backend
//! atomics, and never awaits an actor mailbox. Modules: [`http`] (the handler), [`websocket`] (WebSocket
//! sessions), [`region`] (moving a request to another region), [`error`]. The
//! client side toward backends is [`crate::upstream`]; policies are in [`crate::policy`].

pub mod error;
pub mod http;
pub mod region;
pub mod websocket;

pub use self::http::{ProxyState, handle};
