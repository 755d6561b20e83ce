//! The test backend: a real HTTP/1.1 + WebSocket server that benchmarks, scenarios, tests and
//! `switchyard demo` put behind the router.
//!
//! Every answer names the backend (`X-Backend-Id` and the body), so a client can tell where a
//! request landed. Query knobs shape the answer (see [`Knobs`]); `/health` answers what
//! [`TestBackend::set_health`] or `POST /admin/health {"status": N}` last set; `/ws/echo`
//! answers each WebSocket message as `<id>: <message>` (a text `close:CODE:REASON` makes it
//! close the session with that code).
//!
//! It must never be the bottleneck of a benchmark: the default answer is a small fixed body
//! served without allocation beyond hyper's own, and WebSocket sessions keep small buffers.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Message, Role, WebSocketConfig};

/// Header every answer carries with the backend's id.
pub const BACKEND_ID_HEADER: &str = "x-backend-id";
/// Largest body `?bytes=` may ask for (1 GiB): big enough for any stream test, small enough
/// that a typo cannot make the backend stream forever.
pub const MAX_BODY_BYTES: u64 = 1 << 30;
/// Chunk size of streamed bodies unless `?chunk_bytes=` says otherwise.
pub const DEFAULT_CHUNK_BYTES: usize = 16 * 1024;
/// WebSocket read buffer: small, because idle sessions should cost little (PERF-NOTES: the
/// 128 KiB default is zero-filled on every read and stays resident).
const WS_READ_BUFFER_BYTES: usize = 4096;

type Body = Either<Full<Bytes>, BoxBody<Bytes, io::Error>>;

