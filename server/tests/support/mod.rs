//! Shared helpers for the router's end-to-end tests: real test backends on `127.0.0.1:0`, a
//! real router started from TOML, and a small HTTP client. Every server is owned by a guard
//! that stops it on drop, so a failing test leaks nothing.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use switchyard::config::raw::{RawBackend, RawPool, RawRoute};
use switchyard::{Config, RouterHandle};
pub use switchyard_load::TestBackend;

/// The runtime test backends run on: their own threads, so a test that blocks its own
/// runtime (starting a router waits for first health checks) never starves them.
fn backend_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("test-backends")
            .enable_all()
            .build()
            .expect("backend runtime")
    })
}

/// Starts a test backend on `addr` (port 0 for a free one).
pub async fn backend_at(id: &str, addr: SocketAddr) -> std::io::Result<TestBackend> {
    let id = id.to_string();
    backend_runtime()
        .spawn(async move { TestBackend::start(&id, addr).await })
        .await
        .expect("backend start task")
}

/// Starts a gRPC test backend (`switchyard.test.Echo` and the gRPC health service) on a free
/// port, on the backends' own runtime.
pub async fn grpc_backend(name: &str) -> switchyard_load::grpc::GrpcBackend {
    let name = name.to_string();
    backend_runtime()
        .spawn(async move {
            switchyard_load::grpc::GrpcBackend::start(&name, "127.0.0.1:0".parse().unwrap()).await
        })
        .await
        .expect("gRPC backend start task")
        .expect("start gRPC backend")
}

/// Starts test backends with the given ids on free ports.
pub async fn backends(ids: &[&str]) -> Vec<TestBackend> {
    let mut out = Vec::new();
    for id in ids {
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        out.push(backend_at(id, local).await.expect("start test backend"));
    }
    out
}

/// A `[[pools]]` table for these backends (weights from `weights`, or 1).
pub fn pool(id: &str, algorithm: &str, backends: &[TestBackend], weights: &[u32]) -> String {
    RawPool {
        algorithm: algorithm
            .parse()
            .unwrap_or_else(|err| panic!("test pool: {err}")),
        backends: backends
            .iter()
            .enumerate()
            .map(|(i, b)| RawBackend {
                weight: weights.get(i).copied().unwrap_or(1),
                ..RawBackend::new(b.id(), b.addr())
            })
            .collect(),
        ..RawPool::new(id)
    }
    .to_toml()
}

/// A `[[pools]]` table like [`pool`], with `extra` pool settings (e.g. `health = {…}`).
pub fn pool_with(id: &str, algorithm: &str, backends: &[TestBackend], extra: &str) -> String {
    format!("{}{extra}\n", pool(id, algorithm, backends, &[]))
}

/// A router with one route `/api` to a pool `api` over `backends`.
pub fn api_router(backends: &[TestBackend], algorithm: &str, extra: &str) -> RouterHandle {
    router(&format!(
        "{}{}",
        route("api", "/api", "api"),
        pool_with("api", algorithm, backends, extra)
    ))
}

/// A `[[routes]]` table sending `prefix` to `pool`.
pub fn route(id: &str, prefix: &str, pool: &str) -> String {
    RawRoute::new(id, prefix, pool).to_toml()
}

/// Starts a router on free ports with one worker and the given routes and pools.
pub fn router(body: &str) -> RouterHandle {
    router_with("", body)
}

