//! Errors for C: a stable integer kind (`SY_ERR_*`), whether trying again later could succeed,
//! and a message that says what was wrong and where. Functions that can fail return the kind
//! (`SY_OK`, 0, on success) and, when the caller passes a `sy_error **`, store an error there
//! that the caller frees with `sy_error_free`.

use std::ffi::CString;

use switchyard_client::{Error, ErrorKind};

pub const SY_OK: i32 = 0;
/// Could not connect to any endpoint.
pub const SY_ERR_CONNECT: i32 = 1;
/// No answer (or no event) within the time given.
pub const SY_ERR_TIMEOUT: i32 = 2;
/// An answer the caller should see as a failure (5xx, 429, a refused handshake).
pub const SY_ERR_STATUS: i32 = 3;
/// The connection broke.
pub const SY_ERR_TRANSPORT: i32 = 4;
/// The retry budget is spent.
pub const SY_ERR_BUDGET_EXHAUSTED: i32 = 5;
/// Every region is unavailable.
pub const SY_ERR_NO_REGION: i32 = 6;
/// The overall deadline passed.
pub const SY_ERR_DEADLINE: i32 = 7;
/// A bad argument: a NULL where a value is needed, text that is not UTF-8, a bad method or
/// header.
pub const SY_ERR_INVALID: i32 = 8;
/// The session was closed.
pub const SY_ERR_SESSION_CLOSED: i32 = 9;
/// Too many messages queued while reconnecting.
pub const SY_ERR_QUEUE_FULL: i32 = 10;
/// The TLS handshake failed.
pub const SY_ERR_TLS: i32 = 11;
/// A body over the configured limit.
pub const SY_ERR_BODY_TOO_LARGE: i32 = 12;
/// The configuration JSON is malformed or holds a bad value (the message names it).
pub const SY_ERR_CONFIG: i32 = 13;
/// Messages the session could not deliver.
pub const SY_ERR_UNDELIVERED: i32 = 14;
/// A handle that is NULL, already freed, or of another type.
pub const SY_ERR_INVALID_HANDLE: i32 = 15;
/// A bug in the library (a Rust panic, caught at the boundary).
pub const SY_ERR_PANIC: i32 = 16;
/// An SDK error kind newer than this header.
pub const SY_ERR_OTHER: i32 = 99;

/// An error. Read it with `sy_error_kind`, `sy_error_retryable` and `sy_error_message`; free
/// it with `sy_error_free`.
#[allow(non_camel_case_types)]
pub struct sy_error {
    pub(crate) kind: i32,
    pub(crate) retryable: bool,
    pub(crate) message: CString,
}

/// An error on its way to C.
#[derive(Debug)]
pub struct FfiError {
    pub kind: i32,
    pub retryable: bool,
    pub message: String,
}

impl FfiError {
    pub fn new(kind: i32, message: impl Into<String>) -> FfiError {
        FfiError {
            kind,
            retryable: false,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> FfiError {
        FfiError::new(SY_ERR_INVALID, message)
    }

    pub fn invalid_handle(message: impl Into<String>) -> FfiError {
        FfiError::new(SY_ERR_INVALID_HANDLE, message)
    }
}

impl From<Error> for FfiError {
    fn from(err: Error) -> FfiError {
        let kind = match &err.kind {
            ErrorKind::Connect(_) => SY_ERR_CONNECT,
            ErrorKind::Timeout(_) => SY_ERR_TIMEOUT,
            ErrorKind::Status { .. } => SY_ERR_STATUS,
            ErrorKind::Transport(_) => SY_ERR_TRANSPORT,
            ErrorKind::BudgetExhausted => SY_ERR_BUDGET_EXHAUSTED,
            ErrorKind::NoRegion => SY_ERR_NO_REGION,
            ErrorKind::Deadline(_) => SY_ERR_DEADLINE,
            ErrorKind::Invalid(_) => SY_ERR_INVALID,
            ErrorKind::SessionClosed { .. } => SY_ERR_SESSION_CLOSED,
            ErrorKind::QueueFull(_) => SY_ERR_QUEUE_FULL,
            ErrorKind::Tls { .. } => SY_ERR_TLS,
            ErrorKind::BodyTooLarge { .. } => SY_ERR_BODY_TOO_LARGE,
            ErrorKind::Config(_) => SY_ERR_CONFIG,
            ErrorKind::Undelivered { .. } => SY_ERR_UNDELIVERED,
            #[allow(unreachable_patterns)]
            _ => SY_ERR_OTHER,
        };
        FfiError {
            kind,
            retryable: err.retryable,
            message: err.to_string(),
        }
    }
}
