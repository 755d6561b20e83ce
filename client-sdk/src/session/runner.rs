//! A session's task: it owns the live connection, the replay buffer and the receiving end of
//! the send queue, relays one connection until it ends, settles what the end says about the
//! messages sent on it, and reconnects by the pacing rules — or ends the session, handing back
//! what it could not deliver. It never blocks the app: it talks to it only through the bounded
//! event channel, and stops reading its socket (not the app) when that channel is full.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tracing::Instrument;

use super::telemetry::{self, reason_label};
use super::{Event, Ws};
use crate::client::{Client, Region};
use crate::close::{CloseInfo, codes};
use crate::message::Message;
use crate::pacing::{Cause, PacingConfig, ReconnectAttempt, reconnect_delay};
use crate::replay::Replay;

/// A connection that ends sooner than this after opening counts toward a streak: the next
/// reconnect backs off, so a region that accepts and closes at once cannot make a tight loop.
const STABLE_AFTER: Duration = Duration::from_secs(1);

/// Why a connection ended.
enum End {
    /// The app closed or dropped the session; a frame that was about to be written (numbered,
    /// not yet in the socket) goes first when closing.
    Stop(Option<WsMessage>),
    Close(CloseInfo),
    Dead(String),
}

/// The session's task: owns the connection, the replay buffer and the queue's receiving end.
pub(crate) struct Runner {
    client: Client,
    path: String,
    pacing: PacingConfig,
    commands: mpsc::Receiver<Message>,
    events: mpsc::Sender<Event>,
    stop: watch::Receiver<bool>,
    /// Told what `close()` could not deliver.
    done: Option<oneshot::Sender<(Vec<Message>, u64)>>,
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
    pub(crate) fn new(
        client: Client,
        path: &str,
        commands: mpsc::Receiver<Message>,
        events: mpsc::Sender<Event>,
        stop: watch::Receiver<bool>,
        done: oneshot::Sender<(Vec<Message>, u64)>,
    ) -> Runner {
        let config = &client.inner.config;
        Runner {
            replay: Replay::new(config.replay_buffer, config.replay_buffer_bytes),
            pacing: PacingConfig::from(config),
            path: path.to_string(),
            commands,
            events,
            stop,
            done: Some(done),
            resend: VecDeque::new(),
            client,
        }
    }

    pub(crate) async fn run(
        mut self,
        mut ws: Ws,
        mut region: Arc<Region>,
        mut backend: Option<String>,
    ) {
        let mut streak = 0u32;
        loop {
            let opened = Instant::now();
            // The router this connection went to (the region's preferred one on success).
            let router = region.endpoint().to_string();
            let span = tracing::info_span!(
                "session_connection",
                region = %region.name,
                backend = backend.as_deref().unwrap_or("-"),
                path = %self.path
            );
            let end = self.pump(&mut ws).instrument(span).await;
            streak = match opened.elapsed() < STABLE_AFTER {
                true => streak.saturating_add(1),
                false => 0,
            };
            let outage = match end {
                End::Stop(leftover) => return self.finish(ws, leftover).await,
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
                    if close.code == codes::MOVED {
                        // Moved by a router that is draining or stopping: with several routers
                        // in the region, come back through another one first.
                        region.prefer_after(&router);
                    }
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
        // What this connection was given to re-send and did not get to stays behind what it
        // sent itself: those are older, and order is kept.
        let rest = std::mem::take(&mut self.resend);
        self.resend.extend(settled.resend);
        self.resend.extend(rest);
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
        telemetry::reconnecting(outage.code);
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
            if attempt > 1 && attempt.is_multiple_of(4) {
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
            let pacing_attempt = outage.streak.max(1).saturating_add(attempt - 1);
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
                    telemetry::resumed(outage.recovered, resent);
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
                    if !kind.is_retryable() {
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
            let _ = done.send((unsent, 0));
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
            let _ = done.send((Vec::new(), 0));
        }
    }

    /// The app closed (or dropped) the session while connected: send what is queued, close
    /// with 1000 and wait (bounded) for the other side's close, which confirms that everything
    /// sent arrived.
    async fn finish(mut self, mut ws: Ws, leftover: Option<WsMessage>) {
        let send_timeout = self.client.inner.config.send_timeout;
        let mut unsent = self.unsent().into_iter();
        // Everything still to write shares one send_timeout, then the close handshake gets
        // another: close() is bounded whatever the queue holds. A message whose write does
        // not finish is handed back below, with everything written here (kept apart from the
        // bounded replay buffer, so none can be evicted unreported).
        let mut written: Vec<Message> = Vec::new();
        let flush = async {
            if let Some(frame) = leftover {
                // Already numbered and kept: only its write is missing.
                ws.send(frame).await.ok()?;
            }
            for msg in unsent.by_ref() {
                written.push(msg.clone());
                ws.send(msg.into_ws()).await.ok()?;
            }
            Some(())
        };
        let broken = tokio::time::timeout(send_timeout, flush)
            .await
            .ok()
            .flatten()
            .is_none();
        let mut answer: Option<CloseInfo> = None;
        if !broken {
            let close = WsMessage::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "closed by the app".into(),
            }));
            let handshake = async {
                ws.send(close).await.ok()?;
                while let Some(frame) = ws.next().await {
                    if let Ok(WsMessage::Close(frame)) = frame {
                        return Some(frame.map_or(CloseInfo::new(1005, ""), |f| {
                            CloseInfo::new(u16::from(f.code), f.reason.to_string())
                        }));
                    }
                    frame.ok()?;
                }
                None
            };
            answer = tokio::time::timeout(send_timeout, handshake)
                .await
                .ok()
                .flatten();
        }
        let mut lost: Vec<Message> = Vec::new();
        let mut not_kept = 0;
        match answer {
            // The router was moving the session when the app closed it: its close says what
            // the backend read; the rest did not arrive (or nothing says) and goes back.
            Some(close) if matches!(close.code, codes::MOVED | codes::REGION_MOVED) => {
                let delivered = close.handoff().delivered;
                let before = self.replay.count();
                let settled = self.replay.settle(delivered);
                lost.extend(settled.resend);
                lost.extend(settled.unconfirmed);
                not_kept = settled.not_kept;
                for (i, msg) in written.into_iter().enumerate() {
                    let number = before + i as u64 + 1;
                    if delivered.is_none_or(|d| number > d) {
                        lost.push(msg);
                    }
                }
            }
            // Any other close answers ours: everything before it arrived.
            Some(_) => {}
            None => {
                (lost, not_kept) = self.replay.take_all();
                lost.append(&mut written);
            }
        }
        lost.extend(unsent);
        let _ = self.events.try_send(Event::Closed {
            code: 1000,
            reason: "closed by the app".to_string(),
        });
        if let Some(done) = self.done.take() {
            let _ = done.send((lost, not_kept));
        }
    }

