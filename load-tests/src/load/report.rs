//! What a load run measured: counts, throughput and latency percentiles from an HDR histogram,
//! printed for people or as one JSON object for scripts.

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histogram tracks (values above are clamped): one minute.
pub const MAX_TRACKED_US: u64 = 60_000_000;

/// A fresh latency histogram in microseconds with 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).expect("static bounds are valid")
}

/// Records a latency, clamped into the tracked range.
pub fn record(hist: &mut Histogram<u64>, latency: Duration) {
    let us = (latency.as_micros() as u64).clamp(1, MAX_TRACKED_US);
    hist.record(us).expect("value is clamped into range");
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(hist: &Histogram<u64>) -> Percentiles {
        if hist.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: hist.value_at_quantile(0.50),
            p90: hist.value_at_quantile(0.90),
            p99: hist.value_at_quantile(0.99),
            p999: hist.value_at_quantile(0.999),
            max: hist.max(),
            mean: hist.mean(),
        }
    }
}

/// Answers by status class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    #[serde(rename = "1xx")]
    pub s1xx: u64,
    #[serde(rename = "2xx")]
    pub s2xx: u64,
    #[serde(rename = "3xx")]
    pub s3xx: u64,
    #[serde(rename = "4xx")]
    pub s4xx: u64,
    #[serde(rename = "5xx")]
    pub s5xx: u64,
}

impl StatusCounts {
    pub fn add(&mut self, status: u16) {
        match status / 100 {
            1 => self.s1xx += 1,
            2 => self.s2xx += 1,
            3 => self.s3xx += 1,
            4 => self.s4xx += 1,
            _ => self.s5xx += 1,
        }
    }

    pub fn merge(&mut self, other: &StatusCounts) {
        self.s1xx += other.s1xx;
        self.s2xx += other.s2xx;
        self.s3xx += other.s3xx;
        self.s4xx += other.s4xx;
        self.s5xx += other.s5xx;
    }

    pub fn total(&self) -> u64 {
        self.s1xx + self.s2xx + self.s3xx + self.s4xx + self.s5xx
    }
}

/// Requests that got no answer, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TransportErrors {
    pub connect: u64,
    pub timeout: u64,
    pub io: u64,
}

impl TransportErrors {
    pub fn merge(&mut self, other: &TransportErrors) {
        self.connect += other.connect;
        self.timeout += other.timeout;
        self.io += other.io;
    }

    pub fn total(&self) -> u64 {
        self.connect + self.timeout + self.io
    }
}

/// The outcome of one HTTP load run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    /// `"closed"` or `"open"`.
    pub mode: &'static str,
    /// Requested rate (open loop only).
    pub rate: Option<f64>,
    pub connections: usize,
    pub elapsed_s: f64,
    /// Requests answered plus requests that failed.
    pub requests: u64,
    /// Answered requests per second.
    pub rps: f64,
    pub latency_us: Percentiles,
    pub status: StatusCounts,
    pub errors: TransportErrors,
    /// True when the run was cut short (Ctrl-C).
    pub interrupted: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        writeln!(
            f,
            "{} {} loop{}, {} connections, {:.1} s{}",
            self.target,
            self.mode,
            self.rate
                .map(|r| format!(" at {r:.0} rps"))
                .unwrap_or_default(),
            self.connections,
            self.elapsed_s,
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "  requests   {}  ({:.0} answered/s)",
            self.requests, self.rps
        )?;
        writeln!(
            f,
            "  latency    p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max)
        )?;
        let s = &self.status;
        writeln!(
            f,
            "  status     1xx {}  2xx {}  3xx {}  4xx {}  5xx {}",
            s.s1xx, s.s2xx, s.s3xx, s.s4xx, s.s5xx
        )?;
        let e = &self.errors;
        write!(
            f,
            "  errors     connect {}  timeout {}  io {}",
            e.connect, e.timeout, e.io
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = latency_histogram();
        for us in 1..=1000u64 {
            record(&mut h, Duration::from_micros(us));
        }
        let p = Percentiles::of(&h);
        assert!((499..=501).contains(&p.p50), "{p:?}");
        assert!((989..=991).contains(&p.p99), "{p:?}");
        assert_eq!(p.max, 1000);
        assert!((p.mean - 500.5).abs() < 1.0);
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let mut h = latency_histogram();
        record(&mut h, Duration::from_secs(3600));
        record(&mut h, Duration::ZERO);
        assert_eq!(h.len(), 2);
        assert!(h.max() >= MAX_TRACKED_US);
    }

    #[test]
    fn status_classes_and_totals_add_up() {
        let mut a = StatusCounts::default();
        for s in [200, 204, 301, 404, 503, 502] {
            a.add(s);
        }
        let mut b = StatusCounts::default();
        b.add(200);
        a.merge(&b);
        assert_eq!((a.s2xx, a.s3xx, a.s4xx, a.s5xx, a.total()), (3, 1, 1, 2, 7));
    }

    #[test]
    fn a_report_prints_and_serialises() {
        let r = Report {
            target: "http://127.0.0.1:1/".into(),
            mode: "open",
            rate: Some(500.0),
            connections: 4,
            elapsed_s: 1.0,
            requests: 500,
            rps: 500.0,
            latency_us: Percentiles::default(),
            status: StatusCounts {
                s2xx: 500,
                ..Default::default()
            },
            errors: TransportErrors::default(),
            interrupted: false,
        };
        let text = r.to_string();
        assert!(text.contains("open loop at 500 rps"), "{text}");
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(json["status"]["2xx"], 500);
        assert_eq!(json["latency_us"]["p99"], 0);
    }
}
