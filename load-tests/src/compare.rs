//! `switchyard-load compare`: Switchyard, HAProxy and NGINX side by side, one worker each (or
//! `--workers N`), in front of the same two test backends, measured by the same generator in
//! interleaved rounds (A B C, B C A, …) so that drift on a shared machine hits them alike.
//! Prints rps, latency and ratios to HAProxy, and the latency each proxy adds over calling a
//! backend directly.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::load::http::{self, HttpLoad, Progress};
use crate::load::report::Report;
use crate::load::schedule::Pace;
use crate::procs::{self, Proc, ScratchDir};

/// What to run.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub rounds: usize,
    /// Length of each closed-loop and each fixed-rate run.
    pub duration: Duration,
    pub connections: usize,
    /// Rate of the fixed-rate runs.
    pub rate: f64,
    /// Worker threads of each proxy (Switchyard `workers`, HAProxy `nbthread`, NGINX
    /// `worker_processes`); the load generator and the backends share the same cores.
    pub workers: usize,
}

impl CompareOptions {
    /// Under 60 s in all: one round of 3 s runs.
    pub fn quick() -> CompareOptions {
        CompareOptions {
            rounds: 1,
            duration: Duration::from_secs(3),
            connections: 50,
            rate: 5000.0,
            workers: 1,
        }
    }
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            rounds: 3,
            duration: Duration::from_secs(8),
            connections: 50,
            rate: 5000.0,
            workers: 1,
        }
    }
}

/// One target's figures, averaged over rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub closed_rps: f64,
    pub closed_p50_us: f64,
    pub closed_p99_us: f64,
    pub fixed_p50_us: f64,
    pub fixed_p99_us: f64,
    /// Non-2xx answers and transport errors over all runs.
    pub failures: u64,
}

/// The comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub rows: Vec<Row>,
    /// Peers not measured, with the reason.
    pub skipped: Vec<String>,
    pub rounds: usize,
    pub duration_s: f64,
    pub connections: usize,
    pub rate: f64,
}

impl Comparison {
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// The table for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} round(s); closed loop: {} connections, {:.0} s; fixed rate: {:.0} rps, {:.0} s",
            self.rounds, self.connections, self.duration_s, self.rate, self.duration_s
        );
        let _ = writeln!(
            out,
            "{:<11} {:>10} {:>8} {:>9} {:>9} | {:>9} {:>9} {:>10} {:>10} {:>8}",
            "target",
            "rps",
            "×haproxy",
            "p50 ms",
            "p99 ms",
            "@rate p50",
            "p99 ms",
            "+p50 ms",
            "+p99 ms",
            "failures"
        );
        let direct = self.row("direct");
        let haproxy = self.row("haproxy");
        for r in &self.rows {
            let ratio = haproxy.map_or("-".to_string(), |h| {
                format!("{:.2}", r.closed_rps / h.closed_rps)
            });
            let (add50, add99) = match (direct, r.name.as_str()) {
                (_, "direct") | (None, _) => ("-".to_string(), "-".to_string()),
                (Some(d), _) => (
                    format!("{:.3}", (r.fixed_p50_us - d.fixed_p50_us) / 1000.0),
                    format!("{:.3}", (r.fixed_p99_us - d.fixed_p99_us) / 1000.0),
                ),
            };
            let _ = writeln!(
                out,
                "{:<11} {:>10.0} {:>8} {:>9.3} {:>9.3} | {:>9.3} {:>9.3} {:>10} {:>10} {:>8}",
                r.name,
                r.closed_rps,
                ratio,
                r.closed_p50_us / 1000.0,
                r.closed_p99_us / 1000.0,
                r.fixed_p50_us / 1000.0,
                r.fixed_p99_us / 1000.0,
                add50,
                add99,
                r.failures
            );
        }
        for s in &self.skipped {
            let _ = writeln!(out, "skipped: {s}");
        }
        out
    }
}

struct Target {
    name: String,
    addr: SocketAddr,
    closed: Vec<Report>,
    fixed: Vec<Report>,
}

/// Starts everything, runs the rounds, stops everything.
pub async fn run(options: &CompareOptions, say: impl Fn(&str)) -> Result<Comparison, String> {
    let scratch = ScratchDir::new("compare")?;
    let mut procs: Vec<Proc> = Vec::new();
    let mut backends = Vec::new();
    for id in ["b1", "b2"] {
        let (proc, addr) = procs::start_backend(id)?;
        procs.push(proc);
        backends.push((id.to_string(), addr));
    }
    let mut targets = vec![Target::new("direct", backends[0].1)];

    let (proc, listen, _admin) = procs::start_switchyard(&scratch, &backends, options.workers, 0)?;
    procs.push(proc);
    targets.push(Target::new("switchyard", listen));

    let mut skipped = Vec::new();
    match procs::on_path("haproxy") {
        Some(bin) => {
            let (proc, addr) = start_haproxy(&scratch, &bin, &backends, options.workers)?;
            procs.push(proc);
            targets.push(Target::new("haproxy", addr));
        }
        None => skipped.push("haproxy: not installed (apt-get install -y haproxy)".to_string()),
    }
    match procs::on_path("nginx") {
        Some(bin) => {
            let (proc, addr) = start_nginx(&scratch, &bin, &backends, options.workers)?;
            procs.push(proc);
            targets.push(Target::new("nginx", addr));
        }
        None => skipped.push("nginx: not installed (apt-get install -y nginx-light)".to_string()),
    }
    for s in &skipped {
        say(&format!("skipping {s}"));
    }

    // Interleaved, and each round starts one target later (A B C, B C A, C A B …), so neither
    // drift nor position in the round favours anyone.
    let n = targets.len();
    for round in 1..=options.rounds {
        let order: Vec<usize> = (0..n).map(|i| (i + round - 1) % n).collect();
        for &i in &order {
            let t = &mut targets[i];
            let closed = measure(t.addr, options, Pace::Closed).await;
            say(&format!(
                "round {round} {:<10} closed {:>9.0} rps  p99 {:.3} ms",
                t.name,
                closed.rps,
                closed.latency_us.p99 as f64 / 1000.0
            ));
            t.closed.push(closed);
        }
        for &i in &order {
            let t = &mut targets[i];
            let fixed = measure(t.addr, options, Pace::Open { rate: options.rate }).await;
            say(&format!(
                "round {round} {:<10} {:.0} rps  p50 {:.3} ms  p99 {:.3} ms",
                t.name,
                options.rate,
                fixed.latency_us.p50 as f64 / 1000.0,
                fixed.latency_us.p99 as f64 / 1000.0
            ));
            t.fixed.push(fixed);
        }
    }
    drop(procs);
    Ok(Comparison {
        rows: targets.iter().map(Target::row).collect(),
        skipped,
        rounds: options.rounds,
        duration_s: options.duration.as_secs_f64(),
        connections: options.connections,
        rate: options.rate,
    })
}

