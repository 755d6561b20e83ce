//! Exceptions named after the SDK's error kinds. Each is a `SwitchyardError` with `.kind` (the
//! SDK's short name: `connect`, `status`, …), `.retryable` (whether the same call could succeed
//! later), `.status` (the HTTP status, for `StatusError`) and `.region`; and also the Python
//! built-in it stands for where there is one (`ConnectError` is a `ConnectionError`,
//! `RequestTimeout` and `DeadlineExceeded` are `TimeoutError`s, `ConfigError` and
//! `InvalidRequest` are `ValueError`s), so ordinary `except` clauses catch them.

use std::ffi::CString;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};
use switchyard_client::{Error, ErrorKind};

/// The classes, defined in Python (multiple bases are plain there).
const CLASSES: &str = r#"
class SwitchyardError(Exception):
    """An error from the Switchyard SDK.

    kind: the SDK's name for it ("connect", "timeout", "status", ...); retryable: whether the
    same call could succeed if made again later; status: the HTTP status (StatusError), else
    None; region: the region of the last attempt, if any.
    """

    def __init__(self, message, kind="other", retryable=False, status=None, region=None):
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.status = status
        self.region = region


class ConnectError(SwitchyardError, ConnectionError):
    """No endpoint could be connected to."""


class RequestTimeout(SwitchyardError, TimeoutError):
    """No answer (or no session event) within the time given."""


class StatusError(SwitchyardError):
    """An answer that is a failure after the SDK's retries (5xx, 429, a refused handshake)."""


class TransportError(SwitchyardError, ConnectionError):
    """The connection broke."""


class BudgetExhausted(SwitchyardError):
    """The retry budget is spent: not retrying."""


class NoRegion(SwitchyardError):
    """Every region is unavailable (circuit breakers open)."""


class DeadlineExceeded(SwitchyardError, TimeoutError):
    """The overall deadline passed."""


class InvalidRequest(SwitchyardError, ValueError):
    """A request that cannot be sent (a bad header, method or path)."""


class SessionClosed(SwitchyardError):
    """The session was closed."""


class QueueFull(SwitchyardError):
    """Too many messages queued while the session reconnects."""


class TlsError(SwitchyardError):
    """The TLS handshake failed."""


class BodyTooLarge(SwitchyardError):
    """An answer over the configured limit."""


class ConfigError(SwitchyardError, ValueError):
    """A configuration that cannot be used: the message names the field."""


class Undelivered(SwitchyardError):
    """Messages the session could not deliver."""
"#;

const NAMES: [&str; 15] = [
    "SwitchyardError",
    "ConnectError",
    "RequestTimeout",
    "StatusError",
    "TransportError",
    "BudgetExhausted",
    "NoRegion",
    "DeadlineExceeded",
    "InvalidRequest",
    "SessionClosed",
    "QueueFull",
    "TlsError",
    "BodyTooLarge",
    "ConfigError",
    "Undelivered",
];

static CLASSES_BY_NAME: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

/// Defines the classes and adds them to the module.
pub fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let code = CString::new(CLASSES).expect("no NUL in the classes' source");
    let defined = PyModule::from_code(
        py,
        &code,
        c"switchyard_client/errors.py",
        c"switchyard_client.errors",
    )?;
    let by_name = PyDict::new(py);
    for name in NAMES {
        let class = defined.getattr(name)?;
        class.setattr("__module__", "switchyard_client")?;
        m.add(name, &class)?;
        by_name.set_item(name, class)?;
    }
    let _ = CLASSES_BY_NAME.set(py, by_name.unbind());
    Ok(())
}

fn class_name(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Connect(_) => "ConnectError",
        ErrorKind::Timeout(_) => "RequestTimeout",
        ErrorKind::Status { .. } => "StatusError",
        ErrorKind::Transport(_) => "TransportError",
        ErrorKind::BudgetExhausted => "BudgetExhausted",
        ErrorKind::NoRegion => "NoRegion",
        ErrorKind::Deadline(_) => "DeadlineExceeded",
        ErrorKind::Invalid(_) => "InvalidRequest",
        ErrorKind::SessionClosed { .. } => "SessionClosed",
        ErrorKind::QueueFull(_) => "QueueFull",
        ErrorKind::Tls { .. } => "TlsError",
        ErrorKind::BodyTooLarge { .. } => "BodyTooLarge",
        ErrorKind::Config(_) => "ConfigError",
        ErrorKind::Undelivered { .. } => "Undelivered",
        #[allow(unreachable_patterns)]
        _ => "SwitchyardError",
    }
}

/// The SDK's error as the Python exception of its kind.
pub fn raise(py: Python<'_>, err: Error) -> PyErr {
    let status = match &err.kind {
        ErrorKind::Status { status, .. } => Some(*status),
        _ => None,
    };
    make(
        py,
        class_name(&err.kind),
        err.to_string(),
        err.kind.name(),
        err.retryable,
        status,
        err.region.clone(),
    )
}

/// `SessionClosed` for a session this app closed.
pub fn closed(py: Python<'_>) -> PyErr {
    make(
        py,
        "SessionClosed",
        "the session was closed by this app".into(),
        "session_closed",
        false,
        None,
        None,
    )
}

fn make(
    py: Python<'_>,
    class: &str,
    message: String,
    kind: &str,
    retryable: bool,
    status: Option<u16>,
    region: Option<String>,
) -> PyErr {
    let made = (|| -> PyResult<PyErr> {
        let classes = CLASSES_BY_NAME
            .get(py)
            .ok_or_else(|| {
                pyo3::exceptions::PyRuntimeError::new_err("switchyard_client is not initialised")
            })?
            .bind(py);
        let class = classes
            .get_item(class)?
            .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("missing exception class"))?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("kind", kind)?;
        kwargs.set_item("retryable", retryable)?;
        kwargs.set_item("status", status)?;
        kwargs.set_item("region", region)?;
        let value = class.call((message,), Some(&kwargs))?;
        Ok(PyErr::from_value(value))
    })();
    made.unwrap_or_else(|e| e)
}
