//! Sessions: `Client.session(path)` connects; `send` queues a message (str: text, bytes:
//! binary); iterating (or `next(timeout)`) waits for events with the GIL released; `close`
//! ends it. The SDK reconnects and resumes it through drains and deploys: the app sees
//! `reconnecting` and `resumed` events, never a broken session.

use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use switchyard_client::{Event as SdkEvent, Message, blocking};

use crate::errors::raise;

/// A WebSocket session; iterate it for its events. A context manager: leaving the `with`
/// block closes it.
#[pyclass(module = "switchyard_client")]
pub struct Session {
    inner: Mutex<Option<blocking::Session>>,
}

impl Session {
    pub fn new(inner: blocking::Session) -> Session {
        Session {
            inner: Mutex::new(Some(inner)),
        }
    }
}

/// A message of an event: text (`str`) or binary (`bytes`).
#[derive(Clone)]
enum Held {
    Text(String),
    Binary(Vec<u8>),
}

impl From<Message> for Held {
    fn from(m: Message) -> Held {
        match m {
            Message::Text(t) => Held::Text(t),
            Message::Binary(b) => Held::Binary(b.to_vec()),
        }
    }
}

impl Held {
    fn to_py(&self, py: Python<'_>) -> Py<PyAny> {
        match self {
            Held::Text(t) => PyString::new(py, t).into_any().unbind(),
            Held::Binary(b) => PyBytes::new(py, b).into_any().unbind(),
        }
    }
}

/// One event of a session. `kind` is one of `connected`, `message`, `unconfirmed`,
/// `reconnecting`, `resumed`, `undelivered`, `closed` (`other` for one newer than this
/// module); the other attributes are `None` where they do not apply.
#[pyclass(module = "switchyard_client", frozen)]
pub struct Event {
    #[pyo3(get)]
    kind: &'static str,
    messages: Vec<Held>,
    /// `connected`, `resumed`: the region.
    #[pyo3(get)]
    region: Option<String>,
    /// `connected`, `resumed`: the backend, when the router said.
    #[pyo3(get)]
    backend: Option<String>,
    /// `reconnecting`, `closed`: the close code (`None`: a dead path).
    #[pyo3(get)]
    code: Option<u16>,
    /// `reconnecting`, `closed`: why.
    #[pyo3(get)]
    reason: Option<String>,
    /// `reconnecting`: the attempt (from 1).
    #[pyo3(get)]
    attempt: Option<u32>,
    /// `reconnecting`: seconds before it.
    #[pyo3(get)]
    delay: Option<f64>,
    /// `resumed`: nothing the app sent can be missing.
    #[pyo3(get)]
    recovered: Option<bool>,
    /// `resumed`: messages re-sent.
    #[pyo3(get)]
    resent: Option<usize>,
    /// `unconfirmed`: earlier messages no longer kept that may be missing too.
    #[pyo3(get)]
    not_kept: Option<u64>,
}

impl From<SdkEvent> for Event {
    fn from(event: SdkEvent) -> Event {
        let mut e = Event {
            kind: "other",
            messages: Vec::new(),
            region: None,
            backend: None,
            code: None,
            reason: None,
            attempt: None,
            delay: None,
            recovered: None,
            resent: None,
            not_kept: None,
        };
        match event {
            SdkEvent::Connected { region, backend } => {
                e.kind = "connected";
                e.region = Some(region);
                e.backend = backend;
            }
            SdkEvent::Message(m) => {
                e.kind = "message";
                e.messages.push(m.into());
            }
            SdkEvent::Unconfirmed { messages, not_kept } => {
                e.kind = "unconfirmed";
                e.messages = messages.into_iter().map(Held::from).collect();
                e.not_kept = Some(not_kept);
            }
            SdkEvent::Reconnecting {
                reason,
                attempt,
                delay,
                code,
            } => {
                e.kind = "reconnecting";
                e.reason = Some(reason);
                e.attempt = Some(attempt);
                e.delay = Some(delay.as_secs_f64());
                e.code = code;
            }
            SdkEvent::Resumed {
                region,
                backend,
                recovered,
                resent,
            } => {
                e.kind = "resumed";
                e.region = Some(region);
                e.backend = backend;
                e.recovered = Some(recovered);
                e.resent = Some(resent);
            }
            SdkEvent::Undelivered { messages } => {
                e.kind = "undelivered";
                e.messages = messages.into_iter().map(Held::from).collect();
            }
            SdkEvent::Closed { code, reason } => {
                e.kind = "closed";
                e.code = Some(code);
                e.reason = Some(reason);
            }
            _ => {}
        }
        e
    }
}

