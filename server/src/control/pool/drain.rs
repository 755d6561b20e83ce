//! An operator's drain: the backend leaves the candidates at once, its sessions are asked to
//! move spread over the drain's window, whatever is left at the deadline is moved at once, and
//! it shows `drained` once nothing is left. `undrain` cancels both and eases it back in.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Instant;

use actix::prelude::*;

use super::actor::PoolActor;
use super::error::PoolError;
use super::member::DrainState;
use super::messages::{DrainBackend, UndrainBackend};
use crate::routing::MoveTo;
use crate::routing::handoff::{self, DEFAULT_RECONNECT_SPREAD, Pace};

/// After a drain's spread, when sessions that registered just after it began are moved too.
pub const LATE_JOINERS_AFTER: Duration = Duration::from_secs(1);

impl PoolActor {
    /// A draining backend whose sessions were all asked to move, and that holds no session and
    /// no request any more (or whose deadline passed with nothing left), shows `drained`.
    pub(super) fn review_drains(&mut self, ctx: &mut Context<Self>) {
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

    pub(super) fn drain(
        &mut self,
        msg: DrainBackend,
        ctx: &mut Context<Self>,
    ) -> Result<(), PoolError> {
        let at = self.member_at(&msg.backend)?;
        let pool = self.config.id.clone();
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
            Pace::spread(spread_for),
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
            ctx.run_later(LATE_JOINERS_AFTER, move |act, ctx| {
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
                let at_once = Pace::AtOnce {
                    reconnects_over: DEFAULT_RECONNECT_SPREAD,
                };
                let moving =
                    handoff::move_sessions(late, at_once, MoveTo::Elsewhere, "drain", |_| true);
                ctx.spawn(moving.into_actor(act));
            });
        }));
        let sweep_pool = self.handle.clone();
        let sweep_id = id.clone();
        let sweep = ctx.run_later(msg.deadline, move |act, ctx| {
            let left = sweep_pool.sessions.on(&sweep_id);
            if !left.is_empty() {
                tracing::info!(backend = %sweep_id, sessions = left.len(), "drain deadline: closing the sessions left");
            }
            // Closed at once: their reconnects are spread over the drain's own spread.
            let at_once = Pace::AtOnce {
                reconnects_over: match spread_for.is_zero() {
                    true => DEFAULT_RECONNECT_SPREAD,
                    false => spread_for,
                },
            };
            let moving =
                handoff::move_sessions(left, at_once, MoveTo::Elsewhere, "deadline", |_| true);
            ctx.spawn(moving.into_actor(act));
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

    pub(super) fn undrain(
        &mut self,
        msg: UndrainBackend,
        ctx: &mut Context<Self>,
    ) -> Result<(), PoolError> {
        let at = self.member_at(&msg.backend)?;
        let pool = self.config.id.clone();
        let member = &mut self.members[at];
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
        metrics::counter!("switchyard_backend_admin_transitions_total", "pool" => pool, "backend" => member.id.to_string(), "to" => "up").increment(1);
        self.publish();
        Ok(())
    }
}
