//! `switchyard-load sim`: the design brief's internet scale — 20+ regions, 200 million
//! viewers, region loss — simulated with the router's own region decisions
//! (`switchyard-regions`) and the SDK's own reconnect rules (`switchyard_client::pacing`).
//! docs/SCALE.md shows the results and the model's assumptions.
//!
//! - [`world`]: the regions and metros tables (embedded, checked);
//! - [`model`]: RTT from distance, a node's capacity, the daily curve;
//! - [`engine`]: steady-state placement and the failover wave;
//! - [`scenarios`]: what each scenario does and reports;
//! - [`charts`]: SVG charts.

pub mod charts;
pub mod engine;
pub mod model;
pub mod scenarios;
pub mod world;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use engine::{Engine, Settings};
use scenarios::Report;

/// What went wrong, and where.
#[derive(Debug)]
pub enum SimError {
    UnknownScenario(String),
    Table {
        file: String,
        line: usize,
        field: String,
        why: String,
    },
    Setting {
        name: &'static str,
        why: String,
    },
    Chart {
        path: PathBuf,
        why: String,
    },
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimError::UnknownScenario(name) => write!(
                f,
                "unknown scenario {name:?}: expected one of {} or all",
                scenarios::NAMES.join(", ")
            ),
            SimError::Table {
                file,
                line,
                field,
                why,
            } => write!(f, "{file} line {line}, field {field}: {why}"),
            SimError::Setting { name, why } => write!(f, "--{name}: {why}"),
            SimError::Chart { path, why } => write!(f, "chart {}: {why}", path.display()),
        }
    }
}

impl std::error::Error for SimError {}

/// `switchyard-load sim`'s options.
#[derive(Debug, Clone)]
pub struct Options {
    /// A scenario name, or `all`.
    pub scenario: String,
    pub viewers: f64,
    pub headroom: f64,
    pub overflow_load: f64,
    /// Sessions one router node holds (`None`: docs/BENCHMARKS.md's figure).
    pub node_sessions: Option<f64>,
    /// Where the charts go; `None`: no charts.
    pub out: Option<PathBuf>,
    pub progress: bool,
}

impl Options {
    fn settings(&self) -> Result<Settings, SimError> {
        let check =
            |name: &'static str, value: f64, ok: bool, why: &str| match ok && value.is_finite() {
                true => Ok(value),
                false => Err(SimError::Setting {
                    name,
                    why: format!("{value} {why}"),
                }),
            };
        Ok(Settings {
            viewers: check(
                "viewers",
                self.viewers,
                self.viewers >= 1.0,
                "must be at least 1",
            )?,
            headroom: check(
                "headroom",
                self.headroom,
                self.headroom > 0.0 && self.headroom <= 1.0,
                "must be in (0, 1]",
            )?,
            overflow_load: check(
                "overflow-load",
                self.overflow_load,
                self.overflow_load > 0.0,
                "must be more than 0",
            )?,
            node: match self.node_sessions {
                None => Settings::default().node,
                Some(sessions) => model::NodeCost {
                    sessions: check(
                        "node-sessions",
                        sessions,
                        sessions >= 1.0,
                        "must be at least 1 (a node with no capacity serves nobody)",
                    )?,
                    ..Settings::default().node
                },
            },
            ..Settings::default()
        })
    }
}

/// Everything one run produced.
pub struct Outcome {
    pub reports: Vec<Report>,
    pub charts: Vec<PathBuf>,
    pub took_s: f64,
}

