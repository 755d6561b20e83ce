//! When a session reconnects: the delay rules as one pure function, [`reconnect_delay`], so
//! that a simulator (or a test) can reuse exactly what the SDK does. Nothing here sleeps,
//! reads a clock or draws a random number: the caller passes `random` in `[0, 1]`.
//!
//! The rules, in order:
//! 1. The server said how long (`retry_after_ms` in a `moved` close reason, or `Retry-After` on
//!    a refused handshake): that, capped at [`PacingConfig::retry_after_cap`]. From the second
//!    attempt in a row on, never less than rule 3's delay, so a server saying "0" cannot make
//!    a tight loop.
//! 2. First attempt after `4001`/`4003`: full jitter over `moved_jitter` (default 1 s), so the
//!    sessions a router moves at once do not come back at once. After `4002`: full jitter over
//!    `backend_lost_jitter` (default 500 ms).
//! 3. Everything else — `1013`, a dead path (broken connection, no pong, a write that timed
//!    out), a backend's own close, a failed reconnect attempt, a `4003` with no other region to
//!    go to, and any cause from the second attempt in a row on: full-jitter exponential backoff,
//!    `random · min(cap, base · 2^(attempt−1))` (default base 1 s, cap 30 s).

use std::sync::Arc;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::close::codes;

/// Default full-jitter window after `4001`/`4003`: 1 s.
pub const MOVED_JITTER_DEFAULT: Duration = Duration::from_secs(1);
/// Default full-jitter window after `4002`: 500 ms.
pub const BACKEND_LOST_JITTER_DEFAULT: Duration = Duration::from_millis(500);
/// Default reconnect backoff: from 1 s, capped at 30 s.
pub const RECONNECT_BACKOFF_DEFAULT: Backoff = Backoff {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(30),
};
/// The SDK's default `retry_after_cap` (the longest server-given wait obeyed): 10 s.
pub const RETRY_AFTER_CAP_DEFAULT: Duration = Duration::from_secs(10);
/// Default give-up window: a session that cannot reconnect within 5 min ends (`Closed`).
pub const RECONNECT_GIVE_UP_DEFAULT: Duration = Duration::from_secs(300);

/// Why the session is about to reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The connection was closed with `code`; `retry_after` is the reason's `retry_after_ms`.
    Close {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// A `4003` when no other region can take the session: back to the evacuating one, with
    /// backoff.
    EvacuatingNowhereElse { retry_after: Option<Duration> },
    /// No close frame: the connection broke, a ping went unanswered or a write timed out.
    Dead,
    /// The previous reconnect attempt failed (connect error, handshake refused);
    /// `retry_after` is the refusal's `Retry-After`.
    AttemptFailed { retry_after: Option<Duration> },
}

/// The settings [`reconnect_delay`] reads (taken from [`crate::ClientConfig`] by the SDK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacingConfig {
    pub moved_jitter: Duration,
    pub backend_lost_jitter: Duration,
    pub backoff: Backoff,
    /// Longest server-given wait obeyed.
    pub retry_after_cap: Duration,
}

impl Default for PacingConfig {
    /// The SDK's defaults (those of a default `ClientConfig`).
    fn default() -> Self {
        PacingConfig {
            moved_jitter: MOVED_JITTER_DEFAULT,
            backend_lost_jitter: BACKEND_LOST_JITTER_DEFAULT,
            backoff: RECONNECT_BACKOFF_DEFAULT,
            retry_after_cap: RETRY_AFTER_CAP_DEFAULT.max(RECONNECT_BACKOFF_DEFAULT.cap),
        }
    }
}

/// The wait before reconnect attempt `attempt` (1 for the first attempt after a connection
/// that lived; higher for attempts in a row that failed or whose connection ended at once).
/// `random` is a uniform draw in `[0, 1]` (clamped; NaN counts as 0).
///
/// ```
/// use std::time::Duration;
/// use switchyard_client::pacing::{reconnect_delay, Cause, PacingConfig};
/// let config = PacingConfig::default();
/// let drained = Cause::Close { code: 4001, retry_after: None };
/// assert_eq!(reconnect_delay(&drained, 1, &config, 0.5), Duration::from_millis(500));
/// let told = Cause::Close { code: 4001, retry_after: Some(Duration::from_millis(350)) };
/// assert_eq!(reconnect_delay(&told, 1, &config, 0.9), Duration::from_millis(350));
/// assert_eq!(reconnect_delay(&Cause::Dead, 3, &config, 1.0), Duration::from_secs(4));
/// ```
pub fn reconnect_delay(
    cause: &Cause,
    attempt: u32,
    config: &PacingConfig,
    random: f64,
) -> Duration {
    let random = if random.is_nan() {
        0.0
    } else {
        random.clamp(0.0, 1.0)
    };
    let attempt = attempt.max(1);
    let backoff = config.backoff.ceiling(attempt - 1).mul_f64(random);
    let said = match cause {
        Cause::Close { retry_after, .. }
        | Cause::EvacuatingNowhereElse { retry_after }
        | Cause::AttemptFailed { retry_after } => *retry_after,
        Cause::Dead => None,
    };
    if let Some(said) = said {
        let said = said.min(config.retry_after_cap);
        return match attempt {
            1 => said,
            _ => said.max(backoff),
        };
    }
    if attempt > 1 {
        return backoff;
    }
    match cause {
        Cause::Close {
            code: codes::MOVED | codes::REGION_MOVED,
            ..
        } => config.moved_jitter.mul_f64(random),
        Cause::Close {
            code: codes::BACKEND_LOST,
            ..
        } => config.backend_lost_jitter.mul_f64(random),
        _ => backoff,
    }
}

