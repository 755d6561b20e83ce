//! `switchyard-load scenario soak [--duration D]`: a long mixed run with the operator's routine
//! faults, watching the router process for growth.
//!
//! Real processes: one router node (one worker, the admin API with a token, sticky sessions
//! shared through a `redis-server` the scenario starts on a free port) in front of three
//! `switchyard-backend`s. For the whole `--duration` (default 50 s; e.g. `30m` for a real soak):
//! - 300 GETs a second from 12 keep-alive connections, half on a plain route (`/api/x`), half
//!   sticky (`/stream/x`) for 100 session tokens made at the start;
//! - 300 `switchyard-client` WebSocket sessions on `/ws/echo` (sticky, least connections), each
//!   sending a numbered message every second and checking every echo (`crate::viewers`); moved
//!   sessions resume through the SDK.
//!
//! After a warm-up (the first 20% of the run), faults come in cycles of at most 4 minutes
//! (one cycle fills a short run, so a 50 s run sees each once and a 30 min run each every
//! 4 minutes): a backend drained through the admin API (b1, b2, b3 in turn) and undrained a
//! quarter of a cycle later, two config reloads (b3's weight to 2 through the admin API, back
//! to 1 by `SIGHUP` a second later, seen in `switchyard_config_reloads_total`), and a Redis
//! restart (killed, started empty on the same port a second later; the router's session store
//! and admin channel must show up again within 10 s).
//!
//! Every few seconds (a 25th of the run, 1–10 s) it samples the router's resident memory
//! (`VmRSS` in `/proc/PID/status`) and open descriptors (`/proc/PID/fd`) and says one line:
//! time, RSS, fds, threads, requests and errors in the interval, WebSocket sessions open and
//! failures in the interval.
//!
//! What counts as failed: none of these faults forces a failure when the router degrades as
//! documented, so every failed or non-200 request, every WebSocket message lost or duplicated,
//! session ended or not opened, resume that did not recover, sticky session moved off a backend
//! that was not being drained, and fault step that did not succeed (an admin call refused, a
//! reload not applied, Redis not reconnected) is counted. Growth fails too:
//! the median of the last quarter of the samples after the warm-up against the first quarter's,
//! RSS up by more than 20% *and* more than 16 MB, or more than 50 more open descriptors (the
//! connection count is held steady — 300 sessions, at most 12 HTTP connections — so a steady
//! router's descriptor count does not drift).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, watch};

use crate::drain::admin_call_with;
use crate::procs::{self, Members, Proc, ScratchDir};
use crate::scenario::{Answer, Http, Options, Verdict};
use crate::viewers::{self, Plan, Tally};

/// The length of a run without `--duration`.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(50);
/// The shortest run that still has a warm-up, one fault cycle and samples to compare.
pub const MIN_DURATION: Duration = Duration::from_secs(10);
const HTTP_RATE: f64 = 300.0;
const HTTP_CONNECTIONS: usize = 12;
const STICKY_TOKENS: usize = 100;
const VIEWERS: usize = 300;
const OPEN_PER_S: f64 = 150.0;
const MESSAGE_EVERY: Duration = Duration::from_secs(1);
const MAX_CYCLE: Duration = Duration::from_secs(240);
const REDIS_DOWN: Duration = Duration::from_secs(1);
/// How soon after Redis is back the router must show its session store and admin channel up
/// (the channel resubscribes every second).
const REDIS_BACK_WITHIN: Duration = Duration::from_secs(10);
const STORE_UP: &str = "switchyard_session_store_up";
const CLUSTER_UP: &str = "switchyard_cluster_up";
const TOKEN: &str = "soak-scenario-admin-token";
/// RSS growth fails only past both limits: the megabytes keep a small router's allocator steps
/// (a new thread's arena, a reload: a few MB each, once) from failing it, the share keeps a large
/// one's ordinary variation from doing so. At 300 requests a second a leak of 300 bytes a
/// request grows 16 MB in about three minutes: a run of 10 minutes or more sees it.
const RSS_GROWTH_PCT: f64 = 20.0;
const RSS_GROWTH_MB: f64 = 16.0;
const FDS_GROWTH: i64 = 50;

/// When things happen in a run of `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub warmup: Duration,
    pub cycle: Duration,
    pub sample_every: Duration,
}

