//! The router's client side toward backends, used by the request path, health checks and
//! WebSocket sessions alike: [`h1`] (HTTP/1.1 connections, pool, framing, streamed bodies),
//! [`h2`] (HTTP/2 to pools with `protocol = "h2"`: multiplexed connections, trailers),
//! [`tls`] (TLS to backends: a pool's CA file and server name) and [`ws`] (the WebSocket
//! handshake that hands a session's raw connection to the relay).

pub mod h1;
pub mod h2;
pub mod tls;
pub mod ws;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;

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

/// What a pool's backends speak (`pools[].protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (default): one request at a time per pooled connection.
    #[default]
    Http1,
    /// HTTP/2: ALPN `h2` over TLS, prior knowledge over plain TCP; requests multiplexed on
    /// one connection per backend and worker.
    H2,
}

/// What an answer's body holds for its request, told of each piece of the answer as it goes
/// out (the access log counts the bytes). Holders that need not know take the default.
pub trait Holder: Unpin {
    fn sent(&mut self, _bytes: usize) {}
}

/// A backend's answer body on its way to the client, from either protocol's client.
pub enum AnswerBody<G> {
    H1(h1::UpstreamBody<G>),
    H2(h2::ResponseBody<G>),
}

impl<G> AnswerBody<G> {
    /// What the body holds for its request, to add to it.
    pub fn held_mut(&mut self) -> &mut G {
        match self {
            AnswerBody::H1(body) => body.held_mut(),
            AnswerBody::H2(body) => body.held_mut(),
        }
    }
}

impl<G: Holder> MessageBody for AnswerBody<G> {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        match self {
            AnswerBody::H1(body) => body.size(),
            AnswerBody::H2(body) => body.size(),
        }
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        match self.get_mut() {
            AnswerBody::H1(body) => Pin::new(body).poll_next(cx),
            AnswerBody::H2(body) => Pin::new(body).poll_next(cx),
        }
    }
}

/// The route's `idle` limit on an answer's body, for either protocol's body: armed only when
/// the backend makes the body wait, so quick answers never touch the timer.
pub struct BodyIdle {
    after: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl BodyIdle {
    pub fn new(after: Duration) -> BodyIdle {
        BodyIdle { after, timer: None }
    }

    /// Data came: the wait starts again.
    pub fn progressed(&mut self) {
        if let Some(timer) = self.timer.as_mut() {
            timer.as_mut().reset(Instant::now() + self.after);
        }
    }

    /// The body waits on the backend: `Ready` with the error to end it once it has waited the
    /// whole limit (counted in `switchyard_upstream_body_timeouts_total`), else `Pending`.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let after = self.after;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
        ready!(timer.as_mut().poll(cx));
        metrics::counter!("switchyard_upstream_body_timeouts_total").increment(1);
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("backend body idle for {after:?}; cutting the response"),
        ))
    }
}
