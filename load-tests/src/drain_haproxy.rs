//! `switchyard-load scenario drain-haproxy`: the `drain` scenario's story through HAProxy, for
//! comparison. HAProxy (one thread, `balance leastconn`, `timeout tunnel 1h`) in front of the
//! same three backends; the same number of viewers on `/ws/echo`, each sending a numbered
//! message every second and checking every echo, but with the client an app has without
//! Switchyard's SDK: on any close or error it reconnects at once, and whatever it had sent
//! without an echo yet is gone. b1 is drained the way HAProxy offers: `disable server` then
//! `shutdown sessions server` on the admin socket. Reports sessions broken and messages lost.
//! Skipped (with the reason) where HAProxy is not installed.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::procs::{self, Proc, ScratchDir};
use crate::scenario::{Options, Verdict};

const OPEN_PER_S: f64 = 1500.0;
const MESSAGE_EVERY: Duration = Duration::from_secs(1);
const DRAINED: &str = "b1";
/// How long after the drain the run keeps going before it judges.
const AFTER: Duration = Duration::from_secs(8);

#[derive(Default)]
struct Tally {
    opened: AtomicU64,
    open_failed: AtomicU64,
    broken: AtomicU64,
    reconnected: AtomicU64,
    sent: AtomicU64,
    lost: AtomicU64,
    duplicated: AtomicU64,
}

pub async fn run(options: &Options, say: impl Fn(&str)) -> Result<Verdict, String> {
    let sessions = options.sessions.unwrap_or(crate::drain::SESSIONS);
    let Some(bin) = procs::on_path("haproxy") else {
        return Ok(Verdict {
            line: "drain-haproxy: 0 failed, skipped: haproxy is not installed (apt-get install -y haproxy)".to_string(),
            failed: 0,
        });
    };
    let scratch = ScratchDir::new("drain-haproxy")?;
    let (_backends, members) = procs::start_backends(&["b1", "b2", "b3"])?;
    let (_haproxy, addr, socket) = start_haproxy(&scratch, &bin, &members)?;
    say(&format!(
        "drain-haproxy: {sessions} sessions through HAProxy at {addr}, then {DRAINED} disabled and its sessions shut down"
    ));
    let tally = Arc::new(Tally::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let viewers: Vec<_> = (0..sessions)
        .map(|i| {
            let opens_at = started + Duration::from_secs_f64(i as f64 / OPEN_PER_S);
            tokio::spawn(viewer(i, addr, opens_at, tally.clone(), stop_rx.clone()))
        })
        .collect();
    let opening = Duration::from_secs_f64(sessions as f64 / OPEN_PER_S);
    tokio::time::sleep(opening + Duration::from_secs(2)).await;
    let opened = tally.opened.load(Ordering::Relaxed);
    say(&format!("{opened} sessions open; draining {DRAINED}"));
    admin(&socket, &format!("disable server be/{DRAINED}")).await?;
    admin(&socket, &format!("shutdown sessions server be/{DRAINED}")).await?;
    tokio::time::sleep(AFTER).await;
    let _ = stop_tx.send(true);
    for v in viewers {
        let _ = v.await;
    }
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let (broken, lost, duplicated) = (get(&tally.broken), get(&tally.lost), get(&tally.duplicated));
    let failed = broken + lost + duplicated + get(&tally.open_failed);
    let line = format!(
        "drain-haproxy: {failed} failed, {opened} sessions; {broken} broken by the drain ({} reconnected at once), {} messages sent, {lost} lost, {duplicated} duplicated, {} failed to open",
        get(&tally.reconnected),
        get(&tally.sent),
        get(&tally.open_failed),
    );
    Ok(Verdict { line, failed })
}

fn start_haproxy(
    scratch: &ScratchDir,
    bin: &std::path::Path,
    backends: &[(String, SocketAddr)],
) -> Result<(Proc, SocketAddr, std::path::PathBuf), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
    let socket = scratch.path().join("haproxy.sock");
    let servers: String = backends
        .iter()
        .map(|(id, a)| format!("  server {id} {a}\n"))
        .collect();
    // maxconn stays under the 20,000-file limit with two sockets a session.
    let cfg = format!(
        "global\n  nbthread 1\n  maxconn 9500\n  stats socket {} level admin\n\
         defaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n  timeout tunnel 1h\n\
         frontend fe\n  bind {addr}\n  default_backend be\n\
         backend be\n  balance leastconn\n{servers}",
        socket.display()
    );
    let path = scratch.write("haproxy.cfg", &cfg)?;
    let mut proc = Proc::spawn("haproxy", Command::new(bin).arg("-db").arg("-f").arg(path))?;
    procs::wait_for_port(&mut proc, addr)?;
    Ok((proc, addr, socket))
}