impl Timing {
    pub fn of(duration: Duration) -> Timing {
        let warmup = duration / 5;
        Timing {
            warmup,
            cycle: (duration - warmup).min(MAX_CYCLE),
            sample_every: (duration / 25).clamp(Duration::from_secs(1), Duration::from_secs(10)),
        }
    }
}

/// The faults of one cycle, at these shares of the cycle.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Drain,
    Undrain,
    Reload,
    RedisRestart,
}

const FAULTS: [(f64, Fault); 4] = [
    (0.05, Fault::Drain),
    (0.30, Fault::Undrain),
    (0.50, Fault::Reload),
    (0.70, Fault::RedisRestart),
];

/// One sample of the router process and of the traffic since the previous one.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Duration,
    pub rss_mb: f64,
    pub fds: u64,
}

/// The median of the first and of the last quarter of `values`: `None` with fewer than four.
pub fn quarter_medians(values: &[f64]) -> Option<(f64, f64)> {
    if values.len() < 4 {
        return None;
    }
    let q = values.len() / 4;
    let median = |part: &[f64]| {
        let mut v = part.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    Some((median(&values[..q]), median(&values[values.len() - q..])))
}

/// Whether an RSS change from `first` to `last` MB is growth past both limits.
pub fn rss_grew(first: f64, last: f64) -> bool {
    let grown = last - first;
    grown > RSS_GROWTH_MB && grown > first * RSS_GROWTH_PCT / 100.0
}

/// Whether an open-descriptor change from `first` to `last` is growth past the limit.
pub fn fds_grew(first: f64, last: f64) -> bool {
    (last - first) > FDS_GROWTH as f64
}

/// The router's resident memory in MB, from `/proc/PID/status`.
fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// How many descriptors the router has open.
fn open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// How many threads the router runs (shown, not judged: a new thread explains a step in RSS).
fn threads(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count() as u64)
}

/// The HTTP side's counters, shared by the connections.
#[derive(Default)]
struct HttpTally {
    requests: AtomicU64,
    errors: AtomicU64,
    sticky_moves: AtomicU64,
    /// Sticky sessions moved off a backend that was not being drained.
    stray_moves: AtomicU64,
    reasons: Mutex<BTreeMap<String, u64>>,
}

impl HttpTally {
    fn error(&self, reason: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self
            .reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }
}

/// What the fault task did.
#[derive(Default)]
struct Faults {
    drains: AtomicU64,
    reloads: AtomicU64,
    redis_restarts: AtomicU64,
    /// Admin calls that did not succeed, reloads not applied.
    failures: AtomicU64,
    /// The backend being drained (from the drain call until a second after the undrain).
    draining: Mutex<Option<String>>,
}

/// A GET answered whole within 2 s, or why not.
async fn get(client: &Http, url: &str, token: Option<&str>) -> Result<Answer, String> {
    let mut req = ::http::Request::get(url);
    if let Some(token) = token {
        req = req.header("x-switchyard-session", token);
    }
    let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(2), client.request(req))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| format!("request: {e}"))?;
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(2), body.collect())
        .await
        .map_err(|_| "body timeout".to_string())?
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// The router config: `b3_weight` is what reloads change.
fn router_config(
    listen: SocketAddr,
    admin: SocketAddr,
    token_file: &std::path::Path,
    key_file: &std::path::Path,
    redis: SocketAddr,
    members: &Members,
    b3_weight: u32,
) -> String {
    let backends: Vec<String> = members
        .iter()
        .map(|(id, addr)| {
            let weight = if id == "b3" { b3_weight } else { 1 };
            format!("{{ id = \"{id}\", address = \"{addr}\", weight = {weight} }}")
        })
        .collect();
    format!(
        "[node]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = 1\nshutdown_timeout = \"1s\"\nadmin_token_file = \"{}\"\n\
         [log]\naccess = false\n{}\
         [sessions]\nstore = \"redis\"\nredis_url = \"redis://{redis}\"\ncookie_key_file = \"{}\"\n\
         [[routes]]\nid = \"api\"\npath_prefix = \"/api\"\npool = \"all\"\n\
         [[routes]]\nid = \"sticky\"\npath_prefix = \"/\"\npool = \"all\"\nsticky = true\n\
         timeouts = {{ connect = \"1s\", response = \"5s\", idle = \"1h\" }}\n\
         [[pools]]\nid = \"all\"\nalgorithm = \"least_connections\"\nbackends = [{}]\n",
        token_file.display(),
        procs::LOAD_GENERATOR_LIMITS,
        key_file.display(),
        backends.join(", ")
    )
}

