//! Request size limits, each with its status and nothing sent to the backend: a request
//! target over `limits.max_uri_bytes` (414), headers over `limits.max_header_bytes` or more
//! than the parser's 96 (431), a body over the route's `max_body_bytes` (413); and a client
//! that stops taking its answer, cut after `limits.write_timeout`.

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::*;
use switchyard::RouterHandle;

#[tokio::test]
async fn each_limit_answers_with_its_status_and_the_backend_sees_nothing() {
    let bs = backends(&["b1"]).await;
    let r = router(&format!(
        "[limits]\nmax_uri_bytes = 1024\nmax_header_bytes = 4096\n\
         [[routes]]\nid = \"api\"\npath_prefix = \"/api\"\npool = \"api\"\nmax_body_bytes = 1000\n{}",
        pool_with("api", "round_robin", &bs, "health = { kind = \"none\" }")
    ));
    // A fresh client (connection pool) per case: a refusal may close its connection, and a
    // pooled connection closed under the client would fail the next request for no reason
    // of the router's.
    let fresh = || Client::new(r.addr());
    let long = format!("/api/{}", "u".repeat(1100));
    let reply = fresh().get(&long).await;
    assert_eq!(reply.status, 414, "{}", reply.text());
    assert_eq!(reply.header("x-switchyard-error"), Some("uri_too_long"));

    let big = "v".repeat(5000);
    let reply = fresh().get_with("/api/x", &[("x-big", big.as_str())]).await;
    assert_eq!(reply.status, 431, "{}", reply.text());
    assert_eq!(
        reply.header("x-switchyard-error"),
        Some("headers_too_large")
    );

    let names: Vec<String> = (0..100).map(|i| format!("x-h{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    assert_eq!(fresh().get_with("/api/x", &many).await.status, 431);

    let reply = fresh()
        .send(
            http::Method::POST,
            "/api/upload",
            &[],
            Bytes::from(vec![b'x'; 2000]),
        )
        .await;
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(reply.header("x-switchyard-error"), Some("body_too_large"));
    assert_eq!(bs[0].requests_served(), 0, "nothing reached the backend");

    // Within every limit, the request goes through.
    let reply = fresh()
        .send(
            http::Method::POST,
            "/api/upload",
            &[],
            Bytes::from(vec![b'x'; 900]),
        )
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn past_max_connections_new_connections_wait_until_one_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bs = backends(&["b1"]).await;
    let r = router_with(
        "max_connections = 2",
        &format!(
            "{}{}",
            route("api", "/api", "api"),
            pool_with("api", "round_robin", &bs, "health = { kind = \"none\" }")
        ),
    );
    let request = b"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
        conn.write_all(request).await.unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(REQUEST_DEADLINE, conn.read(&mut buf))
            .await
            .expect("served")
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(conn); // kept open (keep-alive)
    }
    let mut third = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
    third.write_all(request).await.unwrap();
    let mut buf = [0u8; 512];
    let waiting =
        tokio::time::timeout(std::time::Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(
        waiting.is_err(),
        "a third connection was served past max_connections"
    );
    drop(held.pop());
    let n = tokio::time::timeout(REQUEST_DEADLINE, third.read(&mut buf))
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_cut_with_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bs = backends(&["b1"]).await;
    let r = router(&format!(
        "[[routes]]\nid = \"api\"\npath_prefix = \"/api\"\npool = \"api\"\nmax_body_bytes = 1000\nretries = 0\n{}",
        pool_with("api", "round_robin", &bs, "health = { kind = \"none\" }")
    ));
    let mut conn = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
    let mut request =
        b"POST /api/upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        request.extend_from_slice(b"1f4\r\n");
        request.extend_from_slice(&[b'x'; 500]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    conn.write_all(&request).await.unwrap();
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(REQUEST_DEADLINE, conn.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");
}

/// Writes `head`, then reads what the router answers until `enough` is in it (or it closes).
async fn answer_to_head(addr: std::net::SocketAddr, head: &str, enough: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || String::from_utf8_lossy(&answer).contains(enough) {
                break;
            }
        }
    };
    tokio::time::timeout(REQUEST_DEADLINE, read)
        .await
        .unwrap_or_else(|_| panic!("no {enough:?} within the deadline: {answer:?}"));
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_body_announced_over_the_limit_is_refused_before_100_continue_invites_it() {
    let bs = backends(&["e1"]).await;
    let r = router(&format!(
        "[[routes]]\nid = \"api\"\npath_prefix = \"/api\"\npool = \"api\"\nmax_body_bytes = 1000\n{}",
        pool_with("api", "round_robin", &bs, "health = { kind = \"none\" }")
    ));
    // Over the limit: 413 at once, never a 100 inviting ten megabytes.
    let answer = answer_to_head(
        r.addr(),
        "POST /api/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\nExpect: 100-continue\r\n\r\n",
        "\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains(" 100 "), "{answer}");
    assert!(
        answer
            .to_lowercase()
            .contains("x-switchyard-error: body_too_large"),
        "{answer}"
    );
    // Within it: 100 Continue, as before.
    let answer = answer_to_head(
        r.addr(),
        "POST /api/upload HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n",
        "\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 100"), "{answer}");
    assert_eq!(bs[0].requests_served(), 0, "nothing reached the backend");
}

#[tokio::test]
async fn a_request_line_longer_than_the_parser_buffers_is_answered_414_not_431() {
    let bs = backends(&["b1"]).await;
    let r = api_router(&bs, "round_robin", "");
    // A megabyte of request target: past what the HTTP layer buffers for a head (128 KiB),
    // before the router's own `max_uri_bytes` check could run.
    let head = format!(
        "GET /api/{} HTTP/1.1\r\nHost: a\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let answer = answer_to_head(r.addr(), &head, "\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 414"), "{answer:.200}");
    // A head whose request line is short but whose headers overflow stays 431.
    let head = format!(
        "GET /api/x HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(200_000)
    );
    let answer = answer_to_head(r.addr(), &head, "\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.200}");
    assert_eq!(bs[0].requests_served(), 0, "nothing reached the backend");
}

/// A client connection whose receive buffer is tiny, so a router writing to it blocks as soon
/// as the client stops reading.
async fn small_window_client(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

const BIG_ANSWER: &str = "GET /api/x?bytes=200000000 HTTP/1.1\r\nHost: a\r\n\r\n";

fn write_timeout_router(bs: &[TestBackend]) -> RouterHandle {
    router(&format!(
        "[limits]\nwrite_timeout = \"1s\"\n\n{}{}",
        route("api", "/api", "api"),
        pool_with("api", "round_robin", bs, "health = { kind = \"none\" }")
    ))
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_after_write_timeout_and_frees_the_backend() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bs = backends(&["b1"]).await;
    let r = write_timeout_router(&bs);
    let mut client = small_window_client(r.addr()).await;
    client.write_all(BIG_ANSWER.as_bytes()).await.unwrap();
    // The client never reads: the router's writes block, and after 1 s the connection is cut,
    // and the backend's exchange with it: nothing is left in flight.
    let admin = Client::new(r.admin_addr());
    let inflight =
        async || admin.get("/admin/v1/backends").await.json()["backends"][0]["inflight"].clone();
    wait_for(
        "the answer is in flight",
        Duration::from_secs(10),
        async || inflight().await == 1,
    )
    .await;
    wait_for(
        "the cut ends the exchange",
        Duration::from_secs(15),
        async || inflight().await == 0,
    )
    .await;
    assert!(metric(&r, "switchyard_client_write_timeouts_total").await >= 1.0);
    // What the client finally reads ends long before the 200 MB it asked for.
    let mut received = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let drained = tokio::time::timeout(REQUEST_DEADLINE, async {
        loop {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the cut connection did not end");
    assert!(
        received < 100_000_000,
        "read {received} bytes of a cut answer"
    );
}

#[tokio::test]
async fn a_client_that_reads_slowly_but_steadily_is_not_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bs = backends(&["b1"]).await;
    let r = write_timeout_router(&bs);
    let mut client = small_window_client(r.addr()).await;
    client.write_all(BIG_ANSWER.as_bytes()).await.unwrap();
    // Three times the write timeout, taking a little every 100 ms: every blocked write is
    // unblocked well within the second.
    let mut buf = vec![0u8; 16 * 1024];
    let mut received = 0usize;
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        let n = tokio::time::timeout(Duration::from_secs(2), client.read(&mut buf))
            .await
            .expect("the router kept sending")
            .expect("the connection stayed open");
        assert!(n > 0, "the router closed a client that was reading");
        received += n;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(received > 0);
}
