//! Passive outlier ejection: how long an ejection lasts and whether a pool may eject one more.
//! The pool actor that applies these keeps its times on [`crate::clock::Instant`], so a test
//! advances a paused clock through whole ejections (`tests/paused_time.rs`).

use std::time::Duration;

use crate::config::OutlierConfig;

/// The `n`-th ejection (from 1) lasts `base × n`, capped, jittered by ±10%.
pub fn ejection_time(config: &OutlierConfig, n: u32) -> Duration {
    let plain = config
        .base_ejection
        .saturating_mul(n.max(1))
        .min(config.max_ejection);
    plain.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// Whether one more of `total` backends may be ejected when `ejected` already are: at most
/// `max_ejection_percent` of the pool, but at least one.
pub fn may_eject(config: &OutlierConfig, ejected: usize, total: usize) -> bool {
    let limit = (total * config.max_ejection_percent as usize / 100).max(1);
    ejected < limit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OutlierConfig {
        OutlierConfig {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
            max_ejection_percent: 50,
        }
    }

    #[test]
    fn ejections_grow_with_each_one_up_to_the_cap() {
        let c = config();
        let secs = |n| ejection_time(&c, n).as_secs_f64();
        assert!((9.0..=11.0).contains(&secs(1)));
        assert!((18.0..=22.0).contains(&secs(2)));
        assert!((22.5..=27.5).contains(&secs(3)), "capped at 25 s ± 10%");
        assert!((22.5..=27.5).contains(&secs(40)));
    }

    #[test]
    fn at_most_the_share_but_always_one() {
        let c = config();
        assert!(
            may_eject(&c, 0, 1),
            "a pool of one may still eject its backend"
        );
        assert!(!may_eject(&c, 1, 1));
        assert!(may_eject(&c, 1, 4));
        assert!(!may_eject(&c, 2, 4), "50% of 4 is 2");
        let none = OutlierConfig {
            max_ejection_percent: 0,
            ..c
        };
        assert!(may_eject(&none, 0, 10), "at least one");
        assert!(!may_eject(&none, 1, 10));
    }
}