pub async fn run(options: &Options, say: impl Fn(&str)) -> Result<Verdict, String> {
    let duration = options.duration.unwrap_or(DEFAULT_DURATION);
    if duration < MIN_DURATION {
        return Err(format!(
            "soak: --duration must be at least {}s",
            MIN_DURATION.as_secs()
        ));
    }
    let timing = Timing::of(duration);
    let scratch = ScratchDir::new("soak")?;
    let redis_port = procs::free_port()?;
    let redis_addr = SocketAddr::from(([127, 0, 0, 1], redis_port));
    let redis = procs::start_redis(redis_port)?;
    // Held until the end: dropping a process guard kills the backend.
    let (_backends, members) = procs::start_backends(&["b1", "b2", "b3"])?;
    let listen = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
    let admin = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
    let token_file = scratch.write("admin.token", TOKEN)?;
    let key_file = scratch.write("session.key", "soak scenario session key")?;
    let config_of = {
        let (token_file, key_file, members) =
            (token_file.clone(), key_file.clone(), members.clone());
        move |b3_weight| {
            router_config(
                listen,
                admin,
                &token_file,
                &key_file,
                redis_addr,
                &members,
                b3_weight,
            )
        }
    };
    let config_path = scratch.write("router.toml", &config_of(1))?;
    let router = procs::serve("router", &config_path, listen)?;
    let pid = router.pid();
    say(&format!(
        "soak: {:.0} s through {listen} (pid {pid}), redis {redis_addr}; {HTTP_RATE:.0} GET/s (half sticky) and {VIEWERS} SDK sessions; warm-up {:.0} s, fault cycle {:.0} s, a sample every {:.0} s",
        duration.as_secs_f64(),
        timing.warmup.as_secs_f64(),
        timing.cycle.as_secs_f64(),
        timing.sample_every.as_secs_f64()
    ));

    let client: Http = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut tokens = Vec::new();
    for _ in 0..STICKY_TOKENS {
        match get(&client, &format!("http://{listen}/stream/x"), None).await {
            Ok(a) if a.status == 200 && a.header("x-switchyard-session").is_some() => {
                let token = a.header("x-switchyard-session").unwrap_or("").to_string();
                tokens.push((token, a.backend().to_string()));
            }
            other => {
                return Err(format!(
                    "could not start a sticky session: {:?}",
                    other.map(|a| a.status)
                ));
            }
        }
    }

    let started = Instant::now();
    let until = started + duration;
    let http = Arc::new(HttpTally::default());
    let faults = Arc::new(Faults::default());
    let stop_http = Arc::new(AtomicBool::new(false));
    let tokens = Arc::new(Mutex::new(tokens));
    let http_tasks: Vec<_> = (0..HTTP_CONNECTIONS)
        .map(|w| {
            tokio::spawn(http_connection(
                w,
                client.clone(),
                listen,
                tokens.clone(),
                http.clone(),
                faults.clone(),
                stop_http.clone(),
            ))
        })
        .collect();

    let plan = Plan::echo_in_one_region(vec![format!("http://{listen}")], MESSAGE_EVERY);
    let tally = Arc::new(Tally::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let viewer_tasks = viewers::start(&plan, VIEWERS, OPEN_PER_S, tally.clone(), stop_rx);

    let (said_tx, mut said) = mpsc::unbounded_channel::<String>();
    let fault_task = tokio::spawn(fault_cycles(FaultPlan {
        started,
        duration,
        timing,
        admin,
        pid,
        config_path: config_path.clone(),
        config_of: Box::new(config_of),
        redis,
        redis_port,
        faults: faults.clone(),
        say: said_tx,
    }));

    let mut samples: Vec<Sample> = Vec::new();
    let mut tick =
        tokio::time::interval_at((started + timing.sample_every).into(), timing.sample_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ws_failures = |t: &Tally| {
        Tally::get(&t.closed)
            + Tally::get(&t.open_failed)
            + Tally::get(&t.not_recovered)
            + Tally::get(&t.duplicated)
    };
    let (mut last_requests, mut last_errors, mut last_ws_failures) = (0, 0, 0);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let at = started.elapsed();
                let (Some(rss), Some(fds)) = (rss_mb(pid), open_fds(pid)) else {
                    return Err(format!("the router (pid {pid}) is gone"));
                };
                samples.push(Sample { at, rss_mb: rss, fds });
                let requests = http.requests.load(Ordering::Relaxed);
                let errors = http.errors.load(Ordering::Relaxed);
                let ws_failed = ws_failures(&tally);
                let open = Tally::get(&tally.opened) - Tally::get(&tally.closed);
                say(&format!(
                    "{:6.1} s  rss {rss:6.1} MB  fds {fds:5}  threads {:2}  http {:5} requests {:3} errors  ws {open} open {:3} failures{}",
                    at.as_secs_f64(),
                    threads(pid),
                    requests - last_requests,
                    errors - last_errors,
                    ws_failed - last_ws_failures,
                    if at < timing.warmup { "  (warm-up)" } else { "" }
                ));
                (last_requests, last_errors, last_ws_failures) = (requests, errors, ws_failed);
                if Instant::now() + timing.sample_every > until + Duration::from_millis(100) {
                    break;
                }
            }
            Some(line) = said.recv() => say(&line),
        }
    }
    tokio::time::sleep_until(until.into()).await;

    stop_http.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    for task in http_tasks {
        let _ = task.await;
    }
    for task in viewer_tasks {
        let _ = task.await;
    }
    // The fault task ends by itself once no fault fits before the end; it holds Redis.
    let redis = fault_task
        .await
        .map_err(|e| format!("fault task failed: {e}"))??;
    while let Ok(line) = said.try_recv() {
        say(&line);
    }
    drop(redis);
    drop(router);

    let steady: Vec<&Sample> = samples.iter().filter(|s| s.at >= timing.warmup).collect();
    let rss: Vec<f64> = steady.iter().map(|s| s.rss_mb).collect();
    let fds: Vec<f64> = steady.iter().map(|s| s.fds as f64).collect();
    let (mut growth, mut growth_failed) = (Vec::new(), 0u64);
    let rss_text = match quarter_medians(&rss) {
        Some((a, b)) => {
            if rss_grew(a, b) {
                growth_failed += 1;
                growth.push("RSS grew");
            }
            format!(
                "RSS {a:.1} → {b:.1} MB ({:+.1}%)",
                (b - a) * 100.0 / a.max(f64::MIN_POSITIVE)
            )
        }
        None => "RSS not judged (too few samples)".to_string(),
    };
    let fds_text = match quarter_medians(&fds) {
        Some((a, b)) => {
            if fds_grew(a, b) {
                growth_failed += 1;
                growth.push("fds grew");
            }
            format!("fds {a:.0} → {b:.0} ({:+.0})", b - a)
        }
        None => "fds not judged (too few samples)".to_string(),
    };
    let growth_text = if growth.is_empty() {
        format!(
            "no growth past {RSS_GROWTH_PCT:.0}% and {RSS_GROWTH_MB:.0} MB RSS or {FDS_GROWTH} fds"
        )
    } else {
        growth.join(", ")
    };

    let get = Tally::get;
    let requests = http.requests.load(Ordering::Relaxed);
    let http_errors = http.errors.load(Ordering::Relaxed);
    let stray = http.stray_moves.load(Ordering::Relaxed);
    let reasons = http
        .reasons
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let reasons = if reasons.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = reasons.iter().map(|(r, n)| format!("{n}× {r}")).collect();
        format!(": {}", list.join(", "))
    };
    let (lost, duplicated, closed, open_failed, not_recovered) = (
        get(&tally.lost),
        get(&tally.duplicated),
        get(&tally.closed),
        get(&tally.open_failed),
        get(&tally.not_recovered),
    );
    let fault_failures = faults.failures.load(Ordering::Relaxed);
    let failed = http_errors
        + stray
        + lost
        + duplicated
        + closed
        + open_failed
        + not_recovered
        + fault_failures
        + growth_failed;
    let line = format!(
        "soak: {failed} failed over {:.0} s; {requests} requests, {http_errors} errors{reasons}, {} sticky moves ({stray} off a backend not drained); {} of {VIEWERS} sessions opened, {} messages, {lost} lost, {duplicated} duplicated, {} handed back, {} resumes ({not_recovered} not recovered), {closed} ended, {open_failed} failed to open; {} drains, {} reloads, {} redis restarts, {fault_failures} fault steps failed; {rss_text}, {fds_text}: {growth_text}; {} samples",
        duration.as_secs_f64(),
        http.sticky_moves.load(Ordering::Relaxed),
        get(&tally.opened),
        get(&tally.sent),
        get(&tally.handed_back),
        get(&tally.recovered) + not_recovered,
        faults.drains.load(Ordering::Relaxed),
        faults.reloads.load(Ordering::Relaxed),
        faults.redis_restarts.load(Ordering::Relaxed),
        samples.len(),
    );
    Ok(Verdict { line, failed })
}

