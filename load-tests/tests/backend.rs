//! Checks the test backend's promise over real sockets: every answer names the backend, the
//! query knobs shape the answer as documented, `/health` follows `set_health` and
//! `POST /admin/health`, `/ws/echo` echoes WebSocket messages as `<id>: <message>`, and `stop`
//! really stops it.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use switchyard_load::TestBackend;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Bound on every single network step; generous so a loaded CI machine does not flake.
const STEP: Duration = Duration::from_secs(10);

/// Awaits `fut`, panicking with `what` if it takes longer than [`STEP`].
async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {STEP:?} waiting for {what}"),
    }
}

/// A backend with id `b1` on a free port.
async fn start_b1() -> TestBackend {
    within(
        "the backend to start",
        TestBackend::start("b1", "127.0.0.1:0".parse().unwrap()),
    )
    .await
    .expect("backend starts on 127.0.0.1:0")
}

/// A small HTTP/1.1 client aimed at one backend.
struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    fn to(backend: &TestBackend) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{}", backend.addr()),
        }
    }

    fn request(&self, method: Method, path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .body(Full::new(body.into()))
            .unwrap()
    }

    /// Sends `req` and returns once the response head has arrived.
    async fn send(&self, req: Request<Full<Bytes>>) -> Response<Incoming> {
        let what = format!("the response head to {} {}", req.method(), req.uri());
        within(&what, self.client.request(req))
            .await
            .unwrap_or_else(|err| panic!("{what}: {err}"))
    }

    async fn get(&self, path: &str) -> Response<Incoming> {
        self.send(self.request(Method::GET, path, Bytes::new()))
            .await
    }

    async fn post(&self, path: &str, body: impl Into<Bytes>) -> Response<Incoming> {
        self.send(self.request(Method::POST, path, body)).await
    }

    /// GET `path`, returning the status and the whole body.
    async fn get_all(&self, path: &str) -> (StatusCode, Bytes) {
        let resp = self.get(path).await;
        let status = resp.status();
        (status, body_of(resp).await)
    }
}

/// Reads the whole body of `resp`.
async fn body_of(resp: Response<Incoming>) -> Bytes {
    within("the response body", resp.into_body().collect())
        .await
        .expect("the body arrives whole")
        .to_bytes()
}

fn header_of<'a, B>(resp: &'a Response<B>, name: &str) -> Option<&'a str> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().expect("header is ASCII"))
}

#[tokio::test]
async fn plain_get_answers_with_the_backend_id_and_is_counted() {
    let backend = start_b1().await;
    let http = Http::to(&backend);
    assert_eq!(backend.id(), "b1");
    assert_eq!(backend.requests_served(), 0);

    let resp = http.get("/anything").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_of(&resp, "x-backend-id"), Some("b1"));
    assert_eq!(body_of(resp).await, "b1");
    assert_eq!(backend.requests_served(), 1);

    // Keep-alive: a second request on the same client is answered and counted too.
    assert_eq!(
        http.get_all("/other/path").await,
        (StatusCode::OK, "b1".into())
    );
    assert_eq!(backend.requests_served(), 2);
}

#[tokio::test]
async fn health_follows_set_health_and_the_admin_endpoint() {
    let backend = start_b1().await;
    let http = Http::to(&backend);

    let resp = http.get("/health").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_of(&resp, "x-backend-id"), Some("b1"));
    body_of(resp).await;
    assert_eq!(backend.requests_served(), 0, "/health is not counted");

    backend.set_health(503);
    assert_eq!(
        http.get_all("/health").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let resp = http.post("/admin/health", r#"{"status": 200}"#).await;
    assert_eq!(resp.status(), StatusCode::OK);
    body_of(resp).await;
    assert_eq!(http.get_all("/health").await.0, StatusCode::OK);

    for bad in ["not json", r#"{"status": "up"}"#, "{}", r#"{"status": 99}"#] {
        let resp = http.post("/admin/health", bad).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "body {bad:?}");
        let msg = body_of(resp).await;
        let msg = std::str::from_utf8(&msg).expect("message is UTF-8");
        assert!(
            msg.contains("status"),
            "message for body {bad:?} should say what is expected: {msg:?}"
        );
    }
    assert_eq!(
        http.get_all("/health").await.0,
        StatusCode::OK,
        "a rejected body leaves health as it was"
    );
}

