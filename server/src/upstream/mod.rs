//! The router's client side toward backends, used by the request path, health checks and
//! WebSocket sessions alike: [`h1`] (HTTP/1.1 connections, pool, framing, streamed bodies) and
//! [`tls`] (TLS to backends: a pool's CA file and server name).

pub mod h1;
pub mod tls;
