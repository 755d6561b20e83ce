//! TLS termination with real certificates made here (rcgen) and real TLS clients (rustls):
//! SNI picks the certificate, TLS below 1.2 is refused, HTTP/1.1 and HTTP/2 requests are
//! proxied to HTTP/1.1 backends, certificates reload while a connection stays open (a bad new
//! one keeps the old), and a plain listener can redirect to HTTPS.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use support::*;
use switchyard::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A self-signed certificate for `names`, written to `dir/<file>.pem` and `.key`.
struct Cert {
    der: Vec<u8>,
    cert: PathBuf,
    key: PathBuf,
}

fn make_cert(dir: &Path, file: &str, names: &[&str]) -> Cert {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (
        dir.join(format!("{file}.pem")),
        dir.join(format!("{file}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    Cert {
        der: cert.der().to_vec(),
        cert: cert_path,
        key: key_path,
    }
}

/// Accepts any certificate: these tests look at which one came, not at a trust chain.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS connection to `addr` naming `sni`, offering `alpn`.
async fn tls_connect(
    addr: std::net::SocketAddr,
    sni: &str,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    tls_over(TcpStream::connect(addr).await.unwrap(), sni, alpn).await
}

/// TLS on an open connection.
async fn tls_over(tcp: TcpStream, sni: &str, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    try_tls_over(tcp, sni, alpn).await.expect("TLS handshake")
}

/// TLS on an open connection; the handshake's error if the router refuses it.
async fn try_tls_over(
    tcp: TcpStream,
    sni: &str,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    tokio::time::timeout(
        REQUEST_DEADLINE,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("handshake within the deadline")
}

fn peer_cert(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// One HTTP/1.1 request on an open TLS connection; the whole answer as text.
async fn http1(stream: &mut TlsStream<TcpStream>, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // The test backend answers with a length; read until the body is complete.
    loop {
        let n = tokio::time::timeout(REQUEST_DEADLINE, stream.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|l| body.len() >= l) || n == 0 {
                return text.into_owned();
            }
        }
        if n == 0 {
            return String::from_utf8_lossy(&answer).into_owned();
        }
    }
}

/// A router with a TLS listener holding `certs` (first = default), started from a file so
/// that a reload reads it again; returns the router, its TLS address and the config path.
fn tls_router(
    dir: &Path,
    certs: &[(&Cert, &[&str])],
    bs: &[TestBackend],
) -> (switchyard::RouterHandle, std::net::SocketAddr) {
    tls_router_with(dir, certs, bs, "")
}

/// [`tls_router`] with more keys for the TLS listener.
fn tls_router_with(
    dir: &Path,
    certs: &[(&Cert, &[&str])],
    bs: &[TestBackend],
    listener: &str,
) -> (switchyard::RouterHandle, std::net::SocketAddr) {
    let tls_addr: std::net::SocketAddr =
        format!("127.0.0.1:{}", switchyard_load::procs::free_port().unwrap())
            .parse()
            .unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "a-tls-test-admin-token").unwrap();
    let certificates: Vec<String> = certs
        .iter()
        .map(|(c, names)| {
            let names: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
            format!(
                "{{ names = [{}], cert = \"{}\", key = \"{}\" }}",
                names.join(", "),
                c.cert.display(),
                c.key.display()
            )
        })
        .collect();
    let text = format!(
        "[node]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = 1\nshutdown_timeout = \"1s\"\nadmin_token_file = \"{}\"\n\
         [log]\naccess = false\n\
         [[listeners]]\nid = \"https\"\naddress = \"{tls_addr}\"\ntls = {{ certificates = [{}] }}\n{listener}\n\
         {}{}",
        token.display(),
        certificates.join(", "),
        route("all", "/", "all"),
        pool_with("all", "round_robin", bs, "health = { kind = \"none\" }")
    );
    let path = dir.join("router.toml");
    std::fs::write(&path, text).unwrap();
    let router = switchyard::start(Config::load(&path).unwrap()).expect("router starts");
    (router, tls_addr)
}

/// A router with one certificate for `a.test` in front of backend `t1`, with more keys for
/// its TLS listener; the scratch directory and backends live as long as the returned guards.
async fn a_test_router(
    listener: &str,
) -> (
    tempfile::TempDir,
    Vec<TestBackend>,
    switchyard::RouterHandle,
    std::net::SocketAddr,
) {
    let dir = scratch();
    let a = make_cert(dir.path(), "a", &["a.test"]);
    let bs = backends(&["t1"]).await;
    let (r, addr) = tls_router_with(dir.path(), &[(&a, &["a.test"])], &bs, listener);
    (dir, bs, r, addr)
}

fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_unknown_names_get_the_default() {
    let dir = scratch();
    let a = make_cert(dir.path(), "a", &["a.test"]);
    let b = make_cert(dir.path(), "b", &["b.test", "*.b.test"]);
    let bs = backends(&["t1"]).await;
    let (_r, addr) = tls_router(
        dir.path(),
        &[(&a, &["a.test"]), (&b, &["b.test", "*.b.test"])],
        &bs,
    );
    for (sni, expected) in [
        ("a.test", &a.der),
        ("b.test", &b.der),
        ("x.b.test", &b.der),
        ("unknown.test", &a.der),
    ] {
        let stream = tls_connect(addr, sni, &[b"http/1.1"]).await;
        assert_eq!(&peer_cert(&stream), expected, "SNI {sni}");
        let version = stream.get_ref().1.protocol_version();
        assert!(
            matches!(version, Some(rustls::ProtocolVersion::TLSv1_3)),
            "{version:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_http2_requests_are_proxied_to_http1_backends() {
    let dir = scratch();
    let a = make_cert(dir.path(), "a", &["a.test"]);
    let bs = backends(&["t1"]).await;
    let (_r, addr) = tls_router(dir.path(), &[(&a, &["a.test"])], &bs);

    let mut stream = tls_connect(addr, "a.test", &[b"http/1.1"]).await;
    let answer = http1(&mut stream, "/hello?echo=1").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("x-backend-id: t1"),
        "{answer}"
    );
    assert!(
        answer.contains("\"x-forwarded-proto\":\"https\""),
        "{answer}"
    );

    let stream = tls_connect(addr, "a.test", &[b"h2"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let request = http::Request::get(format!("https://a.test:{}/over-h2", addr.port()))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(request).await.expect("h2 answer");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.headers()["x-backend-id"], "t1");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"t1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_listener_behind_an_l4_balancer_takes_the_proxy_header_before_the_handshake() {
    let (_dir, _bs, _r, addr) = a_test_router("proxy_protocol = true").await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n")
        .await
        .unwrap();
    let mut stream = tls_over(tcp, "a.test", &[b"http/1.1"]).await;
    let answer = http1(&mut stream, "/hello?echo=1").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("203.0.113.7"),
        "the backend sees the viewer: {answer}"
    );
    // A handshake without the header first is refused.
    let refused = TlsConnector::from(Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth(),
    ))
    .connect(
        ServerName::try_from("a.test").unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    );
    let outcome = tokio::time::timeout(REQUEST_DEADLINE, refused)
        .await
        .expect("refused within the deadline");
    let err = outcome.expect_err("no handshake without the PROXY header");
    assert!(
        !err.to_string().contains("UnknownIssuer"),
        "the router must not answer the handshake: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_over_the_per_address_limit_is_closed_before_its_handshake() {
    let (_dir, _bs, _r, addr) = a_test_router("[limits]\nmax_connections_per_ip = 1").await;
    let mut held = tls_connect(addr, "a.test", &[b"http/1.1"]).await;
    assert!(http1(&mut held, "/a").await.starts_with("HTTP/1.1 200"));
    let outcome = try_tls_over(TcpStream::connect(addr).await.unwrap(), "a.test", &[]).await;
    assert!(outcome.is_err(), "no handshake past the limit");
    drop(held);
    wait_for(
        "a closed connection gives its place back",
        REQUEST_DEADLINE,
        async || {
            let tcp = TcpStream::connect(addr).await.unwrap();
            match try_tls_over(tcp, "a.test", &[b"http/1.1"]).await {
                Ok(mut stream) => http1(&mut stream, "/a").await.starts_with("HTTP/1.1 200"),
                Err(_) => false,
            }
        },
    )
    .await;
}

/// An HTTP/2 client that writes its frames by hand: it can do what a well-behaved client
/// (and the `h2` crate) never would — ignore SETTINGS, flood, reset at once.
struct RawH2 {
    tls: TlsStream<TcpStream>,
    buf: Vec<u8>,
}

/// Frame types.
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const CONTINUATION: u8 = 9;

impl RawH2 {
    /// TLS with ALPN h2, the preface and empty SETTINGS.
    async fn connect(addr: std::net::SocketAddr) -> RawH2 {
        RawH2::connect_with(addr, &[]).await
    }

    /// TLS with ALPN h2, the preface and SETTINGS of `(identifier, value)`s.
    async fn connect_with(addr: std::net::SocketAddr, settings: &[(u16, u32)]) -> RawH2 {
        let tls = tls_connect(addr, "a.test", &[b"h2"]).await;
        let mut raw = RawH2 {
            tls,
            buf: Vec::new(),
        };
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        let mut payload = Vec::new();
        for (id, value) in settings {
            payload.extend(id.to_be_bytes());
            payload.extend(value.to_be_bytes());
        }
        hello.extend(frame(SETTINGS, 0, 0, &payload));
        raw.send(&hello).await;
        raw
    }

    async fn send(&mut self, bytes: &[u8]) {
        // A router that already closed the connection is an answer too.
        let _ = self.tls.write_all(bytes).await;
    }

    /// The next frame `(type, flags, stream, payload)`, acknowledging the router's SETTINGS;
    /// `None` when the connection ends or nothing comes before `deadline`.
    async fn next(&mut self, deadline: tokio::time::Instant) -> Option<(u8, u8, u32, Vec<u8>)> {
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let (kind, flags) = (self.buf[3], self.buf[4]);
                    let id = u32::from_be_bytes(self.buf[5..9].try_into().unwrap()) & 0x7fff_ffff;
                    let payload = self.buf[9..9 + len].to_vec();
                    self.buf.drain(..9 + len);
                    if kind == SETTINGS && flags & 1 == 0 {
                        self.send(&frame(SETTINGS, 1, 0, &[])).await;
                    }
                    if kind == PING && flags & 1 == 0 {
                        self.send(&frame(PING, 1, 0, &payload)).await;
                    }
                    return Some((kind, flags, id, payload));
                }
            }
            let mut chunk = [0u8; 16384];
            match tokio::time::timeout_at(deadline, self.tls.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Reads until the connection ends (or `within` passes); the GOAWAY's error code if one
    /// came.
    async fn goaway(&mut self, within: std::time::Duration) -> Option<u32> {
        let deadline = tokio::time::Instant::now() + within;
        let mut code = None;
        while let Some((kind, _, _, payload)) = self.next(deadline).await {
            if kind == GOAWAY && payload.len() >= 8 {
                code = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
            }
        }
        code
    }
}

/// One frame: 3-byte length, type, flags, stream id, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// A GET's header block, HPACK by hand: `:method GET` (static 2), `:scheme https` (7), and
/// `:path` and `:authority` as literals with indexed names (4 and 1).
fn get_block(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x87, 0x44, path.len() as u8];
    block.extend(path.as_bytes());
    block.extend([0x41, 6]);
    block.extend(b"a.test");
    block
}

/// END_STREAM | END_HEADERS.
const WHOLE: u8 = 0x5;

/// While (or after) a connection is attacked, another client is served at once.
async fn still_serves(addr: std::net::SocketAddr) {
    let mut stream = tls_connect(addr, "a.test", &[b"http/1.1"]).await;
    let answer = tokio::time::timeout(REQUEST_DEADLINE, http1(&mut stream, "/after-the-attack"))
        .await
        .expect("another client is answered in time");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A client that opens more streams than the router advertised gets the extra ones refused
/// the HTTP/2 way: `RST_STREAM(REFUSED_STREAM)`, which says the request was never processed
/// and may be sent again, while the streams within the limit are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_the_limit_are_refused_with_refused_stream() {
    let (_dir, bs, _r, addr) = a_test_router("[limits]\nmax_streams_per_connection = 2").await;
    let mut h2 = RawH2::connect(addr).await;
    let streams: Vec<u32> = (0..8).map(|i| 1 + 2 * i).collect();
    let mut out = Vec::new();
    for id in &streams {
        out.extend(frame(
            HEADERS,
            WHOLE,
            *id,
            &get_block(&format!("/burst-{id}?delay_ms=300")),
        ));
    }
    h2.send(&out).await;
    let (mut answered, mut refused) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + REQUEST_DEADLINE * 2;
    while answered.len() + refused.len() < streams.len() {
        match h2
            .next(deadline)
            .await
            .expect("every stream answered or refused in time")
        {
            (HEADERS, _, id, _) => answered.push(id),
            (RST_STREAM, _, id, code) => {
                refused.push((id, u32::from_be_bytes(code[..4].try_into().unwrap())))
            }
            _ => {}
        }
    }
    assert!(
        answered.len() >= 2,
        "the streams within the limit are served: {answered:?}"
    );
    assert!(
        !refused.is_empty(),
        "streams over the limit are refused: {answered:?}"
    );
    for (id, code) in &refused {
        assert_eq!(
            *code, 7,
            "stream {id}: RST_STREAM code {code}, not REFUSED_STREAM (7)"
        );
    }
    // A refused stream never reached a backend.
    assert_eq!(bs[0].requests_served(), answered.len() as u64);
}

/// Rapid reset (CVE-2023-44487): streams opened and reset at once, thousands of them. The
/// router does not start a backend request per reset stream without bound, ends the
/// connection, and serves other clients meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_ends_the_connection_and_spares_the_backends() {
    let (_dir, bs, r, addr) = a_test_router("").await;
    let mut h2 = RawH2::connect(addr).await;
    let mut out = Vec::new();
    for i in 0..5_000u32 {
        let id = 1 + 2 * i;
        out.extend(frame(
            HEADERS,
            WHOLE,
            id,
            &get_block("/reset?delay_ms=1000"),
        ));
        out.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes())); // CANCEL
    }
    h2.send(&out).await;
    still_serves(addr).await;
    let code = h2.goaway(REQUEST_DEADLINE * 2).await;
    assert_eq!(code, Some(11), "GOAWAY(ENHANCE_YOUR_CALM)");
    wait_for_flood_counted(&r).await;
    assert!(
        bs[0].requests_served() < 1_000,
        "{} backend requests for 5000 reset streams",
        bs[0].requests_served()
    );
    println!(
        "rapid reset: GOAWAY {code:?}, {} backend requests",
        bs[0].requests_served()
    );
}