/// [`router`] with more `[node]` keys.
pub fn router_with(node: &str, body: &str) -> RouterHandle {
    let text = format!(
        "[node]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = 1\nshutdown_timeout = \"1s\"\n{node}\n[log]\naccess = false\n\n{body}"
    );
    let config = Config::from_toml_str(&text)
        .unwrap_or_else(|err| panic!("test config is invalid:\n{err}\n---\n{text}"));
    switchyard::start(config).expect("router starts")
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `X-Backend-Id` the answer came with.
    pub fn backend(&self) -> &str {
        self.header("x-backend-id").unwrap_or("-")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "body is not JSON ({err}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A keep-alive HTTP/1.1 client for tests.
#[derive(Clone)]
pub struct Client {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
    base: String,
}

/// Longest any single test request may take before the test fails with a clear message.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(20);

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            inner: HyperClient::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{addr}"),
        }
    }

    /// A client whose connections come from `local` (e.g. `127.0.0.2`: a loopback address
    /// that is not the routers' own).
    pub fn from_address(addr: SocketAddr, local: std::net::IpAddr) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(local));
        Client {
            inner: HyperClient::builder(TokioExecutor::new()).build(connector),
            base: format!("http://{addr}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(http::Method::GET, path, &[], Bytes::new()).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send(http::Method::GET, path, headers, Bytes::new())
            .await
    }

    /// Sends a request and reads the whole answer; panics with the URL on error or timeout.
    pub async fn send(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        let resp = tokio::time::timeout(REQUEST_DEADLINE, self.head(method, path, headers, body))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer within {REQUEST_DEADLINE:?}"));
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(REQUEST_DEADLINE, body.collect())
            .await
            .unwrap_or_else(|_| panic!("{path}: body not complete within {REQUEST_DEADLINE:?}"))
            .unwrap_or_else(|err| panic!("{path}: body failed: {err}"))
            .to_bytes();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    /// A GET that returns as soon as the response head arrives (the body still streaming).
    pub async fn get_head(&self, path: &str) -> http::Response<hyper::body::Incoming> {
        self.head(http::Method::GET, path, &[], Bytes::new()).await
    }

    /// Sends a request and returns as soon as the response head arrives.
    pub async fn head(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> http::Response<hyper::body::Incoming> {
        let mut req = http::Request::builder().method(method).uri(self.url(path));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let req = req.body(Full::new(body)).expect("valid test request");
        self.inner
            .request(req)
            .await
            .unwrap_or_else(|err| panic!("{path}: request failed: {err}"))
    }
}

/// Polls `check` until it returns true or `within` passes; panics with `what` on timeout.
pub async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Counts answers per backend id over `n` GETs of `path`.
pub async fn spread(
    client: &Client,
    path: &str,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..n {
        let reply = client.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        *counts.entry(reply.backend().to_string()).or_insert(0) += 1;
    }
    counts
}

/// A local address on which nothing listens (bound, then released).
pub fn dead_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A private `redis-server` on a free port, stopped on drop.
pub struct RedisServer {
    proc: Option<switchyard_load::procs::Proc>,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = switchyard_load::procs::free_port().expect("a free port");
        let mut server = RedisServer { proc: None, port };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let proc = switchyard_load::procs::start_redis(self.port)
            .unwrap_or_else(|err| panic!("redis-server (installed by .ci/run): {err}"));
        self.proc = Some(proc);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (an outage).
    pub fn kill(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill();
        }
    }

    /// Freezes it with SIGSTOP: connections stay open and nothing is answered — a hung
    /// Redis, not a dead one.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused Redis run again (SIGCONT); it answers what was sent meanwhile.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.proc.as_ref().expect("redis-server is running").pid();
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Seconds left before `key` expires (`None`: no such key, or no expiry).
    pub fn ttl(&self, key: &str) -> Option<i64> {
        let ttl: i64 = self.query(redis::cmd("TTL").arg(key));
        (ttl >= 0).then_some(ttl)
    }

    /// The value stored at `key`, if any.
    pub fn get(&self, key: &str) -> Option<String> {
        self.query(redis::cmd("GET").arg(key))
    }

    /// One command on a connection of its own. A server that cannot be reached or does not
    /// answer within 5 s fails the test saying so (a missing key is an answer, not a failure).
    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        const WITHIN: Duration = Duration::from_secs(5);
        let url = self.url();
        let answer = redis::Client::open(url.as_str()).and_then(|client| {
            let mut conn = client.get_connection_with_timeout(WITHIN)?;
            conn.set_read_timeout(Some(WITHIN))?;
            cmd.query(&mut conn)
        });
        answer.unwrap_or_else(|err| panic!("the test's Redis at {url} did not answer: {err}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.proc.is_some() {
            self.resume(); // a stopped process still dies of SIGKILL; this keeps it tidy
        }
        self.kill();
    }
}

/// A WebSocket client connection.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens a WebSocket session to `/ws/echo` through the router, with extra handshake headers.
pub async fn connect(
    addr: SocketAddr,
    extra: &[(&str, &str)],
) -> (Ws, http::Response<Option<Vec<u8>>>) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{addr}/ws/echo")
        .into_client_request()
        .unwrap();
    for (n, v) in extra {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(
        REQUEST_DEADLINE,
        tokio_tungstenite::client_async(request, stream),
    )
    .await
    .expect("handshake within the deadline")
    .expect("handshake succeeds")
}

/// Waits (bounded by [`REQUEST_DEADLINE`]) until every backend of `pool` holds no session: the
/// router's session gauges back to zero.
pub async fn sessions_end(r: &RouterHandle, pool: &str) {
    let table = r.table();
    let pool = table.pool(pool).unwrap();
    eventually("every session ended", REQUEST_DEADLINE, || {
        pool.load().backends.iter().all(|b| b.stats.sessions() == 0)
    })
    .await;
}

/// The next message of a session, within [`REQUEST_DEADLINE`].
pub async fn next(ws: &mut Ws) -> tokio_tungstenite::tungstenite::Message {
    use futures_util::StreamExt;
    tokio::time::timeout(REQUEST_DEADLINE, ws.next())
        .await
        .expect("a message within the deadline")
        .expect("the stream is open")
        .expect("no protocol error")
}

/// Reads a session's messages (each within [`REQUEST_DEADLINE`]) until its close frame; that
/// frame's code, `None` for a close without one.
pub async fn until_close(ws: &mut Ws) -> Option<u16> {
    loop {
        if let tokio_tungstenite::tungstenite::Message::Close(frame) = next(ws).await {
            return frame.map(|f| u16::from(f.code));
        }
    }
}

/// Polls an async check every 20 ms until it holds; fails the test with `what` after `within`.
pub async fn wait_for(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The admin token of routers made with [`admin_node`].
pub const ADMIN_TOKEN: &str = "a-test-admin-token-of-16-bytes+";

/// The `[node]` key giving a router [`ADMIN_TOKEN`] (from a file, as operators would).
pub fn admin_node() -> String {
    let path = std::env::temp_dir().join(format!(
        "switchyard-test-admin-token-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::write(&path, ADMIN_TOKEN).unwrap();
    format!("admin_token_file = \"{}\"", path.display())
}

/// A POST with a JSON body to a router's admin API, with [`ADMIN_TOKEN`].
pub async fn admin_post(router: &RouterHandle, path: &str, body: &str) -> Reply {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    Client::new(router.admin_addr())
        .send(
            http::Method::POST,
            path,
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            Bytes::copy_from_slice(body.as_bytes()),
        )
        .await
}

/// The fields of a `moved; key=value; …` close reason (the router's session handoff).
pub fn moved_fields(reason: &str) -> std::collections::HashMap<String, String> {
    let mut parts = reason.split(';').map(str::trim);
    assert_eq!(parts.next(), Some("moved"), "not a move: {reason:?}");
    parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The value of the line on the router's `/metrics` that starts with `series` (a name, or a
/// name with its `{labels}`), 0 when there is none.
pub async fn metric(router: &RouterHandle, series: &str) -> f64 {
    metric_at(router.admin_addr(), series).await
}

/// [`metric`] for a router known by its admin address (one started as a process).
pub async fn metric_at(admin: SocketAddr, series: &str) -> f64 {
    let text = Client::new(admin).get("/metrics").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The Redis key of a session's record (the default `sessions.key_prefix`).
pub fn session_key(token: &str) -> String {
    format!("switchyard:session:{}", &token[..36])
}

/// Ten new sessions and ten returns of the known one (`token`, on `home`) through `via` while
/// Redis is out: every answer 200 within `bound`, the known session on its backend. Returns
/// the new sessions' tokens and backends.
pub async fn sessions_while_redis_is_out(
    via: &Client,
    token: &str,
    home: &str,
    bound: Duration,
) -> Vec<(String, String)> {
    let timed = async |headers: &[(&str, &str)]| {
        let started = Instant::now();
        let reply = via.get_with("/stream/x", headers).await;
        assert!(
            started.elapsed() < bound,
            "a request took {:?} with Redis out",
            started.elapsed()
        );
        assert_eq!(reply.status, 200, "with Redis out: {}", reply.text());
        reply
    };
    let mut made = Vec::new();
    for _ in 0..10 {
        let reply = timed(&[]).await;
        made.push((
            reply.header("x-switchyard-session").unwrap().to_string(),
            reply.backend().to_string(),
        ));
        let known = timed(&[("x-switchyard-session", token)]).await;
        assert_eq!(known.backend(), home, "the known session left its backend");
    }
    made
}

/// A `switchyard serve` process (the binary, as operators run it), killed on drop.
pub struct Served {
    pub child: std::process::Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub _dir: tempfile::TempDir,
}

impl Served {
    /// Starts `switchyard serve` with the config `config(listen, admin)` makes for two free
    /// addresses (written to a file of its own), `command` adding to the process (its stdout,
    /// environment); returns once both listeners accept.
    pub async fn start(
        config: impl FnOnce(SocketAddr, SocketAddr) -> String,
        command: impl FnOnce(&mut std::process::Command),
    ) -> Served {
        let (listen, admin) = (free_addr(), free_addr());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("router.toml");
        std::fs::write(&file, config(listen, admin)).unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"));
        cmd.args(["serve", "--config"])
            .arg(&file)
            .stdin(std::process::Stdio::null());
        command(&mut cmd);
        let served = Served {
            child: cmd.spawn().expect("start switchyard"),
            listen,
            admin,
            _dir: dir,
        };
        for addr in [listen, admin] {
            wait_for(
                &format!("the router process listens on {addr}"),
                Duration::from_secs(20),
                async || tokio::net::TcpStream::connect(addr).await.is_ok(),
            )
            .await;
        }
        served
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback address for a listener the test hands to a router.
pub fn free_addr() -> SocketAddr {
    let port = switchyard_load::procs::free_port().expect("a free port");
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One command on the Redis server (or sentinel, or cluster node — unrouted) at `port`, on a
/// connection of its own; `None` when it cannot be reached or refuses the command.
pub fn redis_query<T: redis::FromRedisValue>(port: u16, cmd: &mut redis::Cmd) -> Option<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut conn = client.get_connection().ok()?;
    cmd.query(&mut conn).ok()
}

/// Every `(token, backend)` session resumes through `node` on its backend (a request with its
/// token goes to the backend it was placed on): what sharing sessions through Redis promises.
pub async fn resumes_each_on_its_backend(node: &RouterHandle, made: &[(String, String)]) {
    let client = Client::new(node.addr());
    for (i, (token, home)) in made.iter().enumerate() {
        let reply = client
            .get_with("/stream/again", &[("x-switchyard-session", token)])
            .await;
        assert_eq!(reply.status, 200, "session {i} of {}", made.len());
        assert_eq!(
            reply.backend(),
            home,
            "session {i} of {} was placed anew instead of resumed",
            made.len()
        );
    }
}
