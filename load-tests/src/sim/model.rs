//! The simulator's physics and costs: round-trip time from distance, what one router node
//! holds, and how many viewers watch at each hour of the day.

use switchyard_regions::geo::distance_km;

/// Light in fibre: about 2/3 of c (refractive index ~1.47), km per millisecond.
pub const FIBRE_KM_PER_MS: f64 = 299_792.458 / 1.47 / 1000.0;

/// Round-trip time from great-circle distance: fibre routes run longer than the great circle
/// (`inflation`), and the access network adds a fixed `last_mile_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rtt {
    pub inflation: f64,
    pub last_mile_ms: f64,
}

impl Default for Rtt {
    /// Route inflation 1.3 and 5 ms of last mile: within ±10 % of the reference city pairs in
    /// the tests below (docs/SCALE.md lists them and where the model misses).
    fn default() -> Rtt {
        Rtt {
            inflation: 1.3,
            last_mile_ms: 5.0,
        }
    }
}

impl Rtt {
    /// A viewer at `a` to a data centre at `b`, milliseconds.
    pub fn viewer_ms(&self, a: (f64, f64), b: (f64, f64)) -> f64 {
        2.0 * distance_km(a, b) * self.inflation / FIBRE_KM_PER_MS + self.last_mile_ms
    }
}

/// What one router node holds, from docs/BENCHMARKS.md (a node = this 2-core machine kind):
/// - `sessions`: 100,000 — "What 100,000 sessions on one node would need" (4.2–4.5 KiB of
///   router memory per idle session, plus kernel socket memory; a projection from the
///   measured ~9,900 sessions this machine's 20,000-file limit allows);
/// - `accepts_per_s`: 6,380 new TLS sessions a second — two workers at the 3,190 full TLS
///   handshakes a second one worker measured ("TLS termination vs HAProxy", run 1);
/// - `rps`: 33,024 — `compare --workers 2`, plain HTTP keep-alive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeCost {
    pub sessions: f64,
    pub accepts_per_s: f64,
    pub rps: f64,
}

impl Default for NodeCost {
    fn default() -> NodeCost {
        NodeCost {
            sessions: 100_000.0,
            accepts_per_s: 6_380.0,
            rps: 33_024.0,
        }
    }
}

/// API requests a watching viewer sends the router per second (segments come from a CDN):
/// the design brief's 100,000 rps per data centre over its ~10 million viewers.
pub const REQUESTS_PER_VIEWER_PER_S: f64 = 0.01;

/// Share of a metro's peak audience watching at `local_hour`: an evening peak at 21:00 over a
/// night trough, peak to trough ~6× (the brief's "5–10× evening peaks").
pub fn daily_share(local_hour: f64) -> f64 {
    const PEAK_HOUR: f64 = 21.0;
    const WIDTH_H: f64 = 3.5;
    const FLOOR: f64 = 0.1;
    let mut d = (local_hour - PEAK_HOUR).rem_euclid(24.0);
    if d > 12.0 {
        d = 24.0 - d;
    }
    FLOOR + (1.0 - FLOOR) * (-(d * d) / (2.0 * WIDTH_H * WIDTH_H)).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Typical round-trip times between city pairs, as public ping and cloud inter-region
    /// latency tables report them — approximate values, typed in (nothing can be fetched
    /// here); docs/SCALE.md lists them with the pairs the model misses.
    type Pair = (&'static str, (f64, f64), (f64, f64), f64);
    const PAIRS: &[Pair] = &[
        ("London–New York", (51.51, -0.13), (40.71, -74.01), 75.0),
        ("London–Frankfurt", (51.51, -0.13), (50.11, 8.68), 13.0),
        ("Tokyo–Singapore", (35.68, 139.69), (1.35, 103.82), 70.0),
        ("Singapore–Sydney", (1.35, 103.82), (-33.87, 151.21), 92.0),
    ];

    #[test]
    fn rtt_matches_known_city_pairs_within_ten_percent() {
        let rtt = Rtt::default();
        for (name, a, b, reference) in PAIRS {
            let model = rtt.viewer_ms(*a, *b);
            let off = (model - reference).abs() / reference;
            assert!(
                off <= 0.10,
                "{name}: model {model:.1} ms vs {reference} ms ({:.0} % off)",
                off * 100.0
            );
        }
    }

    #[test]
    fn the_evening_peak_is_5_to_10_times_the_trough() {
        let hours: Vec<f64> = (0..240).map(|i| daily_share(f64::from(i) / 10.0)).collect();
        let (max, min) = hours
            .iter()
            .fold((0.0f64, f64::MAX), |(hi, lo), &v| (hi.max(v), lo.min(v)));
        assert!((max - 1.0).abs() < 1e-9 && max / min >= 5.0 && max / min <= 10.0);
        assert!(daily_share(21.0) > daily_share(9.0));
    }
}
