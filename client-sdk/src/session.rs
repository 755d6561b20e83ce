//! WebSocket sessions that survive drains, backend deaths and region loss, losing no message
//! without saying so.
//!
//! A session keeps the client's session id across reconnects and follows the router's close
//! codes (`4001`/`4003` moved, `4002` backend lost, `1013` try later, `1008` refused; see
//! `docs/SDK.md`). It numbers the data messages it sends on each connection and keeps them in
//! a bounded replay buffer (`replay.rs`); a `moved; delivered=N` close says which
//! arrived, and the rest are re-sent first on the next connection. Where nothing says what
//! arrived, nothing is re-sent: the messages go back to the app ([`Event::Unconfirmed`]). When
//! to reconnect is [`crate::pacing::reconnect_delay`]'s answer. This module holds what the app
//! sees and the connection attempt; the session's task (one connection after another) is
//! `session/runner.rs`.
//!
//! Bounds: at most `send_queue` messages wait to be sent, `replay_buffer` (and
//! `replay_buffer_bytes`) are kept after sending, `event_buffer` events wait for the app — when
//! that is full the session stops reading its socket — and each socket write may take at most
//! `send_timeout`. This module never blocks the app: `send` only queues.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tracing::Instrument;

use crate::client::{Client, Region, SESSION_HEADER};
use crate::error::{Error, ErrorKind};
use crate::message::Message;
use crate::stream::RouterStream;

mod runner;
pub mod telemetry;

use runner::Runner;

type Ws = WebSocketStream<RouterStream>;

/// What happens to a session, in order: `Connected`, then `Message`s; on a drop
/// `Unconfirmed` (if anything may be missing), `Reconnecting` (once per attempt), `Resumed`;
/// at the end `Undelivered` (if anything was never sent) and `Closed`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The first connection is up.
    Connected {
        region: String,
        backend: Option<String>,
    },
    /// A text or binary message from the backend.
    Message(Message),
    /// Messages this session sent on the connection that just ended whose arrival nothing
    /// confirms (a killed backend or router, a dead path, a close without `delivered`). They
    /// are NOT re-sent: the app decides. `not_kept` counts earlier messages of that connection
    /// that may be missing too but had already left the replay buffer (see `replay_buffer`).
    Unconfirmed {
        messages: Vec<Message>,
        not_kept: u64,
    },
    /// The connection ended; the session reconnects after `delay` (attempt counts from 1).
    /// `code` is the close code that ended it, `None` for a dead path.
    Reconnecting {
        reason: String,
        attempt: u32,
        delay: Duration,
        code: Option<u16>,
    },
    /// Connected again, same session id. `recovered`: nothing the app sent can be missing.
    /// `resent`: messages re-sent (before any new one) because the router said they had not
    /// arrived.
    Resumed {
        region: String,
        backend: Option<String>,
        recovered: bool,
        resent: usize,
    },
    /// Messages `send()` accepted that were never sent (or re-sent) because the session ended
    /// for good; they come just before `Closed`.
    Undelivered { messages: Vec<Message> },
    /// The session is over for good.
    Closed { code: u16, reason: String },
}

/// A live session. Dropping it closes it like [`Session::close`], without telling anyone
/// what was not delivered.
///
/// ```no_run
/// # async fn run() -> Result<(), switchyard_client::Error> {
/// use switchyard_client::{Client, Event, Message};
/// let client = Client::builder().region("local", "http://127.0.0.1:8080").build()?;
/// let mut session = client.session("/ws/echo").await?;
/// session.send(Message::text("hello"))?;
/// while let Some(event) = session.next().await {
///     match event {
///         Event::Message(reply) => println!("{reply:?}"),
///         // Sent, but nothing says they arrived: the app decides whether to send them again.
///         Event::Unconfirmed { messages, .. } => println!("{} unconfirmed", messages.len()),
///         Event::Closed { code, reason } => println!("over: {code} {reason}"),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
pub struct Session {
    commands: mpsc::Sender<Message>,
    events: mpsc::Receiver<Event>,
    stop: watch::Sender<bool>,
    done: oneshot::Receiver<(Vec<Message>, u64)>,
    queue: usize,
}

