//! WebSocket sessions through the router.
//!
//! The public listener hands every WebSocket upgrade request to [`upgrade`] together with the
//! client's connection (actix-http's upgrade hook), so the router frames the client side
//! itself, with the same small buffers as the backend side. In order: the client's handshake
//! is checked, a backend is placed (taking one of its session slots), the backend's handshake
//! is made (so a refusing or dead backend is answered with a proper status before the client
//! is upgraded), then the client gets its 101 and one [`SessionActor`] pumps frames both ways
//! on this worker.
//!
//! The handshake forwards the client's subprotocols, cookies, `Authorization`, `Origin` and
//! `User-Agent`, plus `X-Forwarded-For`/`-Proto` and `X-Request-Id`; the backend's chosen
//! subprotocol and `X-Backend-Id` come back on the 101.

use std::sync::Arc;

use actix::Actor;
use actix_codec::{AsyncRead, AsyncWrite, Framed};
use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::h1::{Codec, Message as H1Message};
use actix_http::{ConnectionType, Request, RequestHead, Response};
use actix_web::HttpResponse;
use actix_web::http::header::{self as ax, HeaderValue};
use actix_web::http::{Method, StatusCode};
use bytes::Bytes;
use futures_util::SinkExt;

use super::error::{ProxyError, error_response};
use super::forward::upstream_target;
use super::pipeline::{self, Ctx, Place, Placed, Protocol};
use super::state::ProxyState;
use crate::control::session::{End, Opened as SessionParts};
use crate::control::{SessionActor, SessionTimers};
use crate::error::{Error, Retry};
use crate::headers::{FORWARDED_FOR, FORWARDED_PROTO, REQUEST_ID};
use crate::relay::flow::Flow;
use crate::relay::frame::{self, Rules, Sender};
use crate::routing::handoff::{self, CloseSession, MoveTo};
use crate::routing::stats::SessionGuard;
use crate::routing::{PoolHandle, Route};
use crate::upstream::h1::{BackendStream, ResponseHead, exchange};
use crate::upstream::ws::{self as backend_ws, Answer};

/// Largest WebSocket message relayed either way; bigger ones close the session with 1009.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// The one extension that passes end to end: its compressed messages are relayed as they are.
const DEFLATE: &str = "permessage-deflate";
/// Client headers the backend's handshake carries.
const FORWARDED_HANDSHAKE_HEADERS: &[&str] = &[
    "sec-websocket-protocol",
    "cookie",
    "authorization",
    "origin",
    "user-agent",
];

/// A WebSocket upgrade request (RFC 6455 §4.1).
pub fn is_websocket(head: &RequestHead) -> bool {
    let has = |name: ax::HeaderName, token: &str| {
        head.headers.get_all(name).any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    head.method == Method::GET && has(ax::UPGRADE, "websocket") && has(ax::CONNECTION, "upgrade")
}

/// A session the backend accepted: upgrade the client with this 101 and relay.
struct Accepted {
    switching: Response<()>,
    backend: End<BackendStream>,
    /// `permessage-deflate` was negotiated end to end.
    deflate: bool,
    guard: SessionGuard,
    backend_id: Arc<str>,
    /// A sticky session's id, whose record the session keeps alive.
    sticky: Option<uuid::Uuid>,
    pool: Arc<PoolHandle>,
}

/// What opening a session came to.
enum Opened {
    Session(Box<Accepted>),
    /// The backend refused the handshake: the client hears its answer.
    Refused {
        answer: HttpResponse,
        backend_id: Arc<str>,
    },
}

/// Serves one upgrade request on its connection: a session, or an error answer after which
/// the connection closes. Requests actix hands over that are not WebSocket upgrades (a
/// `CONNECT`, an upgrade without `Connection: upgrade`) are refused with 400: the router is a
/// reverse proxy, not a tunnel.
pub async fn upgrade<T>(req: Request, framed: Framed<T, Codec>, state: &ProxyState)
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let head = req.head();
    let mut ctx = Ctx::new(Protocol::WebSocket, head);
    let status = match decide(&mut ctx, req.conn_data(), head, state).await {
        Err(err) => refuse(framed, &err, &ctx.request_id).await,
        Ok(route) => match pipeline::place(&route, head, state, Protocol::WebSocket) {
            Place::Region(region) => {
                let cause = match state.directory.local.evacuating() {
                    true => "evacuation",
                    false => "overflow",
                };
                ctx.backend = Some(format!("region:{}", region.name).into());
                tell_to_move(head, framed, &region.name, cause, &ctx.request_id).await
            }
            Place::Pool(placed) => match open(head, &route, placed, state, &ctx.request_id).await {
                Ok(Opened::Session(session)) => {
                    ctx.backend = Some(session.backend_id.clone());
                    relay(framed, *session, &route, state).await
                }
                Ok(Opened::Refused { answer, backend_id }) => {
                    ctx.backend = Some(backend_id);
                    let status = answer.status().as_u16();
                    answer_and_close(framed, answer.into()).await;
                    status
                }
                Err(err) => {
                    ctx.failed(&err);
                    refuse(framed, &err, &ctx.request_id).await
                }
            },
        },
    };
    pipeline::log(&ctx, head, status, 0, state);
}

