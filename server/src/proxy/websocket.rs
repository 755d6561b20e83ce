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

use std::time::{Duration, Instant};

use actix::Actor;
use actix_codec::{AsyncRead, AsyncWrite, Framed};
use actix_http::body::{BodySize, BoxBody, MessageBody};
use actix_http::h1::{Codec, Message as H1Message};
use actix_http::{ConnectionType, Request, RequestHead, Response};
use actix_web::HttpResponse;
use actix_web::http::header::{self as ax, HeaderValue};
use actix_web::http::{Method, StatusCode};
use futures_util::SinkExt;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::error::error_response;
use super::http::{Failure, ProxyState, unavailable, upstream_target};
use crate::control::{SessionActor, SessionTimers};
use crate::error::Error;
use crate::headers::{self, FORWARDED_FOR, FORWARDED_PROTO, REQUEST_ID};
use crate::routing::Route;
use crate::routing::handoff::{self, CloseSession, MoveTo};
use crate::routing::stats::SessionGuard;
use crate::telemetry::ACCESS_TARGET;
use crate::upstream::h1::{BackendStream, exchange};

/// Largest WebSocket message relayed either way; bigger ones close the session with 1009.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Read buffer of each end of a session. PERF-NOTES: tungstenite's 128 KiB default stays
/// resident per connection; 1 KiB measured as fast as 4 KiB for small messages, and bigger
/// frames grow the buffer as they need.
const READ_BUFFER_BYTES: usize = 1024;
/// Client headers the backend's handshake carries.
const FORWARDED_HANDSHAKE_HEADERS: &[&str] = &[
    "sec-websocket-protocol",
    "cookie",
    "authorization",
    "origin",
    "user-agent",
];

/// Frame limits and buffers of both ends of a session.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

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

/// What opening a session came to.
enum Opened {
    /// The backend accepted: upgrade the client with this 101 and relay.
    Session {
        switching: Response<()>,
        backend: Box<WebSocketStream<BackendStream>>,
        guard: SessionGuard,
        backend_id: std::sync::Arc<str>,
        /// A sticky session's id, whose record the session keeps alive.
        sticky: Option<uuid::Uuid>,
        pool: std::sync::Arc<crate::routing::PoolHandle>,
    },
    /// The backend refused the handshake: the client hears its answer.
    Refused {
        answer: HttpResponse,
        backend_id: std::sync::Arc<str>,
    },
}

