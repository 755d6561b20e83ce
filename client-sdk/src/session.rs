//! WebSocket sessions that survive drains, backend deaths and region loss, losing no message
//! without saying so.
//!
//! A session keeps the client's session id across reconnects and follows the router's close
//! codes (`4001`/`4003` moved, `4002` backend lost, `1013` try later, `1008` refused; see
//! `docs/SDK.md`). It numbers the data messages it sends on each connection and keeps them in
//! a bounded replay buffer ([`crate::replay`]); a `moved; delivered=N` close says which
//! arrived, and the rest are re-sent first on the next connection. Where nothing says what
//! arrived, nothing is re-sent: the messages go back to the app ([`Event::Unconfirmed`]). When
//! to reconnect is [`crate::pacing::reconnect_delay`]'s answer.
//!
//! Bounds: at most `send_queue` messages wait to be sent, `replay_buffer` (and
//! `replay_buffer_bytes`) are kept after sending, `event_buffer` events wait for the app — when
//! that is full the session stops reading its socket — and each socket write may take at most
//! `send_timeout`. This module never blocks the app: `send` only queues.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tracing::Instrument;

use crate::client::{Client, Region, SESSION_HEADER};
use crate::close::{CloseInfo, codes};
use crate::error::{Error, ErrorKind};
use crate::message::Message;
use crate::pacing::{Cause, PacingConfig, ReconnectAttempt, reconnect_delay};
use crate::replay::Replay;
use crate::stream::RouterStream;

type Ws = WebSocketStream<RouterStream>;

/// A connection that ends sooner than this after opening counts toward a streak: the next
/// reconnect backs off, so a region that accepts and closes at once cannot make a tight loop.
const STABLE_AFTER: Duration = Duration::from_secs(1);

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
pub struct Session {
    commands: mpsc::Sender<Message>,
    events: mpsc::Receiver<Event>,
    stop: watch::Sender<bool>,
    done: oneshot::Receiver<Vec<Message>>,
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
            Ok(messages) if !messages.is_empty() => Err(Error::new(
                ErrorKind::Undelivered { messages },
                None,
                0,
                false,
            )),
            _ => Ok(()),
        }
    }
}

/// Why a connection ended.
enum End {
    /// The app closed or dropped the session.
    Stop,
    Close(CloseInfo),
    Dead(String),
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
                    if !retryable_refusal(&kind) {
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
        let runner = Runner {
            replay: Replay::new(config.replay_buffer, config.replay_buffer_bytes),
            pacing: PacingConfig::from(config),
            client: self.clone(),
            path: path.to_string(),
            commands: rx,
            events: events_tx,
            stop: stop_rx,
            done: Some(done_tx),
            resend: VecDeque::new(),
        };
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
}

/// Whether a failed connection attempt is worth another: not a malformed request, and not a
/// handshake refusal that will not change (401, 403, 404…; 408 and 429 may).
fn retryable_refusal(kind: &ErrorKind) -> bool {
    match kind {
        ErrorKind::Invalid(_) => false,
        ErrorKind::Status { status, .. } => {
            !(400..500).contains(status) || matches!(status, 408 | 429)
        }
        _ => true,
    }
}

/// The metrics label of what ended a connection.
fn reason_label(code: Option<u16>) -> &'static str {
    match code {
        None => "dead",
        Some(codes::MOVED) => "moved",
        Some(codes::REGION_MOVED) => "region_moved",
        Some(codes::BACKEND_LOST) => "backend_lost",
        Some(codes::TRY_LATER) => "try_later",
        Some(_) => "backend_close",
    }
}

/// The session's task: owns the connection, the replay buffer and the queue's receiving end.
struct Runner {
    client: Client,
    path: String,
    pacing: PacingConfig,
    commands: mpsc::Receiver<Message>,
    events: mpsc::Sender<Event>,
    stop: watch::Receiver<bool>,
    /// Told what `close()` could not deliver.
    done: Option<oneshot::Sender<Vec<Message>>>,
    replay: Replay,
    /// To send first on the next connection (the router said they had not arrived).
    resend: VecDeque<Message>,
}

/// Why the session is reconnecting.
struct Outage {
    code: Option<u16>,
    reason: String,
    /// The `region=` hint of a `4003`.
    hint: Option<String>,
    retry_after: Option<Duration>,
    /// Connections in a row that ended soon after opening, this one included.
    streak: u32,
    /// Nothing sent on the lost connection can be missing.
    recovered: bool,
}

/// A fresh connection: the socket, its region and backend.
type Fresh = (Ws, Arc<Region>, Option<String>);

