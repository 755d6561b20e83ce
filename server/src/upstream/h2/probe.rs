//! One HTTP/2 request on a fresh connection, read whole: what health checks of `h2` pools
//! send (an HTTP GET, or the gRPC health check). The caller bounds it with its own timeout.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::upstream::h1::BackendStream;

/// An answer read whole: head, body (at most the caller's limit) and trailers.
#[derive(Debug)]
pub struct ProbeAnswer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub trailers: Option<http::HeaderMap>,
}

impl ProbeAnswer {
    /// A header from the trailers, else from the head (a gRPC "trailers-only" answer puts
    /// `grpc-status` in its head).
    pub fn trailer(&self, name: &str) -> Option<&http::HeaderValue> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get(name))
            .or_else(|| self.headers.get(name))
    }
}

/// Sends `request` over HTTP/2 on `stream` and reads the answer, its body up to `max_bytes`.
pub async fn send(
    stream: BackendStream,
    request: http::Request<Full<Bytes>>,
    max_bytes: usize,
) -> Result<ProbeAnswer, String> {
    let (mut sender, connection) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|err| format!("HTTP/2 handshake: {err}"))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let answered = async {
        let answer = sender
            .send_request(request)
            .await
            .map_err(|err| format!("request: {err}"))?;
        let (parts, body) = answer.into_parts();
        let collected = Limited::new(body, max_bytes)
            .collect()
            .await
            .map_err(|err| format!("answer body: {err}"))?;
        let trailers = collected.trailers().cloned();
        Ok(ProbeAnswer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: collected.to_bytes(),
            trailers,
        })
    }
    .await;
    driver.abort();
    answered
}
