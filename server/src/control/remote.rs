//! `RemoteRegionActor`: one per remote region. Probes the region's routers through their
//! public `GET /v1/status` every `directory.probe_interval` and decides its health with
//! rise/fall thresholds, like a backend's checks; the verdict and the reported load go into
//! the region's directory entry, which the request path reads.

use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;

use crate::config::DirectoryConfig;
use crate::health::active::jittered;
use crate::regions::RegionEntry;
use crate::regions::probe;

pub struct RemoteRegionActor {
    entry: Arc<RegionEntry>,
    addr: SocketAddr,
    config: DirectoryConfig,
    healthy: bool,
    passes: u32,
    failures: u32,
}

impl RemoteRegionActor {
    pub fn new(entry: Arc<RegionEntry>, addr: SocketAddr, config: DirectoryConfig) -> Self {
        RemoteRegionActor {
            entry,
            addr,
            config,
            healthy: true,
            passes: 0,
            failures: 0,
        }
    }

    fn probe(&mut self, ctx: &mut Context<Self>) {
        let (addr, timeout) = (self.addr, self.config.probe_timeout);
        ctx.spawn(
            async move { probe::status(addr, timeout).await }
                .into_actor(self)
                .map(|found, act, ctx| {
                    act.judge(found);
                    ctx.run_later(jittered(act.config.probe_interval), |act, ctx| {
                        act.probe(ctx)
                    });
                }),
        );
    }

    fn judge(&mut self, found: probe::Probe) {
        if found.ready {
            self.passes += 1;
            self.failures = 0;
        } else {
            self.failures += 1;
            self.passes = 0;
        }
        let was = self.healthy;
        if was && self.failures >= self.config.fall {
            self.healthy = false;
            tracing::warn!(region = %self.entry.name, detail = %found.detail, "remote region unhealthy: ordered last, no overflow to it");
        } else if !was && self.passes >= self.config.rise {
            self.healthy = true;
            tracing::info!(region = %self.entry.name, "remote region healthy again");
        }
        self.entry.set_probe(self.healthy, found.load);
        if found.ready || found.evacuating {
            // What the region says of itself (an answer that failed says nothing).
            self.entry.set_reported_evacuating(found.evacuating);
        }
        metrics::gauge!("switchyard_region_healthy", "region" => self.entry.name.clone())
            .set(if self.healthy { 1.0 } else { 0.0 });
    }
}

impl Actor for RemoteRegionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.probe(ctx);
    }
}

impl Supervised for RemoteRegionActor {}
