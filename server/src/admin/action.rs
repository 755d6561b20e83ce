//! An operator's change to one backend (drain, undrain, weight) and how this node applies it:
//! found in the published snapshots, sent to the `PoolActor` that owns it. The API's handlers
//! apply what they are asked; the cluster channel applies what other nodes announce.

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::control::RouterSupervisor;
use crate::control::pool::{DrainBackend, PoolActor, SetWeight, UndrainBackend};
use crate::control::region::{GetPoolActor, RegionActor};
use crate::control::supervisor::GetRegionActors;
use crate::routing::{BackendEntry, PoolHandle, RouteTable};

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
}

impl AdminAction {
    pub fn backend(&self) -> &str {
        match self {
            AdminAction::Drain { backend, .. }
            | AdminAction::Undrain { backend }
            | AdminAction::Weight { backend, .. } => backend,
        }
    }

    /// Which persisted field it sets: a later action on the same field replaces it.
    pub fn field(&self) -> (bool, &str) {
        (matches!(self, AdminAction::Weight { .. }), self.backend())
    }
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
    let id = action.backend();
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
