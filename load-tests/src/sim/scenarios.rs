//! The scenarios: what happens, when, and the numbers each one reports.

use serde::Serialize;

use super::SimError;
use super::engine::{Assignment, Engine, Failover, Policy};

pub const NAMES: &[&str] = &[
    "normal-day",
    "evening-peak",
    "region-loss",
    "two-region-loss",
    "flash-crowd",
    "dns-baseline",
];

/// One region's line in a report.
#[derive(Debug, Clone, Serialize)]
pub struct RegionRow {
    pub name: String,
    pub nodes: u32,
    pub capacity: f64,
    pub peak_sessions: f64,
    pub peak_load: f64,
    pub peak_rps: f64,
    /// Failovers: the most reconnects it accepted in one second.
    pub peak_reconnects_per_s: f64,
}

/// How quickly the viewers of a lost region were back.
#[derive(Debug, Clone, Serialize)]
pub struct Wave {
    pub policy: &'static str,
    pub moved: f64,
    pub t50_s: f64,
    pub t99_s: f64,
    pub t100_s: f64,
    pub gave_up: f64,
    /// Reconnects accepted per second, all regions.
    pub per_second: Vec<f64>,
}

/// Everything a scenario found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub what: String,
    pub viewers: f64,
    pub under_50ms: f64,
    pub under_100ms: f64,
    pub rtt_p50_ms: f64,
    pub rtt_p95_ms: f64,
    pub rtt_p99_ms: f64,
    pub overflowed: f64,
    pub unserved: f64,
    pub regions: Vec<RegionRow>,
    pub overloaded: Vec<String>,
    pub waves: Vec<Wave>,
    /// The RTT distribution: viewers per 10 ms bucket.
    pub rtt_histogram: Vec<f64>,
    /// Per region, sessions at each quarter hour (the normal day only).
    pub day: Vec<Vec<f64>>,
}

/// Over what its nodes hold: sessions, or API requests a second.
fn over_capacity(engine: &Engine, r: &RegionRow) -> bool {
    r.peak_load > 1.0 || r.peak_rps > f64::from(r.nodes) * engine.settings.node.rps
}

/// Weighted percentile of `(value, weight)`.
pub fn percentile(values: &mut [(f64, f64)], q: f64) -> f64 {
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = values.iter().map(|v| v.1).sum();
    let mut seen = 0.0;
    for (value, weight) in values.iter() {
        seen += weight;
        if seen >= q * total {
            return *value;
        }
    }
    values.last().map_or(0.0, |v| v.0)
}

fn share_under(values: &[(f64, f64)], ms: f64) -> f64 {
    let total: f64 = values.iter().map(|v| v.1).sum();
    let under: f64 = values.iter().filter(|v| v.0 < ms).map(|v| v.1).sum();
    if total > 0.0 { under / total } else { 0.0 }
}

/// The hour (UTC, in quarter hours) when the most viewers watch.
pub fn global_peak(engine: &Engine) -> f64 {
    (0..96)
        .map(|q| f64::from(q) / 4.0)
        .max_by(|a, b| {
            let total = |h: f64| {
                (0..engine.metros.len())
                    .map(|m| engine.demand(m, h, &|_| 1.0))
                    .sum::<f64>()
            };
            total(*a).total_cmp(&total(*b))
        })
        .unwrap_or(0.0)
}

fn report_of(
    engine: &Engine,
    scenario: &'static str,
    what: String,
    snapshots: &[Assignment],
) -> Report {
    let capacity = engine.capacity();
    let mut rtts: Vec<(f64, f64)> = snapshots.iter().flat_map(|a| engine.rtts(a)).collect();
    let mut histogram = vec![0.0; 40];
    for (ms, v) in &rtts {
        let bucket = ((ms / 10.0) as usize).min(histogram.len() - 1);
        histogram[bucket] += v;
    }
    let n = engine.regions.len();
    let mut peak = vec![0.0f64; n];
    for a in snapshots {
        for (p, s) in peak.iter_mut().zip(&a.sessions) {
            *p = p.max(*s);
        }
    }
    let viewers = snapshots.iter().map(Assignment::total).fold(0.0, f64::max);
    let regions: Vec<RegionRow> = (0..n)
        .map(|r| RegionRow {
            name: engine.regions[r].name.clone(),
            nodes: engine.nodes[r],
            capacity: capacity[r],
            peak_sessions: peak[r],
            peak_load: peak[r] / capacity[r],
            peak_rps: engine.rps(peak[r]),
            peak_reconnects_per_s: 0.0,
        })
        .collect();
    let overloaded = regions
        .iter()
        .filter(|r| over_capacity(engine, r))
        .map(|r| r.name.clone())
        .collect();
    Report {
        scenario,
        what,
        viewers,
        under_50ms: share_under(&rtts, 50.0),
        under_100ms: share_under(&rtts, 100.0),
        rtt_p50_ms: percentile(&mut rtts, 0.50),
        rtt_p95_ms: percentile(&mut rtts, 0.95),
        rtt_p99_ms: percentile(&mut rtts, 0.99),
        overflowed: snapshots.iter().map(|a| a.overflowed).fold(0.0, f64::max),
        unserved: snapshots.iter().map(|a| a.unserved).fold(0.0, f64::max),
        regions,
        overloaded,
        waves: Vec::new(),
        rtt_histogram: histogram,
        day: Vec::new(),
    }
}

