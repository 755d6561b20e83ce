//! One request/answer exchange with a backend, up to the answer's head: take a pooled
//! connection or connect, write the request head (and stream the body), read the head.
//!
//! A pooled connection can have been closed by the backend a moment ago (its keep-alive timer
//! ran out while the request was on its way). When that happens before any byte of the answer,
//! for a bodiless request with an idempotent method, the exchange is repeated once on a fresh
//! connection. A backend that read a POST and then closed may have acted on it, so such
//! requests are never sent twice.
//!
//! For a pool with `tls`, connecting includes the TLS handshake: a backend whose certificate
//! does not verify is a connect failure like a refused connection (retried elsewhere, counted
//! against the backend), never a half-open connection.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use actix_web::web;
use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::codec::{self, LAST_CHUNK, ParseError, RequestFraming, ResponseHead};
use super::pool::{self, Conn, PoolKey};
use super::stream::BackendStream;
use crate::error::{Retry, Side};
use crate::upstream::Timeouts;
use crate::upstream::tls::BackendTls;

/// TCP keep-alive probes on backend connections, to notice dead peers behind idle pools.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// A request with a body only reuses a connection idle for less than this: a body cannot be
/// replayed, so it avoids connections a backend may be closing.
pub const BODY_REUSE_MAX_IDLE: Duration = Duration::from_secs(2);

/// Why an exchange failed before the answer's head.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("connect failed: {0}")]
    Connect(io::Error),
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    /// The TLS handshake failed: rustls's reason (a certificate that does not verify, no
    /// common protocol version, a backend that does not speak TLS, ...).
    #[error("TLS handshake with server name {server_name:?} failed: {source}")]
    Tls {
        server_name: String,
        #[source]
        source: io::Error,
    },
    #[error("TLS handshake with server name {0:?} timed out after {1:?}")]
    TlsTimeout(String, Duration),
    #[error("no response head within {0:?}")]
    HeadTimeout(Duration),
    /// The backend took none of the request for the route's idle timeout.
    #[error("the backend stopped reading the request for {0:?}")]
    WriteTimeout(Duration),
    #[error("connection failed before the response head: {0}")]
    Io(io::Error),
    /// A pooled connection failed before any answer byte arrived.
    #[error("pooled connection closed before any answer: {0}")]
    Stale(io::Error),
    #[error("{0}")]
    Protocol(#[from] ParseError),
    #[error("the client's request body failed: {0}")]
    ClientBody(String),
    /// A streamed body grew past the route's `max_body_bytes`.
    #[error("the request body went over {0} bytes")]
    BodyTooLarge(u64),
    /// The client's request cannot be sent as it is (an HTTP/2 backend needs a valid
    /// authority, method and header values).
    #[error("the request cannot be forwarded: {0}")]
    BadRequest(String),
    /// An HTTP/2 backend refused the stream before processing it (`REFUSED_STREAM`), or the
    /// connection closed before the request went out: safe to send anywhere again.
    #[error("the backend refused the request unprocessed: {0}")]
    Refused(String),
}

impl ExchangeError {
    /// The backend was never reached: another backend may be tried, whatever the request.
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            ExchangeError::Connect(_)
                | ExchangeError::ConnectTimeout(_)
                | ExchangeError::Tls { .. }
                | ExchangeError::TlsTimeout(..)
        )
    }

    /// Whose failure this is: the client's body, or the backend (and the way to it).
    pub fn side(&self) -> Side {
        match self {
            ExchangeError::ClientBody(_)
            | ExchangeError::BodyTooLarge(_)
            | ExchangeError::BadRequest(_) => Side::Client,
            _ => Side::Upstream,
        }
    }

    /// Whether another backend may be tried: always when this one was never reached, only
    /// for idempotent requests when it may have acted, never for the client's own fault.
    pub fn retry(&self) -> Retry {
        match self {
            err if err.is_connect() => Retry::Always,
            ExchangeError::Refused(_) => Retry::Always,
            ExchangeError::ClientBody(_)
            | ExchangeError::BodyTooLarge(_)
            | ExchangeError::BadRequest(_) => Retry::Never,
            _ => Retry::IfIdempotent,
        }
    }
}

