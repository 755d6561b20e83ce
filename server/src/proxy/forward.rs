//! The HTTP exchange phase: send the request to the chosen backend over this worker's own
//! connection pool ([`crate::upstream::h1`]), retry on the next candidate while the route's
//! retries and retry budget last, and stream the answer back.
//!
//! Retry decisions are not made here: a failure arrives as a [`ProxyError`] whose `retry` the
//! upstream layer set where it saw the failure (connect failures: any method; resets and
//! timeouts: idempotent requests, or routes with `retry_non_idempotent`; the client's own
//! body: never). This loop only adds what it alone knows: whether another candidate and
//! attempt remain, and whether the budget grants one.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_http::RequestHead;
use actix_web::body::{BodySize, BoxBody, EitherBody};
use actix_web::http::header::{self as ax, HeaderValue};
use actix_web::http::{Method, StatusCode, Uri};
use actix_web::{HttpResponse, web};
use bytes::BytesMut;

use super::error::ProxyError;
use super::pipeline::{self, Choice, PendingLine, Placed, peer};
use super::state::ProxyState;
use crate::clock::now_ns;
use crate::config::{HashKey, Overflow};
use crate::error::{Error, Retry, Side};
use crate::headers;
use crate::regions::RegionEntry;
use crate::routing::balance::hash::hash_bytes;
use crate::routing::{BackendEntry, InflightGuard, PoolSnapshot, Route};
use crate::upstream::h1::codec::{self, Forwarding};
use crate::upstream::h1::exchange::{self, ExchangeError, RequestBody};
use crate::upstream::h1::{Framing, RequestFraming, UpstreamBody};
use crate::upstream::{AnswerBody, Holder, UpstreamProtocol, h2};

pub type Response = HttpResponse<EitherBody<AnswerBody<Held>>>;

/// What a request holds until its answer's body is sent: the backend's in-flight count, and
/// its access line (added by the entry point), written when the body is done.
pub struct Held {
    _inflight: InflightGuard,
    pub access: Option<Box<PendingLine>>,
}

impl Holder for Held {
    fn sent(&mut self, bytes: usize) {
        if let Some(line) = self.access.as_mut() {
            line.sent(bytes);
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(line) = self.access.take() {
            line.write();
        }
    }
}

/// The client's request body, extracted as `web::Payload` is, with one more fact: whether an
/// HTTP/2 request's body follows its head. HTTP/2 frames delimit a body, so one may come
/// without `Content-Length`; the exchange then streams it (as chunked to an HTTP/1.1 backend).
pub struct ClientBody {
    pub payload: web::Payload,
    pub h2_follows: bool,
}

impl actix_web::FromRequest for ClientBody {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<ClientBody, actix_web::Error>>;

