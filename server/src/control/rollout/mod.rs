//! Canary rollouts on this node.
//!
//! ```text
//! RouterSupervisor
//!  └─ Rollouts            one per node: every tick reads the ledger, takes or renews the lease,
//!      │                  keeps the routes' canaries in the route table, answers the admin API
//!      └─ RolloutActor    one per rollout: applies its weights to the route here, counts this
//!                         node's outcomes for it and reports them; on the node holding the
//!                         lease, sums every node's, judges the step and stores the decision
//! ```
//! What a rollout is and how it decides is [`plan`] (judging with [`canary`]); where it is kept and
//! how the nodes share it, [`ledger`]. Redis down: nothing is decided (a rollout never
//! advances blind), every node keeps the weights it applied, and the status says why.

pub mod canary;
pub mod ledger;
pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use arc_swap::ArcSwap;

use self::ledger::{Ledger, LedgerError};
use crate::control::rollout::plan::{Action, By, Next, Pair, Plan, Rollout};
use crate::routing::RouteTable;
use crate::routing::split::{Weights, WeightsFrom};

/// How often each node reads the rollouts, and the deciding node judges them.
pub const TICK: Duration = Duration::from_millis(500);
/// How long the lease to decide lasts unless renewed (renewed every tick): how soon another
/// node decides after the deciding one dies.
pub const LEASE_TTL: Duration = Duration::from_secs(3);
/// Tries of an operator's change that another node's change keeps beating.
const TRIES: usize = 5;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The routes rollouts weigh (route id → the rollout's pools with its weights now), whole:
/// the table is rebuilt when a route's pools change. Such a route gets a split of its
/// config's pools and the rollout's, weighed as the rollout says (so a rebuild never falls
/// back to the config's weights, even for a moment).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetCanaries(pub BTreeMap<String, Vec<(String, u32)>>);

/// Why a rollout call was refused.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("no rollout with id {0:?}")]
    NotFound(String),
    /// The route has a running or paused rollout.
    #[error(
        "route {route:?} has rollout {existing} under way: pause, promote or roll it back first"
    )]
    Exists { route: String, existing: String },
    /// The change does not apply to the rollout as it stands.
    #[error("{0}")]
    Conflict(String),
    #[error("rollouts cannot be read or changed now: {0}")]
    Unavailable(#[from] LedgerError),
}

/// This node's view of the rollouts.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// Whether this node decides (holds the lease).
    pub deciding: bool,
    /// Whether rollouts are shared through Redis (else they live on this node).
    pub shared: bool,
    /// Why nothing is decided now (Redis unreachable), when that is so.
    pub held: Option<String>,
    /// When the ledger was last read (`None`: not yet since the node started).
    pub read_at: Option<std::time::Instant>,
}

/// The rollouts as last read, with this node's status.
#[derive(Message)]
#[rtype(result = "(Vec<Rollout>, Status)")]
pub struct List;

/// Starts a rollout.
#[derive(Message)]
#[rtype(result = "Result<Rollout, RolloutError>")]
pub struct Start(pub Plan);

/// An operator's pause, resume, promote or rollback.
#[derive(Message)]
#[rtype(result = "Result<Rollout, RolloutError>")]
pub struct Change {
    pub id: String,
    pub action: Action,
}

/// Forgets the finished rollouts of a route (its reset); refused while one is under way.
/// Answers how many it forgot.
#[derive(Message)]
#[rtype(result = "Result<usize, RolloutError>")]
pub struct Forget {
    pub route: String,
}

pub struct Rollouts {
    ledger: Arc<Ledger>,
    node: String,
    table: Arc<ArcSwap<RouteTable>>,
    /// The supervisor, told which routes need their rollouts' pools.
    supervisor: Recipient<SetCanaries>,
    actors: BTreeMap<String, Addr<RolloutActor>>,
    known: Vec<Rollout>,
    status: Status,
    reading: bool,
}

impl Rollouts {
    pub fn new(
        ledger: Ledger,
        table: Arc<ArcSwap<RouteTable>>,
        supervisor: Recipient<SetCanaries>,
    ) -> Rollouts {
        Rollouts {
            status: Status {
                shared: ledger.is_shared(),
                ..Status::default()
            },
            ledger: Arc::new(ledger),
            node: uuid::Uuid::new_v4().to_string(),
            table,
            supervisor,
            actors: BTreeMap::new(),
            known: Vec::new(),
            reading: false,
        }
    }

