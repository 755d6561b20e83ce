//! What a `PoolActor` is asked: by the admin API (drain, undrain, weight, add, remove), by
//! the region on a reload (`Reconfigure`, `RetirePool`), and by tests.

use std::time::Duration;

use actix::prelude::*;

use super::error::PoolError;
use crate::config::{BackendConfig, PoolConfig};
use crate::control::backend::BackendActor;

/// Drains a backend of this pool: it leaves the placement set at once, its sessions are asked
/// to move (close `4001`) spread evenly over `spread`, and whatever is left at `deadline` is
/// closed. Draining a draining (or drained) backend changes nothing. `Err`: no such backend.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PoolError>")]
pub struct DrainBackend {
    pub backend: String,
    pub deadline: Duration,
    pub spread: Duration,
}

/// Ends a drain: the backend takes work again (eased in by slow start).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PoolError>")]
pub struct UndrainBackend {
    pub backend: String,
}

/// Sets a backend's weight (1..=10,000, validated by the caller).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PoolError>")]
pub struct SetWeight {
    pub backend: String,
    pub weight: u32,
}

/// A reload's new configuration for this pool, with the ids of the routes now sending to it
/// (in slot order, for the per-route request counters).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub config: PoolConfig,
    pub routes: Vec<String>,
}

/// Adds a backend at runtime (admin API). `Err`: the id is taken.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PoolError>")]
pub struct AddBackend {
    pub backend: BackendConfig,
    pub routes: Vec<String>,
}

/// Removes a backend at runtime: drained, then dropped. `Err`: no such backend.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PoolError>")]
pub struct RemoveBackend {
    pub backend: String,
}

/// The pool leaves (a reload removed it): every backend is removed, then the actor stops.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RetirePool;

/// The supervised `BackendActor`s of a pool, in configuration order.
#[derive(Message, Debug)]
#[rtype(result = "Vec<Addr<BackendActor>>")]
pub struct GetBackendActors;
