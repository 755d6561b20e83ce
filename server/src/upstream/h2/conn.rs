//! This worker's HTTP/2 connections to backends: one per backend (and TLS settings), shared by
//! every request the worker sends there, made on first use and again once it has closed.
//!
//! Thread-local like the HTTP/1.1 pool: no lock per request, and the connection's task runs on
//! the worker that made it. Requests that find no connection wait for the one connect in
//! progress rather than each making their own (a burst on a cold pool opens one connection,
//! not one per request); when that connect fails, the requests that waited for it fail the
//! same way at once instead of trying in turn, and may go to another backend.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioIo, TokioTimer};

use super::body::RequestBody;
use super::{PING_INTERVAL, PING_TIMEOUT};
use crate::upstream::h1::exchange::connect_stream;
use crate::upstream::h1::pool::PoolKey;
use crate::upstream::h1::{BackendStream, ExchangeError};
use crate::upstream::tls::BackendTls;

thread_local! {
    static CONNECTIONS: RefCell<HashMap<PoolKey, Slot>> = RefCell::new(HashMap::new());
}

/// One backend's connection on this worker, and the connect that makes it.
#[derive(Default)]
struct Slot {
    open: Option<SendRequest<RequestBody>>,
    /// Held while connecting: the requests behind it wait for its outcome.
    connecting: Rc<tokio::sync::Mutex<()>>,
    /// When the last connect failed, and why.
    failed: Option<(Instant, String)>,
}

/// Runs a connection's task on the current worker: request bodies are actix-web payloads,
/// which stay on their thread.
#[derive(Debug, Clone, Copy)]
pub struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: std::future::Future + 'static,
{
    fn execute(&self, fut: F) {
        tokio::task::spawn_local(fut);
    }
}

fn key(addr: SocketAddr, tls: Option<&BackendTls>) -> PoolKey {
    PoolKey {
        addr,
        tls: tls.map_or(0, |t| t.id),
    }
}

/// A sender on this worker's connection to `addr`, connecting (within `connect_timeout`, TLS
/// included) when there is none or it has closed.
pub async fn sender(
    addr: SocketAddr,
    tls: Option<&BackendTls>,
    connect_timeout: Duration,
) -> Result<SendRequest<RequestBody>, ExchangeError> {
    let key = key(addr, tls);
    let waiting_since = Instant::now();
    // The usual case: an open connection, handed out without anything else cloned.
    let connecting = CONNECTIONS.with(|c| {
        let mut c = c.borrow_mut();
        let slot = c.entry(key).or_default();
        slot.open = slot.open.take().filter(|s| !s.is_closed());
        match &slot.open {
            Some(sender) => Ok(sender.clone()),
            None => Err(slot.connecting.clone()),
        }
    });
    let connecting = match connecting {
        Ok(sender) => return Ok(sender),
        Err(connecting) => connecting,
    };
    let _connecting = connecting.lock().await;
    // Made, or failed, while this request waited for the connect in progress.
    let outcome = CONNECTIONS.with(|c| {
        let c = c.borrow();
        let slot = c.get(&key)?;
        if let Some(sender) = slot.open.as_ref().filter(|s| !s.is_closed()) {
            return Some(Ok(sender.clone()));
        }
        match &slot.failed {
            Some((at, why)) if *at >= waiting_since => Some(Err(ExchangeError::Connect(
                std::io::Error::other(why.clone()),
            ))),
            _ => None,
        }
    });
    if let Some(outcome) = outcome {
        return outcome;
    }
    let made = match connect_stream(addr, tls, connect_timeout).await {
        Ok(stream) => handshake(stream, tls, connect_timeout).await,
        Err(err) => Err(err),
    };
    CONNECTIONS.with(|c| {
        let mut c = c.borrow_mut();
        let slot = c.entry(key).or_default();
        match &made {
            Ok(sender) => {
                slot.open = Some(sender.clone());
                slot.failed = None;
            }
            Err(err) => slot.failed = Some((Instant::now(), err.to_string())),
        }
    });
    made
}

/// Drops this worker's connection to `addr` (it closed): the next request makes a new one.
pub fn forget(addr: SocketAddr, tls: Option<&BackendTls>) {
    let key = key(addr, tls);
    CONNECTIONS.with(|c| {
        if let Some(slot) = c.borrow_mut().get_mut(&key) {
            slot.open = None;
        }
    });
}

/// HTTP/2 over a connected stream: a TLS backend must have chosen `h2` (or nothing, which is
/// taken as prior knowledge); then the connection preface and SETTINGS, within `timeout`.
async fn handshake(
    stream: BackendStream,
    tls: Option<&BackendTls>,
    timeout: Duration,
) -> Result<SendRequest<RequestBody>, ExchangeError> {
    if let BackendStream::Tls(tls_stream) = &stream
        && let Some(alpn) = tls_stream.get_ref().1.alpn_protocol()
        && alpn != b"h2"
    {
        return Err(ExchangeError::Tls {
            server_name: tls.map_or_else(String::new, |t| t.server_name.to_str().into_owned()),
            source: std::io::Error::other(format!(
                "the backend chose ALPN {:?}, not h2",
                String::from_utf8_lossy(alpn)
            )),
        });
    }
    let mut builder = http2::Builder::new(LocalExec);
    builder
        .timer(TokioTimer::new())
        .keep_alive_interval(PING_INTERVAL)
        .keep_alive_timeout(PING_TIMEOUT)
        .keep_alive_while_idle(true)
        .adaptive_window(true);
    let handshake = builder.handshake(TokioIo::new(stream));
    let (sender, connection) = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(done)) => done,
        Ok(Err(err)) => {
            return Err(ExchangeError::Connect(std::io::Error::other(format!(
                "HTTP/2 handshake failed: {err}"
            ))));
        }
        Err(_) => return Err(ExchangeError::ConnectTimeout(timeout)),
    };
    tokio::task::spawn_local(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "backend HTTP/2 connection ended");
        }
    });
    Ok(sender)
}
