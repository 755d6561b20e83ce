//! Logs, written off the request path by background writers. Access lines (one per request,
//! target `switchyard::access`) take a path of their own ([`access`]): formatted by the
//! worker into its buffer and written in batches, to stdout or with `[log] access_path` to
//! that file. Everything else is a `tracing` event, written to stdout by tracing-appender's
//! writer. A request never waits for a log line: each writer has a bounded queue (what does
//! not fit is dropped), and a line its sink refuses (a full disk, a closed pipe) is dropped
//! too; both are counted in `switchyard_log_lines_dropped_total{sink, reason}` and writing
//! resumes once the sink works again.

mod access;
mod line;
mod sink;
mod throttle;

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use line::AccessLine;
pub use throttle::Throttle;

use crate::config::{LogConfig, LogFormat};
use access::AccessLog;
use sink::{AccessFile, Stdout};

/// Target of access lines: turn them off with `RUST_LOG=switchyard::access=off`.
pub const ACCESS_TARGET: &str = "switchyard::access";

/// Lines waiting for the other logs' background writer before new ones are dropped (and
/// counted).
const QUEUE_LINES: usize = 128_000;

/// The other logs' lines dropped at their writer's full queue.
static QUEUE_DROPS: OnceLock<ErrorCounter> = OnceLock::new();

/// What keeps the background writers running: dropped at exit, it has what is queued (and
/// what the workers' buffers hold) written first.
#[must_use = "logs stop being written when this is dropped"]
pub struct Logs {
    // Dropped in this order: the access lines first, then the other logs' writer.
    _access: Option<AccessLog>,
    _guard: WorkerGuard,
}

/// Why logging could not be set up: `[log] access_path` cannot be opened for appending.
#[derive(Debug, thiserror::Error)]
#[error("log.access_path: cannot open {}: {source}", path.display())]
pub struct LogError {
    pub path: std::path::PathBuf,
    #[source]
    pub source: io::Error,
}

/// Libraries that log what a client does to a connection (rustls warns of every handshake
/// whose SNI is an IP address; h2 and actix-http of a client's protocol errors): a line per
/// connection that any client can make the router write, so they log only errors unless the
/// filter names them itself. What clients do wrong is counted in
/// `switchyard_router_errors_total{kind}` instead.
const QUIET_LIBRARIES: &[&str] = &["rustls", "h2", "actix_http"];

/// `spec` (RUST_LOG syntax) with `target=error` added for each of [`QUIET_LIBRARIES`] it does
/// not name.
pub fn quiet_libraries(spec: &str) -> String {
    let named = |target: &str| {
        spec.split(',')
            .any(|d| d.trim().split(['=', '[']).next() == Some(target))
    };
    let mut out = spec.trim().to_string();
    for target in QUIET_LIBRARIES.iter().filter(|t| !named(t)) {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(target);
        out.push_str("=error");
    }
    out
}

/// Sets up logging for the process. Fails only when `[log] access_path` cannot be opened for
/// appending, with the path and the reason.
pub fn init_logging(config: &LogConfig) -> Result<Logs, LogError> {
    let filter = || {
        let spec = std::env::var(EnvFilter::DEFAULT_ENV)
            .ok()
            .filter(|s| EnvFilter::try_new(s).is_ok())
            .unwrap_or_else(|| config.level.clone());
        EnvFilter::try_new(quiet_libraries(&spec))
            .unwrap_or_else(|_| EnvFilter::new(quiet_libraries("info")))
    };
    let file = match &config.access_path {
        Some(path) => Some(AccessFile::open(path).map_err(|source| LogError {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    // The access writer starts only when the filter lets access lines through, as it let
    // their `tracing` events through before: decided once, here, not per request.
    let access = if config.access && access_enabled(filter()) {
        let sink: Box<dyn sink::Sink> = match file {
            Some(file) => Box::new(file),
            None => Box::new(Stdout),
        };
        access::start(config.format, sink)
    } else {
        None
    };

    let (stdout, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .finish(Stdout);
    let _ = QUEUE_DROPS.set(stdout.error_counter());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    // One filter, not two stacked: stacked ones disagree on every `trace!`/`debug!` callsite
    // (one says never, the other always), so tracing asks them again on every call —
    // thousands of instructions per request in actix-http's dispatcher alone.
    let layer = format_layer(config.format, stdout, ansi)
        .with_filter(filter().and(filter_fn(|meta| meta.target() != ACCESS_TARGET)));
    // Another subscriber already installed (tests starting several routers): keep it.
    let _ = tracing_subscriber::registry().with(layer).try_init();
    Ok(Logs {
        _access: access,
        _guard: guard,
    })
}

/// Whether `filter` (`RUST_LOG` or `[log] level`) lets an INFO line of the access target
/// through.
fn access_enabled(filter: EnvFilter) -> bool {
    let probe = tracing_subscriber::registry().with(filter);
    tracing::subscriber::with_default(
        probe,
        || tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO),
    )
}

/// Writes one access line (see [`access::log`]); nothing when access lines are off.
pub fn access_log(line: &AccessLine) {
    access::log(line);
}

/// Whether access lines are written (`[log] access`, and not filtered out).
pub fn access_log_on() -> bool {
    access::on()
}

/// Reopens the access file at its path before the next batch (SIGHUP, after log rotation
/// moved the old file away). Nothing happens without `[log] access_path`.
pub fn reopen_access_log() {
    sink::REOPEN.store(true, Ordering::Relaxed);
}

/// Brings `switchyard_log_lines_dropped_total{reason="queue_full"}` up to date (the writers
/// count in their own counters).
pub fn count_queue_drops() {
    let others = QUEUE_DROPS.get().map_or(0, |c| c.dropped_lines() as u64);
    let access = access::queue_drops();
    let stdout = others
        + access
            .filter(|(sink, _)| *sink == "stdout")
            .map_or(0, |a| a.1);
    metrics::counter!("switchyard_log_lines_dropped_total", "sink" => "stdout", "reason" => "queue_full")
        .absolute(stdout);
    if let Some(("access_file", lines)) = access {
        metrics::counter!("switchyard_log_lines_dropped_total", "sink" => "access_file", "reason" => "queue_full")
            .absolute(lines);
    }
}

fn format_layer(
    format: LogFormat,
    writer: NonBlocking,
    ansi: bool,
) -> Box<dyn Layer<Registry> + Send + Sync> {
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(true);
    match format {
        LogFormat::Json => layer.json().boxed(),
        LogFormat::Text => layer.boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::quiet_libraries;

    #[test]
    fn client_triggered_library_logs_are_errors_only_unless_named() {
        assert_eq!(
            quiet_libraries("info"),
            "info,rustls=error,h2=error,actix_http=error"
        );
        assert_eq!(
            quiet_libraries("debug,rustls=trace"),
            "debug,rustls=trace,h2=error,actix_http=error"
        );
        assert_eq!(
            quiet_libraries(" h2[conn]=debug "),
            "h2[conn]=debug,rustls=error,actix_http=error"
        );
        assert_eq!(
            quiet_libraries(""),
            "rustls=error,h2=error,actix_http=error"
        );
    }
}
