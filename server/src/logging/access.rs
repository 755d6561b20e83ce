//! The access log's own path, beside `tracing`: one line per request is the busiest log by
//! far, so it skips tracing's per-event work (a subscriber dispatch, a `String` per line, a
//! queue slot per line, a write per line) and is written in batches instead:
//!
//! - the worker that served the request formats the line into its own buffer
//!   ([`super::line`]: no allocation per line);
//! - once that buffer holds [`BATCH_BYTES`] it is handed, whole, to one background writer
//!   through a queue bounded in bytes ([`QUEUE_BYTES`]); a batch that does not fit is dropped
//!   and its lines counted (`reason="queue_full"`), so a worker never waits for the log;
//! - the writer also collects every worker's buffer every [`FLUSH_EVERY`], so a quiet worker's
//!   lines are not held back, and a last time when [`AccessLog`] is dropped at exit; what it
//!   collects is written after the batches already queued, so a worker's lines stay in order;
//! - each batch is one write to the sink ([`super::sink`]).
//!
//! Each worker's buffer sits behind a mutex of its own rather than in a bare thread-local so
//! that the writer can collect it: the writer's timer then costs the workers nothing (no
//! wake-up on each worker's runtime), lines of a thread that ended are still written, and at
//! exit every buffer reaches the sink however the worker threads stopped. Only the worker and
//! the writer take that mutex, the writer just long enough to swap two vectors ten times a
//! second, so for the worker it is an uncontended lock.

use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::config::LogFormat;

use super::line::{self, AccessLine, Clock};
use super::sink::Sink;

/// A worker hands its buffer to the writer once it holds this much (about 130 lines).
pub const BATCH_BYTES: usize = 32 * 1024;

/// A buffer's room: a batch and the line that took it past [`BATCH_BYTES`].
const BUFFER_CAPACITY: usize = BATCH_BYTES + 4 * 1024;

/// The longest a line waits in a worker's buffer that is not filling up.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Bytes handed to the writer and not written yet (a stdout nobody reads) past which batches
/// are dropped: about 128,000 lines.
pub const QUEUE_BYTES: usize = 32 * 1024 * 1024;

/// How long the exit waits for the writer to write what is queued.
const EXIT_WAIT: Duration = Duration::from_secs(3);

/// Emptied buffers kept for the workers to reuse.
const SPARES: usize = 8;

static ACCESS: OnceLock<Arc<Shared>> = OnceLock::new();

thread_local! {
    /// This thread's buffer, registered with the writer at its first line.
    static LOCAL: OnceCell<Arc<Mutex<Buffer>>> = const { OnceCell::new() };
}

/// What the workers and the writer share.
struct Shared {
    format: LogFormat,
    /// The sink's metrics label.
    sink: &'static str,
    /// Every worker's buffer, for the writer to collect.
    buffers: Mutex<Vec<Arc<Mutex<Buffer>>>>,
    queue: Sender<Message>,
    /// Bytes in the queue.
    queued: AtomicUsize,
    /// Lines dropped at the full queue.
    dropped: AtomicU64,
    spares: Mutex<Vec<Vec<u8>>>,
}

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    lines: u64,
    clock: Clock,
}

/// Whole lines, `lines` of them.
struct Batch {
    bytes: Vec<u8>,
    lines: u64,
}

enum Message {
    Batch(Batch),
    /// Write everything and say so.
    Stop(SyncSender<()>),
}

/// Keeps the access writer running; dropped at exit, it has every line written first (at
/// most [`EXIT_WAIT`]: a stdout nobody reads does not hold the exit).
#[must_use = "access lines stop being written when this is dropped"]
pub struct AccessLog {
    queue: Sender<Message>,
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        let (done, written) = mpsc::sync_channel(1);
        if self.queue.send(Message::Stop(done)).is_ok() {
            let _ = written.recv_timeout(EXIT_WAIT);
        }
    }
}

/// Starts the writer for access lines in `format` to `sink`. `None` when a writer already
/// runs in this process (routers started by tests share the first one).
pub fn start(format: LogFormat, sink: Box<dyn Sink>) -> Option<AccessLog> {
    if ACCESS.get().is_some() {
        return None;
    }
    let (queue, received) = mpsc::channel();
    let shared = Arc::new(Shared {
        format,
        sink: sink.name(),
        buffers: Mutex::new(Vec::new()),
        queue: queue.clone(),
        queued: AtomicUsize::new(0),
        dropped: AtomicU64::new(0),
        spares: Mutex::new(Vec::new()),
    });
    ACCESS.set(shared.clone()).ok()?;
    let writer = shared.clone();
    std::thread::Builder::new()
        .name("switchyard-access-log".to_string())
        .spawn(move || writer.run(&received, sink))
        .ok()?;
    Some(AccessLog { queue })
}

/// Whether access lines are written at all (a writer runs).
pub fn on() -> bool {
    ACCESS.get().is_some()
}

