//! `SessionActor`: one per live WebSocket session, on the worker thread that accepted the
//! client (no frame crosses threads). It lists the session with its pool (so drains and
//! shutdowns can move it), keeps a sticky session's record alive, and runs the session's data
//! plane (`relay::Session`: both directions, closes, moves) as its one spawned future. It
//! obeys [`CloseSession`], which is how drains and shutdowns move sessions.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::relay::Session;
pub use crate::relay::session::{CLOSE_BACKEND_LOST, CLOSE_GOING_AWAY, CLOSE_IDLE};
pub use crate::relay::{End, SessionTimers};
pub use crate::routing::CloseSession;
use crate::routing::PoolHandle;
pub use crate::routing::handoff::{CLOSE_MOVE_REGION, CLOSE_MOVED};
use crate::routing::stats::SessionGuard;
use crate::session::Store;
use crate::upstream::h1::BackendStream;

pub struct SessionActor<C> {
    /// Boxed until it starts: then it moves into the actor's one spawned future, and the
    /// actor keeps a pointer's worth of it rather than a second copy's room.
    session: Option<Box<Session<C, BackendStream>>>,
    /// The one command a session takes (a second close while the first is under way changes
    /// nothing). A oneshot, not a channel: a tokio mpsc channel allocates a 32-slot block per
    /// session up front.
    commands: Option<oneshot::Sender<CloseSession>>,
    /// A sticky session's record, kept from expiring while the session is held.
    record: Option<(Arc<Store>, Uuid)>,
    /// Where the session is listed for drains: its pool, backend and number there.
    listing: (Arc<PoolHandle>, Arc<str>, Option<u64>),
}

/// What a session is made of once both handshakes are done.
pub struct Opened<C> {
    pub client: End<C>,
    pub backend: End<BackendStream>,
    /// The largest message either way, and whether `permessage-deflate` passes end to end.
    pub limits: (u64, bool),
    pub guard: SessionGuard,
    pub timers: SessionTimers,
}

impl<C> SessionActor<C>
where
    C: AsyncRead + AsyncWrite + Unpin + 'static,
{
    pub fn new(
        opened: Opened<C>,
        record: Option<(Arc<Store>, Uuid)>,
        pool: Arc<PoolHandle>,
        backend_id: Arc<str>,
    ) -> SessionActor<C> {
        let (commands, rx) = oneshot::channel();
        let session = Session::new(
            opened.client,
            opened.backend,
            opened.limits,
            rx,
            opened.guard,
            opened.timers,
        );
        SessionActor {
            session: Some(Box::new(session)),
            commands: Some(commands),
            record,
            listing: (pool, backend_id, None),
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
        if let Some(session) = self.session.take() {
            ctx.spawn(
                (*session)
                    .run()
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
        if let Some(commands) = self.commands.take() {
            let _ = commands.send(msg);
        }
    }
}
