//! Clients and requests: `sy_client_new` takes the SDK's own configuration as JSON (the same
//! fields as `switchyard_client::ClientConfig`), `sy_request` sends one request through it
//! with the SDK's retries, budget and failover, and a `sy_response` is read through accessors.
//! A client is thread-safe: share one per app.

use std::ffi::{CString, c_char};
use std::time::Duration;

use switchyard_client::{ClientBuilder, ClientConfig, Request, blocking};

use crate::args::{bytes, put, text, writable};
use crate::error::{FfiError, sy_error};
use crate::guard;
use crate::handle::{self, Kind};

/// A client (opaque). Made by `sy_client_new`, freed by `sy_client_free`.
#[allow(non_camel_case_types)]
pub struct sy_client {
    pub(crate) inner: blocking::Client,
}

/// One request header: a name and a value, both NUL-terminated UTF-8.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct sy_header {
    pub name: *const c_char,
    pub value: *const c_char,
}

/// An answer (opaque): status, headers and body, read through the `sy_response_*` accessors;
/// freed by `sy_response_free`.
#[allow(non_camel_case_types)]
pub struct sy_response {
    status: u16,
    headers: Vec<(CString, CString)>,
    body: Vec<u8>,
    region: CString,
}

/// A C string of `s`, cut at a NUL byte (which C could not see past anyway).
pub(crate) fn c_string(s: &str) -> CString {
    CString::new(s.split('\0').next().unwrap_or_default()).unwrap_or_default()
}

/// Makes a client from the SDK's configuration as JSON, e.g.
/// `{"regions": [{"name": "local", "endpoints": ["http://127.0.0.1:8080"]}]}`. Returns NULL
/// and sets `*err` (when `err` is not NULL) on a malformed or invalid configuration.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_client_new(
    config_json: *const c_char,
    err: *mut *mut sy_error,
) -> *mut sy_client {
    let mut made = std::ptr::null_mut();
    guard::call(err, || {
        let json = text(config_json, "config_json")?;
        let config = ClientConfig::from_json(json)?;
        let inner = blocking::Client::new(ClientBuilder::from_config(config))?;
        made = handle::give(sy_client { inner }, Kind::Client);
        Ok(())
    });
    made
}

/// Frees a client (NULL is fine). Requests and sessions made through it must be over; open
/// sessions keep working until closed.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_client_free(client: *mut sy_client) {
    if client.is_null() {
        return;
    }
    guard::value((), || {
        let _ = handle::take(client, Kind::Client);
    })
}

/// Sends a request and waits for its answer: `method` (`"GET"`, `"POST"`, …), `path` (with
/// its query), `n_headers` headers, a body of `body_len` bytes (`body` may be NULL when 0),
/// and a deadline in milliseconds for the whole call, retries included (0: the client's
/// `deadline`). On success returns `SY_OK` and stores the answer in `*resp` — also a 4xx,
/// which is an answer, not an error; failures (no answer, 5xx and 429 after the SDK's
/// retries) return their kind and set `*err`.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn sy_request(
    client: *const sy_client,
    method: *const c_char,
    path: *const c_char,
    headers: *const sy_header,
    n_headers: usize,
    body: *const u8,
    body_len: usize,
    deadline_ms: u64,
    resp: *mut *mut sy_response,
    err: *mut *mut sy_error,
) -> i32 {
    guard::call(err, || {
        writable(resp, "resp")?;
        let client = handle::get(client, Kind::Client)?;
        let method = text(method, "method")?;
        let method = http::Method::from_bytes(method.as_bytes())
            .map_err(|_| FfiError::invalid(format!("method {method:?} is not an HTTP method")))?;
        let mut req = Request::new(method, text(path, "path")?);
        if n_headers > 0 && headers.is_null() {
            return Err(FfiError::invalid(format!(
                "headers is NULL with n_headers = {n_headers}"
            )));
        }
        for i in 0..n_headers {
            #[allow(unsafe_code)]
            // SAFETY: `headers` is not NULL (checked) and points at `n_headers` entries
            // (documented); `i < n_headers`.
            let header = unsafe { &*headers.add(i) };
            let name = text(header.name, &format!("headers[{i}].name"))?;
            let value = text(header.value, &format!("headers[{i}].value"))?;
            req = req.header(name, value);
        }
        req = req.body(bytes::Bytes::copy_from_slice(bytes(
            body, body_len, "body",
        )?));
        let answer = match deadline_ms {
            0 => client.inner.request(req)?,
            ms => client
                .inner
                .request_within(req, Duration::from_millis(ms))?,
        };
        let response = sy_response {
            status: answer.status.as_u16(),
            headers: answer
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        c_string(n.as_str()),
                        c_string(&String::from_utf8_lossy(v.as_bytes())),
                    )
                })
                .collect(),
            body: answer.body.to_vec(),
            region: c_string(&answer.region),
        };
        put(resp, handle::give(response, Kind::Response), "resp")
    })
}

