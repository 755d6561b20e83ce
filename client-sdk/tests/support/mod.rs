//! What the session scenarios share: in-process routers on loopback in front of real test
//! backends, a scripted WebSocket backend (for close codes and handoffs a test must choose),
//! a TCP relay whose path can die in chosen ways, and bounded waits on session events.

#![allow(dead_code)] // each test file uses its own part of this

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchyard::config::Config;
use switchyard_client::{Event, Message, Session};
use switchyard_load::TestBackend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

pub const TOKEN: &str = "an-sdk-test-admin-token";
/// The longest any single wait in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub async fn backends(ids: &[&str]) -> Vec<TestBackend> {
    let mut out = Vec::new();
    for id in ids {
        out.push(
            TestBackend::start(id, "127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
        );
    }
    out
}

pub fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", switchyard_load::procs::free_port().unwrap())
        .parse()
        .unwrap()
}

/// A router on a free port in front of `members` (`(id, address)`), routing everything to
/// them by least connections and retrying a failed backend connect once, as a real route
/// would; returns it and its address.
pub fn router_for(members: &[(String, SocketAddr)]) -> (switchyard::RouterHandle, SocketAddr) {
    router_with(members, 1)
}

/// [`router_for`] with the route's `retries`: 0 keeps the router from retrying, so a test
/// sees only the SDK's own retries.
pub fn router_with(
    members: &[(String, SocketAddr)],
    retries: u32,
) -> (switchyard::RouterHandle, SocketAddr) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // One token file per router: tests run in parallel.
    let token = std::env::temp_dir().join(format!(
        "switchyard-sessions-token-{}-{n}",
        std::process::id()
    ));
    std::fs::write(&token, TOKEN).unwrap();
    let listed: Vec<String> = members
        .iter()
        .map(|(id, addr)| format!("{{ id = \"{id}\", address = \"{addr}\" }}"))
        .collect();
    let listen = free_addr();
    let text = format!(
        "[node]\nlisten = \"{listen}\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = 1\nshutdown_timeout = \"1s\"\nadmin_token_file = \"{}\"\n\
         [log]\naccess = false\n\
         [[routes]]\nid = \"all\"\npath_prefix = \"/\"\npool = \"p\"\nretries = {retries}\n\
         [[pools]]\nid = \"p\"\nalgorithm = \"least_connections\"\nhealth = {{ kind = \"none\" }}\nbackends = [{}]\n",
        token.display(),
        listed.join(", ")
    );
    let handle = switchyard::start(Config::from_toml_str(&text).unwrap()).expect("router starts");
    (handle, listen)
}

pub fn router(bs: &[TestBackend]) -> (switchyard::RouterHandle, SocketAddr) {
    router_for(&members(bs))
}

pub fn members(bs: &[TestBackend]) -> Vec<(String, SocketAddr)> {
    bs.iter().map(|b| (b.id().to_string(), b.addr())).collect()
}

/// A POST to the router's admin API with the token and a JSON body (`""`: none); the status.
pub async fn admin_post(admin: SocketAddr, path: &str, body: &str) -> u16 {
    use http_body_util::Full;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let mut req = http::Request::post(format!("http://{admin}{path}"))
        .header("authorization", format!("Bearer {TOKEN}"));
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    client.request(req).await.unwrap().status().as_u16()
}

pub async fn next_event(session: &mut Session) -> Event {
    tokio::time::timeout(DEADLINE, session.next())
        .await
        .expect("an event within the deadline")
        .expect("the session is alive")
}

/// Reads events until one matches; fails with what came instead after the deadline.
pub async fn until(session: &mut Session, what: &str, wanted: impl Fn(&Event) -> bool) -> Event {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let event = match tokio::time::timeout_at(deadline, session.next()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("the session ended before {what}; saw {seen:?}"),
            Err(_) => panic!("no {what} within {DEADLINE:?}; saw {seen:?}"),
        };
        if wanted(&event) {
            return event;
        }
        seen.push(match event {
            // Keep the report short: payloads are not the point.
            Event::Message(m) if m.len() > 64 => {
                Event::Message(Message::text(format!("<{} bytes>", m.len())))
            }
            other => other,
        });
    }
}