impl Runner {
    async fn run(mut self, mut ws: Ws, mut region: Arc<Region>, mut backend: Option<String>) {
        let mut streak = 0u32;
        loop {
            let opened = Instant::now();
            let span = tracing::info_span!(
                "session_connection",
                region = %region.name,
                backend = backend.as_deref().unwrap_or("-"),
                path = %self.path
            );
            let end = self.pump(&mut ws).instrument(span).await;
            streak = match opened.elapsed() < STABLE_AFTER {
                true => streak + 1,
                false => 0,
            };
            let outage = match end {
                End::Stop => return self.finish(ws).await,
                End::Dead(why) => {
                    tracing::debug!(region = %region.name, why, "session connection dead");
                    self.client.region_failed(&region);
                    let recovered = self.settle(None).await;
                    Outage {
                        code: None,
                        reason: why,
                        hint: None,
                        retry_after: None,
                        streak,
                        recovered,
                    }
                }
                End::Close(close) => {
                    let handoff = close.handoff();
                    let recovered = self.settle(handoff.delivered).await;
                    let router_code = matches!(
                        close.code,
                        codes::MOVED | codes::BACKEND_LOST | codes::REGION_MOVED | codes::TRY_LATER
                    );
                    if close.code == codes::REFUSED
                        || (!router_code && !self.client.inner.config.reconnect_on_backend_close)
                    {
                        return self.end_for_good(close.code, close.reason).await;
                    }
                    Outage {
                        code: Some(close.code),
                        reason: format!("{} {}", close.code, close.reason),
                        hint: handoff.region,
                        retry_after: handoff.retry_after,
                        streak,
                        recovered,
                    }
                }
            };
            drop(ws);
            match self.reconnect(outage, &region).await {
                Some((fresh, next, named)) => (ws, region, backend) = (fresh, next, named),
                None => return,
            }
        }
    }

    /// The connection ended and `delivered` is what the router said arrived: queue the
    /// re-sends, hand back what nothing confirms. Whether nothing can be missing.
    async fn settle(&mut self, delivered: Option<u64>) -> bool {
        let settled = self.replay.settle(delivered);
        self.resend.extend(settled.resend);
        if !settled.unconfirmed.is_empty() || settled.not_kept > 0 {
            self.emit(Event::Unconfirmed {
                messages: settled.unconfirmed,
                not_kept: settled.not_kept,
            })
            .await;
        }
        settled.recovered
    }

    /// An event for the app; waits while the app's buffer is full (the app being slow is
    /// back-pressure, not a reason to drop). `false`: the app is gone.
    async fn emit(&self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow() || self.stop.has_changed().is_err() || self.events.is_closed()
    }