/// One reconnect attempt, as the [`ReconnectHook`] and the `Reconnecting` event see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectAttempt {
    /// 1-based, counting attempts in a row.
    pub attempt: u32,
    /// The wait before this attempt.
    pub delay: Duration,
    /// What ended the connection (and, from the second attempt, what failed last).
    pub reason: String,
    /// The close code that ended the connection; `None` for a dead path.
    pub code: Option<u16>,
}

/// A callback the SDK calls before each reconnect attempt (e.g. to log or count them). It
/// runs on the session's task: keep it short and non-blocking.
pub type ReconnectHook = Arc<dyn Fn(&ReconnectAttempt) + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn close(code: u16) -> Cause {
        Cause::Close {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let c = PacingConfig::default();
        assert_eq!(c.moved_jitter, ms(1000));
        assert_eq!(c.backend_lost_jitter, ms(500));
        assert_eq!(c.backoff.base, ms(1000));
        assert_eq!(c.backoff.cap, ms(30_000));
        assert_eq!(c.retry_after_cap, ms(30_000));
    }

    #[test]
    fn a_moved_session_waits_a_full_jitter_over_the_moved_window() {
        let c = PacingConfig::default();
        for code in [4001, 4003] {
            assert_eq!(reconnect_delay(&close(code), 1, &c, 0.0), Duration::ZERO);
            assert_eq!(reconnect_delay(&close(code), 1, &c, 0.25), ms(250));
            assert_eq!(reconnect_delay(&close(code), 1, &c, 1.0), ms(1000));
        }
        assert_eq!(reconnect_delay(&close(4002), 1, &c, 1.0), ms(500));
        assert_eq!(reconnect_delay(&close(4002), 1, &c, 0.5), ms(250));
        let wide = PacingConfig {
            moved_jitter: ms(4000),
            ..c
        };
        assert_eq!(reconnect_delay(&close(4001), 1, &wide, 0.5), ms(2000));
    }

    #[test]
    fn the_servers_retry_after_is_obeyed_capped_and_a_floor_from_the_second_attempt() {
        let c = PacingConfig::default();
        let told = |n| Cause::Close {
            code: 4001,
            retry_after: Some(ms(n)),
        };
        assert_eq!(reconnect_delay(&told(350), 1, &c, 0.0), ms(350));
        assert_eq!(reconnect_delay(&told(350), 1, &c, 1.0), ms(350));
        assert_eq!(reconnect_delay(&told(0), 1, &c, 1.0), Duration::ZERO);
        assert_eq!(reconnect_delay(&told(3_600_000), 1, &c, 0.0), ms(30_000));
        // Told "0" again and again: the backoff takes over.
        assert_eq!(reconnect_delay(&told(0), 3, &c, 1.0), ms(4000));
        assert_eq!(reconnect_delay(&told(9000), 3, &c, 1.0), ms(9000));
        let refused = Cause::AttemptFailed {
            retry_after: Some(ms(2000)),
        };
        assert_eq!(reconnect_delay(&refused, 1, &c, 0.0), ms(2000));
    }

    #[test]
    fn try_later_dead_paths_and_failed_attempts_back_off_exponentially_to_the_cap() {
        let c = PacingConfig::default();
        for cause in [
            close(1013),
            close(1011),
            Cause::Dead,
            Cause::AttemptFailed { retry_after: None },
            Cause::EvacuatingNowhereElse { retry_after: None },
        ] {
            let ceilings: Vec<u64> = (1..=7)
                .map(|n| reconnect_delay(&cause, n, &c, 1.0).as_millis() as u64)
                .collect();
            assert_eq!(
                ceilings,
                [1000, 2000, 4000, 8000, 16000, 30000, 30000],
                "{cause:?}"
            );
            assert_eq!(reconnect_delay(&cause, 1, &c, 0.5), ms(500), "{cause:?}");
            assert_eq!(reconnect_delay(&cause, u32::MAX, &c, 1.0), ms(30_000));
            assert_eq!(
                reconnect_delay(&cause, 0, &c, 1.0),
                ms(1000),
                "0 counts as 1"
            );
        }
        // Moved twice in a row at once: backoff, not another short jitter.
        assert_eq!(reconnect_delay(&close(4001), 4, &c, 1.0), ms(8000));
    }

    #[test]
    fn random_is_clamped_and_nan_is_zero() {
        let c = PacingConfig::default();
        assert_eq!(
            reconnect_delay(&Cause::Dead, 1, &c, f64::NAN),
            Duration::ZERO
        );
        assert_eq!(reconnect_delay(&Cause::Dead, 1, &c, -3.0), Duration::ZERO);
        assert_eq!(reconnect_delay(&Cause::Dead, 1, &c, 7.0), ms(1000));
        assert_eq!(
            reconnect_delay(&Cause::Dead, 1, &c, f64::INFINITY),
            ms(1000)
        );
    }

    #[test]
    fn full_jitter_spreads_a_crowd_evenly() {
        // 10,000 sessions moved at once with uniform draws land evenly over the window: no
        // 100 ms slice gets more than 12% of them.
        let c = PacingConfig::default();
        let mut slices = [0u32; 10];
        for i in 0..10_000 {
            let d = reconnect_delay(&close(4001), 1, &c, i as f64 / 10_000.0);
            slices[(d.as_millis() as usize / 100).min(9)] += 1;
        }
        assert!(slices.iter().all(|n| *n <= 1200), "{slices:?}");
    }
}
