//! Connections to backends: one hyper-util client per worker thread and connect timeout, each
//! with its own keep-alive pool, so a request never crosses threads to reach its connection.
//!
//! hyper-util was chosen over awc by measurement (`../shared/PERF-NOTES.md`: awc is 21% slower
//! inside actix-web, builds a codec per request and has proxy-hostile defaults); see
//! `docs/ARCHITECTURE.md`.

use std::cell::RefCell;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::body::UpstreamBody;

/// Idle pooled connections are closed after this long: below the 60–75 s keep-alive timeouts
/// common on backends, so the router rarely reuses a connection the backend is closing.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP keep-alive probes on backend connections, to notice dead peers behind idle pools.
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

type UpstreamClient = Client<HttpConnector, UpstreamBody>;

thread_local! {
    /// A handful of distinct connect timeouts at most: a linear scan beats hashing.
    static CLIENTS: RefCell<Vec<(Duration, UpstreamClient)>> = const { RefCell::new(Vec::new()) };
}

fn build(connect_timeout: Duration) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_keepalive(Some(TCP_KEEPALIVE));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// Sends a request through this thread's pool for `connect_timeout`.
pub fn send(connect_timeout: Duration, req: http::Request<UpstreamBody>) -> ResponseFuture {
    CLIENTS.with(|clients| {
        let mut clients = clients.borrow_mut();
        let index = match clients.iter().position(|(t, _)| *t == connect_timeout) {
            Some(i) => i,
            None => {
                clients.push((connect_timeout, build(connect_timeout)));
                clients.len() - 1
            }
        };
        clients[index].1.request(req)
    })
}
