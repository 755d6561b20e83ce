//! Publishing: the pool's members become a new immutable `PoolSnapshot` (with its balancer
//! rebuilt) stored in the pool's handle, which the request path loads without waiting.

use crate::clock::Instant;
use std::sync::Arc;

use super::actor::PoolActor;
use crate::routing::{BackendEntry, Health};

impl PoolActor {
    pub(super) fn publish(&mut self) {
        let previous = self.handle.load();
        let version = previous.version + 1;
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
                        .with_protocol(self.config.protocol)
                        .with_health(Health {
                            checks: m.health,
                            held_down: m.held_down,
                            // Ramping: below the share its load report allows.
                            slow_start: m.joined_at.is_some()
                                && ramp
                                    .as_ref()
                                    .is_some_and(|w| w[i] / m.weight.max(1) < m.load_percent),
                            configured_weight: m.weight,
                            weight_percent: ramp
                                .as_ref()
                                .map_or(100, |w| (w[i] / m.weight.max(1)).min(100)),
                            drain_deadline: m
                                .drain
                                .as_ref()
                                .filter(|d| !d.drained)
                                .map(|d| d.deadline),
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
        // Logged once the first health verdicts are in: at start every backend is unknown
        // for a moment, and a warning that clears in the same millisecond only alarms.
        let judged = self
            .members
            .iter()
            .all(|m| m.health != crate::routing::BackendState::Unknown);
        if panic && judged && !self.panic_told {
            tracing::warn!(pool = %self.config.id, eligible, "too few healthy backends: routing across all of them (panic mode)");
            self.panic_told = true;
        } else if !panic && self.panic_told {
            tracing::info!(pool = %self.config.id, "enough healthy backends again: panic mode over");
            self.panic_told = false;
        }
        tracing::debug!(pool = %self.config.id, version, "published pool snapshot");
    }
}