/// The request body to send, if any.
pub enum RequestBody {
    None,
    /// Read whole beforehand (small enough to keep), so it can be sent again on a retry.
    Buffered(bytes::Bytes),
    Stream {
        payload: web::Payload,
        framing: RequestFraming,
        /// Most bytes to forward (0: no limit): what catches a chunked body over the route's
        /// `max_body_bytes`, which has no length to check beforehand.
        limit: u64,
    },
}

impl RequestBody {
    /// True when the same body can be sent on another attempt.
    pub fn replayable(&self) -> bool {
        !matches!(self, RequestBody::Stream { .. })
    }
}

/// Sends `head` (and the body) to `addr` (over TLS when `tls` is set) and reads the answer's
/// head. The connection is returned for the body to be read from it. A streamed body is
/// consumed; the others are not.
pub async fn exchange(
    addr: SocketAddr,
    tls: Option<&BackendTls>,
    head: &[u8],
    body: &mut RequestBody,
    head_request: bool,
    idempotent: bool,
    timeouts: &Timeouts,
) -> Result<(Conn, ResponseHead), ExchangeError> {
    let key = PoolKey {
        addr,
        tls: tls.map_or(0, |t| t.id),
    };
    match std::mem::replace(body, RequestBody::None) {
        RequestBody::Stream {
            payload,
            framing,
            limit,
        } => {
            let conn = match pool::checkout(key, BODY_REUSE_MAX_IDLE) {
                Some(conn) => conn,
                None => Box::pin(connect(addr, tls, timeouts.connect)).await?,
            };
            attempt(
                conn,
                head,
                Outgoing::Stream(payload, framing, limit),
                head_request,
                timeouts,
            )
            .await
        }
        kept => {
            *body = kept;
            let buffered = match body {
                RequestBody::Buffered(bytes) => Some(bytes.clone()),
                _ => None,
            };
            // A non-idempotent request with a body cannot be sent twice: like a streamed body,
            // it only takes a connection idle for a moment.
            let max_idle = if buffered.is_some() && !idempotent {
                BODY_REUSE_MAX_IDLE
            } else {
                pool::POOL_IDLE_TIMEOUT
            };
            if let Some(conn) = pool::checkout(key, max_idle) {
                let out = Outgoing::from(buffered.clone());
                match attempt(conn, head, out, head_request, timeouts).await {
                    Err(ExchangeError::Stale(err)) if idempotent => {
                        tracing::debug!(%addr, error = %err, "pooled connection was closed; retrying on a new one");
                    }
                    Err(ExchangeError::Stale(err)) => return Err(ExchangeError::Io(err)),
                    done => return done,
                }
            }
            let conn = Box::pin(connect(addr, tls, timeouts.connect)).await?;
            attempt(conn, head, Outgoing::from(buffered), head_request, timeouts).await
        }
    }
}

/// What follows the head on the wire.
enum Outgoing {
    Nothing,
    Bytes(bytes::Bytes),
    Stream(web::Payload, RequestFraming, u64),
}

impl From<Option<bytes::Bytes>> for Outgoing {
    fn from(bytes: Option<bytes::Bytes>) -> Outgoing {
        bytes.map_or(Outgoing::Nothing, Outgoing::Bytes)
    }
}

