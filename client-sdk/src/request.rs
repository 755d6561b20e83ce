//! What an app sends and gets back: [`Request`] (a method, a path, headers checked when it is
//! sent — never a panic on what the app passes), [`Response`] (a whole body, bounded by
//! `max_response_bytes`) and [`StreamingResponse`] (the head, then the body chunk by chunk).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::error::{Error, ErrorKind};

/// A request to send.
///
/// ```
/// use switchyard_client::Request;
/// let req = Request::new(http::Method::GET, "/api/titles?page=2")
///     .header("X-Trace-Id", "4bf92f35")
///     .timeout(std::time::Duration::from_millis(500));
/// ```
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Path and query, e.g. `/api/titles?page=2`.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Retry even though the method is not idempotent (the caller knows it is safe).
    pub retry_non_idempotent: bool,
    /// One attempt's limit, connect to whole answer, instead of the client's
    /// `attempt_timeout`; the client's `deadline` still bounds the whole call.
    pub timeout: Option<Duration>,
    /// The first header the app passed that HTTP cannot carry: reported when sent.
    invalid: Option<String>,
}

impl Request {
    pub fn new(method: Method, path: impl Into<String>) -> Request {
        Request {
            method,
            path: path.into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            retry_non_idempotent: false,
            timeout: None,
            invalid: None,
        }
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Request {
        self.body = body.into();
        self
    }

    /// Sets a header (replacing one of the same name). Names are case-insensitive
    /// (`X-Trace-Id` is sent as `x-trace-id`); a name or value HTTP cannot carry (a space or
    /// newline in a name, a newline in a value) makes sending fail with
    /// [`ErrorKind::Invalid`] naming it.
    pub fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Request {
        let (name, value) = (name.as_ref(), value.as_ref());
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header name {name:?} is not a valid HTTP header name"))
            .and_then(|n| {
                HeaderValue::from_str(value)
                    .map(|v| (n, v))
                    .map_err(|_| format!("header {name}: value {value:?} is not a valid HTTP header value (no control characters such as newlines)"))
            });
        match parsed {
            Ok((n, v)) => {
                self.headers.insert(n, v);
            }
            Err(why) => {
                self.invalid.get_or_insert(why);
            }
        }
        self
    }

    /// Opts a non-idempotent request into retries.
    pub fn retry_non_idempotent(mut self) -> Request {
        self.retry_non_idempotent = true;
        self
    }

    /// One attempt's timeout for this request (the client's `attempt_timeout` otherwise).
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// What makes this request unsendable, checked before any attempt.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if let Some(why) = &self.invalid {
            return Err(Error::invalid(ErrorKind::Invalid(why.clone())));
        }
        if !self.path.starts_with('/') {
            return Err(Error::invalid(ErrorKind::Invalid(format!(
                "path {:?} must start with '/'",
                self.path
            ))));
        }
        if let Err(err) = self.path.parse::<http::uri::PathAndQuery>() {
            return Err(Error::invalid(ErrorKind::Invalid(format!(
                "path {:?} is not a valid path and query: {err}",
                self.path
            ))));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::invalid(ErrorKind::Invalid(
                "Request::timeout must be more than 0".into(),
            )));
        }
        Ok(())
    }

    pub(crate) fn retryable_method(&self) -> bool {
        self.retry_non_idempotent
            || matches!(
                self.method,
                Method::GET
                    | Method::HEAD
                    | Method::OPTIONS
                    | Method::TRACE
                    | Method::PUT
                    | Method::DELETE
            )
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    /// The HTTP version spoken with the router (`HTTP/2` over TLS when it offers it).
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The region that answered.
    pub region: String,
}

impl Response {
    /// The backend that answered (`X-Backend-Id`), if it said.
    pub fn backend(&self) -> Option<&str> {
        backend(&self.headers)
    }
}

fn backend(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-backend-id").and_then(|v| v.to_str().ok())
}

/// An answer whose body is read as it arrives ([`Client::request_streaming`](crate::Client::request_streaming)):
/// no size limit; each chunk must come within `body_idle_timeout`.
#[derive(Debug)]
pub struct StreamingResponse {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    /// The region that answered.
    pub region: String,
    pub(crate) body: Incoming,
    pub(crate) idle_timeout: Duration,
}

impl StreamingResponse {
    /// The backend that answered (`X-Backend-Id`), if it said.
    pub fn backend(&self) -> Option<&str> {
        backend(&self.headers)
    }

    /// The next piece of the body; `None` at its end. A stall longer than
    /// `body_idle_timeout` is [`ErrorKind::Timeout`], a cut connection
    /// [`ErrorKind::Transport`] (neither is retried: the app saw part of the body).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            let frame = tokio::time::timeout(self.idle_timeout, self.body.frame())
                .await
                .map_err(|_| {
                    Error::new(
                        ErrorKind::Timeout(self.idle_timeout),
                        Some(&self.region),
                        1,
                        false,
                    )
                })?;
            match frame {
                None => return Ok(None),
                Some(Err(err)) => {
                    let kind = ErrorKind::Transport(format!("the body broke: {err}"));
                    return Err(Error::new(kind, Some(&self.region), 1, false)
                        .with_source(Some(std::sync::Arc::new(err))));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_header_the_app_passes_is_taken_or_refused_without_a_panic() {
        let ok = Request::new(Method::GET, "/").header("X-Trace-Id", "abc");
        assert!(ok.check().is_ok());
        assert_eq!(ok.headers["x-trace-id"], "abc");
        for (name, value) in [
            ("X Trace", "v"),
            ("x-trace\n", "v"),
            ("", "v"),
            ("é", "v"),
            ("x-ok", "a\nb"),
            ("x-ok", "a\r\nInjected: 1"),
        ] {
            let err = Request::new(Method::GET, "/")
                .header(name, value)
                .check()
                .expect_err(name);
            assert!(
                matches!(&err.kind, ErrorKind::Invalid(why) if why.contains("header")),
                "{err}"
            );
            assert!(!err.retryable);
        }
        // Every single byte, in a name and in a value: taken or refused, never a panic.
        for b in 0u8..=255 {
            let text = String::from_utf8_lossy(&[b'x', b, b'y']).into_owned();
            let name = Request::new(Method::GET, "/").header(&text, "v");
            let value = Request::new(Method::GET, "/").header("x-v", &text);
            for req in [name, value] {
                match req.check() {
                    Ok(()) => assert_eq!(req.headers.len(), 1),
                    Err(err) => assert!(matches!(err.kind, ErrorKind::Invalid(_))),
                }
            }
        }
        assert!(Request::new(Method::GET, "no-slash").check().is_err());
        assert!(Request::new(Method::GET, "/a b").check().is_err());
    }
}
