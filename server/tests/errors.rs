//! The router's own errors: right status, `X-Switchyard-Error` kind, JSON body with the
//! request id; a backend's own errors pass through untouched; connect failures are retried on
//! another backend; bad requests get a 400, never a hang.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use support::*;
use switchyard::routing::{BackendEntry, BackendState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn assert_router_error(reply: &Reply, status: u16, kind: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    assert_eq!(reply.header("x-switchyard-error"), Some(kind));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let json = reply.json();
    assert_eq!(json["error"], kind);
    assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    let rid = reply
        .header("x-request-id")
        .expect("x-request-id on errors");
    assert_eq!(json["request_id"], rid);
}

#[tokio::test]
async fn unknown_paths_get_404_no_route() {
    let bs = backends(&["a"]).await;
    let r = api_router(&bs, "round_robin", "");
    let client = Client::new(r.addr());
    let reply = client
        .get_with("/apix", &[("x-request-id", "trace-404")])
        .await;
    assert_router_error(&reply, 404, "no_route");
    assert_eq!(reply.json()["request_id"], "trace-404");
    assert_eq!(bs[0].requests_served(), 0);
}

#[tokio::test]
async fn a_pool_with_no_eligible_backend_gets_503() {
    let bs = backends(&["a", "b"]).await;
    let r = api_router(&bs, "round_robin", "");
    // Mark every backend down, as failed health checks will.
    let table = r.table();
    let pool = table.pool("api").unwrap();
    let current = pool.load_full();
    let down = current
        .backends
        .iter()
        .map(|b| {
            Arc::new(BackendEntry::new(
                b.id.clone(),
                b.addr,
                b.weight,
                BackendState::Down,
                b.stats.clone(),
            ))
        })
        .collect();
    pool.publish(pool.snapshot(current.version + 1, down, false));

    let reply = Client::new(r.addr()).get("/api/x").await;
    assert_router_error(&reply, 503, "no_healthy_backend");
    assert!(reply.json()["message"].as_str().unwrap().contains("api"));
}

#[tokio::test]
async fn an_unreachable_backend_gets_502_upstream_connect() {
    let dead = dead_address();
    let r = router(&format!(
        "{}[[pools]]\nid = \"api\"\nhealth = {{ kind = \"none\" }}\nbackends = [{{ id = \"gone\", address = \"{dead}\" }}]\n",
        route("api", "/api", "api")
    ));
    let reply = Client::new(r.addr()).get("/api/x").await;
    assert_router_error(&reply, 502, "upstream_connect");
    assert!(
        !reply.text().contains(&dead.to_string()),
        "backend address leaked to the client"
    );
}

#[tokio::test]
async fn connect_failures_are_retried_on_another_backend() {
    let live = backends(&["live"]).await;
    let dead = dead_address();
    let r = router(&format!(
        "{}[[pools]]\nid = \"api\"\nhealth = {{ kind = \"none\" }}\noutlier = {{ consecutive_failures = 0 }}\nbackends = [\n {{ id = \"gone\", address = \"{dead}\" }},\n {{ id = \"live\", address = \"{}\" }},\n]\n",
        route("api", "/api", "api"),
        live[0].addr()
    ));
    let client = Client::new(r.addr());
    for _ in 0..10 {
        let reply = client.get("/api/x").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.backend(), "live");
    }
}

#[tokio::test]
async fn a_slow_backend_gets_504_upstream_timeout() {
    let bs = backends(&["slow"]).await;
    let r = router(&format!(
        "[[routes]]\nid = \"api\"\npath_prefix = \"/api\"\npool = \"api\"\ntimeouts = {{ connect = \"1s\", response = \"200ms\", idle = \"5s\" }}\n{}",
        pool("api", "round_robin", &bs, &[])
    ));
    let started = std::time::Instant::now();
    let reply = Client::new(r.addr()).get("/api/x?delay_ms=3000").await;
    assert_router_error(&reply, 504, "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_backends_own_503_passes_through_unmarked() {
    let bs = backends(&["a"]).await;
    let r = api_router(&bs, "round_robin", "");
    let reply = Client::new(r.addr()).get("/api/x?status=503").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("x-switchyard-error"), None);
    assert_eq!(reply.backend(), "a");
    assert_eq!(reply.text(), "a");
}

