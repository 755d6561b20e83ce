//! A canary's judgement: the canary pool's outcomes over a window against the baseline's over
//! the same window (both [`Tally`]s, summed over every node by the caller). Kayenta's and
//! Flagger's question, asked of the router's own counters: is the canary's error rate or tail
//! latency worse than the baseline's by more than the thresholds allow? Every verdict carries
//! the figures behind it and a sentence that says them, for the rollout's history and log.

use serde::{Deserialize, Serialize};

use crate::routing::outcomes::Tally;

/// When a canary fails. Defaults: error rate over the baseline's × 1.5 + 0.5 percentage
/// points, p99 over the baseline's × 1.25 (+ `latency_margin_ms`, 0 by default), judged on at
/// least 200 canary requests. A service answering in a few milliseconds wants a latency
/// margin: there a scheduling hiccup moves a p99 by more than a quarter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub error_ratio: f64,
    /// Percentage points added to the baseline's error rate × `error_ratio`.
    pub error_margin_pp: f64,
    pub latency_ratio: f64,
    /// Milliseconds added to the baseline's p99 × `latency_ratio`.
    #[serde(default)]
    pub latency_margin_ms: f64,
    pub min_requests: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            error_ratio: 1.5,
            error_margin_pp: 0.5,
            latency_ratio: 1.25,
            latency_margin_ms: 0.0,
            min_requests: 200,
        }
    }
}

/// One side's figures over the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub requests: u64,
    pub errors: u64,
    /// Percent.
    pub error_rate: f64,
    /// Milliseconds; `None` without requests.
    pub p99_ms: Option<f64>,
}

impl Figures {
    fn of(tally: &Tally) -> Figures {
        Figures {
            requests: tally.requests,
            errors: tally.errors,
            error_rate: tally.error_rate() * 100.0,
            p99_ms: tally.quantile(0.99).map(|d| d.as_secs_f64() * 1000.0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within every threshold, on enough requests.
    Healthy,
    /// Too few canary requests to judge yet.
    TooFew,
    /// Over a threshold: roll back.
    Failing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub verdict: Verdict,
    pub canary: Figures,
    pub baseline: Figures,
    /// The figures behind the verdict, in words.
    pub reason: String,
}

/// Judges `canary` against `baseline` over the same window.
pub fn judge(baseline: &Tally, canary: &Tally, t: &Thresholds) -> Judgement {
    let (b, c) = (Figures::of(baseline), Figures::of(canary));
    let verdict = |verdict, reason: String| Judgement {
        verdict,
        canary: c,
        baseline: b,
        reason,
    };
    if c.requests < t.min_requests {
        return verdict(
            Verdict::TooFew,
            format!(
                "{} canary requests of the {} needed to judge",
                c.requests, t.min_requests
            ),
        );
    }
    // A baseline with too few requests of its own (a canary near 100 %) is no yardstick for
    // the tail; its error rate still counts, as it is.
    let error_limit = b.error_rate * t.error_ratio + t.error_margin_pp;
    if c.error_rate > error_limit {
        return verdict(
            Verdict::Failing,
            format!(
                "canary error rate {:.2} % ({} of {}) > baseline {:.2} % × {} + {} pp = {:.2} %",
                c.error_rate,
                c.errors,
                c.requests,
                b.error_rate,
                t.error_ratio,
                t.error_margin_pp,
                error_limit
            ),
        );
    }
    let latency = match (c.p99_ms, b.p99_ms) {
        (Some(cp), Some(bp)) if b.requests >= t.min_requests => {
            let limit = bp * t.latency_ratio + t.latency_margin_ms;
            let margin = match t.latency_margin_ms {
                0.0 => String::new(),
                m => format!(" + {m} ms"),
            };
            if cp > limit {
                return verdict(
                    Verdict::Failing,
                    format!(
                        "canary p99 {cp:.1} ms > baseline p99 {bp:.1} ms × {}{margin} = {limit:.1} ms",
                        t.latency_ratio
                    ),
                );
            }
            format!(
                "p99 {cp:.1} ms ≤ {limit:.1} ms (baseline {bp:.1} ms × {}{margin})",
                t.latency_ratio
            )
        }
        _ => format!(
            "p99 not compared: the baseline had {} requests, fewer than {}",
            b.requests, t.min_requests
        ),
    };
    verdict(
        Verdict::Healthy,
        format!(
            "canary error rate {:.2} % ≤ {error_limit:.2} % (baseline {:.2} %); {latency}",
            c.error_rate, b.error_rate
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::routing::outcomes::Outcomes;

    /// `n` requests, `errors` of them 503, each taking `took`.
    fn tally(n: u64, errors: u64, took: Duration) -> Tally {
        let outcomes = Outcomes::default();
        for i in 0..n {
            outcomes.record(if i < errors { 503 } else { 200 }, took);
        }
        outcomes.tally()
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_canary_failing_five_percent_against_a_clean_baseline_fails_saying_why() {
        let j = judge(
            &tally(1000, 0, 20 * MS),
            &tally(200, 10, 20 * MS),
            &Thresholds::default(),
        );
        assert_eq!(j.verdict, Verdict::Failing, "{}", j.reason);
        assert_eq!(
            j.reason,
            "canary error rate 5.00 % (10 of 200) > baseline 0.00 % × 1.5 + 0.5 pp = 0.50 %"
        );
    }

    #[test]
    fn a_canary_as_good_as_the_baseline_is_healthy_and_noise_within_the_margin_passes() {
        let j = judge(
            &tally(1000, 10, 20 * MS),
            &tally(400, 5, 21 * MS),
            &Thresholds::default(),
        );
        assert_eq!(j.verdict, Verdict::Healthy, "{}", j.reason);
        assert!(
            j.reason.starts_with("canary error rate 1.25 % ≤ 2.00 %"),
            "{}",
            j.reason
        );
    }

    #[test]
    fn a_canary_twice_as_slow_in_its_tail_fails_on_latency() {
        let j = judge(
            &tally(1000, 0, 20 * MS),
            &tally(300, 0, 40 * MS),
            &Thresholds::default(),
        );
        assert_eq!(j.verdict, Verdict::Failing, "{}", j.reason);
        assert!(j.reason.starts_with("canary p99 "), "{}", j.reason);
        assert!(j.canary.p99_ms.unwrap() >= 40.0 && j.baseline.p99_ms.unwrap() < 23.0);
    }

    #[test]
    fn too_few_canary_requests_are_not_judged_and_a_thin_baseline_skips_the_tail() {
        let j = judge(
            &tally(1000, 0, 20 * MS),
            &tally(199, 199, 20 * MS),
            &Thresholds::default(),
        );
        assert_eq!(j.verdict, Verdict::TooFew, "{}", j.reason);
        assert_eq!(j.reason, "199 canary requests of the 200 needed to judge");

        let j = judge(
            &tally(10, 0, 5 * MS),
            &tally(500, 0, 90 * MS),
            &Thresholds::default(),
        );
        assert_eq!(j.verdict, Verdict::Healthy, "{}", j.reason);
        assert!(j.reason.contains("p99 not compared"), "{}", j.reason);
    }
}