/// Sends `text` and waits for its echo.
pub async fn echo(session: &mut Session, text: &str) -> String {
    session.send(Message::text(text)).unwrap();
    match until(session, "an echo", |e| matches!(e, Event::Message(_))).await {
        Event::Message(Message::Text(t)) => t,
        other => panic!("{other:?}"),
    }
}

/// What a relay does with the bytes it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Forward,
    /// Reads and swallows: a dead path no TCP error reveals.
    Swallow,
    /// Stops reading: the sender's socket buffer fills and its writes block.
    Stall,
}

/// A TCP relay in front of a router whose path can die without any TCP error.
pub struct Relay {
    pub addr: SocketAddr,
    path: watch::Sender<Path>,
}

impl Relay {
    pub async fn to(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (path, seen) = watch::channel(Path::Forward);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, seen.clone()));
                tokio::spawn(pipe(sr, cw, seen.clone()));
            }
        });
        Relay { addr, path }
    }

    pub fn set(&self, path: Path) {
        let _ = self.path.send(path);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut path: watch::Receiver<Path>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if *path.borrow() == Path::Stall {
            // Hold both sockets open, read nothing, until the test ends.
            let _ = path.wait_for(|p| *p != Path::Stall).await;
            if path.has_changed().is_err() {
                return;
            }
            continue;
        }
        let read = tokio::select! {
            read = from.read(&mut buf) => read,
            _ = path.changed() => continue,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if *path.borrow() == Path::Forward && to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// What a scripted backend does with each WebSocket connection (numbered from 0).
#[derive(Debug, Clone)]
pub enum Plan {
    /// Echo `<id>: <message>`; when [`Scripted::hand_off`] is called, stop reading for
    /// `hold`, then close like a router's handoff: `4001 moved; delivered=<read>;
    /// retry_after_ms=<retry_after_ms>` (messages that arrived unread are not counted).
    Echo { hold: Duration, retry_after_ms: u64 },
    /// Close at once with this code and reason.
    Close(u16, String),
    /// Echo `after` messages, then close with this code and reason.
    CloseAfter(u64, u16, String),
    /// Send `count` binary messages of `size` bytes as fast as the path takes them, counting
    /// them in [`Scripted::flooded`]; then echo.
    Flood { count: u64, size: usize },
}

/// A WebSocket backend that follows a script per connection.
pub struct Scripted {
    pub id: String,
    pub addr: SocketAddr,
    pub connections: Arc<AtomicU64>,
    pub flooded: Arc<AtomicU64>,
    handoff: Arc<Notify>,
}

impl Scripted {
    pub async fn start(id: &str, plan: impl Fn(u64) -> Plan + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let flooded = Arc::new(AtomicU64::new(0));
        let handoff = Arc::new(Notify::new());
        let plan = Arc::new(plan);
        let (count, flood, notify, name) = (
            connections.clone(),
            flooded.clone(),
            handoff.clone(),
            id.to_string(),
        );
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                    continue;
                };
                let n = count.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(
                    ws,
                    plan(n),
                    name.clone(),
                    notify.clone(),
                    flood.clone(),
                ));
            }
        });
        Scripted {
            id: id.to_string(),
            addr,
            connections,
            flooded,
            handoff,
        }
    }

    pub fn member(&self) -> (String, SocketAddr) {
        (self.id.clone(), self.addr)
    }

    /// Asks the live `Echo` connection to hand its session off.
    pub fn hand_off(&self) {
        self.handoff.notify_one();
    }
}

type ServerWs = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

fn close_frame(code: u16, reason: &str) -> WsMessage {
    WsMessage::Close(Some(CloseFrame {
        code: code.into(),
        reason: reason.to_string().into(),
    }))
}

