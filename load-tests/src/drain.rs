//! `switchyard-load scenario drain`: draining a backend under thousands of live WebSocket
//! sessions, with clients that behave as the SDK does.
//!
//! Three backends, one router node (one worker), 9,000 sticky sessions on `/ws/echo` (~3,000
//! per backend by least connections), each sending a message every few seconds. Then b1 is
//! drained through the admin API (`deadline_s` 30, `spread_s` 5). A viewer whose session is
//! closed with `4001` reconnects at once with its session token and checks the new backend
//! echoes. Reports how many sessions were moved, how long after the drain the last one moved,
//! how many were placed back on b1 or lost, and when b1 showed `drained`. Goal: all moved
//! within 10 s, none lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::procs::{self, ScratchDir};
use crate::scenario::Verdict;

pub const SESSIONS: usize = 9000;
const OPEN_PER_S: f64 = 1500.0;
const MESSAGE_EVERY: Duration = Duration::from_secs(3);
const DRAIN_DEADLINE_S: u64 = 30;
const DRAIN_SPREAD_S: u64 = 5;
/// The goal: every session moved within this long after the drain call.
const GOAL: Duration = Duration::from_secs(10);
/// How long the run waits for the moves before it judges.
const WATCH: Duration = Duration::from_secs(15);
const DRAINED: &str = "b1";
const TOKEN: &str = "drain-scenario-admin-token";

#[derive(Default)]
struct Tally {
    opened: AtomicU64,
    open_failed: AtomicU64,
    moved: AtomicU64,
    placed_back: AtomicU64,
    lost: AtomicU64,
    /// Milliseconds after the drain call of the latest move.
    last_move_ms: AtomicU64,
}

