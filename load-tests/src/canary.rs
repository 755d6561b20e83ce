//! `switchyard-load scenario canary`: a canary rollout that goes bad, judged by the router
//! itself.
//!
//! Two router nodes share a `redis-server`; route `/` sends to pool `stable` (two backends);
//! pool `canary` (one backend) is rolled out with steps 5, 10, 25, 50, 100 %, a 2 s hold and
//! 100 requests per step. Viewers send GETs through both nodes (no session token: each request
//! is assigned afresh by the weights). When the rollout reaches its third step (25 %) the
//! canary backend starts answering every request `503` (and once passive health ejects it, the
//! router answers the canary's share `503 no_healthy_backend`). Reports the time from the first bad
//! answer to the rollback decision and to the canary's weight reaching 0 on each node, how
//! many viewers' requests the canary failed, and — from the canary's measured request rate —
//! how many an outside controller polling every 30 s would have let through.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::drain::admin_call_with;
use crate::procs::{self, ScratchDir};
use crate::scenario::{Http, Options, Verdict, get};

const TOKEN: &str = "canary-scenario-admin-token-0123456789";
/// Viewers per node, each sending a GET every `EVERY`.
const VIEWERS: usize = 4;
const EVERY: Duration = Duration::from_millis(4);
/// The outside controller this is compared with.
const POLL: Duration = Duration::from_secs(30);
const WITHIN: Duration = Duration::from_secs(40);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What the viewers saw.
#[derive(Default)]
struct Seen {
    sent: AtomicU64,
    /// No answer, or a 5xx not from the canary.
    failed: AtomicU64,
    /// Answered by the canary.
    canary: AtomicU64,
    /// Answered 5xx by the canary.
    canary_errors: AtomicU64,
    /// Unix ms of the first 5xx from the canary (0: none yet).
    first_bad_ms: AtomicU64,
    /// Unix ms of the last answer from the canary.
    last_canary_ms: AtomicU64,
}

