//! WebSocket sessions: `sy_session_open` connects (the SDK reconnects and resumes it through
//! drains, deploys and region loss), `sy_session_send` queues a message, and the app polls
//! `sy_session_next_event` — nothing calls into C from the SDK's threads. An event is opaque,
//! read through the `sy_event_*` accessors and freed with `sy_event_free`.

use std::ffi::{CString, c_char};
use std::sync::Mutex;
use std::time::Duration;

use switchyard_client::{ErrorKind, Event, Message, blocking};

use crate::args::{bytes, put, text, writable};
use crate::client::{c_string, sy_client};
use crate::error::{FfiError, SY_ERR_SESSION_CLOSED, sy_error};
use crate::guard;
use crate::handle::{self, Kind};

/// A session (opaque). Made by `sy_session_open`; ended and freed by `sy_session_close`.
/// Its calls may come from any thread; `sy_session_next_event` calls are served one at a time.
#[allow(non_camel_case_types)]
pub struct sy_session {
    inner: Mutex<Option<blocking::Session>>,
}

pub const SY_EVENT_CONNECTED: i32 = 1;
pub const SY_EVENT_MESSAGE: i32 = 2;
pub const SY_EVENT_UNCONFIRMED: i32 = 3;
pub const SY_EVENT_RECONNECTING: i32 = 4;
pub const SY_EVENT_RESUMED: i32 = 5;
pub const SY_EVENT_UNDELIVERED: i32 = 6;
pub const SY_EVENT_CLOSED: i32 = 7;
/// An event kind newer than this header: skip it.
pub const SY_EVENT_OTHER: i32 = 99;

/// What `sy_session_send` and the message accessors speak of.
pub const SY_MESSAGE_TEXT: i32 = 0;
pub const SY_MESSAGE_BINARY: i32 = 1;

/// One message of an event: its bytes and whether it was text.
struct Held {
    data: Vec<u8>,
    text: bool,
}

impl From<Message> for Held {
    fn from(msg: Message) -> Held {
        match msg {
            Message::Text(t) => Held {
                data: t.into_bytes(),
                text: true,
            },
            Message::Binary(b) => Held {
                data: b.to_vec(),
                text: false,
            },
        }
    }
}

/// An event (opaque): `sy_event_kind` says which; the other accessors read its fields.
#[allow(non_camel_case_types)]
pub struct sy_event {
    kind: i32,
    /// `MESSAGE`: the message; `UNCONFIRMED`, `UNDELIVERED`: the messages.
    messages: Vec<Held>,
    /// `CONNECTED`, `RESUMED`: the region; `RECONNECTING`, `CLOSED`: the reason.
    text: CString,
    /// `CONNECTED`, `RESUMED`: the backend, when it said.
    backend: Option<CString>,
    /// `RECONNECTING`, `CLOSED`: the close code (0: none, a dead path).
    code: u16,
    /// `RECONNECTING`: the attempt; `RESUMED`: messages re-sent; `UNCONFIRMED`: `not_kept`.
    count: u64,
    /// `RECONNECTING`: the delay before it, ms.
    delay_ms: u64,
    /// `RESUMED`: nothing the app sent can be missing.
    recovered: bool,
}

impl From<Event> for sy_event {
    fn from(event: Event) -> sy_event {
        let mut e = sy_event {
            kind: 0,
            messages: Vec::new(),
            text: CString::default(),
            backend: None,
            code: 0,
            count: 0,
            delay_ms: 0,
            recovered: false,
        };
        match event {
            Event::Connected { region, backend } => {
                e.kind = SY_EVENT_CONNECTED;
                e.text = c_string(&region);
                e.backend = backend.as_deref().map(c_string);
            }
            Event::Message(msg) => {
                e.kind = SY_EVENT_MESSAGE;
                e.messages.push(msg.into());
            }
            Event::Unconfirmed { messages, not_kept } => {
                e.kind = SY_EVENT_UNCONFIRMED;
                e.messages = messages.into_iter().map(Held::from).collect();
                e.count = not_kept;
            }
            Event::Reconnecting {
                reason,
                attempt,
                delay,
                code,
            } => {
                e.kind = SY_EVENT_RECONNECTING;
                e.text = c_string(&reason);
                e.count = u64::from(attempt);
                e.delay_ms = delay.as_millis() as u64;
                e.code = code.unwrap_or(0);
            }
            Event::Resumed {
                region,
                backend,
                recovered,
                resent,
            } => {
                e.kind = SY_EVENT_RESUMED;
                e.text = c_string(&region);
                e.backend = backend.as_deref().map(c_string);
                e.recovered = recovered;
                e.count = resent as u64;
            }
            Event::Undelivered { messages } => {
                e.kind = SY_EVENT_UNDELIVERED;
                e.messages = messages.into_iter().map(Held::from).collect();
            }
            Event::Closed { code, reason } => {
                e.kind = SY_EVENT_CLOSED;
                e.code = code;
                e.text = c_string(&reason);
            }
            _ => e.kind = SY_EVENT_OTHER,
        }
        e
    }
}

