//! `PoolActor`: owns one pool's membership and publishes its [`PoolSnapshot`]s.
//!
//! Every change (an address re-resolved, a health check's verdict) arrives as a message; the
//! actor updates its members and publishes a whole new snapshot with the balancer rebuilt.
//! Ten times a second it also reads each backend's failure streak (an atomic the request path
//! keeps) and ejects outliers, within the pool's `max_ejection_percent`; an ejected backend
//! comes back when its ejection ends and its latest active check passed. The request path
//! keeps reading whichever snapshot it loaded, so no request ever waits on this actor.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::backend::{BackendActor, BackendChanged, Retire};
use super::guard::guarded;
use super::{GetRestarts, InjectPanic};
use crate::clock::Instant;
use crate::config::{BackendConfig, PoolConfig};
use crate::health::outlier;
use crate::routing::handoff::{self, DEFAULT_RECONNECT_SPREAD};
use crate::routing::{BackendEntry, BackendState, BackendStats, Health, MoveTo, PoolHandle};
use crate::upstream::tls::BackendTls;

/// How often failure streaks are read for outlier ejection: a backend failing every request
/// is out within about this long after its streak reaches the threshold.
pub const OUTLIER_POLL: Duration = Duration::from_millis(100);
/// How often slow-start weights step up while a backend ramps.
pub const RAMP_STEP: Duration = Duration::from_millis(500);

struct Member {
    id: Arc<str>,
    addr: SocketAddr,
    weight: u32,
    /// What the backend's active checks say (`Up`, `Down` or `Unknown`).
    health: BackendState,
    /// Set while passively ejected.
    ejected_until: Option<Instant>,
    times_ejected: u32,
    /// When the backend last came back from an ejection (to forgive old ejections).
    back_since: Option<Instant>,
    /// When it (re)joined, while its slow start lasts.
    joined_at: Option<Instant>,
    /// From its load report: share of its weight to use (percent), and whether it is full.
    load_percent: u32,
    overloaded: bool,
    stats: Arc<BackendStats>,
    /// An operator's drain, from the request until `undrain`.
    drain: Option<DrainState>,
    /// Leaving the pool (removed by a reload or the admin API): dropped once drained.
    removing: bool,
    /// Its pool's TLS settings for it (kept across publications, so the keep-alive pool's
    /// key stays the same); `None`: plain TCP.
    tls: Option<Arc<BackendTls>>,
}

/// A drain under way (or done).
struct DrainState {
    started: Instant,
    deadline: Instant,
    /// Every session listed when the drain began has been asked to close.
    spread_done: bool,
    /// Nothing is left on the backend: it shows `drained`.
    drained: bool,
    /// The spread closes and the deadline sweep, cancelled by `undrain`.
    tasks: Vec<SpawnHandle>,
}

impl Member {
    fn new(
        id: Arc<str>,
        addr: SocketAddr,
        weight: u32,
        health: BackendState,
        stats: Arc<BackendStats>,
        tls: Option<Arc<BackendTls>>,
    ) -> Member {
        Member {
            id,
            addr,
            weight,
            health,
            ejected_until: None,
            times_ejected: 0,
            back_since: None,
            joined_at: None,
            load_percent: 100,
            overloaded: false,
            stats,
            drain: None,
            removing: false,
            tls,
        }
    }

    /// An operator's drain says most; then failed checks, an ejection, a full backend, and
    /// the checks' verdict.
    fn state(&self) -> BackendState {
        if let Some(drain) = &self.drain {
            return match drain.drained {
                true => BackendState::Drained,
                false => BackendState::Draining,
            };
        }
        match (self.health, self.ejected_until) {
            (BackendState::Down, _) => BackendState::Down,
            (_, Some(_)) => BackendState::Ejected,
            (BackendState::Up, None) if self.overloaded => BackendState::Overloaded,
            (health, None) => health,
        }
    }
}

pub struct PoolActor {
    /// When the last slow-start step was published.
    ramp_published: Option<Instant>,
    config: PoolConfig,
    handle: Arc<PoolHandle>,
    members: Vec<Member>,
    children: Vec<(Arc<str>, Addr<BackendActor>)>,
    /// Set when the pool itself is leaving (a reload removed it): it stops once empty.
    retiring: bool,
    restarts: u32,
}

