//! WebSocket sessions that survive drains, backend deaths and region loss.
//!
//! A session keeps the client's session id across reconnects and follows the router's close
//! codes: `4001` (backend draining) → reconnect at once; `4002` (backend lost) → after a short
//! jittered delay; `4003` (region evacuating) → the next region; `1013` → backoff; `1008`
//! (forbidden) → give up and report. Any other code is the backend's: reported, and reconnected
//! only if the client was built with `reconnect_on_backend_close`. A connection that stops
//! answering pings within `ping_timeout` is treated as dead (a zombie whose TCP never broke).
//! Messages sent while reconnecting wait in a bounded queue; a full queue is an error, never a
//! silent loss.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::client::{Client, Region, SESSION_HEADER};
use crate::error::{Error, ErrorKind};
use crate::stream::RouterStream;

type Ws = WebSocketStream<RouterStream>;

/// What happens to a session, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The first connection is up.
    Connected {
        region: String,
        backend: Option<String>,
    },
    /// A text or binary message from the backend.
    Message(Message),
    /// The connection ended; the session reconnects (attempt counts from 1).
    Reconnecting { reason: String, attempt: u32 },
    /// Connected again, same session id.
    Resumed {
        region: String,
        backend: Option<String>,
    },
    /// The session is over for good.
    Closed { code: u16, reason: String },
}

enum Command {
    Send(Message),
    Close,
}

/// A live session. Dropping it closes the session.
pub struct Session {
    commands: mpsc::Sender<Command>,
    events: mpsc::UnboundedReceiver<Event>,
    queue: usize,
}

impl Session {
    /// Queues a message; it is sent now, or after the reconnect under way. A full queue is
    /// [`ErrorKind::QueueFull`].
    pub fn send(&self, msg: Message) -> Result<(), Error> {
        self.commands.try_send(Command::Send(msg)).map_err(|err| {
            let kind = match err {
                mpsc::error::TrySendError::Full(_) => ErrorKind::QueueFull(self.queue),
                mpsc::error::TrySendError::Closed(_) => ErrorKind::SessionClosed {
                    code: 1000,
                    reason: "the session is over".to_string(),
                },
            };
            Error::new(kind, None, 0, false)
        })
    }

    /// The next event; `None` once the session is over and every event was read.
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Closes the session (code 1000).
    pub async fn close(self) {
        let _ = self.commands.send(Command::Close).await;
    }
}

/// Why a connection ended.
enum End {
    User,
    Close(u16, String),
    Dead(String),
}

impl Client {
    /// Opens a WebSocket session on `path` (e.g. `/ws/echo`) through the first region that
    /// takes it; returns once connected.
    pub async fn session(&self, path: &str) -> Result<Session, Error> {
        self.refresh_directory(false).await;
        let mut avoid = Vec::new();
        let mut attempt = 0;
        let (ws, region, backend) = loop {
            attempt += 1;
            let Some(region) = self.pick(&avoid) else {
                return Err(Error::new(ErrorKind::NoRegion, None, attempt, true));
            };
            match self.connect(&region, path).await {
                Ok((ws, backend)) => {
                    self.region_ok(&region);
                    break (ws, region, backend);
                }
                Err((kind, move_on, wait)) => {
                    if move_on {
                        avoid.push(region.name.clone());
                    }
                    if attempt >= self.inner.config.max_attempts {
                        return Err(Error::new(kind, Some(&region.name), attempt, true));
                    }
                    let pause =
                        wait.unwrap_or_else(|| self.inner.config.backoff.delay(attempt - 1));
                    tokio::time::sleep(pause.min(self.inner.config.retry_after_cap)).await;
                }
            }
        };
        let queue = self.inner.config.send_queue.max(1);
        let (commands, rx) = mpsc::channel(queue);
        let (events_tx, events) = mpsc::unbounded_channel();
        let _ = events_tx.send(Event::Connected {
            region: region.name.clone(),
            backend,
        });
        let client = self.clone();
        let path = path.to_string();
        tokio::spawn(async move { client.run(path, ws, region, rx, events_tx).await });
        Ok(Session {
            commands,
            events,
            queue,
        })
    }

    /// One connection attempt at `region`: its endpoints in turn (a failed connect moves to
    /// the next), TCP then TLS for `https://` endpoints (`wss://`), then the WebSocket
    /// handshake. The WebSocket and its backend, or what failed, whether to try another
    /// region, and a server-given wait. A TLS failure and a handshake refused with 401, 403
    /// or 404 are final (`ErrorKind::is_retryable` is false) and say nothing against the
    /// region.
    async fn connect(
        &self,
        region: &Region,
        path: &str,
    ) -> Result<(Ws, Option<String>), (ErrorKind, bool, Option<Duration>)> {
        let mut last = None;
        for (index, endpoint) in region.endpoints_in_turn() {
            match self.connect_at(endpoint, path).await {
                Ok(connected) => {
                    region.prefer(index);
                    return Ok(connected);
                }
                Err(failed @ (ErrorKind::Connect(_), _, _)) => last = Some(failed),
                Err(failed) => return Err(failed),
            }
        }
        Err(last.unwrap_or((
            ErrorKind::Connect(format!("region {} has no endpoint", region.name)),
            true,
            None,
        )))
    }

