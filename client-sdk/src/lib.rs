//! Switchyard's client SDK: what a streaming app links to talk to Switchyard routers.
//!
//! - Requests ([`Client::request`], [`Client::get`], [`Client::post`]) carry the router's
//!   session id, retry only where safe (idempotent methods or an explicit opt-in; connect
//!   failures and the router's "this region cannot serve" answers for any method), wait with
//!   full-jitter exponential backoff (honouring `Retry-After`), spend a retry budget so an
//!   outage cannot multiply load, and fail over to the next region when a region's circuit
//!   breaker opens or it says it cannot serve.
//! - Sessions ([`Client::session`]) are WebSocket sessions that reconnect with the same
//!   session id, paced by the router's close codes ([`pacing::reconnect_delay`]), re-send what
//!   a handoff says did not arrive and hand back what nothing confirms, and detect dead
//!   connections by ping and write timeouts. [`blocking`] wraps both for code without a
//!   runtime.
//!
//! Defaults are documented on [`ClientConfig`]; `docs/SDK.md` has the failure semantics.

pub mod backoff;
pub mod blocking;
pub mod breaker;
pub mod budget;
pub mod client;
pub mod close;
mod config;
mod connector;
mod directory;
pub mod error;
mod exchange;
pub mod message;
pub mod pacing;
mod region;
mod replay;
mod request;
mod retry_after;
pub mod session;
mod stream;
pub mod telemetry;
pub mod tls;

pub use backoff::Backoff;
pub use breaker::BreakerConfig;
pub use budget::BudgetConfig;
pub use client::{
    Client, ClientBuilder, ClientConfig, RegionConfig, Request, Response, SessionPersistence,
    StatsSnapshot, StreamingResponse,
};
pub use close::{CloseInfo, Handoff};
pub use error::{Error, ErrorKind};
pub use message::Message;
pub use pacing::{Cause, PacingConfig, ReconnectAttempt, ReconnectHook, reconnect_delay};
pub use session::{Event, Session};
pub use tls::{Roots, TlsConfig};
