//! What the router answers a client when it ends a request itself: each variant says what
//! failed and where; [`Error::kind`] is the stable name used in the `X-Switchyard-Error`
//! header, JSON bodies and metric labels, [`Error::status`] its HTTP status, and
//! [`Error::is_retryable`] tells a client (and the SDK) whether trying again later may succeed.
//! [`Side`] and [`Retry`] are what each layer's errors say about where a failure came from and
//! whether another backend may be tried. Starting a node fails with
//! [`crate::StartupError`] instead, reloading with `control::reload::ReloadError`.

use std::net::SocketAddr;
use std::time::Duration;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where an error came from: what the client sent, the backend (or the way to it), or the
/// router itself. Decides whose health counts it: a client's bad body is not the backend's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
    Internal,
}

/// Whether sending the same request again — to another backend — may help. Set where the
/// error is made (who knows what happened on the wire), read by the retry loop (which knows
/// the method, the route's retries and its budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Retrying cannot help (the client's fault, or the answer is already going out).
    Never,
    /// The backend never saw the request (connect or TLS failure): safe for any method.
    Always,
    /// The backend may have acted on it (a reset, a timeout): only idempotent requests, or
    /// routes that allow retrying others.
    IfIdempotent,
}

impl Retry {
    /// Whether a request of this kind may be tried again (`retryable_method`: idempotent, or
    /// its route sets `retry_non_idempotent`).
    pub fn allows(self, retryable_method: bool) -> bool {
        match self {
            Retry::Never => false,
            Retry::Always => true,
            Retry::IfIdempotent => retryable_method,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no route matches host {host:?} and path {path:?}")]
    NoRoute { host: Option<String>, path: String },
    #[error("pool {pool:?} has no healthy backend")]
    NoHealthyBackend { pool: String },
    #[error("every backend of pool {pool:?} is at capacity")]
    Overloaded { pool: String },
    #[error("cannot connect to backend {backend} at {addr}: {source}")]
    UpstreamConnect {
        backend: String,
        addr: SocketAddr,
        #[source]
        source: BoxError,
    },
    #[error("backend {backend} sent no response head within {after:?}")]
    UpstreamTimeout { backend: String, after: Duration },
    #[error("backend {backend} failed before its response head: {source}")]
    Upstream {
        backend: String,
        #[source]
        source: BoxError,
    },
    #[error("bad request: {reason}")]
    BadRequest { reason: String },
    /// The pool is over its `max_inflight` for this route's priority: shed.
    #[error("pool {pool:?} is over its in-flight limit: request shed")]
    Shed { pool: String },
    /// A route's rate limit (`by` the client address or the API key).
    #[error("rate limited by {by}; retry in {retry_after:?}")]
    RateLimited {
        by: &'static str,
        retry_after: Duration,
    },
    /// The client address has `max_connections_per_ip` connections open already: this one is
    /// answered once and closed.
    #[error("{max} connections are open from this client address already")]
    TooManyConnections { max: u32 },
    /// A limit of the request head or body (`[limits]`, a route's `max_body_bytes`).
    #[error("{what} is {size} bytes, over the limit of {max}")]
    TooLarge {
        /// `uri`, `headers` or `body`: decides the status (414, 431, 413).
        what: &'static str,
        size: u64,
        max: u64,
    },
}

impl Error {
    /// Stable machine-readable name.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NoRoute { .. } => "no_route",
            Error::NoHealthyBackend { .. } => "no_healthy_backend",
            Error::Overloaded { .. } => "overloaded",
            Error::UpstreamConnect { .. } => "upstream_connect",
            Error::UpstreamTimeout { .. } => "upstream_timeout",
            Error::Upstream { .. } => "upstream_error",
            Error::BadRequest { .. } => "bad_request",
            Error::RateLimited { .. } => "rate_limited",
            Error::TooManyConnections { .. } => "connection_limit",
            // The same wire kind as full backends: the region cannot take it now.
            Error::Shed { .. } => "overloaded",
            Error::TooLarge { what: "uri", .. } => "uri_too_long",
            Error::TooLarge {
                what: "headers", ..
            } => "headers_too_large",
            Error::TooLarge { .. } => "body_too_large",
        }
    }

    /// HTTP status the router answers with when this ends a request.
    pub fn status(&self) -> u16 {
        match self {
            Error::NoRoute { .. } => 404,
            Error::BadRequest { .. } => 400,
            Error::RateLimited { .. } | Error::TooManyConnections { .. } => 429,
            Error::Shed { .. } => 503,
            Error::TooLarge { what: "uri", .. } => 414,
            Error::TooLarge {
                what: "headers", ..
            } => 431,
            Error::TooLarge { .. } => 413,
            Error::NoHealthyBackend { .. } | Error::Overloaded { .. } => 503,
            Error::UpstreamConnect { .. } | Error::Upstream { .. } => 502,
            Error::UpstreamTimeout { .. } => 504,
        }
    }

    /// True when the same request may succeed if tried again (on another backend, or later).
    /// Timeouts and upstream failures are retryable only for idempotent requests; that
    /// judgement belongs to the caller, who knows the method.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::NoHealthyBackend { .. }
                | Error::Overloaded { .. }
                | Error::UpstreamConnect { .. }
                | Error::UpstreamTimeout { .. }
                | Error::Upstream { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_statuses_follow_the_wire_contract() {
        let e = Error::NoHealthyBackend { pool: "api".into() };
        assert_eq!(
            (e.kind(), e.status(), e.is_retryable()),
            ("no_healthy_backend", 503, true)
        );
        let e = Error::NoRoute {
            host: None,
            path: "/x".into(),
        };
        assert_eq!(
            (e.kind(), e.status(), e.is_retryable()),
            ("no_route", 404, false)
        );
        let e = Error::UpstreamTimeout {
            backend: "b".into(),
            after: Duration::from_secs(1),
        };
        assert_eq!((e.kind(), e.status()), ("upstream_timeout", 504));
    }
}
