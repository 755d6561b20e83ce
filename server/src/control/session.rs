//! `SessionActor`: one per live WebSocket session. Owns the session's two ends — the client's
//! upgraded connection and the backend's — and pumps frames between them on the worker thread
//! that accepted the client (no frame crosses threads). It obeys [`CloseSession`], which is how
//! drains and shutdowns move sessions.
//!
//! Both ends are tokio-tungstenite connections with small read buffers and no write buffer, so
//! an idle session holds about 1 KiB of buffer per end (PERF-NOTES: actix-web's own WebSocket
//! side keeps 16 KiB per connection whether data moves or not).
//!
//! Close codes the router sends itself (the SDK knows them): `4001` moved to another backend or
//! node, `4003` moved to another region (both with a `moved; …` reason, `routing/handoff.rs`),
//! `4002` backend lost abnormally, `1009` message too big, `1002`/`1007` protocol errors. The
//! router sends `1001` only to backends (when it moves a session or the client left); every
//! other close code is the backend's (or the client's) and passes through unchanged. Each end
//! answers pings itself (tungstenite does) and the pings and pongs are also relayed, so an
//! endpoint may see one extra pong — harmless (RFC 6455 §5.5.3).
//!
//! Moving a session ([`CloseSession`]) is an ordered handoff: the backend is asked to close
//! first (1001), its frames still reach the client until its close frame arrives (at most
//! `[sessions] handoff_linger`), frames the client sends meanwhile are not forwarded, and only
//! then is the client closed — with how many of its messages the backend read (`delivered`)
//! when the backend closed cleanly, so a client can re-send exactly the rest.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use uuid::Uuid;

pub use crate::routing::CloseSession;
use crate::routing::PoolHandle;
use crate::routing::handoff::MAX_REASON_BYTES;
use crate::routing::stats::SessionGuard;
use crate::session::Store;
use crate::upstream::h1::BackendStream;

pub use crate::routing::handoff::{CLOSE_MOVE_REGION, CLOSE_MOVED};
/// Close code: the backend was lost abnormally; reconnect after a short jittered delay.
pub const CLOSE_BACKEND_LOST: u16 = 4002;
/// Close code to a backend: the client left, or the session moves elsewhere.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code to a client whose session sent nothing either way for the idle timeout.
pub const CLOSE_IDLE: u16 = 4000;

/// How long a session waits for the other side's close frame after sending its own, before
/// it drops the connection anyway.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// How long one frame may wait to be written to a side that does not read (a zombie client
/// whose TCP window stays full); past it the side counts as gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SessionActor<C> {
    pump: Option<Pump<C>>,
    commands: mpsc::Sender<CloseSession>,
    /// A sticky session's record, kept from expiring while the session is held.
    record: Option<(Arc<Store>, Uuid)>,
    /// Where the session is listed for drains: its pool, backend and number there.
    listing: (Arc<PoolHandle>, Arc<str>, Option<u64>),
}

struct Pump<C> {
    client: WebSocketStream<C>,
    backend: WebSocketStream<BackendStream>,
    commands: mpsc::Receiver<CloseSession>,
    guard: Option<SessionGuard>,
    /// Data messages from the client written to the backend on this connection.
    delivered: u64,
    timers: SessionTimers,
}

/// A session's time limits.
#[derive(Debug, Clone, Copy)]
pub struct SessionTimers {
    /// How long a move waits for the backend's close (`[sessions] handoff_linger`).
    pub linger: Duration,
    /// How long the session may go without a frame either way (the route's
    /// `timeouts.idle`, like HAProxy's `timeout tunnel`); a message left half-sent counts
    /// as nothing, so an unfinished fragmented message is cut here too.
    pub idle: Duration,
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

/// Why the frame loop ended.
enum End {
    /// The client sent a close frame (already answered by its end).
    ClientClosed(Option<CloseFrame>),
    /// The backend sent a close frame (already answered by its end).
    BackendClosed(Option<CloseFrame>),
    /// The client broke the protocol or a limit: it gets this code.
    ClientFailed(u16, String),
    /// The client's connection is gone without a close.
    ClientGone,
    /// The backend's connection failed or broke the protocol.
    BackendLost(String),
    /// The backend sent a message over the limit: both sides get 1009.
    BackendTooBig(String),
    /// The control plane closes the session.
    Command(CloseSession),
    /// No frame either way for the idle timeout.
    Idle,
}

impl<C> SessionActor<C>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    pub fn new(
        client: WebSocketStream<C>,
        backend: WebSocketStream<BackendStream>,
        guard: SessionGuard,
        record: Option<(Arc<Store>, Uuid)>,
        pool: Arc<PoolHandle>,
        backend_id: Arc<str>,
        timers: SessionTimers,
    ) -> SessionActor<C> {
        let (commands, rx) = mpsc::channel(1);
        SessionActor {
            record,
            listing: (pool, backend_id, None),
            pump: Some(Pump {
                client,
                backend,
                commands: rx,
                guard: Some(guard),
                delivered: 0,
                timers,
            }),
            commands,
        }
    }
}

