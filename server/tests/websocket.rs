//! WebSocket sessions through the router: the handshake carries what the backend needs and
//! returns what the client needs, frames of every kind pass both ways, close codes pass
//! through unchanged, a lost backend is reported with 4002, and closed sessions leave no
//! counters behind.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::*;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

fn ws_router(bs: &[TestBackend]) -> switchyard::RouterHandle {
    ws_router_with(bs, "")
}

/// [`ws_router`] with `[limits]` keys.
fn ws_router_with(bs: &[TestBackend], limits: &str) -> switchyard::RouterHandle {
    router(&format!(
        "[limits]\n{limits}\n{}{}",
        route("ws", "/ws", "ws"),
        pool_with(
            "ws",
            "least_connections",
            bs,
            "health = { kind = \"none\" }"
        )
    ))
}

#[tokio::test]
async fn text_and_binary_messages_pass_both_ways_and_the_101_names_the_backend() {
    let bs = backends(&["ws-1"]).await;
    let r = ws_router(&bs);
    let (mut ws, answer) = connect(r.addr(), &[]).await;
    assert_eq!(answer.status(), 101);
    assert_eq!(answer.headers()["x-backend-id"], "ws-1");
    assert!(answer.headers().contains_key("x-request-id"));

    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("ws-1: hello"));
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        next(&mut ws).await,
        Message::binary(b"ws-1: \x01\x02\x03".to_vec())
    );
    // A large message (300 KiB, over actix's default 64 KiB frame limit) arrives whole.
    let big = "x".repeat(300 * 1024);
    ws.send(Message::text(big.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text(format!("ws-1: {big}")));
    // Pings are answered end to end.
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await,
        Message::Pong(b"are you there".to_vec().into())
    );
}

#[tokio::test]
async fn close_codes_pass_through_in_both_directions() {
    let bs = backends(&["ws-1"]).await;
    let r = ws_router(&bs);
    // The backend closes with its own code: the client sees it unchanged.
    let (mut ws, _) = connect(r.addr(), &[]).await;
    ws.send(Message::text("close:4321:backend says bye"))
        .await
        .unwrap();
    match next(&mut ws).await {
        Message::Close(Some(CloseFrame { code, reason })) => {
            assert_eq!(u16::from(code), 4321);
            assert_eq!(reason.as_str(), "backend says bye");
        }
        other => panic!("expected a close, got {other:?}"),
    }
    // The client closes with its code: the close handshake completes.
    let (mut ws, _) = connect(r.addr(), &[]).await;
    ws.close(Some(CloseFrame {
        code: 4100u16.into(),
        reason: "client done".into(),
    }))
    .await
    .unwrap();
    match next(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4100),
        other => panic!("expected the close echoed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_lost_backend_closes_the_session_with_4002() {
    let bs = backends(&["ws-1"]).await;
    let r = ws_router(&bs);
    let (mut ws, _) = connect(r.addr(), &[]).await;
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("ws-1: hi"));
    for b in bs {
        b.stop().await;
    }
    match next(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4002),
        other => panic!("expected close 4002, got {other:?}"),
    }
}

#[tokio::test]
async fn sessions_spread_by_least_connections_and_counters_return_to_zero() {
    let bs = backends(&["ws-1", "ws-2", "ws-3"]).await;
    let r = ws_router(&bs);
    let mut sessions = Vec::new();
    let mut per_backend = std::collections::BTreeMap::new();
    for _ in 0..30 {
        let (ws, answer) = connect(r.addr(), &[]).await;
        let id = answer.headers()["x-backend-id"]
            .to_str()
            .unwrap()
            .to_string();
        *per_backend.entry(id).or_insert(0) += 1;
        sessions.push(ws);
    }
    assert_eq!(
        per_backend.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10]
    );
    let table = r.table();
    let pool = table.pool("ws").unwrap();
    assert_eq!(
        pool.load()
            .backends
            .iter()
            .map(|b| b.stats.sessions())
            .sum::<u32>(),
        30
    );
    // Close them all at once (actix keeps each TCP connection up to 1 s after the close
    // handshake unless the client closes first).
    let closes = sessions
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| async move {
            ws.close(None).await.unwrap();
            let drained = tokio::time::timeout(REQUEST_DEADLINE, async {
                while let Some(Ok(_)) = ws.next().await {}
            })
            .await;
            assert!(drained.is_ok(), "session {i} was not closed by the router");
        });
    futures_util::future::join_all(closes).await;
    eventually(
        "session counters back to zero",
        Duration::from_secs(10),
        || pool.load().backends.iter().all(|b| b.stats.sessions() == 0),
    )
    .await;
}

