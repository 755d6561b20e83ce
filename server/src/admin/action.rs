//! An operator's change to one backend (drain, undrain, weight) or one route (its pools'
//! weights, a reset to the config) and how this node applies it: a backend's is found in the
//! published snapshots and sent to the `PoolActor` that owns it; a route's weights are swapped
//! on the route's split, which requests read without a lock. The API's handlers apply what
//! they are asked; the cluster channel applies what other nodes announce.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::config::MAX_SPLIT_WEIGHT;
use crate::control::RouterSupervisor;
use crate::control::pool::{DrainBackend, PoolActor, SetWeight, UndrainBackend};
use crate::control::region::{GetPoolActor, RegionActor};
use crate::control::supervisor::GetRegionActors;
use crate::routing::split::{Weights, WeightsFrom};
use crate::routing::{BackendEntry, PoolHandle, Route, RouteTable};

/// An admin change, as applied to a pool actor and as sent to the other nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum AdminAction {
    Drain {
        backend: String,
        deadline_ms: u64,
        spread_ms: u64,
    },
    Undrain {
        backend: String,
    },
    Weight {
        backend: String,
        weight: u32,
    },
    /// A route's weights, one per pool it sends to (its split's parts, or its two colours).
    RouteWeights {
        route: String,
        weights: Vec<PoolWeight>,
    },
    /// A route back to its config's weights.
    RouteReset {
        route: String,
    },
}

/// One pool's weight in a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolWeight {
    pub pool: String,
    pub weight: u32,
}

impl AdminAction {
    /// The backend it changes, if it changes one.
    pub fn backend(&self) -> Option<&str> {
        match self {
            AdminAction::Drain { backend, .. }
            | AdminAction::Undrain { backend }
            | AdminAction::Weight { backend, .. } => Some(backend),
            AdminAction::RouteWeights { .. } | AdminAction::RouteReset { .. } => None,
        }
    }

    /// Which persisted field it sets (a later action on the same field replaces it): the
    /// field of the cluster's hash, `drain:ID`, `weight:ID` or `route:ID`.
    pub fn field(&self) -> String {
        match self {
            AdminAction::Drain { backend, .. } | AdminAction::Undrain { backend } => {
                format!("drain:{backend}")
            }
            AdminAction::Weight { backend, .. } => format!("weight:{backend}"),
            AdminAction::RouteWeights { route, .. } | AdminAction::RouteReset { route } => {
                format!("route:{route}")
            }
        }
    }
}

/// Which pools a weights change must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// Some of the route's pools; the others keep their weight (an operator's call).
    Some,
    /// Every pool of the route, and no other (a change shared between nodes: a node whose
    /// route has other pools — another config — ignores it rather than mix two configs).
    Every,
}

/// Sets a route's weights on this node: no pool unknown, not all 0. Answers the route and its
/// weights now, every pool named (what the other nodes are told).
pub fn set_route_weights(
    table: &RouteTable,
    route: &str,
    weights: &[PoolWeight],
    naming: Naming,
) -> Result<(Arc<Route>, Vec<PoolWeight>), ApiError> {
    let found = table
        .routes()
        .find(|r| &*r.id == route)
        .ok_or_else(|| ApiError::unknown_route(route))?;
    let split = found.split.as_ref().ok_or_else(|| one_pool(route))?;
    let mut values = vec![None; found.variants.len()];
    for w in weights {
        let at = found
            .variants
            .iter()
            .position(|v| *v.pool.id == *w.pool)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "field `weights.{}`: route {route:?} does not send to pool {:?} (it sends to {})",
                    w.pool,
                    w.pool,
                    pool_list(found)
                ))
            })?;
        if w.weight as i64 > MAX_SPLIT_WEIGHT {
            return Err(ApiError::bad_request(format!(
                "field `weights.{}`: {} is more than {MAX_SPLIT_WEIGHT}",
                w.pool, w.weight
            )));
        }
        values[at] = Some(w.weight);
    }
    if naming == Naming::Every && values.iter().any(Option::is_none) {
        return Err(ApiError::bad_request(format!(
            "the weights name pools {:?}, but route {route:?} sends to {}",
            weights.iter().map(|w| w.pool.as_str()).collect::<Vec<_>>(),
            pool_list(found)
        )));
    }
    // Pools left out keep their weight; all of it is swapped at once (a compare-and-swap
    // would not help: two operators' calls are applied in the order they arrive).
    let current = split.weights();
    let values: Vec<u32> = values
        .iter()
        .zip(&current.values)
        .map(|(new, now)| new.unwrap_or(*now))
        .collect();
    if values.iter().all(|w| *w == 0) {
        return Err(ApiError::bad_request(
            "field `weights`: every weight would be 0: at least one pool must take traffic",
        ));
    }
    let every = found
        .variants
        .iter()
        .zip(&values)
        .map(|(v, &weight)| PoolWeight {
            pool: v.pool.id.to_string(),
            weight,
        })
        .collect();
    split.set(Weights {
        values,
        from: WeightsFrom::Admin,
    });
    Ok((found.clone(), every))
}

