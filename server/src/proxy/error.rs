//! Responses the router makes itself: status, `X-Switchyard-Error: <kind>`, `X-Request-Id`,
//! and a short JSON body `{"error", "message", "request_id"}`. Messages name the route or
//! pool, never backend addresses: those stay in the router's own logs.

use std::fmt;
use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::body::{BoxBody, EitherBody};
use actix_web::http::StatusCode;
use actix_web::http::header::{self as ax, HeaderValue};

use crate::error::{Error, Retry, Side};
use crate::headers::{REQUEST_ID, SWITCHYARD_ERROR};
use crate::routing::BackendEntry;
use crate::upstream::h1::ExchangeError;

/// The request path's error: what went wrong ([`Error`]: its wire kind and status), which side
/// it came from, whether another backend may be tried, and the backend involved (for the
/// access log). Made where the failure is seen; the retry loops read [`ProxyError::retry`]
/// and decide nothing else about it.
#[derive(Debug)]
pub struct ProxyError {
    pub error: Error,
    pub side: Side,
    pub retry: Retry,
    pub backend: Option<Arc<str>>,
}

impl ProxyError {
    /// A failure on the way to or at `backend`, classified by the upstream layer.
    pub fn exchange(err: ExchangeError, backend: &BackendEntry) -> ProxyError {
        let (side, retry) = (err.side(), err.retry());
        let error = match err {
            err if err.is_connect() => Error::UpstreamConnect {
                backend: backend.id.to_string(),
                addr: backend.addr,
                source: Box::new(err),
            },
            ExchangeError::ClientBody(reason) | ExchangeError::BadRequest(reason) => {
                Error::BadRequest { reason }
            }
            ExchangeError::BodyTooLarge(max) => Error::TooLarge {
                what: "body",
                size: max + 1,
                max,
            },
            ExchangeError::HeadTimeout(after) | ExchangeError::WriteTimeout(after) => {
                Error::UpstreamTimeout {
                    backend: backend.id.to_string(),
                    after,
                }
            }
            err => Error::Upstream {
                backend: backend.id.to_string(),
                source: Box::new(err),
            },
        };
        ProxyError {
            error,
            side,
            retry,
            backend: Some(backend.id.clone()),
        }
    }

    /// A failure at `backend` that the caller classified itself (a WebSocket handshake).
    pub fn upstream(error: Error, retry: Retry, backend: &Arc<str>) -> ProxyError {
        ProxyError {
            error,
            side: Side::Upstream,
            retry,
            backend: Some(backend.clone()),
        }
    }

    /// Names the backend the failure happened at.
    pub fn at(mut self, backend: &Arc<str>) -> ProxyError {
        self.backend = Some(backend.clone());
        self
    }
}

