//! The one error type of the SDK: what failed, where (region, attempt), and whether trying
//! again could help.

use std::time::Duration;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// An answer the caller should see as a failure (5xx, 429). `router_error` is the
    /// router's own `X-Switchyard-Error` kind; `None` means the backend answered.
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
    #[error("{} message(s) not delivered (or not confirmed) when the session ended", messages.len())]
    Undelivered {
        messages: Vec<crate::message::Message>,
    },
}

/// An SDK error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (region {}, attempt {attempt}{})", region.as_deref().unwrap_or("-"), if *retryable { ", retryable" } else { "" })]
pub struct Error {
    pub kind: ErrorKind,
    /// The region of the last attempt.
    pub region: Option<String>,
    /// 1-based number of the last attempt.
    pub attempt: u32,
    /// Whether the same request could succeed if tried again later.
    pub retryable: bool,
}

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
        }
    }
}