/// Opens a session on `path` (e.g. `"/ws/echo"`), waiting until it is connected (within the
/// client's deadline). NULL and `*err` on failure.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_session_open(
    client: *const sy_client,
    path: *const c_char,
    err: *mut *mut sy_error,
) -> *mut sy_session {
    let mut made = std::ptr::null_mut();
    guard::call(err, || {
        let client = handle::get(client, Kind::Client)?;
        let session = client.inner.session(text(path, "path")?)?;
        made = handle::give(
            sy_session {
                inner: Mutex::new(Some(session)),
            },
            Kind::Session,
        );
        Ok(())
    });
    made
}

fn with<T>(
    session: *const sy_session,
    work: impl FnOnce(&mut blocking::Session) -> Result<T, FfiError>,
) -> Result<T, FfiError> {
    let session = handle::get(session, Kind::Session)?;
    let mut inner = session.inner.lock().unwrap_or_else(|e| e.into_inner());
    match inner.as_mut() {
        Some(s) => work(s),
        None => Err(FfiError::new(
            SY_ERR_SESSION_CLOSED,
            "the session is closed",
        )),
    }
}

/// Queues a message (`SY_MESSAGE_TEXT`: `data` must be UTF-8; `SY_MESSAGE_BINARY`); never
/// waits on the network. Sent in order, resent after a reconnect when the router says it did
/// not arrive.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_session_send(
    session: *mut sy_session,
    kind: i32,
    data: *const u8,
    len: usize,
    err: *mut *mut sy_error,
) -> i32 {
    guard::call(err, || {
        let data = bytes(data, len, "data")?;
        let msg = match kind {
            SY_MESSAGE_TEXT => Message::text(
                std::str::from_utf8(data)
                    .map_err(|e| FfiError::invalid(format!("a text message must be UTF-8: {e}")))?,
            ),
            SY_MESSAGE_BINARY => Message::binary(bytes::Bytes::copy_from_slice(data)),
            other => {
                return Err(FfiError::invalid(format!(
                    "kind {other}: expected SY_MESSAGE_TEXT (0) or SY_MESSAGE_BINARY (1)"
                )));
            }
        };
        with(session, |s| Ok(s.send(msg)?))
    })
}

/// Waits up to `timeout_ms` for the session's next event. `SY_OK` with `*event` set to it (the
/// caller frees it with `sy_event_free`), or with `*event` NULL once the session is over and
/// every event was read; `SY_ERR_TIMEOUT` when none came in time (the session goes on).
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_session_next_event(
    session: *mut sy_session,
    timeout_ms: u64,
    event: *mut *mut sy_event,
    err: *mut *mut sy_error,
) -> i32 {
    guard::call(err, || {
        writable(event, "event")?;
        let next = with(session, |s| {
            match s.next_timeout(Duration::from_millis(timeout_ms)) {
                Ok(next) => Ok(next),
                Err(e) if matches!(e.kind, ErrorKind::Timeout(_)) => Err(FfiError {
                    message: format!("no event within {timeout_ms} ms"),
                    ..FfiError::from(e)
                }),
                Err(e) => Err(e.into()),
            }
        })?;
        let ptr = next.map_or(std::ptr::null_mut(), |e| {
            handle::give(sy_event::from(e), Kind::Event)
        });
        put(event, ptr, "event")
    })
}

/// Closes the session (at most about twice the client's `send_timeout`) and frees it: the
/// handle is gone afterwards, whatever the result. Messages queued and not delivered are
/// reported as `SY_ERR_UNDELIVERED`.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_session_close(session: *mut sy_session, err: *mut *mut sy_error) -> i32 {
    guard::call(err, || {
        let session = handle::take(session, Kind::Session)?;
        let inner = session
            .inner
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        match inner {
            Some(s) => Ok(s.close()?),
            None => Ok(()),
        }
    })
}

/// The event's kind (`SY_EVENT_*`); 0 for a pointer that is not a live event.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_event_kind(event: *const sy_event) -> i32 {
    guard::value(0, || handle::get(event, Kind::Event).map_or(0, |e| e.kind))
}