/// Why a pool refused an operator's change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The pool has no backend with that id.
    #[error("no backend {backend:?} in pool {pool:?}")]
    NoBackend { pool: String, backend: String },
    /// The pool has a backend with that id already.
    #[error("pool {pool:?} already has a backend {backend:?}")]
    Exists { pool: String, backend: String },
    /// The backend is leaving the pool: it is drained on its way out and cannot be undrained.
    #[error(
        "backend {backend:?} is being removed from pool {pool:?}; it cannot be undrained (add it back instead)"
    )]
    Removing { pool: String, backend: String },
}

/// Drains a backend of this pool: it leaves the placement set at once, its sessions are asked
/// to move (close `4001`) spread evenly over `spread`, and whatever is left at `deadline` is
/// closed. Draining a draining (or drained) backend changes nothing. `Err`: no such backend.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PoolError>")]
pub struct DrainBackend {
    pub backend: String,
    pub deadline: Duration,
    pub spread: Duration,
}

/// Ends a drain: the backend takes work again (eased in by slow start).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PoolError>")]
pub struct UndrainBackend {
    pub backend: String,
}

/// Sets a backend's weight (1..=10,000, validated by the caller).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PoolError>")]
pub struct SetWeight {
    pub backend: String,
    pub weight: u32,
}

/// A reload's new configuration for this pool, with the ids of the routes now sending to it
/// (in slot order, for the per-route request counters).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub config: PoolConfig,
    pub routes: Vec<String>,
}

/// Adds a backend at runtime (admin API). `Err`: the id is taken.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PoolError>")]
pub struct AddBackend {
    pub backend: BackendConfig,
    pub routes: Vec<String>,
}

/// Removes a backend at runtime: drained, then dropped. `Err`: no such backend.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<(), PoolError>")]
pub struct RemoveBackend {
    pub backend: String,
}

/// The pool leaves (a reload removed it): every backend is removed, then the actor stops.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RetirePool;

/// A removed backend's drain: its sessions move over this long, and whatever is left is
/// closed at the deadline.
pub const REMOVAL_SPREAD: Duration = Duration::from_secs(10);
pub const REMOVAL_DEADLINE: Duration = Duration::from_secs(60);
/// After a drain's spread, when sessions that registered just after it began are moved too.
pub const LATE_JOINERS_AFTER: Duration = Duration::from_secs(1);

/// The supervised `BackendActor`s of a pool, in configuration order.
#[derive(Message, Debug)]
#[rtype(result = "Vec<Addr<BackendActor>>")]
pub struct GetBackendActors;

impl PoolActor {
    /// `handle` already holds the pool's first snapshot (built from the config); the actor
    /// takes its members, and their live counters, from there.
    pub fn new(config: PoolConfig, handle: Arc<PoolHandle>) -> PoolActor {
        let members = handle
            .load_full()
            .backends
            .iter()
            .map(|b| {
                Member::new(
                    b.id.clone(),
                    b.addr,
                    b.weight,
                    b.state,
                    b.stats.clone(),
                    b.tls.clone(),
                )
            })
            .collect();
        PoolActor {
            ramp_published: None,
            config,
            handle,
            members,
            children: Vec::new(),
            retiring: false,
            restarts: 0,
        }
    }

    /// Effective weights, in hundredths of the configured ones, when anyone's differs: slow
    /// start ramps a backend that (re)joined less than `slow_start` ago from 10% to 100%, and a
    /// load report scales a busy backend down. `None` when nobody is reweighted, or when the
    /// pool hashes (a weight change would move keys).
    fn effective_weights(&self, now: Instant) -> Option<Vec<u32>> {
        if matches!(
            self.config.algorithm,
            crate::config::Algorithm::ConsistentHash(_)
        ) {
            return None;
        }
        let window = self.config.slow_start;
        let ramp = |m: &Member| {
            m.joined_at
                .filter(|_| !window.is_zero())
                .map(|t| now.duration_since(t).as_secs_f64() / window.as_secs_f64())
                .filter(|f| *f < 1.0)
                .map(|f| f.max(0.1))
        };
        if !self
            .members
            .iter()
            .any(|m| ramp(m).is_some() || m.load_percent < 100)
        {
            return None;
        }
        Some(
            self.members
                .iter()
                .map(|m| {
                    let share = ramp(m).unwrap_or(1.0) * f64::from(m.load_percent) / 100.0;
                    ((f64::from(m.weight) * 100.0 * share) as u32).max(1)
                })
                .collect(),
        )
    }

