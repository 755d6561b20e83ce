//! Sticky sessions: signed tokens ([`token`]), where records live ([`store`]), and what the
//! request path does with them ([`Sessions`]).
//!
//! A request on a sticky route (and every WebSocket session on one) carries its session token
//! in `X-Switchyard-Session` or the `sy_session` cookie. A genuine token whose record names a
//! backend that still takes requests goes there; otherwise the session is placed by the
//! pool's balancer and the record written. New sessions get their token on the response (and
//! on a WebSocket's 101). Forged or altered tokens are ignored (a new session is made) and
//! counted in `switchyard_session_tokens_rejected_total`.

pub mod store;
pub mod token;

use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::http::header::{self as ax, HeaderValue};
use metrics::Counter;
use uuid::Uuid;

pub use store::{MemoryStore, SessionStore};
pub use token::TokenKey;

/// Header that carries a session token both ways.
pub const SESSION_HEADER: &str = "x-switchyard-session";
/// Cookie that carries a session token.
pub const SESSION_COOKIE: &str = "sy_session";

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(ax::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
}

/// The request path's view of sessions.
pub struct Sessions {
    pub key: TokenKey,
    pub store: Arc<dyn SessionStore>,
    rejected: Counter,
}

/// A request's session.
#[derive(Debug, Clone)]
pub struct SessionRef {
    pub id: Uuid,
    /// True when the client brought no genuine token: the response must carry one.
    pub new: bool,
}

impl Sessions {
    pub fn new(key: TokenKey, store: Arc<dyn SessionStore>) -> Sessions {
        Sessions {
            key,
            store,
            rejected: metrics::counter!("switchyard_session_tokens_rejected_total"),
        }
    }

    /// The session a request belongs to: its genuine token's, or a new one.
    pub fn of(&self, req: &HttpRequest) -> SessionRef {
        let presented = req
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| cookie(req, SESSION_COOKIE));
        match presented {
            Some(token) => match self.key.verify(&token) {
                Some(id) => SessionRef { id, new: false },
                None => {
                    self.rejected.increment(1);
                    SessionRef {
                        id: Uuid::new_v4(),
                        new: true,
                    }
                }
            },
            None => SessionRef {
                id: Uuid::new_v4(),
                new: true,
            },
        }
    }

    /// Adds the token of a new session to a response: `X-Switchyard-Session` and the cookie
    /// (`Secure` on TLS listeners).
    pub fn issue(&self, session: &SessionRef, headers: &mut ax::HeaderMap, secure: bool) {
        if !session.new {
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
