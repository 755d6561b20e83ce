//! The requests' connector: TCP, then TLS for `https://` (hyper-rustls, ALPN `h2` and
//! `http/1.1`), the whole of it bounded by `connect_timeout`, so a router that accepts TCP but
//! never finishes its handshake is a failed connect (the region's next router is tried), not
//! an attempt that hangs until its timeout.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Inner = HttpsConnector<HttpConnector>;
type Stream = <Inner as tower_service::Service<Uri>>::Response;

/// [`HttpsConnector`] with one deadline over TCP and TLS together.
#[derive(Clone)]
pub(crate) struct TimedConnector {
    inner: Inner,
    timeout: Duration,
}

impl TimedConnector {
    pub(crate) fn new(inner: Inner, timeout: Duration) -> TimedConnector {
        TimedConnector { inner, timeout }
    }
}

impl tower_service::Service<Uri> for TimedConnector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected,
                Err(_) => Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection (TCP and TLS) within {timeout:?}"),
                )) as BoxError),
            }
        })
    }
}