impl<C> Actor for SessionActor<C>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (pool, backend, number) = &mut self.listing;
        *number = Some(pool.sessions.join(backend, ctx.address().recipient()));
        if let Some((store, id)) = self.record.clone() {
            // A held WebSocket session is a real viewer: touched now, its record is confirmed
            // (kept for the full TTL in a shared store). Then the shared copy is refreshed
            // once per quarter TTL (the store decides).
            store.touch(id);
            let every = (store.ttl() / 8).max(Duration::from_secs(1));
            ctx.run_interval(every, move |_, _| store.touch(id));
        }
        if let Some(pump) = self.pump.take() {
            ctx.spawn(
                pump.run()
                    .into_actor(self)
                    .map(|_, _, ctx: &mut Context<Self>| ctx.stop()),
            );
        }
    }
}

impl<C> SessionActor<C> {
    fn unlist(&mut self) {
        let (pool, backend, number) = &mut self.listing;
        if let Some(number) = number.take() {
            pool.sessions.leave(backend, number);
        }
    }
}

impl<C> Drop for SessionActor<C> {
    fn drop(&mut self) {
        self.unlist();
    }
}

impl<C> Handler<CloseSession> for SessionActor<C>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    type Result = ();

    fn handle(&mut self, msg: CloseSession, _: &mut Context<Self>) {
        // One close is enough; a second one while the first is under way changes nothing.
        let _ = self.commands.try_send(msg);
    }
}

fn close_frame(code: u16, reason: &str) -> WsMessage {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    WsMessage::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..end].to_string().into(),
    }))
}

/// Sends one message, bounded by [`SEND_TIMEOUT`]; `false` when the side is gone.
async fn send<S>(to: &mut WebSocketStream<S>, msg: WsMessage) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, to.send(msg)).await,
        Ok(Ok(()))
    )
}

/// Sends our close frame (if any), flushes the automatic close reply tungstenite may have
/// queued, and waits a bounded time for the other side's close, then drops the connection.
/// Whatever the peer still sends meanwhile (the rest of an oversized message) is read and
/// discarded: closing a socket with unread data resets it, and the reset could destroy our
/// close frame before the peer reads it.
async fn finish<S>(side: &mut WebSocketStream<S>, close: Option<WsMessage>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let closing = async {
        if let Some(close) = close
            && side.send(close).await.is_err()
        {
            return;
        }
        let _ = side.flush().await;
        while let Some(Ok(_)) = side.next().await {}
        let mut scratch = [0u8; 1024];
        while let Ok(1..) = side.get_mut().read(&mut scratch).await {}
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, closing).await;
}

