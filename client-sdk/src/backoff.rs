//! Exponential backoff with full jitter (AWS's "Exponential Backoff and Jitter", gRPC's
//! connection backoff): attempt `n` waits a uniformly random time in
//! `[0, min(cap, base · 2ⁿ)]`, so clients that failed together do not retry together.

use std::time::Duration;

/// Backoff settings. As data: `{ base = "50ms", cap = "2s" }`, both given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    /// The first retry's ceiling. Default 50 ms.
    #[serde(with = "crate::config::duration")]
    pub base: Duration,
    /// The largest ceiling. Default 2 s.
    #[serde(with = "crate::config::duration")]
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(50),
            cap: Duration::from_secs(2),
        }
    }
}

impl Backoff {
    /// The ceiling of retry `n` (0 for the first retry): `min(cap, base · 2ⁿ)`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.min(30));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// A wait for retry `n`: uniform in `[0, ceiling(n)]`.
    pub fn delay(&self, n: u32) -> Duration {
        self.ceiling(n).mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap_and_delays_stay_under_them() {
        let b = Backoff::default();
        let ceilings: Vec<u64> = (0..8).map(|n| b.ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(b.ceiling(1000), b.cap, "no overflow however many retries");
        for n in 0..10 {
            for _ in 0..200 {
                assert!(b.delay(n) <= b.ceiling(n));
            }
        }
        // Full jitter: spread over the whole range, not bunched at the ceiling.
        let waits: Vec<Duration> = (0..2000).map(|_| b.delay(3)).collect();
        let below_half = waits.iter().filter(|w| **w < b.ceiling(3) / 2).count();
        assert!(
            (800..1200).contains(&below_half),
            "{below_half} of 2000 under half"
        );
    }
}
