//! Flap damping: a backend that keeps coming back and failing again is held down on its next
//! comeback, for a penalty that doubles with every flap inside the window and is forgotten
//! once the window passes without flaps (route-flap damping, as BGP and Envoy's outlier
//! detection do it). Times are [`crate::clock`]'s, so tests move them instead of sleeping.

use std::collections::VecDeque;
use std::time::Duration;

use crate::clock::Instant;
use crate::config::FlapConfig;

#[derive(Debug, Default)]
pub struct FlapDamper {
    comebacks: VecDeque<Instant>,
    held_until: Option<Instant>,
}

/// What to do with a backend whose checks say it may come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comeback {
    Allowed,
    /// Held down until then.
    Held(Instant),
}

impl FlapDamper {
    /// Asks whether a backend that just passed `rise` checks may come back now.
    pub fn comeback(&mut self, config: &FlapConfig, now: Instant) -> Comeback {
        if config.threshold == 0 {
            return Comeback::Allowed;
        }
        if let Some(until) = self.held_until {
            if now < until {
                return Comeback::Held(until);
            }
            self.held_until = None;
            self.comebacks.push_back(now);
            return Comeback::Allowed;
        }
        while self
            .comebacks
            .front()
            .is_some_and(|t| now.duration_since(*t) > config.window)
        {
            self.comebacks.pop_front();
        }
        let flaps = self.comebacks.len() as u32;
        if flaps >= config.threshold {
            let doublings = (flaps - config.threshold).min(16);
            let hold = config
                .penalty
                .saturating_mul(1 << doublings)
                .min(config.max_penalty);
            let until = now + hold;
            self.held_until = Some(until);
            return Comeback::Held(until);
        }
        self.comebacks.push_back(now);
        Comeback::Allowed
    }

    /// Time left on the current hold.
    pub fn penalty_left(&self, now: Instant) -> Duration {
        self.held_until
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> FlapConfig {
        FlapConfig {
            threshold: 3,
            window: Duration::from_secs(60),
            penalty: Duration::from_secs(10),
            max_penalty: Duration::from_secs(25),
        }
    }

    #[test]
    fn the_fourth_comeback_in_a_window_is_held_and_holds_grow() {
        let c = config();
        let mut d = FlapDamper::default();
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(
                d.comeback(&c, t0 + Duration::from_secs(i)),
                Comeback::Allowed
            );
        }
        let t = t0 + Duration::from_secs(5);
        assert_eq!(
            d.comeback(&c, t),
            Comeback::Held(t + Duration::from_secs(10))
        );
        assert_eq!(d.penalty_left(t), Duration::from_secs(10));
        // Still held before the hold ends, allowed after it.
        assert!(matches!(
            d.comeback(&c, t + Duration::from_secs(9)),
            Comeback::Held(_)
        ));
        assert_eq!(
            d.comeback(&c, t + Duration::from_secs(10)),
            Comeback::Allowed
        );
        // The next one doubles, capped at 25 s.
        let t2 = t + Duration::from_secs(11);
        assert_eq!(
            d.comeback(&c, t2),
            Comeback::Held(t2 + Duration::from_secs(20))
        );
        let t3 = t2 + Duration::from_secs(21);
        assert_eq!(d.comeback(&c, t3), Comeback::Allowed);
        let t4 = t3 + Duration::from_secs(1);
        assert_eq!(
            d.comeback(&c, t4),
            Comeback::Held(t4 + Duration::from_secs(25))
        );
    }

    #[test]
    fn flaps_are_forgotten_after_a_quiet_window() {
        let c = config();
        let mut d = FlapDamper::default();
        let t0 = Instant::now();
        for i in 0..3 {
            d.comeback(&c, t0 + Duration::from_secs(i));
        }
        assert_eq!(
            d.comeback(&c, t0 + Duration::from_secs(120)),
            Comeback::Allowed
        );
    }

    #[test]
    fn a_threshold_of_zero_disables_damping() {
        let c = FlapConfig {
            threshold: 0,
            ..config()
        };
        let mut d = FlapDamper::default();
        let t0 = Instant::now();
        for i in 0..10 {
            assert_eq!(
                d.comeback(&c, t0 + Duration::from_secs(i)),
                Comeback::Allowed
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flapping_backend_is_held_for_its_penalty_then_released() {
        let c = FlapConfig {
            threshold: 2,
            penalty: Duration::from_millis(1500),
            ..config()
        };
        let mut d = FlapDamper::default();
        for _ in 0..2 {
            assert_eq!(d.comeback(&c, Instant::now()), Comeback::Allowed);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        let held_at = Instant::now();
        assert_eq!(
            d.comeback(&c, held_at),
            Comeback::Held(held_at + Duration::from_millis(1500))
        );
        tokio::time::advance(Duration::from_millis(1499)).await;
        assert!(matches!(d.comeback(&c, Instant::now()), Comeback::Held(_)));
        assert_eq!(d.penalty_left(Instant::now()), Duration::from_millis(1));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(d.comeback(&c, Instant::now()), Comeback::Allowed);
        assert_eq!(d.penalty_left(Instant::now()), Duration::ZERO);
    }
}