#[tokio::test]
async fn the_handshake_forwards_subprotocols_and_a_refusal_is_passed_on() {
    let bs = backends(&["ws-1"]).await;
    let r = ws_router(&bs);
    // The backend picks the first subprotocol offered; the client is told which.
    let (_ws, answer) = connect(r.addr(), &[("sec-websocket-protocol", "chat.v2, chat.v1")]).await;
    assert_eq!(answer.status(), 101);
    assert_eq!(answer.headers()["sec-websocket-protocol"], "chat.v2");

    // A WebSocket request to a path the backend does not upgrade gets the backend's answer.
    let mut request = format!("ws://{}/ws/nothing-here", r.addr())
        .into_client_request()
        .unwrap();
    request.headers_mut().insert("x-test", "1".parse().unwrap());
    let stream = TcpStream::connect(r.addr()).await.unwrap();
    match tokio_tungstenite::client_async(request, stream).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 200, "the backend answered the plain request");
            assert_eq!(resp.headers()["x-backend-id"], "ws-1");
        }
        other => panic!("expected the backend's refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn full_backends_take_no_new_sessions_and_a_full_pool_answers_503_before_upgrading() {
    let bs = backends(&["ws-1", "ws-2"]).await;
    let members: Vec<String> = bs
        .iter()
        .map(|b| {
            format!(
                "{{ id = \"{}\", address = \"{}\", max_sessions = 2 }}",
                b.id(),
                b.addr()
            )
        })
        .collect();
    let r = router(&format!(
        "{}[[pools]]\nid = \"ws\"\nalgorithm = \"least_connections\"\nhealth = {{ kind = \"none\" }}\nbackends = [{}]\n",
        route("ws", "/ws", "ws"),
        members.join(", ")
    ));
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(connect(r.addr(), &[]).await.0);
    }
    // The fifth: every backend is full.
    let url = format!("ws://{}/ws/echo", r.addr());
    let stream = TcpStream::connect(r.addr()).await.unwrap();
    match tokio_tungstenite::client_async(url.as_str(), stream).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            assert_eq!(resp.headers()["x-switchyard-error"], "overloaded");
            assert_eq!(resp.headers()["retry-after"], "1");
        }
        other => panic!("expected 503 before the upgrade, got {other:?}"),
    }
    // Existing sessions are untouched.
    for ws in &mut open {
        ws.send(Message::text("still here")).await.unwrap();
        assert!(matches!(next(ws).await, Message::Text(t) if t.as_str().ends_with(": still here")));
    }
    // One leaves: a new session fits again.
    let mut leaving = open.pop().unwrap();
    leaving.close(None).await.unwrap();
    while let Some(Ok(_)) = tokio::time::timeout(REQUEST_DEADLINE, leaving.next())
        .await
        .expect("closed within the deadline")
    {}
    let table = r.table();
    let pool = table.pool("ws").unwrap();
    eventually("a free slot", Duration::from_secs(10), || {
        pool.load()
            .backends
            .iter()
            .map(|b| b.stats.sessions())
            .sum::<u32>()
            == 3
    })
    .await;
    let (mut again, _) = connect(r.addr(), &[]).await;
    again.send(Message::text("in")).await.unwrap();
    assert!(matches!(next(&mut again).await, Message::Text(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_sessions_spread_evenly_and_refill_the_emptiest_backend() {
    let bs = backends(&["ws-1", "ws-2", "ws-3"]).await;
    let r = ws_router(&bs);
    let mut by_backend: std::collections::BTreeMap<String, Vec<Ws>> = Default::default();
    for _ in 0..300 {
        let (ws, answer) = connect(r.addr(), &[]).await;
        let id = answer.headers()["x-backend-id"]
            .to_str()
            .unwrap()
            .to_string();
        by_backend.entry(id).or_default().push(ws);
    }
    let counts: Vec<usize> = by_backend.values().map(Vec::len).collect();
    assert!(
        counts.iter().all(|&n| (95..=105).contains(&n)),
        "uneven: {counts:?}"
    );

    // Close every session of ws-2: the next 50 all go to it, the emptiest.
    let leaving = by_backend.remove("ws-2").unwrap();
    futures_util::future::join_all(leaving.into_iter().map(|mut ws| async move {
        let _ = ws.close(None).await;
        let _ = tokio::time::timeout(REQUEST_DEADLINE, async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }))
    .await;
    let table = r.table();
    let pool = table.pool("ws").unwrap();
    eventually("ws-2 empty", Duration::from_secs(10), || {
        pool.load()
            .backends
            .iter()
            .any(|b| &*b.id == "ws-2" && b.stats.sessions() == 0)
    })
    .await;
    let mut refill = Vec::new();
    for _ in 0..50 {
        let (ws, answer) = connect(r.addr(), &[]).await;
        assert_eq!(answer.headers()["x-backend-id"], "ws-2");
        refill.push(ws);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_sessions_opened_and_closed_leave_no_counters_behind() {
    let bs = backends(&["ws-1", "ws-2"]).await;
    // One test client opens them all, as fast as it can: the per-address caps are off.
    let r = ws_router_with(&bs, "max_connections_per_ip = 0\nrate_per_ip = 0");
    let mut open = Vec::new();
    for _ in 0..2000 {
        open.push(connect(r.addr(), &[]).await.0);
    }
    let table = r.table();
    let pool = table.pool("ws").unwrap();
    assert_eq!(
        pool.load()
            .backends
            .iter()
            .map(|b| b.stats.sessions())
            .sum::<u32>(),
        2000
    );
    // Half close cleanly, half just drop their connection.
    let (clean, dropped): (Vec<_>, Vec<_>) =
        open.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    drop(dropped);
    futures_util::future::join_all(clean.into_iter().map(|(_, mut ws)| async move {
        let _ = ws.close(None).await;
        let _ = tokio::time::timeout(REQUEST_DEADLINE, async {
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }))
    .await;
    eventually(
        "all session counters back to zero",
        Duration::from_secs(20),
        || pool.load().backends.iter().all(|b| b.stats.sessions() == 0),
    )
    .await;
}

#[tokio::test]
async fn fragmented_messages_arrive_whole() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    let bs = backends(&["ws-1"]).await;
    let r = ws_router(&bs);
    let (mut ws, _) = connect(r.addr(), &[]).await;
    let parts: [(&str, OpCode, bool); 3] = [
        ("frag", OpCode::Data(Data::Text), false),
        ("men", OpCode::Data(Data::Continue), false),
        ("ted", OpCode::Data(Data::Continue), true),
    ];
    for (text, opcode, last) in parts {
        let frame = Frame::message(text.as_bytes().to_vec(), opcode, last);
        ws.send(Message::Frame(frame)).await.unwrap();
    }
    assert_eq!(next(&mut ws).await, Message::text("ws-1: fragmented"));
}

#[tokio::test]
async fn a_message_over_the_limit_closes_the_session_with_1009() {
    let bs = backends(&["ws-1"]).await;
    let r = ws_router(&bs);
    let (mut ws, _) = connect(r.addr(), &[]).await;
    let too_big = vec![0u8; switchyard::proxy::websocket::MAX_MESSAGE_BYTES + 1];
    // The router may close before the whole message is written; that is its answer too.
    let _ = ws.send(Message::binary(too_big)).await;
    match next(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    sessions_end(&r, "ws").await;
}

/// Sends raw request bytes and returns the whole answer (the router closes after it).
async fn raw_exchange(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(REQUEST_DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("the router answers and closes within the deadline")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_bad_client_handshake_is_refused_before_any_backend_is_asked() {
    // The only backend is dead: an answer other than 502 shows it was never contacted.
    let r = router(&format!(
        "{}[[pools]]\nid = \"ws\"\nhealth = {{ kind = \"none\" }}\nbackends = [{{ id = \"gone\", address = \"{}\" }}]\n",
        route("ws", "/ws", "ws"),
        dead_address()
    ));
    let no_key = "GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let answer = raw_exchange(r.addr(), no_key).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("bad WebSocket handshake"), "{answer}");

    let post = "POST /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let answer = raw_exchange(r.addr(), post).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("only WebSocket upgrades"), "{answer}");
}

/// A router whose `/ws` route has `timeouts.idle = idle`.
fn idle_router(bs: &[TestBackend], idle: &str) -> switchyard::RouterHandle {
    router(&format!(
        "{}timeouts = {{ idle = \"{idle}\" }}\n{}",
        route("ws", "/ws", "ws"),
        pool_with(
            "ws",
            "least_connections",
            bs,
            "health = { kind = \"none\" }"
        )
    ))
}

/// Reads until the close frame; its code and how long it took from `since`.
async fn close_code(ws: &mut Ws, since: std::time::Instant) -> (u16, Duration) {
    let code = until_close(ws).await.expect("a close with a code");
    (code, since.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_with_nothing_going_either_way_ends_at_the_routes_idle_timeout() {
    let bs = backends(&["i1"]).await;
    let r = idle_router(&bs, "600ms");
    // Quiet from the start: closed with 4000 once the route's idle timeout passes.
    let (mut quiet, _) = connect(r.addr(), &[]).await;
    let started = std::time::Instant::now();
    // Busy: a message every 200 ms keeps the session alive well past the timeout.
    let (mut busy, _) = connect(r.addr(), &[]).await;
    let mut last_echo = std::time::Instant::now();
    for i in 0..8 {
        busy.send(Message::text(format!("m{i}"))).await.unwrap();
        assert_eq!(next(&mut busy).await, Message::text(format!("i1: m{i}")));
        last_echo = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, after) = close_code(&mut quiet, started).await;
    assert_eq!(code, 4000, "idle timeout");
    // (The router's clock starts a moment before the client sees the upgrade.)
    assert!(
        after >= Duration::from_millis(500),
        "closed before the timeout: {after:?}"
    );
    // Frames pass as they come, so half a fragmented message is activity until its last
    // frame; the unfinished message is then cut at the timeout.
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    busy.send(Message::Frame(Frame::message(
        b"first half".to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    let (code, after) = close_code(&mut busy, last_echo).await;
    assert_eq!(
        code, 4000,
        "an unfinished message is cut at the idle timeout"
    );
    assert!(after >= Duration::from_millis(500), "{after:?}");
    // Both sessions left the backend's count.
    wait_for(
        "the backend's sessions end",
        Duration::from_secs(5),
        async || {
            Client::new(r.admin_addr())
                .get("/admin/v1/backends/i1")
                .await
                .json()["sessions"]
                == 0
        },
    )
    .await;
}