/// The pipeline's phases before the upgrade: admit, route, the upgrade itself checked, and the
/// route's limits (only real upgrades are charged).
async fn decide(
    ctx: &mut Ctx,
    conn: Option<&Arc<crate::conn::Conn>>,
    head: &RequestHead,
    state: &ProxyState,
) -> Result<Arc<Route>, ProxyError> {
    pipeline::admit(conn, head, state)?;
    let route = pipeline::route(head, state)?;
    ctx.route = Some(route.clone());
    if !is_websocket(head) {
        return Err(Error::BadRequest {
            reason: "only WebSocket upgrades (GET with Upgrade: websocket and Connection: upgrade) are served; tunnels are not".to_string(),
        }
        .into());
    }
    pipeline::limits(&route, head, state).await?;
    Ok(route)
}

/// Upgrades the client with the backend's 101 and hands both ends to a [`SessionActor`] on
/// this worker, which relays until one side closes. Returns the status sent.
async fn relay<T>(
    mut framed: Framed<T, Codec>,
    session: Accepted,
    route: &Route,
    state: &ProxyState,
) -> u16
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let status = session.switching.status().as_u16();
    if framed
        .send(H1Message::Item((session.switching, BodySize::None)))
        .await
        .is_err()
    {
        return status;
    }
    let parts = framed.into_parts();
    let record = session.sticky.map(|id| (state.sessions.store.clone(), id));
    let opened = SessionParts {
        client: End {
            io: parts.io,
            preread: parts.read_buf.to_vec(),
        },
        backend: session.backend,
        limits: (MAX_MESSAGE_BYTES as u64, session.deflate),
        guard: session.guard,
        timers: SessionTimers {
            linger: state.sessions.handoff_linger,
            // A session lives by its route's idle timeout.
            idle: route.timeouts.idle,
        },
    };
    SessionActor::new(opened, record, session.pool, session.backend_id).start();
    status
}

/// Answers a failed upgrade with the router's error and closes; returns the status sent.
async fn refuse<T>(framed: Framed<T, Codec>, err: &ProxyError, request_id: &HeaderValue) -> u16
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let answer: HttpResponse =
        error_response::<BoxBody>(&err.error, request_id).map_into_boxed_body();
    let status = answer.status().as_u16();
    answer_and_close(framed, answer.into()).await;
    status
}

/// Upgrades the client and closes at once with `4003` and where to go (`moved; delivered=0;
/// retry_after_ms=…; region=…`): what the SDK reads as "reconnect to that region".
async fn tell_to_move<T>(
    head: &RequestHead,
    mut framed: Framed<T, Codec>,
    region: &str,
    cause: &'static str,
    request_id: &HeaderValue,
) -> u16
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    if actix_http::ws::verify_handshake(head).is_err() {
        let err = ProxyError::from(Error::BadRequest {
            reason: "bad WebSocket handshake".to_string(),
        });
        return refuse(framed, &err, request_id).await;
    }
    metrics::counter!("switchyard_sessions_moved_total", "code" => "4003").increment(1);
    let switching = actix_http::ws::handshake_response(head)
        .finish()
        .drop_body();
    if framed
        .send(H1Message::Item((switching, BodySize::None)))
        .await
        .is_err()
    {
        return 101;
    }
    let parts = framed.into_parts();
    let close = CloseSession {
        to: MoveTo::Region(Some(region.to_string())),
        retry_after: handoff::stagger_jitter(),
        cause,
    };
    let mut io = parts.io;
    let rules = Rules {
        from: Sender::Client,
        max_message: MAX_MESSAGE_BYTES as u64,
        deflate: false,
    };
    let mut from_client = Flow::new(rules, parts.read_buf.to_vec());
    let closing = async {
        use tokio::io::AsyncWriteExt;
        let frame = frame::close_frame(close.to.code(), &close.reason(Some(0)), None);
        if io.write_all(&frame).await.is_ok() && io.flush().await.is_ok() {
            // The client's answering close (or its end), read before the socket is dropped.
            std::future::poll_fn(|cx| from_client.poll_discard(cx, &mut io)).await;
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), closing).await;
    101
}