#[tokio::test]
async fn status_knob_sets_the_status() {
    let backend = start_b1().await;
    let http = Http::to(&backend);
    let resp = http.get("/?status=418").await;
    assert_eq!(resp.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(header_of(&resp, "x-backend-id"), Some("b1"));
    assert_eq!(body_of(resp).await, "b1");
}

#[tokio::test]
async fn bytes_knob_sends_exactly_that_many_bytes_with_a_length() {
    let backend = start_b1().await;
    let http = Http::to(&backend);
    let resp = http.get("/big?bytes=100000").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_of(&resp, "content-length"), Some("100000"));
    let body = body_of(resp).await;
    assert_eq!(body.len(), 100_000);
}

#[tokio::test]
async fn chunk_knobs_stream_a_chunked_body() {
    let backend = start_b1().await;
    let http = Http::to(&backend);
    let started = Instant::now();
    let resp = http
        .get("/stream?bytes=5000&chunk_bytes=1000&chunk_ms=10")
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_of(&resp, "content-length"), None);
    assert_eq!(header_of(&resp, "transfer-encoding"), Some("chunked"));
    let body = body_of(resp).await;
    assert_eq!(body.len(), 5000);
    // Five chunks, 10 ms apart: at least four gaps.
    assert!(
        started.elapsed() >= Duration::from_millis(40),
        "5 chunks 10 ms apart arrived in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn delay_knob_and_set_delay_slow_the_answer() {
    let backend = start_b1().await;
    let http = Http::to(&backend);

    let started = Instant::now();
    let (status, body) = http.get_all("/?delay_ms=200").await;
    let took = started.elapsed();
    assert_eq!((status, body), (StatusCode::OK, "b1".into()));
    assert!(
        took >= Duration::from_millis(200),
        "delay_ms=200 took {took:?}"
    );

    backend.set_delay(Duration::from_millis(100));
    let started = Instant::now();
    assert_eq!(http.get_all("/").await.0, StatusCode::OK);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(100),
        "set_delay(100ms) took {took:?}"
    );
}

#[tokio::test]
async fn echo_knob_describes_the_request() {
    let backend = start_b1().await;
    let http = Http::to(&backend);
    let mut req = http.request(Method::POST, "/some/path?echo=1&foo=bar", vec![7u8; 12345]);
    req.headers_mut()
        .insert("x-test", http::HeaderValue::from_static("yes"));
    let resp = http.send(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_of(&resp, "content-type"), Some("application/json"));
    assert_eq!(header_of(&resp, "x-backend-id"), Some("b1"));
    let body = body_of(resp).await;
    let json: serde_json::Value = serde_json::from_slice(&body).expect("echo answers JSON");
    assert_eq!(json["id"], "b1");
    assert_eq!(json["method"], "POST");
    assert_eq!(json["path"], "/some/path");
    assert_eq!(json["query"], "echo=1&foo=bar");
    assert_eq!(json["headers"]["x-test"], "yes");
    assert_eq!(json["headers"]["content-length"], "12345");
    assert_eq!(json["body_bytes"], 12345);
}

#[tokio::test]
async fn drop_after_promises_a_body_and_cuts_the_connection() {
    let backend = start_b1().await;
    let http = Http::to(&backend);
    let resp = http.get("/?drop_after=1000").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header_of(&resp, "content-length"), Some("2000"));

    let mut body = resp.into_body();
    let mut received = 0;
    let err = loop {
        match within("the next body frame", body.frame()).await {
            Some(Ok(frame)) => received += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(err)) => break err,
            None => panic!("body ended cleanly after {received} bytes; expected a cut"),
        }
    };
    assert_eq!(received, 1000, "bytes before the cut (error: {err})");
}

