//! WebSocket sessions through the router: the backend handshake first (so a refusing or dead
//! backend is answered with a proper status before the client is upgraded), then the client's
//! upgrade, then one [`SessionActor`] per session that pumps frames both ways on this worker.
//!
//! The handshake forwards the client's subprotocols, cookies, `Authorization`, `Origin` and
//! `User-Agent`, plus `X-Forwarded-For`/`-Proto` and `X-Request-Id`; the backend's chosen
//! subprotocol and `X-Backend-Id` come back on the 101. Backend connections keep small
//! buffers (PERF-NOTES: tungstenite's 128 KiB default read buffer stays resident per session).

use std::sync::Arc;

use actix::Actor;
use actix_web::body::BoxBody;
use actix_web::http::StatusCode;
use actix_web::http::header::{self as ax, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::h1::exchange;
use super::headers::{FORWARDED_FOR, FORWARDED_PROTO, REQUEST_ID};
use super::http::{Failure, ProxyState, unavailable};
use crate::control::SessionActor;
use crate::error::Error;
use crate::routing::Route;

/// Largest WebSocket message relayed either way; bigger ones close the session with 1009.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Read buffer of backend WebSocket connections.
const BACKEND_READ_BUFFER_BYTES: usize = 4096;
/// Client headers the backend's handshake carries.
const FORWARDED_HANDSHAKE_HEADERS: &[&str] = &[
    "sec-websocket-protocol",
    "cookie",
    "authorization",
    "origin",
    "user-agent",
];

/// A WebSocket upgrade request (RFC 6455 §4.1).
pub fn is_websocket(req: &HttpRequest) -> bool {
    let has = |name: ax::HeaderName, token: &str| {
        req.headers().get_all(name).any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    req.method() == actix_web::http::Method::GET
        && has(ax::UPGRADE, "websocket")
        && has(ax::CONNECTION, "upgrade")
}

/// Opens a session: a backend chosen by the pool's balancer (retrying connect failures on
/// the next candidate), its handshake, then the client's upgrade.
pub async fn proxy(
    req: &HttpRequest,
    payload: web::Payload,
    route: &Route,
    target: &str,
    state: &ProxyState,
    request_id: &HeaderValue,
) -> Result<(HttpResponse<BoxBody>, Arc<str>), Failure> {
    let proto = state.proto;
    let snapshot = route.pool.load_full();
    if snapshot.eligible.is_empty() {
        return Err(unavailable(route, &snapshot));
    }
    // Full backends (max_sessions) take no new session; when all are full, the client gets
    // 503 + Retry-After before any upgrade, and existing sessions are untouched.
    // A sticky route resumes a known session on its recorded backend if that one still takes
    // sessions; otherwise the session is placed anew and the record moves.
    let sticky = match route.sticky {
        true => Some(state.sessions.sticky(req, &route.pool.id).await),
        false => None,
    };
    let mut order = snapshot.balancer.candidates(&snapshot.eligible, 0);
    if let Some(sticky) = &sticky {
        order = sticky.prefer(order, &snapshot.eligible);
    }
    let candidates: Vec<usize> = order
        .filter(|&i| !snapshot.eligible[i].stats.sessions_full())
        .collect();
    if candidates.is_empty() {
        let pool = route.pool.id.to_string();
        return Err((Error::Overloaded { pool }, None));
    }
    let mut last_error = None;
    for index in candidates.into_iter().take(1 + route.retries as usize) {
        let backend = &snapshot.eligible[index];
        let failed = |err: Error| (err, Some(backend.id.clone()));
        let stream = match exchange::connect_stream(backend.addr, route.timeouts.connect).await {
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
        let request = backend_request(req, &backend.authority, target, proto, request_id)
            .map_err(|reason| failed(Error::BadRequest { reason }))?;
        let config = WebSocketConfig::default()
            .read_buffer_size(BACKEND_READ_BUFFER_BYTES)
            .write_buffer_size(0)
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let handshake = tokio_tungstenite::client_async_with_config(request, stream, Some(config));
        let (ws, answer) = match tokio::time::timeout(route.timeouts.response, handshake).await {
            Err(_) => {
                backend.stats.record_outcome(false);
                return Err(failed(Error::UpstreamTimeout {
                    backend: backend.id.to_string(),
                    after: route.timeouts.response,
                }));
            }
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(refusal))) => {
                // The backend said no (401, 404, 503…): the client hears its answer.
                backend
                    .stats
                    .record_outcome(refusal.status().as_u16() < 500);
                let status = StatusCode::from_u16(refusal.status().as_u16())
                    .unwrap_or(StatusCode::BAD_GATEWAY);
                let mut resp = HttpResponse::build(status);
                for (name, value) in refusal.headers() {
                    if let (Ok(n), Ok(v)) = (
                        ax::HeaderName::from_bytes(name.as_str().as_bytes()),
                        HeaderValue::from_bytes(value.as_bytes()),
                    ) && !super::headers::is_hop_by_hop(n.as_str())
                        && n != ax::CONTENT_LENGTH
                    {
                        resp.append_header((n, v));
                    }
                }
                resp.insert_header((REQUEST_ID, request_id.clone()));
                let body = refusal.into_body().unwrap_or_default();
                return Ok((resp.body(body), backend.id.clone()));
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
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let protocols: Vec<&str> = protocol.iter().map(String::as_str).collect();
        let (mut resp, session, messages) =
            actix_ws::handle_with_protocols(req, payload, &protocols).map_err(|err| {
                failed(Error::BadRequest {
                    reason: format!("bad WebSocket upgrade: {err}"),
                })
            })?;
        if let Some(id) = answer.headers().get("x-backend-id")
            && let Ok(v) = HeaderValue::from_bytes(id.as_bytes())
        {
            resp.headers_mut()
                .insert(ax::HeaderName::from_static("x-backend-id"), v);
        }
        resp.headers_mut()
            .insert(ax::HeaderName::from_static(REQUEST_ID), request_id.clone());
        if let Some(sticky) = &sticky {
            sticky.landed(
                &state.sessions,
                &route.pool.id,
                &backend.id,
                resp.headers_mut(),
                proto == "https",
            );
        }
        let messages = messages
            .max_frame_size(MAX_MESSAGE_BYTES)
            .aggregate_continuations()
            .max_continuation_size(MAX_MESSAGE_BYTES);
        SessionActor::new(session, messages, ws, backend.stats.start_session()).start();
        return Ok((resp, backend.id.clone()));
    }
    Err(last_error.unwrap_or_else(|| unavailable(route, &snapshot)))
}

/// The backend's handshake request: standard WebSocket headers (with a fresh key), the
/// client's Host and forwarded headers.
fn backend_request(
    req: &HttpRequest,
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
        for value in req.headers().get_all(*name) {
            if let Ok(v) = http::HeaderValue::from_bytes(value.as_bytes()) {
                headers.append(http::HeaderName::from_static(name), v);
            }
        }
    }
    if let Some(host) = req.headers().get(ax::HOST)
        && let Ok(v) = http::HeaderValue::from_bytes(host.as_bytes())
    {
        headers.insert(http::header::HOST, v);
    }
    let mut forwarded_for: Vec<u8> = Vec::new();
    for value in req.headers().get_all(FORWARDED_FOR) {
        forwarded_for.extend_from_slice(value.as_bytes());
        forwarded_for.extend_from_slice(b", ");
    }
    if let Some(peer) = req.peer_addr() {
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
