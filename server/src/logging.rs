//! Logs: `tracing` events written off the request path by background writers — stdout for
//! everything, and with `[log] access_path` a file of its own for the access lines. A request
//! never waits for a log line: each writer has a bounded queue (lines past it are dropped),
//! and a line its sink refuses (a full disk, a closed pipe) is dropped too; both are counted
//! in `switchyard_log_lines_dropped_total{sink, reason}` and writing resumes with the next
//! line once the sink works again.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat};

/// Target of access-log events: filter them with `RUST_LOG=switchyard::access=off`.
pub const ACCESS_TARGET: &str = "switchyard::access";

/// Lines waiting for a background writer before new ones are dropped (and counted).
const QUEUE_LINES: usize = 128_000;

/// The access file's own buffer: written out when full and after every batch of lines.
const FILE_BUFFER_BYTES: usize = 64 * 1024;

/// Lines each writer dropped at its full queue, by sink.
static QUEUE_DROPS: OnceLock<Vec<(&'static str, ErrorCounter)>> = OnceLock::new();

/// Set by [`reopen_access_log`]; the access file's writer reopens the path before its next
/// line (after the file was moved away by log rotation).
static REOPEN: AtomicBool = AtomicBool::new(false);

/// What keeps the background writers running: dropped at exit, it flushes what is queued.
#[must_use = "logs stop being written when this is dropped"]
pub struct Logs {
    _guards: Vec<WorkerGuard>,
}

/// Why logging could not be set up: `[log] access_path` cannot be opened for appending.
#[derive(Debug, thiserror::Error)]
#[error("log.access_path: cannot open {}: {source}", path.display())]
pub struct LogError {
    pub path: std::path::PathBuf,
    #[source]
    pub source: io::Error,
}

/// Sets up logging for the process. Fails only when `[log] access_path` cannot be opened for
/// appending, with the path and the reason.
pub fn init_logging(config: &LogConfig) -> Result<Logs, LogError> {
    let filter = || {
        EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(&config.level))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    let mut guards = Vec::new();
    let mut drops = Vec::new();
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();

    let (stdout, guard) = background(Stdout);
    drops.push(("stdout", stdout.error_counter()));
    guards.push(guard);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let separate_access = config.access_path.is_some();
    layers.push(
        format_layer(config.format, stdout, ansi)
            .with_filter(filter())
            .with_filter(filter_fn(move |meta| {
                !(separate_access && meta.target() == ACCESS_TARGET)
            }))
            .boxed(),
    );

    if let Some(path) = &config.access_path {
        let file = AccessFile::open(path).map_err(|source| LogError {
            path: path.clone(),
            source,
        })?;
        let (access, guard) = background(file);
        drops.push(("access_file", access.error_counter()));
        guards.push(guard);
        layers.push(
            format_layer(config.format, access, false)
                .with_filter(filter())
                .with_filter(filter_fn(|meta| meta.target() == ACCESS_TARGET))
                .boxed(),
        );
    }

    let _ = QUEUE_DROPS.set(drops);
    // Another subscriber already installed (tests starting several routers): keep it.
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(Logs { _guards: guards })
}

/// Reopens the access file at its path before the next line (SIGHUP, after log rotation moved
/// the old file away). Nothing happens without `[log] access_path`.
pub fn reopen_access_log() {
    REOPEN.store(true, Ordering::Relaxed);
}

/// Brings `switchyard_log_lines_dropped_total{reason="queue_full"}` up to date (the writers
/// count in their own counters).
pub fn count_queue_drops() {
    for (sink, counter) in QUEUE_DROPS.get().into_iter().flatten() {
        metrics::counter!("switchyard_log_lines_dropped_total", "sink" => *sink, "reason" => "queue_full")
            .absolute(counter.dropped_lines() as u64);
    }
}

fn background<W: Write + Send + 'static>(sink: W) -> (NonBlocking, WorkerGuard) {
    NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUE_LINES)
        .finish(sink)
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

fn lines_lost(sink: &'static str, lines: u64) {
    metrics::counter!("switchyard_log_lines_dropped_total", "sink" => sink, "reason" => "write_error")
        .increment(lines);
}

/// Stdout for the background writer: a line it cannot write is dropped and counted, and the
/// next one is tried as if nothing happened.
struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // One call per line from the background writer: one failure is one line lost.
        let mut out = std::io::stdout().lock();
        out.write_all(buf)
            .and_then(|()| out.flush())
            .inspect_err(|_| lines_lost("stdout", 1))
    }

    fn flush(&mut self) -> io::Result<()> {
        std::io::stdout().flush()
    }
}

/// The access file (`[log] access_path`), opened for appending and buffered: lines are
/// written out when the buffer fills and after each batch the background writer takes. Lines
/// that cannot be written (a full disk) are dropped and counted; a file that cannot be
/// reopened is tried again at the next line.
struct AccessFile {
    path: PathBuf,
    file: Option<File>,
    buffer: Vec<u8>,
    lines: u64,
}

impl AccessFile {
    fn open(path: &Path) -> io::Result<AccessFile> {
        Ok(AccessFile {
            path: path.to_path_buf(),
            file: Some(Self::append(path)?),
            buffer: Vec::with_capacity(FILE_BUFFER_BYTES),
            lines: 0,
        })
    }

    fn append(path: &Path) -> io::Result<File> {
        OpenOptions::new().create(true).append(true).open(path)
    }

    fn write_out(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        if REOPEN.swap(false, Ordering::Relaxed) || self.file.is_none() {
            self.file = Self::append(&self.path).ok();
        }
        let written = match &mut self.file {
            Some(file) => file.write_all(&self.buffer),
            None => Err(io::Error::other("the access file could not be reopened")),
        };
        if written.is_err() {
            lines_lost("access_file", self.lines);
        }
        self.buffer.clear();
        self.lines = 0;
        written
    }
}

impl Write for AccessFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.buffer.len() + buf.len() > FILE_BUFFER_BYTES {
            // Lines already lost are counted; this one still gets its place.
            let _ = self.write_out();
        }
        self.buffer.extend_from_slice(buf);
        self.lines += 1;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()
    }
}

impl Drop for AccessFile {
    fn drop(&mut self) {
        let _ = self.write_out();
    }
}
