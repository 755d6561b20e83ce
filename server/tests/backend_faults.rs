//! Backends that fail without dying: one that accepts connections and never reads, one that
//! sends a response head and then nothing, and a network path that silently stops carrying
//! packets (a relay that freezes: connections stay open, nothing passes either way). Each
//! costs clients no more than the fault forces, leaves nothing stuck in flight, shows in a
//! metric, and ends when the fault does.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::*;
use switchyard::RouterHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend that accepts every connection and then neither reads nor writes; the sockets
/// stay open as long as it lives.
async fn silent_backend() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

/// A backend that reads a request head, answers with a head announcing `length` bytes and
/// sends only the first few, then stalls with the connection open.
async fn stalling_backend(length: usize) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\nfirst");
            let _ = socket.write_all(answer.as_bytes()).await;
            held.push(socket);
        }
    });
    (addr, task)
}

/// A router with `/api` over the given backends (ids `b1`, `b2`, …), with `extra` route keys.
fn router_over(addrs: &[SocketAddr], route_extra: &str, pool_extra: &str) -> RouterHandle {
    let members: Vec<String> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{{ id = \"b{}\", address = \"{a}\" }}", i + 1))
        .collect();
    router(&format!(
        "[[routes]]\nid = \"api\"\npath_prefix = \"/api\"\npool = \"api\"\n{route_extra}\n\
         [[pools]]\nid = \"api\"\nalgorithm = \"round_robin\"\n{pool_extra}\nbackends = [{}]\n",
        members.join(", ")
    ))
}

/// The router's own 504 for a silent backend, well within a test's patience.
fn assert_timed_out(reply: &Reply, started: Instant) {
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert_eq!(reply.header("x-switchyard-error"), Some("upstream_timeout"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

async fn inflight(r: &RouterHandle, backend: usize) -> serde_json::Value {
    Client::new(r.admin_addr())
        .get("/admin/v1/backends")
        .await
        .json()["backends"][backend]["inflight"]
        .clone()
}

#[tokio::test]
async fn a_backend_that_never_reads_gets_504_and_nothing_stays_in_flight() {
    let (addr, _backend) = silent_backend().await;
    let r = router_over(
        &[addr],
        "retries = 0\ntimeouts = { response = \"1s\", idle = \"1s\" }",
        "health = { kind = \"none\" }",
    );
    let client = Client::new(r.addr());
    // A GET: its head fits in the socket's buffers, the answer never comes.
    let started = Instant::now();
    let reply = client.get("/api/x").await;
    assert_timed_out(&reply, started);
    // A POST with 8 MB: the backend takes none of it, so the upload itself blocks — cut
    // after the route's idle timeout, also with 504.
    let started = Instant::now();
    let reply = client
        .send(
            http::Method::POST,
            "/api/upload",
            &[],
            bytes::Bytes::from(vec![b'x'; 8 << 20]),
        )
        .await;
    assert_timed_out(&reply, started);
    assert_eq!(inflight(&r, 0).await, 0, "nothing stays in flight");
    assert!(
        metric(
            &r,
            "switchyard_router_errors_total{kind=\"upstream_timeout\"}"
        )
        .await
            >= 2.0
    );
}

#[tokio::test]
async fn a_backend_that_stalls_after_its_head_is_cut_after_the_idle_timeout() {
    let (addr, _backend) = stalling_backend(1000).await;
    let r = router_over(
        &[addr],
        "retries = 0\ntimeouts = { idle = \"1s\" }",
        "health = { kind = \"none\" }",
    );
    let mut stream = TcpStream::connect(r.addr()).await.unwrap();
    stream
        .write_all(b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // The client gets the head and the first bytes, then — a second of silence later — the
    // end of the connection: a body shorter than announced, which every client reads as a
    // failed transfer (an answer already started cannot become an error status).
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the stalled answer was not cut");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("first"), "{text}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "cut before the idle timeout"
    );
    wait_for(
        "nothing stays in flight",
        Duration::from_secs(5),
        async || inflight(&r, 0).await == 0,
    )
    .await;
    assert!(metric(&r, "switchyard_upstream_body_timeouts_total").await >= 1.0);
}

/// A TCP relay in front of a backend that can freeze: while frozen, nothing passes in either
/// direction and new connections are accepted but not carried — the way a path that silently
/// drops packets looks to the router. Thawing lets everything through again.
struct Relay {
    addr: SocketAddr,
    frozen: Arc<AtomicBool>,
    thawed: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(AtomicBool::new(false));
        let thawed = Arc::new(tokio::sync::Notify::new());
        let (f, t) = (frozen.clone(), thawed.clone());
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let (f, t) = (f.clone(), t.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::join!(
                        Self::pipe(ri, wo, f.clone(), t.clone()),
                        Self::pipe(ro, wi, f, t)
                    );
                });
            }
        });
        Relay {
            addr,
            frozen,
            thawed,
            task,
        }
    }

    /// Copies until either side closes; holds bytes while frozen.
    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        frozen: Arc<AtomicBool>,
        thawed: Arc<tokio::sync::Notify>,
    ) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while frozen.load(Ordering::SeqCst) {
                let wake = thawed.notified();
                if !frozen.load(Ordering::SeqCst) {
                    break;
                }
                wake.await;
            }
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            while frozen.load(Ordering::SeqCst) {
                let wake = thawed.notified();
                if !frozen.load(Ordering::SeqCst) {
                    break;
                }
                wake.await;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
        self.thawed.notify_waiters();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_path_that_silently_drops_everything_is_routed_around_and_used_again_when_it_heals() {
    let bs = backends(&["b1", "b2"]).await;
    let relay = Relay::start(bs[0].addr()).await;
    let r = router_over(
        &[relay.addr, bs[1].addr()],
        "retries = 1\ntimeouts = { response = \"1s\", idle = \"1s\" }",
        "health = { kind = \"http\", interval = \"200ms\", timeout = \"200ms\", fall = 2, rise = 2 }",
    );
    let client = Client::new(r.addr());
    let healthy = async |id: &str| {
        metric(
            &r,
            &format!("switchyard_backend_healthy{{pool=\"api\",backend=\"{id}\"}}"),
        )
        .await
    };
    wait_for(
        "b1 is healthy through the relay",
        Duration::from_secs(10),
        async || healthy("b1").await == 1.0,
    )
    .await;
    relay.freeze();
    // Checks through the frozen path time out: b1 is marked down, and requests meanwhile are
    // retried on b2 (a GET that got no answer is safe to retry).
    wait_for(
        "b1 is marked unhealthy",
        Duration::from_secs(10),
        async || healthy("b1").await == 0.0,
    )
    .await;
    for _ in 0..20 {
        let reply = client.get("/api/x").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.backend(), "b2");
    }
    // The path heals: b1 comes back and takes traffic again.
    relay.thaw();
    wait_for("b1 is healthy again", Duration::from_secs(10), async || {
        healthy("b1").await == 1.0
    })
    .await;
    wait_for("b1 serves again", Duration::from_secs(10), async || {
        client.get("/api/x").await.backend() == "b1"
    })
    .await;
}
