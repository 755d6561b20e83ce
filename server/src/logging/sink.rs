//! Where lines end up: stdout, or the access file (`[log] access_path`). A sink writes what it
//! is given in one go, and what it cannot write (a full disk, a closed pipe) is dropped and
//! counted in `switchyard_log_lines_dropped_total{sink, reason="write_error"}`; the next
//! write is tried as if nothing happened, so logging resumes once the sink works again.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by [`super::reopen_access_log`]; the access file reopens its path before its next
/// write (after log rotation moved the old file away).
pub static REOPEN: AtomicBool = AtomicBool::new(false);

/// A destination for access batches: whole lines, `lines` of them in `bytes`.
pub trait Sink: Send {
    /// The `sink` label of its metrics.
    fn name(&self) -> &'static str;

    /// Writes `bytes` (one write unless the kernel takes less); counts `lines` as lost when
    /// it fails.
    fn write_batch(&mut self, bytes: &[u8], lines: u64);
}

fn lines_lost(sink: &'static str, lines: u64) {
    metrics::counter!("switchyard_log_lines_dropped_total", "sink" => sink, "reason" => "write_error")
        .increment(lines);
}

/// The process's stdout. Every write holds stdout's lock, so the access batches and the other
/// logs' lines (each written whole from its own background thread) never interleave mid-line.
#[derive(Debug, Default)]
pub struct Stdout;

impl Stdout {
    fn write_counted(bytes: &[u8], lines: u64) -> io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)
            .and_then(|()| out.flush())
            .inspect_err(|_| lines_lost("stdout", lines))
    }
}

impl Sink for Stdout {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn write_batch(&mut self, bytes: &[u8], lines: u64) {
        let _ = Self::write_counted(bytes, lines);
    }
}

/// For the other logs' background writer (tracing-appender), which hands over one line per
/// call: one failure is one line lost.
impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Self::write_counted(buf, 1)
    }

    fn flush(&mut self) -> io::Result<()> {
        std::io::stdout().flush()
    }
}

/// The access file (`[log] access_path`), opened for appending. A file that cannot be
/// reopened after a SIGHUP is tried again at the next batch, whose lines are lost meanwhile.
#[derive(Debug)]
pub struct AccessFile {
    path: PathBuf,
    file: Option<File>,
}

impl AccessFile {
    /// Opens `path` for appending (created when missing).
    pub fn open(path: &Path) -> io::Result<AccessFile> {
        Ok(AccessFile {
            path: path.to_path_buf(),
            file: Some(Self::append(path)?),
        })
    }

    fn append(path: &Path) -> io::Result<File> {
        OpenOptions::new().create(true).append(true).open(path)
    }
}

impl Sink for AccessFile {
    fn name(&self) -> &'static str {
        "access_file"
    }

    fn write_batch(&mut self, bytes: &[u8], lines: u64) {
        if REOPEN.swap(false, Ordering::Relaxed) || self.file.is_none() {
            self.file = Self::append(&self.path).ok();
        }
        let written = match &mut self.file {
            Some(file) => file.write_all(bytes),
            None => Err(io::Error::other("the access file could not be reopened")),
        };
        if written.is_err() {
            lines_lost("access_file", lines);
        }
    }
}
