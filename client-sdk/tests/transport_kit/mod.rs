//! Shared helpers for the SDK's transport tests (TLS, requests, directory, config, metrics):
//! real test backends and real routers (in-process, on `127.0.0.1:0`), a test CA made with
//! rcgen and a router whose TLS listener holds a certificate it signed, and a directory
//! stand-in. Every server stops when its guard drops. (Apart from the session tests'
//! `tests/support/`, which grows on its own; the two may become one.)
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use switchyard::RouterHandle;
use switchyard::config::Config;
pub use switchyard_load::TestBackend;

/// Longest wait for anything a test awaits.
pub const WAIT: Duration = Duration::from_secs(20);

/// Test backends with the given ids on free ports.
pub async fn backends(ids: &[&str]) -> Vec<TestBackend> {
    let mut out = Vec::new();
    for id in ids {
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        out.push(
            TestBackend::start(id, local)
                .await
                .expect("test backend starts"),
        );
    }
    out
}

/// An address nothing listens on (a router that is down).
pub fn dead_endpoint() -> String {
    let port = switchyard_load::procs::free_port().unwrap();
    format!("http://127.0.0.1:{port}")
}

/// A `[[routes]]` + `[[pools]]` pair sending everything to `bs`; `pool_extra` adds pool keys,
/// `route_extra` route keys.
fn routes(bs: &[TestBackend], route_extra: &str, pool_extra: &str) -> String {
    let members: Vec<String> = bs
        .iter()
        .map(|b| format!("{{ id = \"{}\", address = \"{}\" }}", b.id(), b.addr()))
        .collect();
    format!(
        "[[routes]]\nid = \"all\"\npath_prefix = \"/\"\npool = \"p\"\nretries = 0\n{route_extra}\n\
         [[pools]]\nid = \"p\"\nalgorithm = \"round_robin\"\nhealth = {{ kind = \"none\" }}\n{pool_extra}\nbackends = [{}]\n",
        members.join(", ")
    )
}

fn start(listeners: &str, body: &str) -> RouterHandle {
    start_with("", listeners, body)
}

/// A router with more `[node]` keys, listeners (or regions) and routes.
fn start_with(node: &str, listeners: &str, body: &str) -> RouterHandle {
    let text = format!(
        "[node]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = 1\nshutdown_timeout = \"1s\"\n{node}\
         [log]\naccess = false\n{listeners}\n{body}"
    );
    let config = Config::from_toml_str(&text)
        .unwrap_or_else(|err| panic!("test config is invalid:\n{err}\n---\n{text}"));
    switchyard::start(config).expect("router starts")
}

/// A plain router in front of `bs`.
pub fn router(bs: &[TestBackend]) -> RouterHandle {
    start("", &routes(bs, "", ""))
}

/// A plain router in front of `bs` with more route and pool keys.
pub fn router_with(bs: &[TestBackend], route_extra: &str, pool_extra: &str) -> RouterHandle {
    start("", &routes(bs, route_extra, pool_extra))
}

/// `http://` URL of a plain router.
pub fn http_url(router: &RouterHandle) -> String {
    format!("http://{}", router.addr())
}

/// A scratch directory removed on drop.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("switchyard-sdk-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A certificate authority made for one test.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
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
        TestCa { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` signed by this CA, written as `dir/<file>.pem|.key`.
    pub fn issue(&self, dir: &Path, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{file}.pem")),
            dir.join(format!("{file}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

/// A router with a plain listener and a TLS listener (certificate for `localhost` and
/// `127.0.0.1` issued by `ca`) in front of `bs`; returns the router and its `https://` URL
/// (by the name `localhost`, so the client sends SNI and checks the name).
pub fn tls_router(ca: &TestCa, dir: &Scratch, bs: &[TestBackend]) -> (RouterHandle, String) {
    tls_router_in(ca, dir, bs, None)
}

/// [`tls_router`] whose node is region `region`, the only one its directory
/// (`/v1/regions`) lists, with its `https://` URL as the endpoint.
pub fn tls_router_in(
    ca: &TestCa,
    dir: &Scratch,
    bs: &[TestBackend],
    region: Option<&str>,
) -> (RouterHandle, String) {
    let (cert, key) = ca.issue(dir.path(), "router", &["localhost", "127.0.0.1"]);
    let port = switchyard_load::procs::free_port().unwrap();
    let url = format!("https://localhost:{port}");
    let mut listeners = format!(
        "[[listeners]]\nid = \"https\"\naddress = \"127.0.0.1:{port}\"\n\
         tls = {{ certificates = [{{ names = [\"localhost\"], cert = \"{}\", key = \"{}\" }}] }}\n",
        cert.display(),
        key.display()
    );
    let mut node = String::new();
    if let Some(name) = region {
        node = format!("region = \"{name}\"\n");
        listeners.push_str(&format!(
            "[[regions]]\nname = \"{name}\"\nlocation = {{ lat = 48.86, lon = 2.35 }}\nendpoint = \"{url}\"\n"
        ));
    }
    let router = start_with(&node, &listeners, &routes(bs, "", ""));
    (router, url)
}

/// Waits until `cond` holds, checking every 20 ms; fails with `what` after [`WAIT`].
pub async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
