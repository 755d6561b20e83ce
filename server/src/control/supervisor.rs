//! `RouterSupervisor`: the root of the actor tree. Starts the local region with its pools,
//! keeps the metrics exporter's histograms drained, sweeps expired session records, and
//! applies config reloads: a new route table (kept pools keep their handles, so requests and
//! sessions under way are untouched) and the pool changes for the region to carry out. Routes
//! under a rollout send to its canary pool too, whether or not their config splits
//! ([`SetCanaries`]): the table is built from the config with those routes amended.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use arc_swap::ArcSwap;

use super::pool::Reconfigure;
use super::region::{ApplyPools, RegionActor};
use super::remote::RemoteRegionActor;
use super::rollout::ledger::Ledger;
use super::rollout::{Rollouts, SetCanaries};
use crate::config::{Config, SplitBy, SplitConfig};
use crate::regions::Directory;
use crate::routing::RouteTable;
use crate::session::Store;
use crate::telemetry;

/// How often the Prometheus exporter folds recorded histogram samples.
pub const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

pub struct RouterSupervisor {
    config: Config,
    table: Arc<ArcSwap<RouteTable>>,
    sessions: Arc<Store>,
    directory: Arc<Directory>,
    regions: Vec<Addr<RegionActor>>,
    remotes: Vec<Addr<RemoteRegionActor>>,
    /// Route id → the pools a rollout weighs on it, with the rollout's weights now.
    canaries: BTreeMap<String, Vec<(String, u32)>>,
    rollouts: Option<Addr<Rollouts>>,
}

/// The node's [`Rollouts`].
#[derive(Message, Debug)]
#[rtype(result = "Option<Addr<Rollouts>>")]
pub struct GetRollouts;

/// How often expired session records are swept.
pub const SESSION_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Applies a validated configuration: routes, pools and backends. Parts that need a restart
/// (listeners, node, sessions, log, regions, the listeners' limits) are kept as they are and named in the report.
#[derive(Message, Debug)]
#[rtype(result = "ReloadReport")]
pub struct Reload(pub Config);

/// What a reload changed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadReport {
    pub routes: usize,
    pub pools_added: Vec<String>,
    pub pools_kept: Vec<String>,
    /// Pools leaving: their backends drain first, then they stop.
    pub pools_removed: Vec<String>,
    /// Changed sections this reload did not apply (a restart does).
    pub restart_needed: Vec<String>,
}

/// The supervised `RegionActor`s.
#[derive(Message, Debug)]
#[rtype(result = "Vec<Addr<RegionActor>>")]
pub struct GetRegionActors;

impl RouterSupervisor {
    pub fn new(
        config: Config,
        table: Arc<ArcSwap<RouteTable>>,
        sessions: Arc<Store>,
        directory: Arc<Directory>,
    ) -> RouterSupervisor {
        RouterSupervisor {
            config,
            table,
            sessions,
            directory,
            regions: Vec::new(),
            remotes: Vec::new(),
            canaries: BTreeMap::new(),
            rollouts: None,
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
        for region in self
            .config
            .regions
            .iter()
            .filter(|r| r.name != self.config.node.region)
        {
            let (Some(entry), Some(addr)) =
                (self.directory.region(&region.name), region.endpoint_addr)
            else {
                continue;
            };
            let (entry, config) = (entry.clone(), self.config.directory.clone());
            self.remotes.push(Supervisor::start(move |_| {
                RemoteRegionActor::new(entry, addr, config)
            }));
        }
        let ledger = match self.sessions.shared() {
            Some(shared) => Ledger::redis(shared.clone()),
            None => Ledger::memory(),
        };
        self.rollouts =
            Some(Rollouts::new(ledger, self.table.clone(), ctx.address().recipient()).start());
        ctx.run_interval(SESSION_SWEEP_INTERVAL, |act, _| {
            let dropped = act.sessions.sweep();
            metrics::gauge!("switchyard_sessions_recorded").set(act.sessions.len() as f64);
            tracing::debug!(dropped, "swept expired session records");
        });
        ctx.run_interval(METRICS_UPKEEP_INTERVAL, |_, _| telemetry::upkeep());
    }
}

impl RouterSupervisor {
    /// Builds the table for `config` (the rollouts' canaries added) and has the region apply
    /// the pool changes.
    fn rebuild(&self, config: &Config) -> (ReloadReport, RouteTable) {
        let old = self.table.load_full();
        let (table, changes) =
            RouteTable::rebuild(&with_canaries(config, &self.canaries), Some(&old));
        let report = ReloadReport {
            routes: config.routes.len(),
            pools_added: changes.added.iter().map(|(c, _)| c.id.clone()).collect(),
            pools_kept: changes.kept.iter().map(|(c, _)| c.id.clone()).collect(),
            pools_removed: changes.removed.clone(),
            restart_needed: restart_needed(&self.config, config),
        };
        if let Some(region) = self.regions.first() {
            region.do_send(ApplyPools {
                added: changes.added,
                kept: changes
                    .kept
                    .into_iter()
                    .map(|(config, routes)| Reconfigure { config, routes })
                    .collect(),
                removed: changes.removed,
            });
        }
        (report, table)
    }