    /// True while some backend's slow start lasts.
    fn ramping(&self, now: Instant) -> bool {
        let window = self.config.slow_start;
        !window.is_zero()
            && self
                .members
                .iter()
                .any(|m| m.joined_at.is_some_and(|t| now.duration_since(t) < window))
    }

    /// `switchyard_backend_state{pool,backend,state}`: 1 for each backend's current state
    /// (`up`, `down`, `unknown`, `ejected`, `overloaded`, `draining`, `drained`, or
    /// `slow_start` while it ramps), 0 for the others.
    fn publish_states(&self, ramp: Option<&[u32]>) {
        const STATES: [&str; 8] = [
            "up",
            "down",
            "unknown",
            "ejected",
            "overloaded",
            "slow_start",
            "draining",
            "drained",
        ];
        for (i, m) in self.members.iter().enumerate() {
            let ramping =
                m.joined_at.is_some() && ramp.is_some_and(|w| w[i] < m.weight.saturating_mul(100));
            let current = if ramping && m.state() == BackendState::Up {
                "slow_start"
            } else {
                m.state().as_str()
            };
            for state in STATES {
                metrics::gauge!(
                    "switchyard_backend_state",
                    "pool" => self.config.id.clone(),
                    "backend" => m.id.to_string(),
                    "state" => state,
                )
                .set(if state == current { 1.0 } else { 0.0 });
            }
        }
    }