pub async fn run(say: impl Fn(&str)) -> Result<Verdict, String> {
    let scratch = ScratchDir::new("drain")?;
    let (_backends, members) = procs::start_backends(&["b1", "b2", "b3"])?;
    let listen = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
    let admin = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
    let token_file = scratch.write("admin.token", TOKEN)?;
    let backends: Vec<String> = members
        .iter()
        .map(|(id, addr)| format!("{{ id = \"{id}\", address = \"{addr}\" }}"))
        .collect();
    let config = format!(
        "[node]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = 1\nadmin_token_file = \"{}\"\n\
         [log]\naccess = false\n{}\
         [[routes]]\nid = \"ws\"\npath_prefix = \"/\"\npool = \"ws\"\nsticky = true\n\
         timeouts = {{ connect = \"1s\", response = \"5s\", idle = \"1h\" }}\n\
         [[pools]]\nid = \"ws\"\nalgorithm = \"least_connections\"\nbackends = [{}]\n",
        token_file.display(),
        procs::LOAD_GENERATOR_LIMITS,
        backends.join(", ")
    );
    let _router = procs::start_switchyard_config(&scratch, "router", &config, listen)?;
    say(&format!(
        "drain: {SESSIONS} sessions through {listen}, then {DRAINED} drained (deadline {DRAIN_DEADLINE_S} s, spread {DRAIN_SPREAD_S} s)"
    ));

    let tally = Arc::new(Tally::default());
    let (drain_tx, drain_rx) = watch::channel::<Option<Instant>>(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let viewers: Vec<_> = (0..SESSIONS)
        .map(|i| {
            let opens_at = started + Duration::from_secs_f64(i as f64 / OPEN_PER_S);
            tokio::spawn(viewer(
                listen,
                opens_at,
                tally.clone(),
                drain_rx.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let opening = Duration::from_secs_f64(SESSIONS as f64 / OPEN_PER_S);
    tokio::time::sleep_until((started + opening + Duration::from_secs(2)).into()).await;
    let opened = tally.opened.load(Ordering::Relaxed);
    let on_drained = backend_sessions(admin, DRAINED).await?;
    say(&format!(
        "{opened} sessions open, {on_drained} on {DRAINED}; draining it"
    ));

    let drained_at = Instant::now();
    let _ = drain_tx.send(Some(drained_at));
    let answer = admin_call(
        admin,
        "POST",
        &format!("/admin/v1/backends/{DRAINED}/drain"),
        &format!("{{\"deadline_s\": {DRAIN_DEADLINE_S}, \"spread_s\": {DRAIN_SPREAD_S}}}"),
    )
    .await?;
    if answer.0 != 202 {
        return Err(format!(
            "the drain call answered {}: {}",
            answer.0, answer.1
        ));
    }
    // Watch b1 until it shows drained (and every session has had its chance to move).
    let mut shown_drained = None;
    while drained_at.elapsed() < WATCH {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if shown_drained.is_none() && backend_state(admin, DRAINED).await? == "drained" {
            shown_drained = Some(drained_at.elapsed());
        }
        let moved = tally.moved.load(Ordering::Relaxed)
            + tally.lost.load(Ordering::Relaxed)
            + tally.placed_back.load(Ordering::Relaxed);
        if shown_drained.is_some() && moved >= on_drained {
            break;
        }
    }
    let _ = stop_tx.send(true);
    for v in viewers {
        let _ = v.await;
    }

    let moved = tally.moved.load(Ordering::Relaxed);
    let placed_back = tally.placed_back.load(Ordering::Relaxed);
    let lost = tally.lost.load(Ordering::Relaxed);
    let open_failed = tally.open_failed.load(Ordering::Relaxed);
    let last = Duration::from_millis(tally.last_move_ms.load(Ordering::Relaxed));
    let not_moved = on_drained.saturating_sub(moved + placed_back + lost);
    let failed = lost + placed_back + not_moved + open_failed;
    let goal = if failed == 0 && last <= GOAL {
        "goal met"
    } else {
        "goal missed"
    };
    let line = format!(
        "drain: {failed} failed, {opened} sessions, {on_drained} on {DRAINED} at the drain; {moved} moved to other backends, the last {:.2} s after the drain call (spread {DRAIN_SPREAD_S} s, goal {} s); {placed_back} placed back on {DRAINED}, {lost} lost, {not_moved} not moved, {open_failed} failed to open; {DRAINED} showed drained {}; {goal}",
        last.as_secs_f64(),
        GOAL.as_secs(),
        shown_drained.map_or("never".to_string(), |t| format!(
            "{:.2} s after",
            t.as_secs_f64()
        )),
    );
    Ok(Verdict { line, failed })
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens a session (with its token when resuming); returns it with its backend and token.
async fn open(router: SocketAddr, token: Option<&str>) -> Option<(Ws, String, String)> {
    let mut request = format!("ws://{router}/ws/echo")
        .into_client_request()
        .ok()?;
    if let Some(t) = token {
        request
            .headers_mut()
            .insert("x-switchyard-session", t.parse().ok()?);
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(0);
    let connect = async {
        let stream = TcpStream::connect(router).await.ok()?;
        stream.set_nodelay(true).ok()?;
        tokio_tungstenite::client_async_with_config(request, stream, Some(config))
            .await
            .ok()
    };
    let (ws, answer) = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .ok()??;
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let backend = header("x-backend-id")?;
    let token = header("x-switchyard-session").or(token.map(str::to_string))?;
    Some((ws, backend, token))
}

/// One viewer: holds its session, messages now and then, and on `4001` reconnects at once
/// with its token, as the SDK does.
async fn viewer(
    router: SocketAddr,
    opens_at: Instant,
    tally: Arc<Tally>,
    drain: watch::Receiver<Option<Instant>>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::time::sleep_until(opens_at.into()).await;
    let Some((mut ws, mut backend, token)) = open(router, None).await else {
        tally.open_failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    tally.opened.fetch_add(1, Ordering::Relaxed);
    let mut tick = tokio::time::interval(MESSAGE_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = ws.close(None).await;
                return;
            }
            _ = tick.tick() => {
                if ws.send(Message::text("ping")).await.is_err() {
                    tally.lost.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(_))) | Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => {}
                Some(Ok(Message::Close(Some(frame)))) if u16::from(frame.code) == 4001 => {
                    let Some((next, now_on, _)) = open(router, Some(&token)).await else {
                        tally.lost.fetch_add(1, Ordering::Relaxed);
                        return;
                    };
                    // The new session answers: the viewer really moved.
                    let mut next = next;
                    let echoed = async {
                        next.send(Message::text("moved")).await.ok()?;
                        loop {
                            match next.next().await? {
                                Ok(Message::Text(t)) if t.as_str().ends_with("moved") => return Some(()),
                                Ok(_) => continue,
                                Err(_) => return None,
                            }
                        }
                    };
                    if tokio::time::timeout(Duration::from_secs(5), echoed).await.ok().flatten().is_none() {
                        tally.lost.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    if now_on == backend || now_on == DRAINED {
                        tally.placed_back.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tally.moved.fetch_add(1, Ordering::Relaxed);
                        if let Some(at) = *drain.borrow() {
                            tally.last_move_ms.fetch_max(at.elapsed().as_millis() as u64, Ordering::Relaxed);
                        }
                    }
                    ws = next;
                    backend = now_on;
                }
                _ => {
                    tally.lost.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

/// One admin call: status and body.
async fn admin_call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = ::http::Request::builder()
        .method(method)
        .uri(format!("http://{admin}{path}"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|err| err.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .map_err(|_| format!("{path}: no answer"))?
        .map_err(|err| format!("{path}: {err}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|err| err.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn backend_view(admin: SocketAddr, id: &str) -> Result<serde_json::Value, String> {
    let (status, body) = admin_call(admin, "GET", &format!("/admin/v1/backends/{id}"), "").await?;
    if status != 200 {
        return Err(format!("GET backend {id}: {status} {body}"));
    }
    serde_json::from_str(&body).map_err(|err| err.to_string())
}

async fn backend_sessions(admin: SocketAddr, id: &str) -> Result<u64, String> {
    Ok(backend_view(admin, id).await?["sessions"]
        .as_u64()
        .unwrap_or(0))
}

async fn backend_state(admin: SocketAddr, id: &str) -> Result<String, String> {
    Ok(backend_view(admin, id).await?["state"]
        .as_str()
        .unwrap_or("-")
        .to_string())
}
