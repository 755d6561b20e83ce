//! Switchyard's own HTTP/1.1 client side: how the request path talks to backends.
//!
//! Why not hyper-util's client (which the router used first): it runs every connection as a
//! separate task fed through a channel, takes a pool lock per request and needs the request
//! converted into `http` 1 types. Here one connection is driven by the request's own task on
//! the worker that accepted it: the request head is written straight from actix-web's header
//! map, the answer's head is parsed with `httparse` into actix-web's types without copying
//! values, and the body is read by the response body itself, which hands the connection back
//! to this worker's pool when the answer is complete. Profiles and numbers: docs/BENCHMARKS.md.
//!
//! - [`pool`]: per-worker keep-alive pool, checked for liveness on checkout.
//! - [`codec`]: request-head writing, response-head parsing, chunked decoding (pure, tested).
//! - [`exchange`]: connect, send a request, read the answer's head, with the stale-connection
//!   retry every keep-alive client needs.
//! - [`body`]: the answer's body streamed to the client.
//! - [`stream`]: the connection itself, plain TCP or TLS (a pool with `tls`).

pub mod body;
pub mod codec;
pub mod exchange;
pub mod pool;
pub mod stream;

pub use body::UpstreamBody;
pub use codec::{Framing, RequestFraming, ResponseHead};
pub use exchange::{ExchangeError, exchange};
pub use stream::BackendStream;
