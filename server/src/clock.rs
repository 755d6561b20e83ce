//! The clock of the router's timing policies: the retry budget, the rate limits (GCRA, local and
//! the shared limit's local fallback), flap damping and outlier ejection read "now" here, and so
//! does the request path's peak EWMA ([`now_ns`]). It only reads time; it never sleeps or waits.
//!
//! # Why tokio's clock, and not a `Clock` passed to every policy
//! [`Instant`] is `tokio::time::Instant`. Without tokio's `test-util` feature its `now()` is
//! `std::time::Instant::now()` behind an inlined wrapper: no lock, no allocation, no dynamic
//! dispatch — what the request path paid before. Only `[dev-dependencies]` turn `test-util` on,
//! and Cargo does not carry a dev-dependency's features into `cargo build`, so a production binary
//! never has it; a test build pays one atomic load more ("was a clock ever paused in this
//! process?"), and the runtime lookup only once a test has paused one.
//!
//! Tests then move time the way the router's timers already run: in a
//! `#[tokio::test(start_paused = true)]` test, `tokio::time::advance` moves the policies' "now"
//! *and* every tokio timer (the actors' intervals, `sleep`s, timeouts) together, so a policy's
//! time and a timer's time can never disagree. An injected `Clock` would have to be threaded
//! through every policy and actor to promise the same, and would still leave the timers on real
//! time.
//!
//! A policy counts from its own [`Epoch`], taken when it is built: a test that builds one on a
//! paused clock sees exactly the time it advanced, whatever other tests did to the process.

use std::sync::OnceLock;

pub use tokio::time::Instant;

/// A fixed point on the [`Instant`] clock that a policy counts nanoseconds from, so its state
/// can live in plain integers (atomics, map values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(Instant);

impl Epoch {
    /// Now, as the point to count from.
    pub fn now() -> Epoch {
        Epoch(Instant::now())
    }

    /// Nanoseconds since this epoch (0 if the clock reads earlier).
    #[inline]
    pub fn elapsed_ns(self) -> u64 {
        Instant::now().saturating_duration_since(self.0).as_nanos() as u64
    }
}

/// Nanoseconds since the first call in this process: a cheap monotonic clock for atomics.
///
/// The first call is anchored on real time, never on a paused clock, so a test that pauses and
/// advances its own runtime's clock cannot move this zero for the rest of the process. (A test
/// on a paused clock should compare values of a policy built inside it, which counts from its
/// own [`Epoch`].)
pub fn now_ns() -> u64 {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    Instant::now()
        .into_std()
        .saturating_duration_since(start)
        .as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn an_epoch_counts_exactly_what_a_paused_clock_advanced() {
        let epoch = Epoch::now();
        assert_eq!(epoch.elapsed_ns(), 0, "a paused clock stands still");
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert_eq!(epoch.elapsed_ns(), 1_500_000_000);
    }
}
