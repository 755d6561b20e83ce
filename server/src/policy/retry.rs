//! The retry budget of a route (Finagle's and Linkerd's design): every request deposits
//! `percent`/100 of a retry, every retry withdraws a whole one, and `min_per_s` retries a second
//! are allowed whatever the traffic. So in an outage retries add at most `percent` of the load
//! instead of multiplying it. Lock-free: a few relaxed atomics on the request path; its seconds
//! are [`crate::clock`]'s, so tests move time instead of sleeping.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

use metrics::Counter;

use crate::clock::Epoch;
use crate::config::RetryBudgetConfig;

/// One retry, in thousandths.
const UNIT: i64 = 1000;
/// Most retries that can be saved up: a quiet hour must not fund a storm.
const MAX_SAVED: i64 = 100 * UNIT;

#[derive(Debug)]
pub struct RetryBudget {
    deposit: i64,
    min_per_s: u32,
    balance: AtomicI64,
    reserve: AtomicU32,
    reserve_second: AtomicU64,
    /// `reserve_second` counts whole seconds from here.
    epoch: Epoch,
    retries: Counter,
    exhausted: Counter,
}

impl RetryBudget {
    pub fn new(config: RetryBudgetConfig, route: &str) -> RetryBudget {
        RetryBudget {
            deposit: i64::from(config.percent) * UNIT / 100,
            min_per_s: config.min_per_s,
            balance: AtomicI64::new(0),
            reserve: AtomicU32::new(config.min_per_s),
            reserve_second: AtomicU64::new(0),
            epoch: Epoch::now(),
            retries: metrics::counter!("switchyard_retries_total", "route" => route.to_string()),
            exhausted: metrics::counter!(
                "switchyard_retry_budget_exhausted_total",
                "route" => route.to_string()
            ),
        }
    }

    /// Called once per request (not per attempt).
    pub fn deposit(&self) {
        if self.balance.load(Ordering::Relaxed) < MAX_SAVED {
            self.balance.fetch_add(self.deposit, Ordering::Relaxed);
        }
    }

    /// Takes one retry if the budget allows it; counts the retry or the refusal.
    pub fn try_withdraw(&self) -> bool {
        let granted = self.withdraw();
        if granted {
            self.retries.increment(1);
        } else {
            self.exhausted.increment(1);
        }
        granted
    }

    fn withdraw(&self) -> bool {
        if self.balance.fetch_sub(UNIT, Ordering::Relaxed) >= UNIT {
            return true;
        }
        self.balance.fetch_add(UNIT, Ordering::Relaxed);
        let second = self.epoch.elapsed_ns() / 1_000_000_000 + 1; // never 0, the initial mark
        if self.reserve_second.swap(second, Ordering::Relaxed) != second {
            self.reserve.store(self.min_per_s, Ordering::Relaxed);
        }
        self.reserve
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn budget(percent: u32, min_per_s: u32) -> RetryBudget {
        RetryBudget::new(RetryBudgetConfig { percent, min_per_s }, "test")
    }

    #[test]
    fn retries_are_a_share_of_requests() {
        let b = budget(20, 0);
        for _ in 0..100 {
            b.deposit();
        }
        let granted = (0..100).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 20);
    }

    #[test]
    fn a_minimum_per_second_is_always_allowed() {
        let b = budget(0, 3);
        let granted = (0..10).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 3);
    }

    #[test]
    fn savings_are_capped() {
        let b = budget(100, 0);
        for _ in 0..1_000 {
            b.deposit();
        }
        let granted = (0..1_000).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted as i64, MAX_SAVED / UNIT);
    }

    #[tokio::test(start_paused = true)]
    async fn the_minimum_per_second_comes_back_after_a_second_and_not_before() {
        let b = budget(0, 3);
        let granted = (0..10).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 3);
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(!b.try_withdraw(), "still the same second");
        tokio::time::advance(Duration::from_millis(1)).await;
        let granted = (0..10).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 3, "a new second, a new minimum");
        // Unused minimums are not saved up: a quiet minute still gives 3.
        tokio::time::advance(Duration::from_secs(60)).await;
        let granted = (0..10).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 3);
    }

    #[test]
    fn savings_are_spent_first_then_the_minimum() {
        let b = budget(50, 1);
        for _ in 0..4 {
            b.deposit();
        }
        let granted = (0..10).filter(|_| b.try_withdraw()).count();
        assert_eq!(granted, 2 + 1, "two saved retries, then this second's one");
    }
}