/// The answer's status code (0 for a pointer that is not a live response).
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_response_status(resp: *const sy_response) -> u16 {
    guard::value(0, || {
        handle::get(resp, Kind::Response).map_or(0, |r| r.status)
    })
}

/// How many headers the answer has.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_response_header_count(resp: *const sy_response) -> usize {
    guard::value(0, || {
        handle::get(resp, Kind::Response).map_or(0, |r| r.headers.len())
    })
}

/// Header `index`'s name (lower case) — NULL past the end. Owned by the response.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_response_header_name(resp: *const sy_response, index: usize) -> *const c_char {
    guard::value(std::ptr::null(), || {
        handle::get(resp, Kind::Response)
            .ok()
            .and_then(|r| r.headers.get(index))
            .map_or(std::ptr::null(), |(n, _)| n.as_ptr())
    })
}

/// Header `index`'s value — NULL past the end. Owned by the response.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_response_header_value(
    resp: *const sy_response,
    index: usize,
) -> *const c_char {
    guard::value(std::ptr::null(), || {
        handle::get(resp, Kind::Response)
            .ok()
            .and_then(|r| r.headers.get(index))
            .map_or(std::ptr::null(), |(_, v)| v.as_ptr())
    })
}

/// The first value of header `name` (any case); NULL when the answer has none. Owned by the
/// response.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_response_header(
    resp: *const sy_response,
    name: *const c_char,
) -> *const c_char {
    guard::value(std::ptr::null(), || {
        let (Ok(r), Ok(name)) = (handle::get(resp, Kind::Response), text(name, "name")) else {
            return std::ptr::null();
        };
        r.headers
            .iter()
            .find(|(n, _)| n.to_bytes().eq_ignore_ascii_case(name.as_bytes()))
            .map_or(std::ptr::null(), |(_, v)| v.as_ptr())
    })
}

/// The answer's body and, in `*len` (when `len` is not NULL), its length. Owned by the
/// response; not NUL-terminated. NULL with a length of 0 for a pointer that is not a live
/// response.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_response_body(resp: *const sy_response, len: *mut usize) -> *const u8 {
    guard::value(std::ptr::null(), || {
        let (ptr, n) = handle::get(resp, Kind::Response)
            .map_or((std::ptr::null(), 0), |r| (r.body.as_ptr(), r.body.len()));
        let _ = put(len, n, "len");
        ptr
    })
}

/// The backend that answered (its `X-Backend-Id`), or NULL when it did not say. Owned by the
/// response.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_response_backend(resp: *const sy_response) -> *const c_char {
    guard::value(std::ptr::null(), || {
        handle::get(resp, Kind::Response)
            .ok()
            .and_then(|r| {
                r.headers
                    .iter()
                    .find(|(n, _)| n.to_bytes() == b"x-backend-id")
            })
            .map_or(std::ptr::null(), |(_, v)| v.as_ptr())
    })
}

/// The region that answered. Owned by the response.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_response_region(resp: *const sy_response) -> *const c_char {
    guard::value(std::ptr::null(), || {
        handle::get(resp, Kind::Response).map_or(std::ptr::null(), |r| r.region.as_ptr())
    })
}

/// Frees an answer (NULL is fine).
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_response_free(resp: *mut sy_response) {
    if resp.is_null() {
        return;
    }
    guard::value((), || {
        let _ = handle::take(resp, Kind::Response);
    })
}