/// One keep-alive HTTP connection's share of the rate: plain and sticky GETs in turn.
async fn http_connection(
    w: usize,
    client: Http,
    listen: SocketAddr,
    tokens: Arc<Mutex<Vec<(String, String)>>>,
    tally: Arc<HttpTally>,
    faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
) {
    let every = Duration::from_secs_f64(HTTP_CONNECTIONS as f64 / HTTP_RATE);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Each connection starts at its own point of the period.
    tokio::time::sleep(every.mul_f64(w as f64 / HTTP_CONNECTIONS as f64)).await;
    let plain = format!("http://{listen}/api/x");
    let sticky = format!("http://{listen}/stream/x");
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        i += 1;
        tally.requests.fetch_add(1, Ordering::Relaxed);
        if i.is_multiple_of(2) {
            match get(&client, &plain, None).await {
                Ok(a) if a.status == 200 => {}
                Ok(a) => tally.error(format!("status {}", a.status)),
                Err(e) => tally.error(e),
            }
            continue;
        }
        let k = (w + HTTP_CONNECTIONS * i / 2) % STICKY_TOKENS;
        let token = tokens.lock().unwrap_or_else(|e| e.into_inner())[k]
            .0
            .clone();
        match get(&client, &sticky, Some(&token)).await {
            Ok(a) if a.status == 200 => {
                let now = a.backend().to_string();
                let mut tokens = tokens.lock().unwrap_or_else(|e| e.into_inner());
                let home = &mut tokens[k].1;
                if *home != now {
                    tally.sticky_moves.fetch_add(1, Ordering::Relaxed);
                    let draining = faults.draining.lock().unwrap_or_else(|e| e.into_inner());
                    if draining.as_deref() != Some(home.as_str()) {
                        tally.stray_moves.fetch_add(1, Ordering::Relaxed);
                    }
                    *home = now;
                }
            }
            Ok(a) => tally.error(format!("sticky status {}", a.status)),
            Err(e) => tally.error(format!("sticky {e}")),
        }
    }
}

