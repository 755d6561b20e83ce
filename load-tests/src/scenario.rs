//! `switchyard-load scenario NAME`: fault stories told with real processes. Each starts its own
//! router and backends on free ports, runs under 60 s, and ends with one verdict line holding
//! `N failed` and its other figures.
//!
//! - `backend-kill`: a fixed 2,000 rps of GETs across three backends; one is SIGKILLed after
//!   3 s. Reports failed requests, how long after the kill the router still sent requests to
//!   the dead backend (the last rise of its `switchyard_upstream_connect_failures_total`), and
//!   when active checks marked it unhealthy (`switchyard_backend_healthy` falling to 0), both
//!   read from the router's `/metrics` every 50 ms. Router health settings are the defaults.
//! - `redis-outage`: two router nodes share sessions through a `redis-server`; 200 viewers with
//!   session tokens send requests through both nodes in turn for 15 s; Redis is killed after
//!   4 s and restarted after 9 s. Reports failed requests and how many landed on the viewer's
//!   first backend.
//! - `drain`: thousands of SDK sessions, one backend drained; see [`crate::drain`].
//! - `drain-haproxy`: the same drain through HAProxy with clients that reconnect at once; see
//!   [`crate::drain_haproxy`].
//! - `shutdown`: thousands of SDK sessions, one of two router nodes stopped with SIGTERM; see
//!   [`crate::shutdown`].
//! - `region-loss`: a region's router killed under directory-following clients; see
//!   [`crate::region_loss`].
//! - `canary`: a canary rollout whose canary starts failing at its third step, rolled back by
//!   the router itself; see [`crate::canary`].
//! - `soak`: `--duration` (default 50 s, e.g. `30m`) of mixed HTTP and SDK WebSocket traffic
//!   through a sticky, Redis-backed router while backends are drained and undrained, the config
//!   reloaded and Redis restarted; fails on errors or on the router's memory or descriptors
//!   growing; see [`crate::soak`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::load::http::{self, HttpLoad, Progress};
use crate::load::schedule::Pace;
use crate::procs::{self, ScratchDir};

pub const SCENARIOS: &[&str] = &[
    "backend-kill",
    "redis-outage",
    "drain",
    "drain-haproxy",
    "shutdown",
    "region-loss",
    "canary",
    "soak",
];

/// What a scenario can be told on the command line.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--sessions N`: how many SDK sessions the session scenarios hold (each its default
    /// when `None`, sized to keep a run under 60 s).
    pub sessions: Option<usize>,
    /// `--duration D`: how long `soak` runs (its default when `None`).
    pub duration: Option<Duration>,
}

/// A scenario's HTTP client.
pub type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// One answer, read whole.
pub struct Answer {
    pub status: u16,
    pub headers: ::http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The backend that answered (`X-Backend-Id`), `-` if none said.
    pub fn backend(&self) -> &str {
        self.header("x-backend-id").unwrap_or("-")
    }
}

/// A GET with extra headers, answered whole within 2 s; `None` on any failure.
pub async fn get(client: &Http, url: &str, headers: &[(&str, String)]) -> Option<Answer> {
    let mut req = ::http::Request::get(url);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let req = req.body(Empty::new()).ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(2), client.request(req))
        .await
        .ok()?
        .ok()?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    Some(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// The outcome of a scenario: the verdict line and whether it met its goal.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub line: String,
    pub failed: u64,
}

pub async fn run(name: &str, options: &Options, say: impl Fn(&str)) -> Result<Verdict, String> {
    match name {
        "backend-kill" => backend_kill(say).await,
        "redis-outage" => redis_outage(say).await,
        "drain" => crate::drain::run(options, say).await,
        "drain-haproxy" => crate::drain_haproxy::run(options, say).await,
        "shutdown" => crate::shutdown::run(options, say).await,
        "region-loss" => crate::region_loss::run(options, say).await,
        "canary" => crate::canary::run(options, say).await,
        "soak" => crate::soak::run(options, say).await,
        other => Err(format!(
            "unknown scenario {other:?}; known: {}",
            SCENARIOS.join(", ")
        )),
    }
}

