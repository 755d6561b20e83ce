//! Log lines that any client (or one failing backend under load) could otherwise repeat once
//! per request: written at most once per interval, saying how many were left out since. The
//! events themselves are always counted in metrics; the log only has to say they happen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::now_ns;

/// At most one line per `every`, shared by every worker (two atomics, no lock).
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: AtomicU64,
    left_out: AtomicU64,
}

impl Throttle {
    pub const fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: AtomicU64::new(0),
            left_out: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being how many were left out since the
    /// last one; `None` (and one more left out) otherwise.
    pub fn allow(&self) -> Option<u64> {
        let now = now_ns().max(1);
        let last = self.last.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= self.every.as_nanos() as u64)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.left_out.swap(0, Ordering::Relaxed));
        }
        self.left_out.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_count_of_the_rest() {
        let throttle = Throttle::new(Duration::from_secs(3600));
        assert_eq!(throttle.allow(), Some(0));
        for _ in 0..5 {
            assert_eq!(throttle.allow(), None);
        }
        // The next interval's line says five were left out.
        throttle.last.store(0, Ordering::Relaxed);
        assert_eq!(throttle.allow(), Some(5));
        assert_eq!(throttle.allow(), None);
    }
}
