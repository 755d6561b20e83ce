//! A reload's diff for one pool: new settings for the handle and every member, backends
//! added, removed (drained first) or changed (a fresh actor when their address, checks or TLS
//! changed).

use crate::clock::Instant;
use std::sync::Arc;

use actix::prelude::*;

use super::actor::PoolActor;
use super::messages::Reconfigure;

impl PoolActor {
    /// A reload: new settings, backends added, removed (drained first) or changed.
    pub(super) fn reconfigure(&mut self, msg: Reconfigure, ctx: &mut Context<Self>) {
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
}