/// Returns a route to its config's weights on this node.
pub fn reset_route(table: &RouteTable, route: &str) -> Result<Arc<Route>, ApiError> {
    let found = table
        .routes()
        .find(|r| &*r.id == route)
        .ok_or_else(|| ApiError::unknown_route(route))?;
    let split = found.split.as_ref().ok_or_else(|| one_pool(route))?;
    split.reset();
    Ok(found.clone())
}

/// A route that sends to one pool has nothing to weigh or switch.
pub fn one_pool(route: &str) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::CONFLICT,
        "single_pool",
        format!(
            "route {route:?} sends to one pool: give it a `split` or a `standby` in the config to weigh or switch it"
        ),
    )
}

/// `"a", "b"` for a route's pools.
pub fn pool_list(route: &Route) -> String {
    let names: Vec<String> = route
        .variants
        .iter()
        .map(|v| format!("{:?}", &*v.pool.id))
        .collect();
    names.join(", ")
}

/// A backend by id, with its pool.
pub fn find(table: &RouteTable, id: &str) -> Option<(Arc<PoolHandle>, Arc<BackendEntry>)> {
    table.pools.iter().find_map(|pool| {
        let snapshot = pool.load();
        snapshot
            .backends
            .iter()
            .find(|b| &*b.id == id)
            .map(|b| (pool.clone(), b.clone()))
    })
}

/// Applies an admin action to this node's pool actor. `Err`: unknown backend or the actor
/// did not answer.
pub async fn apply(
    table: &RouteTable,
    supervisor: &Addr<RouterSupervisor>,
    action: &AdminAction,
) -> Result<(), ApiError> {
    let id = match action {
        AdminAction::RouteWeights { route, weights } => {
            return set_route_weights(table, route, weights, Naming::Every).map(|_| ());
        }
        AdminAction::RouteReset { route } => return reset_route(table, route).map(|_| ()),
        _ => action.backend().unwrap_or_default(),
    };
    let (pool, _) = find(table, id).ok_or_else(|| ApiError::unknown_backend(id))?;
    let actor = pool_actor(supervisor, &pool.id)
        .await
        .ok_or_else(|| ApiError::unavailable("the pool's actor is not running"))?;
    let outcome = match action.clone() {
        AdminAction::Drain {
            backend,
            deadline_ms,
            spread_ms,
        } => {
            actor
                .send(DrainBackend {
                    backend,
                    deadline: Duration::from_millis(deadline_ms),
                    spread: Duration::from_millis(spread_ms),
                })
                .await
        }
        AdminAction::Undrain { backend } => actor.send(UndrainBackend { backend }).await,
        AdminAction::Weight { backend, weight } => actor.send(SetWeight { backend, weight }).await,
        AdminAction::RouteWeights { .. } | AdminAction::RouteReset { .. } => return Ok(()),
    };
    // A pool's refusal keeps its own answer (`unknown_backend`, `conflict`, ...).
    outcome.map_err(|_| ApiError::unavailable("the pool's actor did not answer"))??;
    Ok(())
}

/// The `RegionActor` of this node's own region.
pub async fn local_region(supervisor: &Addr<RouterSupervisor>) -> Option<Addr<RegionActor>> {
    let regions = supervisor.send(GetRegionActors).await.ok()?;
    regions.into_iter().next()
}

/// The `PoolActor` owning `pool`.
pub async fn pool_actor(
    supervisor: &Addr<RouterSupervisor>,
    pool: &str,
) -> Option<Addr<PoolActor>> {
    let regions = supervisor.send(GetRegionActors).await.ok()?;
    for region in regions {
        let found = region
            .send(GetPoolActor {
                pool: pool.to_string(),
            })
            .await;
        if let Ok(Some(actor)) = found {
            return Some(actor);
        }
    }
    None
}
