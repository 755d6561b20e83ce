//! Client connections at the edge: a client address past `max_connections_per_ip` is answered
//! 429 and closed while other addresses are served (held WebSocket sessions count), a
//! slow-header client is cut at `header_timeout`, an idle connection is closed at
//! `idle_timeout`, and what the HTTP parser refuses on its own is counted by kind.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A TCP connection to `target` from the loopback address `source`.
async fn tcp_from(source: &str, target: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(target).await.unwrap()
}

/// Writes `request` and reads one answer head (and what came with it) within the deadline.
async fn ask(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + REQUEST_DEADLINE;
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let n = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf))
            .await
            .expect("an answer within the deadline")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Whether the router closes `stream` within `within` (reads what is left until EOF).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n";

fn limited(bs: &[TestBackend], limits: &str) -> switchyard::RouterHandle {
    router(&format!(
        "[limits]\n{limits}\n{}{}",
        route("all", "/", "all"),
        pool_with("all", "round_robin", bs, "health = { kind = \"none\" }")
    ))
}

/// `switchyard_router_errors_total{kind="…"}` on the router's `/metrics` (0 when absent).
async fn refused(r: &switchyard::RouterHandle, kind: &str) -> u64 {
    let text = Client::new(r.admin_addr()).get("/metrics").await.text();
    let series = format!("switchyard_router_errors_total{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn an_address_past_its_connection_limit_gets_429_and_others_are_served() {
    let bs = backends(&["b1"]).await;
    let r = limited(&bs, "max_connections_per_ip = 2");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = tcp_from("127.0.0.2", r.addr()).await;
        let answer = ask(&mut stream, GET).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        held.push(stream);
    }
    let before = refused(&r, "connection_limit").await;
    let mut third = tcp_from("127.0.0.2", r.addr()).await;
    let answer = ask(&mut third, GET).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.contains("x-switchyard-error: connection_limit") && lower.contains("retry-after: "),
        "{answer}"
    );
    assert!(
        closed_within(&mut third, REQUEST_DEADLINE).await,
        "the refused connection is closed"
    );
    assert!(
        refused(&r, "connection_limit").await > before,
        "the refusal is counted"
    );

    let mut other = tcp_from("127.0.0.3", r.addr()).await;
    let answer = ask(&mut other, GET).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "another address is served: {answer}"
    );

    // A closed connection gives its place back.
    held.pop();
    wait_for(
        "a new connection from 127.0.0.2 is served",
        REQUEST_DEADLINE,
        async || {
            let mut stream = tcp_from("127.0.0.2", r.addr()).await;
            ask(&mut stream, GET).await.starts_with("HTTP/1.1 200")
        },
    )
    .await;
}

#[tokio::test]
async fn held_websocket_sessions_count_against_the_connection_limit() {
    let bs = backends(&["b1"]).await;
    let r = router(&format!(
        "[limits]\nmax_connections_per_ip = 2\n{}{}",
        route("ws", "/ws", "ws"),
        pool_with(
            "ws",
            "least_connections",
            &bs,
            "health = { kind = \"none\" }"
        )
    ));
    let (mut first, _) = connect(r.addr(), &[]).await;
    let (_second, _) = connect(r.addr(), &[]).await;
    let mut third = TcpStream::connect(r.addr()).await.unwrap();
    let answer = ask(
        &mut third,
        b"GET /ws/echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 429"),
        "two sessions are open: {answer}"
    );
    first.close(None).await.unwrap();
    wait_for(
        "a closed session gives its place back",
        REQUEST_DEADLINE,
        async || {
            let mut stream = TcpStream::connect(r.addr()).await.unwrap();
            !ask(&mut stream, b"GET /ws/echo HTTP/1.1\r\nHost: a\r\n\r\n")
                .await
                .starts_with("HTTP/1.1 429")
        },
    )
    .await;
}

#[tokio::test]
async fn a_slow_header_client_is_cut_at_the_header_timeout_and_counted() {
    let bs = backends(&["b1"]).await;
    let r = limited(&bs, "header_timeout = \"500ms\"");
    let before = refused(&r, "incomplete_request").await;
    let mut slow = TcpStream::connect(r.addr()).await.unwrap();
    let started = Instant::now();
    // Half a head, then nothing more: the way slowloris holds a connection.
    slow.write_all(b"GET /a HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(REQUEST_DEADLINE, slow.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "the slow client is closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "not before the timeout: {:?}",
        started.elapsed()
    );
    wait_for("the cut is counted", REQUEST_DEADLINE, async || {
        refused(&r, "incomplete_request").await > before
    })
    .await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_at_the_idle_timeout() {
    let bs = backends(&["b1"]).await;
    let r = limited(&bs, "idle_timeout = \"500ms\"");
    let mut stream = TcpStream::connect(r.addr()).await.unwrap();
    let answer = ask(&mut stream, GET).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let started = Instant::now();
    assert!(
        closed_within(&mut stream, REQUEST_DEADLINE).await,
        "the idle connection is closed"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not long before the timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn what_the_http_parser_refuses_is_counted_by_kind() {
    let bs = backends(&["b1"]).await;
    let r = limited(&bs, "");
    let malformed = refused(&r, "malformed_request").await;
    let mut stream = TcpStream::connect(r.addr()).await.unwrap();
    let answer = ask(&mut stream, b"GET /a HTTP/1.1\r\nHost a\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let many = refused(&r, "headers_too_large").await;
    let mut stream = TcpStream::connect(r.addr()).await.unwrap();
    let mut head = b"GET /a HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..200 {
        head.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let answer = ask(&mut stream, &head).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    wait_for("both refusals are counted", REQUEST_DEADLINE, async || {
        refused(&r, "malformed_request").await > malformed
            && refused(&r, "headers_too_large").await > many
    })
    .await;
}

#[tokio::test]
async fn past_a_listeners_max_connections_a_connection_waits_for_a_place_then_is_closed() {
    let bs = backends(&["b1"]).await;
    let listen: SocketAddr = format!("127.0.0.1:{}", switchyard_load::procs::free_port().unwrap())
        .parse()
        .unwrap();
    let r = router(&format!(
        "[limits]\nheader_timeout = \"2s\"\n\
         [[listeners]]\nid = \"capped\"\naddress = \"{listen}\"\nmax_connections = 2\n{}{}",
        route("all", "/", "all"),
        pool_with("all", "round_robin", &bs, "health = { kind = \"none\" }")
    ));
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(listen).await.unwrap();
        assert!(ask(&mut stream, GET).await.starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    // The third waits, unserved, while both places are taken...
    let mut waiting = TcpStream::connect(listen).await.unwrap();
    waiting.write_all(GET).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(300), waiting.read(&mut buf)).await;
    assert!(early.is_err(), "no answer while the listener is full");
    // ...and is served once one closes.
    held.pop();
    let answer = ask(&mut waiting, b"").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A connection that waits longer than header_timeout is closed, and counted.
    let before = refused(&r, "listener_limit").await;
    let mut late = TcpStream::connect(listen).await.unwrap();
    late.write_all(GET).await.unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(REQUEST_DEADLINE, late.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "closed at the wait's end");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert!(refused(&r, "listener_limit").await > before);
    // The main listener has no such cap.
    assert!(
        ask(&mut TcpStream::connect(r.addr()).await.unwrap(), GET)
            .await
            .starts_with("HTTP/1.1 200")
    );
}