/// Reads a whole client body of `length` bytes (bounded by the caller) so it can be replayed;
/// each wait for the client is bounded by `idle`.
pub async fn buffer_body(
    mut payload: web::Payload,
    length: u64,
    idle: Duration,
) -> Result<bytes::Bytes, ExchangeError> {
    // Grown as data arrives: a client that announces a length and sends nothing holds nothing.
    let mut body = BytesMut::with_capacity((length as usize).min(8 * 1024));
    loop {
        match tokio::time::timeout(idle, payload.next()).await {
            Err(_) => {
                return Err(ExchangeError::ClientBody(format!(
                    "no request body data for {idle:?}"
                )));
            }
            Ok(Some(Ok(chunk))) => {
                if body.len() as u64 + chunk.len() as u64 > length {
                    return Err(ExchangeError::ClientBody(format!(
                        "request body longer than its Content-Length {length}"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Some(Err(err))) => return Err(ExchangeError::ClientBody(err.to_string())),
            Ok(None) => break,
        }
    }
    if body.len() as u64 != length {
        return Err(ExchangeError::ClientBody(format!(
            "request body ended after {} of {length} bytes",
            body.len()
        )));
    }
    Ok(body.freeze())
}

/// A new connection with the router's socket options.
///
/// Callers on the request path box this future: it holds a TCP connect and a TLS handshake,
/// several times the size of the rest of an exchange, and a request that finds a pooled
/// connection (almost all of them) would otherwise carry that room and copy it with every move
/// of its future.
pub async fn connect(
    addr: SocketAddr,
    tls: Option<&BackendTls>,
    timeout: Duration,
) -> Result<Conn, ExchangeError> {
    let key = PoolKey {
        addr,
        tls: tls.map_or(0, |t| t.id),
    };
    Ok(Conn::new(connect_stream(addr, tls, timeout).await?, key))
}

/// A connection to a backend, with `TCP_NODELAY` and TCP keep-alive (for HTTP exchanges,
/// WebSocket sessions and health checks alike): the TCP connect within `timeout`, then, when
/// `tls` is set, the TLS handshake within `timeout` again (the certificate verified against
/// the pool's CA file, for `tls.server_name`).
pub async fn connect_stream(
    addr: SocketAddr,
    tls: Option<&BackendTls>,
    timeout: Duration,
) -> Result<BackendStream, ExchangeError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return Err(ExchangeError::Connect(err)),
        Err(_) => return Err(ExchangeError::ConnectTimeout(timeout)),
    };
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    let Some(tls) = tls else {
        return Ok(BackendStream::Plain(stream));
    };
    let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
    let handshake = connector.connect(tls.server_name.clone(), stream);
    match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(stream)) => Ok(BackendStream::Tls(Box::new(stream))),
        Ok(Err(source)) => Err(ExchangeError::Tls {
            server_name: tls.server_name.to_str().into_owned(),
            source,
        }),
        Err(_) => Err(ExchangeError::TlsTimeout(
            tls.server_name.to_str().into_owned(),
            timeout,
        )),
    }
}

async fn attempt(
    mut conn: Conn,
    head: &[u8],
    body: Outgoing,
    head_request: bool,
    timeouts: &Timeouts,
) -> Result<(Conn, ResponseHead), ExchangeError> {
    // Failures before any answer byte on a pooled connection are "stale"; the caller decides
    // whether the request may be sent again.
    let reused = conn.reused;
    let early = |err: io::Error| {
        if reused {
            ExchangeError::Stale(err)
        } else {
            ExchangeError::Io(err)
        }
    };
    write_within(&mut conn, head, timeouts.idle)
        .await
        .map_err(|err| write_failed(err, timeouts.idle, early))?;
    match body {
        Outgoing::Nothing => {}
        Outgoing::Bytes(bytes) => {
            write_within(&mut conn, &bytes, timeouts.idle)
                .await
                .map_err(|err| write_failed(err, timeouts.idle, early))?;
        }
        Outgoing::Stream(payload, framing, limit) => {
            Box::pin(send_body(&mut conn, payload, framing, limit, timeouts.idle)).await?;
        }
    }
    let mut received = false;
    let read_head = async {
        loop {
            if let Some(parsed) = codec::parse_response_head(&mut conn.buf, head_request)? {
                return Ok(parsed);
            }
            conn.buf.reserve(pool::READ_BUFFER_BYTES);
            let n = match conn.stream.read_buf(&mut conn.buf).await {
                Ok(n) => n,
                Err(err) if !received => return Err(early(err)),
                Err(err) => return Err(ExchangeError::Io(err)),
            };
            if n == 0 {
                let err = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "backend closed the connection before answering",
                );
                return Err(if received {
                    ExchangeError::Io(err)
                } else {
                    early(err)
                });
            }
            received = true;
        }
    };
    match tokio::time::timeout(timeouts.response, read_head).await {
        Ok(Ok(parsed)) => Ok((conn, parsed)),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(ExchangeError::HeadTimeout(timeouts.response)),
    }
}