    fn publish(&mut self) {
        let previous = self.handle.load();
        let version = previous.version + 1;
        let was_panicking = previous.panic;
        drop(previous);
        let now = Instant::now();
        let ramp = self.effective_weights(now);
        let ramping = self.ramping(now);
        if !ramping {
            for m in &mut self.members {
                m.joined_at = None;
            }
        }
        self.ramp_published = ramping.then_some(now);
        let backends = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let weight = ramp.as_ref().map_or(m.weight, |w| w[i]);
                Arc::new(
                    BackendEntry::new(m.id.clone(), m.addr, weight, m.state(), m.stats.clone())
                        .with_tls(m.tls.clone())
                        .with_health(Health {
                            checks: m.health,
                            ejected: m.ejected_until.is_some(),
                            overloaded: m.overloaded,
                        }),
                )
            })
            .collect();
        self.publish_states(ramp.as_deref());
        let next = self.handle.snapshot(version, backends, ramp.is_some());
        let (panic, eligible) = (next.panic, next.eligible.len());
        self.handle.publish(next);
        metrics::gauge!("switchyard_pool_panic", "pool" => self.config.id.clone()).set(if panic {
            1.0
        } else {
            0.0
        });
        if panic != was_panicking {
            if panic {
                tracing::warn!(pool = %self.config.id, eligible, "too few healthy backends: routing across all of them (panic mode)");
            } else {
                tracing::info!(pool = %self.config.id, "enough healthy backends again: panic mode over");
            }
        }
        tracing::debug!(pool = %self.config.id, version, "published pool snapshot");
    }

    fn apply(&mut self, change: BackendChanged) {
        let Some(member) = self.members.iter_mut().find(|m| m.id == change.id) else {
            tracing::warn!(pool = %self.config.id, backend = %change.id, "change for a backend this pool does not have");
            return;
        };
        let (load_percent, overloaded) = change
            .load
            .map_or((100, false), |l| (l.weight_percent, l.overloaded));
        if member.addr == change.addr
            && member.health == change.state
            && member.load_percent == load_percent
            && member.overloaded == overloaded
        {
            return;
        }
        member.load_percent = load_percent;
        member.overloaded = overloaded;
        // Back from failed checks: ease it in (a first verdict is not a comeback), and forget
        // failures from before (panic mode may have sent it requests while it was down).
        if member.health == BackendState::Down && change.state == BackendState::Up {
            member.joined_at = Some(Instant::now());
            member.stats.reset_failures();
        }
        member.addr = change.addr;
        member.health = change.state;
        self.publish();
    }

    /// A draining backend whose sessions were all asked to move, and that holds no session and
    /// no request any more (or whose deadline passed with nothing left), shows `drained`.
    fn review_drains(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut changed = false;
        for m in &mut self.members {
            let Some(drain) = &mut m.drain else { continue };
            let empty = m.stats.sessions() == 0 && m.stats.inflight() == 0;
            if !drain.drained && empty && (drain.spread_done || now >= drain.deadline) {
                drain.drained = true;
                changed = true;
                metrics::counter!("switchyard_backend_admin_transitions_total", "pool" => self.config.id.clone(), "backend" => m.id.to_string(), "to" => "drained").increment(1);
                tracing::info!(pool = %self.config.id, backend = %m.id, took = ?now.duration_since(drain.started), "backend drained");
            }
        }
        // Members leaving the pool go once drained.
        let gone: Vec<Arc<str>> = self
            .members
            .iter()
            .filter(|m| m.removing && m.drain.as_ref().is_some_and(|d| d.drained))
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            self.members.retain(|m| &m.id != id);
            self.retire_child(id);
            tracing::info!(pool = %self.config.id, backend = %id, "backend removed from the pool");
            changed = true;
        }
        if changed {
            self.publish();
        }
        if self.retiring && self.members.is_empty() {
            tracing::info!(pool = %self.config.id, "pool removed");
            ctx.stop();
        }
    }

    /// The pool's TLS settings for one backend (`None` for a plain pool).
    fn backend_tls(&self, backend: &BackendConfig) -> Option<Arc<BackendTls>> {
        self.config
            .tls
            .as_ref()
            .map(|t| t.backend_tls(&backend.address))
    }

    /// Starts the supervised `BackendActor` of a backend.
    fn start_child(&mut self, backend: BackendConfig, ctx: &mut Context<Self>) {
        let pool: Arc<str> = self.config.id.as_str().into();
        let id: Arc<str> = backend.id.as_str().into();
        let interval = self.config.resolve_interval;
        let health = self.config.health.clone();
        let tls = self
            .members
            .iter()
            .find(|m| *m.id == *backend.id)
            .and_then(|m| m.tls.clone());
        let notify = ctx.address().recipient();
        let child = Supervisor::start(move |_| {
            BackendActor::new(pool, backend, interval, health, tls, notify)
        });
        self.children.push((id, child));
    }

    /// Stops a backend's actor for good (dropping its address so it is not restarted).
    fn retire_child(&mut self, id: &str) {
        if let Some(at) = self.children.iter().position(|(c, _)| &**c == id) {
            let (_, child) = self.children.remove(at);
            child.do_send(Retire);
        }
    }

    /// Adds a backend (a reload or the admin API): a member with fresh counters and its own
    /// actor. `Err` when the id is taken in this pool.
    fn add_backend(
        &mut self,
        backend: BackendConfig,
        routes: &[String],
        ctx: &mut Context<Self>,
    ) -> Result<(), PoolError> {
        if self.members.iter().any(|m| *m.id == *backend.id) {
            return Err(PoolError::Exists {
                pool: self.config.id.clone(),
                backend: backend.id,
            });
        }
        let stats = Arc::new(BackendStats::new(&self.config.id, &backend.id, routes));
        stats.set_max_sessions(backend.max_sessions);
        let health = crate::routing::table::initial_state(&self.config.health);
        let tls = self.backend_tls(&backend);
        self.members.push(Member::new(
            backend.id.as_str().into(),
            backend.address.resolved,
            backend.weight,
            health,
            stats,
            tls,
        ));
        tracing::info!(pool = %self.config.id, backend = %backend.id, address = %backend.address.resolved, "backend added");
        self.start_child(backend, ctx);
        self.publish();
        Ok(())
    }

    /// Takes a backend out: drained first (its sessions move, its requests finish), then
    /// dropped. `Err` when there is no such backend.
    fn remove_backend(&mut self, id: &str, ctx: &mut Context<Self>) -> Result<(), PoolError> {
        let drain = DrainBackend {
            backend: id.to_string(),
            deadline: REMOVAL_DEADLINE,
            spread: REMOVAL_SPREAD,
        };
        self.drain(drain, ctx)?;
        if let Some(m) = self.members.iter_mut().find(|m| &*m.id == id) {
            m.removing = true;
        }
        Ok(())
    }

    /// A reload: new settings, backends added, removed (drained first) or changed.
    fn reconfigure(&mut self, msg: Reconfigure, ctx: &mut Context<Self>) {
        let Reconfigure { config, routes } = msg;
        self.handle
            .set_settings(config.algorithm.clone(), config.panic_threshold);
        self.handle
            .set_shedding(config.max_inflight, config.queue_timeout);
        let checks_changed = config.health != self.config.health
            || config.resolve_interval != self.config.resolve_interval;
        // New TLS settings (or CA certificates): new connections and checks use them.
        let tls_changed = config.tls != self.config.tls;
        let old = std::mem::replace(&mut self.config, config);
        for m in &self.members {
            m.stats.set_routes(&self.config.id, &m.id, &routes);
        }
        let wanted = self.config.backends.clone();
        let leaving: Vec<Arc<str>> = self
            .members
            .iter()
            .filter(|m| !m.removing && !wanted.iter().any(|b| *b.id == *m.id))
            .map(|m| m.id.clone())
            .collect();
        for id in leaving {
            let _ = self.remove_backend(&id, ctx);
        }
        for backend in wanted {
            let Some(at) = self.members.iter().position(|m| *m.id == *backend.id) else {
                let _ = self.add_backend(backend, &routes, ctx);
                continue;
            };
            let before = old.backends.iter().find(|b| b.id == backend.id);
            let moved = before.is_none_or(|b| b.address != backend.address);
            let member = &mut self.members[at];
            if member.removing {
                // Back in the file while still draining out: keep it, and stop its drain
                // (the spread and the deadline sweep would close its new sessions).
                member.removing = false;
                if let Some(drain) = member.drain.take() {
                    for task in drain.tasks {
                        ctx.cancel_future(task);
                    }
                }
                member.joined_at = Some(Instant::now());
            }
            member.weight = backend.weight;
            member.stats.set_max_sessions(backend.max_sessions);
            if moved {
                member.addr = backend.address.resolved;
            }
            if moved || tls_changed {
                let tls = self.backend_tls(&backend);
                self.members[at].tls = tls;
            }
            if moved || checks_changed || tls_changed {
                // Its checks (or the address they watch) changed: a fresh actor.
                self.retire_child(&backend.id);
                self.start_child(backend, ctx);
            }
        }
        self.publish();
    }

    fn drain(&mut self, msg: DrainBackend, ctx: &mut Context<Self>) -> Result<(), PoolError> {
        let pool = self.config.id.clone();
        let Some(at) = self.members.iter().position(|m| *m.id == *msg.backend) else {
            return Err(PoolError::NoBackend {
                pool,
                backend: msg.backend,
            });
        };
        if self.members[at].drain.is_some() {
            return Ok(());
        }
        let now = Instant::now();
        let id = self.members[at].id.clone();
        let sessions = self.handle.sessions.on(&id);
        tracing::info!(pool = %pool, backend = %id, sessions = sessions.len(), deadline = ?msg.deadline, spread = ?msg.spread, "draining backend");
        metrics::counter!("switchyard_backend_admin_transitions_total", "pool" => pool.clone(), "backend" => id.to_string(), "to" => "draining").increment(1);
        let deadline = now + msg.deadline;
        let spread_for = msg.spread.min(msg.deadline);
        let (live_pool, live_id) = (self.handle.clone(), id.clone());
        let asked: std::collections::HashSet<u64> = sessions.iter().map(|(n, _)| *n).collect();
        let spread_task = handoff::move_sessions(
            sessions,
            spread_for,
            MoveTo::Elsewhere,
            "drain",
            move |number| live_pool.sessions.holds(&live_id, number),
        );
        let spread_id = id.clone();
        let spread = ctx.spawn(spread_task.into_actor(self).map(move |_, act, ctx| {
            if let Some(m) = act.members.iter_mut().find(|m| m.id == spread_id)
                && let Some(drain) = &mut m.drain
            {
                drain.spread_done = true;
            }
            // A session whose backend was chosen just before the drain began can register a
            // moment after the list above was taken: moved too, shortly after, instead of at
            // the deadline.
            ctx.run_later(LATE_JOINERS_AFTER, move |act, _| {
                let draining = act
                    .members
                    .iter()
                    .any(|m| m.id == spread_id && m.drain.is_some());
                if !draining {
                    return;
                }
                let late: Vec<_> = act
                    .handle
                    .sessions
                    .on(&spread_id)
                    .into_iter()
                    .filter(|(number, _)| !asked.contains(number))
                    .collect();
                handoff::move_all_now(late, DEFAULT_RECONNECT_SPREAD, "drain");
            });
        }));
        let sweep_pool = self.handle.clone();
        let sweep_id = id.clone();
        let sweep = ctx.run_later(msg.deadline, move |_, _| {
            let left = sweep_pool.sessions.on(&sweep_id);
            if !left.is_empty() {
                tracing::info!(backend = %sweep_id, sessions = left.len(), "drain deadline: closing the sessions left");
            }
            // Closed at once: their reconnects are spread over the drain's own spread.
            let window = match spread_for.is_zero() {
                true => DEFAULT_RECONNECT_SPREAD,
                false => spread_for,
            };
            handoff::move_all_now(left, window, "deadline");
        });
        self.members[at].drain = Some(DrainState {
            started: now,
            deadline,
            spread_done: false,
            drained: false,
            tasks: vec![spread, sweep],
        });
        self.publish();
        Ok(())
    }

    fn undrain(&mut self, msg: UndrainBackend, ctx: &mut Context<Self>) -> Result<(), PoolError> {
        let pool = self.config.id.clone();
        let Some(member) = self.members.iter_mut().find(|m| *m.id == *msg.backend) else {
            return Err(PoolError::NoBackend {
                pool,
                backend: msg.backend,
            });
        };
        if member.removing {
            return Err(PoolError::Removing {
                pool,
                backend: msg.backend,
            });
        }
        let Some(drain) = member.drain.take() else {
            return Ok(());
        };
        for task in drain.tasks {
            ctx.cancel_future(task);
        }
        member.joined_at = Some(Instant::now());
        tracing::info!(pool = %pool, backend = %member.id, "backend undrained: takes work again");
        metrics::counter!("switchyard_backend_admin_transitions_total", "pool" => pool, "backend" => member.id.to_string(), "to" => "active").increment(1);
        self.publish();
        Ok(())
    }

    fn set_weight(&mut self, msg: SetWeight) -> Result<(), PoolError> {
        let pool = self.config.id.clone();
        let Some(member) = self.members.iter_mut().find(|m| *m.id == *msg.backend) else {
            return Err(PoolError::NoBackend {
                pool,
                backend: msg.backend,
            });
        };
        if member.weight != msg.weight {
            tracing::info!(pool = %pool, backend = %member.id, from = member.weight, to = msg.weight, "backend weight changed");
            member.weight = msg.weight;
            self.publish();
        }
        Ok(())
    }

    /// Ejects backends whose failure streak reached the threshold; returns those whose
    /// ejection ended and whose latest check passed. Publishes once if anything changed.
    fn review_outliers(&mut self) {
        let config = self.config.outlier;
        let now = Instant::now();
        let total = self.members.len();
        let mut changed = false;
        for i in 0..total {
            let ejected = self
                .members
                .iter()
                .filter(|m| m.ejected_until.is_some())
                .count();
            let m = &mut self.members[i];
            match m.ejected_until {
                Some(until) if now >= until && m.health == BackendState::Up => {
                    m.ejected_until = None;
                    m.back_since = Some(now);
                    m.joined_at = Some(now);
                    m.stats.reset_failures();
                    tracing::info!(pool = %self.config.id, backend = %m.id, "ejection over and its check passes: back in rotation");
                    changed = true;
                }
                Some(_) => {}
                None => {
                    // A backend that stayed in for a whole max ejection is forgiven.
                    if m.back_since
                        .is_some_and(|t| now.duration_since(t) >= config.max_ejection)
                    {
                        m.times_ejected = 0;
                        m.back_since = None;
                    }
                    let streak = m.stats.consecutive_failures();
                    if config.consecutive_failures > 0
                        && streak >= config.consecutive_failures
                        && m.health != BackendState::Down
                        && outlier::may_eject(&config, ejected, total)
                    {
                        m.times_ejected += 1;
                        let time = outlier::ejection_time(&config, m.times_ejected);
                        m.ejected_until = Some(now + time);
                        m.stats.reset_failures();
                        metrics::counter!("switchyard_ejections_total", "pool" => self.config.id.clone(), "backend" => m.id.to_string()).increment(1);
                        tracing::warn!(pool = %self.config.id, backend = %m.id, failures = streak, ejection = ?time, "ejecting outlier");
                        changed = true;
                    }
                }
            }
        }
        // While someone ramps up, step the weights about twice a second.
        let ramp_step_due = self
            .ramp_published
            .is_some_and(|t| now.duration_since(t) >= RAMP_STEP);
        if changed || ramp_step_due {
            self.publish();
        }
    }
}

