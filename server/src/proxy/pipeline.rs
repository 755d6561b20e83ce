//! The request pipeline: the phases every request goes through, HTTP requests and WebSocket
//! upgrades alike, up to the exchange with the backend.
//!
//! ```text
//! admit → route → limits → place ─┬─ here: choose upstream → exchange (HTTP, [`super::forward`])
//!                                 │                         → upgrade  (WebSocket, [`super::websocket`])
//!                                 └─ another region: forward with the hop header, 307, or 4003
//!       → classify the outcome ([`ProxyError`]: side and retry decision) → log
//! ```
//!
//! Each phase is a function of the request head, the listener's [`ProxyState`] and what the
//! earlier phases decided, which the request's [`Ctx`] carries to the log phase. No phase takes
//! actix-web's `HttpRequest`: whatever yields an `actix_http::RequestHead` (the HTTP/1.1
//! handler, the WebSocket upgrade hook, an HTTP/2 server) feeds the same phases. A failing
//! phase returns a [`ProxyError`], which the entry point answers.
//!
//! [`place`] decides which pool of this region serves the request ([`Place::Pool`]): the
//! route's, or the part of its traffic split ([`crate::routing::split`]) the request is
//! assigned to; everything after it works on the chosen pool.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_http::RequestHead;
use actix_web::http::header::{self as ax, HeaderName, HeaderValue};

use super::error::ProxyError;
use super::state::ProxyState;
use crate::config::Limits;
use crate::conn::Conn;
use crate::error::{Error, Side};
use crate::headers;
use crate::logging::{self, AccessLine, Throttle};
use crate::policy::ratelimit::shared::RedisLink;
use crate::regions::RegionEntry;
use crate::routing::balance::Candidates;
use crate::routing::split::Assign;
use crate::routing::{PoolSnapshot, Route, Variant};
use crate::session::{SessionRef, Sticky};

/// What a request asks of the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// A request answered by one response.
    Http,
    /// A WebSocket upgrade: a session relayed until one side closes.
    WebSocket,
}

/// One request's way through the pipeline: when it started, its id, and what the phases
/// decided — read by the log phase.
pub struct Ctx {
    pub protocol: Protocol,
    pub started: Instant,
    pub request_id: HeaderValue,
    /// Set by [`route`].
    pub route: Option<Arc<Route>>,
    /// The backend (or `region:NAME`) that answered or failed; `-` in the log when none.
    pub backend: Option<Arc<str>>,
}

impl Ctx {
    pub fn new(protocol: Protocol, head: &RequestHead) -> Ctx {
        Ctx {
            protocol,
            started: Instant::now(),
            request_id: headers::request_id(&head.headers),
            route: None,
            backend: None,
        }
    }

    /// Notes a failure of the exchange (or of placing the request): its backend for the log
    /// and a warning line naming the route — at most one a second for the backends' failures
    /// and one every 10 s for the clients' own (a bad body, one too large), each saying how
    /// many were left out, so no client can flood the log. Every failure is counted in
    /// `switchyard_router_errors_total` and has its access line.
    pub fn failed(&mut self, err: &ProxyError) {
        static UPSTREAM: Throttle = Throttle::new(Duration::from_secs(1));
        static CLIENT: Throttle = Throttle::new(Duration::from_secs(10));
        let throttle = match err.side {
            Side::Client => &CLIENT,
            _ => &UPSTREAM,
        };
        if let Some(route) = &self.route
            && let Some(left_out) = throttle.allow()
        {
            let what = match self.protocol {
                Protocol::Http => "request failed",
                Protocol::WebSocket => "WebSocket session failed to open",
            };
            tracing::warn!(route = %route.id, request_id = ?self.request_id, error = %err, left_out, "{what}");
        }
        if err.backend.is_some() {
            self.backend.clone_from(&err.backend);
        }
    }
}

