//! The process's monotonic clock for atomics and policies: nanoseconds since the first call.
//!
//! One place for "now" so the request path's policies (retry budget, rate limits, the peak
//! EWMA) read the same cheap clock.

use std::sync::OnceLock;
use std::time::Instant;

/// Nanoseconds since the first call in this process: a cheap monotonic clock for atomics.
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}
