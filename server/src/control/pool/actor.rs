//! The `PoolActor` itself: its state, its timers (outlier review and drains ten times a
//! second, counters into gauges once a second), its restart, and its `Handler`s, each of which
//! hands its message to the module of that concern.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Instant;

use actix::prelude::*;

use super::error::PoolError;
use super::member::Member;
use super::messages::{
    AddBackend, DrainBackend, GetBackendActors, Reconfigure, RemoveBackend, RetirePool, SetWeight,
    UndrainBackend,
};
use crate::config::PoolConfig;
use crate::control::backend::{BackendActor, BackendChanged};
use crate::control::guard::{GetRestarts, InjectPanic, guarded};
use crate::routing::PoolHandle;

/// How often failure streaks are read for outlier ejection: a backend failing every request
/// is out within about this long after its streak reaches the threshold.
pub const OUTLIER_POLL: Duration = Duration::from_millis(100);
/// How often a pool copies its backends' live counters into their gauges.
pub const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

pub struct PoolActor {
    /// When the last slow-start step was published.
    pub(super) ramp_published: Option<Instant>,
    /// Panic mode was logged (once the first health verdicts were in), and its end not yet.
    pub(super) panic_told: bool,
    pub(super) config: PoolConfig,
    pub(super) handle: Arc<PoolHandle>,
    pub(super) members: Vec<Member>,
    pub(super) children: Vec<(Arc<str>, Addr<BackendActor>)>,
    /// Set when the pool itself is leaving (a reload removed it): it stops once empty.
    pub(super) retiring: bool,
    pub(super) restarts: u32,
}

impl PoolActor {
    /// `handle` already holds the pool's first snapshot (built from the config); the actor
    /// takes its members, and their live counters, from there.
    pub fn new(config: PoolConfig, handle: Arc<PoolHandle>) -> PoolActor {
        let members = handle
            .load_full()
            .backends
            .iter()
            .map(|b| {
                Member::new(
                    b.id.clone(),
                    b.addr,
                    b.weight,
                    b.state,
                    b.stats.clone(),
                    b.tls.clone(),
                )
            })
            .collect();
        PoolActor {
            ramp_published: None,
            panic_told: false,
            config,
            handle,
            members,
            children: Vec::new(),
            retiring: false,
            restarts: 0,
        }
    }
}

impl Actor for PoolActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.publish_states(None);
        ctx.run_interval(GAUGE_INTERVAL, |act, _| act.publish_counters());
        ctx.run_interval(OUTLIER_POLL, |act, ctx| {
            guarded(ctx, "pool", || act.review_outliers());
            act.review_drains(ctx);
        });
        if !self.children.is_empty() || self.retiring {
            // A restart: the children live on under their own supervisors (or, for a pool
            // that is leaving, were retired and must not come back).
            return;
        }
        for backend in self.config.backends.clone() {
            self.start_child(backend, ctx);
        }
    }
}

impl Supervised for PoolActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.restarts += 1;
        tracing::warn!(pool = %self.config.id, restarts = self.restarts, "pool actor restarting");
        // Republish from what the actor holds, so the snapshot matches its state again.
        self.publish();
    }
}

impl Handler<BackendChanged> for PoolActor {
    type Result = ();

    fn handle(&mut self, change: BackendChanged, ctx: &mut Context<Self>) {
        guarded(ctx, "pool", || self.apply(change));
    }
}

impl Handler<Reconfigure> for PoolActor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Context<Self>) {
        self.reconfigure(msg, ctx);
    }
}

impl Handler<AddBackend> for PoolActor {
    type Result = Result<(), PoolError>;

    fn handle(&mut self, msg: AddBackend, ctx: &mut Context<Self>) -> Self::Result {
        self.add_backend(msg.backend, &msg.routes, ctx)
    }
}

impl Handler<RemoveBackend> for PoolActor {
    type Result = Result<(), PoolError>;

    fn handle(&mut self, msg: RemoveBackend, ctx: &mut Context<Self>) -> Self::Result {
        self.remove_backend(&msg.backend, ctx)
    }
}

impl Handler<RetirePool> for PoolActor {
    type Result = ();

    fn handle(&mut self, _: RetirePool, ctx: &mut Context<Self>) {
        self.retiring = true;
        let ids: Vec<Arc<str>> = self.members.iter().map(|m| m.id.clone()).collect();
        for id in ids {
            let _ = self.remove_backend(&id, ctx);
        }
    }
}

impl Handler<DrainBackend> for PoolActor {
    type Result = Result<(), PoolError>;

    fn handle(&mut self, msg: DrainBackend, ctx: &mut Context<Self>) -> Self::Result {
        self.drain(msg, ctx)
    }
}

impl Handler<UndrainBackend> for PoolActor {
    type Result = Result<(), PoolError>;

    fn handle(&mut self, msg: UndrainBackend, ctx: &mut Context<Self>) -> Self::Result {
        self.undrain(msg, ctx)
    }
}

impl Handler<SetWeight> for PoolActor {
    type Result = Result<(), PoolError>;

    fn handle(&mut self, msg: SetWeight, _: &mut Context<Self>) -> Self::Result {
        self.set_weight(msg)
    }
}

impl Handler<GetBackendActors> for PoolActor {
    type Result = MessageResult<GetBackendActors>;

    fn handle(&mut self, _: GetBackendActors, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.children.iter().map(|(_, a)| a.clone()).collect())
    }
}

impl Handler<InjectPanic> for PoolActor {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) {
        guarded(ctx, "pool", || panic!("injected panic"));
    }
}

impl Handler<GetRestarts> for PoolActor {
    type Result = u32;

    fn handle(&mut self, _: GetRestarts, _: &mut Context<Self>) -> u32 {
        self.restarts
    }
}
