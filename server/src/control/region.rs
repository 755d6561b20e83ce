//! `RegionActor`: one per region this node serves. Owns the region's pools (a reload adds and
//! removes them here); with the regions issue it also owns region health, load and the
//! overflow decision.

use std::sync::Arc;

use actix::prelude::*;

use super::pool::{PoolActor, Reconfigure, RetirePool};
use crate::config::PoolConfig;
use crate::routing::PoolHandle;

pub struct RegionActor {
    name: String,
    /// The pools to start with.
    initial: Vec<(PoolConfig, Arc<PoolHandle>)>,
    /// Running pools by id.
    children: Vec<(String, Addr<PoolActor>)>,
}

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
        }
    }

    fn start_pool(&mut self, config: PoolConfig, handle: Arc<PoolHandle>) {
        let id = config.id.clone();
        let actor = Supervisor::start(move |_| PoolActor::new(config, handle));
        self.children.push((id, actor));
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
            if let Some((_, actor)) = self.children.iter().find(|(id, _)| *id == change.config.id) {
                actor.do_send(change);
            }
        }
        for id in msg.removed {
            if let Some(at) = self.children.iter().position(|(c, _)| *c == id) {
                // Dropping the address lets the pool stop for good once it is empty.
                let (_, actor) = self.children.remove(at);
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
            .find(|(id, _)| *id == msg.pool)
            .map(|(_, actor)| actor.clone())
    }
}

impl Handler<GetPoolActors> for RegionActor {
    type Result = MessageResult<GetPoolActors>;

    fn handle(&mut self, _: GetPoolActors, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.children.iter().map(|(_, a)| a.clone()).collect())
    }
}
