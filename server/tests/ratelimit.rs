//! Rate limits: a bounded flood from one client address (127.0.0.2) is answered 429 with
//! `Retry-After` while a modest client at another address (127.0.0.3) keeps being served;
//! an API key has its own limit; a WebSocket upgrade over the limit gets 429 before any
//! upgrade. Loopback only.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use support::*;

/// A keep-alive HTTP/1.1 connection from `source` to `target`.
async fn connection_from(
    source: &str,
    target: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(target).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

async fn get(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    path: &str,
    key: Option<&str>,
) -> (u16, Option<String>) {
    let mut req = http::Request::get(path).header("host", "a");
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    let resp = tokio::time::timeout(
        REQUEST_DEADLINE,
        sender.send_request(req.body(Empty::new()).unwrap()),
    )
    .await
    .expect("an answer")
    .unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let _ = resp.into_body().collect().await;
    (status, retry_after)
}

fn limited_router(bs: &[TestBackend]) -> switchyard::RouterHandle {
    router(&format!(
        "[[routes]]\nid = \"api\"\npath_prefix = \"/\"\npool = \"api\"\n\
         rate_limit = {{ per_ip = 50, burst = 20, key_header = \"x-api-key\", per_key = 20, key_burst = 5 }}\n{}",
        pool_with("api", "round_robin", bs, "health = { kind = \"none\" }")
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_does_not_starve_another() {
    let bs = backends(&["b1"]).await;
    let r = limited_router(&bs);
    let addr = r.addr();
    let flood = tokio::spawn(async move {
        let mut sender = connection_from("127.0.0.2", addr).await;
        let (mut ok, mut limited) = (0, 0);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(2) {
            match get(&mut sender, "/flood", None).await {
                (200, _) => ok += 1,
                (429, Some(retry_after)) => {
                    assert!(retry_after.parse::<u64>().unwrap() >= 1);
                    limited += 1
                }
                other => panic!("unexpected answer to the flood: {other:?}"),
            }
        }
        (ok, limited)
    });
    let mut modest = connection_from("127.0.0.3", addr).await;
    let mut served = 0;
    for _ in 0..40 {
        if get(&mut modest, "/watch", None).await.0 == 200 {
            served += 1;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let (ok, limited) = flood.await.unwrap();
    assert_eq!(served, 40, "the modest client kept every request");
    assert!(limited > 0, "the flood was limited");
    // At most the burst plus 50 a second for ~2 s (and a little slack for timing).
    assert!(ok <= 20 + 50 * 3, "{ok} flood requests passed");
}

#[tokio::test]
async fn an_api_key_has_its_own_limit_and_an_upgrade_over_it_gets_429_first() {
    let bs = backends(&["b1"]).await;
    let r = limited_router(&bs);
    let mut a = connection_from("127.0.0.4", r.addr()).await;
    let statuses: Vec<u16> = {
        let mut out = Vec::new();
        for _ in 0..8 {
            out.push(get(&mut a, "/x", Some("key-1")).await.0);
        }
        out
    };
    assert_eq!(&statuses[..5], &[200; 5], "the key's burst passes");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    assert_eq!(
        get(&mut a, "/x", Some("key-2")).await.0,
        200,
        "another key is apart"
    );

    // The same key on a WebSocket upgrade: refused before upgrading.
    let request = "GET /ws/echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Api-Key: key-1\r\n\r\n";
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(REQUEST_DEADLINE, stream.read_to_end(&mut answer))
        .await
        .expect("answered and closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after:"),
        "{answer}"
    );
    assert!(answer.contains("rate_limited"), "{answer}");
}