/// Serves one upgrade request on its connection: a session, or an error answer after which
/// the connection closes. Requests actix hands over that are not WebSocket upgrades (a
/// `CONNECT`, an upgrade without `Connection: upgrade`) are refused with 400: the router is a
/// reverse proxy, not a tunnel.
pub async fn upgrade<T>(req: Request, mut framed: Framed<T, Codec>, state: &ProxyState)
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let started = Instant::now();
    let head = req.head();
    let request_id = headers::request_id(&head.headers);
    if let Some(err) = super::http::over_connection_limit(req.conn_data(), state) {
        let answer: HttpResponse =
            error_response::<BoxBody>(&err, &request_id).map_into_boxed_body();
        answer_and_close(framed, answer.into()).await;
        return;
    }
    let host = super::http::request_host(head);
    let route = state.table.load().find(host, head.uri.path()).cloned();
    if let Err(err) = super::http::head_within_limits(head, &state.limits) {
        let answer: HttpResponse =
            error_response::<BoxBody>(&err, &request_id).map_into_boxed_body();
        answer_and_close(framed, answer.into()).await;
        return;
    }
    // Before the match: a shared limit is checked in Redis, so the check awaits. Only real
    // upgrades are charged (anything else is refused below anyway).
    let limited = match &route {
        Some(route)
            if is_websocket(head)
                && let Some(rates) = &route.rates =>
        {
            rates
                .check(
                    &route.id,
                    &head.headers,
                    state.client_ip(head.peer_addr.map(|a| a.ip()), &head.headers),
                    state.sessions.store.shared().map(|s| &**s),
                )
                .await
                .err()
        }
        _ => None,
    };
    let outcome = match &route {
        None => Err((
            Error::NoRoute {
                host: host.map(str::to_string),
                path: head.uri.path().to_string(),
            },
            None,
        )),
        Some(_) if !is_websocket(head) => Err((
            Error::BadRequest {
                reason: "only WebSocket upgrades (GET with Upgrade: websocket and Connection: upgrade) are served; tunnels are not".to_string(),
            },
            None,
        )),
        Some(_) if let Some(err) = limited => Err((err, None)),
        Some(route) => match move_to(&head.headers, head.peer_addr.map(|a| a.ip()), route, state) {
            Some(region) => {
                let cause = match state.directory.local.evacuating() {
                    true => "evacuation",
                    false => "overflow",
                };
                tell_to_move(head, framed, &region.name, cause, &request_id).await;
                return;
            }
            None => open(head, route, state, &request_id).await,
        },
    };
    let (status, backend) = match outcome {
        Ok(Opened::Session {
            switching,
            backend,
            guard,
            backend_id,
            sticky,
            pool,
        }) => {
            let status = switching.status().as_u16();
            // A session lives by its route's idle timeout (a route exists: it was opened).
            let idle = route
                .as_ref()
                .map_or(Duration::from_secs(60), |r| r.timeouts.idle);
            if framed
                .send(H1Message::Item((switching, BodySize::None)))
                .await
                .is_ok()
            {
                let parts = framed.into_parts();
                let client = WebSocketStream::from_partially_read(
                    parts.io,
                    parts.read_buf.to_vec(),
                    Role::Server,
                    Some(ws_config()),
                )
                .await;
                let record = sticky.map(|id| (state.sessions.store.clone(), id));
                SessionActor::new(
                    client,
                    *backend,
                    guard,
                    record,
                    pool,
                    backend_id.clone(),
                    SessionTimers {
                        linger: state.sessions.handoff_linger,
                        idle,
                    },
                )
                .start();
            }
            (status, Some(backend_id))
        }
        Ok(Opened::Refused { answer, backend_id }) => {
            let status = answer.status().as_u16();
            answer_and_close(framed, answer.into()).await;
            (status, Some(backend_id))
        }
        Err((err, backend)) => {
            if let Some(route) = &route {
                tracing::warn!(route = %route.id, request_id = ?request_id, error = %err, "WebSocket session failed to open");
            }
            let answer: HttpResponse =
                error_response::<BoxBody>(&err, &request_id).map_into_boxed_body();
            let status = answer.status().as_u16();
            answer_and_close(framed, answer.into()).await;
            (status, backend)
        }
    };
    if state.access_log {
        tracing::info!(
            target: ACCESS_TARGET,
            method = %head.method,
            path = %head.uri.path(),
            status,
            backend = backend.as_deref().unwrap_or("-"),
            peer = %head.peer_addr.map_or_else(|| "-".to_string(), |a| a.ip().to_string()),
            duration_us = started.elapsed().as_micros() as u64,
            request_id = %String::from_utf8_lossy(request_id.as_bytes()),
        );
    }
}

/// The region a new session should move to: any usable remote region while this one
/// evacuates, else the route's overflow target.
fn move_to(
    headers: &ax::HeaderMap,
    peer: Option<std::net::IpAddr>,
    route: &Route,
    state: &ProxyState,
) -> Option<std::sync::Arc<crate::regions::RegionEntry>> {
    if state.directory.local.evacuating() && !super::region::hopped(headers, peer, state) {
        return state.directory.nearest_remote();
    }
    super::region::overflow_target(headers, peer, route, state)
}

