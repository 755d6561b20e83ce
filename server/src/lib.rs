//! Switchyard: a streaming session router.
//!
//! - [`control`]: the control plane, actix actors that own routing state.
//! - [`proxy`]: the data plane, the request path; reads snapshots, never awaits a mailbox.
//! - [`routing`]: what the two share: route table, pool snapshots, per-backend atomics.
//! - [`routing::balance`]: the six balancers; [`health`]: active checks and outlier ejection.
//! - [`config`]: the TOML file, parsed and validated into typed config.
//! - [`session`]: sticky sessions (tokens, store).
//! - [`upstream::tls`]: TLS from the router to backends (a pool's CA file and server name).
//! - [`server`]: start and stop a router; `demo` (cargo feature `demo`, on by default): the
//!   newcomer's first run.
#![forbid(unsafe_code)]

pub mod admin;
pub mod clock;
pub mod config;
pub mod conn;
pub mod control;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod h2_frames;
pub mod headers;
pub mod health;
pub mod lifecycle;
pub mod logging;
pub mod policy;
pub mod probe;
pub mod proxy;
pub mod proxy_protocol;
pub mod redis_conn;
pub mod regions;
pub mod relay;
pub mod routing;
pub mod server;
pub mod session;
pub mod startup;
pub mod telemetry;
pub mod tls;
pub mod upstream;

pub use config::Config;
pub use error::Error;
pub use server::{RouterHandle, start};
pub use startup::StartupError;
