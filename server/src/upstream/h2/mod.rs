//! HTTP/2 to a pool's backends (`protocol = "h2"`): what gRPC services and other HTTP/2-only
//! backends need.
//!
//! Each worker keeps one multiplexed connection per backend ([`conn`]), made with hyper's
//! HTTP/2 client over the same connect path as HTTP/1.1 (TCP, then TLS with ALPN `h2` for a
//! TLS pool; prior knowledge over plain TCP). Requests share it as concurrent streams, up to
//! the backend's `SETTINGS_MAX_CONCURRENT_STREAMS` (more wait for a free stream, as Envoy's
//! and hyper's clients do). The connection runs as a task of the worker that made it, so
//! request bodies stream from actix-web's payload without crossing threads.
//!
//! - [`head`]: the request as the backend gets it (the very head the HTTP/1.1 path writes,
//!   with the same forwarding headers, turned into HTTP/2's pseudo-headers), and the answer's
//!   head turned into actix-web's types.
//! - [`body`]: the request body towards the backend, and the answer's body towards the
//!   client with its trailers (`grpc-status` travels there) handed to the client's HTTP/2
//!   stream.
//! - [`conn`]: the per-worker connections.
//! - [`probe`]: one request on a fresh connection, read whole (health checks).

pub mod body;
pub mod conn;
pub mod head;
pub mod probe;

use std::time::Duration;

use hyper::body::Incoming;

pub use body::{RequestBody as H2RequestBody, ResponseBody};

use crate::upstream::Timeouts;
use crate::upstream::h1::ExchangeError;
use crate::upstream::tls::BackendTls;

/// Sends `request` to the backend at `addr` over this worker's HTTP/2 connection to it (made
/// now if there is none) and waits for the answer's head, within the route's timeouts.
pub async fn exchange(
    addr: std::net::SocketAddr,
    tls: Option<&BackendTls>,
    request: http::Request<H2RequestBody>,
    timeouts: &Timeouts,
) -> Result<http::Response<Incoming>, ExchangeError> {
    let mut sender = conn::sender(addr, tls, timeouts.connect).await?;
    // A stream the connection cannot take yet (the backend's stream limit) waits here, bounded
    // by the response timeout like the answer itself.
    let sent = async {
        // The connection closed before the request went out: nothing reached the backend.
        sender.ready().await.map_err(|err| {
            conn::forget(addr, tls);
            ExchangeError::Refused(format!(
                "connection closed before the request was sent: {err}"
            ))
        })?;
        sender.send_request(request).await.map_err(failure)
    };
    match tokio::time::timeout(timeouts.response, sent).await {
        Ok(answer) => answer,
        Err(_) => Err(ExchangeError::HeadTimeout(timeouts.response)),
    }
}

/// An HTTP/2 failure before the answer's head, as the retry rules see it: a stream the backend
/// refused (`REFUSED_STREAM`, or one past its `GOAWAY`) was never processed and may go
/// anywhere; the client's own body failing is the client's; anything else may have reached
/// the backend.
fn failure(err: hyper::Error) -> ExchangeError {
    use std::error::Error as _;
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(client) = cause.downcast_ref::<body::ClientBodyError>() {
            return client.clone().into();
        }
        if let Some(h2) = cause.downcast_ref::<::h2::Error>() {
            if h2.reason() == Some(::h2::Reason::REFUSED_STREAM) {
                return ExchangeError::Refused(h2.to_string());
            }
            break;
        }
        source = cause.source();
    }
    ExchangeError::Io(std::io::Error::other(err.to_string()))
}

/// Keep-alive PINGs on backend connections: one after this much silence, and the connection
/// is dropped if its PONG takes longer than [`PING_TIMEOUT`] (a backend gone without a FIN).
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