    fn from_request(
        req: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        let h2_follows = req.version() == actix_web::http::Version::HTTP_2
            && !matches!(payload, actix_web::dev::Payload::None);
        let extracted = web::Payload::from_request(req, payload)
            .into_inner()
            .map(|payload| ClientBody {
                payload,
                h2_follows,
            });
        std::future::ready(extracted)
    }
}

/// Largest refused body read and dropped before answering 413.
const DRAIN_REFUSED_BODY_BYTES: u64 = 64 * 1024;

/// Where a request is forwarded: a pool of this region, or another region's router (its
/// one-backend pool, and this region's name for the hop header).
pub enum Target<'a> {
    Pool(Placed<'a>),
    Region(Arc<PoolSnapshot>, &'a str),
}

/// Chooses a backend of `target` and exchanges with it (and with the next candidates while a
/// failure may be retried); the answer's body streams from the backend's connection.
pub async fn forward(
    head: &RequestHead,
    payload: ClientBody,
    route: &Route,
    target: Target<'_>,
    state: &ProxyState,
    request_id: &HeaderValue,
) -> Result<(Response, Arc<str>), ProxyError> {
    let (snapshot, placed, hop) = match target {
        Target::Pool(placed) => (placed.variant.pool.load_full(), Some(placed), None),
        Target::Region(snapshot, from) => (snapshot, None, Some(from)),
    };
    let key = balance_key(
        placed.as_ref().and_then(|p| p.variant.hash_key.as_ref()),
        head,
        state,
    );
    let choice = pipeline::choose(route, snapshot, placed, key, head, state).await?;
    let (request, body) = prepare(
        head,
        payload,
        route,
        &choice.snapshot,
        hop,
        state,
        request_id,
    )
    .await
    .map_err(ProxyError::from)?;
    // Mirrored beside the exchange, never before it: the shadow only learns the outcome.
    let mirror = match (&route.shadow, hop) {
        (Some(shadow), None) => {
            let key = balance_key(shadow.hash_key.as_ref(), head, state);
            super::shadow::start(
                shadow,
                &request,
                &body,
                head.method == Method::HEAD,
                is_idempotent(&head.method),
                key,
            )
        }
        _ => None,
    };
    let answered = exchange_with_retries(
        head,
        route,
        choice,
        &request,
        body,
        hop.is_some(),
        state,
        request_id,
    )
    .await;
    if let Some(mirror) = mirror {
        mirror.primary(match &answered {
            Ok((resp, _)) => resp.status().as_u16(),
            Err(err) => err.error.status(),
        });
    }
    answered
}

/// The request head as the backend gets it, and its body: read whole when small enough to
/// be sent again on a retry, else streamed. Refuses a declared body over the route's
/// `max_body_bytes` (413) and an upgrade request that carries a body.
async fn prepare(
    head: &RequestHead,
    payload: ClientBody,
    route: &Route,
    snapshot: &PoolSnapshot,
    hop: Option<&str>,
    state: &ProxyState,
    request_id: &HeaderValue,
) -> Result<(BytesMut, RequestBody), Error> {
    let ClientBody {
        payload,
        h2_follows,
    } = payload;
    let framing = match request_framing(&head.headers) {
        RequestFraming::None if h2_follows => RequestFraming::Chunked,
        framing => framing,
    };
    if let RequestFraming::Length(n) = framing
        && route.max_body_bytes > 0
        && n > route.max_body_bytes
    {
        // A small refused body is read and dropped first, so the connection stays in step
        // (and is not reset under the client's feet while it still sends); a large one is
        // refused at once and the connection closed.
        if n <= DRAIN_REFUSED_BODY_BYTES {
            let _ = Box::pin(exchange::buffer_body(payload, n, route.timeouts.idle)).await;
        }
        return Err(Error::TooLarge {
            what: "body",
            size: n,
            max: route.max_body_bytes,
        });
    }
    // actix-web treats a request with `Upgrade` as a tunnel whose body runs until the client
    // closes, whatever its Content-Length says; forwarding that body could smuggle a second
    // request to the backend. A non-WebSocket upgrade is forwarded without its upgrade, and
    // only if it has no body.
    let upgrade = head.headers.contains_key(ax::UPGRADE);
    if upgrade && framing != RequestFraming::None && framing != RequestFraming::Length(0) {
        return Err(Error::BadRequest {
            reason: "a request asking for a protocol upgrade must not carry a body".to_string(),
        });
    }
    let mut request = BytesMut::new();
    codec::write_request_head(
        &mut request,
        &head.method,
        &upstream_target(&head.uri, route),
        &head.headers,
        &Forwarding {
            client_ip: peer(head),
            proto: state.proto,
            request_id: request_id.as_bytes(),
            // An HTTP/2 client's host is its `:authority`, which carries no `Host` header.
            fallback_host: head
                .uri
                .authority()
                .map_or(snapshot.eligible[0].authority.as_str(), |a| a.as_str()),
            hop,
        },
        framing,
    );
    // A small body is read whole first so a retry can send it again; a larger one (or one of
    // unknown length) is streamed and never retried.
    let body = match framing {
        RequestFraming::None | RequestFraming::Length(0) => RequestBody::None,
        // Kept whole to be sent again: on a retry, or to the route's shadow.
        RequestFraming::Length(n)
            if (route.retries > 0 && n <= route.retry_buffer_bytes)
                || route.shadow.as_ref().is_some_and(|s| n <= s.max_body_bytes) =>
        {
            // Boxed: only requests with a body wait here; the others need not carry its room.
            match Box::pin(exchange::buffer_body(payload, n, route.timeouts.idle)).await {
                Ok(bytes) => RequestBody::Buffered(bytes),
                Err(ExchangeError::ClientBody(reason)) => return Err(Error::BadRequest { reason }),
                Err(err) => {
                    let reason = err.to_string();
                    return Err(Error::BadRequest { reason });
                }
            }
        }
        framing => RequestBody::Stream {
            payload,
            framing,
            limit: route.max_body_bytes,
        },
    };
    Ok((request, body))
}

/// Sends to the first candidate; on a failure before any answer byte reached the client,
/// tries the next one while the failure allows it, attempts remain and the route's retry
/// budget grants one. A backend's 502/503 counts as such a failure for requests that may be
/// retried.
#[allow(clippy::too_many_arguments)]
async fn exchange_with_retries(
    head: &RequestHead,
    route: &Route,
    mut choice: Choice<'_>,
    request: &[u8],
    mut body: RequestBody,
    hopped: bool,
    state: &ProxyState,
    request_id: &HeaderValue,
) -> Result<(Response, Arc<str>), ProxyError> {
    // A streamed body can go to another backend only while no exchange has taken it (an
    // HTTP/2 backend gives back a request it never sent).
    let streamed = !body.replayable();
    let attempts = 1 + route.retries;
    let head_request = head.method == Method::HEAD;
    let idempotent = is_idempotent(&head.method);
    let retryable_method = idempotent || route.retry_non_idempotent;
    route.budget.deposit();

    let snapshot = choice.snapshot.clone();
    let mut last_error = None;
    for attempt in 0..attempts {
        let Some(index) = choice.candidates.next() else {
            break;
        };
        let backend = &snapshot.eligible[index];
        let next_candidate = attempt + 1 < attempts && choice.candidates.clone().next().is_some();
        let inflight = backend.stats.start_request();
        let sent = Instant::now();
        let exchanged = match backend.protocol {
            UpstreamProtocol::Http1 => crate::upstream::h1::exchange(
                backend.addr,
                backend.tls.as_deref(),
                request,
                &mut body,
                head_request,
                idempotent,
                &route.timeouts,
            )
            .await
            .map(|(conn, answer)| Answer::H1(conn, answer)),
            UpstreamProtocol::H2 => exchange_h2(head, backend, request, &mut body, route).await,
        };
        // Whether a failure of this attempt may be retried (the budget is asked only then).
        let body_left = !streamed || matches!(body, RequestBody::Stream { .. });
        let another = next_candidate && body_left;
        let err = match exchanged {
            Ok(answer) => {
                let status = answer.status();
                backend.stats.ewma.observe(sent.elapsed(), now_ns());
                backend
                    .stats
                    .record_status(choice.variant.slot, status, sent.elapsed());
                backend.stats.record_outcome(status < 500);
                // A backend's 502/503 before any byte reached the client: another backend may
                // do better. Its answer is dropped (and its connection closed) only once a
                // retry is granted; otherwise it goes to the client unchanged.
                if matches!(status, 502 | 503)
                    && retryable_method
                    && another
                    && route.budget.try_withdraw()
                {
                    tracing::debug!(backend = %backend.id, status, "retrying on another backend");
                    continue;
                }
                // Another region's router answered: its own errors pass through.
                let mut resp =
                    client_response(answer, head_request, route, inflight, request_id, hopped);
                choice.landed(&backend.id, resp.headers_mut(), state);
                return Ok((resp, backend.id.clone()));
            }
            Err(err) => classify(err, backend, choice.variant.slot, sent.elapsed()),
        };
        if !(err.retry.allows(retryable_method) && another && route.budget.try_withdraw()) {
            if err.retry == Retry::Always {
                // A connect failure that ends the request is the client's 502.
                backend
                    .stats
                    .record_status(choice.variant.slot, 502, sent.elapsed());
            }
            return Err(err);
        }
        last_error = Some(err);
    }
    Err(last_error.unwrap_or_else(|| pipeline::unavailable(&choice.variant.pool.id, &snapshot)))
}

/// Classify the outcome: an exchange failure as the request path's error, counted against
/// the backend's health unless the client caused it.
fn classify(
    err: ExchangeError,
    backend: &BackendEntry,
    slot: usize,
    took: std::time::Duration,
) -> ProxyError {
    let err = ProxyError::exchange(err, backend);
    if err.side == Side::Client {
        return err;
    }
    backend.stats.record_outcome(false);
    match &err.error {
        Error::UpstreamConnect { source, .. } => {
            backend.stats.record_connect_failure();
            tracing::debug!(backend = %backend.id, addr = %backend.addr, error = %source, "connect failed");
        }
        Error::UpstreamTimeout { .. } => backend.stats.record_status(slot, 504, took),
        _ => backend.stats.record_status(slot, 502, took),
    }
    err
}

/// A backend's answer, up to its head, from either protocol's client.
enum Answer {
    H1(
        crate::upstream::h1::pool::Conn,
        crate::upstream::h1::ResponseHead,
    ),
    H2(http::Response<hyper::body::Incoming>),
}

impl Answer {
    fn status(&self) -> u16 {
        match self {
            Answer::H1(_, head) => head.status,
            Answer::H2(resp) => resp.status().as_u16(),
        }
    }
}

/// One exchange with an HTTP/2 backend: the same head as HTTP/1.1 would send, over this
/// worker's multiplexed connection to it. A buffered body stays for a retry; a streamed one is
/// consumed.
async fn exchange_h2(
    head: &RequestHead,
    backend: &BackendEntry,
    request: &[u8],
    body: &mut RequestBody,
    route: &Route,
) -> Result<Answer, ExchangeError> {
    let (h2_body, framing) = match std::mem::replace(body, RequestBody::None) {
        RequestBody::None => (h2::H2RequestBody::Empty, None),
        RequestBody::Buffered(bytes) => {
            let sent = h2::H2RequestBody::Full(Some(bytes.clone()));
            *body = RequestBody::Buffered(bytes);
            (sent, None)
        }
        RequestBody::Stream {
            payload,
            framing,
            limit,
        } => (
            h2::H2RequestBody::Stream {
                payload,
                limit,
                sent: 0,
            },
            Some(framing),
        ),
    };
    let scheme = if backend.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let request = h2::head::request(
        request,
        scheme,
        h2::head::wants_trailers(&head.headers),
        h2_body,
    )?;
    match h2::exchange(
        backend.addr,
        backend.tls.as_deref(),
        request,
        &route.timeouts,
    )
    .await
    {
        Ok(answer) => Ok(Answer::H2(answer)),
        Err(failed) => {
            // Never sent: a streamed body is still whole, for the next attempt.
            if let (Some(unsent), Some(framing)) = (failed.unsent, framing)
                && let h2::H2RequestBody::Stream {
                    payload,
                    limit,
                    sent: 0,
                } = unsent.into_body()
            {
                *body = RequestBody::Stream {
                    payload,
                    framing,
                    limit,
                };
            }
            Err(failed.error)
        }
    }
}

/// Turns a backend's answer into the client's response, its body streamed from the backend's
/// connection (an HTTP/2 backend's trailers passed on to an HTTP/2 client).
fn client_response(
    answer: Answer,
    head_request: bool,
    route: &Route,
    inflight: InflightGuard,
    request_id: &HeaderValue,
    from_router: bool,
) -> Response {
    let held = Held {
        _inflight: inflight,
        access: None,
    };
    let mut resp = match answer {
        Answer::H1(conn, answer) => {
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
                held,
            );
            let mut resp = HttpResponse::with_body(status, EitherBody::left(AnswerBody::H1(body)));
            *resp.headers_mut() = answer.headers;
            resp
        }
        Answer::H2(answer) => {
            let (parts, incoming) = answer.into_parts();
            let status =
                StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let length = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok());
            let size = match (hyper::body::Body::is_end_stream(&incoming), length) {
                (true, Some(n)) if head_request => BodySize::Sized(n),
                (true, _) => BodySize::None,
                (false, Some(n)) => BodySize::Sized(n),
                (false, None) => BodySize::Stream,
            };
            let trailers = actix_http::h2::ResponseTrailers::default();
            let body =
                h2::ResponseBody::new(incoming, size, trailers.clone(), route.timeouts.idle, held);
            let mut resp = HttpResponse::with_body(status, EitherBody::left(AnswerBody::H2(body)));
            *resp.headers_mut() = h2::head::headers(&parts.headers);
            resp.extensions_mut().insert(trailers);
            resp
        }
    };
    if !from_router {
        // Only the router speaks with X-Switchyard-Error: a backend's copy would make clients
        // (the SDK) treat its answer as the router's, e.g. retry a POST it never should.
        resp.headers_mut().remove(headers::SWITCHYARD_ERROR_NAME);
    }
    // Unique per answer: an HTTP/2 client's HPACK table gains nothing from it, so it is sent
    // as a literal never indexed rather than pushing reusable entries out of the table.
    let mut id = request_id.clone();
    id.set_sensitive(true);
    resp.headers_mut().insert(headers::REQUEST_ID_NAME, id);
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
pub fn request_framing(headers: &ax::HeaderMap) -> RequestFraming {
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
pub fn upstream_target<'a>(uri: &'a Uri, route: &Route) -> Cow<'a, str> {
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

/// The request's key for a consistent-hash pool (`key`: its hash key; 0 for other pools): the
/// header's value, else the viewer's address (X-Forwarded-For gets the immediate peer
/// appended; hashing sees the viewer).
fn balance_key(key: Option<&HashKey>, head: &RequestHead, state: &ProxyState) -> u64 {
    let Some(key) = key else {
        return 0;
    };
    if let HashKey::Header(name) = key
        && let Some(value) = head.headers.get(name.as_str())
    {
        return hash_bytes(value.as_bytes());
    }
    match state.client_ip(peer(head), &head.headers) {
        Some(IpAddr::V4(ip)) => hash_bytes(&ip.octets()),
        Some(IpAddr::V6(ip)) => hash_bytes(&ip.octets()),
        None => 0,
    }
}

/// Sends a request the local region cannot take to `region`: forwarded with the hop header
/// (one hop at most), or a 307 to its endpoint. Logged and counted.
pub async fn to_region(
    head: &RequestHead,
    payload: ClientBody,
    route: &Route,
    region: Arc<RegionEntry>,
    state: &ProxyState,
    request_id: &HeaderValue,
) -> Result<(Response, Arc<str>), ProxyError> {
    let mode = match route.overflow {
        Overflow::Redirect => "redirect",
        _ => "forward",
    };
    let from = &state.directory.local.name;
    tracing::info!(target: "switchyard::region", route = %route.id, from = %from, to = %region.name, mode, "local region has no capacity: overflowing");
    metrics::counter!("switchyard_region_overflow_total", "route" => route.id.to_string(), "to" => region.name.clone(), "mode" => mode).increment(1);
    let backend: Arc<str> = format!("region:{}", region.name).into();
    match (route.overflow, &region.forward, &region.endpoint) {
        (Overflow::Redirect, _, Some(endpoint)) => {
            let target = head.uri.path_and_query().map_or("/", |pq| pq.as_str());
            let location = format!("{endpoint}{target}");
            let answer: HttpResponse<BoxBody> = HttpResponse::TemporaryRedirect()
                .insert_header((ax::LOCATION, location.as_str()))
                .insert_header(("x-switchyard-region", region.name.as_str()))
                .insert_header((headers::REQUEST_ID, request_id.clone()))
                .json(serde_json::json!({ "region": region.name, "endpoint": endpoint, "location": location }));
            Ok((answer.map_into_right_body(), backend))
        }
        (_, Some(pool), _) => {
            let target = Target::Region(pool.load_full(), from);
            forward(head, payload, route, target, state, request_id).await
        }
        _ => Err(Error::NoHealthyBackend {
            pool: route.pool().id.to_string(),
        }
        .into()),
    }
}
