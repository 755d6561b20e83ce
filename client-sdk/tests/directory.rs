//! The region directory as the SDK reads it, against real routers: regions that are
//! unhealthy or evacuating go to the end of the order, `ttl_s` says when the list is read
//! again, a failed read keeps the order, concurrent requests share one read, and a directory
//! slower than the request's deadline does not hold the request past it. A test backend
//! stands in for the directory (its `/health` answers the listing we set), so reads can be
//! counted and slowed.

mod transport_kit;

use std::time::{Duration, Instant};

use switchyard::RouterHandle;
use switchyard_client::{Client, ErrorKind};
use transport_kit::*;

/// A directory listing: `(name, router, healthy, evacuating)` in the given order.
fn listing(ttl_s: u64, regions: &[(&str, &RouterHandle, bool, bool)]) -> String {
    let regions: Vec<String> = regions
        .iter()
        .map(|(name, router, healthy, evacuating)| {
            format!(
                r#"{{"name": "{name}", "endpoint": "{}", "healthy": {healthy}, "evacuating": {evacuating}, "load": 0.1}}"#,
                http_url(router)
            )
        })
        .collect();
    format!(
        r#"{{"client": {{"lat": 0, "lon": 0, "source": "query"}}, "ttl_s": {ttl_s}, "regions": [{}]}}"#,
        regions.join(", ")
    )
}

fn directory_url(dir: &TestBackend) -> String {
    format!("http://{}/health", dir.addr())
}

fn names(regions: &[(String, String)]) -> Vec<&str> {
    regions.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_and_evacuating_regions_go_last_and_ttl_says_when_to_read_again() {
    let bs = backends(&["a-b", "b-b", "c-b", "directory"]).await;
    let (a, b, c) = (router(&bs[0..1]), router(&bs[1..2]), router(&bs[2..3]));
    let dir = &bs[3];
    dir.set_load_report(Some(&listing(
        1,
        &[
            ("a", &a, false, false),
            ("b", &b, true, true),
            ("c", &c, true, false),
        ],
    )));
    let client = Client::builder()
        .directory(directory_url(dir))
        .build()
        .unwrap();
    let resp = client.get("/").await.expect("the healthy region answers");
    let first_read = Instant::now();
    assert_eq!((resp.region.as_str(), resp.backend()), ("c", Some("c-b")));
    assert_eq!(names(&client.regions().await), ["c", "a", "b"]);
    assert_eq!(bs[0].requests_served() + bs[1].requests_served(), 0);

    // The directory changes; the client reads it again once ttl_s (1 s) has passed.
    dir.set_load_report(Some(&listing(
        1,
        &[
            ("a", &a, true, false),
            ("c", &c, true, false),
            ("b", &b, true, true),
        ],
    )));
    let client2 = client.clone();
    eventually("the new order", async || {
        client2.regions().await.first().is_some_and(|r| r.0 == "a")
    })
    .await;
    assert!(
        first_read.elapsed() >= Duration::from_millis(900),
        "not read again before ttl_s: {:?}",
        first_read.elapsed()
    );
    assert_eq!(client.directory_reads(), 2);
    assert_eq!(names(&client.regions().await), ["a", "c", "b"]);

    // A directory that fails keeps the order the client has.
    dir.set_health(503);
    let client3 = client.clone();
    eventually("a third read", async || {
        client3.regions().await;
        client3.directory_reads() >= 3
    })
    .await;
    assert_eq!(names(&client.regions().await), ["a", "c", "b"]);
    let resp = client.get("/").await.expect("still served");
    assert_eq!(resp.region, "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_directory_read() {
    let bs = backends(&["r-b", "directory"]).await;
    let r = router(&bs[..1]);
    let dir = &bs[1];
    dir.set_load_report(Some(&listing(60, &[("r", &r, true, false)])));
    // Slow enough that every request below arrives while the first read is out.
    dir.set_health_delay(Duration::from_millis(300));
    let client = Client::builder()
        .directory(directory_url(dir))
        .build()
        .unwrap();
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/").await })
        })
        .collect();
    for request in requests {
        let resp = request.await.unwrap().expect("served");
        assert_eq!(resp.region, "r");
    }
    assert_eq!(client.directory_reads(), 1, "one read for 20 requests");
    assert_eq!(
        dir.connections_accepted(),
        1,
        "one fetch reached the directory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_directory_does_not_hold_a_request_past_its_deadline() {
    let bs = backends(&["r-b", "directory"]).await;
    let r = router(&bs[..1]);
    let dir = &bs[1];
    dir.set_load_report(Some(&listing(60, &[("r", &r, true, false)])));
    dir.set_health_delay(Duration::from_secs(3));
    let client = Client::builder()
        .directory(directory_url(dir))
        .deadline(Duration::from_millis(400))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client.get("/").await.expect_err("no region known in time");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err.kind, ErrorKind::Deadline(_)), "{err}");
    let why = std::error::Error::source(&err).unwrap().to_string();
    assert!(why.contains("directory"), "{why}");

    // With a static region the request waits for the first read at most `connect_timeout`
    // (1 s), then goes to the static region.
    let client = Client::builder()
        .directory(directory_url(dir))
        .region("static", http_url(&r))
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    assert_eq!(client.get("/").await.expect("served").region, "static");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "did not wait for the 3 s directory: {:?}",
        started.elapsed()
    );
}