/// How often a pool copies its backends' live counters into their gauges.
pub const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

impl Actor for PoolActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.publish_states(None);
        ctx.run_interval(GAUGE_INTERVAL, |act, _| {
            for m in &act.members {
                m.stats.publish_gauges();
            }
        });
        ctx.run_interval(OUTLIER_POLL, |act, ctx| {
            guarded(ctx, "pool", || act.review_outliers());
            act.review_drains(ctx);
        });
        if !self.children.is_empty() || self.retiring {
            // A restart: the children live on under their own supervisors (or, for a pool
            // that is leaving, were retired and must not come back).
            return;
        }
        for backend in self.config.backends.clone() {
            self.start_child(backend, ctx);
        }
    }
}

impl Supervised for PoolActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.restarts += 1;
        tracing::warn!(pool = %self.config.id, restarts = self.restarts, "pool actor restarting");
        // Republish from what the actor holds, so the snapshot matches its state again.
        self.publish();
    }
}

impl Handler<BackendChanged> for PoolActor {
    type Result = ();

    fn handle(&mut self, change: BackendChanged, ctx: &mut Context<Self>) {
        guarded(ctx, "pool", || self.apply(change));
    }
}

impl Handler<Reconfigure> for PoolActor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Context<Self>) {
        self.reconfigure(msg, ctx);
    }
}

