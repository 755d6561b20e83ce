//! A live session's two ends and the two flows between them: relays until one side closes,
//! fails, goes quiet or the control plane moves the session, then closes both ends the way
//! each case needs.
//!
//! Close codes the router sends itself (the SDK knows them): `4001` moved to another backend or
//! node, `4003` moved to another region (both with a `moved; …` reason, `routing/handoff.rs`),
//! `4002` backend lost abnormally, `4000` idle, `1009` message too big, `1002` protocol error.
//! The router sends `1001` only to backends (when it moves a session or the client left);
//! every other close frame is the backend's (or the client's) and passes through unchanged,
//! as do pings and pongs: each endpoint answers the other's.
//!
//! The router places a close of its own only between frames. When a side fails while a frame
//! toward the other side is half passed (a backend that dies in the middle of a large
//! message), that side's connection is closed without a close frame: a frame cannot be
//! finished for the sender.
//!
//! Moving a session ([`CloseSession`]) is an ordered handoff: the backend is asked to close
//! first (1001), its frames still reach the client until its close frame arrives (at most
//! `[sessions] handoff_linger`), frames the client sends meanwhile are not read, and only
//! then is the client closed — with how many of its messages the backend read (`delivered`)
//! when the backend closed cleanly, so a client can re-send exactly the rest.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::flow::{Event, Flow};
use super::frame::{self, Rules, Sender, Violation};
use crate::routing::handoff::CloseSession;
use crate::routing::stats::SessionGuard;

/// Close code: the backend was lost abnormally; reconnect after a short jittered delay.
pub const CLOSE_BACKEND_LOST: u16 = 4002;
/// Close code to a backend: the client left, or the session moves elsewhere.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code to a client whose session sent nothing either way for the idle timeout.
pub const CLOSE_IDLE: u16 = 4000;
/// The code of an answering close when the close it answers had none.
const CLOSE_NORMAL: u16 = 1000;

/// How long a session waits for the other side's close frame after a close, before it drops
/// the connections anyway.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// How long bytes may wait to be written to a side that does not read (a zombie client whose
/// TCP window stays full); past it the side counts as gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A session's time limits.
#[derive(Debug, Clone, Copy)]
pub struct SessionTimers {
    /// How long a move waits for the backend's close (`[sessions] handoff_linger`).
    pub linger: Duration,
    /// How long the session may go without a frame either way (the route's `timeouts.idle`,
    /// like HAProxy's `timeout tunnel`).
    pub idle: Duration,
}

/// One end of a session after its handshake: the connection and the bytes read with the
/// handshake (the first frames, if the peer sent them at once).
pub struct End<S> {
    pub io: S,
    pub preread: Vec<u8>,
}

/// How the wait for the backend's close during a move ended.
enum Lingered {
    /// The backend closed cleanly: it read every message written to it.
    BackendClosed,
    /// The backend's connection failed, or it did not close within the linger.
    BackendLost,
    /// The client's connection is gone.
    ClientGone,
}

/// Why relaying ended.
enum Stop {
    /// The client's close frame reached the backend.
    ClientClosed,
    /// The backend's close frame reached the client.
    BackendClosed,
    /// The client broke the protocol or the size limit: it gets this code.
    ClientRefused(Violation),
    /// The client's connection is gone without a close.
    ClientGone,
    /// The backend's connection failed or broke the protocol.
    BackendLost(String),
    /// The backend sent a message over the limit: both sides get 1009.
    BackendTooBig(String),
    /// The control plane moves the session.
    Command(CloseSession),
    /// No frame either way for the idle timeout.
    Idle,
}

/// After one side's close passed to the other: relays the other side's answering close (and
/// whatever it still sends first) back through `answer`, from `other` to `closer`. A side that
/// ends or stays silent instead is answered for: the closer gets its own code back (RFC 6455
/// §5.5.1), as that side should have sent it, so the closer learns its close handshake
/// completed. `mask` for an answer toward a backend.
async fn complete_close<O, C>(
    answer: &mut Flow,
    closers_code: Option<u16>,
    other: &mut O,
    closer: &mut C,
    mask: Option<[u8; 4]>,
) where
    O: AsyncRead + Unpin,
    C: AsyncWrite + Unpin,
{
    let answered = poll_fn(|cx| answer.poll_relay(cx, other, closer));
    if !matches!(
        tokio::time::timeout(CLOSE_LINGER, answered).await,
        Ok(Event::Closed)
    ) {
        let code = closers_code.unwrap_or(CLOSE_NORMAL);
        answer.push(&frame::close_frame(code, "", mask));
        let written = poll_fn(|cx| answer.poll_write_out(cx, closer));
        let _ = tokio::time::timeout(CLOSE_LINGER, written).await;
    }
}

/// A session's ends and flows (`up`: client → backend, `down`: backend → client).
pub struct Session<C, B> {
    client: C,
    backend: B,
    up: Flow,
    down: Flow,
    /// Taken once it answers (a oneshot may not be polled again).
    commands: Option<oneshot::Receiver<CloseSession>>,
    guard: Option<SessionGuard>,
    timers: SessionTimers,
}