/// One command on HAProxy's admin socket; its answer must be empty (success).
async fn admin(socket: &std::path::Path, command: &str) -> Result<(), String> {
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|err| format!("haproxy admin socket: {err}"))?;
    stream
        .write_all(format!("{command}\n").as_bytes())
        .await
        .map_err(|err| err.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .map_err(|err| err.to_string())?;
    match answer.trim() {
        "" => Ok(()),
        other => Err(format!("haproxy `{command}`: {other}")),
    }
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn open(addr: SocketAddr) -> Option<Ws> {
    let connect = async {
        let stream = TcpStream::connect(addr).await.ok()?;
        stream.set_nodelay(true).ok()?;
        tokio_tungstenite::client_async(format!("ws://{addr}/ws/echo"), stream)
            .await
            .ok()
    };
    let (ws, _) = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .ok()??;
    Some(ws)
}

/// A viewer whose client reconnects at once on any close, without knowing what arrived.
async fn viewer(
    me: usize,
    addr: SocketAddr,
    opens_at: Instant,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::time::sleep_until(opens_at.into()).await;
    let Some(mut ws) = open(addr).await else {
        tally.open_failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    tally.opened.fetch_add(1, Ordering::Relaxed);
    let mut outstanding: BTreeSet<u64> = BTreeSet::new();
    let mut echoed: BTreeSet<u64> = BTreeSet::new();
    let mut next_n = 1u64;
    let mut tick = tokio::time::interval(MESSAGE_EVERY);
    tokio::time::sleep(MESSAGE_EVERY.mul_f64(fastrand::f64())).await;
    let mut stopping: Option<Instant> = None;
    loop {
        let settle = stopping.map(|t| t + Duration::from_secs(3));
        let broke = tokio::select! {
            _ = stop.changed(), if stopping.is_none() => {
                stopping = Some(Instant::now());
                false
            }
            _ = tick.tick(), if stopping.is_none() => {
                let n = next_n;
                next_n += 1;
                tally.sent.fetch_add(1, Ordering::Relaxed);
                outstanding.insert(n);
                ws.send(Message::text(format!("{me}-{n}"))).await.is_err()
            }
            _ = async { tokio::time::sleep_until(settle.unwrap_or_else(Instant::now).into()).await }, if settle.is_some() => break,
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let n = text
                        .split_once(": ")
                        .and_then(|(_, body)| body.split_once('-'))
                        .and_then(|(_, n)| n.parse::<u64>().ok());
                    if let Some(n) = n {
                        if outstanding.remove(&n) {
                            echoed.insert(n);
                        } else if echoed.contains(&n) {
                            tally.duplicated.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if stopping.is_some() && outstanding.is_empty() {
                        break;
                    }
                    false
                }
                Some(Ok(_)) => false,
                Some(Err(_)) | None => true,
            },
        };
        if broke {
            // What was sent without an echo is gone: this client cannot know what arrived.
            tally.broken.fetch_add(1, Ordering::Relaxed);
            tally
                .lost
                .fetch_add(outstanding.len() as u64, Ordering::Relaxed);
            outstanding.clear();
            match open(addr).await {
                Some(fresh) => {
                    tally.reconnected.fetch_add(1, Ordering::Relaxed);
                    ws = fresh;
                }
                None => return,
            }
        }
    }
    tally
        .lost
        .fetch_add(outstanding.len() as u64, Ordering::Relaxed);
    let _ = ws.close(None).await;
}
