//! `switchyard-load scenario region-loss`: a whole region's router dies under load, and clients
//! that follow the region directory (as the SDK does) move without the viewer noticing.
//!
//! Three regions (us-east, eu-west, ap-southeast), each one router process in front of its own
//! backend, probing each other every 200 ms (fall 2). Viewers in Paris read the directory
//! (`GET /v1/regions?lat=48.86&lon=2.35`) and send 400 requests a second to the first region
//! in it (eu-west); on a failed request a viewer reads the directory again from another region
//! it knows and retries once there. After 3 s eu-west's router is SIGKILLed. Reports requests
//! that failed even after the retry, how long until us-east's directory put eu-west last
//! (unhealthy), and which regions served the requests after the loss.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::procs::{self, ScratchDir};
use crate::scenario::{Http, Verdict, get};

const REGIONS: [(&str, f64, f64); 3] = [
    ("us-east", 39.0438, -77.4874),
    ("eu-west", 53.3498, -6.2603),
    ("ap-southeast", 1.3521, 103.8198),
];
const LOST: usize = 1;
const RATE: f64 = 400.0;
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

pub async fn run(say: impl Fn(&str)) -> Result<Verdict, String> {
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
        "region-loss: 3 regions, viewers in Paris at {RATE:.0} rps for {RUN:?}; {}'s router killed after {KILL_AT:?}",
        REGIONS[LOST].0
    ));
    let client: Http = Client::builder(TokioExecutor::new()).build_http();
    let known: Vec<String> = listens.iter().map(|a| format!("http://{a}")).collect();
    // Wait until every region has probed the others.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut dir = directory(&client, &known[0])
        .await
        .ok_or("no directory from us-east")?;
    let first = dir.first().map(|r| r.0.clone()).unwrap_or_default();
    if first != REGIONS[LOST].0 {
        return Err(format!(
            "a client in Paris should start on eu-west, got {first}"
        ));
    }

    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / RATE));
    let (mut sent, mut failed, mut retried) = (0u64, 0u64, 0u64);
    let mut served_after: std::collections::BTreeMap<String, u64> = Default::default();
    let mut killed_at = None;
    let mut marked_at = None;
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
            && sent % 40 == 0
            && let Some(d) = directory(&client, &known[0]).await
            && d.last().is_some_and(|r| r.0 == REGIONS[LOST].0 && !r.2)
        {
            marked_at = Some(killed.elapsed());
        }
        sent += 1;
        let target = dir
            .iter()
            .find(|r| r.2)
            .map(|r| r.1.clone())
            .unwrap_or_default();
        let mut outcome = get(&client, &format!("{target}/titles"), &[]).await;
        if outcome.as_ref().is_none_or(|a| a.status != 200) {
            // As the SDK does: read the directory again (from another known region), retry once.
            retried += 1;
            for endpoint in known.iter().filter(|e| **e != target) {
                if let Some(d) = directory(&client, endpoint).await {
                    dir = d;
                    break;
                }
            }
            let next = dir
                .iter()
                .find(|r| r.2 && r.1 != target)
                .map(|r| r.1.clone())
                .unwrap_or_default();
            outcome = get(&client, &format!("{next}/titles"), &[]).await;
        }
        match outcome {
            Some(answer) if answer.status == 200 => {
                if killed_at.is_some() {
                    *served_after
                        .entry(answer.backend().to_string())
                        .or_default() += 1;
                }
            }
            _ => failed += 1,
        }
    }
    let served: Vec<String> = served_after
        .iter()
        .map(|(b, n)| format!("{b} {n}"))
        .collect();
    let line = format!(
        "region-loss: {failed} failed, {} ok of {sent} requests from Paris; {retried} retried after reading the directory again; {} marked unhealthy {} after the kill; after it served by: {}",
        sent - failed,
        REGIONS[LOST].0,
        marked_at.map_or("never".to_string(), |t| format!("{:.2} s", t.as_secs_f64())),
        served.join(", ")
    );
    drop(backends);
    Ok(Verdict { line, failed })
}