    /// Reads the ledger and the lease, then brings the node in line ([`Rollouts::sync`]).
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.reading {
            return;
        }
        self.reading = true;
        let (ledger, node) = (self.ledger.clone(), self.node.clone());
        let read = async move {
            let all = ledger.all().await?;
            let deciding = ledger.lease(&node, LEASE_TTL).await?;
            Ok::<_, LedgerError>((all, deciding))
        };
        ctx.spawn(read.into_actor(self).map(|read, act, _| {
            act.reading = false;
            act.sync(read);
        }));
    }

    fn sync(&mut self, read: Result<(Vec<Rollout>, bool), LedgerError>) {
        let (all, deciding) = match read {
            Ok(read) => read,
            Err(err) => {
                let active = self.known.iter().any(|r| r.phase.is_active());
                match (self.status.held.is_none(), active) {
                    (true, true) => {
                        tracing::warn!(error = %err, "rollouts hold their steps: the rollout ledger cannot be read")
                    }
                    (true, false) => {
                        tracing::debug!(error = %err, "the rollout ledger cannot be read")
                    }
                    _ => {}
                }
                self.status.held = Some(format!(
                    "{err}: every rollout holds its step and this node keeps the weights it applied"
                ));
                self.status.deciding = false;
                metrics::gauge!("switchyard_rollout_deciding").set(0.0);
                return;
            }
        };
        self.status.read_at = Some(std::time::Instant::now());
        if self.status.held.take().is_some() {
            tracing::info!("the rollout ledger answers again: rollouts go on");
        }
        if deciding != self.status.deciding {
            tracing::info!(deciding, "rollout lease changed hands");
        }
        self.status.deciding = deciding;
        metrics::gauge!("switchyard_rollout_deciding").set(f64::from(u8::from(deciding)));
        let canaries = all
            .iter()
            .map(|r| (r.plan.route.clone(), r.weights()))
            .collect();
        self.supervisor.do_send(SetCanaries(canaries));
        self.actors.retain(|id, actor| {
            let kept = all.iter().any(|r| r.id == *id);
            if !kept {
                actor.do_send(Stop);
            }
            kept
        });
        for rollout in &all {
            let actor = self.actors.entry(rollout.id.clone()).or_insert_with(|| {
                RolloutActor {
                    rollout: rollout.clone(),
                    ledger: self.ledger.clone(),
                    node: self.node.clone(),
                    table: self.table.clone(),
                    counted: Counted::default(),
                    judging: false,
                }
                .start()
            });
            actor.do_send(Sync {
                rollout: rollout.clone(),
                deciding,
            });
        }
        self.known = all;
    }
}

impl Actor for Rollouts {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.tick(ctx);
        ctx.run_interval(TICK, Self::tick);
    }
}

impl Handler<List> for Rollouts {
    type Result = MessageResult<List>;

    fn handle(&mut self, _: List, _: &mut Context<Self>) -> Self::Result {
        MessageResult((self.known.clone(), self.status.clone()))
    }
}

impl Handler<Start> for Rollouts {
    type Result = ResponseActFuture<Self, Result<Rollout, RolloutError>>;

    fn handle(&mut self, Start(plan): Start, _: &mut Context<Self>) -> Self::Result {
        let id = format!("ro-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let rollout = Rollout::new(id, plan, now_ms());
        let ledger = self.ledger.clone();
        let create = async move {
            match ledger.create(&rollout).await? {
                Some(existing) => Err(RolloutError::Exists {
                    route: rollout.plan.route.clone(),
                    existing,
                }),
                None => Ok(rollout),
            }
        };
        Box::pin(create.into_actor(self).map(|created, act, ctx| {
            if let Ok(rollout) = &created {
                decided(
                    rollout,
                    Action::Start,
                    By::Admin,
                    "started through the admin API",
                );
                act.tick(ctx);
            }
            created
        }))
    }
}

impl Handler<Change> for Rollouts {
    type Result = ResponseActFuture<Self, Result<Rollout, RolloutError>>;