/// A running test backend. Dropping it stops the listener and cuts every open connection, as a
/// killed process would.
pub struct TestBackend {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

struct State {
    id: String,
    id_body: Bytes,
    id_header: HeaderValue,
    health: AtomicU16,
    /// Added before `/health` answers: a slow health endpoint.
    health_delay_ms: AtomicU64,
    /// Body of `/health` answers: `ok`, or a JSON load report.
    health_body: std::sync::Mutex<Bytes>,
    /// Added before every answer but `/health`: makes one backend slower than its peers.
    base_delay_ms: AtomicU64,
    /// When not 0, every answer but `/health` gets this status: a backend that passes its
    /// health checks but fails real requests.
    fail_status: AtomicU16,
    /// With `fail_status`: only one answer in this many gets it (0 or 1: every answer).
    fail_every: AtomicU64,
    fail_seq: AtomicU64,
    requests: AtomicU64,
    connections: AtomicU64,
    /// Turns `true` (or its sender drops) on stop: upgraded WebSocket sessions watch it too.
    shutdown: watch::Receiver<bool>,
}

impl TestBackend {
    /// Binds `listen` (use port 0 for a free port) and serves on the current tokio runtime.
    pub async fn start(id: &str, listen: SocketAddr) -> io::Result<TestBackend> {
        let id_header = HeaderValue::from_str(id).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("backend id {id:?} is not a valid header value"),
            )
        })?;
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (shutdown, rx) = watch::channel(false);
        let state = Arc::new(State {
            id: id.to_string(),
            id_body: Bytes::from(id.to_string()),
            id_header,
            health: AtomicU16::new(200),
            health_delay_ms: AtomicU64::new(0),
            health_body: std::sync::Mutex::new(Bytes::from_static(b"ok")),
            base_delay_ms: AtomicU64::new(0),
            fail_status: AtomicU16::new(0),
            fail_every: AtomicU64::new(0),
            fail_seq: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            shutdown: rx.clone(),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone(), rx));
        Ok(TestBackend {
            addr,
            state,
            shutdown,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// Status `/health` answers from now on.
    pub fn set_health(&self, status: u16) {
        self.state.health.store(status, Ordering::Relaxed);
    }

    /// Delay before every `/health` answer from now on.
    pub fn set_health_delay(&self, delay: Duration) {
        self.state
            .health_delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// What `/health` answers from now on: a JSON load report such as
    /// `{"cpu": 0.9}` or `{"sessions": 90, "capacity": 100}` (`None`: plain `ok`). Also
    /// settable with `POST /admin/load {...}`.
    pub fn set_load_report(&self, report: Option<&str>) {
        let body = report.map_or(Bytes::from_static(b"ok"), |r| Bytes::from(r.to_string()));
        *self.state.health_body.lock().expect("health body lock") = body;
    }

    /// Delay added before every answer from now on (`/health` excepted).
    pub fn set_delay(&self, delay: Duration) {
        self.state
            .base_delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// From now on, answer every request but `/health` with `status` (`None`: as asked).
    pub fn set_fail_status(&self, status: Option<u16>) {
        self.state.fail_every.store(0, Ordering::Relaxed);
        self.state
            .fail_status
            .store(status.unwrap_or(0), Ordering::Relaxed);
    }

    /// From now on, answer one request in `every` (`/health` excepted) with `status`, the
    /// others as asked: a backend with an error rate of `1 / every`.
    pub fn set_fail_every(&self, status: u16, every: u64) {
        self.state.fail_every.store(every, Ordering::Relaxed);
        self.state.fail_status.store(status, Ordering::Relaxed);
    }

    /// TCP connections accepted so far: shows whether a client reuses keep-alive connections.
    pub fn connections_accepted(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Requests answered so far, `/health` excluded.
    pub fn requests_served(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting and cuts every open connection, then waits for the accept loop to end.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let (stream, _) = match accepted {
            Ok(conn) => conn,
            Err(err) => {
                // Out of file descriptors and similar: report, back off briefly, keep serving.
                eprintln!("switchyard-backend {}: accept failed: {err}", state.id);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        state.connections.fetch_add(1, Ordering::Relaxed);
        let state = state.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(state.clone(), req));
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::select! {
                _ = conn => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

/// What the query string asks of an answer.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Knobs {
    /// `delay_ms=N`: wait N ms before sending the response head.
    pub delay_ms: u64,
    /// `status=N`: answer with this status.
    pub status: Option<u16>,
    /// `bytes=N`: a body of exactly N bytes instead of the id.
    pub bytes: Option<u64>,
    /// `chunk_ms=N`: stream the body in chunks, N ms apart (chunked encoding).
    pub chunk_ms: Option<u64>,
    /// `chunk_bytes=N`: size of each streamed chunk.
    pub chunk_bytes: Option<usize>,
    /// `echo=1`: answer with a JSON description of the request (headers, body length).
    pub echo: bool,
    /// `drop_after=N`: promise the whole body (`Content-Length: 2N`, or chunked with `chunk_ms`),
    /// send N bytes of it, then cut the connection.
    pub drop_after: Option<u64>,
    /// `close=1`: answer with `Connection: close` and close the connection afterwards.
    pub close: bool,
    /// `retry_after=N`: add `Retry-After: N` (seconds) to the answer.
    pub retry_after: Option<u64>,
}

impl Knobs {
    /// Parses a query string; unknown keys are ignored, bad numbers are an error naming the key.
    pub fn parse(query: &str) -> Result<Knobs, String> {
        let mut knobs = Knobs::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let num = |v: &str| -> Result<u64, String> {
                v.parse::<u64>()
                    .map_err(|_| format!("query {key}={v}: expected a whole number"))
            };
            match key {
                "delay_ms" => knobs.delay_ms = num(value)?,
                "status" => {
                    let n = num(value)?;
                    if !(100..=999).contains(&n) || (100..200).contains(&n) {
                        return Err(format!("query status={value}: expected 200..=999"));
                    }
                    knobs.status = Some(n as u16);
                }
                "bytes" => {
                    let n = num(value)?;
                    if n > MAX_BODY_BYTES {
                        return Err(format!("query bytes={value}: at most {MAX_BODY_BYTES}"));
                    }
                    knobs.bytes = Some(n);
                }
                "chunk_ms" => knobs.chunk_ms = Some(num(value)?),
                "chunk_bytes" => {
                    let n = num(value)?;
                    if n == 0 || n > 1 << 24 {
                        return Err(format!("query chunk_bytes={value}: expected 1..=16777216"));
                    }
                    knobs.chunk_bytes = Some(n as usize);
                }
                "echo" => knobs.echo = value != "0",
                "drop_after" => knobs.drop_after = Some(num(value)?),
                "close" => knobs.close = value != "0",
                "retry_after" => knobs.retry_after = Some(num(value)?),
                _ => {}
            }
        }
        Ok(knobs)
    }
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    if path == "/health" {
        let delay = state.health_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let status = StatusCode::from_u16(state.health.load(Ordering::Relaxed))
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let body = state.health_body.lock().expect("health body lock").clone();
        return Ok(respond(&state, status, Either::Left(Full::new(body))));
    }
    state.requests.fetch_add(1, Ordering::Relaxed);
    if path == "/admin/health" && req.method() == Method::POST {
        return Ok(set_health(&state, req).await);
    }
    if path == "/admin/fail" && req.method() == Method::POST {
        return Ok(set_fail(&state, req).await);
    }
    if path == "/admin/load" && req.method() == Method::POST {
        return Ok(set_load(&state, req).await);
    }
    if path == "/ws/echo" && is_websocket_upgrade(&req) {
        return Ok(upgrade_websocket(state, req));
    }
    let knobs = match Knobs::parse(req.uri().query().unwrap_or("")) {
        Ok(knobs) => knobs,
        Err(msg) => return Ok(plain(&state, StatusCode::BAD_REQUEST, msg)),
    };
    let delay_ms = knobs
        .delay_ms
        .saturating_add(state.base_delay_ms.load(Ordering::Relaxed));
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    let mut forced = state.fail_status.load(Ordering::Relaxed);
    let every = state.fail_every.load(Ordering::Relaxed);
    if forced != 0
        && every > 1
        && !state
            .fail_seq
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(every)
    {
        forced = 0;
    }
    let status = (forced != 0)
        .then_some(forced)
        .or(knobs.status)
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    if knobs.echo {
        return Ok(echo(&state, status, req).await);
    }
    // Requests with a body: read it all (so keep-alive stays usable), answer as asked.
    if !is_bodiless(&req) {
        let _ = req.into_body().collect().await;
    }
    let Some(total) = knobs
        .bytes
        .or(knobs.drop_after.map(|n| n.saturating_mul(2).max(1)))
    else {
        let mut resp = respond(
            &state,
            status,
            Either::Left(Full::new(state.id_body.clone())),
        );
        if knobs.close {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(seconds) = knobs.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        return Ok(resp);
    };
    let chunk = knobs.chunk_bytes.unwrap_or(DEFAULT_CHUNK_BYTES);
    let gap = knobs.chunk_ms.map(Duration::from_millis);
    let cut_at = knobs.drop_after;
    let mut resp = respond(&state, status, body_stream(total, chunk, gap, cut_at));
    // Paced bodies are chunked (no length), even when cut: so a cut can be tested both ways.
    if gap.is_none() {
        resp.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    }
    Ok(resp)
}

fn is_bodiless<B>(req: &Request<B>) -> bool {
    !req.headers().contains_key(header::TRANSFER_ENCODING)
        && req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0")
}

/// `total` bytes of filler in `chunk`-sized frames, `gap` apart; with `cut_at`, an error after
/// that many bytes so hyper cuts the connection mid-body.
fn body_stream(total: u64, chunk: usize, gap: Option<Duration>, cut_at: Option<u64>) -> Body {
    let filler = Bytes::from(vec![b'x'; chunk]);
    let stream = futures_util::stream::unfold(0u64, move |sent| {
        let filler = filler.clone();
        async move {
            if sent == u64::MAX {
                return None;
            }
            let limit = cut_at.unwrap_or(total).min(total);
            if sent >= limit {
                if cut_at.is_some() {
                    // Let hyper flush what was sent first, so the client sees a response
                    // head and part of a body before the cut.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let err = io::Error::new(io::ErrorKind::ConnectionAborted, "drop_after");
                    return Some((Err(err), u64::MAX));
                }
                return None;
            }
            if let (Some(gap), true) = (gap, sent > 0) {
                tokio::time::sleep(gap).await;
            }
            let n = (limit - sent).min(filler.len() as u64) as usize;
            Some((Ok(Frame::data(filler.slice(..n))), sent + n as u64))
        }
    });
    Either::Right(BodyExt::boxed(StreamBody::new(stream)))
}

fn respond(state: &State, status: StatusCode, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        HeaderName::from_static(BACKEND_ID_HEADER),
        state.id_header.clone(),
    );
    resp
}

fn plain(state: &State, status: StatusCode, msg: String) -> Response<Body> {
    let mut resp = respond(state, status, Either::Left(Full::new(Bytes::from(msg))));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// `POST /admin/fail {"status": 503, "every": 20}`: from now on one answer in `every` (default
/// 1: all) gets `status`; `{"status": 0}` stops it. What [`TestBackend::set_fail_every`] does,
/// for a backend in another process.
async fn set_fail(state: &State, req: Request<Incoming>) -> Response<Body> {
    #[derive(serde::Deserialize)]
    struct SetFail {
        status: u16,
        #[serde(default)]
        every: u64,
    }
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) => return plain(state, StatusCode::BAD_REQUEST, format!("body: {err}")),
    };
    match serde_json::from_slice::<SetFail>(&body) {
        Ok(SetFail { status, every }) if status == 0 || (100..=999).contains(&status) => {
            state.fail_every.store(every, Ordering::Relaxed);
            state.fail_status.store(status, Ordering::Relaxed);
            plain(
                state,
                StatusCode::OK,
                format!("fail {status} one in {}", every.max(1)),
            )
        }
        Ok(SetFail { status, .. }) => plain(
            state,
            StatusCode::BAD_REQUEST,
            format!("status {status}: expected 0 (off) or 100..=999"),
        ),
        Err(err) => plain(
            state,
            StatusCode::BAD_REQUEST,
            format!("expected {{\"status\": N, \"every\": N}}: {err}"),
        ),
    }
}

async fn set_health(state: &State, req: Request<Incoming>) -> Response<Body> {
    #[derive(serde::Deserialize)]
    struct SetHealth {
        status: u16,
    }
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) => return plain(state, StatusCode::BAD_REQUEST, format!("body: {err}")),
    };
    match serde_json::from_slice::<SetHealth>(&body) {
        Ok(SetHealth { status }) if StatusCode::from_u16(status).is_ok() && status >= 200 => {
            state.health.store(status, Ordering::Relaxed);
            plain(state, StatusCode::OK, format!("health {status}"))
        }
        Ok(SetHealth { status }) => plain(
            state,
            StatusCode::BAD_REQUEST,
            format!("status {status}: expected 200..=999"),
        ),
        Err(err) => plain(
            state,
            StatusCode::BAD_REQUEST,
            format!("expected {{\"status\": N}}: {err}"),
        ),
    }
}

async fn set_load(state: &State, req: Request<Incoming>) -> Response<Body> {
    let body = match req.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(err) => return plain(state, StatusCode::BAD_REQUEST, format!("body: {err}")),
    };
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Object(_)) => {
            *state.health_body.lock().expect("health body lock") = body;
            plain(state, StatusCode::OK, "load report set".to_string())
        }
        _ => plain(
            state,
            StatusCode::BAD_REQUEST,
            "expected a JSON object such as {\"cpu\": 0.9}".to_string(),
        ),
    }
}

