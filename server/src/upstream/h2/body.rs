//! Bodies of HTTP/2 exchanges with backends: the request's, read from the client as the
//! backend's stream takes it, and the answer's, streamed to the client with the backend's
//! trailers handed to the client's HTTP/2 stream when it ends.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_http::h2::ResponseTrailers;
use actix_web::body::{BodySize, MessageBody};
use actix_web::web;
use bytes::Bytes;
use futures_util::Stream;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::upstream::h1::ExchangeError;
use crate::upstream::{BodyIdle, Holder};

/// Why the client's request body could not be sent: the client's fault, never the backend's.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientBodyError {
    #[error("the client's request body failed: {0}")]
    Failed(String),
    #[error("the request body went over {0} bytes")]
    TooLarge(u64),
}

impl From<ClientBodyError> for ExchangeError {
    fn from(err: ClientBodyError) -> ExchangeError {
        match err {
            ClientBodyError::Failed(reason) => ExchangeError::ClientBody(reason),
            ClientBodyError::TooLarge(max) => ExchangeError::BodyTooLarge(max),
        }
    }
}

/// A request body for an HTTP/2 backend.
pub enum RequestBody {
    Empty,
    /// Read whole beforehand (kept for a retry, which sends a clone).
    Full(Option<Bytes>),
    /// Streamed from the client as the backend's flow control lets it.
    Stream {
        payload: web::Payload,
        /// Most bytes to forward (0: no limit).
        limit: u64,
        sent: u64,
    },
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        match self.get_mut() {
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            RequestBody::Stream {
                payload,
                limit,
                sent,
            } => match ready!(Pin::new(payload).poll_next(cx)) {
                None => Poll::Ready(None),
                Some(Err(err)) => Poll::Ready(Some(Err(ClientBodyError::Failed(err.to_string())))),
                Some(Ok(chunk)) => {
                    *sent += chunk.len() as u64;
                    if *limit > 0 && *sent > *limit {
                        return Poll::Ready(Some(Err(ClientBodyError::TooLarge(*limit))));
                    }
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Empty => true,
            RequestBody::Full(bytes) => bytes.is_none(),
            RequestBody::Stream { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            RequestBody::Stream { .. } => SizeHint::default(),
        }
    }
}

/// A backend's HTTP/2 answer body on its way to the client. Cuts the stream after the
/// route's idle timeout; trailers go to the client's HTTP/2 stream through `trailers` (an
/// HTTP/1.1 client cannot take them, and they are dropped). A backend failing mid-body
/// reaches actix-web as an error, which resets the client's stream (or closes its
/// connection) instead of ending the body as if it were complete.
pub struct ResponseBody<G> {
    incoming: Incoming,
    size: BodySize,
    trailers: ResponseTrailers,
    idle: BodyIdle,
    done: bool,
    held: G,
}

impl<G> ResponseBody<G> {
    pub fn new(
        incoming: Incoming,
        size: BodySize,
        trailers: ResponseTrailers,
        idle: Duration,
        held: G,
    ) -> ResponseBody<G> {
        let done = incoming.is_end_stream();
        ResponseBody {
            incoming,
            size,
            trailers,
            idle: BodyIdle::new(idle),
            done,
            held,
        }
    }

    /// What the body holds for its request, to add to it.
    pub fn held_mut(&mut self) -> &mut G {
        &mut self.held
    }
}

impl<G: Holder> MessageBody for ResponseBody<G> {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.size
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.incoming).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.idle.progressed();
                    match frame.into_data() {
                        Ok(data) if data.is_empty() => {}
                        Ok(data) => {
                            this.held.sent(data.len());
                            return Poll::Ready(Some(Ok(data)));
                        }
                        Err(frame) => {
                            if let Ok(trailers) = frame.into_trailers() {
                                this.trailers.set(super::head::headers(&trailers));
                            }
                        }
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(format!("backend body: {err}").into())));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    let expired = ready!(this.idle.poll_expired(cx));
                    this.done = true;
                    return Poll::Ready(Some(Err(expired.into())));
                }
            }
        }
    }
}
