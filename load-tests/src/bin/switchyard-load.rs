//! `switchyard-load`: load generator, peer comparison and fault scenarios for Switchyard.
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use switchyard_load::compare::{self, CompareOptions};
use switchyard_load::load::ws::{self, WsLoad};
use switchyard_load::{cli_http, scenario, sim};

#[derive(Parser, Debug)]
#[command(name = "switchyard-load", version, about = "Load tests for Switchyard")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// HTTP/1.1 load against a URL: closed loop (as fast as possible) or a fixed open-loop rate.
    Http {
        /// Target, e.g. http://127.0.0.1:8080/api/x
        url: String,
        /// Paths to request instead of the URL's, each PATH or WEIGHT:PATH (repeatable).
        #[arg(long = "path")]
        paths: Vec<String>,
        /// Concurrent keep-alive connections.
        #[arg(long, short = 'c', default_value_t = 50)]
        connections: usize,
        /// Fixed rate in requests per second (open loop, latency from scheduled send times).
        #[arg(long)]
        rate: Option<f64>,
        /// How long to run, e.g. 10s.
        #[arg(long, short = 'd', default_value = "10s", value_parser = humantime_duration)]
        duration: Duration,
        /// Stop after this many requests.
        #[arg(long)]
        requests: Option<u64>,
        /// Per-request timeout.
        #[arg(long, default_value = "5s", value_parser = humantime_duration)]
        timeout: Duration,
        /// Print one JSON object instead of text, and no progress line.
        #[arg(long)]
        json: bool,
        /// Generator threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// WebSocket soak: N sessions, each messaging periodically, held for a while.
    Ws {
        /// Target, e.g. ws://127.0.0.1:8080/ws/echo
        url: String,
        /// Concurrent sessions (each holds one socket; mind the open-file limit).
        #[arg(long, short = 'n', default_value_t = 100)]
        sessions: usize,
        /// Sessions opened per second.
        #[arg(long, default_value_t = 500.0)]
        ramp: f64,
        /// Gap between one session's messages.
        #[arg(long, default_value = "1s", value_parser = humantime_duration)]
        interval: Duration,
        /// How long sessions are held once all are open.
        #[arg(long, short = 'd', default_value = "10s", value_parser = humantime_duration)]
        duration: Duration,
        /// Message size in bytes.
        #[arg(long, default_value_t = 128)]
        message_bytes: usize,
        /// The server's process id, to report its resident memory per session.
        #[arg(long)]
        pid: Option<u32>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Switchyard vs HAProxy vs NGINX, one worker each (`--workers`), in front of two test backends.
    Compare {
        /// Under 60 s: one round of 3 s runs.
        #[arg(long)]
        quick: bool,
        /// Interleaved rounds.
        #[arg(long)]
        rounds: Option<usize>,
        /// Length of each run.
        #[arg(long, value_parser = humantime_duration)]
        duration: Option<Duration>,
        /// Rate of the fixed-rate runs.
        #[arg(long, default_value_t = 5000.0)]
        rate: f64,
        /// Worker threads of each proxy (Switchyard workers, HAProxy nbthread, NGINX
        /// worker_processes).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        workers: u16,
        /// Print the comparison as JSON after the table.
        #[arg(long)]
        json: bool,
    },
    /// A fault scenario with its own router and backends; ends with a verdict line.
    Scenario {
        /// One of: backend-kill, redis-outage, drain, drain-haproxy, shutdown, region-loss, canary,
        /// soak.
        name: String,
        /// SDK sessions held by `drain`, `shutdown` and `region-loss` (defaults keep a run
        /// under 60 s; the benchmark uses 9000).
        #[arg(long)]
        sessions: Option<usize>,
        /// How long `soak` runs, e.g. 45s or 30m (default 50s).
        #[arg(long, value_parser = humantime_duration)]
        duration: Option<Duration>,
    },
    /// The global simulation (docs/SCALE.md): 23 regions, 200 million viewers by metro,
    /// region loss and flash crowds, decided by the router's own region code and the SDK's
    /// reconnect rules; prints the tables and writes SVG charts.
    Sim {
        /// normal-day, evening-peak, region-loss, two-region-loss, flash-crowd, dns-baseline,
        /// or all (the default).
        #[arg(long = "scenario", value_name = "NAME")]
        scenario: Option<String>,
        /// The scenario, given without `--scenario`.
        #[arg(value_name = "SCENARIO", conflicts_with = "scenario")]
        scenario_arg: Option<String>,
        /// Concurrent viewers at the global peak.
        #[arg(long, default_value_t = 200e6)]
        viewers: f64,
        /// Size regions so their normal peak uses this share of their capacity.
        #[arg(long, default_value_t = 0.6)]
        headroom: f64,
        /// A region's load past which new sessions overflow to the next region.
        #[arg(long, default_value_t = 0.9)]
        overflow_load: f64,
        /// Sessions one router node holds (default: docs/BENCHMARKS.md's 100,000).
        #[arg(long)]
        node_sessions: Option<f64>,
        /// Folder for the charts (SVG); the default, run from the repository root, rewrites
        /// the ones docs/SCALE.md shows.
        #[arg(long, default_value = "docs/scale")]
        out: std::path::PathBuf,
        /// Print one JSON object (every report) instead of the tables.
        #[arg(long)]
        json: bool,
    },
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

/// `"250ms"`, `"10s"`, `"2m"`, `"1h"`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 250ms, 10s or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{text:?}: unit must be ms, s, m or h")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is out of range"))
}

/// Prints a report as text, or as one JSON object for scripts.
fn print_report<R: serde::Serialize + std::fmt::Display>(report: &R, json: bool) -> ExitCode {
    if json {
        println!(
            "{}",
            serde_json::to_string(report).expect("a report serialises")
        );
    } else {
        println!("{report}");
    }
    ExitCode::SUCCESS
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, ExitCode> {
    // One thread: a current-thread runtime, cheapest per request (no work stealing).
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build().map_err(|err| {
        eprintln!("switchyard-load: cannot start runtime: {err}");
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Http {
            url,
            paths,
            connections,
            rate,
            duration,
            requests,
            timeout,
            json,
            threads,
        } => {
            let load =
                match cli_http::build(&url, &paths, connections, rate, duration, requests, timeout)
                {
                    Ok(load) => load,
                    Err(msg) => {
                        eprintln!("switchyard-load http: {msg}");
                        return ExitCode::from(2);
                    }
                };
            let rt = match runtime(threads) {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(cli_http::run_with_progress(load, json)) {
                Ok(report) => print_report(&report, json),
                Err(msg) => {
                    eprintln!("switchyard-load http: {msg}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Ws {
            url,
            sessions,
            ramp,
            interval,
            duration,
            message_bytes,
            pid,
            json,
        } => {
            let http_url = url.replacen("ws://", "http://", 1);
            let target = match (url.starts_with("ws://"), cli_http::parse_url(&http_url)) {
                (true, Ok((addr, _, _))) => addr,
                (false, _) => {
                    eprintln!("switchyard-load ws: {url:?}: only ws:// URLs are supported");
                    return ExitCode::from(2);
                }
                (_, Err(msg)) => {
                    eprintln!("switchyard-load ws: {msg}");
                    return ExitCode::from(2);
                }
            };
            if sessions == 0 || ramp <= 0.0 || interval.is_zero() {
                eprintln!(
                    "switchyard-load ws: --sessions, --ramp and --interval must be more than 0"
                );
                return ExitCode::from(2);
            }
            let rt = match runtime(1) {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let load = WsLoad {
                target,
                url,
                sessions,
                ramp_per_s: ramp,
                interval,
                duration,
                message_bytes,
                server_pid: pid,
                timeout: Duration::from_secs(5),
            };
            rt.block_on(async {
                if let Err(msg) =
                    switchyard_load::load::http::probe(target, Duration::from_secs(5)).await
                {
                    eprintln!("switchyard-load ws: {msg}");
                    return ExitCode::from(2);
                }
                print_report(&ws::run(load).await, json)
            })
        }
        Command::Compare {
            quick,
            rounds,
            duration,
            rate,
            workers,
            json,
        } => {
            let mut options = if quick {
                CompareOptions::quick()
            } else {
                CompareOptions::default()
            };
            if let Some(r) = rounds {
                options.rounds = r.max(1);
            }
            if let Some(d) = duration {
                options.duration = d;
            }
            options.rate = rate;
            options.workers = usize::from(workers);
            let rt = match runtime(1) {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(compare::run(&options, |line| eprintln!("{line}"))) {
                Ok(comparison) => {
                    print!("{}", comparison.table());
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string(&comparison).expect("serialises")
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(msg) => {
                    eprintln!("switchyard-load compare: {msg}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Sim {
            scenario,
            scenario_arg,
            viewers,
            headroom,
            overflow_load,
            node_sessions,
            out,
            json,
        } => {
            let options = sim::Options {
                scenario: scenario
                    .or(scenario_arg)
                    .unwrap_or_else(|| "all".to_string()),
                viewers,
                headroom,
                overflow_load,
                node_sessions,
                out: Some(out),
                progress: !json,
            };
            match sim::run(&options) {
                Ok(outcome) if json => {
                    let value = serde_json::json!({
                        "reports": outcome.reports,
                        "charts": outcome.charts,
                        "took_s": outcome.took_s,
                    });
                    println!("{value}");
                    ExitCode::SUCCESS
                }
                Ok(outcome) => {
                    print!("{}", sim::print(&outcome));
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("switchyard-load sim: {err}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Scenario {
            name,
            sessions,
            duration,
        } => {
            let rt = match runtime(1) {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let options = scenario::Options { sessions, duration };
            match rt.block_on(scenario::run(&name, &options, |line| eprintln!("{line}"))) {
                Ok(verdict) => {
                    println!("{}", verdict.line);
                    ExitCode::SUCCESS
                }
                Err(msg) => {
                    eprintln!("switchyard-load scenario: {msg}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
