//! TLS from the router to backends (a pool's `tls = { ca, server_name }`), with certificates
//! made here (rcgen) and real TLS backends (tokio-rustls): requests and keep-alive over TLS,
//! the default server name (the backend's IP, checked against an IP SAN), a certificate from
//! another CA or for another name refused as a connect failure (502 `upstream_connect`, and
//! marked down by active checks), and a WebSocket session over TLS.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use support::*;
use switchyard::config::Config;
use switchyard::routing::BackendState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);

/// A certificate authority made for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// Writes the CA certificate to `dir/<file>` and returns the path.
    fn write(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }

    /// A server certificate for `names` (DNS names or IPs) signed by this CA.
    fn issue(&self, names: &[&str]) -> Identity {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Identity {
            chain: vec![cert.der().clone(), self.cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }
}

/// A backend's certificate chain and key.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// What a TLS test backend does with each connection after the handshake.
#[derive(Clone, Copy)]
enum Mode {
    /// Answers every HTTP/1.1 request `200` with `X-Backend-Id`, keeping the connection.
    Http,
    /// Accepts a WebSocket handshake and echoes every message.
    WsEcho,
}

/// A TLS backend on a free port; counts handshakes that completed and requests answered.
struct TlsBackend {
    addr: SocketAddr,
    handshakes: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The runtime TLS backends run on: their own threads, so a test blocking its runtime while
/// a router starts never starves them.
fn backend_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("backend runtime")
    })
}

async fn tls_backend(id: &'static str, identity: Identity, mode: Mode) -> TlsBackend {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(identity.chain, identity.key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = backend_runtime()
        .spawn(TcpListener::bind("127.0.0.1:0"))
        .await
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (h, r) = (handshakes.clone(), requests.clone());
    let task = backend_runtime().spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, h, r) = (acceptor.clone(), h.clone(), r.clone());
            tokio::spawn(async move {
                // A client refusing our certificate ends here: nothing to count.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                h.fetch_add(1, Ordering::SeqCst);
                match mode {
                    Mode::Http => serve_http(id, tls, &r).await,
                    Mode::WsEcho => echo(tls).await,
                }
            });
        }
    });
    TlsBackend {
        addr,
        handshakes,
        requests,
        task,
    }
}

/// Answers bodiless HTTP/1.1 requests on one connection until the client closes it.
async fn serve_http(
    id: &str,
    mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    requests: &AtomicUsize,
) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            let mut chunk = [0u8; 4096];
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        buf.drain(..end + 4);
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        requests.fetch_add(1, Ordering::SeqCst);
        let body = format!("{id} over tls: {path}");
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-backend-id: {id}\r\n\r\n{body}",
            body.len()
        );
        if tls.write_all(answer.as_bytes()).await.is_err() || tls.flush().await.is_err() {
            return;
        }
        if head.contains("connection: close") {
            let _ = tls.shutdown().await;
            return;
        }
    }
}

async fn echo(tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_close() {
            return;
        }
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

/// A route `prefix` to a one-backend pool with `tls` and `health`.
fn tls_pool(pool: &str, prefix: &str, backend: &TlsBackend, tls: &str, health: &str) -> String {
    format!(
        "{}[[pools]]\nid = \"{pool}\"\ntls = {tls}\nhealth = {health}\nbackends = [{{ id = \"{pool}-1\", address = \"{}\" }}]\n",
        route(pool, prefix, pool),
        backend.addr
    )
}

const NO_CHECKS: &str = "{ kind = \"none\" }";
const FAST_HTTP: &str = "{ kind = \"http\", path = \"/health\", interval = \"200ms\", timeout = \"200ms\", rise = 1, fall = 1 }";

fn state_of(r: &switchyard::RouterHandle, pool: &str) -> BackendState {
    r.table().pool(pool).unwrap().load_full().backends[0].state
}

#[tokio::test]
async fn requests_reach_a_tls_backend_and_reuse_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("switchyard test CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let named = tls_backend("named", ca.issue(&["backend.test"]), Mode::Http).await;
    let by_ip = tls_backend("by-ip", ca.issue(&["127.0.0.1"]), Mode::Http).await;
    let tls = format!(
        "{{ ca = \"{}\", server_name = \"backend.test\" }}",
        ca_file.display()
    );
    let ip_tls = format!("{{ ca = \"{}\" }}", ca_file.display());
    let r = router(&format!(
        "{}{}",
        tls_pool("api", "/api", &named, &tls, NO_CHECKS),
        tls_pool("ip", "/ip", &by_ip, &ip_tls, NO_CHECKS),
    ));
    let client = Client::new(r.addr());

    let first = client.get("/api/one").await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.backend(), "named");
    assert_eq!(first.text(), "named over tls: /api/one");
    let second = client.get("/api/two").await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(second.text(), "named over tls: /api/two");
    assert_eq!(named.requests.load(Ordering::SeqCst), 2);
    assert_eq!(
        named.handshakes.load(Ordering::SeqCst),
        1,
        "the second request reuses the first one's TLS connection"
    );

    // No server_name: the backend's IP is sent and checked against the certificate's IP SAN.
    let reply = client.get("/ip/x").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.backend(), "by-ip");
    r.stop();
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_is_a_connect_failure_and_fails_checks() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = Ca::new("trusted CA");
    let ca_file = trusted.write(dir.path(), "ca.pem");
    let stranger = Ca::new("some other CA");
    let foreign = tls_backend("foreign", stranger.issue(&["backend.test"]), Mode::Http).await;
    let misnamed = tls_backend("misnamed", trusted.issue(&["other.test"]), Mode::Http).await;
    let healthy = tls_backend("healthy", trusted.issue(&["backend.test"]), Mode::Http).await;
    let tls = format!(
        "{{ ca = \"{}\", server_name = \"backend.test\" }}",
        ca_file.display()
    );
    let r = router(&format!(
        "{}{}{}{}",
        tls_pool("foreign", "/foreign", &foreign, &tls, NO_CHECKS),
        tls_pool("misnamed", "/misnamed", &misnamed, &tls, NO_CHECKS),
        tls_pool("checked", "/checked", &foreign, &tls, FAST_HTTP),
        tls_pool("healthy", "/healthy", &healthy, &tls, FAST_HTTP),
    ));
    let client = Client::new(r.addr());

    for path in ["/foreign/x", "/misnamed/x"] {
        let reply = client.get(path).await;
        assert_eq!(reply.status, 502, "{path}: {}", reply.text());
        assert_eq!(
            reply.header("x-switchyard-error"),
            Some("upstream_connect"),
            "{path}"
        );
    }
    assert_eq!(foreign.requests.load(Ordering::SeqCst), 0);
    assert_eq!(misnamed.requests.load(Ordering::SeqCst), 0);

    // Active checks make the handshake too: the foreign certificate marks its backend down,
    // while a backend with a good certificate passes its (HTTP over TLS) checks.
    let router = &r;
    eventually("the foreign backend marked down", WAIT, || {
        state_of(router, "checked") == BackendState::Down
    })
    .await;
    eventually("the healthy backend up", WAIT, || {
        state_of(router, "healthy") == BackendState::Up
    })
    .await;
    let reply = client.get("/checked/x").await;
    assert_eq!(
        reply.header("x-switchyard-error"),
        Some("no_healthy_backend")
    );
    assert_eq!(client.get("/healthy/x").await.status, 200);

    // What the check reports (and the router logs) names the reason rustls gave.
    let entry = r.table().pool("checked").unwrap().load_full().backends[0].clone();
    let result = switchyard::health::active::check(
        foreign.addr,
        entry.tls.as_deref(),
        entry.protocol,
        &switchyard::config::HealthKind::Tcp,
        Duration::from_secs(2),
    )
    .await;
    assert!(!result.passed);
    assert!(
        result.detail.contains("backend.test") && result.detail.contains("UnknownIssuer"),
        "{}",
        result.detail
    );
    r.stop();
}

