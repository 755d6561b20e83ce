//! Metrics and logs. One Prometheus recorder per process (installed before any route table is
//! built, so every metric handle is live), rendered by the admin listener at `/metrics`; logs
//! through `tracing`, written off the request path by a background writer.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use crate::logging::ACCESS_TARGET;

/// Latency buckets in seconds: fine below 10 ms where proxy overhead lives, coarse above for
/// slow backends and long streams.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static METRICS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once; later calls return the same handle.
/// `None` when another recorder was installed first (then `/metrics` says so).
pub fn install_metrics() -> Option<&'static PrometheusHandle> {
    METRICS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), LATENCY_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|_| handle)
        })
        .as_ref()
}

pub fn metrics_handle() -> Option<&'static PrometheusHandle> {
    METRICS.get().and_then(Option::as_ref)
}

/// Periodic metric upkeep: the Prometheus recorder's own, and the log-drop counters that live
/// in the log writers.
pub fn upkeep() {
    if let Some(handle) = metrics_handle() {
        handle.run_upkeep();
    }
    crate::logging::count_queue_drops();
}