    fn handle(&mut self, change: Change, _: &mut Context<Self>) -> Self::Result {
        let ledger = self.ledger.clone();
        let apply = async move {
            for _ in 0..TRIES {
                let all = ledger.all().await?;
                let mut rollout = all
                    .into_iter()
                    .find(|r| r.id == change.id)
                    .ok_or_else(|| RolloutError::NotFound(change.id.clone()))?;
                rollout
                    .allows(change.action)
                    .map_err(RolloutError::Conflict)?;
                let based_on = rollout.version;
                let reason = format!("{} through the admin API", change.action.as_str());
                rollout.apply(change.action, By::Admin, now_ms(), None, reason, None);
                if ledger.update(&rollout, based_on).await? {
                    return Ok(rollout);
                }
            }
            Err(RolloutError::Conflict(format!(
                "rollout {} kept changing while this change was tried {TRIES} times: try again",
                change.id
            )))
        };
        Box::pin(apply.into_actor(self).map(move |changed, act, ctx| {
            if let Ok(rollout) = &changed {
                let action = rollout.history.last().map_or(Action::Start, |d| d.action);
                decided(rollout, action, By::Admin, "through the admin API");
                act.tick(ctx);
            }
            changed
        }))
    }
}

impl Handler<Forget> for Rollouts {
    type Result = ResponseActFuture<Self, Result<usize, RolloutError>>;

    fn handle(&mut self, forget: Forget, _: &mut Context<Self>) -> Self::Result {
        let ledger = self.ledger.clone();
        // Read now, not the last tick's view: a rollout started elsewhere a moment ago counts,
        // and with the ledger unreadable nothing is forgotten (503) rather than seemingly.
        let remove = async move {
            let on_route: Vec<Rollout> = ledger
                .all()
                .await?
                .into_iter()
                .filter(|r| r.plan.route == forget.route)
                .collect();
            if let Some(active) = on_route.iter().find(|r| r.phase.is_active()) {
                return Err(RolloutError::Exists {
                    route: forget.route,
                    existing: active.id.clone(),
                });
            }
            for r in &on_route {
                ledger.remove(&r.id).await?;
            }
            Ok(on_route.len())
        };
        Box::pin(remove.into_actor(self).map(|removed, act, ctx| {
            if removed.as_ref().is_ok_and(|n| *n > 0) {
                act.tick(ctx);
            }
            removed
        }))
    }
}

/// Logs and counts a decision.
fn decided(rollout: &Rollout, action: Action, by: By, why: &str) {
    let by = match by {
        By::Controller => "controller",
        By::Admin => "admin",
    };
    let reason = rollout
        .history
        .last()
        .map_or(why.to_string(), |d| d.reason.clone());
    tracing::info!(
        rollout = %rollout.id,
        route = %rollout.plan.route,
        canary = %rollout.plan.canary,
        action = action.as_str(),
        by,
        step = rollout.step,
        percent = rollout.percent(),
        reason,
        "rollout decision"
    );
    metrics::counter!(
        "switchyard_rollout_decisions_total",
        "route" => rollout.plan.route.clone(),
        "action" => action.as_str(),
        "by" => by,
    )
    .increment(1);
}

/// The rollout as last read, and whether this node decides.
#[derive(Message)]
#[rtype(result = "()")]
struct Sync {
    rollout: Rollout,
    deciding: bool,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Stop;

/// This node's outcomes for a rollout since its first reading here (what the route counted
/// before — an earlier rollout's requests — is not this one's). The route's counters start
/// again when the route table is rebuilt (a reload, a canary added): a reading from another
/// `Route` than the last one counts whole, as everything since that rebuild.
#[derive(Default)]
struct Counted {
    /// The route the last reading came from (its address: compared, never dereferenced).
    route: Option<usize>,
    last: Pair,
    total: Pair,
}

impl Counted {
    fn add(&mut self, route: usize, reading: Pair) {
        match self.route {
            None => {}
            Some(same) if same == route => self.total.add(&reading.since(&self.last)),
            Some(_) => self.total.add(&reading),
        }
        self.route = Some(route);
        self.last = reading;
    }
}

/// One rollout on this node.
pub struct RolloutActor {
    rollout: Rollout,
    ledger: Arc<Ledger>,
    node: String,
    table: Arc<ArcSwap<RouteTable>>,
    counted: Counted,
    judging: bool,
}

impl RolloutActor {
    /// Sets the rollout's weights on its route here, when they differ (the route gets its
    /// canary from the supervisor: until it has, there is nothing to set yet).
    fn apply_weights(&self) {
        let table = self.table.load();
        let Some(route) = table.routes().find(|r| *r.id == *self.rollout.plan.route) else {
            return;
        };
        let Some(split) = &route.split else {
            return;
        };
        let weights = self.rollout.weights();
        let values: Option<Vec<u32>> = route
            .variants
            .iter()
            .map(|v| {
                weights
                    .iter()
                    .find(|(p, _)| *p == *v.pool.id)
                    .map(|(_, w)| *w)
            })
            .collect();
        let Some(values) = values else {
            return;
        };
        let next = Weights {
            values,
            from: WeightsFrom::Rollout,
        };
        // A finished rollout's weights hold until someone else sets the route's (the admin
        // API): then they are that one's.
        let now = split.weights();
        if !self.rollout.phase.is_active() && now.from == WeightsFrom::Admin {
            return;
        }
        if *now != next {
            split.set(next);
            tracing::info!(rollout = %self.rollout.id, route = %route.id, percent = self.rollout.percent(), "applied the rollout's weights");
        }
        metrics::gauge!(
            "switchyard_rollout_canary_percent",
            "route" => self.rollout.plan.route.clone(),
            "rollout" => self.rollout.id.clone(),
        )
        .set(self.rollout.percent());
    }

