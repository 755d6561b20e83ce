//! The request side's metrics, through the `metrics` crate (the app installs whatever
//! recorder it exports with; without one these cost next to nothing). Names follow
//! `switchyard_client_<noun>_<unit>`; the label `region` is the region's configured name.

/// Every attempt of a request (the first one included).
pub const ATTEMPTS: &str = "switchyard_client_attempts_total";
/// Attempts after the first one of a request.
pub const RETRIES: &str = "switchyard_client_retries_total";
/// Moves of a request (or a session) to another region than its previous attempt's.
pub const FAILOVERS: &str = "switchyard_client_failovers_total";
/// Circuit breaker changes, labelled `region` and `to` (`open`, `half_open`, `closed`).
pub const BREAKER_TRANSITIONS: &str = "switchyard_client_breaker_transitions_total";
/// Tokens left in the retry budget (a gauge).
pub const RETRY_BUDGET_LEFT: &str = "switchyard_client_retry_budget_left";

pub(crate) fn attempt(region: &str) {
    metrics::counter!(ATTEMPTS, "region" => region.to_string()).increment(1);
}

pub(crate) fn retry(region: &str) {
    metrics::counter!(RETRIES, "region" => region.to_string()).increment(1);
}

pub(crate) fn failover(to: &str) {
    metrics::counter!(FAILOVERS, "region" => to.to_string()).increment(1);
}

pub(crate) fn breaker_transition(region: &str, to: &'static str) {
    metrics::counter!(BREAKER_TRANSITIONS, "region" => region.to_string(), "to" => to).increment(1);
}

pub(crate) fn budget_left(tokens: u32) {
    metrics::gauge!(RETRY_BUDGET_LEFT).set(f64::from(tokens));
}
