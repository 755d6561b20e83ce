//! Slow start and load reports: a backend back from failed checks, an ejection or a drain
//! starts at 10% of its weight and ramps up over `slow_start`; a load report scales a busy
//! backend down. The effective weights are in hundredths of the configured ones.

use std::time::Duration;

use crate::clock::Instant;

use super::actor::PoolActor;
use super::member::Member;

/// How often slow-start weights step up while a backend ramps.
pub const RAMP_STEP: Duration = Duration::from_millis(500);

impl PoolActor {
    /// Effective weights, in hundredths of the configured ones, when anyone's differs: slow
    /// start ramps a backend that (re)joined less than `slow_start` ago from 10% to 100%, and a
    /// load report scales a busy backend down. `None` when nobody is reweighted, or when the
    /// pool hashes (a weight change would move keys).
    pub(super) fn effective_weights(&self, now: Instant) -> Option<Vec<u32>> {
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
    pub(super) fn ramping(&self, now: Instant) -> bool {
        let window = self.config.slow_start;
        !window.is_zero()
            && self
                .members
                .iter()
                .any(|m| m.joined_at.is_some_and(|t| now.duration_since(t) < window))
    }
}
