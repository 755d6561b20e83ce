//! The request side's metrics, read from a recorder installed for this test binary: attempts,
//! retries and failovers by region, the breaker's transitions and the retry budget left,
//! after a request that fails over from a dead region to a live one.

mod transport_kit;

use metrics::{SharedString, Unit};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use switchyard_client::{BreakerConfig, Client, telemetry};
use transport_kit::*;

type Recorded = Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>;

/// The value of `name` with exactly these labels in one snapshot, 0 if never recorded.
fn value(recorded: &Recorded, name: &str, labels: &[(&str, &str)]) -> f64 {
    recorded
        .iter()
        .find(|(key, _, _, _)| {
            let key = key.key();
            key.name() == name
                && key.labels().count() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v))
        })
        .map_or(0.0, |(_, _, _, v)| match v {
            DebugValue::Counter(n) => *n as f64,
            DebugValue::Gauge(g) => g.into_inner(),
            DebugValue::Histogram(h) => h.len() as f64,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_is_counted_by_region_with_the_breaker_and_the_budget() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this binary");

    let bs = backends(&["live-b"]).await;
    let live = router(&bs);
    let client = Client::builder()
        .region("dead", dead_endpoint())
        .region("live", http_url(&live))
        .breaker(BreakerConfig {
            failures: 1,
            cool_off: std::time::Duration::from_secs(60),
        })
        .build()
        .unwrap();
    let resp = client.get("/").await.expect("the live region answers");
    assert_eq!(resp.region, "live");

    // A snapshot takes the counters' values: read one and look up in it.
    let recorded: Recorded = snapshotter.snapshot().into_vec();
    let m = |name: &str, labels: &[(&str, &str)]| value(&recorded, name, labels);
    assert_eq!(m(telemetry::ATTEMPTS, &[("region", "dead")]), 1.0);
    assert_eq!(m(telemetry::ATTEMPTS, &[("region", "live")]), 1.0);
    assert_eq!(m(telemetry::RETRIES, &[("region", "live")]), 1.0);
    assert_eq!(m(telemetry::FAILOVERS, &[("region", "live")]), 1.0);
    assert_eq!(
        m(
            telemetry::BREAKER_TRANSITIONS,
            &[("region", "dead"), ("to", "open")]
        ),
        1.0
    );
    // 500 tokens, less 5 for the retry, plus 1 for the success.
    assert_eq!(m(telemetry::RETRY_BUDGET_LEFT, &[]), 496.0);
    assert_eq!(client.stats().budget_left, 496);
}
