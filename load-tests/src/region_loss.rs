//! `switchyard-load scenario region-loss`: a whole region's router dies under load, and real
//! `switchyard-client` clients that follow the region directory move without the viewer
//! noticing.
//!
//! Three regions (us-east, eu-west, ap-southeast), each one router process in front of its own
//! backend, probing each other every 200 ms (fall 2). Viewers in Paris use SDK clients whose
//! region order comes from the directory (`/v1/regions?lat=48.86&lon=2.35`, eu-west first),
//! with the three regions also listed as a last resort: 50 clients send 400 requests a second
//! between them, and `--sessions N` (default 200) SDK sessions each send a numbered message
//! every second (`crate::viewers`). After 3 s eu-west's router is SIGKILLed. Reports requests
//! that failed even after the SDK's retries and failover, messages lost and duplicated, how
//! many sessions resumed in another region (and when the last did), how long until us-east's
//! directory put eu-west last, and which regions served the requests after the loss.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use std::sync::Arc;

use tokio::sync::watch;

use crate::procs::{self, ScratchDir};
use crate::scenario::{Http, Options, Verdict, get};
use crate::viewers::{self, Plan, Tally};

const REGIONS: [(&str, f64, f64); 3] = [
    ("us-east", 39.0438, -77.4874),
    ("eu-west", 53.3498, -6.2603),
    ("ap-southeast", 1.3521, 103.8198),
];
const LOST: usize = 1;
const RATE: f64 = 400.0;
const CLIENTS: usize = 50;
const SESSIONS: usize = 200;
const RUN: Duration = Duration::from_secs(10);
const KILL_AT: Duration = Duration::from_secs(3);
const PARIS: &str = "lat=48.8566&lon=2.3522";