async fn echo(state: &State, status: StatusCode, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body_bytes = match body.collect().await {
        Ok(body) => body.to_bytes().len(),
        Err(err) => return plain(state, StatusCode::BAD_REQUEST, format!("body: {err}")),
    };
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<_> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_string(), values.join(", ").into());
    }
    let json = serde_json::json!({
        "id": state.id,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or(""),
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let mut resp = respond(
        state,
        status,
        Either::Left(Full::new(json.to_string().into())),
    );
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    let has_token = |name: HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    req.method() == Method::GET
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
}

fn upgrade_websocket(state: Arc<State>, mut req: Request<Incoming>) -> Response<Body> {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return plain(
            &state,
            StatusCode::BAD_REQUEST,
            "missing Sec-WebSocket-Key".to_string(),
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let offered_protocol = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|p| p.trim().to_string());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let session_state = state.clone();
    let mut shutdown = state.shutdown.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(WS_READ_BUFFER_BYTES)
            .write_buffer_size(0);
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        tokio::select! {
            _ = echo_session(&session_state.id, ws) => {}
            _ = shutdown.changed() => {}
        }
    });
    let mut resp = respond(
        &state,
        StatusCode::SWITCHING_PROTOCOLS,
        Either::Left(Full::new(Bytes::new())),
    );
    let headers = resp.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    // Like most servers, pick the first subprotocol the client offers.
    if let Some(first) = offered_protocol
        && let Ok(v) = HeaderValue::from_str(&first)
    {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
    }
    resp
}

