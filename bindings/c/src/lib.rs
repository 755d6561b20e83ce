//! The Switchyard client SDK for C: a small, stable C ABI over the Rust SDK, so a player in C
//! or C++ gets the same region failover, retries under a budget and sessions that survive
//! drains as a Rust one — the SDK does the work, this crate only translates.
//!
//! - [`client`]: `sy_client_new` (the SDK's config as JSON), `sy_client_free`, `sy_request`
//!   and the response accessors.
//! - [`session`]: WebSocket sessions — open, send, poll the next event (no callbacks into C),
//!   close — and the event accessors.
//! - [`error`]: an error is a stable integer kind, a retryable flag and a message
//!   ([`error_access`]: what C reads of it).
//! - [`handle`]: every object C holds is an opaque pointer checked against the live ones, so a
//!   pointer freed twice, freed and used, or of the wrong type is an error, not a crash.
//!
//! Every function catches panics ([`guard`]) and returns them as `SY_ERR_PANIC`. Ownership:
//! whatever a `sy_*_new`, `sy_*_open`, `sy_request` or `sy_session_next_event` hands out is the
//! caller's, freed with its `sy_*_free` (or `sy_session_close`); strings and bytes returned by
//! accessors belong to the object they come from and live as long as it does.

// Every exported function takes raw pointers from C by design: they cannot be `unsafe fn`s
// for C, and each one checks its pointers (NULL, live handle) before the one `unsafe` block
// that reads them, with its `// SAFETY:` line.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod args;
pub mod client;
pub mod error;
pub mod error_access;
pub mod guard;
pub mod handle;
pub mod session;

pub use client::{sy_header, sy_response};
pub use error::sy_error;
pub use session::{sy_event, sy_session};