impl Handler<AddBackend> for PoolActor {
    type Result = Result<(), PoolError>;

    fn handle(&mut self, msg: AddBackend, ctx: &mut Context<Self>) -> Self::Result {
        self.add_backend(msg.backend, &msg.routes, ctx)
    }
}

impl Handler<RemoveBackend> for PoolActor {
    type Result = Result<(), PoolError>;

    fn handle(&mut self, msg: RemoveBackend, ctx: &mut Context<Self>) -> Self::Result {
        self.remove_backend(&msg.backend, ctx)
    }
}

impl Handler<RetirePool> for PoolActor {
    type Result = ();

    fn handle(&mut self, _: RetirePool, ctx: &mut Context<Self>) {
        self.retiring = true;
        let ids: Vec<Arc<str>> = self.members.iter().map(|m| m.id.clone()).collect();
        for id in ids {
            let _ = self.remove_backend(&id, ctx);
        }
    }
}

impl Handler<DrainBackend> for PoolActor {
    type Result = Result<(), PoolError>;

    fn handle(&mut self, msg: DrainBackend, ctx: &mut Context<Self>) -> Self::Result {
        self.drain(msg, ctx)
    }
}

impl Handler<UndrainBackend> for PoolActor {
    type Result = Result<(), PoolError>;

