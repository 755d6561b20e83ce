//! `PoolActor`: owns one pool's membership and publishes its [`PoolSnapshot`]s.
//!
//! Every change (an address re-resolved, a state change) arrives as a message; the actor
//! updates its members and publishes a whole new snapshot with the balancer rebuilt. The
//! request path keeps reading whichever snapshot it loaded, so no request ever waits on this
//! actor.

use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;

use super::backend::{BackendActor, BackendChanged};
use super::guard::guarded;
use super::{GetRestarts, InjectPanic};
use crate::config::PoolConfig;
use crate::routing::{BackendEntry, BackendState, BackendStats, PoolHandle, PoolSnapshot};

struct Member {
    id: Arc<str>,
    addr: SocketAddr,
    weight: u32,
    state: BackendState,
    stats: Arc<BackendStats>,
}

pub struct PoolActor {
    config: PoolConfig,
    handle: Arc<PoolHandle>,
    members: Vec<Member>,
    children: Vec<Addr<BackendActor>>,
    restarts: u32,
}

/// The supervised `BackendActor`s of a pool, in configuration order.
#[derive(Message, Debug)]
#[rtype(result = "Vec<Addr<BackendActor>>")]
pub struct GetBackendActors;

impl PoolActor {
    /// `handle` already holds the pool's first snapshot (built from the config); the actor
    /// takes its members, and their live counters, from there.
    pub fn new(config: PoolConfig, handle: Arc<PoolHandle>) -> PoolActor {
        let members = handle
            .load_full()
            .backends
            .iter()
            .map(|b| Member {
                id: b.id.clone(),
                addr: b.addr,
                weight: b.weight,
                state: b.state,
                stats: b.stats.clone(),
            })
            .collect();
        PoolActor {
            config,
            handle,
            members,
            children: Vec::new(),
            restarts: 0,
        }
    }

    fn publish(&self) {
        let version = self.handle.load().version + 1;
        let backends = self
            .members
            .iter()
            .map(|m| {
                Arc::new(BackendEntry::new(
                    m.id.clone(),
                    m.addr,
                    m.weight,
                    m.state,
                    m.stats.clone(),
                ))
            })
            .collect();
        self.handle.publish(PoolSnapshot::build(
            version,
            backends,
            &self.config.algorithm,
        ));
        tracing::debug!(pool = %self.config.id, version, "published pool snapshot");
    }

    fn apply(&mut self, change: BackendChanged) {
        let Some(member) = self.members.iter_mut().find(|m| m.id == change.id) else {
            tracing::warn!(pool = %self.config.id, backend = %change.id, "change for a backend this pool does not have");
            return;
        };
        if member.addr == change.addr && member.state == change.state {
            return;
        }
        member.addr = change.addr;
        member.state = change.state;
        self.publish();
    }
}

/// How often a pool copies its backends' live counters into their gauges.
pub const GAUGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl Actor for PoolActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(GAUGE_INTERVAL, |act, _| {
            for m in &act.members {
                m.stats.publish_gauges();
            }
        });
        if !self.children.is_empty() {
            return; // A restart: the children live on under their own supervisors.
        }
        let notify = ctx.address().recipient();
        for backend in &self.config.backends {
            let pool: Arc<str> = self.config.id.as_str().into();
            let backend = backend.clone();
            let interval = self.config.resolve_interval;
            let notify = notify.clone();
            self.children.push(Supervisor::start(move |_| {
                BackendActor::new(pool, backend, interval, notify)
            }));
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

impl Handler<GetBackendActors> for PoolActor {
    type Result = MessageResult<GetBackendActors>;

    fn handle(&mut self, _: GetBackendActors, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.children.clone())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::routing::RouteTable;

    const CONFIG: &str = r#"
        [[pools]]
        id = "api"
        algorithm = "round_robin"
        backends = [
            { id = "api-1", address = "127.0.0.1:1001" },
            { id = "api-2", address = "127.0.0.1:1002" },
        ]
    "#;

    fn pool() -> (PoolConfig, Arc<PoolHandle>) {
        let config = Config::from_toml_str(CONFIG).unwrap();
        let table = RouteTable::build(&config);
        (config.pools[0].clone(), table.pools[0].clone())
    }

    #[actix_rt::test]
    async fn a_state_change_publishes_a_new_snapshot_and_keeps_counters() {
        let (config, handle) = pool();
        let first = handle.load_full();
        assert_eq!(first.eligible.len(), 2);
        let _held = first.backends[1].stats.start_request();

        let actor = PoolActor::new(config, handle.clone()).start();
        actor
            .send(BackendChanged {
                id: "api-1".into(),
                addr: "127.0.0.1:1001".parse().unwrap(),
                state: BackendState::Down,
            })
            .await
            .unwrap();

        let next = handle.load_full();
        assert_eq!(next.version, first.version + 1);
        let eligible: Vec<_> = next.eligible.iter().map(|b| b.id.to_string()).collect();
        assert_eq!(eligible, vec!["api-2"]);
        // The snapshot a request loaded earlier is untouched.
        assert_eq!(first.eligible.len(), 2);
        // Live counters carry over to the new snapshot.
        assert_eq!(next.backends[1].stats.inflight(), 1);
    }

    #[actix_rt::test]
    async fn an_address_change_is_published_and_a_no_op_is_not() {
        let (config, handle) = pool();
        let actor = PoolActor::new(config, handle.clone()).start();
        let version = handle.load().version;
        let same = BackendChanged {
            id: "api-2".into(),
            addr: "127.0.0.1:1002".parse().unwrap(),
            state: BackendState::Up,
        };
        actor.send(same.clone()).await.unwrap();
        assert_eq!(
            handle.load().version,
            version,
            "nothing changed, nothing published"
        );
        let moved = BackendChanged {
            addr: "127.0.0.1:2002".parse().unwrap(),
            ..same
        };
        actor.send(moved).await.unwrap();
        let snap = handle.load_full();
        assert_eq!(snap.version, version + 1);
        assert_eq!(snap.backends[1].addr.port(), 2002);
        assert_eq!(snap.backends[1].authority.as_str(), "127.0.0.1:2002");
    }

    #[actix_rt::test]
    async fn a_panicking_pool_actor_is_restarted_and_keeps_serving() {
        let (config, handle) = pool();
        let actor = Supervisor::start(move |_| PoolActor::new(config, handle));
        actor.send(InjectPanic).await.unwrap();
        assert_eq!(actor.send(GetRestarts).await.unwrap(), 1);
        // The restarted actor still owns its children.
        assert_eq!(actor.send(GetBackendActors).await.unwrap().len(), 2);
    }

    #[actix_rt::test]
    async fn a_panicking_backend_actor_is_restarted() {
        let (config, handle) = pool();
        let actor = PoolActor::new(config, handle).start();
        let children = actor.send(GetBackendActors).await.unwrap();
        children[0].send(InjectPanic).await.unwrap();
        assert_eq!(children[0].send(GetRestarts).await.unwrap(), 1);
        assert_eq!(children[1].send(GetRestarts).await.unwrap(), 0);
    }
}
