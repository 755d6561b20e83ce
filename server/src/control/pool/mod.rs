//! `PoolActor`: owns one pool's membership and publishes its [`PoolSnapshot`]s.
//!
//! Every change (an address re-resolved, a health check's verdict) arrives as a message; the
//! actor updates its members and publishes a whole new snapshot with the balancer rebuilt.
//! Ten times a second it also reads each backend's failure streak (an atomic the request path
//! keeps) and ejects outliers, within the pool's `max_ejection_percent`; an ejected backend
//! comes back when its ejection ends and its latest active check passed. The request path
//! keeps reading whichever snapshot it loaded, so no request ever waits on this actor.
//!
//! One concern per module: [`member`] (what the pool knows of a backend), [`membership`]
//! (adding and removing backends), [`checks`] (a backend actor's reports), [`slow_start`],
//! [`publish`] (snapshots), [`drain`] and [`weight`] (an operator's changes), [`ejection`]
//! (outlier review), [`reload`] (a reload's diff), [`gauges`]; [`actor`] holds the actor and its
//! `Handler`s, which only route each message to its module.

mod actor;
mod checks;
mod drain;
mod ejection;
mod error;
mod gauges;
mod member;
mod membership;
mod messages;
mod publish;
mod reload;
mod slow_start;
mod weight;

pub use actor::{GAUGE_INTERVAL, OUTLIER_POLL, PoolActor};
pub use drain::LATE_JOINERS_AFTER;
pub use error::PoolError;
pub use membership::{REMOVAL_DEADLINE, REMOVAL_SPREAD};
pub use messages::{
    AddBackend, DrainBackend, GetBackendActors, Reconfigure, RemoveBackend, RetirePool, SetWeight,
    UndrainBackend,
};
pub use slow_start::RAMP_STEP;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use actix::prelude::*;

    use super::*;
    use crate::config::{Config, PoolConfig};
    use crate::control::backend::BackendChanged;
    use crate::control::{GetRestarts, InjectPanic};
    use crate::routing::RouteTable;
    use crate::routing::{BackendState, PoolHandle};

    const CONFIG: &str = r#"
        [[pools]]
        id = "api"
        algorithm = "round_robin"
        health = { kind = "none" }
        outlier = { consecutive_failures = 5, base_ejection = "10s" }
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
        assert_eq!(
            first.backends[0].state,
            BackendState::Up,
            "health kind none: up at once"
        );
        let _held = first.backends[1].stats.start_request();

        let actor = PoolActor::new(config, handle.clone()).start();
        actor
            .send(BackendChanged {
                id: "api-1".into(),
                addr: "127.0.0.1:1001".parse().unwrap(),
                state: BackendState::Down,
                load: None,
                held_down: false,
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
            load: None,
            held_down: false,
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

    /// Waits (bounded) until the pool's snapshot satisfies `check`.
    async fn until(
        handle: &PoolHandle,
        what: &str,
        check: impl Fn(&crate::routing::PoolSnapshot) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !check(&handle.load_full()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[actix_rt::test]
    async fn a_failing_backend_is_ejected_and_the_rest_keep_serving() {
        let (config, handle) = pool();
        let _actor = PoolActor::new(config, handle.clone()).start();
        let api1 = handle.load_full().backends[0].stats.clone();
        for _ in 0..5 {
            api1.record_outcome(false);
        }
        until(&handle, "api-1 ejected", |s| {
            s.backends[0].state == BackendState::Ejected
        })
        .await;
        let snap = handle.load_full();
        let eligible: Vec<_> = snap.eligible.iter().map(|b| b.id.to_string()).collect();
        assert_eq!(eligible, vec!["api-2"]);
        assert_eq!(
            api1.consecutive_failures(),
            0,
            "the streak restarts after an ejection"
        );
    }

    #[actix_rt::test]
    async fn no_more_than_max_ejection_percent_is_ejected() {
        let (config, handle) = pool();
        let _actor = PoolActor::new(config, handle.clone()).start();
        for b in &handle.load_full().backends {
            for _ in 0..5 {
                b.stats.record_outcome(false);
            }
        }
        until(&handle, "one ejection", |s| {
            s.backends.iter().any(|b| b.state == BackendState::Ejected)
        })
        .await;
        // Give the actor several more polls: the second must stay in (50% of 2 is 1).
        actix_rt::time::sleep(OUTLIER_POLL * 5).await;
        let snap = handle.load_full();
        let ejected = snap
            .backends
            .iter()
            .filter(|b| b.state == BackendState::Ejected)
            .count();
        assert_eq!(ejected, 1);
        assert_eq!(snap.eligible.len(), 1);
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
