//! Requests against real routers and test backends: `Retry-After` honoured (capped) and never
//! waited past the deadline, several routers per region tried in turn before the next region,
//! a per-request timeout under the deadline, bodies bounded by `max_response_bytes` (and the
//! streamed variant for large ones), and headers the app passes checked without a panic.

mod transport_kit;

use std::time::{Duration, Instant};

use http::Method;
use switchyard_client::{Client, ErrorKind, Request};
use transport_kit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_longer_than_the_deadline_returns_at_once_with_the_last_error() {
    let bs = backends(&["b"]).await;
    let r = router(&bs);
    let client = Client::builder()
        .region("r", http_url(&r))
        .deadline(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .get("/busy?status=503&retry_after=2")
        .await
        .expect_err("a 2 s Retry-After does not fit a 1 s deadline");
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(400),
        "no wasted wait: {took:?}"
    );
    assert!(matches!(err.kind, ErrorKind::Deadline(_)), "{err}");
    let last = std::error::Error::source(&err).expect("the last error is kept");
    assert_eq!(last.to_string(), "status 503", "{err}");
    assert_eq!(client.stats().attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routers_own_overloaded_503_is_honoured_without_waiting_past_the_deadline() {
    // One admission slot: a slow request holds it, the next one is shed with 503
    // `overloaded` and the router's Retry-After (1 s), longer than this client's deadline.
    let bs = backends(&["slow"]).await;
    let r = router_with(
        &bs,
        "priority = \"high\"",
        "max_inflight = 1\nqueue_timeout = \"10ms\"",
    );
    let url = http_url(&r);
    let holder = Client::builder()
        .region("r", &url)
        .deadline(Duration::from_secs(10))
        .build()
        .unwrap();
    let hold = tokio::spawn(async move { holder.get("/hold?delay_ms=6000").await });
    let client = Client::builder()
        .region("r", &url)
        .deadline(Duration::from_millis(800))
        .build()
        .unwrap();
    // Wait until the slow request holds the slot (the next one is shed).
    let deadline = Instant::now() + WAIT;
    let err = loop {
        let started = Instant::now();
        match client.get("/quick").await {
            Ok(_) => {
                assert!(Instant::now() < deadline, "the slot was never taken");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => break (err, started.elapsed()),
        }
    };
    let (err, took) = err;
    assert!(
        took < Duration::from_millis(400),
        "no wasted wait: {took:?}"
    );
    assert!(matches!(err.kind, ErrorKind::Deadline(_)), "{err}");
    let last = std::error::Error::source(&err)
        .expect("the last error")
        .to_string();
    assert!(
        last.contains("503") && last.contains("overloaded"),
        "{last}"
    );

    // With another region the request moves there at once (any method: nothing reached a
    // backend), without waiting for the first region's Retry-After.
    let other_b = backends(&["other"]).await;
    let other = router(&other_b);
    let client = Client::builder()
        .region("r", &url)
        .region("other", http_url(&other))
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let resp = client
        .post("/order", "x")
        .await
        .expect("the other region serves");
    assert_eq!(
        (resp.region.as_str(), resp.backend()),
        ("other", Some("other"))
    );
    assert!(
        started.elapsed() < Duration::from_millis(800),
        "no wait for r's Retry-After: {:?}",
        started.elapsed()
    );
    assert_eq!(client.stats().failovers, 1);
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backends_429_retry_after_is_waited_for_up_to_the_cap() {
    let bs = backends(&["b"]).await;
    let r = router(&bs);
    let client = Client::builder()
        .region("r", http_url(&r))
        .max_attempts(2)
        .retry_after_cap(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .get("/limited?status=429&retry_after=1")
        .await
        .expect_err("still 429 after the retry");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(280) && took < Duration::from_millis(900),
        "waited the cap (300 ms), not the asked 1 s: {took:?}"
    );
    assert!(
        matches!(err.kind, ErrorKind::Status { status: 429, .. }),
        "{err}"
    );
    assert_eq!(client.stats().attempts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_router_moves_to_the_next_endpoint_of_the_same_region() {
    let bs = backends(&["eu-b", "us-b"]).await;
    let eu = router(&bs[..1]);
    let us = router(&bs[1..]);
    let client = Client::builder()
        .region_endpoints("eu", [dead_endpoint(), http_url(&eu)])
        .region("us", http_url(&us))
        .build()
        .unwrap();
    let resp = client.get("/").await.expect("the second eu router answers");
    assert_eq!((resp.region.as_str(), resp.backend()), ("eu", Some("eu-b")));
    let stats = client.stats();
    assert_eq!((stats.attempts, stats.retries, stats.failovers), (1, 0, 0));
    assert_eq!(bs[1].requests_served(), 0, "us was not used");
    // The router that answered is tried first from now on.
    for _ in 0..3 {
        assert_eq!(client.get("/").await.unwrap().region, "eu");
    }
    assert_eq!(client.regions().await[0].1, http_url(&eu));

    // A session takes the same way.
    let session = tokio::time::timeout(WAIT, client.session("/ws/echo"))
        .await
        .expect("in time");
    assert!(session.is_ok(), "{:?}", session.err());

    // Every eu router down: the next region.
    let client = Client::builder()
        .region_endpoints("eu", [dead_endpoint(), dead_endpoint()])
        .region("us", http_url(&us))
        .build()
        .unwrap();
    let resp = client.get("/").await.expect("us answers");
    assert_eq!(resp.region, "us");
    assert_eq!(client.stats().failovers, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_request_timeout_bounds_each_attempt_within_the_deadline() {
    let bs = backends(&["b"]).await;
    let r = router(&bs);
    let client = Client::builder()
        .region("r", http_url(&r))
        .max_attempts(2)
        .deadline(Duration::from_secs(10))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .request(
            Request::new(Method::GET, "/slow?delay_ms=3000").timeout(Duration::from_millis(200)),
        )
        .await
        .expect_err("each attempt times out");
    let took = started.elapsed();
    assert_eq!(
        err.kind,
        ErrorKind::Timeout(Duration::from_millis(200)),
        "{err}"
    );
    assert_eq!(client.stats().attempts, 2);
    assert!(
        took < Duration::from_millis(1500),
        "two 200 ms attempts: {took:?}"
    );

    // The deadline still bounds the whole call.
    let client = Client::builder()
        .region("r", http_url(&r))
        .deadline(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .request(Request::new(Method::GET, "/slow?delay_ms=3000").timeout(Duration::from_secs(5)))
        .await
        .expect_err("the deadline ends it");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err.kind, ErrorKind::Timeout(_) | ErrorKind::Deadline(_)),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_and_the_streamed_variant_reads_it() {
    let bs = backends(&["b"]).await;
    let r = router(&bs);
    let small = Client::builder()
        .region("r", http_url(&r))
        .max_response_bytes(1000)
        .build()
        .unwrap();
    let ok = small.get("/?bytes=1000").await.expect("at the limit");
    assert_eq!(ok.body.len(), 1000);
    let err = small.get("/?bytes=1001").await.expect_err("over the limit");
    assert_eq!(err.kind, ErrorKind::BodyTooLarge { limit: 1000 }, "{err}");
    assert!(!err.retryable);
    assert!(err.to_string().contains("max_response_bytes"), "{err}");
    assert_eq!(small.stats().attempts, 2, "not retried");

    // 12 MiB, over the default limit, streamed in chunks.
    let client = Client::builder().region("r", http_url(&r)).build().unwrap();
    let size = 12u64 << 20;
    let err = client
        .get(&format!("/big?bytes={size}"))
        .await
        .expect_err("over the default 8 MiB");
    assert!(matches!(err.kind, ErrorKind::BodyTooLarge { .. }), "{err}");
    let mut resp = client
        .request_streaming(Request::new(Method::GET, format!("/big?bytes={size}")))
        .await
        .expect("the head");
    assert_eq!(resp.status, 200);
    let (mut read, mut chunks) = (0u64, 0u32);
    while let Some(chunk) = tokio::time::timeout(WAIT, resp.chunk())
        .await
        .expect("a chunk in time")
        .expect("the body streams")
    {
        read += chunk.len() as u64;
        chunks += 1;
    }
    assert_eq!(read, size);
    assert!(chunks > 1, "read as it came");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_that_stalls_ends_with_a_timeout() {
    let bs = backends(&["b"]).await;
    let r = router(&bs);
    let client = Client::builder()
        .region("r", http_url(&r))
        .body_idle_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut resp = client
        .request_streaming(Request::new(
            Method::GET,
            "/drip?bytes=4096&chunk_bytes=1024&chunk_ms=2000",
        ))
        .await
        .expect("the head");
    let mut outcome = Ok(None);
    for _ in 0..5 {
        outcome = resp.chunk().await;
        if !matches!(outcome, Ok(Some(_))) {
            break;
        }
    }
    let err = outcome.expect_err("a 2 s gap is over the 200 ms idle timeout");
    assert_eq!(
        err.kind,
        ErrorKind::Timeout(Duration::from_millis(200)),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_case_insensitive_and_bad_ones_are_a_clear_error_not_a_panic() {
    let bs = backends(&["b"]).await;
    let r = router(&bs);
    let client = Client::builder().region("r", http_url(&r)).build().unwrap();
    let resp = client
        .request(Request::new(Method::GET, "/?echo=1").header("X-Trace-Id", "4bf92f35"))
        .await
        .expect("sent");
    let echoed = String::from_utf8_lossy(&resp.body).to_lowercase();
    assert!(
        echoed.contains("x-trace-id") && echoed.contains("4bf92f35"),
        "{echoed}"
    );

    for (name, value) in [
        ("X Trace", "1"),
        ("x-trace\n", "1"),
        ("x-trace", "line\nbreak"),
        ("x-trace", "a\r\nInjected: yes"),
    ] {
        let err = client
            .request(Request::new(Method::GET, "/").header(name, value))
            .await
            .expect_err("refused");
        match &err.kind {
            ErrorKind::Invalid(why) => assert!(why.contains("header"), "{why}"),
            other => panic!("{name:?}: {value:?} gave {other:?}"),
        }
        assert!(!err.retryable);
    }
    assert_eq!(client.stats().attempts, 1, "a bad header sends nothing");
}

/// A listener that accepts connections and never says a word (a hung router).
async fn hung_router() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    (format!("https://localhost:{port}"), task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_hangs_its_tls_handshake_is_passed_over_within_connect_timeout() {
    let dir = Scratch::new("hung");
    let ca = TestCa::new("Switchyard test CA");
    let bs = backends(&["b"]).await;
    let (_router, good) = tls_router(&ca, &dir, &bs);
    let (hung, accepting) = hung_router().await;
    let client = Client::builder()
        .region_endpoints("eu", [hung, good])
        .tls_roots(switchyard_client::Roots::None)
        .tls_ca_pem(ca.pem())
        .connect_timeout(Duration::from_millis(300))
        .attempt_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let resp = client.get("/").await.expect("the second router answers");
    let took = started.elapsed();
    assert_eq!(resp.backend(), Some("b"));
    assert!(
        took < Duration::from_secs(2),
        "passed over after 300 ms: {took:?}"
    );
    assert_eq!(client.stats().attempts, 1, "one attempt, two routers");

    // A session passes it over the same way.
    let started = Instant::now();
    let session = tokio::time::timeout(WAIT, client.session("/ws/echo"))
        .await
        .expect("in time");
    assert!(session.is_ok(), "{:?}", session.err());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    accepting.abort();
}
