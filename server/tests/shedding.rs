//! Load shedding: a pool over its `max_inflight` sheds low-priority routes first with 503 +
//! `Retry-After` before any backend sees the request, still admits high-priority ones up to
//! the limit, and recovers once the load is gone.

mod support;

use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_priority_is_shed_first_and_service_recovers() {
    let bs = backends(&["b1"]).await;
    let r = router(&format!(
        "[[routes]]\nid = \"high\"\npath_prefix = \"/high\"\npool = \"p\"\npriority = \"high\"\n\
         [[routes]]\nid = \"low\"\npath_prefix = \"/low\"\npool = \"p\"\npriority = \"low\"\n{}",
        pool_with(
            "p",
            "round_robin",
            &bs,
            "health = { kind = \"none\" }\nmax_inflight = 4\nqueue_timeout = \"50ms\""
        )
    ));
    let client = Client::new(r.addr());
    // Three slow requests in flight: 75% of 4, the low-priority share.
    let slow: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/high/slow?delay_ms=1500").await.status })
        })
        .collect();
    let table = r.table();
    let pool = table.pool("p").unwrap();
    eventually("three requests in flight", Duration::from_secs(10), || {
        pool.load().backends[0].stats.inflight() == 3
    })
    .await;
    let served_before = bs[0].requests_served();

    let shed = client.get("/low/x").await;
    assert_eq!(shed.status, 503, "{}", shed.text());
    assert_eq!(shed.header("x-switchyard-error"), Some("overloaded"));
    assert!(shed.header("retry-after").is_some());
    assert!(shed.text().contains("shed"), "{}", shed.text());
    assert_eq!(
        bs[0].requests_served(),
        served_before,
        "the shed request reached nobody"
    );
    assert_eq!(
        client.get("/high/x").await.status,
        200,
        "high priority still fits"
    );

    for s in slow {
        assert_eq!(s.await.unwrap(), 200, "requests in flight finish");
    }
    assert_eq!(client.get("/low/x").await.status, 200, "recovered");
}