/// Stream-id exhaustion: stream ids only grow and end at 2³¹−1. A client that gets there is
/// served on that last stream; a stream opened after it can only reuse a lower id, a
/// connection error (`GOAWAY(PROTOCOL_ERROR)`, counted as `http2_protocol`) that reaches no
/// backend, while other clients are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_stream_id_is_served_and_a_stream_past_it_ends_the_connection() {
    let (_dir, bs, r, addr) = a_test_router("").await;
    let mut h2 = RawH2::connect(addr).await;
    let last = 0x7fff_ffff;
    h2.send(&frame(HEADERS, WHOLE, last, &get_block("/last-stream")))
        .await;
    let deadline = tokio::time::Instant::now() + REQUEST_DEADLINE;
    loop {
        match h2.next(deadline).await {
            Some((HEADERS, _, id, _)) if id == last => break,
            Some(_) => {}
            None => panic!("the stream with the highest id was not answered"),
        }
    }
    h2.send(&frame(HEADERS, WHOLE, 1, &get_block("/wrapped-around")))
        .await;
    let code = h2.goaway(REQUEST_DEADLINE).await;
    assert_eq!(code, Some(1), "GOAWAY(PROTOCOL_ERROR)");
    wait_for_counted(&r, "http2_protocol").await;
    still_serves(addr).await;
    assert_eq!(
        bs[0].requests_served(),
        2,
        "the last stream and the other client reached the backend; the reused id did not"
    );
}