/// Admit: counts the request on its connection and refuses it when the connection is over
/// `max_connections_per_ip`; checks the head against `[limits]` (414, 431). (Streams per
/// HTTP/2 connection are the h2 layer's: advertised in `SETTINGS_MAX_CONCURRENT_STREAMS`,
/// and one over it never reaches the router — it is refused with `REFUSED_STREAM`.)
pub fn admit(
    conn: Option<&Arc<Conn>>,
    head: &RequestHead,
    state: &ProxyState,
) -> Result<(), ProxyError> {
    if let Some(conn) = conn {
        conn.saw_request();
        if conn.over_limit {
            return Err(Error::TooManyConnections {
                max: state.limits.max_connections_per_ip,
            }
            .into());
        }
    }
    head_within_limits(head, &state.limits).map_err(|err| {
        tracing::debug!(error = %err, "request head over a limit");
        err
    })
}

/// Route: the first route whose host and path prefix match.
pub fn route(head: &RequestHead, state: &ProxyState) -> Result<Arc<Route>, ProxyError> {
    let host = request_host(head);
    match state.table.load().find(host, head.uri.path()) {
        Some(route) => Ok(route.clone()),
        None => Err(Error::NoRoute {
            host: host.map(str::to_string),
            path: head.uri.path().to_string(),
        }
        .into()),
    }
}

/// Limits: the route's rate limits (by client address or API key; a shared limit is checked
/// in Redis, so this phase awaits).
pub async fn limits(
    route: &Route,
    head: &RequestHead,
    state: &ProxyState,
) -> Result<(), ProxyError> {
    let Some(rates) = &route.rates else {
        return Ok(());
    };
    // Boxed: a shared limit's Redis round trip is a large future that requests of routes
    // without rates would otherwise carry (see [`choose`]).
    let shared = state
        .sessions
        .store
        .shared()
        .map(|s| &**s as &dyn RedisLink);
    let client = state.client_ip(peer(head), &head.headers);
    Box::pin(rates.check(&route.id, &head.headers, client, shared))
        .await
        .map_err(ProxyError::from)
}

/// Where a request is served.
pub enum Place<'r> {
    /// By a pool of this region: the route's, or the part of its split the request is
    /// assigned to.
    Pool(Placed<'r>),
    /// By another region: this one has no capacity, or is evacuating.
    Region(Arc<RegionEntry>),
}

/// The pool of this region that serves a request, and what its split decided.
pub struct Placed<'r> {
    pub variant: &'r Variant,
    /// The session the split assigned the request by: a sticky route goes on with the same
    /// one, and a new one's token goes on the response so the viewer's next request sticks.
    session: Option<SessionRef>,
    /// The split's response header naming the pool, when it has one.
    announce: Option<&'r HeaderName>,
}

/// Place: the pool of this region that serves the request (the route's, or the part of its
/// split), or another region when this one cannot take it (see
/// [`super::region::overflow_target`]).
pub fn place<'r>(
    route: &'r Route,
    head: &RequestHead,
    state: &ProxyState,
    protocol: Protocol,
) -> Place<'r> {
    let peer = peer(head);
    // A region that evacuates moves every new session, whatever the route's overflow says:
    // sessions outlive the evacuation; single requests follow the route's overflow rule.
    if protocol == Protocol::WebSocket
        && state.directory.local.evacuating()
        && !super::region::hopped(&head.headers, peer, state)
        && let Some(region) = state.directory.nearest_remote()
    {
        return Place::Region(region);
    }
    let placed = split(route, head, state);
    match super::region::overflow_target(&head.headers, peer, route, &placed.variant.pool, state) {
        Some(region) => Place::Region(region),
        None => {
            if let Some(chosen) = &placed.variant.chosen {
                chosen.increment(1);
            }
            Place::Pool(placed)
        }
    }
}

