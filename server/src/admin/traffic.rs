//! The admin API's routes: where each sends and with which weights (`GET /admin/v1/routes`,
//! `GET …/routes/{id}`), and the changes operators make to them: a split's weights
//! (`PUT …/{id}/weights`), a blue-green switch (`POST …/{id}/switch`), back to the config
//! (`POST …/{id}/reset`). A change applies on this node at once and, with Redis, on every node
//! through the cluster channel, which also keeps it for nodes that start later; weights set
//! here outlive reloads until a reset.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::action::{
    AdminAction, Naming, PoolWeight, one_pool, pool_list, reset_route, set_route_weights,
};
use super::error::ApiError;
use super::request::{read, read_json, resource};
use super::rollouts::{refuse_if_active, rollouts};
use super::state::AdminState;
use crate::control::rollout::Forget;
use crate::routing::split::WeightsFrom;
use crate::routing::{Route, RouteTable, Variant};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(read("/routes", routes))
        .service(read("/routes/{id}", route))
        .service(resource("/routes/{id}/weights", "PUT").route(web::put().to(weights)))
        .service(resource("/routes/{id}/switch", "POST").route(web::post().to(switch)))
        .service(resource("/routes/{id}/reset", "POST").route(web::post().to(reset)));
}

/// A route's view: where it matches, its pools with their weights now and in the config, the
/// one pool taking traffic when only one does (a blue-green route's active colour), and
/// whether the weights are the config's or set through the API.
fn route_json(route: &Route) -> Value {
    let (weights, from) = match &route.split {
        Some(split) => {
            let now = split.weights();
            let pools: Vec<Value> = route
                .variants
                .iter()
                .zip(now.values.iter().zip(split.configured()))
                .map(|(v, (w, c))| pool_json(v, *w, *c))
                .collect();
            let active = now.sole().map(|at| route.variants[at].pool.id.to_string());
            ((pools, active), now.from)
        }
        None => {
            let pool = &*route.pool().id;
            let pools = vec![pool_json(&route.variants[0], 1, 1)];
            ((pools, Some(pool.to_string())), WeightsFrom::Config)
        }
    };
    let (pools, active) = weights;
    json!({
        "id": &*route.id,
        "host": route.host(),
        "path_prefix": route.prefix(),
        "sticky": route.sticky,
        "pools": pools,
        "active": active,
        "weights_from": from.as_str(),
    })
}

/// One pool of a route: its weight now and in the config, and what the route's HTTP requests
/// on it came to on this node since it started (or since the last reload).
fn pool_json(variant: &Variant, weight: u32, configured: u32) -> Value {
    let tally = variant.outcomes.tally();
    json!({
        "pool": &*variant.pool.id,
        "weight": weight,
        "configured_weight": configured,
        "requests": tally.requests,
        "errors": tally.errors,
        "p99_ms": tally.quantile(0.99).map(|d| d.as_secs_f64() * 1000.0),
    })
}

fn find<'t>(table: &'t RouteTable, id: &str) -> Result<&'t std::sync::Arc<Route>, ApiError> {
    table
        .routes()
        .find(|r| &*r.id == id)
        .ok_or_else(|| ApiError::unknown_route(id))
}

async fn routes(state: web::Data<AdminState>) -> HttpResponse {
    let table = state.table.load();
    let routes: Vec<Value> = table.routes().map(|r| route_json(r)).collect();
    HttpResponse::Ok().json(json!({ "routes": routes }))
}

async fn route(
    state: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let table = state.table.load();
    Ok(HttpResponse::Ok().json(route_json(find(&table, &id)?)))
}

