//! HTTP/2 to backends (`pools[].protocol = "h2"`) with real gRPC servers and clients (tonic,
//! in the test backend package): unary and server-streaming calls through the router, gRPC
//! errors and their metadata in the trailers, HTTP/2 prior knowledge from the client on a
//! plain listener, many calls multiplexed on one backend connection, TLS with ALPN `h2` to the
//! backend, and the gRPC health protocol taking a `NOT_SERVING` backend out and back.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::*;
use switchyard::config::Config;
use switchyard::routing::BackendState;
use switchyard_load::grpc::tonic::transport::{Channel, Endpoint};
use switchyard_load::grpc::tonic::{Code, Request};
use switchyard_load::grpc::{ECHO_SERVICE, EchoClient, EchoRequest, GrpcBackend, StreamRequest};

const WAIT: Duration = Duration::from_secs(10);

/// A route for the Echo service's calls to pool `grpc` over `backends`, with `extra` pool keys.
fn grpc_config(backends: &[&GrpcBackend], extra: &str) -> String {
    let members: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ id = \"{}\", address = \"{}\" }}", b.name, b.addr))
        .collect();
    format!(
        "[[routes]]\nid = \"grpc\"\npath_prefix = \"/switchyard.test.Echo/\"\npool = \"grpc\"\n\n\
         [[pools]]\nid = \"grpc\"\nprotocol = \"h2\"\nbackends = [{}]\n{extra}\n",
        members.join(", ")
    )
}

/// A gRPC client of the router's plain listener (HTTP/2 with prior knowledge, as gRPC
/// clients speak without TLS).
async fn client(router: SocketAddr) -> EchoClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{router}"))
        .unwrap()
        .timeout(WAIT)
        .connect()
        .await
        .expect("the router accepts a gRPC client's HTTP/2 connection");
    EchoClient::new(channel)
}