async fn echo_session<S>(id: &str, mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(msg) = ws.next().await {
        let reply = match msg {
            // `close:CODE:REASON` asks the backend to close the session with that code.
            Ok(Message::Text(text)) if text.as_str().starts_with("close:") => {
                let mut parts = text.as_str().splitn(3, ':').skip(1);
                let code = parts
                    .next()
                    .and_then(|c| c.parse::<u16>().ok())
                    .unwrap_or(1000);
                let reason = parts.next().unwrap_or("").to_string();
                let _ = ws
                    .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                        code: code.into(),
                        reason: reason.into(),
                    }))
                    .await;
                continue;
            }
            Ok(Message::Text(text)) => Message::text(format!("{id}: {}", text.as_str())),
            Ok(Message::Binary(data)) => {
                let mut out = Vec::with_capacity(id.len() + 2 + data.len());
                out.extend_from_slice(id.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(&data);
                Message::binary(out)
            }
            // Pings are answered by tungstenite itself; a close is echoed by it too, but the
            // reply is only queued: the next read flushes it and then ends the stream.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Close(_)) => {
                continue;
            }
            Err(_) => break,
        };
        if ws.send(reply).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(query: &str) -> String {
        match Knobs::parse(query) {
            Ok(knobs) => panic!("query {query:?} should be rejected, parsed as {knobs:?}"),
            Err(msg) => msg,
        }
    }

    #[test]
    fn empty_query_gives_default_knobs() {
        assert_eq!(Knobs::parse(""), Ok(Knobs::default()));
        assert_eq!(Knobs::parse("&&"), Ok(Knobs::default()));
    }

    #[test]
    fn every_knob_is_parsed() {
        assert_eq!(Knobs::parse("delay_ms=250").unwrap().delay_ms, 250);
        assert_eq!(Knobs::parse("status=418").unwrap().status, Some(418));
        assert_eq!(Knobs::parse("bytes=100000").unwrap().bytes, Some(100_000));
        assert_eq!(Knobs::parse("bytes=0").unwrap().bytes, Some(0));
        assert_eq!(Knobs::parse("chunk_ms=10").unwrap().chunk_ms, Some(10));
        assert_eq!(
            Knobs::parse("chunk_bytes=1000").unwrap().chunk_bytes,
            Some(1000)
        );
        assert_eq!(
            Knobs::parse("drop_after=1000").unwrap().drop_after,
            Some(1000)
        );
        assert!(Knobs::parse("echo=1").unwrap().echo);
        assert!(
            Knobs::parse("echo").unwrap().echo,
            "a bare `echo` turns echo on"
        );
        assert!(!Knobs::parse("echo=0").unwrap().echo);
    }

    #[test]
    fn knobs_combine() {
        let knobs = Knobs::parse(
            "delay_ms=5&status=503&bytes=5000&chunk_bytes=1000&chunk_ms=10&echo=1&drop_after=7&close=1&retry_after=3",
        )
        .unwrap();
        assert_eq!(
            knobs,
            Knobs {
                delay_ms: 5,
                status: Some(503),
                bytes: Some(5000),
                chunk_ms: Some(10),
                chunk_bytes: Some(1000),
                echo: true,
                drop_after: Some(7),
                close: true,
                retry_after: Some(3),
            }
        );
    }

    #[test]
    fn unknown_keys_are_ignored() {
        assert_eq!(
            Knobs::parse("foo=bar&flag&delay_ms=5&x=not-a-number"),
            Ok(Knobs {
                delay_ms: 5,
                ..Knobs::default()
            })
        );
    }

    #[test]
    fn bad_numbers_are_errors_naming_the_key() {
        for (query, named) in [
            ("delay_ms=x", "delay_ms=x"),
            ("delay_ms=", "delay_ms="),
            ("delay_ms=-1", "delay_ms=-1"),
            ("delay_ms=1.5", "delay_ms=1.5"),
            (
                "delay_ms=18446744073709551616",
                "delay_ms=18446744073709551616",
            ),
            ("status=ok", "status=ok"),
            ("bytes=lots", "bytes=lots"),
            ("chunk_ms=x", "chunk_ms=x"),
            ("chunk_bytes=x", "chunk_bytes=x"),
            ("drop_after=x", "drop_after=x"),
            ("echo=1&delay_ms=abc", "delay_ms=abc"),
        ] {
            let msg = err_of(query);
            assert!(
                msg.contains(named),
                "error for {query:?} should name {named:?}: {msg}"
            );
        }
    }

    #[test]
    fn status_outside_200_to_999_is_rejected() {
        for bad in ["0", "99", "100", "101", "199", "1000", "65535", "70000"] {
            let msg = err_of(&format!("status={bad}"));
            assert!(msg.contains(&format!("status={bad}")), "{msg}");
        }
        for good in [200u16, 204, 418, 503, 999] {
            assert_eq!(
                Knobs::parse(&format!("status={good}")).unwrap().status,
                Some(good)
            );
        }
    }

    #[test]
    fn bytes_above_the_cap_are_rejected() {
        assert_eq!(
            Knobs::parse(&format!("bytes={MAX_BODY_BYTES}"))
                .unwrap()
                .bytes,
            Some(MAX_BODY_BYTES)
        );
        let too_many = MAX_BODY_BYTES + 1;
        let msg = err_of(&format!("bytes={too_many}"));
        assert!(msg.contains(&format!("bytes={too_many}")), "{msg}");
    }

    #[test]
    fn chunk_bytes_must_be_1_to_16_mib() {
        let msg = err_of("chunk_bytes=0");
        assert!(msg.contains("chunk_bytes=0"), "{msg}");
        assert_eq!(Knobs::parse("chunk_bytes=1").unwrap().chunk_bytes, Some(1));
        assert_eq!(
            Knobs::parse("chunk_bytes=16777216").unwrap().chunk_bytes,
            Some(1 << 24)
        );
        let msg = err_of("chunk_bytes=16777217");
        assert!(msg.contains("chunk_bytes=16777217"), "{msg}");
    }
}