/// Upgrades the client and closes at once with `4003` and where to go (`moved; delivered=0;
/// retry_after_ms=…; region=…`): what the SDK reads as "reconnect to that region".
async fn tell_to_move<T>(
    head: &RequestHead,
    mut framed: Framed<T, Codec>,
    region: &str,
    cause: &'static str,
    request_id: &HeaderValue,
) where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    if actix_http::ws::verify_handshake(head).is_err() {
        let answer = error_response::<BoxBody>(
            &Error::BadRequest {
                reason: "bad WebSocket handshake".to_string(),
            },
            request_id,
        );
        answer_and_close(framed, answer.map_into_boxed_body().into()).await;
        return;
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
        return;
    }
    let parts = framed.into_parts();
    let mut ws = WebSocketStream::from_partially_read(
        parts.io,
        parts.read_buf.to_vec(),
        Role::Server,
        Some(ws_config()),
    )
    .await;
    let close = CloseSession {
        to: MoveTo::Region(Some(region.to_string())),
        retry_after: handoff::stagger_jitter(),
        cause,
    };
    let frame = CloseFrame {
        code: close.to.code().into(),
        reason: close.reason(Some(0)).into(),
    };
    let closing = async {
        let _ = ws.close(Some(frame)).await;
        while let Some(Ok(_)) = futures_util::StreamExt::next(&mut ws).await {}
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), closing).await;
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

/// Places the session and makes the backend's handshake: a backend chosen by the pool's
/// balancer (its recorded one first on a sticky route), retrying connect failures on the next
/// candidate.
async fn open(
    head: &RequestHead,
    route: &Route,
    state: &ProxyState,
    request_id: &HeaderValue,
) -> Result<Opened, Failure> {
    // The client's own handshake is checked before any backend is bothered.
    actix_http::ws::verify_handshake(head).map_err(|err| {
        (
            Error::BadRequest {
                reason: format!("bad WebSocket handshake: {err}"),
            },
            None,
        )
    })?;
    let proto = state.proto;
    let snapshot = route.pool.load_full();
    if snapshot.eligible.is_empty() {
        return Err(unavailable(route, &snapshot));
    }
    // A sticky route resumes a known session on its recorded backend if that one still takes
    // sessions; otherwise the session is placed anew and the record moves.
    let sticky = match route.sticky {
        true => Some(state.sessions.sticky(&head.headers, &route.pool.id).await),
        false => None,
    };
    let mut order = snapshot.balancer.candidates(&snapshot.eligible, 0);
    if let Some(sticky) = &sticky {
        order = sticky.prefer(order, &snapshot.eligible);
    }
    let target = upstream_target(&head.uri, route);
    let mut attempts = 0;
    let mut full = true;
    let mut last_error = None;
    for index in order {
        if attempts > route.retries {
            break;
        }
        let backend = &snapshot.eligible[index];
        // Full backends (max_sessions) take no new session; when all are full, the client
        // gets 503 + Retry-After before any upgrade, and existing sessions are untouched.
        let Some(guard) = backend.stats.try_start_session() else {
            continue;
        };
        full = false;
        attempts += 1;
        let failed = |err: Error| (err, Some(backend.id.clone()));
        let connecting =
            exchange::connect_stream(backend.addr, backend.tls.as_deref(), route.timeouts.connect);
        let stream = match connecting.await {
            Ok(stream) => stream,
            Err(err) => {
                backend.stats.record_connect_failure();
                backend.stats.record_outcome(false);
                last_error = Some(failed(Error::UpstreamConnect {
                    backend: backend.id.to_string(),
                    addr: backend.addr,
                    source: Box::new(err),
                }));
                continue;
            }
        };
        let request = backend_request(head, &backend.authority, &target, proto, request_id)
            .map_err(|reason| failed(Error::BadRequest { reason }))?;
        let handshake =
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()));
        let (ws, answer) = match tokio::time::timeout(route.timeouts.response, handshake).await {
            Err(_) => {
                backend.stats.record_outcome(false);
                return Err(failed(Error::UpstreamTimeout {
                    backend: backend.id.to_string(),
                    after: route.timeouts.response,
                }));
            }
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(refusal))) => {
                backend
                    .stats
                    .record_outcome(refusal.status().as_u16() < 500);
                return Ok(Opened::Refused {
                    answer: refused(*refusal, request_id),
                    backend_id: backend.id.clone(),
                });
            }
            Ok(Err(err)) => {
                backend.stats.record_outcome(false);
                return Err(failed(Error::Upstream {
                    backend: backend.id.to_string(),
                    source: Box::new(err),
                }));
            }
            Ok(Ok(done)) => done,
        };
        backend.stats.record_outcome(true);
        let protocol = answer
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok());
        let mut switching = actix_http::ws::handshake_response(head);
        if let Some(protocol) = protocol
            && let Ok(v) = HeaderValue::from_str(protocol)
        {
            switching.insert_header((ax::SEC_WEBSOCKET_PROTOCOL, v));
        }
        if let Some(id) = answer.headers().get("x-backend-id")
            && let Ok(v) = HeaderValue::from_bytes(id.as_bytes())
        {
            switching.insert_header((ax::HeaderName::from_static("x-backend-id"), v));
        }
        switching.insert_header((ax::HeaderName::from_static(REQUEST_ID), request_id.clone()));
        let mut switching = switching.finish().drop_body();
        if let Some(sticky) = &sticky {
            sticky.landed(
                &state.sessions,
                &route.pool.id,
                &backend.id,
                switching.headers_mut(),
                proto == "https",
            );
        }
        return Ok(Opened::Session {
            switching,
            backend: Box::new(ws),
            guard,
            backend_id: backend.id.clone(),
            sticky: sticky.as_ref().map(|s| s.id()),
            pool: route.pool.clone(),
        });
    }
    if full {
        let pool = route.pool.id.to_string();
        return Err((Error::Overloaded { pool }, None));
    }
    Err(last_error.unwrap_or_else(|| unavailable(route, &snapshot)))
}