const KILL_RATE: f64 = 2000.0;
const KILL_RUN: Duration = Duration::from_secs(10);
const KILL_AT: Duration = Duration::from_secs(3);
const METRICS_EVERY: Duration = Duration::from_millis(50);

async fn backend_kill(say: impl Fn(&str)) -> Result<Verdict, String> {
    let scratch = ScratchDir::new("backend-kill")?;
    let (mut backends, members) = procs::start_backends(&["b1", "b2", "b3"])?;
    let (_router, listen, admin) = procs::start_switchyard(&scratch, &members, 2, 2)?;
    say(&format!(
        "backend-kill: {KILL_RATE:.0} rps for {KILL_RUN:?} through {listen}, killing b2 after {KILL_AT:?}"
    ));

    let progress = Arc::new(Progress::default());
    let load = HttpLoad {
        target: listen,
        host: listen.to_string(),
        paths: vec![("/api/x".to_string(), 1)],
        connections: 64,
        pace: Pace::Open { rate: KILL_RATE },
        duration: KILL_RUN,
        max_requests: None,
        timeout: Duration::from_secs(5),
    };
    let started = Instant::now();
    let load_task = tokio::spawn(http::run(load, progress.clone()));

    tokio::time::sleep_until((started + KILL_AT).into()).await;
    backends[1].kill();
    let killed_at = Instant::now();
    say(&format!(
        "b2 killed at {:.1} s",
        started.elapsed().as_secs_f64()
    ));

    // Watch the router's view of b2: failed connects (each one a request sent there) and the
    // health gauge.
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut last_count = metric(
        &client,
        admin,
        "switchyard_upstream_connect_failures_total",
        "b2",
    )
    .await
    .unwrap_or(0.0);
    let mut last_rise: Option<Instant> = None;
    let mut marked_down: Option<Instant> = None;
    while !load_task.is_finished() {
        tokio::time::sleep(METRICS_EVERY).await;
        if let Some(count) = metric(
            &client,
            admin,
            "switchyard_upstream_connect_failures_total",
            "b2",
        )
        .await
            && count > last_count
        {
            last_count = count;
            last_rise = Some(Instant::now());
        }
        if marked_down.is_none()
            && metric(&client, admin, "switchyard_backend_healthy", "b2").await == Some(0.0)
        {
            marked_down = Some(Instant::now());
        }
    }
    let report = load_task
        .await
        .map_err(|err| format!("load task failed: {err}"))?;
    let failed = report.requests - report.status.s2xx;
    let routed_around = match last_rise {
        None => "no request went to the dead backend after the kill".to_string(),
        Some(t) if report_end_gap(t, started, KILL_RUN) < Duration::from_millis(500) => format!(
            "the dead backend was still tried {:.2} s after the kill, until the end of the run",
            t.duration_since(killed_at).as_secs_f64()
        ),
        Some(t) => format!(
            "last request to the dead backend {:.2} s after the kill",
            t.duration_since(killed_at).as_secs_f64()
        ),
    };
    let health = match marked_down {
        Some(t) => format!(
            "marked unhealthy {:.2} s after the kill",
            t.duration_since(killed_at).as_secs_f64()
        ),
        None => "never marked unhealthy".to_string(),
    };
    let line = format!(
        "backend-kill: {failed} failed, {} ok of {} requests at {KILL_RATE:.0} rps; p99 {:.2} ms; {routed_around}; {health}",
        report.status.s2xx,
        report.requests,
        report.latency_us.p99 as f64 / 1000.0
    );
    Ok(Verdict { line, failed })
}

fn report_end_gap(t: Instant, started: Instant, run: Duration) -> Duration {
    (started + run).saturating_duration_since(t)
}

/// The value of `name{…backend="backend"…}` in the router's `/metrics`.
async fn metric(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    admin: SocketAddr,
    name: &str,
    backend: &str,
) -> Option<f64> {
    let uri: ::http::Uri = format!("http://{admin}/metrics").parse().ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(2), client.get(uri))
        .await
        .ok()?
        .ok()?;
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    let text = String::from_utf8_lossy(&body);
    let label = format!("backend=\"{backend}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{') && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .next()
}

