//! The data plane: the request path from client to backend and back.
//!
//! It reads the route table and pool snapshots (one `arc-swap` load each), bumps per-backend
//! atomics, and never awaits an actor mailbox. Modules: [`http`] (the handler), [`upstream`]
//! (backend connection pools), [`body`] (streamed bodies), [`headers`], [`error`].

pub mod body;
pub mod error;
pub mod headers;
pub mod http;
pub mod upstream;

pub use self::http::{ProxyState, handle};