/// The backend's refusal (401, 404, 503…) as the client's response.
fn refused(refusal: http::Response<Option<Vec<u8>>>, request_id: &HeaderValue) -> HttpResponse {
    let status = StatusCode::from_u16(refusal.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = HttpResponse::build(status);
    for (name, value) in refusal.headers() {
        if let (Ok(n), Ok(v)) = (
            ax::HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) && !headers::is_hop_by_hop(n.as_str())
            && n != ax::CONTENT_LENGTH
        {
            resp.append_header((n, v));
        }
    }
    resp.insert_header((REQUEST_ID, request_id.clone()));
    resp.body(refusal.into_body().unwrap_or_default())
}

/// The backend's handshake request: standard WebSocket headers (with a fresh key), the
/// client's Host and forwarded headers.
fn backend_request(
    head: &RequestHead,
    authority: &http::uri::Authority,
    target: &str,
    proto: &'static str,
    request_id: &HeaderValue,
) -> Result<http::Request<()>, String> {
    let mut request = format!("ws://{authority}{target}")
        .into_client_request()
        .map_err(|err| format!("cannot build the backend handshake: {err}"))?;
    let headers = request.headers_mut();
    for name in FORWARDED_HANDSHAKE_HEADERS {
        for value in head.headers.get_all(*name) {
            if let Ok(v) = http::HeaderValue::from_bytes(value.as_bytes()) {
                headers.append(http::HeaderName::from_static(name), v);
            }
        }
    }
    if let Some(host) = head.headers.get(ax::HOST)
        && let Ok(v) = http::HeaderValue::from_bytes(host.as_bytes())
    {
        headers.insert(http::header::HOST, v);
    }
    let mut forwarded_for: Vec<u8> = Vec::new();
    for value in head.headers.get_all(FORWARDED_FOR) {
        forwarded_for.extend_from_slice(value.as_bytes());
        forwarded_for.extend_from_slice(b", ");
    }
    if let Some(peer) = head.peer_addr {
        forwarded_for.extend_from_slice(peer.ip().to_string().as_bytes());
    }
    if let Ok(v) = http::HeaderValue::from_bytes(&forwarded_for) {
        headers.insert(http::HeaderName::from_static(FORWARDED_FOR), v);
    }
    headers.insert(
        http::HeaderName::from_static(FORWARDED_PROTO),
        http::HeaderValue::from_static(proto),
    );
    if let Ok(v) = http::HeaderValue::from_bytes(request_id.as_bytes()) {
        headers.insert(http::HeaderName::from_static(REQUEST_ID), v);
    }
    Ok(request)
}
