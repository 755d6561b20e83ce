//! Bodies on the request path, streamed both ways and never buffered whole.
//!
//! - [`UpstreamBody`]: what the router sends a backend. actix-web's request payload is `!Send`
//!   and hyper's client wants `Send`, so a body is pumped through a small channel from a task
//!   on the worker; bodiless requests (most of them) skip that entirely.
//! - [`ClientBody`]: what the router sends a client. Wraps the backend's body, keeps the
//!   backend counted as in flight until the last byte, and cuts the stream after `idle` of
//!   silence. If the backend fails mid-body the error reaches actix-web, which closes the
//!   client connection instead of ending the body as if it were complete.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::web;
use bytes::Bytes;
use futures_util::StreamExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use crate::routing::InflightGuard;

/// Chunks buffered between the client side and the backend side of a request body: enough to
/// keep both sides busy, small enough that a slow backend pushes back on the client.
const REQUEST_BODY_CHANNEL_CHUNKS: usize = 4;

/// A request body on its way to a backend.
pub enum UpstreamBody {
    Empty,
    Channel {
        rx: mpsc::Receiver<io::Result<Bytes>>,
        length: Option<u64>,
    },
}

impl UpstreamBody {
    /// Starts pumping a client's payload; must run on an actix worker (spawns a local task).
    pub fn from_payload(payload: web::Payload, length: Option<u64>) -> UpstreamBody {
        let (tx, rx) = mpsc::channel(REQUEST_BODY_CHANNEL_CHUNKS);
        actix_web::rt::spawn(async move {
            let mut payload = payload;
            while let Some(chunk) = payload.next().await {
                let failed = chunk.is_err();
                let item = chunk.map_err(|err| io::Error::other(format!("client body: {err}")));
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        UpstreamBody::Channel { rx, length }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            UpstreamBody::Empty => Poll::Ready(None),
            UpstreamBody::Channel { rx, .. } => rx
                .poll_recv(cx)
                .map(|item| item.map(|chunk| chunk.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, UpstreamBody::Empty)
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Empty => SizeHint::with_exact(0),
            UpstreamBody::Channel {
                length: Some(n), ..
            } => SizeHint::with_exact(*n),
            UpstreamBody::Channel { .. } => SizeHint::default(),
        }
    }
}

/// A backend's response body on its way to a client.
pub struct ClientBody {
    body: Incoming,
    size: BodySize,
    /// HEAD, 204, 304: the size may be announced, but no byte is sent.
    bodiless: bool,
    idle: Duration,
    /// Armed only when the backend makes us wait, so small answers never touch the timer.
    timer: Option<Pin<Box<Sleep>>>,
    _inflight: InflightGuard,
}

impl ClientBody {
    pub fn new(
        body: Incoming,
        size: BodySize,
        bodiless: bool,
        idle: Duration,
        inflight: InflightGuard,
    ) -> Self {
        ClientBody {
            body,
            size,
            bodiless,
            idle,
            timer: None,
            _inflight: inflight,
        }
    }
}

impl MessageBody for ClientBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.size
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.bodiless {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(timer) = this.timer.as_mut() {
                        timer.as_mut().reset(Instant::now() + this.idle);
                    }
                    match frame.into_data() {
                        Ok(data) if !data.is_empty() => return Poll::Ready(Some(Ok(data))),
                        // Empty chunks and trailers: nothing to send on HTTP/1.1.
                        _ => continue,
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    return Poll::Ready(Some(Err(format!("backend body: {err}").into())));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => {
                    let idle = this.idle;
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                    ready!(timer.as_mut().poll(cx));
                    return Poll::Ready(Some(Err(format!(
                        "backend body idle for {idle:?}; cutting the response"
                    )
                    .into())));
                }
            }
        }
    }
}