impl<C> Pump<C>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    async fn run(mut self) {
        let (to_client, to_backend) = match self.relay().await {
            End::Command(close) => return self.hand_off(close).await,
            End::ClientClosed(frame) => (None, Some(WsMessage::Close(frame))),
            End::BackendClosed(frame) => (Some(WsMessage::Close(frame)), None),
            End::ClientFailed(code, reason) => (
                Some(close_frame(code, &reason)),
                Some(close_frame(CLOSE_GOING_AWAY, "client failed")),
            ),
            End::ClientGone => (
                None,
                Some(close_frame(CLOSE_GOING_AWAY, "client went away")),
            ),
            End::BackendLost(reason) => (Some(close_frame(CLOSE_BACKEND_LOST, &reason)), None),
            End::Idle => (
                Some(close_frame(CLOSE_IDLE, "idle timeout")),
                Some(close_frame(CLOSE_GOING_AWAY, "idle timeout")),
            ),
            End::BackendTooBig(reason) => (
                Some(close_frame(
                    1009,
                    &format!("backend sent a message too big: {reason}"),
                )),
                Some(close_frame(1009, &reason)),
            ),
        };
        // The session is over for placement and gauges now; the close handshakes below are
        // bookkeeping on sockets that carry no more data.
        drop(self.guard.take());
        tokio::join!(
            finish(&mut self.client, to_client),
            finish(&mut self.backend, to_backend)
        );
    }

    /// Relays frames both ways until one side closes, fails or a command arrives.
    async fn relay(&mut self) -> End {
        let idle = self.timers.idle;
        // Any frame either way is activity. A frame only notes the time; the one timer is
        // moved when it fires early, so a busy session costs no timer work per frame.
        let mut active = tokio::time::Instant::now();
        let quiet = tokio::time::sleep(idle);
        tokio::pin!(quiet);
        loop {
            tokio::select! {
                _ = &mut quiet => {
                    let due = active + idle;
                    if tokio::time::Instant::now() >= due {
                        return End::Idle;
                    }
                    quiet.as_mut().reset(due);
                    continue;
                }
                msg = self.client.next() => match msg {
                    Some(Ok(WsMessage::Close(frame))) => return End::ClientClosed(frame),
                    Some(Ok(WsMessage::Frame(_))) => {}
                    Some(Ok(msg)) => {
                        let data = matches!(msg, WsMessage::Text(_) | WsMessage::Binary(_));
                        if !send(&mut self.backend, msg).await {
                            return End::BackendLost("backend lost".to_string());
                        }
                        self.delivered += u64::from(data);
                    }
                    Some(Err(WsError::Capacity(err))) => return End::ClientFailed(1009, err.to_string()),
                    Some(Err(WsError::Protocol(err))) => return End::ClientFailed(1002, err.to_string()),
                    Some(Err(WsError::Utf8(_))) => return End::ClientFailed(1007, "invalid UTF-8 in a text message".to_string()),
                    Some(Err(_)) | None => return End::ClientGone,
                },
                msg = self.backend.next() => match msg {
                    Some(Ok(WsMessage::Close(frame))) => return End::BackendClosed(frame),
                    Some(Ok(WsMessage::Frame(_))) => {}
                    Some(Ok(msg)) => {
                        if !send(&mut self.client, msg).await {
                            return End::ClientGone;
                        }
                    }
                    Some(Err(WsError::Capacity(err))) => return End::BackendTooBig(err.to_string()),
                    Some(Err(_)) | None => return End::BackendLost("backend lost".to_string()),
                },
                Some(command) = self.commands.recv() => return End::Command(command),
            }
            active = tokio::time::Instant::now();
        }
    }
}

impl<C> Pump<C>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    /// Moves the session: the backend is asked to close first, its frames still reach the
    /// client until its close arrives (at most the linger), and then the client is told where
    /// to go and — when the backend closed cleanly — how many of its messages arrived.
    async fn hand_off(mut self, close: CloseSession) {
        // The close to the backend and the wait for its answer share one bound: a backend that
        // stopped reading cannot hold the move longer than the linger.
        let linger = self.timers.linger;
        let ask_and_wait = async {
            if !send(
                &mut self.backend,
                close_frame(CLOSE_GOING_AWAY, "session moving"),
            )
            .await
            {
                return Lingered::BackendLost;
            }
            self.linger().await
        };
        let lingered = tokio::time::timeout(linger, ask_and_wait)
            .await
            .unwrap_or(Lingered::BackendLost);
        let (outcome, to_client) = match lingered {
            Lingered::BackendClosed => (
                "clean",
                Some(close_frame(
                    close.to.code(),
                    &close.reason(Some(self.delivered)),
                )),
            ),
            Lingered::BackendLost => (
                "unconfirmed",
                Some(close_frame(close.to.code(), &close.reason(None))),
            ),
            Lingered::ClientGone => ("client_left", None),
        };
        metrics::counter!("switchyard_session_handoffs_total", "cause" => close.cause, "outcome" => outcome)
            .increment(1);
        tokio::join!(
            finish(&mut self.client, to_client),
            finish(&mut self.backend, None)
        );
        // Only now: a stopping router waits for its sessions to reach zero, and the client
        // must have its close before the process may exit.
        drop(self.guard.take());
    }

    /// Relays the backend's frames to the client until the backend's close. The client is not
    /// read meanwhile: what it sends now is not forwarded, and a close it sends is answered
    /// with the move (and `delivered`) once the backend has closed, so the client learns what
    /// arrived even when it was closing itself.
    async fn linger(&mut self) -> Lingered {
        loop {
            match self.backend.next().await {
                Some(Ok(WsMessage::Close(_))) => return Lingered::BackendClosed,
                Some(Ok(msg @ (WsMessage::Text(_) | WsMessage::Binary(_)))) => {
                    if !send(&mut self.client, msg).await {
                        return Lingered::ClientGone;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Lingered::BackendLost,
            }
        }
    }
}