    /// Relays one connection until it ends: re-sends first, then the app's messages one way
    /// and the backend's the other. A write under way does not stop the reads (an echo peer
    /// blocked on its own writes would otherwise never read ours); reads happen only while
    /// the app has room for an event. The pong and write clocks stop while the app is the slow
    /// one: the socket is not read then, so neither can be judged.
    async fn pump(&mut self, ws: &mut Ws) -> End {
        let config = self.client.inner.config.clone();
        let (mut sink, mut stream) = StreamExt::split(&mut *ws);
        let mut ping = tokio::time::interval(config.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        let mut ping_due = false;
        // When a ping went out with no frame since.
        let mut awaiting: Option<Instant> = None;
        let mut permit: Option<mpsc::OwnedPermit<Event>> = None;
        // The frame being written, whether it still needs a flush, and since when.
        let mut pending: Option<WsMessage> = None;
        let mut flushing = false;
        let mut writing: Option<Instant> = None;
        let mut stop = self.stop.clone();
        loop {
            if self.stopping() {
                return End::Stop(pending.take());
            }
            // The next write when none is under way: a due ping, then the re-sends; the app's
            // messages come through the select below.
            if writing.is_none() {
                if ping_due {
                    ping_due = false;
                    pending = Some(WsMessage::Ping(Vec::new().into()));
                    writing = Some(Instant::now());
                    awaiting.get_or_insert_with(Instant::now);
                } else if let Some(msg) = self.resend.pop_front() {
                    self.replay.sent(msg.clone());
                    pending = Some(msg.into_ws());
                    writing = Some(Instant::now());
                }
            }
            let reading = permit.is_some();
            let pong_deadline = awaiting.map(|t| t + config.ping_timeout);
            let write_deadline = writing.map(|t| t + config.send_timeout);
            tokio::select! {
                _ = stop.changed() => return End::Stop(pending.take()),
                msg = self.commands.recv(), if writing.is_none() => match msg {
                    Some(msg) => {
                        self.replay.sent(msg.clone());
                        pending = Some(msg.into_ws());
                        writing = Some(Instant::now());
                    }
                    None => return End::Stop(pending.take()),
                },
                written = std::future::poll_fn(|cx| drive(&mut sink, &mut pending, &mut flushing, cx)), if writing.is_some() => match written {
                    Ok(()) => writing = None,
                    Err(err) => return End::Dead(format!("send failed: {err}")),
                },
                room = self.events.clone().reserve_owned(), if permit.is_none() => match room {
                    Ok(room) => {
                        permit = Some(room);
                        // The app was the slow one: the clocks start again now.
                        if awaiting.is_some() {
                            awaiting = Some(Instant::now());
                        }
                        if writing.is_some() {
                            writing = Some(Instant::now());
                        }
                    }
                    Err(_) => return End::Stop(pending.take()),
                },
                frame = stream.next(), if reading => {
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
                _ = ping.tick() => ping_due = true,
                _ = sleep_until_some(pong_deadline), if pong_deadline.is_some() && reading => {
                    return End::Dead(format!("no pong within {:?}", config.ping_timeout));
                }
                _ = sleep_until_some(write_deadline), if write_deadline.is_some() && reading => {
                    return End::Dead(format!(
                        "a write did not finish within send_timeout ({:?}): the peer stopped reading",
                        config.send_timeout
                    ));
                }
            }
        }
    }
}

/// Sleeps until `at` (never called with `None`: the select guards it).
async fn sleep_until_some(at: Option<Instant>) {
    tokio::time::sleep_until(at.unwrap_or_else(Instant::now)).await
}

/// Drives one frame into the socket: ready, send, flush. Ready once it is flushed.
fn drive(
    sink: &mut futures_util::stream::SplitSink<&mut Ws, WsMessage>,
    pending: &mut Option<WsMessage>,
    flushing: &mut bool,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Result<(), WsError>> {
    use std::task::Poll;
    if pending.is_some() {
        match sink.poll_ready_unpin(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => return Poll::Pending,
        }
        if let Some(frame) = pending.take() {
            sink.start_send_unpin(frame)?;
            *flushing = true;
        }
    }
    if *flushing {
        match sink.poll_flush_unpin(cx) {
            Poll::Ready(Ok(())) => *flushing = false,
            other => return other,
        }
    }
    Poll::Ready(Ok(()))
}
