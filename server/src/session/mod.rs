//! Sticky sessions: signed tokens ([`token`]), where records live ([`store`]), and what the
//! request path does with them ([`Sessions`]).
//!
//! A request on a sticky route (and every WebSocket session on one) carries its session token
//! in `X-Switchyard-Session` or the `sy_session` cookie. A genuine token whose record names a
//! backend that still takes requests goes there; otherwise the session is placed by the
//! pool's balancer and the record written. New sessions get their token on the response (and
//! on a WebSocket's 101). Forged or altered tokens are ignored (a new session is made) and
//! counted in `switchyard_session_tokens_rejected_total`.

pub mod shared;
pub mod store;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{self as ax, HeaderValue};
use metrics::Counter;
use uuid::Uuid;

use crate::routing::BackendEntry;
use crate::routing::balance::Candidates;

pub use shared::{SharedStore, StoreError};
pub use store::{MemoryStore, SessionStore};

/// The node's session store: its own memory, or Redis shared by every node (with memory as
/// cache and fallback).
pub enum Store {
    Memory(MemoryStore),
    Shared(Arc<SharedStore>),
}

impl Store {
    /// The Redis store, when sessions are kept there.
    pub fn shared(&self) -> Option<&Arc<SharedStore>> {
        match self {
            Store::Memory(_) => None,
            Store::Shared(s) => Some(s),
        }
    }

    /// The backend a live session of `pool` is recorded on.
    pub async fn resume(&self, id: Uuid, pool: &str) -> Option<Arc<str>> {
        match self {
            Store::Memory(m) => m.resume(id, pool).map(|r| r.backend),
            Store::Shared(s) => s.resume(id, pool).await,
        }
    }

    /// Records (or moves) a session; never waits on the network.
    pub fn place(&self, id: Uuid, pool: Arc<str>, backend: Arc<str>) {
        match self {
            Store::Memory(m) => {
                m.place(id, pool, backend);
            }
            Store::Shared(s) => s.place(id, pool, backend),
        }
    }

    /// A live session (a held WebSocket) is still there: keeps its record from expiring.
    pub fn touch(&self, id: Uuid) {
        match self {
            Store::Memory(m) => {
                m.touch(id);
            }
            Store::Shared(s) => s.touch(id),
        }
    }

    /// Records expire this long after a session was last seen.
    pub fn ttl(&self) -> Duration {
        match self {
            Store::Memory(m) => m.ttl(),
            Store::Shared(s) => s.ttl(),
        }
    }

