//! Shadow traffic (`shadow = { pool, percent, timeout, max_body_bytes, max_concurrent }`): a
//! share of a route's requests is also sent to the shadow pool, marked, its answers never
//! reach the client; a shadow that hangs or fails changes nothing for the primary, which never
//! waits for it; bodies too large are not mirrored; every outcome is counted. Loopback only.

mod support;

use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A router whose route `id` (`/`) sends to pool `main` over `primary` and mirrors to pool
/// `shadow` over `shadow` with the `options` of its `shadow` table.
fn mirroring(
    id: &str,
    primary: &[TestBackend],
    shadow: &str,
    options: &str,
) -> switchyard::RouterHandle {
    let none = "health = { kind = \"none\" }";
    router(&format!(
        "[[routes]]\nid = \"{id}\"\npath_prefix = \"/\"\npool = \"main\"\nrate_limit = {{ per_ip = 0 }}\n\
         shadow = {{ pool = \"shadow\"{options} }}\n{}{shadow}",
        pool_with("main", "round_robin", primary, none)
    ))
}

fn shadow_pool(backends: &[TestBackend]) -> String {
    pool_with(
        "shadow",
        "round_robin",
        backends,
        "health = { kind = \"none\" }",
    )
}

async fn count(node: &switchyard::RouterHandle, route: &str, outcome: &str) -> f64 {
    metric(
        node,
        &format!(
            "switchyard_shadow_requests_total{{route=\"{route}\",pool=\"shadow\",outcome=\"{outcome}\"}}"
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadow_gets_the_request_marked_and_its_answer_never_reaches_the_client() {
    // The shadow: a listener that keeps what it was sent and answers its own body.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shadow_addr = listener.local_addr().unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let seen_tx = seen_tx.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = seen_tx.send(String::from_utf8_lossy(&got).into_owned());
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nshadow",
                    )
                    .await;
            });
        }
    });
    let primary = backends(&["p1"]).await;
    let shadow = format!(
        "[[pools]]\nid = \"shadow\"\nhealth = {{ kind = \"none\" }}\nbackends = [{{ id = \"s1\", address = \"{shadow_addr}\" }}]\n"
    );
    let node = mirroring("mirrored", &primary, &shadow, "");
    // A client's own marker is taken off: only the router marks a mirror.
    let reply = Client::new(node.addr())
        .get_with("/watch?id=7", &[("x-switchyard-shadow", "0")])
        .await;
    assert_eq!((reply.status, reply.backend()), (200, "p1"));
    assert!(
        !reply.text().contains("shadow"),
        "the shadow's answer reached the client"
    );

    let head = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .expect("the shadow got nothing within 10 s")
        .unwrap();
    assert!(head.starts_with("GET /watch?id=7 HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains("x-switchyard-shadow: 1\r\n"),
        "no marker in:\n{head}"
    );
    assert_eq!(
        head.matches("x-switchyard-shadow").count(),
        1,
        "the client's marker went through:\n{head}"
    );
    wait_for(
        "the agreement is counted",
        Duration::from_secs(10),
        async || count(&node, "mirrored", "agree").await == 1.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_hangs_or_fails_changes_nothing_for_the_primary() {
    let primary = backends(&["p1", "p2"]).await;
    let shadows = backends(&["s1"]).await;
    shadows[0].set_delay(Duration::from_secs(60));
    let node = mirroring(
        "hanging",
        &primary,
        &shadow_pool(&shadows),
        ", timeout = \"30s\", max_concurrent = 4",
    );
    let client = Client::new(node.addr());
    for i in 0..40 {
        let started = Instant::now();
        let reply = client.get("/x").await;
        assert_eq!(reply.status, 200, "request {i}: {}", reply.text());
        assert!(
            reply.backend().starts_with('p'),
            "request {i} answered by {}",
            reply.backend()
        );
        // The shadow's timeout is 30 s: a primary that waited for it would take that long.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "request {i} took {:?} while the shadow hung",
            started.elapsed()
        );
    }
    // Four mirrors hang; the other requests were not mirrored, and say so.
    assert_eq!(count(&node, "hanging", "skipped_busy").await, 36.0);

    // A shadow that answers 500: the primary still answers 200, the disagreement is counted.
    let failing = backends(&["s2"]).await;
    failing[0].set_fail_status(Some(500));
    let node = mirroring("failing", &primary, &shadow_pool(&failing), "");
    let client = Client::new(node.addr());
    for _ in 0..20 {
        assert_eq!(client.get("/x").await.status, 200);
    }
    wait_for(
        "20 disagreements counted",
        Duration::from_secs(10),
        async || count(&node, "failing", "disagree").await == 20.0,
    )
    .await;
    assert_eq!(count(&node, "failing", "agree").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_nobody_listens_on_fails_its_mirrors_and_the_primary_answers() {
    // A port that was free a moment ago: connects to it are refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let primary = backends(&["p1"]).await;
    let shadow = format!(
        "[[pools]]\nid = \"shadow\"\nhealth = {{ kind = \"none\" }}\nbackends = [{{ id = \"gone\", address = \"{addr}\" }}]\n"
    );
    let node = mirroring("refused", &primary, &shadow, "");
    let client = Client::new(node.addr());
    for _ in 0..10 {
        let reply = client.get("/x").await;
        assert_eq!((reply.status, reply.backend()), (200, "p1"));
    }
    wait_for(
        "10 failed mirrors counted",
        Duration::from_secs(10),
        async || count(&node, "refused", "failed").await == 10.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_are_not_mirrored_and_a_share_is_sampled() {
    let primary = backends(&["p1"]).await;
    let shadows = backends(&["s1"]).await;
    let node = mirroring(
        "bodies",
        &primary,
        &shadow_pool(&shadows),
        ", max_body_bytes = 100",
    );
    let client = Client::new(node.addr());
    let small = client
        .send(
            http::Method::POST,
            "/up",
            &[],
            bytes::Bytes::from(vec![b'a'; 100]),
        )
        .await;
    assert_eq!(small.status, 200);
    let large = client
        .send(
            http::Method::POST,
            "/up",
            &[],
            bytes::Bytes::from(vec![b'a'; 101]),
        )
        .await;
    assert_eq!(
        large.status, 200,
        "the primary must not suffer from the limit"
    );
    wait_for(
        "the small body mirrored",
        Duration::from_secs(10),
        async || count(&node, "bodies", "agree").await == 1.0,
    )
    .await;
    assert_eq!(count(&node, "bodies", "skipped_body").await, 1.0);
    assert_eq!(
        shadows[0].requests_served(),
        1,
        "the shadow saw the large body"
    );

    // Half of 400 requests: far from 0 and from 400 (±10 standard deviations).
    let sampled = backends(&["s3"]).await;
    let node = mirroring(
        "sampled",
        &primary,
        &shadow_pool(&sampled),
        ", percent = 50",
    );
    let client = Client::new(node.addr());
    for _ in 0..400 {
        assert_eq!(client.get("/x").await.status, 200);
    }
    wait_for("the mirrors finish", Duration::from_secs(10), async || {
        let mut ended = 0.0;
        for outcome in ["agree", "disagree", "failed"] {
            ended += count(&node, "sampled", outcome).await;
        }
        ended == sampled[0].requests_served() as f64
    })
    .await;
    let mirrored = sampled[0].requests_served();
    assert!(
        (100..=300).contains(&mirrored),
        "{mirrored} of 400 mirrored at 50 %"
    );
}