/// A write to the backend that timed out is the backend's silence (answered 504), not a
/// broken connection (`otherwise`).
fn write_failed(
    err: io::Error,
    idle: Duration,
    otherwise: impl FnOnce(io::Error) -> ExchangeError,
) -> ExchangeError {
    if err.kind() == io::ErrorKind::TimedOut {
        ExchangeError::WriteTimeout(idle)
    } else {
        otherwise(err)
    }
}

/// Writes to the backend (flushed: TLS may hold records back otherwise); a backend that stops
/// reading for `idle` fails the write. Most writes fit the socket's buffer at once and are done
/// before a timer is made; only what is left waits under one.
async fn write_within(conn: &mut Conn, data: &[u8], idle: Duration) -> io::Result<()> {
    let written = conn.stream.try_write_now(data)?;
    let data = &data[written..];
    if data.is_empty() {
        return Ok(());
    }
    let write = async {
        conn.stream.write_all(data).await?;
        conn.stream.flush().await
    };
    match tokio::time::timeout(idle, write).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("backend stopped reading the request for {idle:?}"),
        )),
    }
}

/// Streams the client's body to the backend as it arrives; each wait for the client and each
/// write to the backend is bounded by the route's idle timeout. A body longer or shorter than
/// its announced length is an error, never forwarded.
async fn send_body(
    conn: &mut Conn,
    mut payload: web::Payload,
    framing: RequestFraming,
    limit: u64,
    idle: Duration,
) -> Result<(), ExchangeError> {
    let mut framed = BytesMut::new();
    let mut sent: u64 = 0;
    loop {
        let next = match tokio::time::timeout(idle, payload.next()).await {
            Ok(next) => next,
            Err(_) => {
                return Err(ExchangeError::ClientBody(format!(
                    "no request body data for {idle:?}"
                )));
            }
        };
        match next {
            Some(Ok(chunk)) if chunk.is_empty() => continue,
            Some(Ok(chunk)) => {
                sent += chunk.len() as u64;
                if limit > 0 && sent > limit {
                    return Err(ExchangeError::BodyTooLarge(limit));
                }
                if let RequestFraming::Length(n) = framing
                    && sent > n
                {
                    return Err(ExchangeError::ClientBody(format!(
                        "request body longer than its Content-Length {n}"
                    )));
                }
                let data: &[u8] = if framing == RequestFraming::Chunked {
                    framed.clear();
                    codec::put_chunk(&mut framed, &chunk);
                    &framed
                } else {
                    &chunk
                };
                write_within(conn, data, idle)
                    .await
                    .map_err(|err| write_failed(err, idle, ExchangeError::Io))?;
            }
            Some(Err(err)) => return Err(ExchangeError::ClientBody(err.to_string())),
            None => break,
        }
    }
    match framing {
        RequestFraming::Chunked => {
            write_within(conn, LAST_CHUNK, idle)
                .await
                .map_err(|err| write_failed(err, idle, ExchangeError::Io))?;
        }
        RequestFraming::Length(n) if sent != n => {
            return Err(ExchangeError::ClientBody(format!(
                "request body ended after {sent} of {n} bytes"
            )));
        }
        _ => {}
    }
    Ok(())
}