/// Floods of SETTINGS, PING and empty DATA frames (CVE-2019-9512, -9515, -9518): each costs
/// the router work (an acknowledgement, a pong, a frame to parse) and carries nothing. The
/// connection is ended once past the router's limits, each flood is counted as
/// `http2_flood`, and other clients are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_and_empty_frame_floods_end_the_connection_and_are_counted() {
    let (_dir, _bs, r, addr) = a_test_router("").await;
    let series = "switchyard_router_errors_total{kind=\"http2_flood\"}";
    for (name, flood) in [
        ("SETTINGS", frame(SETTINGS, 0, 0, &[])),
        ("PING", frame(PING, 0, 0, &[0; 8])),
        ("empty DATA", frame(DATA, 0, 1, &[])),
    ] {
        // Other tests in this process count floods too: this one looks for its own increase.
        let before = metric(&r, series).await;
        let mut h2 = RawH2::connect(addr).await;
        if name == "empty DATA" {
            // A stream that stays open for its body, then endless empty DATA frames on it.
            h2.send(&frame(HEADERS, 0x4, 1, &get_block("/upload")))
                .await;
        }
        let burst: Vec<u8> = flood
            .iter()
            .copied()
            .cycle()
            .take(flood.len() * 20_000)
            .collect();
        h2.send(&burst).await;
        still_serves(addr).await;
        // The connection ends (nothing more to read) well before the deadline.
        let deadline = tokio::time::Instant::now() + REQUEST_DEADLINE;
        while h2.next(deadline).await.is_some() {}
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} flood: the connection was not ended"
        );
        let counted = metric(&r, series).await;
        assert!(
            counted > before,
            "{name} flood: {series} went from {before} to {counted}"
        );
    }
}