    /// Reconnects by the pacing rules until a connection is up, the give-up window passes or
    /// the app closes the session (`None` then: the session is over, the app was told).
    async fn reconnect(&mut self, outage: Outage, from: &Arc<Region>) -> Option<Fresh> {
        let config = self.client.inner.config.clone();
        let lost = Instant::now();
        metrics::counter!("switchyard_client_reconnects_total", "reason" => reason_label(outage.code))
            .increment(1);
        let evacuated = outage.code == Some(codes::REGION_MOVED);
        let mut avoid: Vec<String> = match evacuated {
            true => vec![from.name.clone()],
            false => Vec::new(),
        };
        if evacuated {
            self.client.refresh_directory(true).await;
        }
        let mut cause = Cause::Close {
            code: outage.code.unwrap_or(1006),
            retry_after: outage.retry_after,
        };
        if outage.code.is_none() {
            cause = Cause::Dead;
        }
        let mut last_error = String::new();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if attempt > 1 && attempt % 4 == 0 {
                self.client.refresh_directory(true).await;
            }
            let target = match (attempt, &outage.hint) {
                (1, Some(hint)) if evacuated => {
                    self.region_named(hint).or_else(|| self.client.pick(&avoid))
                }
                _ => self.client.pick(&avoid),
            };
            // A 4003 with no other region to go to: back off on the evacuating one.
            if evacuated
                && let Some(t) = &target
                && t.name == from.name
                && let Cause::Close { retry_after, .. } = cause
            {
                cause = Cause::EvacuatingNowhereElse { retry_after };
            }
            let pacing_attempt = outage.streak.max(1) + attempt - 1;
            let delay = reconnect_delay(&cause, pacing_attempt, &self.pacing, fastrand::f64());
            let reason = match attempt {
                1 => outage.reason.clone(),
                _ => format!("{}; last attempt: {last_error}", outage.reason),
            };
            if lost.elapsed() + delay > config.reconnect_give_up {
                let code = outage.code.unwrap_or(1006);
                let why = format!(
                    "gave up reconnecting after {:?}: {reason}",
                    config.reconnect_give_up
                );
                self.end_for_good(code, why).await;
                return None;
            }
            let seen = ReconnectAttempt {
                attempt,
                delay,
                reason: reason.clone(),
                code: outage.code,
            };
            if let Some(hook) = &config.on_reconnect {
                hook(&seen);
            }
            let told = self
                .emit(Event::Reconnecting {
                    reason,
                    attempt,
                    delay,
                    code: outage.code,
                })
                .await;
            if !told || !self.pause(delay).await {
                self.give_back_on_stop().await;
                return None;
            }
            let Some(target) = target else {
                cause = Cause::AttemptFailed { retry_after: None };
                last_error = "every region's circuit breaker is open".to_string();
                continue;
            };
            let span = tracing::info_span!("session_attempt", attempt, region = %target.name, path = %self.path, cause = %reason_label(outage.code));
            let tried = {
                let mut stop = self.stop.clone();
                tokio::select! {
                    tried = self.client.connect(&target, &self.path).instrument(span) => Some(tried),
                    _ = stop.wait_for(|stop| *stop) => None,
                }
            };
            let Some(tried) = tried else {
                self.give_back_on_stop().await;
                return None;
            };
            match tried {
                Ok((ws, backend)) => {
                    self.client.region_ok(&target);
                    self.client
                        .inner
                        .stats
                        .reconnects
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let resent = self.resend.len();
                    metrics::counter!("switchyard_client_resumes_total", "recovered" => if outage.recovered { "true" } else { "false" })
                        .increment(1);
                    metrics::counter!("switchyard_client_resent_messages_total")
                        .increment(resent as u64);
                    self.emit(Event::Resumed {
                        region: target.name.clone(),
                        backend: backend.clone(),
                        recovered: outage.recovered,
                        resent,
                    })
                    .await;
                    return Some((ws, target, backend));
                }
                Err((kind, move_on, wait)) => {
                    tracing::debug!(region = %target.name, error = %kind, attempt, "session reconnect failed");
                    if !retryable_refusal(&kind) {
                        self.end_for_good(codes::REFUSED, format!("reconnect refused: {kind}"))
                            .await;
                        return None;
                    }
                    if move_on {
                        self.client.region_failed(&target);
                        avoid.push(target.name.clone());
                    }
                    last_error = kind.to_string();
                    cause = Cause::AttemptFailed { retry_after: wait };
                }
            }
        }
    }

    /// The region the router named, when it is known and its breaker allows it.
    fn region_named(&self, name: &str) -> Option<Arc<Region>> {
        let others: Vec<String> = self
            .client
            .region_list()
            .iter()
            .filter(|r| r.name != name)
            .map(|r| r.name.clone())
            .collect();
        self.client.pick(&others).filter(|r| r.name == name)
    }

    /// Sleeps `delay`; `false` if the app closed the session meanwhile.
    async fn pause(&mut self, delay: Duration) -> bool {
        if self.stopping() {
            return false;
        }
        let mut stop = self.stop.clone();
        let events = self.events.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => !self.stopping(),
            _ = stop.wait_for(|stop| *stop) => false,
            _ = events.closed() => false,
        }
    }

    /// Every message `send()` accepted that is not on a connection: the re-sends and the
    /// queue. Closes the queue first, so nothing can be accepted after.
    fn unsent(&mut self) -> Vec<Message> {
        self.commands.close();
        let mut out: Vec<Message> = self.resend.drain(..).collect();
        while let Ok(msg) = self.commands.try_recv() {
            out.push(msg);
        }
        out
    }

    /// The app closed the session while no connection was up: nothing queued can be sent.
    async fn give_back_on_stop(&mut self) {
        let unsent = self.unsent();
        if let Some(done) = self.done.take() {
            let _ = done.send(unsent);
        }
        let _ = self.events.try_send(Event::Closed {
            code: 1000,
            reason: "closed by the app".to_string(),
        });
    }

    /// The session ends for good on the server's word or after the give-up window: hand back
    /// what was never sent, then `Closed`.
    async fn end_for_good(&mut self, code: u16, reason: String) {
        let unsent = self.unsent();
        if !unsent.is_empty() {
            self.emit(Event::Undelivered { messages: unsent }).await;
        }
        self.emit(Event::Closed { code, reason }).await;
        if let Some(done) = self.done.take() {
            let _ = done.send(Vec::new());
        }
    }

    /// The app closed (or dropped) the session while connected: send what is queued, close
    /// with 1000 and wait (bounded) for the other side's close, which confirms that everything
    /// sent arrived.
    async fn finish(mut self, mut ws: Ws) {
        let send_timeout = self.client.inner.config.send_timeout;
        let mut unsent = self.unsent().into_iter();
        let mut broken = false;
        for msg in unsent.by_ref() {
            if self.write(&mut ws, msg).await.is_err() {
                broken = true;
                break;
            }
        }
        let mut confirmed = false;
        if !broken {
            let close = WsMessage::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "closed by the app".into(),
            }));
            let handshake = async {
                ws.send(close).await.ok()?;
                while let Some(frame) = ws.next().await {
                    if let Ok(WsMessage::Close(_)) = frame {
                        return Some(());
                    }
                    frame.ok()?;
                }
                None
            };
            confirmed = tokio::time::timeout(send_timeout, handshake)
                .await
                .ok()
                .flatten()
                .is_some();
        }
        let mut lost: Vec<Message> = Vec::new();
        if !confirmed {
            lost = self.replay.take_all().0;
        }
        lost.extend(unsent);
        let _ = self.events.try_send(Event::Closed {
            code: 1000,
            reason: "closed by the app".to_string(),
        });
        if let Some(done) = self.done.take() {
            let _ = done.send(lost);
        }
    }

    /// Sends one data message, numbered and kept for replay; bounded by `send_timeout`.
    async fn write(&mut self, ws: &mut Ws, msg: Message) -> Result<(), String> {
        self.replay.sent(msg.clone());
        let limit = self.client.inner.config.send_timeout;
        match tokio::time::timeout(limit, ws.send(msg.into_ws())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(format!("send failed: {err}")),
            Err(_) => Err(format!(
                "a write did not finish within send_timeout ({limit:?}): the peer stopped reading"
            )),
        }
    }

    /// Relays one connection until it ends: re-sends first, then the app's messages one way
    /// and the backend's the other. Reads only while the app has room for an event.
    async fn pump(&mut self, ws: &mut Ws) -> End {
        while let Some(msg) = self.resend.pop_front() {
            if let Err(why) = self.write(ws, msg).await {
                return End::Dead(why);
            }
        }
        let config = self.client.inner.config.clone();
        let mut ping = tokio::time::interval(config.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        // When a ping went out with no frame since; the liveness clock stops while the app is
        // the slow one (the socket is not read then, so no pong can be seen).
        let mut awaiting: Option<Instant> = None;
        let mut permit: Option<mpsc::OwnedPermit<Event>> = None;
        let mut stop = self.stop.clone();
        loop {
            if self.stopping() {
                return End::Stop;
            }
            let deadline = awaiting.map(|t| t + config.ping_timeout);
            tokio::select! {
                _ = stop.changed() => return End::Stop,
                msg = self.commands.recv() => match msg {
                    Some(msg) => {
                        if let Err(why) = self.write(ws, msg).await {
                            return End::Dead(why);
                        }
                    }
                    None => return End::Stop,
                },
                room = self.events.clone().reserve_owned(), if permit.is_none() => match room {
                    Ok(room) => {
                        permit = Some(room);
                        if awaiting.is_some() {
                            awaiting = Some(Instant::now());
                        }
                    }
                    Err(_) => return End::Stop,
                },
                frame = ws.next(), if permit.is_some() => {
                    awaiting = None;
                    match frame {
                        Some(Ok(WsMessage::Close(frame))) => {
                            let (code, reason) = frame.map_or((1005, String::new()), |CloseFrame { code, reason }| {
                                (u16::from(code), reason.to_string())
                            });
                            return End::Close(CloseInfo { code, reason });
                        }
                        Some(Ok(frame)) => {
                            if let (Some(msg), Some(room)) = (Message::from_ws(frame), permit.take()) {
                                room.send(Event::Message(msg));
                            }
                        }
                        Some(Err(err)) => return End::Dead(format!("connection broke: {err}")),
                        None => return End::Dead("connection ended without a close".to_string()),
                    }
                }
                _ = ping.tick() => {
                    if awaiting.is_none() {
                        awaiting = Some(Instant::now());
                    }
                    let sent = tokio::time::timeout(config.send_timeout, ws.send(WsMessage::Ping(Vec::new().into()))).await;
                    match sent {
                        Ok(Ok(())) => {}
                        Ok(Err(err)) => return End::Dead(format!("ping failed: {err}")),
                        Err(_) => return End::Dead(format!("a ping did not go out within send_timeout ({:?}): the peer stopped reading", config.send_timeout)),
                    }
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)).await }, if deadline.is_some() && permit.is_some() => {
                    return End::Dead(format!("no pong within {:?}", config.ping_timeout));
                }
            }
        }
    }
}