pub async fn run(_: &Options, say: impl Fn(&str)) -> Result<Verdict, String> {
    let scratch = ScratchDir::new("canary")?;
    let port = procs::free_port()?;
    let _redis = procs::start_redis(port)?;
    let (_backends, members) = procs::start_backends(&["stable-1", "stable-2", "canary-1"])?;
    let token = scratch.write("admin.token", TOKEN)?;
    let list = |ids: &[&str]| {
        members
            .iter()
            .filter(|(id, _)| ids.contains(&id.as_str()))
            .map(|(id, addr)| format!("{{ id = \"{id}\", address = \"{addr}\" }}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let canary_addr = members
        .iter()
        .find(|(id, _)| id == "canary-1")
        .map(|(_, a)| *a)
        .ok_or("no canary backend")?;
    let mut nodes = Vec::new();
    let mut procs_held = Vec::new();
    for name in ["a", "b"] {
        let listen = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
        let admin = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
        let config = format!(
            "[node]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = 1\nshutdown_timeout = \"1s\"\nadmin_token_file = \"{}\"\n\
             [log]\naccess = false\n{}\
             [sessions]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:{port}\"\n\
             [[routes]]\nid = \"all\"\npath_prefix = \"/\"\npool = \"stable\"\nretries = 0\n\
             [[pools]]\nid = \"stable\"\nalgorithm = \"round_robin\"\nbackends = [{}]\n\
             [[pools]]\nid = \"canary\"\nbackends = [{}]\n",
            token.display(),
            procs::LOAD_GENERATOR_LIMITS,
            list(&["stable-1", "stable-2"]),
            list(&["canary-1"]),
        );
        procs_held.push(procs::start_switchyard_config(
            &scratch, name, &config, listen,
        )?);
        nodes.push((listen, admin));
    }
    let get_client: Http = Client::builder(TokioExecutor::new()).build_http();
    // The admin API's calls and the canary backend's `/admin/fail`, with the admin token.
    let post = |addr: SocketAddr, path: String, body: String| async move {
        admin_call_with(addr, TOKEN, "POST", &path, &body).await
    };
    let read = |admin: SocketAddr, path: String| {
        let client = get_client.clone();
        async move {
            let answer = get(&client, &format!("http://{admin}{path}"), &[]).await?;
            serde_json::from_slice::<serde_json::Value>(&answer.body).ok()
        }
    };
    // Both nodes read the rollouts (and hold Redis) before the start.
    for (_, admin) in &nodes {
        let started = Instant::now();
        while read(*admin, "/admin/v1/rollouts".into()).await.is_none() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err(format!("node {admin} does not answer its admin API"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    say(&format!(
        "canary: nodes {} and {}, {} viewers each sending a GET every {EVERY:?}",
        nodes[0].0,
        nodes[1].0,
        VIEWERS * 2
    ));

    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut viewers = Vec::new();
    for i in 0..VIEWERS * 2 {
        let (listen, _) = nodes[i % 2];
        let (seen, stop, client) = (seen.clone(), stop.clone(), get_client.clone());
        viewers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !stop.load(Ordering::SeqCst) {
                tick.tick().await;
                seen.sent.fetch_add(1, Ordering::Relaxed);
                let answer = get(&client, &format!("http://{listen}/"), &[]).await;
                let Some(answer) = answer else {
                    seen.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                // The canary backend's own answer, or the router's for the canary pool (once
                // passive health has ejected the failing backend: `503 no_healthy_backend`).
                let from_canary = answer.backend() == "canary-1"
                    || (answer.status >= 500
                        && String::from_utf8_lossy(&answer.body).contains(r#"pool \"canary\""#));
                if from_canary {
                    seen.canary.fetch_add(1, Ordering::Relaxed);
                    seen.last_canary_ms.store(now_ms(), Ordering::Relaxed);
                }
                if answer.status >= 500 {
                    if from_canary {
                        seen.canary_errors.fetch_add(1, Ordering::Relaxed);
                        let _ = seen.first_bad_ms.compare_exchange(
                            0,
                            now_ms(),
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        );
                    } else {
                        seen.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    let (status, body) = post(
        nodes[0].1,
        "/admin/v1/rollouts".into(),
        r#"{"route": "all", "baseline": "stable", "canary": "canary", "steps": [5, 10, 25, 50, 100], "hold": "2s", "min_requests": 100, "thresholds": {"latency_margin_ms": 50}}"#.into(),
    )
    .await?;
    if status != 201 {
        return Err(format!("the rollout did not start: {status} {body}"));
    }
    let rollout: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let id = rollout["id"].as_str().unwrap_or_default().to_string();
    let path = format!("/admin/v1/rollouts/{id}");
    let started = Instant::now();

    // Step 3 (25 %): the canary starts failing every request.
    loop {
        let now = read(nodes[0].1, path.clone()).await;
        let step = now.as_ref().and_then(|r| r["step"].as_u64());
        if step == Some(2) {
            break;
        }
        if started.elapsed() > WITHIN {
            return Err(format!("the rollout did not reach its third step: {now:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let canary_before = seen.canary.load(Ordering::SeqCst);
    let (status, body) = post(
        canary_addr,
        "/admin/fail".into(),
        r#"{"status": 503}"#.into(),
    )
    .await?;
    if status != 200 {
        return Err(format!(
            "the canary backend refused to fail: {status} {body}"
        ));
    }
    let failing_at = Instant::now();
    say(&format!(
        "canary: at step 3 (25 %) after {:.1} s; the canary fails every request from now",
        started.elapsed().as_secs_f64()
    ));

    // Each node's canary weight, until 0.
    let mut zero_ms = [None, None];
    while zero_ms.iter().any(Option::is_none) {
        for (i, (_, admin)) in nodes.iter().enumerate() {
            if zero_ms[i].is_some() {
                continue;
            }
            let route = read(*admin, "/admin/v1/routes/all".into()).await;
            let weight = route.as_ref().and_then(|r| {
                r["pools"]
                    .as_array()?
                    .iter()
                    .find(|p| p["pool"] == "canary")?["weight"]
                    .as_u64()
            });
            if weight == Some(0) {
                zero_ms[i] = Some(now_ms());
            }
        }
        if failing_at.elapsed() > WITHIN {
            return Err("the canary was not rolled back on every node within 40 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let canary_rate = {
        let window = failing_at.elapsed().as_secs_f64().max(0.001);
        (seen.canary.load(Ordering::SeqCst) - canary_before) as f64 / window
    };
    // A second more of traffic: nothing may reach the canary after the rollback.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for viewer in viewers {
        let _ = viewer.await;
    }
    let done = read(nodes[1].1, path.clone())
        .await
        .ok_or("the rollout cannot be read")?;
    let last = done["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .unwrap_or_default();
    if done["phase"] != "rolled_back" || last["by"] != "controller" {
        return Err(format!(
            "the controller did not roll the canary back: {done}"
        ));
    }
    let first_bad = seen.first_bad_ms.load(Ordering::SeqCst);
    let decided = last["at_ms"].as_u64().unwrap_or(0);
    let late = |t: u64| t.saturating_sub(first_bad);
    let after_rollback = seen
        .last_canary_ms
        .load(Ordering::SeqCst)
        .saturating_sub(zero_ms[0].unwrap_or(0).max(zero_ms[1].unwrap_or(0)));
    let errors = seen.canary_errors.load(Ordering::SeqCst);
    let failed = seen.failed.load(Ordering::SeqCst);
    let line = format!(
        "canary: rolled back by the router {} ms after the first bad answer (weight 0 on node a after {} ms, node b after {} ms); {errors} viewers' requests failed by the canary at {canary_rate:.0} canary requests/s — an outside controller polling every {}s would have let about {:.0} through; {failed} failed otherwise of {} requests; last canary answer {} ms after both nodes showed weight 0; reason: {}",
        late(decided),
        late(zero_ms[0].unwrap_or(0)),
        late(zero_ms[1].unwrap_or(0)),
        POLL.as_secs(),
        canary_rate * POLL.as_secs_f64(),
        seen.sent.load(Ordering::SeqCst),
        after_rollback,
        last["reason"].as_str().unwrap_or_default(),
    );
    drop(procs_held);
    Ok(Verdict { line, failed })
}
