//! Metrics and logs. One Prometheus recorder per process (installed before any route table is
//! built, so every metric handle is live), rendered by the admin listener at `/metrics`; logs
//! through `tracing`, written off the request path by a background writer.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Target of access-log events: filter them with `RUST_LOG=switchyard::access=off`.
pub const ACCESS_TARGET: &str = "switchyard::access";

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

/// Log lines dropped because the background writer's queue was full (stdout blocked: a log
/// collector that stopped reading).
static QUEUE_DROPS: OnceLock<ErrorCounter> = OnceLock::new();

/// Log lines waiting for the background writer before new ones are dropped (and counted):
/// a blocked or failing stdout never blocks a request.
const LOG_QUEUE_LINES: usize = 128_000;

/// Periodic metric upkeep: the Prometheus recorder's own, and the log-drop counter that lives
/// in the log writer.
pub fn upkeep() {
    if let Some(handle) = metrics_handle() {
        handle.run_upkeep();
    }
    if let Some(drops) = QUEUE_DROPS.get() {
        metrics::counter!("switchyard_log_lines_dropped_total", "reason" => "queue_full")
            .absolute(drops.dropped_lines() as u64);
    }
}

/// Stdout for the background log writer: a line it cannot write (a full disk, a closed pipe)
/// is dropped and counted, and the next one is tried as if nothing happened.
struct Stdout;

impl std::io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().write(buf).inspect_err(|_| write_failed())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        // One call per line from the background writer: one failure is one line lost.
        let mut out = std::io::stdout().lock();
        out.write_all(buf)
            .and_then(|()| out.flush())
            .inspect_err(|_| write_failed())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

fn write_failed() {
    metrics::counter!("switchyard_log_lines_dropped_total", "reason" => "write_error").increment(1);
}

/// Sets up logging for the process; keep the guard alive until exit so buffered lines flush.
pub fn init_logging(config: &LogConfig) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .finish(Stdout);
    let _ = QUEUE_DROPS.set(writer.error_counter());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_target(true);
    let installed = match config.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    installed.ok().map(|_| guard)
}
