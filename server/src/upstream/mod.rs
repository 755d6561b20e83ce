//! The router's client side toward backends, used by the request path, health checks and
//! WebSocket sessions alike: [`h1`] (HTTP/1.1 connections, pool, framing, streamed bodies),
//! [`tls`] (TLS to backends: a pool's CA file and server name) and [`ws`] (the WebSocket
//! handshake that hands a session's raw connection to the relay).

pub mod h1;
pub mod tls;
pub mod ws;

use std::time::Duration;

/// How long an exchange with a backend may take, step by step (a route's `timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect and, for a TLS pool, the handshake.
    pub connect: Duration,
    /// From the request sent to the answer's head.
    pub response: Duration,
    /// Longest silence of either side while a body streams (and a WebSocket session is open).
    pub idle: Duration,
}