/// Writes a whole response on the taken-over connection, then closes it.
async fn answer_and_close<T>(mut framed: Framed<T, Codec>, answer: Response<BoxBody>)
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let (mut head, body) = answer.into_parts();
    head.head_mut().set_connection_type(ConnectionType::Close);
    let bytes = body.try_into_bytes().unwrap_or_default();
    let size = BodySize::Sized(bytes.len() as u64);
    let written = async {
        framed.send(H1Message::Item((head, size))).await?;
        if !bytes.is_empty() {
            framed.send(H1Message::Chunk(Some(bytes))).await?;
        }
        framed.send(H1Message::Chunk(None)).await?;
        framed.close().await
    };
    if let Err(err) = written.await {
        tracing::debug!(error = %err, "could not answer a refused upgrade: the client is gone");
    }
}

/// The upgrade phase: places the session and makes the backend's handshake — a backend chosen
/// by the pool's balancer (its recorded one first on a sticky route: a known session resumes
/// there while it still takes sessions, else it is placed anew and the record moves).
/// Sessions honour only the retries that happen before anything reached a backend (connect
/// failures, [`Retry::Always`]): a handshake a backend saw is never sent twice.
async fn open(
    head: &RequestHead,
    route: &Route,
    placed: Placed<'_>,
    state: &ProxyState,
    request_id: &HeaderValue,
) -> Result<Opened, ProxyError> {
    // The client's own handshake is checked before any backend is bothered.
    actix_http::ws::verify_handshake(head).map_err(|err| {
        ProxyError::from(Error::BadRequest {
            reason: format!("bad WebSocket handshake: {err}"),
        })
    })?;
    let proto = state.proto;
    let pool = placed.variant.pool.clone();
    let choice = pipeline::choose(route, pool.load_full(), Some(placed), 0, head, state).await?;
    let (snapshot, order) = (choice.snapshot.clone(), choice.candidates.clone());
    let target = upstream_target(&head.uri, route);
    let mut attempts = 0;
    let mut full = true;
    let mut last_error = None;
    for index in order {
        if attempts > route.retries {
            break;
        }
        let backend = &snapshot.eligible[index];
        // WebSocket handshakes are HTTP/1.1; an HTTP/2 pool's backends are not asked (RFC 8441
        // extended CONNECT is not spoken to backends).
        if backend.protocol == crate::upstream::UpstreamProtocol::H2 {
            return Err(Error::BadRequest {
                reason: format!(
                    "route {:?} sends to pool {:?}, whose backends speak HTTP/2: WebSocket sessions need a pool with protocol = \"http1\"",
                    route.id, pool.id
                ),
            }
            .into());
        }
        // Full backends (max_sessions) take no new session; when all are full, the client
        // gets 503 + Retry-After before any upgrade, and existing sessions are untouched.
        let Some(guard) = backend.stats.try_start_session() else {
            continue;
        };
        full = false;
        attempts += 1;
        let connecting =
            exchange::connect_stream(backend.addr, backend.tls.as_deref(), route.timeouts.connect);
        let stream = match connecting.await {
            Ok(stream) => stream,
            Err(err) => {
                backend.stats.record_connect_failure();
                backend.stats.record_outcome(false);
                let err = ProxyError::exchange(err, backend);
                if err.retry != Retry::Always {
                    return Err(err);
                }
                last_error = Some(err);
                continue;
            }
        };
        let forwarded = handshake_headers(head, proto, request_id);
        let names: Vec<(&str, &[u8])> = forwarded.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        let host = head
            .headers
            .get(ax::HOST)
            .map_or(backend.authority.as_str().as_bytes(), |h| h.as_bytes());
        let request = backend_ws::Request {
            target: &target,
            host,
            headers: &names,
        };
        let handshake = backend_ws::handshake(stream, &request);
        let accepted = match tokio::time::timeout(route.timeouts.response, handshake).await {
            Err(_) => {
                backend.stats.record_outcome(false);
                let error = Error::UpstreamTimeout {
                    backend: backend.id.to_string(),
                    after: route.timeouts.response,
                };
                return Err(ProxyError::upstream(
                    error,
                    Retry::IfIdempotent,
                    &backend.id,
                ));
            }
            Ok(Ok(Answer::Refused(answer, body))) => {
                backend.stats.record_outcome(answer.status < 500);
                return Ok(Opened::Refused {
                    answer: refused(answer, body, request_id),
                    backend_id: backend.id.clone(),
                });
            }
            Ok(Err(err)) => {
                backend.stats.record_outcome(false);
                let error = Error::Upstream {
                    backend: backend.id.to_string(),
                    source: Box::new(err),
                };
                return Err(ProxyError::upstream(
                    error,
                    Retry::IfIdempotent,
                    &backend.id,
                ));
            }
            Ok(Ok(Answer::Accepted(accepted))) => accepted,
        };
        backend.stats.record_outcome(true);
        let mut switching = actix_http::ws::handshake_response(head);
        let chosen = [
            (ax::SEC_WEBSOCKET_PROTOCOL, &accepted.protocol),
            (ax::SEC_WEBSOCKET_EXTENSIONS, &accepted.extensions),
            (
                ax::HeaderName::from_static("x-backend-id"),
                &accepted.backend_id,
            ),
        ];
        for (name, value) in chosen {
            if let Some(value) = value
                && let Ok(v) = HeaderValue::from_maybe_shared(value.clone())
            {
                switching.insert_header((name, v));
            }
        }
        switching.insert_header((ax::HeaderName::from_static(REQUEST_ID), request_id.clone()));
        let mut switching = switching.finish().drop_body();
        let deflate = accepted
            .extensions
            .as_deref()
            .is_some_and(|e| offers(e).any(|name| name.eq_ignore_ascii_case(DEFLATE)));
        choice.landed(&backend.id, switching.headers_mut(), state);
        return Ok(Opened::Session(Box::new(Accepted {
            switching,
            backend: End {
                io: accepted.stream,
                preread: accepted.preread,
            },
            deflate,
            guard,
            backend_id: backend.id.clone(),
            sticky: choice.sticky.as_ref().map(|s| s.id()),
            pool,
        })));
    }
    if full {
        let pool = choice.variant.pool.id.to_string();
        return Err(Error::Overloaded { pool }.into());
    }
    Err(last_error.unwrap_or_else(|| pipeline::unavailable(&choice.variant.pool.id, &snapshot)))
}