impl Target {
    fn new(name: &str, addr: SocketAddr) -> Target {
        Target {
            name: name.to_string(),
            addr,
            closed: Vec::new(),
            fixed: Vec::new(),
        }
    }

    fn row(&self) -> Row {
        let mean = |reports: &[Report], f: &dyn Fn(&Report) -> f64| {
            reports.iter().map(f).sum::<f64>() / reports.len().max(1) as f64
        };
        let failures = self
            .closed
            .iter()
            .chain(&self.fixed)
            .map(|r| r.requests - r.status.s2xx)
            .sum();
        Row {
            name: self.name.clone(),
            closed_rps: mean(&self.closed, &|r| r.rps),
            closed_p50_us: mean(&self.closed, &|r| r.latency_us.p50 as f64),
            closed_p99_us: mean(&self.closed, &|r| r.latency_us.p99 as f64),
            fixed_p50_us: mean(&self.fixed, &|r| r.latency_us.p50 as f64),
            fixed_p99_us: mean(&self.fixed, &|r| r.latency_us.p99 as f64),
            failures,
        }
    }
}

async fn measure(addr: SocketAddr, options: &CompareOptions, pace: Pace) -> Report {
    let load = HttpLoad {
        target: addr,
        host: addr.to_string(),
        paths: vec![("/api/x".to_string(), 1)],
        connections: options.connections,
        pace,
        duration: options.duration,
        max_requests: None,
        timeout: Duration::from_secs(5),
    };
    http::run(load, Arc::new(Progress::default())).await
}

fn start_haproxy(
    scratch: &ScratchDir,
    bin: &std::path::Path,
    backends: &[(String, SocketAddr)],
    threads: usize,
) -> Result<(Proc, SocketAddr), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
    let servers: String = backends
        .iter()
        .map(|(id, a)| format!("  server {id} {a}\n"))
        .collect();
    // One thread, keep-alive both sides, connection reuse to backends: HAProxy at its best
    // for this load, doing the same work per request as Switchyard (X-Forwarded-For,
    // X-Forwarded-Proto, a generated X-Request-Id sent both ways). maxconn stays under the
    // 20,000-file limit with two sockets a session.
    let cfg = format!(
        "global\n  nbthread {threads}\n  maxconn 9000\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n  option http-keep-alive\n  option forwardfor\n\
         frontend fe\n  bind {addr}\n  unique-id-format %[uuid()]\n  unique-id-header X-Request-Id\n  http-request set-header X-Forwarded-Proto http\n  http-after-response set-header X-Request-Id %[unique-id]\n  default_backend be\n\
         backend be\n  balance roundrobin\n  http-reuse always\n{servers}"
    );
    let path = scratch.write("haproxy.cfg", &cfg)?;
    let mut proc = Proc::spawn("haproxy", Command::new(bin).arg("-db").arg("-f").arg(path))?;
    procs::wait_for_port(&mut proc, addr)?;
    Ok((proc, addr))
}

fn start_nginx(
    scratch: &ScratchDir,
    bin: &std::path::Path,
    backends: &[(String, SocketAddr)],
    workers: usize,
) -> Result<(Proc, SocketAddr), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
    let dir = scratch.path().display();
    let servers: String = backends
        .iter()
        .map(|(_, a)| format!("server {a}; "))
        .collect();
    let cfg = format!(
        "worker_processes {workers};\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log;\nevents {{ worker_connections 9000; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
         upstream be {{ {servers}keepalive 64; }}\n\
         server {{ listen {addr}; location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; \
         proxy_set_header Host $host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; \
         proxy_set_header X-Request-Id $request_id; add_header X-Request-Id $request_id always; }} }}\n}}\n"
    );
    let path = scratch.write("nginx.conf", &cfg)?;
    let mut proc = Proc::spawn(
        "nginx",
        Command::new(bin)
            .arg("-c")
            .arg(path)
            .args(["-g", "daemon off;"])
            .arg("-p")
            .arg(scratch.path()),
    )?;
    procs::wait_for_port(&mut proc, addr)?;
    Ok((proc, addr))
}
