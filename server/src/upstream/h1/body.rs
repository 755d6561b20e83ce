//! A backend's answer body on its way to the client, read from the backend connection by the
//! body itself (no extra task). Holds what its request holds (the caller's `G`: the backend's
//! in-flight count, the connection's stream slot) until the body is sent or dropped,
//! cuts the stream after the route's idle timeout, and hands the connection back to the pool
//! when the answer was complete and the backend allows reuse. If the backend fails mid-body
//! the error reaches actix-web, which closes the client connection instead of ending the body
//! as if it were complete.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use crate::upstream::BodyIdle;
use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;

use super::codec::{ChunkedDecoder, Decoded, Framing};
use super::pool::{self, Conn};

/// Read-buffer room made before each read of a body.
const BODY_READ_BYTES: usize = 16 * 1024;

enum Step {
    Yield(Bytes, bool),
    Read,
    Finish,
    Fail(String),
    End,
}

enum State {
    Length(u64),
    Chunked(ChunkedDecoder),
    Close,
    Done,
}

pub struct UpstreamBody<G> {
    conn: Option<Conn>,
    state: State,
    size: BodySize,
    reusable: bool,
    idle: BodyIdle,
    /// What the request holds until its answer is sent (or dropped): the caller's guards,
    /// given back on drop. Opaque here, so this layer needs nothing of the request path.
    held: G,
}

type BodyError = Box<dyn std::error::Error>;

pub use crate::upstream::Holder;

impl<G> UpstreamBody<G> {
    /// What the body holds for its request, to add to it.
    pub fn held_mut(&mut self) -> &mut G {
        &mut self.held
    }

    /// `size` is what the client is told; `framing` how the backend delimits the body.
    pub fn new(
        conn: Conn,
        framing: Framing,
        size: BodySize,
        reusable: bool,
        idle: Duration,
        held: G,
    ) -> UpstreamBody<G> {
        let state = match framing {
            Framing::Empty => State::Length(0),
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(ChunkedDecoder::default()),
            Framing::Close => State::Close,
        };
        let mut body = UpstreamBody {
            conn: Some(conn),
            state,
            size,
            reusable,
            idle: BodyIdle::new(idle),
            held,
        };
        if matches!(body.state, State::Length(0)) {
            body.finish();
        }
        body
    }

    /// The answer is complete: the connection goes back to the pool if it can carry more.
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take()
            && self.reusable
            && conn.buf.is_empty()
        {
            pool::checkin(conn);
        }
    }

    /// The body cannot complete: the connection is dropped (closed), never reused.
    fn fail(&mut self, message: String) -> BodyError {
        self.state = State::Done;
        self.reusable = false;
        self.conn = None;
        message.into()
    }

    /// Reads more from the backend. `Ready(Ok(0))` is end of stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let conn = self
            .conn
            .as_mut()
            .expect("a body that is not done has its connection");
        conn.buf.reserve(BODY_READ_BYTES);
        match conn.stream.poll_read_buf(cx, &mut conn.buf) {
            Poll::Ready(Ok(n)) => {
                self.idle.progressed();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => self.idle.poll_expired(cx).map(Err),
        }
    }
}

impl<G: Holder> MessageBody for UpstreamBody<G> {
    type Error = BodyError;

    fn size(&self) -> BodySize {
        self.size
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BodyError>>> {
        let this = self.get_mut();
        loop {
            let step = {
                let Some(conn) = this.conn.as_mut() else {
                    return Poll::Ready(None);
                };
                match &mut this.state {
                    State::Done => Step::End,
                    State::Length(0) => Step::Finish,
                    State::Length(left) if !conn.buf.is_empty() => {
                        let take = (conn.buf.len() as u64).min(*left) as usize;
                        *left -= take as u64;
                        Step::Yield(conn.buf.split_to(take).freeze(), *left == 0)
                    }
                    State::Length(_) => Step::Read,
                    State::Chunked(decoder) => match decoder.decode(&mut conn.buf) {
                        Ok(Decoded::Data(data)) => Step::Yield(data, false),
                        Ok(Decoded::Done) => Step::Finish,
                        Ok(Decoded::NeedMore) => Step::Read,
                        Err(err) => Step::Fail(err.to_string()),
                    },
                    State::Close if !conn.buf.is_empty() => {
                        Step::Yield(conn.buf.split().freeze(), false)
                    }
                    State::Close => Step::Read,
                }
            };
            match step {
                Step::End => return Poll::Ready(None),
                Step::Finish => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Step::Yield(data, last) => {
                    if last {
                        this.finish();
                    }
                    this.held.sent(data.len());
                    return Poll::Ready(Some(Ok(data)));
                }
                Step::Fail(message) => return Poll::Ready(Some(Err(this.fail(message)))),
                Step::Read => {}
            }
            let filled = match ready!(this.poll_fill(cx)) {
                // A TLS backend that ends a close-delimited body without close_notify (many
                // do): the end is still the end, as browsers and other proxies take it.
                Err(err)
                    if err.kind() == io::ErrorKind::UnexpectedEof
                        && matches!(this.state, State::Close) =>
                {
                    Ok(0)
                }
                filled => filled,
            };
            match filled {
                Ok(0) if matches!(this.state, State::Close) => {
                    this.reusable = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    let err = this.fail("backend closed the connection mid-body".to_string());
                    return Poll::Ready(Some(Err(err)));
                }
                Ok(_) => continue,
                Err(err) => {
                    let err = this.fail(format!("backend body: {err}"));
                    return Poll::Ready(Some(Err(err)));
                }
            }
        }
    }
}