/// Split: the route's one pool, or the part of its split that the override header names, that
/// the configured key falls in, or that the request's session falls in (a new session when it
/// brings none).
fn split<'r>(route: &'r Route, head: &RequestHead, state: &ProxyState) -> Placed<'r> {
    let Some(split) = &route.split else {
        return Placed {
            variant: &route.variants[0],
            session: None,
            announce: None,
        };
    };
    let mut session = None;
    let at = match split.assign(&head.headers, &route.variants) {
        Assign::Chosen(at) => at,
        Assign::Session => {
            let of = state.sessions.of(&head.headers);
            let at = split.pick(of.id.as_bytes());
            session = Some(of);
            at
        }
    };
    let variant = &route.variants[at];
    Placed {
        variant,
        session,
        announce: split.response_header.as_ref(),
    }
}

/// The upstream choice: a pool's snapshot, its members in the order to try them, the route's
/// slot on the pool, and what the response must carry: a sticky session's record (told where
/// the request landed), a split's new session token and pool name.
pub struct Choice<'r> {
    pub snapshot: Arc<PoolSnapshot>,
    pub candidates: Candidates,
    /// The route's pool: its id, and its slot (the route's position there, which indexes the
    /// pool's per-backend counters).
    pub variant: &'r Variant,
    pub sticky: Option<Sticky>,
    issue: Option<SessionRef>,
    announce: Option<(HeaderName, HeaderValue)>,
}

impl Choice<'_> {
    /// The request landed on `backend`: a sticky session's record moves there, and a new
    /// session's token and the split's pool header go on the response.
    pub fn landed(&self, backend: &Arc<str>, headers: &mut ax::HeaderMap, state: &ProxyState) {
        let secure = state.proto == "https";
        if let Some(sticky) = &self.sticky {
            sticky.landed(
                &state.sessions,
                &self.variant.pool.id,
                backend,
                headers,
                secure,
            );
        }
        if let Some(session) = &self.issue {
            state.sessions.issue(session, headers, secure);
        }
        if let Some((name, value)) = &self.announce {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// Choose upstream: the snapshot's eligible backends in the balancer's order for `key`; on a
/// sticky route served here (`placed`), a known session's recorded backend first, while it
/// is still eligible. A snapshot with no eligible backend is refused as overloaded (every
/// backend full) or without a healthy backend.
pub async fn choose<'r>(
    route: &'r Route,
    snapshot: Arc<PoolSnapshot>,
    placed: Option<Placed<'r>>,
    key: u64,
    head: &RequestHead,
    state: &ProxyState,
) -> Result<Choice<'r>, ProxyError> {
    let variant = placed.as_ref().map_or(&route.variants[0], |p| p.variant);
    if snapshot.eligible.is_empty() {
        return Err(unavailable(&variant.pool.id, &snapshot));
    }
    let mut candidates = snapshot.balancer.candidates(&snapshot.eligible, key);
    let (mut sticky, mut issue, mut announce) = (None, None, None);
    if let Some(placed) = placed {
        announce = placed.announce.and_then(|name| {
            let value = HeaderValue::from_str(&variant.pool.id).ok()?;
            Some((name.clone(), value))
        });
        if route.sticky {
            let session = placed
                .session
                .unwrap_or_else(|| state.sessions.of(&head.headers));
            // Boxed, like the other phases' rarely taken awaits: inline, the session store's
            // future would enlarge every request's future, and each move of it.
            let found = Box::pin(state.sessions.sticky(session, &variant.pool.id)).await;
            candidates = found.prefer(candidates, &snapshot.eligible);
            sticky = Some(found);
        } else {
            issue = placed.session.filter(|s| s.issue);
        }
    }
    Ok(Choice {
        snapshot,
        candidates,
        variant,
        sticky,
        issue,
        announce,
    })
}

/// Why a pool took nobody: every candidate full (`overloaded`) or none healthy.
pub fn unavailable(pool: &str, snapshot: &PoolSnapshot) -> ProxyError {
    let pool = pool.to_string();
    match snapshot.overloaded {
        true => Error::Overloaded { pool }.into(),
        false => Error::NoHealthyBackend { pool }.into(),
    }
}

