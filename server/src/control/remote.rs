//! `RemoteRegionActor`: one per remote region. Probes the region's routers through their
//! public `GET /v1/status` every `directory.probe_interval` and decides its health with
//! rise/fall thresholds, like a backend's checks; the verdict and the reported load go into
//! the region's directory entry, which the request path reads.

use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;

use crate::config::DirectoryConfig;
use crate::health::active::{RiseFall, jittered};
use crate::regions::RegionEntry;
use crate::regions::probe;

pub struct RemoteRegionActor {
    entry: Arc<RegionEntry>,
    addr: SocketAddr,
    config: DirectoryConfig,
    healthy: bool,
    /// Passes and failures in a row, against the directory's `rise` and `fall`.
    verdicts: RiseFall,
}

impl RemoteRegionActor {
    pub fn new(entry: Arc<RegionEntry>, addr: SocketAddr, config: DirectoryConfig) -> Self {
        RemoteRegionActor {
            entry,
            addr,
            verdicts: RiseFall::new(config.rise, config.fall),
            config,
            healthy: true,
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
        self.verdicts.record(found.ready);
        let was = self.healthy;
        if was && self.verdicts.fallen() {
            self.healthy = false;
            tracing::warn!(region = %self.entry.name, detail = %found.detail, "remote region unhealthy: ordered last, no overflow to it");
        } else if !was && self.verdicts.risen() {
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