    /// [`Client::connect`] at one router endpoint.
    async fn connect_at(
        &self,
        endpoint: &str,
        path: &str,
    ) -> Result<(Ws, Option<String>), (ErrorKind, bool, Option<Duration>)> {
        let invalid = |why: String| (ErrorKind::Invalid(why), false, None);
        let (tls, url) = match endpoint.split_once("://") {
            Some(("https" | "wss", rest)) => (true, format!("wss://{rest}{path}")),
            Some(("http" | "ws", rest)) => (false, format!("ws://{rest}{path}")),
            _ => {
                return Err(invalid(format!(
                    "endpoint {endpoint:?}: expected http:// or https://"
                )));
            }
        };
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|err| invalid(format!("{url}: {err}")))?;
        if let Some(token) = self.session_id()
            && let Ok(v) = token.parse()
        {
            request.headers_mut().insert(SESSION_HEADER, v);
        }
        let uri = request.uri().clone();
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let config = &self.inner.config;
        let attempt = async {
            let tcp = tokio::time::timeout(
                config.connect_timeout,
                TcpStream::connect((host.as_str(), port)),
            )
            .await
            .map_err(|_| {
                // A connect failure like any other: the region's next router is tried.
                let why = format!(
                    "{endpoint}: no connection within {:?}",
                    config.connect_timeout
                );
                (ErrorKind::Connect(why), true, None)
            })?
            .map_err(|err| (ErrorKind::Connect(format!("{endpoint}: {err}")), true, None))?;
            let _ = tcp.set_nodelay(true);
            let stream = match tls {
                false => RouterStream::Plain(tcp),
                true => {
                    let name =
                        rustls::pki_types::ServerName::try_from(host.clone()).map_err(|err| {
                            invalid(format!("{endpoint}: not a TLS server name: {err}"))
                        })?;
                    let connector = tokio_rustls::TlsConnector::from(self.inner.ws_tls.clone());
                    let handshake =
                        tokio::time::timeout(config.connect_timeout, connector.connect(name, tcp))
                            .await
                            .map_err(|_| {
                                let why = format!(
                                    "{endpoint}: no TLS handshake within {:?}",
                                    config.connect_timeout
                                );
                                (ErrorKind::Connect(why), true, None)
                            })?;
                    match handshake {
                        Ok(stream) => RouterStream::Tls(Box::new(stream)),
                        Err(err) => {
                            return Err(match crate::tls::tls_failure(&err) {
                                Some(reason) => (
                                    ErrorKind::Tls {
                                        host: crate::client::host_of(endpoint),
                                        reason,
                                    },
                                    false,
                                    None,
                                ),
                                None => (
                                    ErrorKind::Connect(format!("{endpoint}: TLS: {err}")),
                                    true,
                                    None,
                                ),
                            });
                        }
                    }
                }
            };
            tokio_tungstenite::client_async(request, stream)
                .await
                .map_err(|err| match err {
                    WsError::Http(refusal) => {
                        let status = refusal.status().as_u16();
                        let header = |name: &str| {
                            refusal
                                .headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string)
                        };
                        let router_error = header("x-switchyard-error");
                        let wait =
                            header("retry-after").and_then(|v| crate::retry_after::parse(&v));
                        let move_on = matches!(
                            router_error.as_deref(),
                            Some("no_healthy_backend" | "overloaded" | "no_route")
                        );
                        (
                            ErrorKind::Status {
                                status,
                                router_error,
                            },
                            move_on,
                            wait,
                        )
                    }
                    other => (ErrorKind::Transport(other.to_string()), false, None),
                })
        };
        let (ws, answer) = tokio::time::timeout(config.attempt_timeout, attempt)
            .await
            .map_err(|_| (ErrorKind::Timeout(config.attempt_timeout), true, None))??;
        self.remember_session(answer.headers());
        let backend = answer
            .headers()
            .get("x-backend-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((ws, backend))
    }

    /// The session's life: pump, and reconnect by the close codes.
    async fn run(
        self,
        path: String,
        mut ws: Ws,
        mut region: Arc<Region>,
        mut commands: mpsc::Receiver<Command>,
        events: mpsc::UnboundedSender<Event>,
    ) {
        let mut unsent: Option<Message> = None;
        // Connections that end within a second of opening, in a row: each waits longer
        // before the next reconnect, so a region that accepts and closes at once (or two
        // regions sending a client to each other) cannot make a tight loop.
        let mut quick_ends = 0u32;
        loop {
            let opened = Instant::now();
            let end = pump(
                &mut ws,
                &mut commands,
                &events,
                &mut unsent,
                &self.inner.config,
            )
            .await;
            quick_ends = match opened.elapsed() < Duration::from_secs(1) {
                true => quick_ends + 1,
                false => 0,
            };
            let (reason, mut avoid, first_wait) = match end {
                End::User => {
                    let _ = ws.close(None).await;
                    let _ = events.send(Event::Closed {
                        code: 1000,
                        reason: "closed by the app".to_string(),
                    });
                    return;
                }
                End::Close(4001, why) => (format!("4001 {why}"), vec![], Duration::ZERO),
                End::Close(4002, why) => (
                    format!("4002 {why}"),
                    vec![],
                    Duration::from_millis(fastrand::u64(50..500)),
                ),
                End::Close(4003, why) => (
                    format!("4003 {why}"),
                    vec![region.name.clone()],
                    Duration::ZERO,
                ),
                End::Close(1013, why) => (
                    format!("1013 {why}"),
                    vec![],
                    self.inner.config.backoff.delay(2),
                ),
                End::Close(code, why)
                    if code == 1008 || !self.inner.config.reconnect_on_backend_close =>
                {
                    let _ = events.send(Event::Closed { code, reason: why });
                    return;
                }
                End::Close(code, why) => (
                    format!("{code} {why}"),
                    vec![],
                    self.inner.config.backoff.delay(1),
                ),
                End::Dead(why) => {
                    self.region_failed(&region);
                    (why, vec![], Duration::from_millis(fastrand::u64(0..200)))
                }
            };
            let mut attempt = 0u32;
            let mut pause = match quick_ends {
                0 | 1 => first_wait,
                n => first_wait.max(self.inner.config.backoff.delay(n)),
            };
            loop {
                attempt += 1;
                let _ = events.send(Event::Reconnecting {
                    reason: reason.clone(),
                    attempt,
                });
                tokio::time::sleep(pause).await;
                if commands.is_closed() && events.is_closed() {
                    return;
                }
                if attempt % 4 == 0 {
                    self.refresh_directory(true).await;
                }
                let Some(next) = self.pick(&avoid) else {
                    pause = self.inner.config.backoff.delay(attempt);
                    continue;
                };
                match self.connect(&next, &path).await {
                    Ok((fresh, backend)) => {
                        self.region_ok(&next);
                        self.inner
                            .stats
                            .reconnects
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let _ = events.send(Event::Resumed {
                            region: next.name.clone(),
                            backend,
                        });
                        ws = fresh;
                        region = next;
                        break;
                    }
                    Err((kind, move_on, wait)) => {
                        tracing::debug!(region = %next.name, error = %kind, attempt, "session reconnect failed");
                        if move_on {
                            self.region_failed(&next);
                            avoid.push(next.name.clone());
                        }
                        pause = wait
                            .map(|w| w.min(self.inner.config.retry_after_cap))
                            .unwrap_or_else(|| self.inner.config.backoff.delay(attempt));
                    }
                }
            }
        }
    }
}