struct FaultPlan {
    started: Instant,
    duration: Duration,
    timing: Timing,
    admin: SocketAddr,
    pid: u32,
    config_path: PathBuf,
    config_of: Box<dyn Fn(u32) -> String + Send>,
    redis: Proc,
    redis_port: u16,
    faults: Arc<Faults>,
    say: mpsc::UnboundedSender<String>,
}

/// Runs the fault cycles until the next fault would not fit before the end; returns the Redis
/// process for the caller to stop.
async fn fault_cycles(plan: FaultPlan) -> Result<Proc, String> {
    let FaultPlan {
        started,
        duration,
        timing,
        admin,
        pid,
        config_path,
        config_of,
        mut redis,
        redis_port,
        faults,
        say,
    } = plan;
    let at = |t: Duration| format!("{:6.1} s", t.as_secs_f64());
    let say = |line: String| {
        let _ = say.send(line);
    };
    let call = |method: &'static str, path: String, body: String| async move {
        admin_call_with(admin, TOKEN, method, &path, &body).await
    };
    // The drain's spread and deadline fit well within the quarter cycle before the undrain.
    let gap = timing.cycle.mul_f64(FAULTS[1].0 - FAULTS[0].0);
    let spread_s = (gap.as_secs() / 4).clamp(1, 10);
    let deadline_s = (gap.as_secs() / 2).max(spread_s + 1);
    let fits = |t: Duration| t + Duration::from_secs(1) < duration;
    for k in 0u64.. {
        let base = timing.warmup + timing.cycle * k as u32;
        let drained = ["b1", "b2", "b3"][k as usize % 3];
        for (share, fault) in FAULTS {
            let due = base + timing.cycle.mul_f64(share);
            // A drain goes only with its undrain; a Redis restart needs its second of outage.
            let needs = match fault {
                Fault::Drain => base + timing.cycle.mul_f64(FAULTS[1].0),
                Fault::RedisRestart => due + REDIS_DOWN,
                _ => due,
            };
            if !fits(needs) {
                return Ok(redis);
            }
            tokio::time::sleep_until((started + due).into()).await;
            // A step that ran long may have pushed this one past the end.
            if !fits(needs + started.elapsed().saturating_sub(due)) {
                return Ok(redis);
            }
            match fault {
                Fault::Drain => {
                    *faults.draining.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(drained.to_string());
                    let answer = call(
                        "POST",
                        format!("/admin/v1/backends/{drained}/drain"),
                        format!("{{\"deadline_s\": {deadline_s}, \"spread_s\": {spread_s}}}"),
                    )
                    .await;
                    faults.drains.fetch_add(1, Ordering::Relaxed);
                    match answer {
                        Ok((202, _)) => say(format!(
                            "{} drain {drained} (spread {spread_s} s, deadline {deadline_s} s)",
                            at(started.elapsed())
                        )),
                        other => {
                            faults.failures.fetch_add(1, Ordering::Relaxed);
                            say(format!(
                                "{} drain {drained} failed: {other:?}",
                                at(started.elapsed())
                            ));
                        }
                    }
                    // Watch for `drained` until the undrain is due.
                    let undrain_at = started + base + timing.cycle.mul_f64(FAULTS[1].0);
                    let drain_at = Instant::now();
                    while Instant::now() + Duration::from_millis(200) < undrain_at {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let state = call(
                            "GET",
                            format!("/admin/v1/backends/{drained}"),
                            String::new(),
                        )
                        .await
                        .ok()
                        .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
                        .and_then(|v| v["state"].as_str().map(str::to_string));
                        if state.as_deref() == Some("drained") {
                            say(format!(
                                "{} {drained} drained {:.1} s after the drain call",
                                at(started.elapsed()),
                                drain_at.elapsed().as_secs_f64()
                            ));
                            break;
                        }
                    }
                }
                Fault::Undrain => {
                    let answer = call(
                        "POST",
                        format!("/admin/v1/backends/{drained}/undrain"),
                        String::new(),
                    )
                    .await;
                    match answer {
                        Ok((s, _)) if (200..300).contains(&s) => {
                            say(format!("{} undrain {drained}", at(started.elapsed())))
                        }
                        other => {
                            faults.failures.fetch_add(1, Ordering::Relaxed);
                            say(format!(
                                "{} undrain {drained} failed: {other:?}",
                                at(started.elapsed())
                            ));
                        }
                    }
                    // Requests already answered by the drained backend's replacement may still
                    // be counted in a moment; a sticky move off it stays explained that long.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    *faults.draining.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
                Fault::Reload => {
                    // b3's weight to 2 through the admin API, then back to 1 by SIGHUP a second
                    // later: both ways in every cycle.
                    for (weight, how) in [(2, "admin API"), (1, "SIGHUP")] {
                        if how == "SIGHUP" {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        std::fs::write(&config_path, config_of(weight)).map_err(|e| {
                            format!("cannot rewrite {}: {e}", config_path.display())
                        })?;
                        let done = if how == "SIGHUP" {
                            sighup_reload(admin, pid).await
                        } else {
                            match call("POST", "/admin/v1/reload".to_string(), String::new()).await
                            {
                                Ok((200, _)) => Ok(()),
                                other => Err(format!("{other:?}")),
                            }
                        };
                        faults.reloads.fetch_add(1, Ordering::Relaxed);
                        match done {
                            Ok(()) => say(format!(
                                "{} reload through the {how} (b3 weight {weight})",
                                at(started.elapsed())
                            )),
                            Err(e) => {
                                faults.failures.fetch_add(1, Ordering::Relaxed);
                                say(format!(
                                    "{} reload through the {how} failed: {e}",
                                    at(started.elapsed())
                                ));
                            }
                        }
                    }
                }
                Fault::RedisRestart => {
                    // The session store counts Redis down only when a call fails (known
                    // sessions route from the cache without one); the admin channel's
                    // subscription notices at once and must come back.
                    redis.kill();
                    let killed = Instant::now();
                    let (mut store_down, mut cluster_down) = (false, false);
                    while killed.elapsed() < REDIS_DOWN {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        store_down |= metric(admin, STORE_UP).await == Some(0.0);
                        cluster_down |= metric(admin, CLUSTER_UP).await == Some(0.0);
                    }
                    let shown = |down: bool| if down { "down" } else { "not down" };
                    say(format!(
                        "{} redis killed {:.1} s ago; the router showed its session store {}, its admin channel {}",
                        at(started.elapsed()),
                        killed.elapsed().as_secs_f64(),
                        shown(store_down),
                        shown(cluster_down)
                    ));
                    redis = tokio::task::spawn_blocking(move || procs::start_redis(redis_port))
                        .await
                        .map_err(|e| format!("redis start failed: {e}"))??;
                    faults.redis_restarts.fetch_add(1, Ordering::Relaxed);
                    let back = Instant::now();
                    let mut up = false;
                    while back.elapsed() < REDIS_BACK_WITHIN && !up {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        up = metric(admin, STORE_UP).await == Some(1.0)
                            && metric(admin, CLUSTER_UP).await == Some(1.0);
                    }
                    if up {
                        say(format!(
                            "{} redis started again on port {redis_port}; the router's store and admin channel up {:.1} s later",
                            at(started.elapsed()),
                            back.elapsed().as_secs_f64()
                        ));
                    } else {
                        faults.failures.fetch_add(1, Ordering::Relaxed);
                        say(format!(
                            "{} redis started again on port {redis_port}; the router's store or admin channel not up within {} s",
                            at(started.elapsed()),
                            REDIS_BACK_WITHIN.as_secs()
                        ));
                    }
                }
            }
        }
    }
    Ok(redis)
}

/// Sends `SIGHUP` and waits up to 5 s for `switchyard_config_reloads_total{outcome="applied"}` to
/// rise.
async fn sighup_reload(admin: SocketAddr, pid: u32) -> Result<(), String> {
    let name = "switchyard_config_reloads_total{outcome=\"applied\"}";
    let before = metric(admin, name).await.unwrap_or(0.0);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if !status.success() {
        return Err(format!("kill -HUP {pid} failed"));
    }
    let sent = Instant::now();
    while sent.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if metric(admin, name).await.unwrap_or(0.0) > before {
            return Ok(());
        }
    }
    Err(format!("{name} did not rise within 5 s"))
}