fn state_of(router: &switchyard::RouterHandle, backend: &str) -> BackendState {
    let snapshot = router.table().pool("grpc").unwrap().load_full();
    snapshot
        .backends
        .iter()
        .find(|b| &*b.id == backend)
        .map(|b| b.state)
        .expect("backend in the pool")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_and_server_streaming_calls_pass_through_to_both_backends() {
    let (a, b) = (grpc_backend("a").await, grpc_backend("b").await);
    let r = router(&grpc_config(&[&a, &b], "health = { kind = \"grpc\" }"));
    let mut echo = client(r.addr()).await;

    let mut answered = std::collections::BTreeMap::new();
    for i in 0..10 {
        let reply = echo
            .unary(EchoRequest {
                message: format!("hello {i}"),
                fail_code: 0,
            })
            .await
            .expect("a unary call through the router");
        let backend_header = reply
            .metadata()
            .get("x-backend")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let reply = reply.into_inner();
        assert_eq!(reply.message, format!("hello {i}"));
        // The response metadata (HTTP/2 headers) came through with the message.
        assert_eq!(backend_header.as_deref(), Some(reply.backend.as_str()));
        *answered.entry(reply.backend).or_insert(0) += 1;
    }
    assert_eq!(answered.get("a"), Some(&5), "round robin: {answered:?}");
    assert_eq!(answered.get("b"), Some(&5), "round robin: {answered:?}");

    // Server streaming: every reply, in order, as the backend sends them 20 ms apart.
    let mut stream = echo
        .server_stream(StreamRequest {
            message: "tick".to_string(),
            count: 8,
            interval_ms: 20,
            fail_code: 0,
        })
        .await
        .expect("a streaming call through the router")
        .into_inner();
    let mut indices = Vec::new();
    while let Some(reply) = stream.message().await.expect("stream ends cleanly") {
        indices.push(reply.index);
    }
    assert_eq!(indices, (0..8).collect::<Vec<_>>());
    r.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_errors_and_their_trailers_reach_the_client() {
    let a = grpc_backend("a").await;
    let r = router(&grpc_config(&[&a], ""));
    let mut echo = client(r.addr()).await;

    // A failed unary call: the status travels in a headers-only answer.
    let err = echo
        .unary(EchoRequest {
            message: "no such title".to_string(),
            fail_code: Code::NotFound as u32,
        })
        .await
        .expect_err("the backend failed the call");
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert_eq!(err.message(), "failed as asked: no such title");
    assert_eq!(err.metadata().get("x-backend").unwrap(), "a");

    // A stream that fails after three replies: the status and its metadata come in the
    // trailers, after the data, and the router passes them on.
    let mut stream = echo
        .server_stream(StreamRequest {
            message: "segment".to_string(),
            count: 3,
            interval_ms: 0,
            fail_code: Code::FailedPrecondition as u32,
        })
        .await
        .expect("the stream starts")
        .into_inner();
    let mut replies = 0;
    let err = loop {
        match stream.message().await {
            Ok(Some(_)) => replies += 1,
            Ok(None) => panic!("the stream ended without the backend's status"),
            Err(status) => break status,
        }
    };
    assert_eq!(replies, 3);
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(err.message(), "failed as asked: segment");
    assert_eq!(err.metadata().get("x-backend").unwrap(), "a");
    r.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_not_serving_by_the_grpc_health_protocol_is_taken_out_and_back() {
    let (a, b) = (grpc_backend("a").await, grpc_backend("b").await);
    let health = format!(
        "health = {{ kind = \"grpc\", service = \"{ECHO_SERVICE}\", interval = \"100ms\", timeout = \"100ms\", rise = 1, fall = 1 }}"
    );
    let r = router(&grpc_config(&[&a, &b], &health));
    assert_eq!(state_of(&r, "b"), BackendState::Up);

    b.set_serving(ECHO_SERVICE, false).await;
    eventually("b is marked down", WAIT, || {
        state_of(&r, "b") == BackendState::Down
    })
    .await;
    assert_eq!(state_of(&r, "a"), BackendState::Up);
    let mut echo = client(r.addr()).await;
    for _ in 0..6 {
        let reply = echo
            .unary(EchoRequest::default())
            .await
            .expect("calls go on to a")
            .into_inner();
        assert_eq!(reply.backend, "a");
    }
    // The check named the service: the server as a whole serving does not bring b back.
    b.set_serving("", true).await;
    b.set_serving(ECHO_SERVICE, true).await;
    eventually("b is back", WAIT, || state_of(&r, "b") == BackendState::Up).await;
    r.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_check_of_an_h2_pool_is_sent_over_http2() {
    // The gRPC server speaks HTTP/2 alone: an HTTP/1.1 GET would fail, an HTTP/2 one is
    // answered 200 (with a gRPC status saying the method is unknown).
    let a = grpc_backend("a").await;
    let health = "health = { kind = \"http\", path = \"/health\", expect = [200], interval = \"100ms\", timeout = \"100ms\", rise = 1, fall = 1 }";
    let r = router(&grpc_config(&[&a], health));
    assert_eq!(state_of(&r, "a"), BackendState::Up);
    let checks = "switchyard_health_checks_total{pool=\"grpc\",backend=\"a\",result=\"pass\"}";
    wait_for("three checks passed", WAIT, async || {
        metric(&r, checks).await >= 3.0
    })
    .await;
    r.stop();
}

/// A TLS front for a gRPC backend offering only ALPN `h2`: what an HTTP/2 backend behind TLS
/// looks like to the router. Counts the connections it accepts.
struct TlsFront {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn tls_front(to: SocketAddr, dir: &std::path::Path) -> (TlsFront, std::path::PathBuf) {
    // A CA and a certificate for 127.0.0.1 signed by it.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(to).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (
        TlsFront {
            addr,
            accepted,
            task,
        },
        ca_path,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_alpn_h2_many_calls_share_one_backend_connection() {
    let dir = tempfile::tempdir().unwrap();
    let backend = grpc_backend("secure").await;
    let (front, ca) = tls_front(backend.addr, dir.path()).await;
    let config = format!(
        "[[routes]]\nid = \"grpc\"\npath_prefix = \"/switchyard.test.Echo/\"\npool = \"grpc\"\n\n\
         [[pools]]\nid = \"grpc\"\nprotocol = \"h2\"\n\
         backends = [{{ id = \"secure\", address = \"{}\" }}]\n\
         tls = {{ ca = \"{}\" }}\nhealth = {{ kind = \"none\" }}\n",
        front.addr,
        ca.display()
    );
    let r = router(&config);
    let echo = client(r.addr()).await;

    // Forty calls at once, over one client connection: one worker, so one backend connection
    // carries them all as concurrent streams.
    let calls = (0..40).map(|i| {
        let mut echo = echo.clone();
        async move {
            echo.unary(Request::new(EchoRequest {
                message: format!("call {i}"),
                fail_code: 0,
            }))
            .await
            .map(|reply| reply.into_inner().message)
        }
    });
    let replies = futures_util::future::join_all(calls).await;
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(reply.expect("every call answered"), format!("call {i}"));
    }
    assert_eq!(
        front.accepted.load(Ordering::SeqCst),
        1,
        "the calls were multiplexed on one TLS connection to the backend"
    );
    r.stop();
}

#[test]
fn a_grpc_check_needs_an_h2_pool_and_says_so() {
    let text = "[[routes]]\nid = \"r\"\npath_prefix = \"/\"\npool = \"p\"\n\n\
                [[pools]]\nid = \"p\"\nbackends = [{ id = \"a\", address = \"127.0.0.1:1\" }]\n\
                health = { kind = \"grpc\" }\n";
    let err = Config::from_toml_str(text).unwrap_err().to_string();
    assert!(
        err.contains("pools[0].health.kind") && err.contains("protocol = \"h2\""),
        "{err}"
    );
    let text = text.replace("kind = \"grpc\"", "kind = \"http\", service = \"x\"");
    let err = Config::from_toml_str(&text).unwrap_err().to_string();
    assert!(
        err.contains("pools[0].health.service") && err.contains("only applies"),
        "{err}"
    );
    let err = Config::from_toml_str(&text.replace("[[pools]]\n", "[[pools]]\nprotocol = \"h3\"\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("protocol") && err.contains("h2"), "{err}");
}

/// One HTTP/2 request with prior knowledge on a plain connection to `addr`; the answer read
/// whole (status, body as JSON).
async fn h2c_request<B>(addr: SocketAddr, request: http::Request<B>) -> (u16, serde_json::Value)
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("HTTP/2 with prior knowledge on the plain listener");
    tokio::spawn(conn);
    let answer = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("an answer");
    let status = answer.status().as_u16();
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

type BodyChunks = futures_util::stream::Iter<
    std::vec::IntoIter<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>>,
>;

fn chunks(parts: &[&'static str]) -> http_body_util::StreamBody<BodyChunks> {
    let frames: Vec<_> = parts
        .iter()
        .map(|p| {
            Ok(hyper::body::Frame::data(bytes::Bytes::from_static(
                p.as_bytes(),
            )))
        })
        .collect();
    http_body_util::StreamBody::new(futures_util::stream::iter(frames))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_client_body_without_a_length_reaches_an_http1_backend_whole() {
    let bs = backends(&["a"]).await;
    let r = api_router(&bs, "round_robin", "");
    let uri = format!("http://{}/api/upload?echo=1", r.addr());

    // HTTP/2 needs no Content-Length: the frames delimit the body. The HTTP/1.1 backend gets
    // it chunked, whole.
    let post = http::Request::post(&uri)
        .body(chunks(&["first ", "second ", "third"]))
        .unwrap();
    let (status, echoed) = h2c_request(r.addr(), post).await;
    assert_eq!(status, 200, "{echoed}");
    assert_eq!(echoed["body_bytes"], 18, "{echoed}");
    assert_eq!(
        echoed["headers"]["transfer-encoding"], "chunked",
        "{echoed}"
    );
    // The client's :authority is the backend's Host.
    assert_eq!(echoed["headers"]["host"], r.addr().to_string(), "{echoed}");

    // A GET whose HEADERS end the stream has no body, and none is invented.
    let get = http::Request::get(&uri)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let (status, echoed) = h2c_request(r.addr(), get).await;
    assert_eq!(status, 200, "{echoed}");
    assert_eq!(echoed["body_bytes"], 0, "{echoed}");
    assert!(
        echoed["headers"].get("transfer-encoding").is_none(),
        "{echoed}"
    );
    r.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_on_while_a_backend_stops_gracefully_with_a_stream_in_flight() {
    let (a, b) = (grpc_backend("a").await, grpc_backend("b").await);
    let r = router(&grpc_config(&[&a, &b], "health = { kind = \"none\" }"));
    let mut echo = client(r.addr()).await;
    // Both backends hold a connection from the router, each with a long stream on it.
    let mut streams = Vec::new();
    for _ in 0..2 {
        let stream = echo
            .server_stream(StreamRequest {
                message: "long".to_string(),
                count: 40,
                interval_ms: 25,
                fail_code: 0,
            })
            .await
            .expect("a long stream starts")
            .into_inner();
        streams.push(stream);
    }
    // Backend a stops gracefully: GOAWAY, its stream finishes, it takes no new calls.
    drop(a);
    let mut answered = std::collections::BTreeMap::new();
    for i in 0..20 {
        let reply = echo
            .unary(EchoRequest {
                message: format!("during the stop {i}"),
                fail_code: 0,
            })
            .await
            .unwrap_or_else(|err| panic!("call {i} failed while a backend stopped: {err:?}"))
            .into_inner();
        *answered.entry(reply.backend).or_insert(0) += 1;
    }
    for mut stream in streams {
        let mut n = 0;
        while stream
            .message()
            .await
            .expect("the long streams finish")
            .is_some()
        {
            n += 1;
        }
        assert_eq!(n, 40, "a stream in flight was finished in full");
    }
    assert!(answered.contains_key("b"), "{answered:?}");
    r.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routers_own_refusals_reach_grpc_clients_as_grpc_statuses() {
    // A pool whose only backend is gone: the router answers itself, as gRPC clients read it.
    let gone = grpc_backend("gone").await;
    let config = grpc_config(
        &[&gone],
        "health = { kind = \"grpc\", interval = \"100ms\", timeout = \"100ms\", rise = 1, fall = 1 }",
    );
    let r = router(&config);
    drop(gone);
    eventually("the backend is marked down", WAIT, || {
        state_of(&r, "gone") == BackendState::Down
    })
    .await;
    let mut echo = client(r.addr()).await;
    let err = echo
        .unary(EchoRequest::default())
        .await
        .expect_err("nobody can answer");
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(err.message(), "pool \"grpc\" has no healthy backend");
    assert_eq!(
        err.metadata().get("x-switchyard-error").unwrap(),
        "no_healthy_backend"
    );
    assert!(err.metadata().get("x-request-id").is_some());
    r.stop();
}
