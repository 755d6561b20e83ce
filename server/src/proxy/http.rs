//! The proxy handler: route, pick, forward, stream back.
//!
//! Never awaits an actor mailbox. Per request it loads the route table and the pool snapshot
//! (lock-free), asks the pool's balancer for candidates, bumps the chosen backend's in-flight
//! atomic, forwards, and reports latency and status through atomics and metric handles.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BodySize, EitherBody};
use actix_web::http::StatusCode;
use actix_web::http::header::{self as ax};
use actix_web::{HttpRequest, HttpResponse, web};
use arc_swap::ArcSwap;
use http::uri::{PathAndQuery, Scheme, Uri};

use super::body::{ClientBody, UpstreamBody};
use super::error::error_response;
use super::headers;
use super::upstream;
use crate::balance::hash::hash_bytes;
use crate::config::HashKey;
use crate::error::Error;
use crate::routing::stats::now_ns;
use crate::routing::{Route, RouteTable};
use crate::telemetry::ACCESS_TARGET;

/// What every worker shares.
pub struct ProxyState {
    pub table: Arc<ArcSwap<RouteTable>>,
    pub access_log: bool,
    /// `X-Forwarded-Proto` of this listener.
    pub proto: &'static str,
}

type Response = HttpResponse<EitherBody<ClientBody>>;

/// The default service of the public listener: every request comes here.
pub async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ProxyState>,
) -> Response {
    let started = Instant::now();
    let request_id = headers::request_id(req.headers());
    let host = req
        .headers()
        .get(ax::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host());
    let route = state.table.load().find(host, req.path()).cloned();
    let (resp, backend) = match route {
        None => {
            let err = Error::NoRoute {
                host: host.map(str::to_string),
                path: req.path().to_string(),
            };
            (error_response(&err, &request_id), None)
        }
        Some(route) => {
            let outcome = forward(&req, payload, &route, &state, &request_id).await;
            route.latency.record(started.elapsed().as_secs_f64());
            match outcome {
                Ok((resp, backend)) => (resp, Some(backend)),
                Err((err, backend)) => {
                    tracing::warn!(route = %route.id, request_id = ?request_id, error = %err, "request failed");
                    (error_response(&err, &request_id), backend)
                }
            }
        }
    };
    if state.access_log {
        tracing::info!(
            target: ACCESS_TARGET,
            method = %req.method(),
            path = %req.path(),
            status = resp.status().as_u16(),
            backend = backend.as_deref().unwrap_or("-"),
            peer = %req.peer_addr().map_or_else(|| "-".to_string(), |a| a.ip().to_string()),
            duration_us = started.elapsed().as_micros() as u64,
            request_id = %String::from_utf8_lossy(request_id.as_bytes()),
        );
    }
    resp
}

/// Forwards to the pool's first usable candidate, trying the next after a connect failure
/// while the route's retries last (bodiless requests only: a streamed body cannot be replayed).
async fn forward(
    req: &HttpRequest,
    payload: web::Payload,
    route: &Route,
    state: &ProxyState,
    request_id: &http::HeaderValue,
) -> Result<(Response, Arc<str>), (Error, Option<Arc<str>>)> {
    let snapshot = route.pool.load_full();
    if snapshot.eligible.is_empty() {
        return Err((
            Error::NoHealthyBackend {
                pool: route.pool.id.to_string(),
            },
            None,
        ));
    }
    let peer_ip = req.peer_addr().map(|a| a.ip());
    let key = route
        .hash_key
        .as_ref()
        .map_or(0, |k| hash_key(k, req, peer_ip));
    let mut candidates = snapshot.balancer.candidates(&snapshot.eligible, key);

    let path_and_query = upstream_path_and_query(req, route);
    let method = headers::method(req.method());
    let mut upstream_headers =
        headers::upstream_request_headers(req.headers(), peer_ip, state.proto, request_id);
    let length = body_length(req);
    let mut body = match length {
        Some(0) => None,
        length => Some(UpstreamBody::from_payload(payload, length)),
    };
    let attempts = if body.is_some() { 1 } else { 1 + route.retries };
    let no_body_reply = req.method() == actix_web::http::Method::HEAD;

    let mut last_error = None;
    for attempt in 0..attempts {
        let Some(index) = candidates.next() else {
            break;
        };
        let backend = &snapshot.eligible[index];
        let last = attempt + 1 == attempts;
        let mut up = http::Request::new(body.take().unwrap_or(UpstreamBody::Empty));
        *up.method_mut() = method.clone();
        *up.uri_mut() = upstream_uri(&backend.authority, path_and_query.clone());
        *up.headers_mut() = if last {
            std::mem::take(&mut upstream_headers)
        } else {
            upstream_headers.clone()
        };

        let inflight = backend.stats.start_request();
        let sent = Instant::now();
        let pending = upstream::send(route.timeouts.connect, up);
        let result = match tokio::time::timeout(route.timeouts.response, pending).await {
            Ok(result) => result,
            Err(_) => {
                backend.stats.record_status(route.slot, 504);
                return Err((
                    Error::UpstreamTimeout {
                        backend: backend.id.to_string(),
                        after: route.timeouts.response,
                    },
                    Some(backend.id.clone()),
                ));
            }
        };
        match result {
            Ok(resp) => {
                backend.stats.ewma.observe(sent.elapsed(), now_ns());
                let status = resp.status().as_u16();
                backend.stats.record_status(route.slot, status);
                let resp = client_response(resp, no_body_reply, route, inflight, request_id);
                return Ok((resp, backend.id.clone()));
            }
            Err(err) if err.is_connect() => {
                backend.stats.record_connect_failure();
                tracing::debug!(backend = %backend.id, addr = %backend.addr, error = %err, "connect failed");
                last_error = Some((
                    Error::UpstreamConnect {
                        backend: backend.id.to_string(),
                        addr: backend.addr,
                        source: Box::new(err),
                    },
                    Some(backend.id.clone()),
                ));
            }
            Err(err) => {
                backend.stats.record_status(route.slot, 502);
                return Err((
                    Error::Upstream {
                        backend: backend.id.to_string(),
                        source: Box::new(err),
                    },
                    Some(backend.id.clone()),
                ));
            }
        }
    }
    let (err, backend) = last_error.expect("at least one attempt ran: eligible is not empty");
    if let Some(b) = snapshot
        .eligible
        .iter()
        .find(|b| Some(&b.id) == backend.as_ref())
    {
        b.stats.record_status(route.slot, 502);
    }
    Err((err, backend))
}