#[tokio::test]
async fn bad_knob_is_a_400_naming_the_key() {
    let backend = start_b1().await;
    let http = Http::to(&backend);
    let resp = http.get("/?delay_ms=x").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(header_of(&resp, "x-backend-id"), Some("b1"));
    let body = body_of(resp).await;
    let msg = std::str::from_utf8(&body).expect("message is UTF-8");
    assert!(
        msg.contains("delay_ms=x"),
        "message should name the key: {msg:?}"
    );
}

/// Opens a WebSocket to `/ws/echo` over a plain TCP stream.
async fn ws_connect(
    backend: &TestBackend,
) -> (
    tokio_tungstenite::WebSocketStream<TcpStream>,
    tokio_tungstenite::tungstenite::handshake::client::Response,
) {
    let addr = backend.addr();
    let tcp = within("a TCP connection", TcpStream::connect(addr))
        .await
        .expect("connects to the backend");
    within(
        "the WebSocket handshake",
        tokio_tungstenite::client_async(format!("ws://{addr}/ws/echo"), tcp),
    )
    .await
    .expect("WebSocket handshake succeeds")
}

async fn ws_next(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>) -> Option<Message> {
    within("the next WebSocket message", ws.next())
        .await
        .map(|msg| msg.expect("WebSocket message is readable"))
}

#[tokio::test]
async fn websocket_echo_prefixes_messages_with_the_id() {
    let backend = start_b1().await;
    let (mut ws, resp) = ws_connect(&backend).await;
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(header_of(&resp, "x-backend-id"), Some("b1"));

    within("sending a text message", ws.send(Message::text("hello")))
        .await
        .expect("text message is sent");
    match ws_next(&mut ws).await {
        Some(Message::Text(text)) => assert_eq!(text.as_str(), "b1: hello"),
        other => panic!("expected Text \"b1: hello\", got {other:?}"),
    }

    within(
        "sending a binary message",
        ws.send(Message::binary(vec![1u8, 2, 3])),
    )
    .await
    .expect("binary message is sent");
    match ws_next(&mut ws).await {
        Some(Message::Binary(data)) => assert_eq!(&data[..], b"b1: \x01\x02\x03"),
        other => panic!("expected Binary b\"b1: \\x01\\x02\\x03\", got {other:?}"),
    }

    // A clean close: our Close is answered with a Close, then the stream ends.
    within("sending a close", ws.close(None))
        .await
        .expect("close is sent");
    loop {
        match within("the close handshake", ws.next()).await {
            Some(Ok(Message::Close(_))) => continue,
            None => break,
            other => panic!("expected the server's Close and the end, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn stopped_backend_refuses_connections() {
    let backend = start_b1().await;
    let addr = backend.addr();
    let http = Http::to(&backend);
    assert_eq!(http.get_all("/").await.0, StatusCode::OK);

    within("the backend to stop", backend.stop()).await;
    let err = within("a TCP connect after stop", TcpStream::connect(addr))
        .await
        .expect_err("a stopped backend must refuse connections");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

#[tokio::test]
async fn stop_cuts_open_connections() {
    let backend = start_b1().await;

    // An idle keep-alive HTTP connection that has been served once.
    let tcp = within("a TCP connection", TcpStream::connect(backend.addr()))
        .await
        .expect("connects to the backend");
    let (mut sender, conn) = within(
        "the HTTP/1.1 handshake",
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(tcp)),
    )
    .await
    .expect("HTTP/1.1 handshake");
    let conn = tokio::spawn(conn);
    let req = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    let resp = within("the response head", sender.send_request(req))
        .await
        .expect("request is answered");
    assert_eq!(body_of(resp).await, "b1");

    // An open WebSocket session that has echoed once.
    let (mut ws, _) = ws_connect(&backend).await;
    within("sending a text message", ws.send(Message::text("ping")))
        .await
        .expect("text message is sent");
    assert!(matches!(ws_next(&mut ws).await, Some(Message::Text(_))));

    within("the backend to stop", backend.stop()).await;

    within("the keep-alive connection to be cut", conn)
        .await
        .expect("connection task does not panic")
        .expect("the connection ends cleanly");
    match within("the WebSocket to be cut", ws.next()).await {
        None | Some(Err(_)) => {}
        Some(Ok(msg)) => panic!("WebSocket still open after stop, got {msg:?}"),
    }
}
