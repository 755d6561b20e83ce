//! `RegionActor`: one per region this node serves. Owns the region's pools (a reload adds and
//! removes them here) and an operator's evacuation of the region: every live session of its
//! pools asked to move to another region, spread over the evacuation's window, until it is
//! lifted.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::pool::{PoolActor, Reconfigure, RetirePool};
use crate::config::PoolConfig;
use crate::routing::handoff::{self, Pace};
use crate::routing::{MoveTo, PoolHandle};

pub struct RegionActor {
    name: String,
    /// The pools to start with.
    initial: Vec<(PoolConfig, Arc<PoolHandle>)>,
    /// Running pools by id, with their handles (whose session registries an evacuation reads).
    children: Vec<(String, Addr<PoolActor>, Arc<PoolHandle>)>,
    /// The spread of an evacuation under way.
    evacuation: Option<SpawnHandle>,
}

/// Evacuates the region: every live session of its pools is closed with `4003` (naming
/// `to`, the region to go to, when there is one), one at a time over `spread` (at once with
/// none). Answers how many sessions are asked to move. An evacuation under way is replaced.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct Evacuate {
    pub spread: Duration,
    pub to: Option<String>,
}

/// Lifts an evacuation: sessions not yet asked to move stay where they are.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Unevacuate;

/// The supervised `PoolActor`s of a region, in configuration order.
#[derive(Message, Debug)]
#[rtype(result = "Vec<Addr<PoolActor>>")]
pub struct GetPoolActors;

/// The `PoolActor` of one pool, if this region has it.
#[derive(Message, Debug)]
#[rtype(result = "Option<Addr<PoolActor>>")]
pub struct GetPoolActor {
    pub pool: String,
}

/// A reload: pools to start, pools to reconfigure, pools to retire.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ApplyPools {
    pub added: Vec<(PoolConfig, Arc<PoolHandle>)>,
    pub kept: Vec<Reconfigure>,
    pub removed: Vec<String>,
}

impl RegionActor {
    pub fn new(name: String, pools: Vec<(PoolConfig, Arc<PoolHandle>)>) -> RegionActor {
        RegionActor {
            name,
            initial: pools,
            children: Vec::new(),
            evacuation: None,
        }
    }

    fn start_pool(&mut self, config: PoolConfig, handle: Arc<PoolHandle>) {
        let id = config.id.clone();
        let pool = handle.clone();
        let actor = Supervisor::start(move |_| PoolActor::new(config, pool));
        self.children.push((id, actor, handle));
    }
}

impl Actor for RegionActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        if !self.children.is_empty() {
            return;
        }
        for (config, handle) in std::mem::take(&mut self.initial) {
            self.start_pool(config, handle);
        }
        tracing::debug!(region = %self.name, pools = self.children.len(), "region started");
    }
}

impl Supervised for RegionActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(region = %self.name, "region actor restarting");
    }
}

impl Handler<ApplyPools> for RegionActor {
    type Result = ();

    fn handle(&mut self, msg: ApplyPools, _: &mut Context<Self>) {
        for (config, handle) in msg.added {
            tracing::info!(region = %self.name, pool = %config.id, "pool added");
            self.start_pool(config, handle);
        }
        for change in msg.kept {
            if let Some((_, actor, _)) = self
                .children
                .iter()
                .find(|(id, _, _)| *id == change.config.id)
            {
                actor.do_send(change);
            }
        }
        for id in msg.removed {
            if let Some(at) = self.children.iter().position(|(c, _, _)| *c == id) {
                // Dropping the address lets the pool stop for good once it is empty.
                let (_, actor, _) = self.children.remove(at);
                actor.do_send(RetirePool);
                tracing::info!(region = %self.name, pool = %id, "pool leaving: its backends drain first");
            }
        }
    }
}

impl Handler<GetPoolActor> for RegionActor {
    type Result = Option<Addr<PoolActor>>;

    fn handle(&mut self, msg: GetPoolActor, _: &mut Context<Self>) -> Self::Result {
        self.children
            .iter()
            .find(|(id, _, _)| *id == msg.pool)
            .map(|(_, actor, _)| actor.clone())
    }
}

impl Handler<GetPoolActors> for RegionActor {
    type Result = MessageResult<GetPoolActors>;

    fn handle(&mut self, _: GetPoolActors, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.children.iter().map(|(_, a, _)| a.clone()).collect())
    }
}

impl Handler<Evacuate> for RegionActor {
    type Result = usize;

    fn handle(&mut self, msg: Evacuate, ctx: &mut Context<Self>) -> usize {
        let sessions = handoff::every_session(self.children.iter().map(|(_, _, pool)| pool));
        let moving = sessions.len();
        let spreading = handoff::move_sessions(
            sessions,
            Pace::spread(msg.spread),
            MoveTo::Region(msg.to),
            "evacuation",
            |_| true,
        );
        if let Some(previous) = self
            .evacuation
            .replace(ctx.spawn(spreading.into_actor(self)))
        {
            ctx.cancel_future(previous);
        }
        moving
    }
}

impl Handler<Unevacuate> for RegionActor {
    type Result = ();

    fn handle(&mut self, _: Unevacuate, ctx: &mut Context<Self>) {
        if let Some(spreading) = self.evacuation.take() {
            ctx.cancel_future(spreading);
        }
    }
}