    fn handle(&mut self, msg: UndrainBackend, ctx: &mut Context<Self>) -> Self::Result {
        self.undrain(msg, ctx)
    }
}

impl Handler<SetWeight> for PoolActor {
    type Result = Result<(), PoolError>;

    fn handle(&mut self, msg: SetWeight, _: &mut Context<Self>) -> Self::Result {
        self.set_weight(msg)
    }
}

impl Handler<GetBackendActors> for PoolActor {
    type Result = MessageResult<GetBackendActors>;

    fn handle(&mut self, _: GetBackendActors, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.children.iter().map(|(_, a)| a.clone()).collect())
    }
}

impl Handler<InjectPanic> for PoolActor {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) {
        guarded(ctx, "pool", || panic!("injected panic"));
    }
}

impl Handler<GetRestarts> for PoolActor {
    type Result = u32;

    fn handle(&mut self, _: GetRestarts, _: &mut Context<Self>) -> u32 {
        self.restarts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::routing::RouteTable;

    const CONFIG: &str = r#"
        [[pools]]
        id = "api"
        algorithm = "round_robin"
        health = { kind = "none" }
        outlier = { consecutive_failures = 5, base_ejection = "10s" }
        backends = [
            { id = "api-1", address = "127.0.0.1:1001" },
            { id = "api-2", address = "127.0.0.1:1002" },
        ]
    "#;

    fn pool() -> (PoolConfig, Arc<PoolHandle>) {
        let config = Config::from_toml_str(CONFIG).unwrap();
        let table = RouteTable::build(&config);
        (config.pools[0].clone(), table.pools[0].clone())
    }

    #[actix_rt::test]
    async fn a_state_change_publishes_a_new_snapshot_and_keeps_counters() {
        let (config, handle) = pool();
        let first = handle.load_full();
        assert_eq!(first.eligible.len(), 2);
        assert_eq!(
            first.backends[0].state,
            BackendState::Up,
            "health kind none: up at once"
        );
        let _held = first.backends[1].stats.start_request();

        let actor = PoolActor::new(config, handle.clone()).start();
        actor
            .send(BackendChanged {
                id: "api-1".into(),
                addr: "127.0.0.1:1001".parse().unwrap(),
                state: BackendState::Down,
                load: None,
            })
            .await
            .unwrap();

        let next = handle.load_full();
        assert_eq!(next.version, first.version + 1);
        let eligible: Vec<_> = next.eligible.iter().map(|b| b.id.to_string()).collect();
        assert_eq!(eligible, vec!["api-2"]);
        // The snapshot a request loaded earlier is untouched.
        assert_eq!(first.eligible.len(), 2);
        // Live counters carry over to the new snapshot.
        assert_eq!(next.backends[1].stats.inflight(), 1);
    }

    #[actix_rt::test]
    async fn an_address_change_is_published_and_a_no_op_is_not() {
        let (config, handle) = pool();
        let actor = PoolActor::new(config, handle.clone()).start();
        let version = handle.load().version;
        let same = BackendChanged {
            id: "api-2".into(),
            addr: "127.0.0.1:1002".parse().unwrap(),
            state: BackendState::Up,
            load: None,
        };
        actor.send(same.clone()).await.unwrap();
        assert_eq!(
            handle.load().version,
            version,
            "nothing changed, nothing published"
        );
        let moved = BackendChanged {
            addr: "127.0.0.1:2002".parse().unwrap(),
            ..same
        };
        actor.send(moved).await.unwrap();
        let snap = handle.load_full();
        assert_eq!(snap.version, version + 1);
        assert_eq!(snap.backends[1].addr.port(), 2002);
        assert_eq!(snap.backends[1].authority.as_str(), "127.0.0.1:2002");
    }

    /// Waits (bounded) until the pool's snapshot satisfies `check`.
    async fn until(
        handle: &PoolHandle,
        what: &str,
        check: impl Fn(&crate::routing::PoolSnapshot) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !check(&handle.load_full()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[actix_rt::test]
    async fn a_failing_backend_is_ejected_and_the_rest_keep_serving() {
        let (config, handle) = pool();
        let _actor = PoolActor::new(config, handle.clone()).start();
        let api1 = handle.load_full().backends[0].stats.clone();
        for _ in 0..5 {
            api1.record_outcome(false);
        }
        until(&handle, "api-1 ejected", |s| {
            s.backends[0].state == BackendState::Ejected
        })
        .await;
        let snap = handle.load_full();
        let eligible: Vec<_> = snap.eligible.iter().map(|b| b.id.to_string()).collect();
        assert_eq!(eligible, vec!["api-2"]);
        assert_eq!(
            api1.consecutive_failures(),
            0,
            "the streak restarts after an ejection"
        );
    }

    #[actix_rt::test]
    async fn no_more_than_max_ejection_percent_is_ejected() {
        let (config, handle) = pool();
        let _actor = PoolActor::new(config, handle.clone()).start();
        for b in &handle.load_full().backends {
            for _ in 0..5 {
                b.stats.record_outcome(false);
            }
        }
        until(&handle, "one ejection", |s| {
            s.backends.iter().any(|b| b.state == BackendState::Ejected)
        })
        .await;
        // Give the actor several more polls: the second must stay in (50% of 2 is 1).
        actix_rt::time::sleep(OUTLIER_POLL * 5).await;
        let snap = handle.load_full();
        let ejected = snap
            .backends
            .iter()
            .filter(|b| b.state == BackendState::Ejected)
            .count();
        assert_eq!(ejected, 1);
        assert_eq!(snap.eligible.len(), 1);
    }

    #[actix_rt::test]
    async fn a_panicking_pool_actor_is_restarted_and_keeps_serving() {
        let (config, handle) = pool();
        let actor = Supervisor::start(move |_| PoolActor::new(config, handle));
        actor.send(InjectPanic).await.unwrap();
        assert_eq!(actor.send(GetRestarts).await.unwrap(), 1);
        // The restarted actor still owns its children.
        assert_eq!(actor.send(GetBackendActors).await.unwrap().len(), 2);
    }

    #[actix_rt::test]
    async fn a_panicking_backend_actor_is_restarted() {
        let (config, handle) = pool();
        let actor = PoolActor::new(config, handle).start();
        let children = actor.send(GetBackendActors).await.unwrap();
        children[0].send(InjectPanic).await.unwrap();
        assert_eq!(children[0].send(GetRestarts).await.unwrap(), 1);
        assert_eq!(children[1].send(GetRestarts).await.unwrap(), 0);
    }
}
