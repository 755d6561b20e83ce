//! The SDK over TLS against a real router whose TLS listener holds a certificate from a test
//! CA: `https://` requests speak HTTP/2 when the router offers it, `wss://` sessions connect,
//! and a certificate the client does not trust fails at once with a clear, final error that
//! counts nothing against the region (no breaker, no failover).

mod transport_kit;

use std::time::{Duration, Instant};

use http::Version;
use switchyard_client::{Client, ErrorKind, Event, Roots};
use transport_kit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_requests_use_http2_when_the_router_offers_it() {
    let dir = Scratch::new("tls-h2");
    let ca = TestCa::new("Switchyard test CA");
    let bs = backends(&["b1"]).await;
    let (_router, url) = tls_router(&ca, &dir, &bs);
    let client = Client::builder()
        .region("secure", &url)
        .tls_roots(Roots::None)
        .tls_ca_pem(ca.pem())
        .build()
        .unwrap();
    for _ in 0..5 {
        let resp = client.get("/over-tls").await.expect("an answer over TLS");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.version, Version::HTTP_2, "the router offers h2");
        assert_eq!(resp.backend(), Some("b1"));
        assert_eq!(resp.region, "secure");
    }
    assert_eq!(client.stats().attempts, 5, "no retry was needed");

    // The same CA from a file, next to the bundled web roots.
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let from_file = Client::builder()
        .region("secure", &url)
        .tls_ca_file(&ca_file)
        .build()
        .unwrap();
    assert_eq!(from_file.get("/").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wss_session_connects_through_the_tls_listener() {
    let dir = Scratch::new("tls-wss");
    let ca = TestCa::new("Switchyard test CA");
    let bs = backends(&["ws1"]).await;
    let (_router, url) = tls_router(&ca, &dir, &bs);
    let client = Client::builder()
        .region("secure", &url)
        .tls_roots(Roots::None)
        .tls_ca_pem(ca.pem())
        .build()
        .unwrap();
    let mut session = tokio::time::timeout(WAIT, client.session("/ws/echo"))
        .await
        .expect("a session within the wait")
        .expect("a wss:// session");
    let first = tokio::time::timeout(WAIT, session.next())
        .await
        .expect("an event")
        .expect("the session is alive");
    match first {
        Event::Connected {
            region, backend, ..
        } => {
            assert_eq!(region, "secure");
            assert_eq!(backend.as_deref(), Some("ws1"));
        }
        other => panic!("expected Connected, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_clearly_and_is_not_a_region_failure() {
    let dir = Scratch::new("tls-wrong-ca");
    let ca = TestCa::new("Switchyard test CA");
    let other = TestCa::new("Some other CA");
    let bs = backends(&["secure", "fallback"]).await;
    let (_router, url) = tls_router(&ca, &dir, &bs[..1]);
    let fallback = router(&bs[1..]);
    let client = Client::builder()
        .region("secure", &url)
        .region("fallback", http_url(&fallback))
        .tls_roots(Roots::None)
        .tls_ca_pem(other.pem())
        .breaker(switchyard_client::BreakerConfig {
            failures: 1,
            cool_off: Duration::from_secs(30),
        })
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .get("/")
        .await
        .expect_err("the certificate is not trusted");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no retries, no waits"
    );
    match &err.kind {
        ErrorKind::Tls { host, reason } => {
            assert!(host.starts_with("localhost:"), "{host}");
            assert!(
                reason.contains("certificate") && reason.contains("UnknownIssuer"),
                "the reason names the certificate problem: {reason}"
            );
        }
        other => panic!("expected a TLS error, got {other:?} ({err})"),
    }
    assert!(!err.retryable, "{err}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "rustls' error is kept"
    );
    assert_eq!(err.region.as_deref(), Some("secure"));
    let stats = client.stats();
    assert_eq!((stats.attempts, stats.failovers), (1, 0), "{stats:?}");
    assert_eq!(client.breaker_open("secure"), Some(false), "breaker closed");
    assert_eq!(
        bs[1].requests_served(),
        0,
        "nothing went to the next region"
    );

    // A session fails the same way.
    let session = Client::builder()
        .region("secure", &url)
        .tls_roots(Roots::None)
        .tls_ca_pem(other.pem())
        .max_attempts(1)
        .build()
        .unwrap()
        .session("/ws/echo")
        .await;
    let err = session.err().expect("the session is refused");
    assert!(
        matches!(&err.kind, ErrorKind::Tls { reason, .. } if reason.contains("UnknownIssuer")),
        "{err}"
    );
    assert!(!err.kind.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_roots_do_not_trust_a_private_ca() {
    let dir = Scratch::new("tls-default");
    let ca = TestCa::new("Switchyard test CA");
    let bs = backends(&["b"]).await;
    let (_router, url) = tls_router(&ca, &dir, &bs);
    let client = Client::builder().region("secure", &url).build().unwrap();
    let err = client
        .get("/")
        .await
        .expect_err("verification is on by default");
    assert!(matches!(err.kind, ErrorKind::Tls { .. }), "{err}");
    assert_eq!(bs[0].requests_served(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_region_directory_is_read_over_https_from_a_real_router() {
    let dir = Scratch::new("tls-directory");
    let ca = TestCa::new("Switchyard test CA");
    let bs = backends(&["eu-b"]).await;
    let (_router, url) = tls_router_in(&ca, &dir, &bs, Some("eu-west"));
    let client = Client::builder()
        .directory(format!("{url}/v1/regions?lat=48.86&lon=2.35"))
        .tls_roots(Roots::None)
        .tls_ca_pem(ca.pem())
        .build()
        .unwrap();
    let resp = client
        .get("/")
        .await
        .expect("served through the listed region");
    assert_eq!(resp.region, "eu-west");
    assert_eq!(resp.version, Version::HTTP_2);
    assert_eq!(client.regions().await, [("eu-west".to_string(), url)]);
    assert_eq!(client.directory_reads(), 1);
}