/// `SY_EVENT_MESSAGE`: the message's bytes (its length in `*len`, when `len` is not NULL);
/// NULL with 0 for other events. Owned by the event; not NUL-terminated.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_event_data(event: *const sy_event, len: *mut usize) -> *const u8 {
    sy_event_message(event, 0, len, std::ptr::null_mut())
}

/// `SY_EVENT_MESSAGE`: whether the message is text (UTF-8).
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_event_is_text(event: *const sy_event) -> bool {
    guard::value(false, || {
        handle::get(event, Kind::Event)
            .is_ok_and(|e| e.kind == SY_EVENT_MESSAGE && e.messages.first().is_some_and(|m| m.text))
    })
}

/// How many messages the event holds: 1 for `MESSAGE`; those of `UNCONFIRMED` and
/// `UNDELIVERED`; 0 otherwise.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_event_message_count(event: *const sy_event) -> usize {
    guard::value(0, || {
        handle::get(event, Kind::Event).map_or(0, |e| e.messages.len())
    })
}

/// Message `index` of the event: its bytes, its length in `*len` and in `*kind`
/// `SY_MESSAGE_TEXT` or `SY_MESSAGE_BINARY` (either out-pointer may be NULL); NULL past the
/// end. Owned by the event.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_event_message(
    event: *const sy_event,
    index: usize,
    len: *mut usize,
    kind: *mut i32,
) -> *const u8 {
    guard::value(std::ptr::null(), || {
        let held = handle::get(event, Kind::Event)
            .ok()
            .and_then(|e| e.messages.get(index));
        if !len.is_null() {
            let _ = put(len, held.map_or(0, |m| m.data.len()), "len");
        }
        if !kind.is_null() {
            let text = held.is_some_and(|m| m.text);
            let _ = put(
                kind,
                if text {
                    SY_MESSAGE_TEXT
                } else {
                    SY_MESSAGE_BINARY
                },
                "kind",
            );
        }
        held.map_or(std::ptr::null(), |m| m.data.as_ptr())
    })
}

/// `SY_EVENT_RECONNECTING`, `SY_EVENT_CLOSED`: the close code (0: none — a dead path).
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_event_close_code(event: *const sy_event) -> u16 {
    guard::value(0, || handle::get(event, Kind::Event).map_or(0, |e| e.code))
}

/// `SY_EVENT_RECONNECTING`, `SY_EVENT_CLOSED`: the reason; `SY_EVENT_CONNECTED`,
/// `SY_EVENT_RESUMED`: the region. Empty for other events; owned by the event.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_event_text(event: *const sy_event) -> *const c_char {
    guard::value(std::ptr::null(), || {
        handle::get(event, Kind::Event).map_or(std::ptr::null(), |e| e.text.as_ptr())
    })
}

/// `SY_EVENT_CONNECTED`, `SY_EVENT_RESUMED`: the backend, when the router said; NULL
/// otherwise. Owned by the event.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_event_backend(event: *const sy_event) -> *const c_char {
    guard::value(std::ptr::null(), || {
        handle::get(event, Kind::Event)
            .ok()
            .and_then(|e| e.backend.as_ref())
            .map_or(std::ptr::null(), |b| b.as_ptr())
    })
}

/// `SY_EVENT_RECONNECTING`: the attempt (from 1); `SY_EVENT_RESUMED`: messages re-sent;
/// `SY_EVENT_UNCONFIRMED`: earlier messages no longer kept that may be missing too.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_event_count(event: *const sy_event) -> u64 {
    guard::value(0, || handle::get(event, Kind::Event).map_or(0, |e| e.count))
}

/// `SY_EVENT_RECONNECTING`: how long the SDK waits before it, in milliseconds.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_event_delay_ms(event: *const sy_event) -> u64 {
    guard::value(0, || {
        handle::get(event, Kind::Event).map_or(0, |e| e.delay_ms)
    })
}

/// `SY_EVENT_RESUMED`: true when nothing the app sent can be missing.
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_event_recovered(event: *const sy_event) -> bool {
    guard::value(false, || {
        handle::get(event, Kind::Event).is_ok_and(|e| e.recovered)
    })
}

/// Frees an event (NULL is fine).
// SAFETY: exported to C under its `sy_` name, which nothing else in a program defines.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn sy_event_free(event: *mut sy_event) {
    if event.is_null() {
        return;
    }
    guard::value((), || {
        let _ = handle::take(event, Kind::Event);
    })
}
