//! `BackendActor`: owns one backend's address and its active health checks.
//!
//! Checks run every `interval` (shortened by up to 20% at random), the first one at once. A backend starts
//! `Unknown` (or `Up` with `initial = "healthy"`): its first check decides; after that `fall`
//! consecutive failures make it `Down` and `rise` consecutive passes make it `Up` again. Each
//! verdict change goes to the pool, which republishes. A check has a hard timeout, so a health
//! endpoint that hangs costs a timer, never a stuck actor.
//!
//! A backend written as `host:port` is resolved at load and again every `resolve_interval`;
//! when the answer changes, the actor tells its pool. A failed lookup keeps the last good
//! address (as Envoy's strict DNS does) and is logged once per change of state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::guard::{GetRestarts, InjectPanic, guarded};
use crate::config::{BackendConfig, HealthConfig, HealthKind};
use crate::health::active::{self, CheckResult, Load, RiseFall};
use crate::health::flap::{Comeback, FlapDamper};
use crate::routing::BackendState;
use crate::upstream::tls::BackendTls;

/// A backend's address or state changed: the pool republishes its snapshot.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct BackendChanged {
    pub id: Arc<str>,
    pub addr: SocketAddr,
    pub state: BackendState,
    /// From the latest load report, if the pool reads them.
    pub load: Option<Load>,
    /// Passing its checks again, but held down by flap damping (it stays `Down` meanwhile).
    pub held_down: bool,
}

pub struct BackendActor {
    pool: Arc<str>,
    config: BackendConfig,
    resolve_interval: Duration,
    notify: Recipient<BackendChanged>,
    addr: SocketAddr,
    health: HealthConfig,
    /// Checks of a TLS pool's backend make the TLS handshake too (a certificate that does not
    /// verify fails them).
    tls: Option<Arc<BackendTls>>,
    state: BackendState,
    /// Passes and failures in a row, against the checks' `rise` and `fall`.
    verdicts: RiseFall,
    flaps: FlapDamper,
    /// Held down by flap damping now (told to the pool when it changes).
    held_down: bool,
    load: Option<Load>,
    lookup_failing: bool,
    restarts: u32,
}

impl BackendActor {
    pub fn new(
        pool: Arc<str>,
        config: BackendConfig,
        resolve_interval: Duration,
        health: HealthConfig,
        tls: Option<Arc<BackendTls>>,
        notify: Recipient<BackendChanged>,
    ) -> BackendActor {
        BackendActor {
            pool,
            addr: config.address.resolved,
            config,
            resolve_interval,
            notify,
            state: crate::routing::table::initial_state(&health),
            verdicts: RiseFall::new(health.rise, health.fall),
            health,
            tls,
            flaps: FlapDamper::default(),
            held_down: false,
            load: None,
            lookup_failing: false,
            restarts: 0,
        }
    }

    /// Runs one check now, then schedules the next.
    fn check(&mut self, ctx: &mut Context<Self>) {
        let addr = self.addr;
        let kind = self.health.kind.clone();
        let timeout = self.health.timeout;
        let tls = self.tls.clone();
        let protocol = self.health.protocol;
        ctx.spawn(
            async move { active::check(addr, tls.as_deref(), protocol, &kind, timeout).await }
                .into_actor(self)
                .map(|result, act, ctx| {
                    // Checks start an interval apart, however long one took.
                    let next = active::jittered(act.health.interval).saturating_sub(result.took);
                    guarded(ctx, "backend", || act.checked(result));
                    ctx.run_later(next, |act, ctx| act.check(ctx));
                }),
        );
    }

    fn checked(&mut self, result: CheckResult) {
        let (pool, backend) = (self.pool.to_string(), self.config.id.clone());
        let outcome = if result.passed { "pass" } else { "fail" };
        metrics::counter!("switchyard_health_checks_total", "pool" => pool.clone(), "backend" => backend.clone(), "result" => outcome).increment(1);
        metrics::histogram!("switchyard_health_check_duration_seconds", "pool" => pool.clone(), "backend" => backend.clone())
            .record(result.took.as_secs_f64());
        let load_changed = result.passed && result.load.is_some() && result.load != self.load;
        if load_changed {
            self.load = result.load;
        }
        self.verdicts.record(result.passed);
        let was_held = self.held_down;
        self.held_down = false;
        let next = match self.state {
            BackendState::Unknown if result.passed => BackendState::Up,
            BackendState::Unknown => BackendState::Down,
            BackendState::Up if self.verdicts.fallen() => BackendState::Down,
            BackendState::Down if self.verdicts.risen() => {
                let now = crate::clock::Instant::now();
                let comeback = self.flaps.comeback(&self.health.flap, now);
                let left = self.flaps.penalty_left(now).as_secs_f64();
                metrics::gauge!("switchyard_backend_flap_hold_seconds", "pool" => pool.clone(), "backend" => backend.clone()).set(left);
                match comeback {
                    Comeback::Allowed => BackendState::Up,
                    Comeback::Held(_) => {
                        self.held_down = true;
                        if self.verdicts.just_risen() {
                            tracing::warn!(pool = %self.pool, backend = %self.config.id, hold_s = left, "backend keeps flapping: held down");
                        }
                        BackendState::Down
                    }
                }
            }
            same => same,
        };
        if next != self.state {
            if next == BackendState::Up {
                tracing::info!(pool = %self.pool, backend = %self.config.id, check = %result.detail, "backend healthy");
            } else {
                tracing::warn!(pool = %self.pool, backend = %self.config.id, check = %result.detail, "backend unhealthy");
            }
            self.state = next;
            metrics::gauge!("switchyard_backend_healthy", "pool" => pool, "backend" => backend)
                .set(if next == BackendState::Up { 1.0 } else { 0.0 });
            self.publish();
        } else if load_changed || self.held_down != was_held {
            self.publish();
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
            load: self.load,
            held_down: self.held_down,
        });
    }
}

impl Actor for BackendActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.config.address.is_name {
            ctx.run_interval(self.resolve_interval, |act, ctx| act.resolve(ctx));
        }
        if self.health.kind != HealthKind::None {
            self.check(ctx);
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

/// Stops a backend actor for good (its backend left the pool, or a reload replaces it): the
/// pool drops its address first, so the supervisor does not restart it.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Retire;

impl Handler<Retire> for BackendActor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        tracing::debug!(pool = %self.pool, backend = %self.config.id, "backend actor retired");
        ctx.stop();
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