/// Closes and waits (bounded) for the other side's close.
async fn close(mut ws: ServerWs, code: u16, reason: &str) {
    let _ = ws.send(close_frame(code, reason)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

async fn serve(
    mut ws: ServerWs,
    plan: Plan,
    id: String,
    handoff: Arc<Notify>,
    flooded: Arc<AtomicU64>,
) {
    let mut read = 0u64;
    let (hold, retry_after_ms, close_after) = match plan {
        Plan::Close(code, reason) => return close(ws, code, &reason).await,
        Plan::Echo {
            hold,
            retry_after_ms,
        } => (hold, retry_after_ms, None),
        Plan::CloseAfter(after, code, reason) => (Duration::ZERO, 0, Some((after, code, reason))),
        Plan::Flood { count, size } => {
            let payload = bytes::Bytes::from(vec![7u8; size]);
            for _ in 0..count {
                if ws.send(WsMessage::binary(payload.clone())).await.is_err() {
                    return;
                }
                flooded.fetch_add(1, Ordering::Relaxed);
            }
            (Duration::ZERO, 0, None)
        }
    };
    loop {
        if let Some((after, code, reason)) = &close_after
            && read >= *after
        {
            return close(ws, *code, reason).await;
        }
        tokio::select! {
            _ = handoff.notified() => {
                tokio::time::sleep(hold).await;
                let reason = format!("moved; delivered={read}; retry_after_ms={retry_after_ms}");
                return close(ws, 4001, &reason).await;
            }
            frame = ws.next() => match frame {
                Some(Ok(WsMessage::Text(t))) => {
                    read += 1;
                    if ws.send(WsMessage::text(format!("{id}: {t}"))).await.is_err() {
                        return;
                    }
                }
                Some(Ok(WsMessage::Binary(b))) => {
                    read += 1;
                    if ws.send(WsMessage::binary(b)).await.is_err() {
                        return;
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    }
}

/// One router per region, each knowing every region (name, location, endpoint) and probing
/// them, each in front of its own backends. Returns the routers and their addresses, in
/// the order given.
pub fn region_routers(
    regions: &[(&str, f64, f64, &[TestBackend])],
) -> Vec<(switchyard::RouterHandle, SocketAddr)> {
    let addrs: Vec<SocketAddr> = regions.iter().map(|_| free_addr()).collect();
    let listed: String = regions
        .iter()
        .zip(&addrs)
        .map(|((name, lat, lon, _), addr)| {
            format!(
                "[[regions]]\nname = \"{name}\"\nlocation = {{ lat = {lat}, lon = {lon} }}\nendpoint = \"http://{addr}\"\n"
            )
        })
        .collect();
    let token = std::env::temp_dir().join(format!(
        "switchyard-sessions-regions-token-{}",
        std::process::id()
    ));
    std::fs::write(&token, TOKEN).unwrap();
    regions
        .iter()
        .zip(&addrs)
        .map(|((name, _, _, bs), addr)| {
            let members: Vec<String> = bs
                .iter()
                .map(|b| format!("{{ id = \"{}\", address = \"{}\" }}", b.id(), b.addr()))
                .collect();
            let text = format!(
                "[node]\nregion = \"{name}\"\nlisten = \"{addr}\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = 1\nshutdown_timeout = \"1s\"\nadmin_token_file = \"{}\"\n\
                 [log]\naccess = false\n\
                 [directory]\nprobe_interval = \"100ms\"\nprobe_timeout = \"200ms\"\nrise = 1\nfall = 2\n\
                 {listed}\
                 [[routes]]\nid = \"all\"\npath_prefix = \"/\"\npool = \"p\"\nretries = 1\n\
                 [[pools]]\nid = \"p\"\nhealth = {{ kind = \"none\" }}\nbackends = [{}]\n",
                token.display(),
                members.join(", ")
            );
            let config = Config::from_toml_str(&text)
                .unwrap_or_else(|err| panic!("invalid test config:\n{err}\n{text}"));
            (switchyard::start(config).expect("router starts"), *addr)
        })
        .collect()
}

/// A GET answered with JSON (e.g. a router's `/v1/regions`).
pub async fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let resp = client
        .request(
            http::Request::get(format!("http://{addr}{path}"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)
}
