//! The pool's gauges: each backend's state (`switchyard_backend_state`) and, once a second,
//! its live counters.

use super::actor::PoolActor;
use crate::routing::BackendState;

impl PoolActor {
    /// `switchyard_backend_state{pool,backend,state}`: 1 for each backend's current state
    /// (`up`, `down`, `unknown`, `ejected`, `overloaded`, `draining`, `drained`, or
    /// `slow_start` while it ramps), 0 for the others.
    pub(super) fn publish_states(&self, ramp: Option<&[u32]>) {
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

    /// Copies every backend's in-flight and session counts into their gauges, and takes the
    /// reading its recent figures (admin API) are computed from.
    pub(super) fn publish_counters(&self) {
        let now = std::time::Instant::now();
        for m in &self.members {
            m.stats.publish_gauges();
            m.stats.take_reading(now);
        }
    }
}