    pub fn sweep(&self) -> usize {
        match self {
            Store::Memory(m) => m.sweep(),
            Store::Shared(s) => s.sweep(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Store::Memory(m) => m.len(),
            Store::Shared(s) => s.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
pub use token::{TokenKey, Verified};

pub use crate::headers::SESSION_HEADER;
/// Cookie that carries a session token.
pub const SESSION_COOKIE: &str = "sy_session";

/// The request path's view of sessions.
pub struct Sessions {
    pub key: TokenKey,
    pub store: Arc<Store>,
    /// How long a moved WebSocket session waits for its backend's close.
    pub handoff_linger: Duration,
    rejected: Counter,
}

/// A request's session.
#[derive(Debug, Clone)]
pub struct SessionRef {
    pub id: Uuid,
    /// The id came from a genuine token: the session may have a record.
    pub known: bool,
    /// The response must carry a token: the client brought none (or a forged one, and this
    /// is a new session), or one signed with the key being rotated out.
    pub issue: bool,
}

/// A request's session on one sticky route: who it is, and where it was recorded.
pub struct Sticky {
    session: SessionRef,
    recorded: Option<Arc<str>>,
}

impl Sticky {
    /// The session's id.
    pub fn id(&self) -> Uuid {
        self.session.id
    }

    /// Puts the recorded backend first in `candidates` while it is still eligible.
    pub fn prefer(&self, candidates: Candidates, eligible: &[Arc<BackendEntry>]) -> Candidates {
        match self
            .recorded
            .as_ref()
            .and_then(|r| eligible.iter().position(|b| &b.id == r))
        {
            Some(at) => candidates.prefer(at),
            None => candidates,
        }
    }

    /// The session landed on `backend`: records it if that is a move, and gives a new session
    /// (or one with a rotated-out key) its token.
    pub fn landed(
        &self,
        sessions: &Sessions,
        pool: &Arc<str>,
        backend: &Arc<str>,
        headers: &mut ax::HeaderMap,
        secure: bool,
    ) {
        if self.recorded.as_ref() != Some(backend) {
            sessions
                .store
                .place(self.session.id, pool.clone(), backend.clone());
        }
        sessions.issue(&self.session, headers, secure);
    }
}

impl SessionRef {
    fn fresh() -> SessionRef {
        SessionRef {
            id: Uuid::new_v4(),
            known: false,
            issue: true,
        }
    }
}

impl Sessions {
    pub fn new(key: TokenKey, store: Arc<Store>, handoff_linger: Duration) -> Sessions {
        Sessions {
            key,
            store,
            handoff_linger,
            rejected: metrics::counter!("switchyard_session_tokens_rejected_total"),
        }
    }

    /// The session a request belongs to: its genuine token's, or a new one.
    pub fn of(&self, headers: &ax::HeaderMap) -> SessionRef {
        let presented = headers
            .get(SESSION_HEADER)
            .map(|v| v.as_bytes())
            .or_else(|| crate::headers::cookie(headers, SESSION_COOKIE))
            .and_then(|token| std::str::from_utf8(token).ok());
        match presented {
            Some(token) => match self.key.check(token) {
                Some(Verified::Current(id)) => SessionRef {
                    id,
                    known: true,
                    issue: false,
                },
                // Signed with the key being rotated out: same session, re-issued token.
                Some(Verified::Previous(id)) => SessionRef {
                    id,
                    known: true,
                    issue: true,
                },
                None => {
                    self.rejected.increment(1);
                    SessionRef::fresh()
                }
            },
            None => SessionRef::fresh(),
        }
    }

    /// A request's session (see [`Sessions::of`]) on a sticky route of `pool`, with its
    /// recorded backend (looked up in the store only for a genuine token).
    pub async fn sticky(&self, session: SessionRef, pool: &str) -> Sticky {
        let recorded = if session.known {
            self.store.resume(session.id, pool).await
        } else {
            None
        };
        Sticky { session, recorded }
    }

    /// Adds the token of a new session to a response: `X-Switchyard-Session` and the cookie
    /// (`Secure` on TLS listeners).
    pub fn issue(&self, session: &SessionRef, headers: &mut ax::HeaderMap, secure: bool) {
        if !session.issue {
            return;
        }
        let token = self.key.sign(session.id);
        let cookie = format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax{}",
            if secure { "; Secure" } else { "" }
        );
        if let (Ok(t), Ok(c)) = (
            HeaderValue::from_str(&token),
            HeaderValue::from_str(&cookie),
        ) {
            headers.insert(ax::HeaderName::from_static(SESSION_HEADER), t);
            headers.append(ax::SET_COOKIE, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use actix_web::test::TestRequest;

    use super::*;

    fn sessions(key: TokenKey) -> Sessions {
        Sessions::new(
            key,
            Arc::new(Store::Memory(MemoryStore::new(
                Duration::from_secs(60),
                "test".into(),
            ))),
            Duration::from_secs(2),
        )
    }

    #[test]
    fn tokens_are_read_from_the_header_or_the_cookie() {
        let s = sessions(TokenKey::new(b"k"));
        let id = Uuid::new_v4();
        let token = s.key.sign(id);
        let by_header = TestRequest::default()
            .insert_header((SESSION_HEADER, token.as_str()))
            .to_http_request();
        let by_cookie = TestRequest::default()
            .insert_header(("cookie", format!("a=1; {SESSION_COOKIE}={token}")))
            .to_http_request();
        for req in [by_header, by_cookie] {
            let r = s.of(req.headers());
            assert_eq!((r.id, r.known, r.issue), (id, true, false));
        }
        let none = s.of(TestRequest::default().to_http_request().headers());
        assert_eq!((none.known, none.issue), (false, true));
    }

    #[test]
    fn a_token_of_the_rotated_out_key_keeps_its_session_and_gets_a_new_token() {
        let id = Uuid::new_v4();
        let old_token = TokenKey::new(b"old").sign(id);
        let s = sessions(
            TokenKey::new(b"new").with_previous(b"old", Instant::now() + Duration::from_secs(60)),
        );
        let req = TestRequest::default()
            .insert_header((SESSION_HEADER, old_token.as_str()))
            .to_http_request();
        let r = s.of(req.headers());
        assert_eq!((r.id, r.known, r.issue), (id, true, true));
        let mut headers = ax::HeaderMap::new();
        s.issue(&r, &mut headers, false);
        let fresh = headers.get(SESSION_HEADER).unwrap().to_str().unwrap();
        assert_eq!(s.key.check(fresh), Some(Verified::Current(id)));
    }
}