/// Sets `weights` on route `id` here (`None`: back to its config's), then tells the other
/// nodes; answers with the route's view. They are told the weights as they are now, every pool
/// named: a change that named some pools is stored whole, so a node started later gets the
/// same weights.
async fn act(
    state: &AdminState,
    id: String,
    weights: Option<Vec<PoolWeight>>,
) -> Result<HttpResponse, ApiError> {
    // A route under a rollout is the rollout's to weigh; a reset forgets its finished ones.
    let actor = rollouts(state).await?;
    let mut forgot = 0;
    match &weights {
        Some(_) => refuse_if_active(&actor, &id).await?,
        None => {
            forgot = actor
                .send(Forget { route: id.clone() })
                .await
                .map_err(|_| ApiError::unavailable("the rollouts actor did not answer"))??;
        }
    }
    let table = state.table.load_full();
    let (route, action) = match weights {
        Some(weights) => {
            let (found, every) = set_route_weights(&table, &id, &weights, Naming::Some)?;
            let action = AdminAction::RouteWeights {
                route: id,
                weights: every,
            };
            (found, action)
        }
        None => {
            // A route that split only for the rollouts just forgotten is back to its config's
            // one pool (its table was rebuilt): nothing is left to reset.
            let found = find(&table, &id)?;
            if forgot > 0 && found.split.is_none() {
                return Ok(HttpResponse::Ok().json(route_json(found)));
            }
            (
                reset_route(&table, &id)?,
                AdminAction::RouteReset { route: id },
            )
        }
    };
    tracing::info!(action = ?action, "route changed through the admin API");
    if let Some(cluster) = &state.cluster {
        cluster.announce(&action).await;
    }
    Ok(HttpResponse::build(StatusCode::OK).json(route_json(&route)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightsBody {
    weights: BTreeMap<String, u32>,
}

/// `PUT /admin/v1/routes/{id}/weights {"weights": {"api-v1": 90, "api-v2": 10}}`: pools left
/// out keep their weight.
async fn weights(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let Some(body) = read_json::<WeightsBody>(payload).await? else {
        return Err(ApiError::bad_request(
            "a body {\"weights\": {\"POOL\": WEIGHT, ...}} is required",
        ));
    };
    if body.weights.is_empty() {
        return Err(ApiError::bad_request(
            "field `weights`: name at least one pool",
        ));
    }
    let weights = body
        .weights
        .into_iter()
        .map(|(pool, weight)| PoolWeight { pool, weight })
        .collect();
    act(&state, id.into_inner(), Some(weights)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchBody {
    to: Option<String>,
}

/// `POST /admin/v1/routes/{id}/switch [{"to": "POOL"}]`: every request and new session of
/// the route to `to` (default: the other colour of a two-pool route that serves one now).
/// Sessions already open stay where they are until they end or their backends drain.
async fn switch(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let to = read_json::<SwitchBody>(payload).await?.and_then(|b| b.to);
    let table = state.table.load_full();
    let route = find(&table, &id)?;
    let Some(split) = &route.split else {
        return Err(one_pool(&id));
    };
    let pools: Vec<&str> = route.variants.iter().map(|v| &*v.pool.id).collect();
    let to = match to {
        Some(to) if pools.contains(&to.as_str()) => to,
        Some(to) => {
            return Err(ApiError::bad_request(format!(
                "field `to`: route {:?} does not send to pool {to:?} (it sends to {})",
                &*route.id,
                pool_list(route)
            )));
        }
        None => match (pools.len(), split.weights().sole()) {
            (2, Some(active)) => pools[1 - active].to_string(),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "field `to`: name the pool to switch to (route {:?} sends to {})",
                    &*route.id,
                    pool_list(route)
                )));
            }
        },
    };
    let weights = pools
        .iter()
        .map(|p| PoolWeight {
            pool: p.to_string(),
            weight: u32::from(*p == to),
        })
        .collect();
    act(&state, id.into_inner(), Some(weights)).await
}

/// `POST /admin/v1/routes/{id}/reset`: the route's config weights again, on every node.
async fn reset(
    state: web::Data<AdminState>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    read_json::<Value>(payload).await?;
    act(&state, id.into_inner(), None).await
}