    fn reload(&mut self, new: Config) -> ReloadReport {
        let (report, table) = self.rebuild(&new);
        self.table.store(Arc::new(table));
        // Keep what a reload cannot change, so the next reload compares against what runs.
        let mut applied = new;
        applied.node = self.config.node.clone();
        applied.listeners = self.config.listeners.clone();
        applied.sessions = self.config.sessions.clone();
        applied.log = self.config.log.clone();
        applied.regions = self.config.regions.clone();
        applied.limits = self.config.limits;
        self.config = applied;
        tracing::info!(?report, "configuration reloaded");
        metrics::counter!("switchyard_config_reloads_total", "outcome" => "applied").increment(1);
        report
    }
}

/// `config` with each route of `canaries` sending to its rollout's pools too, with the
/// rollout's weights (a pool the config no longer has is left out, logged).
fn with_canaries<'c>(
    config: &'c Config,
    canaries: &BTreeMap<String, Vec<(String, u32)>>,
) -> std::borrow::Cow<'c, Config> {
    if canaries.is_empty() {
        return std::borrow::Cow::Borrowed(config);
    }
    let mut amended = config.clone();
    for (route, wanted) in canaries {
        let Some(at) = amended.routes.iter().position(|r| r.id == *route) else {
            continue;
        };
        for (canary, weight) in wanted {
            let Some(pool) = amended.pools.iter().position(|p| p.id == *canary) else {
                tracing::warn!(%route, pool = %canary, "a rollout's pool is not in the config: the route does not send to it");
                continue;
            };
            let r = &mut amended.routes[at];
            let split = r.split.get_or_insert_with(|| SplitConfig {
                parts: vec![(r.pool, 1)],
                by: SplitBy::Session,
                override_header: None,
                response_header: None,
            });
            match split.parts.iter_mut().find(|(p, _)| *p == pool) {
                Some(part) => part.1 = *weight,
                None => split.parts.push((pool, *weight)),
            }
        }
    }
    std::borrow::Cow::Owned(amended)
}

/// Sections that differ and that only a restart applies.
fn restart_needed(old: &Config, new: &Config) -> Vec<String> {
    let mut needed = Vec::new();
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let node = |c: &Config| {
        (
            c.node.region.clone(),
            c.node.listen,
            c.node.admin_listen,
            c.node.workers,
            c.node.shutdown_timeout,
            c.node.shutdown_delay,
            c.node.admin_token.clone(),
        )
    };
    if differs(&node(old), &node(new)) {
        needed.push("node".to_string());
    }
    if differs(&old.listeners, &new.listeners) {
        needed.push("listeners".to_string());
    }
    if differs(&old.sessions, &new.sessions) {
        needed.push("sessions".to_string());
    }
    if differs(&old.log, &new.log) {
        needed.push("log".to_string());
    }
    if differs(&old.regions, &new.regions) {
        needed.push("regions".to_string());
    }
    // The routes' rates (`rate_per_ip` included) are applied with the routes; the listeners'
    // limits are set when they start.
    if old.limits != new.limits {
        needed.push("limits".to_string());
    }
    needed
}

impl Handler<Reload> for RouterSupervisor {
    type Result = MessageResult<Reload>;

    fn handle(&mut self, msg: Reload, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.reload(msg.0))
    }
}

impl Handler<SetCanaries> for RouterSupervisor {
    type Result = ();

    fn handle(&mut self, msg: SetCanaries, _: &mut Context<Self>) {
        // Only a change of pools needs a new table; weights alone the rollouts set on the
        // routes' splits (kept here for the next rebuild).
        let pools = |m: &BTreeMap<String, Vec<(String, u32)>>| {
            m.iter()
                .map(|(r, ps)| {
                    (
                        r.clone(),
                        ps.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
                    )
                })
                .collect::<BTreeMap<_, _>>()
        };
        let same = pools(&msg.0) == pools(&self.canaries);
        self.canaries = msg.0;
        if same {
            return;
        }
        tracing::info!(canaries = ?self.canaries, "routes under a rollout changed: rebuilding the route table");
        let config = self.config.clone();
        let (_, table) = self.rebuild(&config);
        self.table.store(Arc::new(table));
    }
}

impl Handler<GetRollouts> for RouterSupervisor {
    type Result = MessageResult<GetRollouts>;

    fn handle(&mut self, _: GetRollouts, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.rollouts.clone())
    }
}

impl Handler<GetRegionActors> for RouterSupervisor {
    type Result = MessageResult<GetRegionActors>;

    fn handle(&mut self, _: GetRegionActors, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.regions.clone())
    }
}
