//! Bodies stream through the router both ways: a video chunk reaches the viewer while the
//! backend is still producing the next, uploads are not buffered whole, and a body cut short
//! never looks complete.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use support::*;

fn stream_router(bs: &[TestBackend], idle: &str) -> switchyard::RouterHandle {
    router(&format!(
        "[[routes]]\nid = \"stream\"\npath_prefix = \"/stream\"\npool = \"stream\"\ntimeouts = {{ connect = \"1s\", response = \"5s\", idle = \"{idle}\" }}\n{}",
        // No health checks here: their connections would blur the connection counts below.
        pool_with(
            "stream",
            "least_connections",
            bs,
            "health = { kind = \"none\" }"
        )
    ))
}

#[tokio::test]
async fn the_first_chunk_arrives_before_the_backend_finishes() {
    let bs = backends(&["s1"]).await;
    let r = stream_router(&bs, "60s");
    let client = Client::new(r.addr());
    // 10 chunks, 300 ms apart: the backend needs 2.7 s to finish.
    let started = Instant::now();
    let resp = client
        .get_head("/stream/movie?bytes=10000&chunk_bytes=1000&chunk_ms=300")
        .await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let first = body
        .frame()
        .await
        .expect("a first frame")
        .expect("no error");
    let first_at = started.elapsed();
    assert!(first.data_ref().is_some_and(|d| !d.is_empty()));
    assert!(
        first_at < Duration::from_millis(1500),
        "first chunk took {first_at:?}; the backend needs 2.7 s to finish, so it was buffered"
    );
    let mut total = first.into_data().map(|d| d.len()).unwrap_or(0);
    while let Some(frame) = body.frame().await {
        total += frame
            .expect("stream completes")
            .into_data()
            .map(|d| d.len())
            .unwrap_or(0);
    }
    assert_eq!(total, 10_000);
    assert!(started.elapsed() >= Duration::from_millis(2700));
}

#[tokio::test]
async fn a_large_response_arrives_whole_with_its_length() {
    let bs = backends(&["s1"]).await;
    let r = stream_router(&bs, "60s");
    let reply = Client::new(r.addr())
        .get("/stream/file?bytes=8388608")
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), 8 * 1024 * 1024);
    assert_eq!(reply.header("content-length"), Some("8388608"));
}

#[tokio::test]
async fn uploads_stream_through_with_and_without_a_length() {
    let bs = backends(&["s1"]).await;
    let r = stream_router(&bs, "60s");
    let client = Client::new(r.addr());
    let body = Bytes::from(vec![7u8; 3 * 1024 * 1024 + 17]);
    let reply = client
        .send(
            http::Method::POST,
            "/stream/upload?echo=1",
            &[],
            body.clone(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["body_bytes"], body.len());

    // Chunked upload through a raw socket: no Content-Length at all.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
    sock.write_all(
        b"POST /stream/upload?echo=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(REQUEST_DEADLINE, sock.read_to_string(&mut answer))
        .await
        .expect("answer within deadline")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"body_bytes\":11"), "{answer}");
}

#[tokio::test]
async fn a_backend_that_dies_mid_body_makes_the_client_see_an_error() {
    let bs = backends(&["s1"]).await;
    let r = stream_router(&bs, "60s");
    let client = Client::new(r.addr());
    // The backend promises 20,000 bytes, sends 10,000, then cuts its connection.
    let resp = client.get_head("/stream/x?drop_after=10000").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "20000");
    let result = tokio::time::timeout(REQUEST_DEADLINE, resp.into_body().collect())
        .await
        .expect("the client learns of the cut within the deadline");
    assert!(
        result.is_err(),
        "a truncated body was delivered as if complete"
    );
}

#[tokio::test]
async fn a_chunked_body_cut_short_is_not_terminated_cleanly() {
    let bs = backends(&["s1"]).await;
    let r = stream_router(&bs, "60s");
    let client = Client::new(r.addr());
    let resp = client
        .get_head("/stream/x?drop_after=3000&chunk_ms=1&chunk_bytes=1000")
        .await;
    assert!(
        resp.headers().get("content-length").is_none(),
        "not a chunked answer"
    );
    let result = tokio::time::timeout(REQUEST_DEADLINE, resp.into_body().collect())
        .await
        .expect("the client learns of the cut within the deadline");
    assert!(
        result.is_err(),
        "a truncated body was delivered as if complete"
    );
}

#[tokio::test]
async fn a_silent_stream_is_cut_after_the_idle_timeout() {
    let bs = backends(&["s1"]).await;
    let r = stream_router(&bs, "300ms");
    let client = Client::new(r.addr());
    // Chunks 2 s apart: far beyond the route's 300 ms idle timeout.
    let started = Instant::now();
    let resp = client
        .get_head("/stream/x?bytes=3000&chunk_bytes=1000&chunk_ms=2000")
        .await;
    let result = tokio::time::timeout(REQUEST_DEADLINE, resp.into_body().collect())
        .await
        .expect("cut within the deadline");
    assert!(result.is_err(), "the silent stream was not cut");
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "cut only after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn head_requests_keep_the_backends_length_and_send_no_body() {
    let bs = backends(&["s1"]).await;
    let r = stream_router(&bs, "60s");
    let reply = Client::new(r.addr())
        .send(
            http::Method::HEAD,
            "/stream/x?bytes=5000",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-length"), Some("5000"));
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn backend_connections_are_kept_alive_and_reused() {
    let bs = backends(&["s1"]).await;
    let r = stream_router(&bs, "60s");
    let client = Client::new(r.addr());
    for _ in 0..20 {
        assert_eq!(client.get("/stream/x").await.status, 200);
    }
    let reply = client.get("/stream/x?bytes=100000").await;
    assert_eq!(reply.body.len(), 100_000);
    let chunked = client
        .get("/stream/x?bytes=5000&chunk_bytes=1000&chunk_ms=1")
        .await;
    assert_eq!(chunked.body.len(), 5_000);
    assert_eq!(bs[0].requests_served(), 22);
    assert_eq!(
        bs[0].connections_accepted(),
        1,
        "the router opened a new connection per request"
    );
}

#[tokio::test]
async fn a_backend_that_closes_after_each_answer_gets_a_new_connection_each_time() {
    let bs = backends(&["s1"]).await;
    let r = stream_router(&bs, "60s");
    let client = Client::new(r.addr());
    for _ in 0..5 {
        let reply = client.get("/stream/x?close=1").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "s1");
        assert_eq!(reply.header("connection"), None, "hop-by-hop header leaked");
    }
    assert_eq!(bs[0].connections_accepted(), 5);
}

#[tokio::test]
async fn pooled_connections_to_a_restarted_backend_are_replaced_without_errors() {
    let bs = backends(&["s1"]).await;
    let addr = bs[0].addr();
    let r = stream_router(&bs, "60s");
    let client = Client::new(r.addr());
    assert_eq!(client.get("/stream/x").await.status, 200);
    // The backend restarts on the same port (a deploy): the router's pooled connection is dead.
    for b in bs {
        b.stop().await;
    }
    let _again = TestBackend::start("s1-new", addr)
        .await
        .expect("rebind the same port");
    for _ in 0..3 {
        let reply = client.get("/stream/x").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.backend(), "s1-new");
    }
}