const OUTAGE_RUN: Duration = Duration::from_secs(15);
const OUTAGE_KILL_AT: Duration = Duration::from_secs(4);
const OUTAGE_BACK_AT: Duration = Duration::from_secs(9);
const OUTAGE_VIEWERS: usize = 200;
const OUTAGE_EVERY: Duration = Duration::from_micros(2500);

async fn redis_outage(say: impl Fn(&str)) -> Result<Verdict, String> {
    let scratch = ScratchDir::new("redis-outage")?;
    let port = procs::free_port()?;
    let redis_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start_redis = || procs::start_redis(port);
    let mut redis = Some(start_redis()?);
    // Held until the end: dropping a process guard kills the backend.
    let (_backends, members) = procs::start_backends(&["b1", "b2", "b3"])?;
    let key = scratch.write("session.key", "redis-outage scenario key")?;
    let extra = format!(
        "[sessions]\nstore = \"redis\"\nredis_url = \"redis://{redis_addr}\"\ncookie_key_file = \"{}\"\n",
        key.display()
    );
    let (_a, a, _) = procs::start_switchyard_with(&scratch, "a", &members, 1, 1, &extra, true)?;
    let (_b, b, _) = procs::start_switchyard_with(&scratch, "b", &members, 1, 1, &extra, true)?;
    say(&format!(
        "redis-outage: nodes {a} and {b}, redis {redis_addr}; {OUTAGE_VIEWERS} viewers for {OUTAGE_RUN:?}, redis down from {OUTAGE_KILL_AT:?} to {OUTAGE_BACK_AT:?}"
    ));

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let get = |node: SocketAddr, token: Option<&str>| {
        let headers: Vec<(&str, String)> = token
            .map(|t| ("x-switchyard-session", t.to_string()))
            .into_iter()
            .collect();
        let client = client.clone();
        async move {
            let answer = get(&client, &format!("http://{node}/stream/x"), &headers).await?;
            let token = answer.header("x-switchyard-session").map(str::to_string);
            Some((answer.status, token, answer.backend().to_string()))
        }
    };
    let mut viewers = Vec::new();
    for _ in 0..OUTAGE_VIEWERS {
        match get(a, None).await {
            Some((200, Some(token), backend)) => viewers.push((token, backend)),
            other => return Err(format!("could not start a viewer session: {other:?}")),
        }
    }
    // Let the records reach Redis before the run starts.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let (mut sent, mut failed, mut kept) = (0u64, 0u64, 0u64);
    let mut tick = tokio::time::interval(OUTAGE_EVERY);
    while started.elapsed() < OUTAGE_RUN {
        tick.tick().await;
        if redis.is_some()
            && started.elapsed() >= OUTAGE_KILL_AT
            && started.elapsed() < OUTAGE_BACK_AT
        {
            if let Some(mut r) = redis.take() {
                r.kill();
            }
            say(&format!(
                "redis killed at {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }
        if redis.is_none() && started.elapsed() >= OUTAGE_BACK_AT {
            redis = Some(start_redis()?);
            say(&format!(
                "redis back at {:.1} s",
                started.elapsed().as_secs_f64()
            ));
        }
        let (token, home) = &viewers[sent as usize % OUTAGE_VIEWERS];
        let node = if sent % 2 == 0 { a } else { b };
        sent += 1;
        match get(node, Some(token)).await {
            Some((200, _, backend)) => {
                if &backend == home {
                    kept += 1;
                }
            }
            _ => failed += 1,
        }
    }
    let line = format!(
        "redis-outage: {failed} failed, {} ok of {sent} requests over 2 nodes; {kept} ({:.1}%) on the viewer's first backend; redis down {:.0} s of {:.0} s",
        sent - failed,
        kept as f64 * 100.0 / sent.max(1) as f64,
        (OUTAGE_BACK_AT - OUTAGE_KILL_AT).as_secs_f64(),
        OUTAGE_RUN.as_secs_f64()
    );
    Ok(Verdict { line, failed })
}