fn wave(policy: Policy, f: &Failover) -> Wave {
    Wave {
        policy: match policy {
            Policy::DirectorySdk => "directory + SDK",
            Policy::Dns => "DNS, TTL 60 s",
        },
        moved: f.moved,
        t50_s: f.t50,
        t99_s: f.t99,
        t100_s: f.t100,
        gave_up: f.gave_up,
        per_second: f.per_second.iter().map(|s| s.iter().sum()).collect(),
    }
}

/// The region serving the most viewers at the global peak.
fn largest(engine: &Engine, at: f64) -> usize {
    let all = vec![true; engine.regions.len()];
    let a = engine.assign(at, &|_| 1.0, &all, &engine.capacity());
    (0..engine.regions.len())
        .max_by(|x, y| a.sessions[*x].total_cmp(&a.sessions[*y]))
        .unwrap_or(0)
}

/// The live region nearest to `r`.
fn nearest_to(engine: &Engine, r: usize) -> usize {
    let at = engine.regions[r].at;
    (0..engine.regions.len())
        .filter(|&o| o != r)
        .min_by(|a, b| {
            let d = |i: usize| switchyard_regions::geo::distance_km(at, engine.regions[i].at);
            d(*a).total_cmp(&d(*b))
        })
        .unwrap_or(r)
}

/// A region loss at `at`: the steady state before, the waves, and the state after.
fn loss(
    engine: &Engine,
    scenario: &'static str,
    lost: &[usize],
    at: f64,
    policies: &[Policy],
) -> Report {
    let names: Vec<&str> = lost
        .iter()
        .map(|&r| engine.regions[r].name.as_str())
        .collect();
    let all = vec![true; engine.regions.len()];
    let alive: Vec<bool> = (0..engine.regions.len())
        .map(|r| !lost.contains(&r))
        .collect();
    let capacity = engine.capacity();
    let after = engine.assign(at, &|_| 1.0, &alive, &capacity);
    let before = engine.assign(at, &|_| 1.0, &all, &capacity);
    let mut report = report_of(
        engine,
        scenario,
        format!(
            "{} lost at {:02}:{:02} UTC (the global peak); the steady state after",
            names.join(" and "),
            at as u32,
            ((at.fract()) * 60.0) as u32
        ),
        &[after],
    );
    for policy in policies {
        let f = engine.failover(at, lost, *policy);
        if *policy == Policy::DirectorySdk {
            for (r, row) in report.regions.iter_mut().enumerate() {
                row.peak_reconnects_per_s = f.per_second.iter().map(|s| s[r]).fold(0.0, f64::max);
                row.peak_sessions = row.peak_sessions.max(f.after[r]).max(before.sessions[r]);
                row.peak_load = row.peak_sessions / row.capacity;
                row.peak_rps = engine.rps(row.peak_sessions);
            }
            report.overloaded = report
                .regions
                .iter()
                .filter(|r| over_capacity(engine, r))
                .map(|r| r.name.clone())
                .collect();
        }
        report.waves.push(wave(*policy, &f));
    }
    report
}

/// Runs one scenario by name.
pub fn run(engine: &Engine, name: &str) -> Result<Report, SimError> {
    let n = engine.regions.len();
    let all = vec![true; n];
    let capacity = engine.capacity();
    let peak = global_peak(engine);
    Ok(match name {
        "normal-day" => {
            let snapshots: Vec<Assignment> = (0..96)
                .map(|q| engine.assign(f64::from(q) / 4.0, &|_| 1.0, &all, &capacity))
                .collect();
            let mut report = report_of(
                engine,
                "normal-day",
                "24 hours in quarter-hour steps, every region up; RTT over all viewer-hours"
                    .to_string(),
                &snapshots,
            );
            report.day = (0..n)
                .map(|r| snapshots.iter().map(|a| a.sessions[r]).collect())
                .collect();
            report
        }
        "evening-peak" => {
            let a = engine.assign(peak, &|_| 1.0, &all, &capacity);
            report_of(
                engine,
                "evening-peak",
                format!(
                    "the global peak, {:02}:{:02} UTC",
                    peak as u32,
                    (peak.fract() * 60.0) as u32
                ),
                &[a],
            )
        }
        "region-loss" => {
            let r = largest(engine, peak);
            loss(engine, "region-loss", &[r], peak, &[Policy::DirectorySdk])
        }
        "two-region-loss" => {
            let r = largest(engine, peak);
            let neighbour = nearest_to(engine, r);
            loss(
                engine,
                "two-region-loss",
                &[r, neighbour],
                peak,
                &[Policy::DirectorySdk],
            )
        }
        "dns-baseline" => {
            let r = largest(engine, peak);
            loss(
                engine,
                "dns-baseline",
                &[r],
                peak,
                &[Policy::DirectorySdk, Policy::Dns],
            )
        }
        "flash-crowd" => {
            // A live event in Europe: its viewers triple over 5 minutes at the peak.
            let europe = |m: usize| {
                let (lat, lon) = engine.metros[m].at;
                (34.0..72.0).contains(&lat) && (-25.0..45.0).contains(&lon)
            };
            let snapshots: Vec<Assignment> = (0..=5)
                .map(|minute| {
                    let factor = 1.0 + 2.0 * f64::from(minute) / 5.0;
                    let extra = |m: usize| if europe(m) { factor } else { 1.0 };
                    engine.assign(peak, &extra, &all, &capacity)
                })
                .collect();
            report_of(
                engine,
                "flash-crowd",
                "a live event: Europe's viewers ×3 over 5 minutes at the global peak; the worst minute"
                    .to_string(),
                &snapshots[5..],
            )
        }
        other => {
            return Err(SimError::UnknownScenario(other.to_string()));
        }
    })
}
