//! The Switchyard client SDK for Python (`import switchyard_client`): the Rust SDK's blocking
//! facade behind a small Python API — `Client(config)` with `request`, `get`, `post` and
//! `session`; a `Session` iterable over its events, with `send` and `close`; exceptions named
//! after the SDK's error kinds, each with `.retryable`. The SDK does the work (failover,
//! retries under a budget, sessions that resume through drains); every call that waits
//! releases the GIL while it does.

mod errors;
mod session;

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use switchyard_client::{ClientBuilder, ClientConfig, Request, blocking};

use errors::raise;
use session::{Event, Session};

/// A client: one per app, shared by its threads.
///
/// `config` is the SDK's configuration as a dict (the fields of its `ClientConfig`, as in
/// docs/SDK.md), e.g. `{"regions": [{"name": "eu", "endpoints": ["https://eu.example.net"]}],
/// "deadline": "10s"}`. An unknown field or a bad value raises `ConfigError` naming it.
#[pyclass(module = "switchyard_client", frozen)]
struct Client {
    inner: blocking::Client,
}

/// An answer: `status`, `headers` (a list of `(name, value)`, names lower case), `body`
/// (bytes), `region`, `backend` (the backend that answered, when it said); `header(name)`,
/// `text()` and `json()` read it.
#[pyclass(module = "switchyard_client", frozen)]
struct Response {
    #[pyo3(get)]
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    #[pyo3(get)]
    region: String,
}

/// Headers from a dict or a list of `(name, value)` pairs of `str`; a refusal names the
/// entry that is not a `str`.
fn headers_of(headers: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, String)>> {
    let Some(headers) = headers.filter(|h| !h.is_none()) else {
        return Ok(Vec::new());
    };
    let text = |value: Bound<'_, PyAny>, what: String| -> PyResult<String> {
        value.extract::<String>().map_err(|_| {
            PyTypeError::new_err(format!("{what} must be a str, not {}", type_name(&value)))
        })
    };
    if let Ok(dict) = headers.cast::<PyDict>() {
        return dict
            .iter()
            .map(|(k, v)| {
                let name = text(k, "a header name".into())?;
                let value = text(v, format!("header {name:?}'s value"))?;
                Ok((name, value))
            })
            .collect();
    }
    if headers.is_instance_of::<PyList>() || headers.is_instance_of::<PyTuple>() {
        return headers
            .try_iter()?
            .enumerate()
            .map(|(i, pair)| {
                let pair = pair?;
                let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
                    pair.extract().map_err(|_| {
                        PyTypeError::new_err(format!(
                            "headers[{i}] must be a (name, value) pair, not {}",
                            type_name(&pair)
                        ))
                    })?;
                Ok((
                    text(name, format!("headers[{i}]'s name"))?,
                    text(value, format!("headers[{i}]'s value"))?,
                ))
            })
            .collect();
    }
    Err(PyTypeError::new_err(format!(
        "headers must be a dict or a list of (name, value) pairs of str, not {}",
        type_name(headers)
    )))
}

/// A body from `bytes`, `bytearray` or `str` (sent as UTF-8).
fn body_of(body: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<u8>> {
    match body {
        None => Ok(Vec::new()),
        Some(b) if b.is_none() => Ok(Vec::new()),
        Some(b) if b.is_instance_of::<PyString>() => Ok(b.extract::<String>()?.into_bytes()),
        Some(b) => b.extract::<Vec<u8>>().map_err(|_| {
            PyTypeError::new_err(format!(
                "body must be bytes, bytearray or str, not {}",
                type_name(b)
            ))
        }),
    }
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "?".into(), |n| n.to_string())
}

/// A deadline in seconds, checked.
fn deadline_of(deadline: Option<f64>) -> PyResult<Option<Duration>> {
    match deadline {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => {
            Ok(Some(Duration::from_secs_f64(s)))
        }
        Some(s) => Err(PyValueError::new_err(format!(
            "deadline must be a number of seconds in (0, 86400], not {s}"
        ))),
    }
}