/// Runs the scenarios; prints nothing (see [`print`]).
pub fn run(options: &Options) -> Result<Outcome, SimError> {
    let started = Instant::now();
    let names: Vec<&str> = match options.scenario.as_str() {
        "all" => scenarios::NAMES.to_vec(),
        one => match scenarios::NAMES.iter().find(|n| **n == one) {
            Some(n) => vec![*n],
            None => return Err(SimError::UnknownScenario(one.to_string())),
        },
    };
    let settings = options.settings()?;
    let engine = Engine::new(world::regions()?, world::metros()?, settings);
    let bar = match options.progress {
        true => indicatif::ProgressBar::new(names.len() as u64),
        false => indicatif::ProgressBar::hidden(),
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} scenarios {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut reports = Vec::new();
    for name in &names {
        bar.set_message(name.to_string());
        reports.push(scenarios::run(&engine, name)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut charts = Vec::new();
    if let Some(out) = &options.out {
        std::fs::create_dir_all(out).map_err(|e| SimError::Chart {
            path: out.clone(),
            why: e.to_string(),
        })?;
        for report in &reports {
            match report.scenario {
                "normal-day" => {
                    charts.push(charts::day(report, &out.join("load-over-the-day.svg"))?);
                    charts.push(charts::rtt(report, &out.join("rtt-normal-day.svg"))?);
                }
                "evening-peak" => {
                    charts.push(charts::rtt(report, &out.join("rtt-evening-peak.svg"))?)
                }
                "region-loss" | "two-region-loss" | "dns-baseline" => charts.push(charts::wave(
                    report,
                    &out.join(format!("wave-{}.svg", report.scenario)),
                )?),
                _ => {}
            }
        }
    }
    Ok(Outcome {
        reports,
        charts,
        took_s: started.elapsed().as_secs_f64(),
    })
}

fn millions(v: f64) -> String {
    format!("{:.1} M", v / 1e6)
}

/// The tables, as text.
pub fn print(outcome: &Outcome) -> String {
    let mut out = String::new();
    for r in &outcome.reports {
        let _ = writeln!(out, "== {}: {}", r.scenario, r.what);
        let _ = writeln!(
            out,
            "viewers {}; under 50 ms {:.1} %, under 100 ms {:.1} %; RTT p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms; overflowed {}; unserved {}",
            millions(r.viewers),
            r.under_50ms * 100.0,
            r.under_100ms * 100.0,
            r.rtt_p50_ms,
            r.rtt_p95_ms,
            r.rtt_p99_ms,
            millions(r.overflowed),
            millions(r.unserved),
        );
        for w in &r.waves {
            let _ = writeln!(
                out,
                "failover ({}): {} viewers moved; back: 50 % after {:.1} s, 99 % after {:.1} s, all after {:.1} s; gave up {}; peak {:.0} reconnects/s",
                w.policy,
                millions(w.moved),
                w.t50_s,
                w.t99_s,
                w.t100_s,
                millions(w.gave_up),
                w.per_second.iter().cloned().fold(0.0, f64::max),
            );
        }
        let _ = writeln!(
            out,
            "{:<16} {:>5} {:>10} {:>10} {:>7} {:>10} {:>13}",
            "region", "nodes", "capacity", "peak", "load", "peak rps", "reconnects/s"
        );
        let mut rows: Vec<_> = r.regions.iter().collect();
        rows.sort_by(|a, b| b.peak_load.total_cmp(&a.peak_load));
        for row in rows {
            let _ = writeln!(
                out,
                "{:<16} {:>5} {:>10} {:>10} {:>6.0}% {:>10.0} {:>13.0}",
                row.name,
                row.nodes,
                millions(row.capacity),
                millions(row.peak_sessions),
                row.peak_load * 100.0,
                row.peak_rps,
                row.peak_reconnects_per_s,
            );
        }
        match r.overloaded.is_empty() {
            true => {
                let _ = writeln!(out, "overloaded regions: none");
            }
            false => {
                let _ = writeln!(out, "overloaded regions: {}", r.overloaded.join(", "));
            }
        }
        let _ = writeln!(out);
    }
    for chart in &outcome.charts {
        let _ = writeln!(out, "chart: {}", chart.display());
    }
    let _ = writeln!(out, "simulated in {:.1} s", outcome.took_s);
    out
}
