//! The request path's side of regions: the public `GET /v1/status` (what other regions probe)
//! and `GET /v1/regions` (the directory clients read), and overflow — a route whose local
//! pool has no capacity sends the request to the nearest healthy remote region, by forwarding
//! it (one hop at most) or by redirecting the client.

use std::sync::Arc;

use actix_web::body::{BoxBody, EitherBody};
use actix_web::http::Method;
use actix_web::http::header::{self as ax, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::http::{Failure, ProxyState, Target, forward};
use crate::config::Overflow;
use crate::regions::{HOP_HEADER, RegionEntry, geo};
use crate::routing::Route;
use crate::upstream::h1::UpstreamBody;

type Response = HttpResponse<EitherBody<UpstreamBody>>;

/// Answers `/v1/status` and `/v1/regions` (GET or HEAD); `None` for every other request.
pub fn public_endpoint(req: &HttpRequest, state: &ProxyState) -> Option<Response> {
    let path = req.path();
    if path != "/v1/status" && path != "/v1/regions" {
        return None;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let answer = HttpResponse::MethodNotAllowed()
            .insert_header((ax::ALLOW, "GET, HEAD"))
            .json(json!({"error": "method_not_allowed", "message": format!("{path} answers GET")}));
        return Some(answer.map_into_boxed_body().map_into_right_body());
    }
    let table = state.table.load();
    let ready = state.ready.get();
    let body = match path {
        "/v1/status" => state.directory.status(&table, ready),
        _ => {
            let fallback = state.directory.local.location.unwrap_or((0.0, 0.0));
            let client = geo::locate(
                &state.directory.config,
                req.uri().query(),
                req.headers(),
                req.peer_addr().map(|a| a.ip()),
                state.client_ip(req.peer_addr().map(|a| a.ip()), req.headers()),
                fallback,
            );
            state.directory.answer(&table, ready, &client)
        }
    };
    let answer = HttpResponse::Ok()
        .insert_header((ax::CACHE_CONTROL, "no-store"))
        .json(body);
    Some(answer.map_into_boxed_body().map_into_right_body())
}

/// Whether this request already made its one hop between regions: it carries
/// `X-Switchyard-Hop` and comes from another region's router (the address of a configured
/// region endpoint, or a `node.trusted_proxies` one). From anyone else the header means
/// nothing — a viewer cannot keep its own request from moving — and it is never passed on to
/// a backend.
pub fn hopped(headers: &ax::HeaderMap, peer: Option<std::net::IpAddr>, state: &ProxyState) -> bool {
    headers.contains_key(HOP_HEADER)
        && peer.is_some_and(|ip| {
            state.directory.routers.contains(&ip)
                || state.trusted_proxies.iter().any(|c| c.contains(ip))
        })
}

/// The remote region a request on `route` should go to, if the route overflows and the
/// local pool has no capacity (no eligible backend, the region evacuating, or its load over
/// the route's `overflow_load`). A request that already made its hop stays here.
pub fn overflow_target(
    headers: &ax::HeaderMap,
    peer: Option<std::net::IpAddr>,
    route: &Route,
    state: &ProxyState,
) -> Option<Arc<RegionEntry>> {
    if route.overflow == Overflow::Off || hopped(headers, peer, state) {
        return None;
    }
    let directory = &state.directory;
    let no_capacity = route.pool.load().eligible.is_empty()
        || directory.local.evacuating()
        || route
            .overflow_load
            .is_some_and(|limit| directory.local_load(&state.table.load()) > limit);
    if !no_capacity {
        return None;
    }
    // Only to a region with room: under this route's threshold, or not full.
    directory.nearest_remote_under(route.overflow_load.unwrap_or(1.0))
}

/// Sends a request the local region cannot take to `region`: forwarded with the hop header,
/// or a 307 to its endpoint. Logged and counted.
pub async fn overflow(
    req: &HttpRequest,
    payload: web::Payload,
    route: &Route,
    region: Arc<RegionEntry>,
    state: &ProxyState,
    request_id: &HeaderValue,
) -> Result<(Response, Arc<str>), Failure> {
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
            let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
            let location = format!("{endpoint}{target}");
            let answer: HttpResponse<BoxBody> = HttpResponse::TemporaryRedirect()
                .insert_header((ax::LOCATION, location.as_str()))
                .insert_header(("x-switchyard-region", region.name.as_str()))
                .insert_header((crate::headers::REQUEST_ID, request_id.clone()))
                .json(json!({ "region": region.name, "endpoint": endpoint, "location": location }));
            Ok((answer.map_into_right_body(), backend))
        }
        (_, Some(pool), _) => {
            let target = Target::Region(pool.load_full(), from.clone());
            forward(req, payload, route, target, state, request_id).await
        }
        _ => Err((
            crate::error::Error::NoHealthyBackend {
                pool: route.pool.id.to_string(),
            },
            None,
        )),
    }
}
