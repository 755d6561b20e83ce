//! The proxy handler: route, pick, forward, stream back.
//!
//! Never awaits an actor mailbox. Per request it loads the route table and the pool snapshot
//! (lock-free), asks the pool's balancer for candidates, bumps the chosen backend's in-flight
//! atomic, exchanges with the backend over this worker's own connection pool ([`crate::upstream::h1`]),
//! and reports latency and status through atomics and metric handles.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BodySize, EitherBody};
use actix_web::http::header::{self as ax, HeaderValue};
use actix_web::http::{Method, StatusCode, Uri};
use actix_web::{HttpRequest, HttpResponse, web};
use arc_swap::ArcSwap;
use bytes::BytesMut;

use super::error::error_response;
use crate::balance::hash::hash_bytes;
use crate::clock::now_ns;
use crate::config::HashKey;
use crate::error::Error;
use crate::headers;
use crate::lifecycle::Readiness;
use crate::regions::Directory;
use crate::routing::{Route, RouteTable};
use crate::session::Sessions;
use crate::telemetry::ACCESS_TARGET;
use crate::upstream::h1::codec::{self, Forwarding};
use crate::upstream::h1::exchange::{self, ExchangeError, RequestBody};
use crate::upstream::h1::{Framing, RequestFraming, UpstreamBody};

/// What every worker of a listener shares.
#[derive(Clone)]
pub struct ProxyState {
    pub table: Arc<ArcSwap<RouteTable>>,
    pub access_log: bool,
    /// `X-Forwarded-Proto` of this listener.
    pub proto: &'static str,
    pub sessions: Arc<Sessions>,
    pub directory: Arc<Directory>,
    pub ready: Arc<Readiness>,
    /// A plain listener set to redirect: every request gets a 308 to HTTPS on this port.
    pub redirect_https: Option<u16>,
    pub limits: crate::config::Limits,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<Vec<crate::config::Cidr>>,
}

impl ProxyState {
    /// The viewer's address: the peer, or — when the peer is a trusted proxy — the rightmost
    /// `X-Forwarded-For` address that is not a trusted proxy itself.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &ax::HeaderMap) -> Option<IpAddr> {
        headers::client_ip(peer, headers, &self.trusted_proxies)
    }
}

type Response = HttpResponse<EitherBody<UpstreamBody>>;
pub(crate) type Failure = (Error, Option<Arc<str>>);

