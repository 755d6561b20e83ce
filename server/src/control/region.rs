//! `RegionActor`: one per region this node serves. Owns the region's pools; with the regions
//! issue it also owns region health, load and the overflow decision.

use std::sync::Arc;

use actix::prelude::*;

use super::pool::PoolActor;
use crate::config::PoolConfig;
use crate::routing::PoolHandle;

pub struct RegionActor {
    name: String,
    pools: Vec<(PoolConfig, Arc<PoolHandle>)>,
    children: Vec<Addr<PoolActor>>,
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

impl RegionActor {
    pub fn new(name: String, pools: Vec<(PoolConfig, Arc<PoolHandle>)>) -> RegionActor {
        RegionActor {
            name,
            pools,
            children: Vec::new(),
        }
    }
}

impl Actor for RegionActor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        if !self.children.is_empty() {
            return;
        }
        for (config, handle) in &self.pools {
            let (config, handle) = (config.clone(), handle.clone());
            self.children
                .push(Supervisor::start(move |_| PoolActor::new(config, handle)));
        }
        tracing::debug!(region = %self.name, pools = self.children.len(), "region started");
    }
}

impl Supervised for RegionActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!(region = %self.name, "region actor restarting");
    }
}

impl Handler<GetPoolActor> for RegionActor {
    type Result = Option<Addr<PoolActor>>;

    fn handle(&mut self, msg: GetPoolActor, _: &mut Context<Self>) -> Self::Result {
        self.pools
            .iter()
            .position(|(config, _)| config.id == msg.pool)
            .and_then(|i| self.children.get(i).cloned())
    }
}

impl Handler<GetPoolActors> for RegionActor {
    type Result = MessageResult<GetPoolActors>;

    fn handle(&mut self, _: GetPoolActors, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.children.clone())
    }
}