/// CONTINUATION flood (CVE-2024-27316 family): a header block that never ends — HEADERS
/// without END_HEADERS, then CONTINUATION frames past any header limit. The router ends the
/// connection instead of buffering them, and serves other clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_block_that_never_ends_is_cut() {
    let (_dir, _bs, r, addr) = a_test_router("[limits]\nmax_header_bytes = 8192").await;
    let mut h2 = RawH2::connect(addr).await;
    let mut block = get_block("/never-ends");
    // Literal header `x-pad: <4000 bytes>` without indexing, again and again.
    let mut pad = vec![0x00, 5];
    pad.extend(b"x-pad");
    pad.extend([0x7f, 0xa1, 0x1e]); // length 4000 (127 + 3873 as a varint)
    pad.extend(std::iter::repeat_n(b'a', 4000));
    block.extend(&pad);
    h2.send(&frame(HEADERS, 0x1, 1, &block)).await; // END_STREAM, no END_HEADERS
    for _ in 0..2_000 {
        h2.send(&frame(CONTINUATION, 0, 1, &pad)).await;
    }
    still_serves(addr).await;
    let code = h2.goaway(REQUEST_DEADLINE).await;
    assert_eq!(code, Some(11), "GOAWAY(ENHANCE_YOUR_CALM)");
    wait_for_flood_counted(&r).await;
}

