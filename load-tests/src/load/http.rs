//! The HTTP/1.1 load engine: N keep-alive connections, each a task that takes the next request
//! ticket, waits until it is due (open loop) and records its latency into its own histogram.
//! Bounded in time (`duration`) and in count (`max_requests`); stops early when asked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use super::report::{self, Percentiles, Report, StatusCounts, TransportErrors};
use super::schedule::{Pace, Schedule};
use super::wire::WireConn;

/// One load run's parameters.
#[derive(Debug, Clone)]
pub struct HttpLoad {
    pub target: SocketAddr,
    /// `Host` header to send.
    pub host: String,
    /// Paths with weights; requests cycle through them in proportion.
    pub paths: Vec<(String, u32)>,
    pub connections: usize,
    pub pace: Pace,
    pub duration: Duration,
    /// Stop after this many requests even if time is left.
    pub max_requests: Option<u64>,
    /// Per-request limit; a request over it counts as a timeout error.
    pub timeout: Duration,
}

/// Live counters a progress line can read while a run goes on.
#[derive(Debug, Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub failed: AtomicU64,
    stop: AtomicBool,
}

impl Progress {
    /// Asks every connection to finish its current request and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Checks that something accepts connections at `addr`, with a clear error if not.
pub async fn probe(addr: SocketAddr, within: Duration) -> Result<(), String> {
    match tokio::time::timeout(within, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(format!("cannot connect to {addr}: {err}")),
        Err(_) => Err(format!(
            "cannot connect to {addr}: no answer within {within:?}"
        )),
    }
}

struct ConnResult {
    hist: hdrhistogram::Histogram<u64>,
    status: StatusCounts,
    errors: TransportErrors,
}

/// Runs the load and returns what it measured.
pub async fn run(load: HttpLoad, progress: Arc<Progress>) -> Report {
    let start = Instant::now();
    let schedule = Schedule::new(start, load.duration, load.pace);
    let tickets = Arc::new(AtomicU64::new(0));
    let plan = Arc::new(PathPlan::new(&load.paths, &load.host));
    let load = Arc::new(load);
    let tasks: Vec<_> = (0..load.connections.max(1))
        .map(|_| {
            tokio::spawn(connection(
                load.clone(),
                schedule,
                tickets.clone(),
                plan.clone(),
                progress.clone(),
            ))
        })
        .collect();
    let mut hist = report::latency_histogram();
    let mut status = StatusCounts::default();
    let mut errors = TransportErrors::default();
    for task in tasks {
        if let Ok(r) = task.await {
            hist.add(&r.hist).expect("same bounds");
            status.merge(&r.status);
            errors.merge(&r.errors);
        }
    }
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    Report {
        target: format!("http://{}", load.target),
        mode: match load.pace {
            Pace::Closed => "closed",
            Pace::Open { .. } => "open",
        },
        rate: match load.pace {
            Pace::Open { rate } => Some(rate),
            Pace::Closed => None,
        },
        connections: load.connections,
        elapsed_s: elapsed,
        requests: status.total() + errors.total(),
        rps: status.total() as f64 / elapsed,
        latency_us: Percentiles::of(&hist),
        status,
        errors,
        interrupted: progress.stopped(),
    }
}

/// The request heads to send, expanded by weight: ticket `i` sends `requests[i % len]`.
struct PathPlan {
    requests: Vec<Vec<u8>>,
}

impl PathPlan {
    fn new(paths: &[(String, u32)], host: &str) -> PathPlan {
        let mut requests = Vec::new();
        for (path, weight) in paths {
            let head = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: switchyard-load\r\n\r\n"
            );
            for _ in 0..(*weight).max(1) {
                requests.push(head.clone().into_bytes());
            }
        }
        if requests.is_empty() {
            requests.push(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes());
        }
        PathPlan { requests }
    }

    fn request(&self, ticket: u64) -> &[u8] {
        &self.requests[(ticket % self.requests.len() as u64) as usize]
    }
}

async fn connection(
    load: Arc<HttpLoad>,
    schedule: Schedule,
    tickets: Arc<AtomicU64>,
    plan: Arc<PathPlan>,
    progress: Arc<Progress>,
) -> ConnResult {
    let mut out = ConnResult {
        hist: report::latency_histogram(),
        status: StatusCounts::default(),
        errors: TransportErrors::default(),
    };
    let open_loop = matches!(schedule.pace(), Pace::Open { .. });
    let mut conn: Option<WireConn> = None;
    while !progress.stopped() {
        let ticket = tickets.fetch_add(1, Ordering::Relaxed);
        if load.max_requests.is_some_and(|max| ticket >= max) {
            break;
        }
        let now = Instant::now();
        let Some(due) = schedule.due(ticket, now) else {
            break;
        };
        // Latency runs from the due time when the request is late (every connection was busy:
        // the server's fault, counted). When the request is early, the generator sleeps, and
        // tokio's millisecond timer wakes it up to 1 ms late: that slack is the generator's,
        // so latency then runs from the wake-up.
        let mut measured_from = due;
        if open_loop && due > now {
            tokio::time::sleep_until(due.into()).await;
            measured_from = Instant::now();
        }
        if conn.as_ref().is_none_or(|c| !c.reusable()) {
            match tokio::time::timeout(load.timeout, WireConn::connect(load.target)).await {
                Ok(Ok(c)) => conn = Some(c),
                Ok(Err(_)) | Err(_) => {
                    out.errors.connect += 1;
                    progress.failed.fetch_add(1, Ordering::Relaxed);
                    // Back off a little so a refused port does not spin the CPU.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("opened above");
        match tokio::time::timeout(load.timeout, c.exchange(plan.request(ticket), false)).await {
            Ok(Ok(status)) => {
                report::record(&mut out.hist, measured_from.elapsed());
                out.status.add(status);
                progress.done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(_)) => {
                out.errors.io += 1;
                progress.failed.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
            Err(_) => {
                out.errors.timeout += 1;
                progress.failed.fetch_add(1, Ordering::Relaxed);
                conn = None;
            }
        }
    }
    out
}
