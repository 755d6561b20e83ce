//! The one error type of the SDK: what failed, where (region, attempt), whether trying again
//! could help, and the lower-level error behind it (`source()`), if there was one.

use std::sync::Arc;
use std::time::Duration;

/// What went wrong. New kinds may be added: match with a `_` arm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// An answer the caller should see as a failure (5xx, 429; a refused WebSocket
    /// handshake). `router_error` is the router's own `X-Switchyard-Error` kind; `None` means
    /// the backend answered.
    #[error("status {status}{}", router_error.as_ref().map(|k| format!(" ({k}, from the router)")).unwrap_or_default())]
    Status {
        status: u16,
        router_error: Option<String>,
    },
    #[error("the connection broke: {0}")]
    Transport(String),
    #[error("the retry budget is spent: not retrying")]
    BudgetExhausted,
    #[error("every region is unavailable (circuit breakers open)")]
    NoRegion,
    #[error("the overall deadline of {0:?} passed")]
    Deadline(Duration),
    #[error("bad request: {0}")]
    Invalid(String),
    #[error("the session was closed: {code} {reason}")]
    SessionClosed { code: u16, reason: String },
    #[error("too many messages queued while reconnecting ({0})")]
    QueueFull(usize),
    /// Messages `send()` accepted that the session could not deliver (it ended first), or
    /// sent without a confirmation that they arrived; the app decides what to do with them.
    /// `not_kept` counts earlier ones, sent on the last connection and not confirmed either,
    /// that had already left the replay buffer (`replay_buffer`, `replay_buffer_bytes`).
    #[error("{} message(s) not delivered (or not confirmed) when the session ended{}", messages.len(), if *not_kept > 0 { format!(", and {not_kept} earlier one(s) no longer kept") } else { String::new() })]
    Undelivered {
        messages: Vec<crate::message::Message>,
        not_kept: u64,
    },
    /// The TLS handshake with `host` failed: an untrusted or expired certificate, a name that
    /// does not match, no common protocol. Trying again cannot help until the configuration
    /// (trusted roots, URL) or the router's certificate changes.
    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    /// The answer's body is larger than `max_response_bytes`; use
    /// `Client::request_streaming` for large bodies.
    #[error("the response body is larger than max_response_bytes ({limit} bytes)")]
    BodyTooLarge { limit: u64 },
    /// A configuration that cannot be used: the setting and why.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl ErrorKind {
    /// Whether the same call could succeed if made again later, as the kind alone says (a
    /// [`Error`] carries the final word for one call in [`Error::retryable`]). Refusals that
    /// will not change by themselves — a handshake answered 401, 403 or 404, a bad request or
    /// configuration, a TLS failure, a body over the limit — are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ErrorKind::Status { status, .. } => {
                !(400..500).contains(status) || matches!(status, 408 | 425 | 429)
            }
            ErrorKind::Invalid(_)
            | ErrorKind::Tls { .. }
            | ErrorKind::BodyTooLarge { .. }
            | ErrorKind::Config(_) => false,
            ErrorKind::SessionClosed { code, .. } => *code != 1008,
            _ => true,
        }
    }

    /// A short stable name for metrics labels and logs (`connect`, `timeout`, `status`, …).
    pub fn name(&self) -> &'static str {
        match self {
            ErrorKind::Connect(_) => "connect",
            ErrorKind::Timeout(_) => "timeout",
            ErrorKind::Status { .. } => "status",
            ErrorKind::Transport(_) => "transport",
            ErrorKind::BudgetExhausted => "budget_exhausted",
            ErrorKind::NoRegion => "no_region",
            ErrorKind::Deadline(_) => "deadline",
            ErrorKind::Invalid(_) => "invalid",
            ErrorKind::SessionClosed { .. } => "session_closed",
            ErrorKind::QueueFull(_) => "queue_full",
            ErrorKind::Tls { .. } => "tls",
            ErrorKind::BodyTooLarge { .. } => "body_too_large",
            ErrorKind::Config(_) => "config",
            // Kinds added later name themselves here; until then they read as `other`.
            #[allow(unreachable_patterns)]
            _ => "other",
        }
    }
}

/// The lower-level error behind an [`Error`].
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// An SDK error.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    /// The region of the last attempt.
    pub region: Option<String>,
    /// 1-based number of the last attempt (0: refused before any attempt).
    pub attempt: u32,
    /// Whether the same request could succeed if tried again later.
    pub retryable: bool,
    /// What failed underneath (an I/O error, rustls' error…), returned by `source()`.
    source: Option<Source>,
}

/// `kind (region R, attempt N, retryable)`; just the kind for an error made before any
/// attempt (bad input or configuration).
impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind)?;
        if self.attempt == 0 && self.region.is_none() {
            return Ok(());
        }
        write!(
            f,
            " (region {}, attempt {}{})",
            self.region.as_deref().unwrap_or("-"),
            self.attempt,
            if self.retryable { ", retryable" } else { "" }
        )
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// Errors compare by what they say (kind, region, attempt, retryable), not by their source.
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.region == other.region
            && self.attempt == other.attempt
            && self.retryable == other.retryable
    }
}

impl Eq for Error {}

impl Error {
    pub(crate) fn new(
        kind: ErrorKind,
        region: Option<&str>,
        attempt: u32,
        retryable: bool,
    ) -> Self {
        Error {
            kind,
            region: region.map(str::to_string),
            attempt,
            retryable,
            source: None,
        }
    }

    /// An error about the input or the configuration, before anything was sent.
    pub(crate) fn invalid(kind: ErrorKind) -> Self {
        Error::new(kind, None, 0, false)
    }

    /// Keeps `source` as the error behind this one.
    pub(crate) fn with_source(mut self, source: Option<Source>) -> Self {
        self.source = source;
        self
    }

    /// The error behind this one, shared (the same as `source()`, but clonable).
    pub fn cause(&self) -> Option<&Source> {
        self.source.as_ref()
    }

    /// Whether the same request could succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn the_source_is_kept_and_refusals_are_not_retryable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::new(ErrorKind::Connect("refused".into()), Some("eu"), 1, true)
            .with_source(Some(Arc::new(io)));
        assert_eq!(err.source().unwrap().to_string(), "refused");
        assert!(err.is_retryable());
        for status in [401, 403, 404, 400] {
            let kind = ErrorKind::Status {
                status,
                router_error: None,
            };
            assert!(!kind.is_retryable(), "{status}");
        }
        for status in [429, 502, 503, 504] {
            let kind = ErrorKind::Status {
                status,
                router_error: None,
            };
            assert!(kind.is_retryable(), "{status}");
        }
    }
}
