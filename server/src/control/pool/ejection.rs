//! Passive outlier ejection: ten times a second the pool reads each backend's failure streak
//! (an atomic the request path keeps), ejects those over the threshold within
//! `max_ejection_percent`, and lets them back once their time is up and their checks pass.

use crate::clock::Instant;

use super::actor::PoolActor;
use super::slow_start::RAMP_STEP;
use crate::health::outlier;
use crate::routing::BackendState;

impl PoolActor {
    /// Ejects backends whose failure streak reached the threshold; returns those whose
    /// ejection ended and whose latest check passed. Publishes once if anything changed.
    pub(super) fn review_outliers(&mut self) {
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