/// Formats `line` into this worker's buffer; hands the buffer to the writer when it is full.
/// Never waits for the writer.
pub fn log(line: &AccessLine) {
    let Some(shared) = ACCESS.get() else { return };
    // `Err` only while this thread is exiting: the line is lost like any after the exit.
    let _ = LOCAL.try_with(|local| {
        let buffer = local.get_or_init(|| shared.register());
        let mut buffer = lock(buffer);
        let Buffer {
            bytes,
            lines,
            clock,
        } = &mut *buffer;
        line::write(bytes, clock, shared.format, line);
        *lines += 1;
        if bytes.len() >= BATCH_BYTES {
            // Handed over under the buffer's lock (the queue never blocks): when the writer
            // collects this buffer, every older batch of this worker is already queued.
            shared.hand_over(Batch {
                bytes: std::mem::replace(bytes, shared.spare()),
                lines: std::mem::take(lines),
            });
        }
    });
}

/// Lines dropped at the full queue so far, with the sink's label.
pub fn queue_drops() -> Option<(&'static str, u64)> {
    ACCESS
        .get()
        .map(|shared| (shared.sink, shared.dropped.load(Ordering::Relaxed)))
}

/// A poisoned lock only means a panic elsewhere while formatting: the bytes are still lines.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn register(&self) -> Arc<Mutex<Buffer>> {
        let buffer = Arc::new(Mutex::new(Buffer {
            bytes: Vec::with_capacity(BUFFER_CAPACITY),
            ..Buffer::default()
        }));
        lock(&self.buffers).push(buffer.clone());
        buffer
    }

    /// An empty buffer, reused when one is at hand (never waiting for it).
    fn spare(&self) -> Vec<u8> {
        self.spares
            .try_lock()
            .ok()
            .and_then(|mut spares| spares.pop())
            .unwrap_or_else(|| Vec::with_capacity(BUFFER_CAPACITY))
    }

    /// Keeps an emptied buffer for reuse, unless the spares are busy or enough.
    fn recycle(&self, mut bytes: Vec<u8>) {
        if bytes.capacity() > 2 * BUFFER_CAPACITY {
            return;
        }
        bytes.clear();
        if let Ok(mut spares) = self.spares.try_lock()
            && spares.len() < SPARES
        {
            spares.push(bytes);
        }
    }

    /// Queues a full batch for the writer, or drops and counts it when the queue is full.
    fn hand_over(&self, batch: Batch) {
        let size = batch.bytes.len();
        if self.queued.fetch_add(size, Ordering::Relaxed) + size > QUEUE_BYTES {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            self.dropped.fetch_add(batch.lines, Ordering::Relaxed);
            self.recycle(batch.bytes);
            return;
        }
        if let Err(mpsc::SendError(Message::Batch(batch))) = self.queue.send(Message::Batch(batch))
        {
            // The writer has stopped (the process is exiting).
            self.queued.fetch_sub(size, Ordering::Relaxed);
            self.dropped.fetch_add(batch.lines, Ordering::Relaxed);
        }
    }

    /// The writer: queued batches as they come, every worker's buffer every [`FLUSH_EVERY`]
    /// and at the stop.
    fn run(&self, received: &Receiver<Message>, mut sink: Box<dyn Sink>) {
        let mut next = Instant::now() + FLUSH_EVERY;
        let mut stop = None;
        loop {
            if stop.is_none() {
                match received.recv_timeout(next.saturating_duration_since(Instant::now())) {
                    Ok(Message::Batch(batch)) => self.write_queued(&mut *sink, batch),
                    Ok(Message::Stop(done)) => stop = Some(done),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                if stop.is_none() && Instant::now() < next {
                    continue;
                }
            }
            let stopping = stop.take();
            stop = self.collect(received, &mut *sink);
            if let Some(done) = stopping {
                let _ = done.send(());
                return;
            }
            next = Instant::now() + FLUSH_EVERY;
        }
    }

    fn write(&self, sink: &mut dyn Sink, batch: Batch) {
        sink.write_batch(&batch.bytes, batch.lines);
        self.recycle(batch.bytes);
    }

    /// [`Shared::write`] for a batch from the queue, which then has room for it again.
    fn write_queued(&self, sink: &mut dyn Sink, batch: Batch) {
        self.queued.fetch_sub(batch.bytes.len(), Ordering::Relaxed);
        self.write(sink, batch);
    }

    /// Takes what every worker's buffer holds (each swapped for an empty one) and writes it
    /// after the batches already queued, which are older; forgets the buffers of threads that
    /// have ended. Returns a stop found in the queue.
    fn collect(&self, received: &Receiver<Message>, sink: &mut dyn Sink) -> Option<SyncSender<()>> {
        let mut collected = Vec::new();
        {
            let mut buffers = lock(&self.buffers);
            for buffer in buffers.iter() {
                let spare = self.spare();
                let mut buffer = lock(buffer);
                if buffer.lines == 0 {
                    drop(buffer);
                    self.recycle(spare);
                    continue;
                }
                collected.push(Batch {
                    bytes: std::mem::replace(&mut buffer.bytes, spare),
                    lines: std::mem::take(&mut buffer.lines),
                });
            }
            // Only this list still holds the buffer of a thread that ended.
            buffers.retain(|buffer| Arc::strong_count(buffer) > 1);
        }
        let mut stop = None;
        while let Ok(message) = received.try_recv() {
            match message {
                Message::Batch(batch) => self.write_queued(sink, batch),
                Message::Stop(done) => stop = Some(done),
            }
        }
        for batch in collected {
            self.write(sink, batch);
        }
        stop
    }
}