/// A refusal the router makes itself (no route, a limit, no capacity): never retried inside
/// the request; whether the client may retry later is [`Error::is_retryable`].
impl From<Error> for ProxyError {
    fn from(error: Error) -> ProxyError {
        let side = match &error {
            Error::NoRoute { .. }
            | Error::BadRequest { .. }
            | Error::RateLimited { .. }
            | Error::TooManyConnections { .. }
            | Error::TooLarge { .. } => Side::Client,
            Error::NoHealthyBackend { .. }
            | Error::Overloaded { .. }
            | Error::UpstreamConnect { .. }
            | Error::UpstreamTimeout { .. }
            | Error::Upstream { .. } => Side::Upstream,
            Error::Shed { .. } => Side::Internal,
        };
        ProxyError {
            error,
            side,
            retry: Retry::Never,
            backend: None,
        }
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// `Retry-After` on the router's own 503s, in seconds.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// What a client is told about an error.
pub fn public_message(err: &Error) -> String {
    match err {
        Error::NoRoute { .. } => "no route matches this host and path".to_string(),
        Error::NoHealthyBackend { pool } => format!("pool {pool:?} has no healthy backend"),
        Error::Overloaded { pool } => {
            format!("every backend of pool {pool:?} is at capacity; try again shortly")
        }
        Error::UpstreamConnect { .. } => "could not connect to a backend".to_string(),
        Error::UpstreamTimeout { after, .. } => {
            format!("the backend sent no response within {after:?}")
        }
        Error::Upstream { .. } => "the backend failed before answering".to_string(),
        Error::BadRequest { reason } => reason.clone(),
        Error::TooLarge { .. }
        | Error::RateLimited { .. }
        | Error::Shed { .. }
        | Error::TooManyConnections { .. } => err.to_string(),
    }
}

pub fn error_response<L>(err: &Error, request_id: &HeaderValue) -> HttpResponse<EitherBody<L>> {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let rid = String::from_utf8_lossy(request_id.as_bytes());
    let body = serde_json::json!({
        "error": err.kind(),
        "message": public_message(err),
        "request_id": rid,
    })
    .to_string();
    let mut resp = HttpResponse::with_body(status, EitherBody::right(BoxBody::new(body)));
    let headers = resp.headers_mut();
    headers.insert(
        ax::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        ax::HeaderName::from_static(SWITCHYARD_ERROR),
        HeaderValue::from_static(err.kind()),
    );
    headers.insert(ax::HeaderName::from_static(REQUEST_ID), request_id.clone());
    if let Error::RateLimited { retry_after, .. } = err {
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        headers.insert(ax::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    } else if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        // The router's own 503s are momentary by nature: say when to come back.
        headers.insert(
            ax::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    if let Error::TooManyConnections { .. } = err {
        // Counted once per connection when it was admitted; this connection ends here.
        resp.head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    } else {
        metrics::counter!("switchyard_router_errors_total", "kind" => err.kind()).increment(1);
    }
    resp
}

/// The router's own answer to `head`: [`error_response`], or for a gRPC client the same
/// refusal the way gRPC carries it ([`as_grpc`]).
pub fn error_answer<L>(
    err: &Error,
    request_id: &HeaderValue,
    head: &actix_http::RequestHead,
) -> HttpResponse<EitherBody<L>> {
    let resp = error_response(err, request_id);
    match is_grpc(&head.headers) {
        true => as_grpc(resp, &public_message(err)),
        false => resp,
    }
}

/// A gRPC request (`content-type: application/grpc`, with or without a `+codec` suffix, or
/// gRPC-Web).
pub fn is_grpc(headers: &ax::HeaderMap) -> bool {
    headers
        .get(ax::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// A refusal for a gRPC client: gRPC clients read the outcome from `grpc-status`, not the
/// HTTP status (a JSON body would be taken for a malformed message), so the answer is
/// "trailers-only" — HTTP 200 with `grpc-status` and `grpc-message` in its head and no body
/// — the HTTP status mapped as the gRPC project's HTTP-to-gRPC table does (Envoy's own replies
/// do the same): 429, 502, 503 and 504 are `UNAVAILABLE`, which gRPC clients may retry.
/// `X-Switchyard-Error`, `X-Request-Id` and `Retry-After` stay.
pub fn as_grpc<L>(resp: HttpResponse<EitherBody<L>>, message: &str) -> HttpResponse<EitherBody<L>> {
    let code: u16 = match resp.status().as_u16() {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    };
    let mut grpc = HttpResponse::with_body(StatusCode::OK, EitherBody::right(BoxBody::new(())));
    for (name, value) in resp.headers() {
        if name != ax::CONTENT_TYPE && name != ax::CONTENT_LENGTH {
            grpc.headers_mut().append(name.clone(), value.clone());
        }
    }
    let headers = grpc.headers_mut();
    headers.insert(
        ax::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(
        ax::HeaderName::from_static("grpc-status"),
        HeaderValue::from(code),
    );
    if let Ok(message) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert(ax::HeaderName::from_static("grpc-message"), message);
    }
    grpc
}

/// `grpc-message` encoding: bytes outside printable ASCII, and `%`, as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_for_a_grpc_client_is_a_grpc_status() {
        let err = Error::NoHealthyBackend {
            pool: "catalog".to_string(),
        };
        let id = HeaderValue::from_static("req-1");
        let resp: HttpResponse<EitherBody<()>> = as_grpc(error_response(&err, &id), "100% gone");
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h.get("grpc-status").unwrap(), "14");
        assert_eq!(h.get("grpc-message").unwrap(), "100%25 gone");
        assert_eq!(h.get("content-type").unwrap(), "application/grpc");
        assert_eq!(h.get(SWITCHYARD_ERROR).unwrap(), "no_healthy_backend");
        assert_eq!(h.get(REQUEST_ID).unwrap(), "req-1");
        assert!(h.get("retry-after").is_some());
        assert!(h.get("content-length").is_none());
    }
}
