//! The WebSocket soak: N sessions opened at a ramp rate, each sending a small message every
//! `interval` and timing the echo, held for `duration`. Reports sessions held, connect and
//! round-trip percentiles, drops, and (given the server's pid) its resident memory per session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::report::{self, Percentiles};

#[derive(Debug, Clone)]
pub struct WsLoad {
    pub target: SocketAddr,
    /// `ws://host:port/path` as sent in the handshake.
    pub url: String,
    pub sessions: usize,
    /// Sessions opened per second.
    pub ramp_per_s: f64,
    /// Gap between one session's messages.
    pub interval: Duration,
    /// How long each session is held after the last one opened.
    pub duration: Duration,
    pub message_bytes: usize,
    /// Server process to read resident memory from (`/proc/PID/status`).
    pub server_pid: Option<u32>,
    /// Longest wait for an echo before the message counts as lost.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct WsReport {
    pub url: String,
    pub sessions_wanted: usize,
    pub sessions_opened: u64,
    /// Open until the end.
    pub sessions_held: u64,
    pub connect_failures: u64,
    /// Sessions that ended early (closed or failed mid-run).
    pub drops: u64,
    pub messages_sent: u64,
    pub messages_echoed: u64,
    pub connect_us: Percentiles,
    pub rtt_us: Percentiles,
    /// Round trips of messages sent once every session was open (the held phase only:
    /// no handshakes competing with messages).
    pub held_rtt_us: Percentiles,
    /// Growth of the server's resident memory per held session, when its pid was given.
    pub server_kib_per_session: Option<f64>,
}

#[derive(Default)]
struct Counters {
    opened: AtomicU64,
    failed: AtomicU64,
    drops: AtomicU64,
    held: AtomicU64,
    sent: AtomicU64,
    echoed: AtomicU64,
}