/// The backend's refusal (401, 404, 503…) as the client's response.
fn refused(answer: ResponseHead, body: Bytes, request_id: &HeaderValue) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = HttpResponse::build(status);
    for (name, value) in &answer.headers {
        if *name != ax::CONTENT_LENGTH {
            resp.append_header((name.clone(), value.clone()));
        }
    }
    resp.insert_header((REQUEST_ID, request_id.clone()));
    resp.body(body)
}

/// The names of the extensions in a `Sec-WebSocket-Extensions` value (each offer's first
/// token, before its parameters).
fn offers(value: &[u8]) -> impl Iterator<Item = &str> {
    value.split(|&b| b == b',').filter_map(|offer| {
        let name = offer.split(|&b| b == b';').next()?;
        std::str::from_utf8(name.trim_ascii()).ok()
    })
}

/// The client's `permessage-deflate` offers, the only extension passed on: its frames relay
/// unchanged (RSV1 marks a compressed message). Other extensions could use bits or frames
/// the relay does not know, so they are not offered to the backend.
fn deflate_offers(head: &RequestHead) -> Option<Vec<u8>> {
    let mut kept: Vec<u8> = Vec::new();
    for value in head.headers.get_all(ax::SEC_WEBSOCKET_EXTENSIONS) {
        for offer in value.as_bytes().split(|&b| b == b',') {
            let name = offer.split(|&b| b == b';').next().unwrap_or_default();
            if name.trim_ascii().eq_ignore_ascii_case(DEFLATE.as_bytes()) {
                if !kept.is_empty() {
                    kept.extend_from_slice(b", ");
                }
                kept.extend_from_slice(offer.trim_ascii());
            }
        }
    }
    (!kept.is_empty()).then_some(kept)
}

/// The headers the router adds to the backend's handshake: the client's forwarded ones, its
/// `permessage-deflate` offers, `X-Forwarded-For`/`-Proto` and `X-Request-Id`. (Host and the
/// WebSocket headers with a fresh key are the handshake's own.)
fn handshake_headers(
    head: &RequestHead,
    proto: &'static str,
    request_id: &HeaderValue,
) -> Vec<(&'static str, Vec<u8>)> {
    let mut headers = Vec::with_capacity(8);
    for name in FORWARDED_HANDSHAKE_HEADERS {
        for value in head.headers.get_all(*name) {
            headers.push((*name, value.as_bytes().to_vec()));
        }
    }
    if let Some(offers) = deflate_offers(head) {
        headers.push(("sec-websocket-extensions", offers));
    }
    let mut forwarded_for: Vec<u8> = Vec::new();
    for value in head.headers.get_all(FORWARDED_FOR) {
        forwarded_for.extend_from_slice(value.as_bytes());
        forwarded_for.extend_from_slice(b", ");
    }
    if let Some(peer) = head.peer_addr {
        forwarded_for.extend_from_slice(peer.ip().to_string().as_bytes());
    }
    if !forwarded_for.is_empty() {
        headers.push((FORWARDED_FOR, forwarded_for));
    }
    headers.push((FORWARDED_PROTO, proto.as_bytes().to_vec()));
    headers.push((REQUEST_ID, request_id.as_bytes().to_vec()));
    headers
}