    /// This node's outcomes on the baseline and the canary now.
    fn read(&mut self) -> Option<Pair> {
        let table = self.table.load();
        let route = table.routes().find(|r| *r.id == *self.rollout.plan.route)?;
        let side = |pool: &str| {
            route
                .variants
                .iter()
                .find(|v| *v.pool.id == *pool)
                .map(|v| v.outcomes.tally())
        };
        let reading = Pair {
            baseline: side(&self.rollout.plan.baseline)?,
            canary: side(&self.rollout.plan.canary)?,
        };
        self.counted
            .add(std::sync::Arc::as_ptr(route) as usize, reading);
        Some(self.counted.total.clone())
    }
}

impl Actor for RolloutActor {
    type Context = Context<Self>;
}

impl Handler<Stop> for RolloutActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<Sync> for RolloutActor {
    type Result = ();

    fn handle(&mut self, sync: Sync, ctx: &mut Context<Self>) {
        if sync.rollout.version >= self.rollout.version {
            self.rollout = sync.rollout;
        }
        self.apply_weights();
        if !self.rollout.phase.is_active() || self.judging {
            return;
        }
        let Some(mine) = self.read() else {
            return;
        };
        self.judging = true;
        let (ledger, node) = (self.ledger.clone(), self.node.clone());
        let mut rollout = self.rollout.clone();
        let deciding =
            sync.deciding && rollout.phase == crate::control::rollout::plan::Phase::Running;
        let judge = async move {
            ledger.report(&rollout.id, &node, &mine).await?;
            if !deciding {
                return Ok(None);
            }
            let sums = ledger.sums(&rollout.id).await?;
            let now = now_ms();
            let based_on = rollout.version;
            let action = match &rollout.window_start {
                None => {
                    rollout.open_window(now, &sums);
                    None
                }
                Some(_) => match rollout.decide(now, &sums) {
                    Next::Hold(j) => {
                        // The figures of the step so far, for the status: not a change, so
                        // the version stays (an operator's change made meanwhile wins).
                        rollout.last = Some(j);
                        None
                    }
                    Next::Change(action, j) => {
                        let reason = j.reason.clone();
                        rollout.apply(action, By::Controller, now, Some(&sums), reason, Some(j));
                        Some(action)
                    }
                },
            };
            let stored = ledger.update(&rollout, based_on).await?;
            Ok::<_, LedgerError>(stored.then_some((rollout, action)))
        };
        ctx.spawn(judge.into_actor(self).map(|judged, act, _| {
            act.judging = false;
            match judged {
                Ok(Some((rollout, action))) => {
                    if let Some(action) = action {
                        decided(&rollout, action, By::Controller, "");
                    }
                    // An operator's change read meanwhile is newer: it stays.
                    if rollout.version >= act.rollout.version {
                        act.rollout = rollout;
                    }
                    act.apply_weights();
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(rollout = %act.rollout.id, error = %err, "rollout not judged this tick")
                }
            }
        }));
    }
}
