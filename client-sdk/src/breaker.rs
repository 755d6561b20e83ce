//! A circuit breaker per region: after `failures` consecutive failures it opens and the region
//! is skipped; after a jittered cool-off it half-opens and lets one request through — its
//! success closes the breaker, its failure opens it again. Each change of state is counted
//! in `switchyard_client_breaker_transitions_total{region, to}`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Breaker settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that open it. Default 5.
    pub failures: u32,
    /// Cool-off before a trial request, ±20% jitter. Default 5 s.
    #[serde(with = "crate::config::duration")]
    pub cool_off: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            cool_off: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial request is out; if nothing settles it by `until`, another may go.
    HalfOpen {
        until: Instant,
    },
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }
}

#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
    /// The region's name, for the transition metric.
    region: String,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Breaker {
        Breaker::for_region(config, "")
    }

    /// A breaker whose transitions are counted under `region`.
    pub fn for_region(config: BreakerConfig, region: &str) -> Breaker {
        Breaker {
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
            region: region.to_string(),
        }
    }

    /// Sets the state, counting a change of kind (closed, open, half-open).
    fn set(&self, state: &mut State, next: State) {
        if std::mem::discriminant(state) != std::mem::discriminant(&next) {
            crate::telemetry::breaker_transition(&self.region, next.name());
        }
        *state = next;
    }

    /// Whether a request may go to this region now (an open breaker past its cool-off lets
    /// exactly one trial through).
    pub fn allows(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match *state {
            State::Closed { .. } => true,
            State::Open { until } | State::HalfOpen { until } if Instant::now() >= until => {
                // A trial whose outcome never came back (cancelled, or settled nowhere)
                // must not keep the region closed for ever: another trial after a cool-off.
                let next = State::HalfOpen {
                    until: Instant::now() + self.config.cool_off,
                };
                self.set(&mut state, next);
                true
            }
            State::Open { .. } | State::HalfOpen { .. } => false,
        }
    }

    pub fn success(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.set(&mut state, State::Closed { failures: 0 });
    }

    pub fn failure(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let open = || State::Open {
            until: Instant::now() + self.config.cool_off.mul_f64(0.8 + 0.4 * fastrand::f64()),
        };
        let next = match *state {
            State::Closed { failures } if failures + 1 >= self.config.failures => open(),
            State::Closed { failures } => State::Closed {
                failures: failures + 1,
            },
            State::HalfOpen { .. } | State::Open { .. } => open(),
        };
        self.set(&mut state, next);
    }

    pub fn is_open(&self) -> bool {
        !matches!(
            *self.state.lock().unwrap_or_else(|e| e.into_inner()),
            State::Closed { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn it_opens_after_the_failures_and_half_opens_after_the_cool_off() {
        let b = Breaker::new(BreakerConfig {
            failures: 3,
            cool_off: Duration::from_secs(10),
        });
        for _ in 0..2 {
            b.failure();
            assert!(b.allows(), "still closed");
        }
        b.failure();
        assert!(!b.allows(), "open after 3 failures");
        tokio::time::advance(Duration::from_secs(7)).await;
        assert!(!b.allows(), "cool-off is at least 8 s (10 s less 20%)");
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(b.allows(), "one trial after the cool-off");
        assert!(!b.allows(), "only one");
        b.failure();
        assert!(!b.allows(), "a failed trial opens it again");
        tokio::time::advance(Duration::from_secs(13)).await;
        assert!(b.allows());
        b.success();
        assert!(b.allows() && b.allows(), "a good trial closes it");
        // A trial nobody settles does not keep the breaker shut for ever.
        for _ in 0..3 {
            b.failure();
        }
        tokio::time::advance(Duration::from_secs(13)).await;
        assert!(b.allows(), "a trial");
        assert!(!b.allows());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(b.allows(), "another trial once the first one's time is up");
    }
}
