//! `BackendActor`: owns one backend's address (and, with the health issue, its checks).
//!
//! A backend written as `host:port` is resolved at load and again every `resolve_interval`;
//! when the answer changes, the actor tells its pool, which republishes. A failed lookup keeps
//! the last good address (as Envoy's strict DNS does) and is logged once per change of state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::guard::guarded;
use super::{GetRestarts, InjectPanic};
use crate::config::BackendConfig;
use crate::routing::BackendState;

/// A backend's address or state changed: the pool republishes its snapshot.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct BackendChanged {
    pub id: Arc<str>,
    pub addr: SocketAddr,
    pub state: BackendState,
}

pub struct BackendActor {
    pool: Arc<str>,
    config: BackendConfig,
    resolve_interval: Duration,
    notify: Recipient<BackendChanged>,
    addr: SocketAddr,
    state: BackendState,
    lookup_failing: bool,
    restarts: u32,
}

impl BackendActor {
    pub fn new(
        pool: Arc<str>,
        config: BackendConfig,
        resolve_interval: Duration,
        notify: Recipient<BackendChanged>,
    ) -> BackendActor {
        BackendActor {
            pool,
            addr: config.address.resolved,
            config,
            resolve_interval,
            notify,
            state: BackendState::Up,
            lookup_failing: false,
            restarts: 0,
        }
    }

    fn resolve(&mut self, ctx: &mut Context<Self>) {
        let host = self.config.address.host.clone();
        let port = self.config.address.port;
        let lookup = async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect();
            Ok::<_, std::io::Error>(addrs)
        };
        ctx.spawn(lookup.into_actor(self).map(|result, act, ctx| {
            guarded(ctx, "backend", || act.resolved(result));
        }));
    }

    fn resolved(&mut self, result: std::io::Result<Vec<SocketAddr>>) {
        let host = &self.config.address.host;
        match result {
            Ok(addrs) => {
                let Some(next) = addrs
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or(addrs.first())
                    .copied()
                else {
                    return;
                };
                if self.lookup_failing {
                    tracing::info!(pool = %self.pool, backend = %self.config.id, %host, "address resolves again");
                    self.lookup_failing = false;
                }
                if next != self.addr {
                    tracing::info!(pool = %self.pool, backend = %self.config.id, %host, from = %self.addr, to = %next, "backend address changed");
                    self.addr = next;
                    self.publish();
                }
            }
            Err(err) => {
                if !self.lookup_failing {
                    tracing::warn!(pool = %self.pool, backend = %self.config.id, %host, error = %err, "cannot resolve backend; keeping its last address");
                    self.lookup_failing = true;
                }
            }
        }
    }

    fn publish(&self) {
        self.notify.do_send(BackendChanged {
            id: self.config.id.as_str().into(),
            addr: self.addr,
            state: self.state,
        });
    }
}

impl Actor for BackendActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.config.address.is_name {
            ctx.run_interval(self.resolve_interval, |act, ctx| act.resolve(ctx));
        }
    }
}

impl Supervised for BackendActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.restarts += 1;
        tracing::warn!(pool = %self.pool, backend = %self.config.id, restarts = self.restarts, "backend actor restarting");
        // Tell the pool what this actor believes, in case a half-done change was lost.
        self.publish();
    }
}

impl Handler<InjectPanic> for BackendActor {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) {
        guarded(ctx, "backend", || panic!("injected panic"));
    }
}

impl Handler<GetRestarts> for BackendActor {
    type Result = u32;

    fn handle(&mut self, _: GetRestarts, _: &mut Context<Self>) -> u32 {
        self.restarts
    }
}