/// The directory as `(name, endpoint, healthy)`, nearest usable first.
async fn directory(client: &Http, endpoint: &str) -> Option<Vec<(String, String, bool)>> {
    let answer = get(client, &format!("{endpoint}/v1/regions?{PARIS}"), &[]).await?;
    if answer.status != 200 {
        return None;
    }
    let answer: serde_json::Value = serde_json::from_slice(&answer.body).ok()?;
    answer["regions"].as_array().map(|regions| {
        regions
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap_or("-").to_string(),
                    r["endpoint"].as_str().unwrap_or("").to_string(),
                    r["healthy"].as_bool().unwrap_or(false)
                        && !r["evacuating"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    })
}

pub async fn run(options: &Options, say: impl Fn(&str)) -> Result<Verdict, String> {
    let sessions = options.sessions.unwrap_or(SESSIONS);
    let scratch = ScratchDir::new("region-loss")?;
    let mut backends = Vec::new();
    let mut listens = Vec::new();
    for (name, _, _) in REGIONS {
        backends.push(procs::start_backend(&format!("{name}-1"))?);
        listens.push(SocketAddr::from(([127, 0, 0, 1], procs::free_port()?)));
    }
    let regions: String = REGIONS
        .iter()
        .zip(&listens)
        .map(|((name, lat, lon), addr)| {
            format!("[[regions]]\nname = \"{name}\"\nlocation = {{ lat = {lat}, lon = {lon} }}\nendpoint = \"http://{addr}\"\n")
        })
        .collect();
    let mut routers = Vec::new();
    for (k, (name, _, _)) in REGIONS.iter().enumerate() {
        let admin = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
        let (backend_id, backend_addr) = (format!("{name}-1"), backends[k].1);
        let config = format!(
            "[node]\nregion = \"{name}\"\nlisten = \"{}\"\nadmin_listen = \"{admin}\"\nworkers = 1\n\
             [log]\naccess = false\n{}\
             [directory]\nprobe_interval = \"200ms\"\nprobe_timeout = \"200ms\"\nfall = 2\nrise = 2\n\
             {regions}\
             [[routes]]\nid = \"api\"\npath_prefix = \"/\"\npool = \"api\"\noverflow = \"forward\"\n\
             [[pools]]\nid = \"api\"\nbackends = [{{ id = \"{backend_id}\", address = \"{backend_addr}\" }}]\n",
            listens[k],
            procs::LOAD_GENERATOR_LIMITS,
        );
        routers.push(Some(procs::start_switchyard_config(
            &scratch, name, &config, listens[k],
        )?));
    }
    say(&format!(
        "region-loss: 3 regions; from Paris {RATE:.0} rps over {CLIENTS} SDK clients and {sessions} SDK sessions for {RUN:?}; {}'s router killed after {KILL_AT:?}",
        REGIONS[LOST].0
    ));
    let probe: Http = Client::builder(TokioExecutor::new()).build_http();
    let known: Vec<String> = listens.iter().map(|a| format!("http://{a}")).collect();
    // Wait until every region has probed the others.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let dir = directory(&probe, &known[0])
        .await
        .ok_or("no directory from us-east")?;
    let first = dir.first().map(|r| r.0.clone()).unwrap_or_default();
    if first != REGIONS[LOST].0 {
        return Err(format!(
            "a client in Paris should start on eu-west, got {first}"
        ));
    }
    let directory_url = format!("{}/v1/regions?{PARIS}", known[0]);
    let statics: Vec<(String, String)> = REGIONS
        .iter()
        .zip(&known)
        .map(|((name, _, _), endpoint)| (name.to_string(), endpoint.clone()))
        .collect();
    let build = move || {
        let mut builder = switchyard_client::Client::builder().directory(directory_url.clone());
        for (name, endpoint) in &statics {
            builder = builder.region(name.clone(), endpoint.clone());
        }
        builder.build().map_err(|e| e.to_string())
    };
    let clients = (0..CLIENTS)
        .map(|_| build())
        .collect::<Result<Vec<_>, _>>()?;
    let plan = Plan {
        client: Arc::new(build),
        path: "/ws/echo".to_string(),
        every: Duration::from_secs(1),
    };
    let tally = Arc::new(Tally::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let viewers = viewers::start(&plan, sessions, 1000.0, tally.clone(), stop_rx);

    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
    let mut requests = tokio::task::JoinSet::new();
    let mut sent = 0u64;
    let mut killed_at = None;
    let mut marked_at = None;
    let mut checked = Instant::now();
    while started.elapsed() < RUN {
        tick.tick().await;
        if killed_at.is_none() && started.elapsed() >= KILL_AT {
            if let Some(mut router) = routers[LOST].take() {
                router.kill();
            }
            killed_at = Some(Instant::now());
            say(&format!(
                "{} killed at {:.1} s",
                REGIONS[LOST].0,
                started.elapsed().as_secs_f64()
            ));
        }
        if let (Some(killed), None) = (killed_at, marked_at)
            && checked.elapsed() >= Duration::from_millis(100)
        {
            checked = Instant::now();
            if let Some(d) = directory(&probe, &known[0]).await
                && d.last().is_some_and(|r| r.0 == REGIONS[LOST].0 && !r.2)
            {
                marked_at = Some(killed.elapsed());
            }
        }
        let client = clients[sent as usize % clients.len()].clone();
        let after_kill = killed_at.is_some();
        sent += 1;
        requests.spawn(async move {
            let answer = client.get("/titles").await;
            (
                answer.map(|r| r.backend().unwrap_or("-").to_string()),
                after_kill,
            )
        });
    }
    let mut failed_requests = 0u64;
    let mut served_after: std::collections::BTreeMap<String, u64> = Default::default();
    while let Some(done) = requests.join_next().await {
        match done {
            Ok((Ok(backend), after_kill)) => {
                if after_kill {
                    *served_after.entry(backend).or_default() += 1;
                }
            }
            _ => failed_requests += 1,
        }
    }
    let _ = stop_tx.send(true);
    for v in viewers {
        let _ = v.await;
    }
    let (resumed, last, _) = killed_at.map_or((0, Duration::ZERO, 0), |k| tally.resumes_since(k));
    let lost_region = format!("{}-1", REGIONS[LOST].0);
    let moved_away: u64 = tally
        .moves()
        .iter()
        .filter(|((from, to), _)| *from == lost_region && *to != lost_region)
        .map(|(_, n)| n)
        .sum();
    let get = Tally::get;
    let (lost, duplicated) = (get(&tally.lost), get(&tally.duplicated));
    let failed = failed_requests + lost + duplicated + get(&tally.closed) + get(&tally.open_failed);
    let served: Vec<String> = served_after
        .iter()
        .map(|(b, n)| format!("{b} {n}"))
        .collect();
    let line = format!(
        "region-loss: {failed} failed, requests: {} ok of {sent} from Paris; sessions: {} open, {} messages sent, {lost} lost, {duplicated} duplicated, {} handed back to the app (the dead region could not say what arrived), {resumed} resumed after the kill ({moved_away} moved off {}), the last {:.2} s after it, {} ended, {} failed to open; {} marked unhealthy {} after the kill; after it requests served by: {}",
        sent - failed_requests,
        get(&tally.opened),
        get(&tally.sent),
        get(&tally.handed_back),
        REGIONS[LOST].0,
        last.as_secs_f64(),
        get(&tally.closed),
        get(&tally.open_failed),
        REGIONS[LOST].0,
        marked_at.map_or("never".to_string(), |t| format!("{:.2} s", t.as_secs_f64())),
        served.join(", ")
    );
    drop(backends);
    Ok(Verdict { line, failed })
}