fn client_response(
    resp: http::Response<hyper::body::Incoming>,
    head_request: bool,
    route: &Route,
    inflight: crate::routing::InflightGuard,
    request_id: &http::HeaderValue,
) -> Response {
    let (parts, body) = resp.into_parts();
    let status = StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    // actix-web writes Content-Length from the body size, except for 304 where it keeps the
    // header as given; for HEAD it writes the size but sends no body.
    let (size, bodiless) = if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        (BodySize::None, true)
    } else if head_request {
        let announced = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        (announced.map_or(BodySize::None, BodySize::Sized), true)
    } else {
        match hyper::body::Body::size_hint(&body).exact() {
            Some(n) => (BodySize::Sized(n), false),
            None => (BodySize::Stream, false),
        }
    };
    let keep_length = status == StatusCode::NOT_MODIFIED;
    let body = ClientBody::new(body, size, bodiless, route.timeouts.idle, inflight);
    let mut out = HttpResponse::with_body(status, EitherBody::left(body));
    headers::client_response_headers(&parts.headers, keep_length, out.headers_mut());
    if let Ok(v) = ax::HeaderValue::from_bytes(request_id.as_bytes()) {
        out.headers_mut()
            .insert(ax::HeaderName::from_static(headers::REQUEST_ID), v);
    }
    out
}

/// `Content-Length` of the client's body: `Some(0)` when there is none, `None` when chunked.
fn body_length(req: &HttpRequest) -> Option<u64> {
    if req.headers().contains_key(ax::TRANSFER_ENCODING) {
        return None;
    }
    Some(
        req.headers()
            .get(ax::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    )
}

fn upstream_path_and_query(req: &HttpRequest, route: &Route) -> PathAndQuery {
    let path = route.upstream_path(req.path());
    let built;
    let text = match req.uri().query() {
        None if path.len() == req.path().len() => {
            req.uri().path_and_query().map_or("/", |pq| pq.as_str())
        }
        None => path,
        Some(q) => {
            built = format!("{path}?{q}");
            &built
        }
    };
    PathAndQuery::try_from(text).unwrap_or_else(|_| PathAndQuery::from_static("/"))
}

fn upstream_uri(authority: &http::uri::Authority, pq: PathAndQuery) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority.clone());
    parts.path_and_query = Some(pq);
    Uri::from_parts(parts).expect("scheme, authority and path make a valid URI")
}

fn hash_key(key: &HashKey, req: &HttpRequest, peer_ip: Option<IpAddr>) -> u64 {
    if let HashKey::Header(name) = key
        && let Some(value) = req.headers().get(name.as_str())
    {
        return hash_bytes(value.as_bytes());
    }
    match peer_ip {
        Some(IpAddr::V4(ip)) => hash_bytes(&ip.octets()),
        Some(IpAddr::V6(ip)) => hash_bytes(&ip.octets()),
        None => 0,
    }
}