#[tokio::test]
async fn malformed_requests_get_400_and_the_router_keeps_serving() {
    let bs = backends(&["a"]).await;
    let r = api_router(&bs, "round_robin", "");
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /api HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET /api HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
    ] {
        let mut sock = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
        sock.write_all(garbage).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(REQUEST_DEADLINE, sock.read_to_end(&mut answer))
            .await
            .expect("the router answers or closes, never hangs")
            .ok();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{garbage:?} got {answer:?}"
        );
    }
    let reply = Client::new(r.addr()).get("/api/x").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        bs[0].requests_served(),
        1,
        "no malformed request reached the backend"
    );
}

#[tokio::test]
async fn a_post_to_an_unreachable_backend_gets_one_502() {
    // Bodies are never replayed: a POST to a dead backend is answered 502, not half-sent twice.
    let dead = dead_address();
    let r = router(&format!(
        "{}[[pools]]\nid = \"api\"\nhealth = {{ kind = \"none\" }}\nbackends = [{{ id = \"gone\", address = \"{dead}\" }}]\n",
        route("api", "/api", "api")
    ));
    let reply = Client::new(r.addr())
        .send(
            http::Method::POST,
            "/api/x",
            &[],
            Bytes::from_static(b"payload"),
        )
        .await;
    assert_router_error(&reply, 502, "upstream_connect");
}

#[tokio::test]
async fn an_upgrade_request_with_a_body_is_refused_and_smuggles_nothing() {
    let bs = backends(&["a"]).await;
    let r = api_router(&bs, "round_robin", "");
    let mut sock = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
    sock.write_all(
        b"POST /api HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Length: 5\r\n\r\nhelloGET /internal-admin HTTP/1.1\r\nHost: internal\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(REQUEST_DEADLINE, sock.read(&mut answer))
        .await
        .expect("an answer within the deadline")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("x-switchyard-error: bad_request"),
        "{answer}"
    );
    drop(sock);
    assert_eq!(bs[0].requests_served(), 0, "something reached the backend");
}

/// A hand-made backend: answers the first request on a connection, then reads the second and
/// closes without answering, as a backend does whose keep-alive timer fires at that moment.
/// Counts the requests it read, per method.
async fn closing_backend() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for answered in [true, false] {
                    let head = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_string();
                            buf.drain(..end + 4);
                            break head;
                        }
                        let mut chunk = [0u8; 1024];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    log.lock()
                        .unwrap()
                        .push(head.split(' ').next().unwrap_or("").to_string());
                    if !answered {
                        return; // read it, then close without a word
                    }
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_post_on_a_connection_the_backend_closes_is_never_sent_twice() {
    let (addr, seen) = closing_backend().await;
    let r = router(&format!(
        "{}[[pools]]\nid = \"api\"\nhealth = {{ kind = \"none\" }}\nbackends = [{{ id = \"b\", address = \"{addr}\" }}]\n",
        route("api", "/api", "api")
    ));
    let client = Client::new(r.addr());
    assert_eq!(client.get("/api/warm").await.status, 200);
    let reply = client
        .send(
            http::Method::POST,
            "/api/charge",
            &[("content-length", "0")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    let posts = seen.lock().unwrap().iter().filter(|m| *m == "POST").count();
    assert_eq!(posts, 1, "the POST reached the backend {posts} times");
}

#[tokio::test]
async fn a_get_on_a_connection_the_backend_closes_is_sent_again_on_a_new_one() {
    let (addr, seen) = closing_backend().await;
    let r = router(&format!(
        "{}[[pools]]\nid = \"api\"\nhealth = {{ kind = \"none\" }}\nbackends = [{{ id = \"b\", address = \"{addr}\" }}]\n",
        route("api", "/api", "api")
    ));
    let client = Client::new(r.addr());
    assert_eq!(client.get("/api/warm").await.status, 200);
    let reply = client.get("/api/again").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "ok");
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "warm, the lost GET, the GET again"
    );
}