/// Relays one connection until it ends.
async fn pump(
    ws: &mut Ws,
    commands: &mut mpsc::Receiver<Command>,
    events: &mpsc::UnboundedSender<Event>,
    unsent: &mut Option<Message>,
    config: &crate::client::ClientConfig,
) -> End {
    if let Some(msg) = unsent.take()
        && let Err(err) = ws.send(msg.clone()).await
    {
        *unsent = Some(msg);
        return End::Dead(format!("send failed: {err}"));
    }
    let mut ping = tokio::time::interval(config.ping_interval);
    ping.tick().await;
    let mut awaiting: Option<Instant> = None;
    loop {
        let deadline = awaiting.map(|t| t + config.ping_timeout);
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Send(msg)) => {
                    if let Err(err) = ws.send(msg.clone()).await {
                        *unsent = Some(msg);
                        return End::Dead(format!("send failed: {err}"));
                    }
                }
                Some(Command::Close) | None => return End::User,
            },
            frame = ws.next() => {
                awaiting = None;
                match frame {
                    Some(Ok(Message::Close(frame))) => {
                        let (code, reason) = frame.map_or((1005, String::new()), |CloseFrame { code, reason }| {
                            (u16::from(code), reason.to_string())
                        });
                        return End::Close(code, reason);
                    }
                    Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                        let _ = events.send(Event::Message(msg));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(err)) => return End::Dead(format!("connection broke: {err}")),
                    None => return End::Dead("connection ended without a close".to_string()),
                }
            }
            _ = ping.tick() => {
                if awaiting.is_none() {
                    awaiting = Some(Instant::now());
                }
                if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return End::Dead("ping failed".to_string());
                }
            }
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() => {
                return End::Dead(format!("no pong within {:?}", config.ping_timeout));
            }
        }
    }
}