#[pymethods]
impl Client {
    #[new]
    fn new(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<Client> {
        if !config.is_instance_of::<PyDict>() {
            return Err(PyTypeError::new_err(format!(
                "config must be a dict of the SDK's settings, not {}",
                type_name(config)
            )));
        }
        let json: String = py
            .import("json")?
            .call_method1("dumps", (config,))?
            .extract()?;
        let config = ClientConfig::from_json(&json).map_err(|e| raise(py, e))?;
        let inner = py
            .detach(|| blocking::Client::new(ClientBuilder::from_config(config)))
            .map_err(|e| raise(py, e))?;
        Ok(Client { inner })
    }

    /// Sends a request and waits for its answer (the GIL released meanwhile). `headers`: a
    /// dict or a list of `(name, value)`; `body`: bytes or str; `deadline`: seconds for the
    /// whole call, retries included (default: the client's). A 4xx is an answer; 5xx and 429
    /// after the SDK's retries raise `StatusError`.
    #[pyo3(signature = (method, path, headers=None, body=None, deadline=None))]
    fn request(
        &self,
        py: Python<'_>,
        method: &str,
        path: &str,
        headers: Option<&Bound<'_, PyAny>>,
        body: Option<&Bound<'_, PyAny>>,
        deadline: Option<f64>,
    ) -> PyResult<Response> {
        let method = http::Method::from_bytes(method.as_bytes()).map_err(|_| {
            PyValueError::new_err(format!("method {method:?} is not an HTTP method"))
        })?;
        let mut req = Request::new(method, path);
        for (name, value) in headers_of(headers)? {
            req = req.header(name, value);
        }
        req = req.body(bytes::Bytes::from(body_of(body)?));
        let deadline = deadline_of(deadline)?;
        let answer = py
            .detach(|| match deadline {
                Some(d) => self.inner.request_within(req, d),
                None => self.inner.request(req),
            })
            .map_err(|e| raise(py, e))?;
        Ok(Response {
            status: answer.status.as_u16(),
            headers: answer
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect(),
            body: answer.body.to_vec(),
            region: answer.region,
        })
    }

    /// `request("GET", path, ...)`.
    #[pyo3(signature = (path, headers=None, deadline=None))]
    fn get(
        &self,
        py: Python<'_>,
        path: &str,
        headers: Option<&Bound<'_, PyAny>>,
        deadline: Option<f64>,
    ) -> PyResult<Response> {
        self.request(py, "GET", path, headers, None, deadline)
    }

    /// `request("POST", path, ...)`.
    #[pyo3(signature = (path, body=None, headers=None, deadline=None))]
    fn post(
        &self,
        py: Python<'_>,
        path: &str,
        body: Option<&Bound<'_, PyAny>>,
        headers: Option<&Bound<'_, PyAny>>,
        deadline: Option<f64>,
    ) -> PyResult<Response> {
        self.request(py, "POST", path, headers, body, deadline)
    }

    /// Opens a WebSocket session on `path`, waiting until it is connected.
    fn session(&self, py: Python<'_>, path: &str) -> PyResult<Session> {
        let inner = py
            .detach(|| self.inner.session(path))
            .map_err(|e| raise(py, e))?;
        Ok(Session::new(inner))
    }

    /// Counters: `attempts`, `retries`, `failovers`, `reconnects`, `budget_left`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        d.set_item("attempts", s.attempts)?;
        d.set_item("retries", s.retries)?;
        d.set_item("failovers", s.failovers)?;
        d.set_item("reconnects", s.reconnects)?;
        d.set_item("budget_left", s.budget_left)?;
        Ok(d)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        false
    }
}

#[pymethods]
impl Response {
    /// `(name, value)` pairs, names lower case, in the order received.
    #[getter]
    fn headers(&self) -> Vec<(String, String)> {
        self.headers.clone()
    }

    /// The body as bytes.
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.body)
    }

    /// The first value of header `name` (any case), or `None`.
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    /// The backend that answered (`X-Backend-Id`), if it said.
    #[getter]
    fn backend(&self) -> Option<String> {
        self.header("x-backend-id")
    }

    /// The body decoded as UTF-8 (invalid bytes replaced).
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into()
    }

    /// The body parsed as JSON.
    fn json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?.call_method1("loads", (self.text(),))
    }

    fn __repr__(&self) -> String {
        format!(
            "<Response {} from {}, {} bytes>",
            self.status,
            self.region,
            self.body.len()
        )
    }
}

/// The module, imported as `switchyard_client`.
#[pymodule]
#[pyo3(name = "switchyard_client")]
fn switchyard_client_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()?;
    m.add_class::<Response>()?;
    m.add_class::<Session>()?;
    m.add_class::<Event>()?;
    errors::add(m)?;
    Ok(())
}