impl<C, B> Session<C, B>
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    /// `deflate`: `permessage-deflate` was negotiated end to end, so compressed messages
    /// (RSV1) pass. `max_message` bounds a message either way.
    pub fn new(
        client: End<C>,
        backend: End<B>,
        limits: (u64, bool),
        commands: oneshot::Receiver<CloseSession>,
        guard: SessionGuard,
        timers: SessionTimers,
    ) -> Session<C, B> {
        let (max_message, deflate) = limits;
        let rules = |from| Rules {
            from,
            max_message,
            deflate,
        };
        Session {
            up: Flow::new(rules(Sender::Client), client.preread),
            down: Flow::new(rules(Sender::Backend), backend.preread),
            client: client.io,
            backend: backend.io,
            commands: Some(commands),
            guard: Some(guard),
            timers,
        }
    }

    /// Relays, then closes both ends; returns when the session is over.
    pub async fn run(mut self) {
        let stop = self.relay().await;
        // The closing steps are a future of their own, boxed only now: an open session's
        // future holds just the session and its relay, not room for every closing step.
        Box::pin(self.close(stop)).await;
    }

    /// Closes both ends the way `stop` needs.
    async fn close(mut self, stop: Stop) {
        let (to_client, to_backend) = match stop {
            Stop::Command(close) => return self.hand_off(close).await,
            Stop::ClientClosed => {
                drop(self.guard.take());
                let code = self.up.close_code();
                return complete_close(
                    &mut self.down,
                    code,
                    &mut self.backend,
                    &mut self.client,
                    None,
                )
                .await;
            }
            Stop::BackendClosed => {
                drop(self.guard.take());
                let (code, mask) = (self.down.close_code(), Some(frame::mask_key()));
                return complete_close(
                    &mut self.up,
                    code,
                    &mut self.client,
                    &mut self.backend,
                    mask,
                )
                .await;
            }
            Stop::ClientRefused(violation) => (
                Some((violation.code, violation.reason)),
                Some((CLOSE_GOING_AWAY, "client failed".to_string())),
            ),
            Stop::ClientGone => (
                None,
                Some((CLOSE_GOING_AWAY, "client went away".to_string())),
            ),
            Stop::BackendLost(reason) => (Some((CLOSE_BACKEND_LOST, reason)), None),
            Stop::Idle => (
                Some((CLOSE_IDLE, "idle timeout".to_string())),
                Some((CLOSE_GOING_AWAY, "idle timeout".to_string())),
            ),
            Stop::BackendTooBig(reason) => (
                Some((
                    frame::CLOSE_TOO_BIG,
                    format!("backend sent a message too big: {reason}"),
                )),
                Some((frame::CLOSE_TOO_BIG, reason)),
            ),
        };
        // The session is over for placement and gauges now; the close handshakes below are
        // bookkeeping on sockets that carry no more data.
        drop(self.guard.take());
        self.finish(to_client, to_backend).await;
    }

    /// Relays both ways until one side closes, fails or goes quiet, or a command arrives.
    async fn relay(&mut self) -> Stop {
        let idle = self.timers.idle;
        // Reads note their time; the one timer is moved when it fires early, so a busy session
        // costs no timer work per frame. It is brought forward when a side stops taking bytes.
        let timer = tokio::time::sleep(idle);
        tokio::pin!(timer);
        poll_fn(|cx| {
            if let Some(commands) = &mut self.commands
                && let Poll::Ready(answer) = Pin::new(commands).poll(cx)
            {
                self.commands = None;
                // A closed channel (the actor gone) is no command; the actor's end stops
                // this future too.
                if let Ok(command) = answer {
                    return Poll::Ready(Stop::Command(command));
                }
            }
            if let Poll::Ready(event) = self.up.poll_relay(cx, &mut self.client, &mut self.backend)
            {
                return Poll::Ready(match event {
                    Event::Closed => Stop::ClientClosed,
                    Event::Refused(violation) => Stop::ClientRefused(violation),
                    Event::SourceGone => Stop::ClientGone,
                    Event::SinkGone => Stop::BackendLost("backend lost".to_string()),
                });
            }
            if let Poll::Ready(event) =
                self.down
                    .poll_relay(cx, &mut self.backend, &mut self.client)
            {
                return Poll::Ready(match event {
                    Event::Closed => Stop::BackendClosed,
                    Event::Refused(v) if v.code == frame::CLOSE_TOO_BIG => {
                        Stop::BackendTooBig(v.reason)
                    }
                    Event::Refused(v) => Stop::BackendLost(format!("backend lost: {}", v.reason)),
                    Event::SourceGone => Stop::BackendLost("backend lost".to_string()),
                    Event::SinkGone => Stop::ClientGone,
                });
            }
            let now = Instant::now();
            // A side that has not taken the bytes waiting for it within the send timeout is gone.
            if self
                .up
                .blocked_since()
                .is_some_and(|t| now >= t + SEND_TIMEOUT)
            {
                return Poll::Ready(Stop::BackendLost("backend stopped reading".to_string()));
            }
            if self
                .down
                .blocked_since()
                .is_some_and(|t| now >= t + SEND_TIMEOUT)
            {
                return Poll::Ready(Stop::ClientGone);
            }
            let quiet_until = self.up.read_at().max(self.down.read_at()) + idle;
            if now >= quiet_until {
                return Poll::Ready(Stop::Idle);
            }
            let stalled_at = [self.up.blocked_since(), self.down.blocked_since()]
                .into_iter()
                .flatten()
                .min()
                .map(|t| t + SEND_TIMEOUT);
            let due = stalled_at.map_or(quiet_until, |t| t.min(quiet_until));
            if timer.deadline() != due && (timer.is_elapsed() || due < timer.deadline()) {
                timer.as_mut().reset(due);
            }
            if timer.as_mut().poll(cx).is_ready() {
                // Due now (reset to a passed instant): look again at once.
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        })
        .await
    }

    /// Sends each side the router's close (when given, and only between frames), writes out
    /// what is queued, and waits a bounded time for each side's close or end.
    async fn finish(
        &mut self,
        to_client: Option<(u16, String)>,
        to_backend: Option<(u16, String)>,
    ) {
        if let Some((code, reason)) = to_client {
            self.down.push(&frame::close_frame(code, &reason, None));
        }
        if let Some((code, reason)) = to_backend {
            self.up
                .push(&frame::close_frame(code, &reason, Some(frame::mask_key())));
        }
        let (mut client_done, mut backend_done) = (false, false);
        let closing = poll_fn(|cx| {
            if !client_done {
                client_done = match self.down.poll_write_out(cx, &mut self.client) {
                    Poll::Ready(Ok(())) => self.up.poll_discard(cx, &mut self.client).is_ready(),
                    Poll::Ready(Err(_)) => true,
                    Poll::Pending => false,
                };
            }
            if !backend_done {
                backend_done = match self.up.poll_write_out(cx, &mut self.backend) {
                    Poll::Ready(Ok(())) => self.down.poll_discard(cx, &mut self.backend).is_ready(),
                    Poll::Ready(Err(_)) => true,
                    Poll::Pending => false,
                };
            }
            match client_done && backend_done {
                true => Poll::Ready(()),
                false => Poll::Pending,
            }
        });
        let _ = tokio::time::timeout(CLOSE_LINGER, closing).await;
    }

    /// Moves the session: the backend is asked to close first, its frames still reach the
    /// client until its close arrives (at most the linger), and then the client is told where
    /// to go and — when the backend closed cleanly — how many of its messages arrived.
    async fn hand_off(mut self, close: CloseSession) {
        // The close to the backend and the wait for its answer share one bound: a backend that
        // stopped reading cannot hold the move longer than the linger.
        let lingered = tokio::time::timeout(self.timers.linger, self.linger())
            .await
            .unwrap_or(Lingered::BackendLost);
        let delivered = self.up.messages();
        let (outcome, to_client) = match lingered {
            Lingered::BackendClosed => (
                "clean",
                Some((close.to.code(), close.reason(Some(delivered)))),
            ),
            Lingered::BackendLost => ("unconfirmed", Some((close.to.code(), close.reason(None)))),
            Lingered::ClientGone => ("client_left", None),
        };
        metrics::counter!("switchyard_session_handoffs_total", "cause" => close.cause, "outcome" => outcome)
            .increment(1);
        self.finish(to_client, None).await;
        // Only now: a stopping router waits for its sessions to reach zero, and the client
        // must have its close before the process may exit.
        drop(self.guard.take());
    }

    /// Asks the backend to close and relays its frames to the client until its close. The
    /// client is not read meanwhile: what it sends now is not forwarded, and a close it sends
    /// is answered with the move (and `delivered`) once the backend has closed, so the client
    /// learns what arrived even when it was closing itself.
    async fn linger(&mut self) -> Lingered {
        // What the client sent is written out first; a message cut in the middle of a frame
        // cannot be followed by a close, and then the backend cannot confirm what it read.
        let asked = frame::close_frame(CLOSE_GOING_AWAY, "session moving", Some(frame::mask_key()));
        if !self.up.push(&asked) {
            return Lingered::BackendLost;
        }
        let written = poll_fn(|cx| self.up.poll_write_out(cx, &mut self.backend));
        if !matches!(
            tokio::time::timeout(SEND_TIMEOUT, written).await,
            Ok(Ok(()))
        ) {
            return Lingered::BackendLost;
        }
        self.down.hold_close();
        let event = poll_fn(|cx| {
            self.down
                .poll_relay(cx, &mut self.backend, &mut self.client)
        });
        match event.await {
            Event::Closed => Lingered::BackendClosed,
            Event::SinkGone => Lingered::ClientGone,
            Event::SourceGone | Event::Refused(_) => Lingered::BackendLost,
        }
    }
}
