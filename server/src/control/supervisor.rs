//! `RouterSupervisor`: the root of the actor tree. Starts the local region with its pools,
//! keeps the metrics exporter's histograms drained and sweeps expired session records. Config
//! reload lands here later.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use arc_swap::ArcSwap;

use super::region::RegionActor;
use crate::config::Config;
use crate::routing::RouteTable;
use crate::session::Store;
use crate::telemetry;

/// How often the Prometheus exporter folds recorded histogram samples.
pub const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

pub struct RouterSupervisor {
    config: Config,
    table: Arc<ArcSwap<RouteTable>>,
    sessions: Arc<Store>,
    regions: Vec<Addr<RegionActor>>,
}

/// How often expired session records are swept.
pub const SESSION_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The supervised `RegionActor`s.
#[derive(Message, Debug)]
#[rtype(result = "Vec<Addr<RegionActor>>")]
pub struct GetRegionActors;

impl RouterSupervisor {
    pub fn new(
        config: Config,
        table: Arc<ArcSwap<RouteTable>>,
        sessions: Arc<Store>,
    ) -> RouterSupervisor {
        RouterSupervisor {
            config,
            table,
            sessions,
            regions: Vec::new(),
        }
    }
}

impl Actor for RouterSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let table = self.table.load_full();
        let pools = self
            .config
            .pools
            .iter()
            .cloned()
            .zip(table.pools.iter().cloned())
            .collect();
        let name = self.config.node.region.clone();
        self.regions
            .push(Supervisor::start(move |_| RegionActor::new(name, pools)));
        ctx.run_interval(SESSION_SWEEP_INTERVAL, |act, _| {
            let dropped = act.sessions.sweep();
            metrics::gauge!("switchyard_sessions_recorded").set(act.sessions.len() as f64);
            tracing::debug!(dropped, "swept expired session records");
        });
        ctx.run_interval(METRICS_UPKEEP_INTERVAL, |_, _| {
            if let Some(handle) = telemetry::metrics_handle() {
                handle.run_upkeep();
            }
        });
    }
}

impl Handler<GetRegionActors> for RouterSupervisor {
    type Result = MessageResult<GetRegionActors>;

    fn handle(&mut self, _: GetRegionActors, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.regions.clone())
    }
}