/// HPACK bomb: one large header put in the dynamic table, then referenced by its index again
/// and again — a few kilobytes on the wire that decode to megabytes. The stream is refused
/// once the decoded list passes `max_header_bytes` (the h2 layer answers `431` itself);
/// nothing reaches a backend, and other clients are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_block_that_decompresses_past_the_limit_is_refused() {
    let (_dir, bs, _r, addr) = a_test_router("[limits]\nmax_header_bytes = 8192").await;
    let mut h2 = RawH2::connect(addr).await;
    let mut block = get_block("/bomb");
    // `x-bomb: <4000 bytes>` with incremental indexing (it becomes dynamic entry 62)...
    block.extend([0x40, 6]);
    block.extend(b"x-bomb");
    block.extend([0x7f, 0xa1, 0x1e]); // length 4000
    block.extend(std::iter::repeat_n(b'b', 4000));
    // ...then indexed 1,000 times: one byte each, 4 MB decoded.
    block.extend(std::iter::repeat_n(0x80 | 62, 1000));
    h2.send(&frame(HEADERS, WHOLE, 1, &block)).await;
    let deadline = tokio::time::Instant::now() + REQUEST_DEADLINE;
    let mut outcome = None;
    while let Some((kind, _, id, payload)) = h2.next(deadline).await {
        match kind {
            RST_STREAM if id == 1 => {
                outcome = Some(format!(
                    "RST_STREAM {}",
                    u32::from_be_bytes(payload[..4].try_into().unwrap())
                ));
                break;
            }
            GOAWAY => {
                outcome = Some(format!(
                    "GOAWAY {}",
                    u32::from_be_bytes(payload[4..8].try_into().unwrap())
                ));
                break;
            }
            // `:status 431` as h2 encodes it (literal, Huffman "431"): Request Header Fields
            // Too Large, answered by the h2 layer itself.
            HEADERS if id == 1 && payload.starts_with(&[0x48, 0x83, 0x69, 0x90, 0xff]) => {
                outcome = Some("431".to_string());
                break;
            }
            HEADERS if id == 1 => {
                outcome = Some(format!("an answer {:?}", &payload[..payload.len().min(8)]));
                break;
            }
            _ => {}
        }
    }
    println!("HPACK bomb: {outcome:?}");
    let outcome = outcome.expect("the stream is refused in time");
    assert!(
        outcome == "431" || outcome.starts_with("RST_STREAM") || outcome.starts_with("GOAWAY"),
        "a 4 MB header list was not refused: {outcome}"
    );
    still_serves(addr).await;
    assert_eq!(
        bs[0].requests_served(),
        1,
        "only the other client's request reached a backend"
    );
}

/// A graceful stop winds HTTP/2 connections down the RFC 9113 §6.8 way: GOAWAY with the
/// highest stream id and a PING first (streams already on their way are still taken), then
/// GOAWAY with the last stream it took — and the stream in flight is answered in full
/// before the connection ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_sends_the_two_phase_goaway_and_finishes_the_stream_in_flight() {
    let (_dir, bs, r, addr) = a_test_router("").await;
    let mut h2 = RawH2::connect(addr).await;
    h2.send(&frame(
        HEADERS,
        WHOLE,
        1,
        &get_block("/in-flight?delay_ms=600&bytes=5000"),
    ))
    .await;
    let deadline = std::time::Instant::now() + REQUEST_DEADLINE;
    while bs[0].requests_served() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the request never reached the backend"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let stopped = tokio::task::spawn_blocking(move || r.stop());

    let (mut goaways, mut answered, mut body) = (Vec::new(), false, 0usize);
    let mut ended = false;
    let deadline = tokio::time::Instant::now() + REQUEST_DEADLINE;
    while let Some((kind, flags, id, payload)) = h2.next(deadline).await {
        match kind {
            GOAWAY => goaways.push((
                u32::from_be_bytes(payload[..4].try_into().unwrap()) & 0x7fff_ffff,
                u32::from_be_bytes(payload[4..8].try_into().unwrap()),
            )),
            HEADERS if id == 1 => answered = true,
            DATA if id == 1 => {
                body += payload.len();
                ended |= flags & 1 == 1;
            }
            _ => {}
        }
    }
    stopped.await.unwrap();
    assert_eq!(
        goaways.first(),
        Some(&(0x7fff_ffff, 0)),
        "first GOAWAY: the highest stream id, NO_ERROR ({goaways:?})"
    );
    assert_eq!(
        goaways.last(),
        Some(&(1, 0)),
        "last GOAWAY: the last stream taken, NO_ERROR ({goaways:?})"
    );
    assert!(
        answered && ended && body == 5000,
        "the stream in flight was answered in full: {body} bytes"
    );
}

/// Zero-window stall: a client that sets its flow-control window to 0 and never opens it
/// cannot hold an answer (and the backend exchange behind it) forever: once `write_timeout`
/// passes with no room to send, the stream is reset with CANCEL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_opens_its_window_has_the_stream_reset() {
    let (_dir, _bs, r, addr) = a_test_router("[limits]\nwrite_timeout = \"500ms\"").await;
    // SETTINGS_INITIAL_WINDOW_SIZE (4) = 0.
    let mut h2 = RawH2::connect_with(addr, &[(4, 0)]).await;
    let asked = std::time::Instant::now();
    h2.send(&frame(
        HEADERS,
        WHOLE,
        1,
        &get_block("/stalled?bytes=100000"),
    ))
    .await;
    let deadline = tokio::time::Instant::now() + REQUEST_DEADLINE;
    let mut reset = None;
    while let Some((kind, _, id, payload)) = h2.next(deadline).await {
        if kind == RST_STREAM && id == 1 {
            reset = Some(u32::from_be_bytes(payload[..4].try_into().unwrap()));
            break;
        }
        assert!(
            kind != DATA || payload.is_empty(),
            "DATA sent into a closed window"
        );
    }
    assert_eq!(reset, Some(8), "the stalled stream is reset with CANCEL");
    assert!(
        asked.elapsed() >= std::time::Duration::from_millis(450),
        "reset after write_timeout, not at once ({:?})",
        asked.elapsed()
    );
    wait_for_counted(&r, "http2_stalled_stream").await;
    still_serves(addr).await;
}

