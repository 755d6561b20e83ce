//! The request path's side of regions: the public `GET /v1/status` (what other regions probe)
//! and `GET /v1/regions` (the directory clients read), and the overflow decision — a route
//! whose local pool has no capacity sends the request to the nearest healthy remote region
//! (acted on by [`super::forward::to_region`] for HTTP, by a 4003 close for WebSocket).

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::http::header as ax;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

use super::state::ProxyState;
use crate::config::Overflow;
use crate::regions::{HOP_HEADER, RegionEntry, geo};
use crate::routing::{PoolHandle, Route};

/// Answers `/v1/status` and `/v1/regions` (GET or HEAD); `None` for every other request.
pub fn public_endpoint(req: &HttpRequest, state: &ProxyState) -> Option<HttpResponse> {
    let path = req.path();
    if path != "/v1/status" && path != "/v1/regions" {
        return None;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let answer = HttpResponse::MethodNotAllowed()
            .insert_header((ax::ALLOW, "GET, HEAD"))
            .json(json!({"error": "method_not_allowed", "message": format!("{path} answers GET")}));
        return Some(answer);
    }
    let table = state.table.load();
    let ready = state.ready.get();
    let body = match path {
        "/v1/status" => state.directory.status(&table, ready),
        _ => {
            // A location asked for and not understood is the client's mistake: said, not
            // silently replaced by this region's.
            if let Some(problem) = req.uri().query().and_then(geo::query_problem) {
                return Some(HttpResponse::BadRequest().json(json!({
                    "error": "bad_location",
                    "message": format!("GET /v1/regions: {problem}"),
                })));
            }
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
    Some(answer)
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
/// local `pool` (the one placed) has no capacity (no eligible backend, the region evacuating, or its load over
/// the route's `overflow_load`). A request that already made its hop stays here.
pub fn overflow_target(
    headers: &ax::HeaderMap,
    peer: Option<std::net::IpAddr>,
    route: &Route,
    pool: &PoolHandle,
    state: &ProxyState,
) -> Option<Arc<RegionEntry>> {
    if route.overflow == Overflow::Off || hopped(headers, peer, state) {
        return None;
    }
    let directory = &state.directory;
    let no_capacity = pool.load().eligible.is_empty()
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