impl Session {
    /// Queues a message: it is sent now, or after the reconnect under way. Never blocks. A full
    /// queue is [`ErrorKind::QueueFull`]; a session that is over is
    /// [`ErrorKind::SessionClosed`]. Once this returns `Ok`, the message is delivered or
    /// reported ([`Event::Unconfirmed`], [`Event::Undelivered`], or an error from `close`).
    pub fn send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.commands.try_send(msg.into()).map_err(|err| {
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

    /// The next event; `None` once the session is over and every event was read. While the
    /// app does not call this, at most `event_buffer` events wait and the session stops
    /// reading its socket.
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Closes the session (code 1000) after sending what is queued. `Ok` when the close
    /// handshake completed (everything sent reached the other side); otherwise
    /// [`ErrorKind::Undelivered`] with the messages that were not sent or not confirmed.
    /// Events not read yet are discarded. Takes at most about twice `send_timeout`.
    pub async fn close(self) -> Result<(), Error> {
        let Session {
            events, stop, done, ..
        } = self;
        let _ = stop.send(true);
        drop(events);
        match done.await {
            Ok((messages, not_kept)) if !messages.is_empty() || not_kept > 0 => Err(Error::new(
                ErrorKind::Undelivered { messages, not_kept },
                None,
                0,
                false,
            )),
            _ => Ok(()),
        }
    }
}

impl Client {
    /// Opens a WebSocket session on `path` (e.g. `/ws/echo`) through the first region that
    /// takes it; returns once connected, or an error within the client's `deadline`.
    pub async fn session(&self, path: &str) -> Result<Session, Error> {
        let config = &self.inner.config;
        let deadline = Instant::now() + config.deadline;
        let late = |region: Option<&str>, attempt| {
            Error::new(ErrorKind::Deadline(config.deadline), region, attempt, true)
        };
        if tokio::time::timeout_at(deadline, self.refresh_directory(false))
            .await
            .is_err()
        {
            return Err(late(None, 0));
        }
        let mut avoid = Vec::new();
        let mut attempt = 0;
        let (ws, region, backend) = loop {
            attempt += 1;
            let Some(region) = self.pick(&avoid) else {
                return Err(Error::new(ErrorKind::NoRegion, None, attempt, true));
            };
            let span = tracing::info_span!("session_attempt", attempt, region = %region.name, path);
            let tried = tokio::time::timeout_at(deadline, self.connect(&region, path))
                .instrument(span)
                .await;
            let Ok(tried) = tried else {
                return Err(late(Some(&region.name), attempt));
            };
            match tried {
                Ok((ws, backend)) => {
                    self.region_ok(&region);
                    break (ws, region, backend);
                }
                Err((kind, move_on, wait)) => {
                    if !kind.is_retryable() {
                        return Err(Error::new(kind, Some(&region.name), attempt, false));
                    }
                    if move_on {
                        avoid.push(region.name.clone());
                    }
                    if attempt >= config.max_attempts {
                        return Err(Error::new(kind, Some(&region.name), attempt, true));
                    }
                    let pause = wait
                        .map(|w| w.min(config.retry_after_cap))
                        .unwrap_or_else(|| config.backoff.delay(attempt - 1));
                    if Instant::now() + pause >= deadline {
                        return Err(late(Some(&region.name), attempt));
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        };
        let queue = config.send_queue.max(1);
        let (commands, rx) = mpsc::channel(queue);
        let (events_tx, events) = mpsc::channel(config.event_buffer.max(1));
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = oneshot::channel();
        let _ = events_tx.try_send(Event::Connected {
            region: region.name.clone(),
            backend: backend.clone(),
        });
        let runner = Runner::new(self.clone(), path, rx, events_tx, stop_rx, done_tx);
        tokio::spawn(runner.run(ws, region, backend));
        Ok(Session {
            commands,
            events,
            stop,
            done,
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
                // A router that does not connect, or connects and never answers the upgrade (a
                // stopping node's paused listener): the region's next router.
                Err(failed @ (ErrorKind::Connect(_) | ErrorKind::Timeout(_), _, _)) => {
                    last = Some(failed)
                }
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
}
