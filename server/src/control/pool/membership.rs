//! Membership: backends join (a reload or `POST /backends`) with fresh counters and their
//! own supervised `BackendActor`, and leave drained first, then dropped.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::actor::PoolActor;
use super::error::PoolError;
use super::member::Member;
use super::messages::DrainBackend;
use crate::config::BackendConfig;
use crate::control::backend::{BackendActor, Retire};
use crate::routing::BackendStats;
use crate::upstream::tls::BackendTls;

/// A removed backend's drain: its sessions move over this long, and whatever is left is
/// closed at the deadline.
pub const REMOVAL_SPREAD: Duration = Duration::from_secs(10);
pub const REMOVAL_DEADLINE: Duration = Duration::from_secs(60);

impl PoolActor {
    /// Where backend `id` sits among the members; `NoBackend` names the pool when it is not one.
    pub(super) fn member_at(&self, id: &str) -> Result<usize, PoolError> {
        self.members
            .iter()
            .position(|m| *m.id == *id)
            .ok_or_else(|| PoolError::NoBackend {
                pool: self.config.id.clone(),
                backend: id.to_string(),
            })
    }

    /// The pool's TLS settings for one backend (`None` for a plain pool).
    pub(super) fn backend_tls(&self, backend: &BackendConfig) -> Option<Arc<BackendTls>> {
        self.config
            .tls
            .as_ref()
            .map(|t| t.backend_tls(&backend.address))
    }

    /// Starts the supervised `BackendActor` of a backend.
    pub(super) fn start_child(&mut self, backend: BackendConfig, ctx: &mut Context<Self>) {
        let pool: Arc<str> = self.config.id.as_str().into();
        let id: Arc<str> = backend.id.as_str().into();
        let interval = self.config.resolve_interval;
        let health = self.config.health.clone();
        let tls = self
            .members
            .iter()
            .find(|m| *m.id == *backend.id)
            .and_then(|m| m.tls.clone());
        let notify = ctx.address().recipient();
        let child = Supervisor::start(move |_| {
            BackendActor::new(pool, backend, interval, health, tls, notify)
        });
        self.children.push((id, child));
    }

    /// Stops a backend's actor for good (dropping its address so it is not restarted).
    pub(super) fn retire_child(&mut self, id: &str) {
        if let Some(at) = self.children.iter().position(|(c, _)| &**c == id) {
            let (_, child) = self.children.remove(at);
            child.do_send(Retire);
        }
    }

    /// Adds a backend (a reload or the admin API): a member with fresh counters and its own
    /// actor. `Err` when the id is taken in this pool.
    pub(super) fn add_backend(
        &mut self,
        backend: BackendConfig,
        routes: &[String],
        ctx: &mut Context<Self>,
    ) -> Result<(), PoolError> {
        if self.members.iter().any(|m| *m.id == *backend.id) {
            return Err(PoolError::Exists {
                pool: self.config.id.clone(),
                backend: backend.id,
            });
        }
        let stats = Arc::new(BackendStats::new(&self.config.id, &backend.id, routes));
        stats.set_max_sessions(backend.max_sessions);
        let health = crate::routing::table::initial_state(&self.config.health);
        let tls = self.backend_tls(&backend);
        self.members.push(Member::new(
            backend.id.as_str().into(),
            backend.address.resolved,
            backend.weight,
            health,
            stats,
            tls,
        ));
        tracing::info!(pool = %self.config.id, backend = %backend.id, address = %backend.address.resolved, "backend added");
        self.start_child(backend, ctx);
        self.publish();
        Ok(())
    }

    /// Takes a backend out: drained first (its sessions move, its requests finish), then
    /// dropped. `Err` when there is no such backend.
    pub(super) fn remove_backend(
        &mut self,
        id: &str,
        ctx: &mut Context<Self>,
    ) -> Result<(), PoolError> {
        let drain = DrainBackend {
            backend: id.to_string(),
            deadline: REMOVAL_DEADLINE,
            spread: REMOVAL_SPREAD,
        };
        self.drain(drain, ctx)?;
        if let Some(m) = self.members.iter_mut().find(|m| &*m.id == id) {
            m.removing = true;
        }
        Ok(())
    }
}