/// The value of the metric line starting with `name` (with its labels, if given) in the
/// router's `/metrics`.
async fn metric(admin: SocketAddr, name: &str) -> Option<f64> {
    let (status, body) = admin_call_with(admin, TOKEN, "GET", "/metrics", "")
        .await
        .ok()?;
    if status != 200 {
        return None;
    }
    body.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_sees_one_cycle_and_a_long_one_a_cycle_every_four_minutes() {
        let short = Timing::of(Duration::from_secs(50));
        assert_eq!(short.warmup, Duration::from_secs(10));
        assert_eq!(short.cycle, Duration::from_secs(40));
        assert_eq!(short.sample_every, Duration::from_secs(2));
        let long = Timing::of(Duration::from_secs(1800));
        assert_eq!(long.cycle, MAX_CYCLE);
        assert_eq!(long.sample_every, Duration::from_secs(10));
        assert_eq!(
            Timing::of(Duration::from_secs(20)).sample_every,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn growth_is_judged_on_quarter_medians_past_both_rss_limits() {
        let flat = [10.0, 30.0, 10.0, 10.0, 11.0, 10.0, 10.0, 12.0];
        assert_eq!(quarter_medians(&flat), Some((20.0, 11.0)));
        assert_eq!(quarter_medians(&[1.0, 2.0, 3.0]), None);
        assert!(!rss_grew(40.0, 55.0), "15 MB is under 16 MB");
        assert!(!rss_grew(200.0, 230.0), "30 MB is under 20%");
        assert!(rss_grew(40.0, 60.0));
        assert!(!fds_grew(700.0, 750.0));
        assert!(fds_grew(700.0, 751.0));
    }
}
