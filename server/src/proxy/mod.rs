//! The data plane: the request path from client to backend and back.
//!
//! It reads the route table and pool snapshots (one `arc-swap` load each), bumps per-backend
//! atomics, and never awaits an actor mailbox. Modules: [`http`] (the handler), [`h1`] (the
//! HTTP/1.1 client side: pool, framing, streamed bodies), [`retry`] (retry budgets), [`websocket`] (WebSocket sessions), [`headers`],
//! [`error`].

pub mod error;
pub mod h1;
pub mod headers;
pub mod http;
pub mod ratelimit;
pub mod region;
pub mod retry;
pub mod shed;
pub mod websocket;

pub use self::http::{ProxyState, handle};