struct SessionResult {
    connect: Option<Duration>,
    rtt: hdrhistogram::Histogram<u64>,
    held_rtt: hdrhistogram::Histogram<u64>,
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

pub async fn run(load: WsLoad) -> WsReport {
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let ramp = Duration::from_secs_f64(load.sessions as f64 / load.ramp_per_s.max(0.001));
    let held_from = start + ramp;
    let end = held_from + load.duration;
    let rss_before = load.server_pid.and_then(rss_kib);
    let load = Arc::new(load);
    let tasks: Vec<_> = (0..load.sessions)
        .map(|i| {
            let opens_at = start + Duration::from_secs_f64(i as f64 / load.ramp_per_s.max(0.001));
            tokio::spawn(session(
                load.clone(),
                counters.clone(),
                i,
                opens_at,
                (held_from, end),
            ))
        })
        .collect();
    // Memory is read once every session has had its chance to open, midway through the hold.
    tokio::time::sleep_until((start + ramp + load.duration / 2).into()).await;
    let rss_held = load.server_pid.and_then(rss_kib);
    let held_then =
        counters.opened.load(Ordering::Relaxed) - counters.drops.load(Ordering::Relaxed);

    let mut connect = report::latency_histogram();
    let mut rtt = report::latency_histogram();
    let mut held_rtt = report::latency_histogram();
    for t in tasks {
        if let Ok(r) = t.await {
            if let Some(c) = r.connect {
                report::record(&mut connect, c);
            }
            rtt.add(&r.rtt).expect("same bounds");
            held_rtt.add(&r.held_rtt).expect("same bounds");
        }
    }
    let server_kib_per_session = match (rss_before, rss_held) {
        (Some(before), Some(held)) if held_then > 0 => {
            Some(held.saturating_sub(before) as f64 / held_then as f64)
        }
        _ => None,
    };
    WsReport {
        url: load.url.clone(),
        sessions_wanted: load.sessions,
        sessions_opened: counters.opened.load(Ordering::Relaxed),
        sessions_held: counters.held.load(Ordering::Relaxed),
        connect_failures: counters.failed.load(Ordering::Relaxed),
        drops: counters.drops.load(Ordering::Relaxed),
        messages_sent: counters.sent.load(Ordering::Relaxed),
        messages_echoed: counters.echoed.load(Ordering::Relaxed),
        connect_us: Percentiles::of(&connect),
        rtt_us: Percentiles::of(&rtt),
        held_rtt_us: Percentiles::of(&held_rtt),
        server_kib_per_session,
    }
}

async fn session(
    load: Arc<WsLoad>,
    counters: Arc<Counters>,
    index: usize,
    opens_at: Instant,
    (held_from, end): (Instant, Instant),
) -> SessionResult {
    let mut out = SessionResult {
        connect: None,
        rtt: report::latency_histogram(),
        held_rtt: report::latency_histogram(),
    };
    tokio::time::sleep_until(opens_at.into()).await;
    let t0 = Instant::now();
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let connected = tokio::time::timeout(load.timeout, async {
        let stream = TcpStream::connect(load.target).await?;
        stream.set_nodelay(true)?;
        tokio_tungstenite::client_async_with_config(load.url.as_str(), stream, Some(config))
            .await
            .map_err(std::io::Error::other)
    })
    .await;
    let mut ws = match connected {
        Ok(Ok((ws, _))) => ws,
        _ => {
            counters.failed.fetch_add(1, Ordering::Relaxed);
            return out;
        }
    };
    out.connect = Some(t0.elapsed());
    counters.opened.fetch_add(1, Ordering::Relaxed);
    // Spread sessions' messages over the interval (golden-ratio offsets) so they do not
    // arrive in waves.
    let offset = load
        .interval
        .mul_f64((index as f64 * 0.618_033_988_749_895).fract());
    let mut next = Instant::now() + offset;
    let payload = "x".repeat(load.message_bytes.saturating_sub(12));
    let mut seq = 0u64;
    loop {
        if next >= end {
            counters.held.fetch_add(1, Ordering::Relaxed);
            let _ = ws.close(None).await;
            return out;
        }
        tokio::time::sleep_until(next.into()).await;
        next += load.interval;
        seq += 1;
        let text = format!("{seq:010}:{payload}");
        let sent = Instant::now();
        counters.sent.fetch_add(1, Ordering::Relaxed);
        if ws.send(Message::text(text.clone())).await.is_err() {
            counters.drops.fetch_add(1, Ordering::Relaxed);
            return out;
        }
        let reply = tokio::time::timeout(load.timeout, async {
            while let Some(msg) = ws.next().await {
                match msg {
                    Ok(Message::Text(t)) if t.as_str().ends_with(&text) => return true,
                    Ok(Message::Close(_)) | Err(_) => return false,
                    Ok(_) => continue,
                }
            }
            false
        })
        .await;
        match reply {
            Ok(true) => {
                counters.echoed.fetch_add(1, Ordering::Relaxed);
                let rtt = sent.elapsed();
                report::record(&mut out.rtt, rtt);
                if sent >= held_from {
                    report::record(&mut out.held_rtt, rtt);
                }
            }
            _ => {
                counters.drops.fetch_add(1, Ordering::Relaxed);
                return out;
            }
        }
    }
}

impl std::fmt::Display for WsReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |us: u64| us as f64 / 1000.0;
        writeln!(f, "{}", self.url)?;
        writeln!(
            f,
            "  sessions   wanted {}  opened {}  held to the end {}  connect failures {}  drops {}",
            self.sessions_wanted,
            self.sessions_opened,
            self.sessions_held,
            self.connect_failures,
            self.drops
        )?;
        writeln!(
            f,
            "  connect    p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            ms(self.connect_us.p50),
            ms(self.connect_us.p99),
            ms(self.connect_us.max)
        )?;
        writeln!(
            f,
            "  messages   sent {}  echoed {}  rtt p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            self.messages_sent,
            self.messages_echoed,
            ms(self.rtt_us.p50),
            ms(self.rtt_us.p99),
            ms(self.rtt_us.max)
        )?;
        writeln!(
            f,
            "  held       rtt p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (messages sent once all sessions were open)",
            ms(self.held_rtt_us.p50),
            ms(self.held_rtt_us.p99),
            ms(self.held_rtt_us.max)
        )?;
        match self.server_kib_per_session {
            Some(kib) => write!(f, "  server     {kib:.1} KiB resident per session"),
            None => write!(f, "  server     memory not measured (give --pid)"),
        }
    }
}