/// What a conformance case expects of the router: the connection ended with GOAWAY and this
/// error code, or the stream reset with this one.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Goaway(u32),
    Reset(u32, u32),
}

/// RFC 9113 behaviours, as h2spec checks them: each case sends frames a conforming client
/// never would on a fresh connection. Every one is refused (nothing reaches a backend) with
/// the error the RFC prescribes (1 PROTOCOL_ERROR, 3 FLOW_CONTROL_ERROR, 6 FRAME_SIZE_ERROR,
/// 9 COMPRESSION_ERROR) — except where the `h2` crate (0.3, under actix-http) answers with
/// another code, stated per case as a known deviation, so a change either way shows here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_conformance_errors_are_the_ones_the_rfc_prescribes() {
    use Verdict::*;
    let (_dir, bs, _r, addr) = a_test_router("").await;
    let with_header = |name: &str, value: &str| {
        let mut block = get_block("/conformance");
        block.extend([0x00, name.len() as u8]);
        block.extend(name.as_bytes());
        block.extend([value.len() as u8]);
        block.extend(value.as_bytes());
        block
    };
    let two = |a: Vec<u8>, b: Vec<u8>| [a, b].concat();
    // (case, frames, what RFC 9113 prescribes, what the h2 crate answers instead)
    let cases: Vec<(&str, Vec<u8>, Verdict, Option<Verdict>)> = vec![
        // §4.2: a frame over SETTINGS_MAX_FRAME_SIZE (16384).
        (
            "DATA over the frame size",
            two(
                frame(HEADERS, 0x4, 1, &get_block("/c")),
                frame(DATA, 0, 1, &[0; 16_385]),
            ),
            Goaway(6),
            None,
        ),
        // §5.1: DATA on a stream that was never opened.
        (
            "DATA on an idle stream",
            frame(DATA, 1, 3, b"x"),
            Goaway(1),
            None,
        ),
        // §5.1.1: clients use odd stream ids, always increasing.
        (
            "HEADERS on an even stream id",
            frame(HEADERS, WHOLE, 2, &get_block("/c")),
            Goaway(1),
            None,
        ),
        (
            "a stream id lower than one used",
            two(
                frame(HEADERS, WHOLE, 5, &get_block("/c")),
                frame(HEADERS, WHOLE, 3, &get_block("/c")),
            ),
            Goaway(1),
            None,
        ),
        // §6.5.2: SETTINGS values out of range.
        (
            "SETTINGS_ENABLE_PUSH = 2",
            frame(SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 2]),
            Goaway(1),
            None,
        ),
        (
            "SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1",
            frame(SETTINGS, 0, 0, &[0, 4, 0x80, 0, 0, 0]),
            Goaway(3),
            Some(Goaway(1)),
        ),
        // §6.5: SETTINGS whose length is not a multiple of 6.
        (
            "SETTINGS of 5 bytes",
            frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 1]),
            Goaway(6),
            Some(Goaway(1)),
        ),
        // §6.7: PING on a stream; PING not of 8 bytes.
        (
            "PING on a stream",
            frame(PING, 0, 1, &[0; 8]),
            Goaway(1),
            None,
        ),
        (
            "PING of 6 bytes",
            frame(PING, 0, 0, &[0; 6]),
            Goaway(6),
            Some(Goaway(1)),
        ),
        // §6.9: a WINDOW_UPDATE of 0 on the connection; one past the largest window.
        (
            "WINDOW_UPDATE of 0",
            frame(8, 0, 0, &[0, 0, 0, 0]),
            Goaway(1),
            None,
        ),
        (
            "WINDOW_UPDATE past 2^31-1",
            frame(8, 0, 0, &[0x7f, 0xff, 0xff, 0xff]),
            Goaway(3),
            None,
        ),
        // §4.3: a header block that does not decode (an index past both tables).
        (
            "an undecodable header block",
            frame(HEADERS, WHOLE, 1, &[0xff, 0x80, 0x01]),
            Goaway(9),
            Some(Goaway(1)),
        ),
        // §8.3.1: no :path.
        (
            "no :path",
            frame(
                HEADERS,
                WHOLE,
                1,
                &[0x82, 0x87, 0x41, 6, b'a', b'.', b't', b'e', b's', b't'],
            ),
            Reset(1, 1),
            None,
        ),
        // §8.2: upper-case field names; connection-specific fields.
        (
            "an upper-case field name",
            frame(HEADERS, WHOLE, 1, &with_header("X-Upper", "1")),
            Reset(1, 1),
            Some(Goaway(1)),
        ),
        (
            "a Connection field",
            frame(HEADERS, WHOLE, 1, &with_header("connection", "keep-alive")),
            Reset(1, 1),
            None,
        ),
        // §8.3: a pseudo-header after a regular field.
        (
            "a pseudo-header after a field",
            frame(
                HEADERS,
                WHOLE,
                1,
                &[with_header("x-a", "1"), vec![0x82]].concat(),
            ),
            Reset(1, 1),
            None,
        ),
    ];
    let mut wrong = Vec::new();
    for (name, frames, rfc, deviation) in cases {
        let mut h2 = RawH2::connect(addr).await;
        h2.send(&frames).await;
        let deadline = tokio::time::Instant::now() + REQUEST_DEADLINE;
        let mut seen = None;
        while let Some((kind, _, id, payload)) = h2.next(deadline).await {
            match kind {
                GOAWAY => {
                    seen = Some(Goaway(u32::from_be_bytes(
                        payload[4..8].try_into().unwrap(),
                    )));
                    break;
                }
                RST_STREAM => {
                    seen = Some(Reset(
                        id,
                        u32::from_be_bytes(payload[..4].try_into().unwrap()),
                    ));
                    break;
                }
                HEADERS => {
                    seen = Some(Reset(id, u32::MAX)); // answered: never what a case expects
                    break;
                }
                _ => {}
            }
        }
        let expected = deviation.unwrap_or(rfc);
        if seen != Some(expected) {
            wrong.push(format!(
                "{name}: expected {expected:?} (RFC 9113: {rfc:?}), got {seen:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        bs[0].requests_served(),
        0,
        "no malformed request reached a backend"
    );
    still_serves(addr).await;
}

/// An attacked connection the h2 layer ended is counted as `http2_flood` (metrics are per
/// process and tests run at once: at least one).
async fn wait_for_flood_counted(router: &switchyard::RouterHandle) {
    wait_for_counted(router, "http2_flood").await;
}

/// Waits until `switchyard_router_errors_total{kind}` counted one.
async fn wait_for_counted(router: &switchyard::RouterHandle, kind: &str) {
    let series = format!("switchyard_router_errors_total{{kind=\"{kind}\"}}");
    let series = series.as_str();
    let deadline = std::time::Instant::now() + REQUEST_DEADLINE;
    while metric(router, series).await < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{series} never counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// HTTP/2 settings the client can see: `SETTINGS_MAX_CONCURRENT_STREAMS` is
/// `max_streams_per_connection`, and a client that obeys it (as browsers, gRPC and the `h2`
/// crate do) gets every request served — many more than the limit at once, queued by the
/// client, none refused with a 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_is_told_the_stream_limit_and_every_request_is_served() {
    let (_dir, _bs, _r, addr) = a_test_router(
        "[limits]\nmax_streams_per_connection = 5\nh2_max_frame_size = 32768\n\
         h2_initial_stream_window = 131072\nmax_header_bytes = 8192",
    )
    .await;
    let stream = tls_connect(addr, "a.test", &[b"h2"]).await;
    let (client, mut connection) = h2::client::handshake(stream).await.expect("h2 handshake");
    // The server's SETTINGS arrive with the connection's first frames: drive it until then.
    let settings_seen = tokio::time::timeout(REQUEST_DEADLINE, async {
        loop {
            if connection.max_concurrent_send_streams() == 5 {
                return;
            }
            tokio::select! {
                _ = &mut connection => panic!("the connection ended"),
                _ = tokio::time::sleep(std::time::Duration::from_millis(5)) => {}
            }
        }
    })
    .await;
    assert!(
        settings_seen.is_ok(),
        "SETTINGS_MAX_CONCURRENT_STREAMS never said 5 (it says {})",
        connection.max_concurrent_send_streams()
    );
    tokio::spawn(connection);
    let client = client.ready().await.expect("h2 ready");
    let send = |path: String| {
        let mut client = client.clone();
        async move {
            let request = http::Request::get(format!("https://a.test:{}{path}", addr.port()))
                .body(())
                .unwrap();
            let answer = tokio::time::timeout(REQUEST_DEADLINE * 4, async {
                client = client.ready().await?;
                let (response, _) = client.send_request(request, true)?;
                let response = response.await?;
                let status = response.status().as_u16();
                let mut body = response.into_body();
                let mut bytes = 0;
                while let Some(chunk) = body.data().await {
                    let chunk = chunk?;
                    bytes += chunk.len();
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
                Ok::<_, h2::Error>((status, bytes))
            })
            .await
            .expect("an answer within the deadline");
            answer.expect("an h2 answer, not a refused stream")
        }
    };
    // 40 slow requests at once over a limit of 5: every one served.
    let answers = futures_util::future::join_all(
        (0..40).map(|i| send(format!("/slow-{i}?delay_ms=100&bytes=70000"))),
    )
    .await;
    assert!(
        answers
            .iter()
            .all(|(status, bytes)| *status == 200 && *bytes == 70_000),
        "{answers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_client_resumes_its_tls_session_after_many_others() {
    let (_dir, _bs, _r, addr) = a_test_router("").await;
    // A client config is what a player keeps between reconnects: it holds its tickets.
    let player = || {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .unwrap()
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
                .with_no_client_auth(),
        )
    };
    let connect = |config: Arc<rustls::ClientConfig>| async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("a.test").unwrap();
        let mut stream = tokio::time::timeout(
            REQUEST_DEADLINE,
            TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .expect("handshake within the deadline")
        .expect("TLS handshake");
        // Reading the answer also reads the session tickets sent after the handshake.
        assert!(http1(&mut stream, "/a").await.starts_with("HTTP/1.1 200"));
        stream.get_ref().1.handshake_kind()
    };
    let returning = player();
    assert_eq!(
        connect(returning.clone()).await,
        Some(rustls::HandshakeKind::Full)
    );
    // More viewers than a small server-side session cache holds (rustls' default is 256):
    // tickets keep no state on the router, so none of them pushes the first one out.
    for _ in 0..300 {
        connect(player()).await;
    }
    assert_eq!(
        connect(returning).await,
        Some(rustls::HandshakeKind::Resumed),
        "the returning player resumes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_1_1_client_hello_gets_no_server_hello() {
    let dir = scratch();
    let a = make_cert(dir.path(), "a", &["a.test"]);
    let bs = backends(&["t1"]).await;
    let (_r, addr) = tls_router(dir.path(), &[(&a, &["a.test"])], &bs);
    // A minimal TLS 1.1 ClientHello (record version 3.2, client version 3.2, one RSA suite).
    let mut hello = vec![0x01, 0x00, 0x00, 0x2d, 0x03, 0x02];
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.extend_from_slice(&[0x00, 0x00, 0x02, 0x00, 0x2f, 0x01, 0x00]);
    let mut record = vec![0x16, 0x03, 0x02, 0x00, hello.len() as u8];
    record.extend_from_slice(&hello);
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&record).await.unwrap();
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(REQUEST_DEADLINE, tcp.read(&mut answer))
        .await
        .expect("an answer or a close")
        .unwrap_or(0);
    // Either a closed connection or an alert record — never a handshake (ServerHello).
    assert!(n == 0 || answer[0] == 0x15, "got {:?}", &answer[..n]);
    if n > 0 {
        assert_eq!(answer[5], 0x02, "a fatal alert");
        assert_eq!(answer[6], 70, "protocol_version");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_while_a_connection_stays_open_and_a_bad_one_keeps_the_old() {
    let dir = scratch();
    let a = make_cert(dir.path(), "a", &["a.test"]);
    let bs = backends(&["t1"]).await;
    let (r, addr) = tls_router(dir.path(), &[(&a, &["a.test"])], &bs);
    let mut open = tls_connect(addr, "a.test", &[b"http/1.1"]).await;
    assert!(http1(&mut open, "/first").await.starts_with("HTTP/1.1 200"));
    assert_eq!(peer_cert(&open), a.der);

    // A new certificate in the same files, then a reload through the admin API.
    let fresh = make_cert(dir.path(), "a", &["a.test"]);
    let admin = Client::new(r.admin_addr());
    let reload = || async {
        admin
            .send(
                http::Method::POST,
                "/admin/v1/reload",
                &[("authorization", "Bearer a-tls-test-admin-token")],
                Bytes::new(),
            )
            .await
    };
    let reply = reload().await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["certificates"][0]["reloaded"],
        true,
        "{}",
        reply.text()
    );
    let new = tls_connect(addr, "a.test", &[b"http/1.1"]).await;
    assert_eq!(
        peer_cert(&new),
        fresh.der,
        "new connections get the new certificate"
    );
    assert!(
        http1(&mut open, "/second")
            .await
            .starts_with("HTTP/1.1 200"),
        "the open connection goes on"
    );

    // A broken certificate file: the reload is refused, saying which, and the running
    // certificate stays.
    std::fs::write(&fresh.cert, "not a certificate").unwrap();
    let reply = reload().await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let answer = reply.json();
    assert_eq!(
        answer["issues"][0]["key"], "listeners[0].tls.certificates[0]",
        "{answer}"
    );
    assert!(
        answer["issues"][0]["message"]
            .as_str()
            .unwrap()
            .contains("a.pem"),
        "{answer}"
    );
    let after = tls_connect(addr, "a.test", &[b"http/1.1"]).await;
    assert_eq!(peer_cert(&after), fresh.der);
}

#[tokio::test]
async fn a_plain_listener_can_redirect_to_https() {
    let bs = backends(&["t1"]).await;
    let dir = scratch();
    let a = make_cert(dir.path(), "a", &["a.test"]);
    let free = || -> std::net::SocketAddr {
        format!("127.0.0.1:{}", switchyard_load::procs::free_port().unwrap())
            .parse()
            .unwrap()
    };
    let (plain, https) = (free(), free());
    let r = router_with(
        "",
        &format!(
            "[[listeners]]\nid = \"web\"\naddress = \"{plain}\"\nredirect_https = true\n\
             [[listeners]]\nid = \"https\"\naddress = \"{https}\"\ntls = {{ certificates = [{{ names = [\"a.test\"], cert = \"{}\", key = \"{}\" }}] }}\n{}{}",
            a.cert.display(),
            a.key.display(),
            route("all", "/", "all"),
            pool_with("all", "round_robin", &bs, "health = { kind = \"none\" }")
        ),
    );
    let reply = Client::new(plain)
        .get_with("/watch?v=1", &[("host", "video.example.com")])
        .await;
    assert_eq!(reply.status, 308);
    assert_eq!(
        reply.header("location"),
        Some(format!("https://video.example.com:{}/watch?v=1", https.port()).as_str())
    );
    // The node's own listener still serves.
    assert_eq!(Client::new(r.addr()).get("/x").await.status, 200);
}