#[tokio::test]
async fn a_websocket_session_runs_over_tls_to_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("switchyard test CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let backend = tls_backend("ws", ca.issue(&["backend.test"]), Mode::WsEcho).await;
    let tls = format!(
        "{{ ca = \"{}\", server_name = \"backend.test\" }}",
        ca_file.display()
    );
    let r = router(&tls_pool("ws", "/ws", &backend, &tls, NO_CHECKS));
    let (mut ws, answer) = connect(r.addr(), &[]).await;
    assert_eq!(answer.status(), 101);
    for text in ["hello over tls", "and again"] {
        ws.send(Message::text(text)).await.unwrap();
        assert_eq!(next(&mut ws).await, Message::text(text));
    }
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::binary(vec![1u8, 2, 3]));
    ws.close(None).await.unwrap();
    assert_eq!(backend.handshakes.load(Ordering::SeqCst), 1);
    r.stop();
}

#[tokio::test]
async fn a_reload_turns_tls_on_keeps_connections_when_unchanged_and_applies_a_new_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("switchyard test CA");
    let ca_file = ca.write(dir.path(), "ca.pem");
    let backend = tls_backend("reloaded", ca.issue(&["backend.test"]), Mode::Http).await;
    let plain = format!(
        "{}[[pools]]\nid = \"api\"\nhealth = {NO_CHECKS}\nbackends = [{{ id = \"api-1\", address = \"{}\" }}]\n",
        route("api", "/api", "api"),
        backend.addr
    );
    let r = router(&plain);
    let client = Client::new(r.addr());
    let reply = client.get("/api/x").await;
    assert_eq!(reply.status, 502, "plain HTTP to a TLS backend fails");

    let reload = |name: &str| {
        let tls = format!(
            "{{ ca = \"{}\", server_name = \"{name}\" }}",
            ca_file.display()
        );
        let text = format!(
            "[node]\nlisten = \"{}\"\nadmin_listen = \"{}\"\nworkers = 1\nshutdown_timeout = \"1s\"\n[log]\naccess = false\n{}",
            r.addr(),
            r.admin_addr(),
            tls_pool("api", "/api", &backend, &tls, NO_CHECKS)
        );
        Config::from_toml_str(&text).unwrap()
    };
    r.reload_async(reload("backend.test")).await.unwrap();
    let tls_on = async || client.get("/api/x").await.status == 200;
    wait_for("the reloaded pool speaks TLS", WAIT, tls_on).await;
    let handshakes = backend.handshakes.load(Ordering::SeqCst);

    // The same settings again: the kept connection is reused, no new handshake.
    r.reload_async(reload("backend.test")).await.unwrap();
    assert_eq!(client.get("/api/y").await.status, 200);
    assert_eq!(backend.handshakes.load(Ordering::SeqCst), handshakes);

    // A name the certificate is not for: new connections are refused, old ones not reused.
    r.reload_async(reload("elsewhere.test")).await.unwrap();
    let refused = async || {
        client.get("/api/z").await.header("x-switchyard-error") == Some("upstream_connect")
    };
    wait_for("the new server name applies", WAIT, refused).await;
    r.stop();
}