/// The default service of the public listener: every request comes here.
pub async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ProxyState>,
) -> Response {
    let started = Instant::now();
    let conn = req.conn_data::<Arc<crate::conn::Conn>>();
    if let Some(err) = over_connection_limit(conn, &state) {
        return error_response(&err, &headers::request_id(req.headers()));
    }
    if let Some(port) = state.redirect_https {
        return redirect_to_https(&req, port);
    }
    if let Some(answer) = super::region::public_endpoint(&req, &state) {
        return answer;
    }
    let request_id = headers::request_id(req.headers());
    // Its place among the connection's streams, held until its answer's body is sent.
    let max_streams = state.limits.max_streams_per_connection;
    let stream = match conn.map(|conn| conn.open_stream(max_streams)) {
        Some(None) => {
            let err = Error::TooManyStreams { max: max_streams };
            return error_response(&err, &request_id);
        }
        opened => opened.flatten(),
    };
    if let Err(err) = head_within_limits(req.head(), &state.limits) {
        tracing::debug!(error = %err, "request head over a limit");
        return error_response(&err, &request_id);
    }
    let host = request_host(req.head());
    let route = state.table.load().find(host, req.path()).cloned();
    // Before the match: a shared limit is checked in Redis, so the check awaits.
    let limited = match &route {
        Some(route) if let Some(rates) = &route.rates => rates
            .check(
                &route.id,
                req.headers(),
                state.client_ip(req.peer_addr().map(|a| a.ip()), req.headers()),
                state.sessions.store.shared().map(|s| &**s),
            )
            .await
            .err(),
        _ => None,
    };
    let (resp, backend) = match route {
        None => {
            let err = Error::NoRoute {
                host: host.map(str::to_string),
                path: req.path().to_string(),
            };
            (error_response(&err, &request_id), None)
        }
        Some(_) if let Some(err) = &limited => (error_response(err, &request_id), None),
        Some(route) => {
            let outcome = match super::region::overflow_target(
                req.headers(),
                req.peer_addr().map(|a| a.ip()),
                &route,
                &state,
            ) {
                Some(region) => {
                    super::region::overflow(&req, payload, &route, region, &state, &request_id)
                        .await
                }
                None => match crate::policy::shed::admit(&route).await {
                    Ok(admission) => {
                        let answered =
                            forward(&req, payload, &route, Target::Local, &state, &request_id)
                                .await;
                        drop(admission);
                        answered
                    }
                    Err(err) => Err((err, None)),
                },
            };
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
    let resp = match stream {
        Some(stream) => resp.map_body(|_, body| match body {
            EitherBody::Left { body } => EitherBody::left(body.holding(stream)),
            answered => answered,
        }),
        None => resp,
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

/// Notes that the connection carried a request; the refusal its first request gets when the
/// connection is over `max_connections_per_ip`.
pub(crate) fn over_connection_limit(
    conn: Option<&Arc<crate::conn::Conn>>,
    state: &ProxyState,
) -> Option<Error> {
    let conn = conn?;
    conn.saw_request();
    conn.over_limit.then_some(Error::TooManyConnections {
        max: state.limits.max_connections_per_ip,
    })
}

/// Forwards to the pool's first candidate; on a failure before any answer byte reached the
/// client, tries the next candidate while the route's retries and retry budget last. Connect
/// failures are retried for any method; resets, head timeouts and a backend's 502/503 only for
/// idempotent methods (or routes with `retry_non_idempotent`). A body is retried only when it
/// was small enough to be kept (`retry_buffer_bytes`); a streamed one cannot be replayed.
pub(crate) async fn forward(
    req: &HttpRequest,
    payload: web::Payload,
    route: &Route,
    target: Target,
    state: &ProxyState,
    request_id: &HeaderValue,
) -> Result<(Response, Arc<str>), Failure> {
    let (snapshot, hop) = match target {
        Target::Local => (route.pool.load_full(), None),
        Target::Region(pool, from) => (pool, Some(from)),
    };
    if snapshot.eligible.is_empty() {
        return Err(unavailable(route, &snapshot));
    }
    // X-Forwarded-For gets the immediate peer appended; hashing sees the viewer.
    let client_ip = req.peer_addr().map(|a| a.ip());
    let viewer = state.client_ip(client_ip, req.headers());
    let key = route
        .hash_key
        .as_ref()
        .map_or(0, |k| hash_key(k, req, viewer));
    let mut candidates = snapshot.balancer.candidates(&snapshot.eligible, key);
    // A sticky route sends a known session to its recorded backend while it takes requests.
    let sticky = match route.sticky && hop.is_none() {
        true => Some(state.sessions.sticky(req.headers(), &route.pool.id).await),
        false => None,
    };
    if let Some(sticky) = &sticky {
        candidates = sticky.prefer(candidates, &snapshot.eligible);
    }

    let framing = request_framing(req.headers());
    if let RequestFraming::Length(n) = framing
        && route.max_body_bytes > 0
        && n > route.max_body_bytes
    {
        // A small refused body is read and dropped first, so the connection stays in step
        // (and is not reset under the client's feet while it still sends); a large one is
        // refused at once and the connection closed.
        if n <= DRAIN_REFUSED_BODY_BYTES {
            let _ = exchange::buffer_body(payload, n, route.timeouts.idle).await;
        }
        return Err((
            Error::TooLarge {
                what: "body",
                size: n,
                max: route.max_body_bytes,
            },
            None,
        ));
    }
    // actix-web treats a request with `Upgrade` as a tunnel whose body runs until the client
    // closes, whatever its Content-Length says; forwarding that body could smuggle a second
    // request to the backend. WebSocket proxying comes with the sessions issue; until then an
    // upgrade request is forwarded without its upgrade, and only if it has no body.
    let upgrade = req.headers().contains_key(ax::UPGRADE);
    if upgrade && framing != RequestFraming::None && framing != RequestFraming::Length(0) {
        return Err((
            Error::BadRequest {
                reason: "a request asking for a protocol upgrade must not carry a body".to_string(),
            },
            None,
        ));
    }
    let fallback_host = snapshot.eligible[0].authority.as_str();
    let mut head = BytesMut::new();
    codec::write_request_head(
        &mut head,
        req.method(),
        &upstream_target(req.uri(), route),
        req.headers(),
        &Forwarding {
            client_ip,
            proto: state.proto,
            request_id: request_id.as_bytes(),
            fallback_host,
            hop: hop.as_deref(),
        },
        framing,
    );
    // A small body is read whole first so a retry can send it again; a larger one (or one of
    // unknown length) is streamed and never retried.
    let mut body = match framing {
        RequestFraming::None | RequestFraming::Length(0) => RequestBody::None,
        RequestFraming::Length(n) if route.retries > 0 && n <= route.retry_buffer_bytes => {
            match exchange::buffer_body(payload, n, route.timeouts.idle).await {
                Ok(bytes) => RequestBody::Buffered(bytes),
                Err(ExchangeError::ClientBody(reason)) => {
                    return Err((Error::BadRequest { reason }, None));
                }
                Err(err) => {
                    let reason = err.to_string();
                    return Err((Error::BadRequest { reason }, None));
                }
            }
        }
        framing => RequestBody::Stream {
            payload,
            framing,
            limit: route.max_body_bytes,
        },
    };
    let attempts = if body.replayable() {
        1 + route.retries
    } else {
        1
    };
    let head_request = req.method() == Method::HEAD;
    let idempotent = is_idempotent(req.method());
    let retryable_method = idempotent || route.retry_non_idempotent;
    route.budget.deposit();

    let mut last_error = None;
    for attempt in 0..attempts {
        let Some(index) = candidates.next() else {
            break;
        };
        let backend = &snapshot.eligible[index];
        // Whether a failure of this attempt may be retried (the budget is asked only then).
        let another = attempt + 1 < attempts && candidates.clone().next().is_some();
        let inflight = backend.stats.start_request();
        let sent = Instant::now();
        let failed = |err: Error| (err, Some(backend.id.clone()));
        let exchanged = crate::upstream::h1::exchange(
            backend.addr,
            backend.tls.as_deref(),
            &head,
            &mut body,
            head_request,
            idempotent,
            &route.timeouts,
        );
        let err = match exchanged.await {
            Ok((conn, answer)) => {
                backend.stats.ewma.observe(sent.elapsed(), now_ns());
                backend.stats.record_status(route.slot, answer.status);
                backend.stats.record_outcome(answer.status < 500);
                // A backend's 502/503 before any byte reached the client: another backend may
                // do better. Its answer is dropped (and its connection closed) only once a
                // retry is granted; otherwise it goes to the client unchanged.
                if matches!(answer.status, 502 | 503)
                    && retryable_method
                    && another
                    && route.budget.try_withdraw()
                {
                    tracing::debug!(backend = %backend.id, status = answer.status, "retrying on another backend");
                    continue;
                }
                // Another region's router answered: its own errors pass through.
                let from_router = hop.is_some();
                let mut resp = client_response(
                    conn,
                    answer,
                    head_request,
                    route,
                    inflight,
                    request_id,
                    from_router,
                );
                if let Some(sticky) = &sticky {
                    let secure = state.proto == "https";
                    sticky.landed(
                        &state.sessions,
                        &route.pool.id,
                        &backend.id,
                        resp.headers_mut(),
                        secure,
                    );
                }
                return Ok((resp, backend.id.clone()));
            }
            Err(err) => err,
        };
        // The client's fault is not the backend's.
        if !matches!(
            err,
            ExchangeError::ClientBody(_) | ExchangeError::BodyTooLarge(_)
        ) {
            backend.stats.record_outcome(false);
        }
        let (error, retryable) = match err {
            err if err.is_connect() => {
                backend.stats.record_connect_failure();
                tracing::debug!(backend = %backend.id, addr = %backend.addr, error = %err, "connect failed");
                let error = Error::UpstreamConnect {
                    backend: backend.id.to_string(),
                    addr: backend.addr,
                    source: Box::new(err),
                };
                (error, true)
            }
            ExchangeError::ClientBody(reason) => return Err(failed(Error::BadRequest { reason })),
            ExchangeError::BodyTooLarge(max) => {
                return Err(failed(Error::TooLarge {
                    what: "body",
                    size: max + 1,
                    max,
                }));
            }
            ExchangeError::HeadTimeout(after) | ExchangeError::WriteTimeout(after) => {
                backend.stats.record_status(route.slot, 504);
                let error = Error::UpstreamTimeout {
                    backend: backend.id.to_string(),
                    after,
                };
                (error, retryable_method)
            }
            err => {
                backend.stats.record_status(route.slot, 502);
                let error = Error::Upstream {
                    backend: backend.id.to_string(),
                    source: Box::new(err),
                };
                (error, retryable_method)
            }
        };
        if !(retryable && another && route.budget.try_withdraw()) {
            if matches!(error, Error::UpstreamConnect { .. }) {
                backend.stats.record_status(route.slot, 502);
            }
            return Err(failed(error));
        }
        last_error = Some(failed(error));
    }
    Err(last_error.unwrap_or_else(|| unavailable(route, &snapshot)))
}

/// Answers a request that asks `Expect: 100-continue` before the client sends its body:
/// a `Content-Length` over its route's `max_body_bytes` is refused with 413 now, instead of
/// inviting the body with `100 Continue` and refusing it afterwards. `None`: go on (actix-http
/// then sends the 100). The connection is closed after the refusal: a client that sends the
/// body anyway cannot have it read as the next request.
pub fn refuse_expectation(
    head: &actix_http::RequestHead,
    state: &ProxyState,
) -> Option<actix_http::Response<actix_http::body::BoxBody>> {
    let RequestFraming::Length(length) = request_framing(&head.headers) else {
        return None;
    };
    let table = state.table.load();
    let route = table.find(request_host(head), head.uri.path())?;
    if route.max_body_bytes == 0 || length <= route.max_body_bytes {
        return None;
    }
    let err = Error::TooLarge {
        what: "body",
        size: length,
        max: route.max_body_bytes,
    };
    let mut answer =
        error_response::<actix_http::body::BoxBody>(&err, &headers::request_id(&head.headers));
    answer
        .head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    Some(answer.map_into_boxed_body().into())
}

/// The host a request is routed by: its `Host` header, else the authority of an
/// absolute-form target.
pub(crate) fn request_host(head: &actix_http::RequestHead) -> Option<&str> {
    head.headers
        .get(ax::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| head.uri.host())
}

/// The request target and headers against `[limits]` (414 and 431).
pub(crate) fn head_within_limits(
    head: &actix_http::RequestHead,
    limits: &crate::config::Limits,
) -> Result<(), Error> {
    let uri = head.uri.path_and_query().map_or(0, |pq| pq.as_str().len()) as u64;
    if uri > limits.max_uri_bytes {
        return Err(Error::TooLarge {
            what: "uri",
            size: uri,
            max: limits.max_uri_bytes,
        });
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
        });
    }
    Ok(())
}

/// A plain listener set to redirect: 308 to the same URL on HTTPS.
fn redirect_to_https(req: &HttpRequest, port: u16) -> Response {
    let host = req
        .headers()
        .get(ax::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            h.rsplit_once(':')
                .map_or(h, |(name, _)| name)
                .trim_start_matches('[')
                .trim_end_matches(']')
        })
        .unwrap_or("localhost");
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = match port {
        443 => format!("https://{host}{target}"),
        port => format!("https://{host}:{port}{target}"),
    };
    HttpResponse::PermanentRedirect()
        .insert_header((ax::LOCATION, location))
        .finish()
        .map_into_boxed_body()
        .map_into_right_body()
}

/// Largest refused body read and dropped before answering 413.
const DRAIN_REFUSED_BODY_BYTES: u64 = 64 * 1024;

/// Where a request goes: the route's own pool, or another region's router (its one-backend
/// pool, and this region's name for the hop header).
pub(crate) enum Target {
    Local,
    Region(Arc<crate::routing::PoolSnapshot>, String),
}

/// Why a pool took nobody: every candidate full (`overloaded`) or none healthy.
pub(crate) fn unavailable(route: &Route, snapshot: &crate::routing::PoolSnapshot) -> Failure {
    let pool = route.pool.id.to_string();
    if snapshot.overloaded {
        (Error::Overloaded { pool }, None)
    } else {
        (Error::NoHealthyBackend { pool }, None)
    }
}

/// Turns a backend's answer into the client's response, its body streamed from `conn`.
fn client_response(
    conn: crate::upstream::h1::pool::Conn,
    answer: crate::upstream::h1::ResponseHead,
    head_request: bool,
    route: &Route,
    inflight: crate::routing::InflightGuard,
    request_id: &HeaderValue,
    from_router: bool,
) -> Response {
    // A status actix-web cannot represent was already refused by the parser (3 digits).
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let size = match answer.framing {
        Framing::Empty if head_request => answer
            .content_length
            .map_or(BodySize::None, BodySize::Sized),
        Framing::Empty => BodySize::None,
        Framing::Length(n) => BodySize::Sized(n),
        Framing::Chunked | Framing::Close => BodySize::Stream,
    };
    let body = UpstreamBody::new(
        conn,
        answer.framing,
        size,
        answer.reusable,
        route.timeouts.idle,
        inflight,
    );
    let mut resp = HttpResponse::with_body(status, EitherBody::left(body));
    *resp.headers_mut() = answer.headers;
    if !from_router {
        // Only the router speaks with X-Switchyard-Error: a backend's copy would make clients
        // (the SDK) treat its answer as the router's, e.g. retry a POST it never should.
        resp.headers_mut()
            .remove(ax::HeaderName::from_static(headers::SWITCHYARD_ERROR));
    }
    resp.headers_mut().insert(
        ax::HeaderName::from_static(headers::REQUEST_ID),
        request_id.clone(),
    );
    resp
}

/// Methods a backend may receive twice without harm (RFC 9110 §9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// How the client framed its body: chunked, a length (possibly 0), or nothing at all.
fn request_framing(headers: &ax::HeaderMap) -> RequestFraming {
    if headers.contains_key(ax::TRANSFER_ENCODING) {
        return RequestFraming::Chunked;
    }
    match headers.get(ax::CONTENT_LENGTH) {
        None => RequestFraming::None,
        Some(v) => RequestFraming::Length(
            // actix-web has already rejected an unparsable length with a 400.
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
        ),
    }
}

/// Path and query as the backend should see them.
pub(crate) fn upstream_target<'a>(uri: &'a Uri, route: &Route) -> Cow<'a, str> {
    let path = uri.path();
    let stripped = route.upstream_path(path);
    if stripped.len() == path.len() {
        return Cow::Borrowed(uri.path_and_query().map_or("/", |pq| pq.as_str()));
    }
    match uri.query() {
        None => Cow::Borrowed(stripped),
        Some(q) => Cow::Owned(format!("{stripped}?{q}")),
    }
}

fn hash_key(key: &HashKey, req: &HttpRequest, client_ip: Option<IpAddr>) -> u64 {
    if let HashKey::Header(name) = key
        && let Some(value) = req.headers().get(name.as_str())
    {
        return hash_bytes(value.as_bytes());
    }
    match client_ip {
        Some(IpAddr::V4(ip)) => hash_bytes(&ip.octets()),
        Some(IpAddr::V6(ip)) => hash_bytes(&ip.octets()),
        None => 0,
    }
}
