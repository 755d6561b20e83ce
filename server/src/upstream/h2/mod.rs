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

/// Why an exchange failed, and the request when it never left the router (so its body can
/// go to another backend).
pub struct Failed {
    pub error: ExchangeError,
    pub unsent: Option<http::Request<H2RequestBody>>,
}

/// Sends `request` to the backend at `addr` over this worker's HTTP/2 connection to it (made
/// now if there is none) and waits for the answer's head, within the route's timeouts. When
/// that connection closes before the request is handed to it (a backend that sent GOAWAY), the
/// request goes once more on a new connection.
pub async fn exchange(
    addr: std::net::SocketAddr,
    tls: Option<&BackendTls>,
    mut request: http::Request<H2RequestBody>,
    timeouts: &Timeouts,
) -> Result<http::Response<Incoming>, Failed> {
    // A stream the connection cannot take yet (the backend's stream limit) waits too, bounded
    // by the response timeout like the answer itself.
    let deadline = tokio::time::Instant::now() + timeouts.response;
    let timed_out = ExchangeError::HeadTimeout(timeouts.response);
    for _ in 0..2 {
        let mut sender = match conn::sender(addr, tls, timeouts.connect).await {
            Ok(sender) => sender,
            Err(error) => {
                return Err(Failed {
                    error,
                    unsent: Some(request),
                });
            }
        };
        match tokio::time::timeout_at(deadline, sender.ready()).await {
            Ok(Ok(())) => {}
            // Closed before the request went out: a new connection.
            Ok(Err(_)) => {
                conn::forget(addr, tls);
                continue;
            }
            Err(_) => {
                return Err(Failed {
                    error: timed_out,
                    unsent: Some(request),
                });
            }
        }
        match tokio::time::timeout_at(deadline, sender.try_send_request(request)).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(mut err)) => match err.take_message() {
                Some(unsent) => {
                    conn::forget(addr, tls);
                    request = unsent;
                }
                None => {
                    let error = failure(err.into_error());
                    if matches!(error, ExchangeError::Refused(_)) {
                        // A backend going away: the next request makes a new connection.
                        conn::forget(addr, tls);
                    }
                    return Err(Failed {
                        error,
                        unsent: None,
                    });
                }
            },
            Err(_) => {
                return Err(Failed {
                    error: timed_out,
                    unsent: None,
                });
            }
        }
    }
    Err(Failed {
        error: ExchangeError::Refused(
            "two connections closed before the request could be sent".to_string(),
        ),
        unsent: Some(request),
    })
}

/// An HTTP/2 failure before the answer's head, as the retry rules see it (a request hyper never
/// sent comes back whole from `try_send_request` and does not get here): a stream the backend
/// refused (`REFUSED_STREAM`), or one it turned away with a graceful `GOAWAY` (`NO_ERROR`: h2
/// gives that error only to streams past the GOAWAY's last stream id, and to new ones, which
/// RFC 9113 §6.8 says were not processed), may go anywhere; the client's own body failing is
/// the client's; anything else may have reached the backend.
fn failure(err: hyper::Error) -> ExchangeError {
    use std::error::Error as _;
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(client) = cause.downcast_ref::<body::ClientBodyError>() {
            return client.clone().into();
        }
        if let Some(h2) = cause.downcast_ref::<::h2::Error>() {
            let graceful_go_away =
                h2.is_go_away() && h2.is_remote() && h2.reason() == Some(::h2::Reason::NO_ERROR);
            if graceful_go_away || h2.reason() == Some(::h2::Reason::REFUSED_STREAM) {
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