#[pymethods]
impl Event {
    /// `message`: the message (str for text, bytes for binary); `None` otherwise.
    #[getter]
    fn data(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        match self.kind {
            "message" => self.messages.first().map(|m| m.to_py(py)),
            _ => None,
        }
    }

    /// `unconfirmed`, `undelivered`: the messages (str or bytes each); `[]` otherwise.
    #[getter]
    fn messages(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        self.messages.iter().map(|m| m.to_py(py)).collect()
    }

    fn __repr__(&self) -> String {
        match self.kind {
            "message" => format!(
                "<Event message ({} bytes)>",
                match &self.messages[..] {
                    [Held::Text(t)] => t.len(),
                    [Held::Binary(b)] => b.len(),
                    _ => 0,
                }
            ),
            "reconnecting" | "closed" => format!(
                "<Event {} code={:?} reason={:?}>",
                self.kind,
                self.code,
                self.reason.as_deref().unwrap_or_default()
            ),
            kind => format!("<Event {kind}>"),
        }
    }
}

/// Why a session call failed: the SDK's error, or the session was closed here.
enum Failed {
    Sdk(switchyard_client::Error),
    Closed,
}

impl Failed {
    fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            Failed::Sdk(e) => raise(py, e),
            Failed::Closed => crate::errors::closed(py),
        }
    }
}

impl Session {
    fn with<T>(
        &self,
        work: impl FnOnce(&mut blocking::Session) -> Result<T, switchyard_client::Error>,
    ) -> Result<T, Failed> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.as_mut() {
            Some(s) => work(s).map_err(Failed::Sdk),
            None => Err(Failed::Closed),
        }
    }
}

#[pymethods]
impl Session {
    /// Queues a message — `str` is sent as text, `bytes` or `bytearray` as binary; never waits
    /// on the network.
    fn send(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let msg = if message.is_instance_of::<PyString>() {
            Message::text(message.extract::<String>()?)
        } else if let Ok(b) = message.extract::<Vec<u8>>() {
            Message::binary(b)
        } else {
            return Err(PyTypeError::new_err(format!(
                "a message is str (text) or bytes (binary), not {}",
                message
                    .get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            )));
        };
        self.with(|s| s.send(msg)).map_err(|e| e.into_py(py))
    }

    /// The next event, waiting up to `timeout` seconds (`None`: as long as it takes);
    /// `None` once the session is over. Raises `RequestTimeout` when nothing came in time (the
    /// session goes on).
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Event>> {
        let wait = match timeout {
            None => None,
            Some(t) if t.is_finite() && t >= 0.0 => Some(Duration::from_secs_f64(t)),
            Some(t) => {
                return Err(PyValueError::new_err(format!(
                    "timeout must be a number of seconds >= 0, not {t}"
                )));
            }
        };
        let next = py.detach(|| {
            self.with(|s| match wait {
                Some(w) => s.next_timeout(w),
                None => s.next(),
            })
        });
        match next {
            Ok(next) => Ok(next.map(Event::from)),
            Err(e) => Err(e.into_py(py)),
        }
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Event>> {
        // `None` ends the iteration (pyo3 turns it into StopIteration): also for a session
        // this app closed, so a `for` loop over it just ends.
        if self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_none()
        {
            return Ok(None);
        }
        self.next(py, None)
    }

    /// Closes the session (waiting at most about twice the client's `send_timeout`). Messages
    /// queued and not delivered raise `Undelivered`. Closing twice does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let taken = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        match taken {
            Some(s) => py.detach(|| s.close()).map_err(|e| raise(py, e)),
            None => Ok(()),
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }
}
