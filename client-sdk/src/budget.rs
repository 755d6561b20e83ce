//! The retry budget: a token bucket like the AWS SDKs' retry quota. Every retry costs tokens
//! (a retry after a timeout costs more); every success puts one back. When the bucket is empty
//! no retry is made, so a full outage costs each request one attempt instead of several —
//! retries cannot multiply the load on a failing service.

use std::sync::atomic::{AtomicU32, Ordering};

/// Retry budget settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    /// Tokens when full. Default 500.
    pub capacity: u32,
    /// Cost of a retry. Default 5.
    pub retry_cost: u32,
    /// Cost of a retry after a timeout. Default 10.
    pub timeout_cost: u32,
    /// Tokens a success puts back. Default 1.
    pub success_refund: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            capacity: 500,
            retry_cost: 5,
            timeout_cost: 10,
            success_refund: 1,
        }
    }
}

/// The bucket, shared by every request of a client.
#[derive(Debug)]
pub struct RetryBudget {
    config: BudgetConfig,
    tokens: AtomicU32,
}

impl RetryBudget {
    pub fn new(config: BudgetConfig) -> RetryBudget {
        crate::telemetry::budget_left(config.capacity);
        RetryBudget {
            config,
            tokens: AtomicU32::new(config.capacity),
        }
    }

    /// Takes the cost of a retry; `false` (and nothing taken) when the bucket cannot pay.
    pub fn try_retry(&self, after_timeout: bool) -> bool {
        let cost = match after_timeout {
            true => self.config.timeout_cost,
            false => self.config.retry_cost,
        };
        self.tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                t.checked_sub(cost)
            })
            .inspect(|before| crate::telemetry::budget_left(before - cost))
            .is_ok()
    }

    /// A success: refunds up to the capacity.
    pub fn success(&self) {
        let (refund, capacity) = (self.config.success_refund, self.config.capacity);
        if let Ok(before) = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(refund).min(capacity))
            })
        {
            crate::telemetry::budget_left(before.saturating_add(refund).min(capacity));
        }
    }

    pub fn left(&self) -> u32 {
        self.tokens.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_spend_the_bucket_and_successes_refill_it() {
        let b = RetryBudget::new(BudgetConfig::default());
        let mut retries = 0;
        while b.try_retry(false) {
            retries += 1;
        }
        assert_eq!(retries, 100, "500 tokens at 5 a retry");
        assert_eq!(b.left(), 0);
        assert!(!b.try_retry(true), "an empty bucket pays for nothing");
        for _ in 0..10 {
            b.success();
        }
        assert_eq!(b.left(), 10);
        assert!(b.try_retry(true), "a timeout retry costs 10");
        assert!(!b.try_retry(false));
        for _ in 0..1000 {
            b.success();
        }
        assert_eq!(b.left(), 500, "never above capacity");
    }
}