/// Log: one access line per request, from its context (when `[log] access` is on), written
/// now: for answers whose body is already known (the router's own, a WebSocket's 101),
/// `bytes` is that body's length and the total is the time to the head.
pub fn log(ctx: &Ctx, head: &RequestHead, status: u16, bytes: u64, state: &ProxyState) {
    if !access_logged(state) {
        return;
    }
    let duration_us = ctx.started.elapsed().as_micros() as u64;
    logging::access_log(&AccessLine {
        method: head.method.as_str(),
        path: head.uri.path(),
        status,
        backend: ctx.backend.as_deref().unwrap_or("-"),
        peer: head.peer_addr.map(|a| a.ip()),
        duration_us,
        total_us: duration_us,
        bytes,
        request_id: ctx.request_id.as_bytes(),
    });
}

/// Whether this request gets an access line at all.
pub fn access_logged(state: &ProxyState) -> bool {
    state.access_log && logging::access_log_on()
}

/// Log, for an answer streamed from a backend: what the line will say, kept by the body
/// until its last byte is sent (or the client goes away), when it is written with the total
/// time and the bytes sent.
pub struct PendingLine {
    method: actix_web::http::Method,
    uri: actix_web::http::Uri,
    status: u16,
    backend: Option<Arc<str>>,
    peer: Option<IpAddr>,
    started: Instant,
    duration_us: u64,
    request_id: HeaderValue,
    bytes: u64,
}

impl PendingLine {
    pub fn new(ctx: &Ctx, head: &RequestHead, status: u16) -> Box<PendingLine> {
        Box::new(PendingLine {
            method: head.method.clone(),
            uri: head.uri.clone(),
            status,
            backend: ctx.backend.clone(),
            peer: head.peer_addr.map(|a| a.ip()),
            started: ctx.started,
            duration_us: ctx.started.elapsed().as_micros() as u64,
            request_id: ctx.request_id.clone(),
            bytes: 0,
        })
    }

    pub fn sent(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
    }

    /// Writes the line for a body the router made itself, of `bytes`.
    pub fn write_with(mut self: Box<Self>, bytes: u64) {
        self.bytes = bytes;
        self.write();
    }

    /// Writes the line: the body is done.
    pub fn write(&self) {
        logging::access_log(&AccessLine {
            method: self.method.as_str(),
            path: self.uri.path(),
            status: self.status,
            backend: self.backend.as_deref().unwrap_or("-"),
            peer: self.peer,
            duration_us: self.duration_us,
            total_us: self.started.elapsed().as_micros() as u64,
            bytes: self.bytes,
            request_id: self.request_id.as_bytes(),
        });
    }
}

/// The immediate peer's address.
pub fn peer(head: &RequestHead) -> Option<IpAddr> {
    head.peer_addr.map(|a| a.ip())
}

/// The host a request is routed by: its `Host` header, else the authority of an
/// absolute-form target.
pub fn request_host(head: &RequestHead) -> Option<&str> {
    head.headers
        .get(ax::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| head.uri.host())
}

/// The request target and headers against `[limits]` (414 and 431).
fn head_within_limits(head: &RequestHead, limits: &Limits) -> Result<(), ProxyError> {
    let uri = head.uri.path_and_query().map_or(0, |pq| pq.as_str().len()) as u64;
    if uri > limits.max_uri_bytes {
        return Err(Error::TooLarge {
            what: "uri",
            size: uri,
            max: limits.max_uri_bytes,
        }
        .into());
    }
    let headers: u64 = head
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().len() + v.len() + 4) as u64)
        .sum();
    if headers > limits.max_header_bytes {
        return Err(Error::TooLarge {
            what: "headers",
            size: headers,
            max: limits.max_header_bytes,
        }
        .into());
    }
    Ok(())
}
