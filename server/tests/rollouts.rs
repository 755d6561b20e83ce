//! Canary rollouts that decide for themselves: a canary failing 5 % of its requests is rolled
//! back on every node before it reaches 25 %, saying why with the numbers; a healthy one is
//! promoted to 100 %; one twice as slow in its tail is rolled back; the deciding node is
//! killed mid-rollout and another takes over; Redis out holds the step and says so; an
//! operator's pause, resume, promote and rollback, and every bad start, refused naming what
//! was wrong. Real test backends whose error rate and latency the tests set, a private
//! `redis-server`, two router nodes; loopback only.

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::*;

/// Pools `v1` (backends v1-a, v1-b) and `v2` (v2-a), and a route `live` on `v1` alone: a
/// rollout needs no split in the config.
fn config(redis: Option<&RedisServer>, v1: &[TestBackend], v2: &[TestBackend]) -> String {
    let none = "health = { kind = \"none\" }";
    let store = redis.map_or(String::new(), |r| {
        format!(
            "[sessions]\nstore = \"redis\"\nredis_url = \"{}\"\n",
            r.url()
        )
    });
    format!(
        "{store}[[routes]]\nid = \"live\"\npath_prefix = \"/\"\npool = \"v1\"\nrate_limit = {{ per_ip = 0 }}\n{}{}",
        pool_with("v1", "round_robin", v1, none),
        pool_with("v2", "round_robin", v2, none),
    )
}

async fn pools() -> (Vec<TestBackend>, Vec<TestBackend>) {
    (backends(&["v1-a", "v1-b"]).await, backends(&["v2-a"]).await)
}

fn node(text: &str) -> switchyard::RouterHandle {
    router_with(&admin_node(), text)
}

/// Waits until node `admin` has read the rollouts from its ledger (Redis connected).
async fn ledger_read(admin: SocketAddr) {
    wait_for(
        &format!("{admin} reads the rollouts"),
        Duration::from_secs(15),
        async || {
            let list = Client::new(admin).get("/admin/v1/rollouts").await.json();
            list["read_ms_ago"].is_u64() && list["held"].is_null()
        },
    )
    .await;
}

/// Starts a rollout through `admin`; panics unless it is created.
async fn start(admin: SocketAddr, body: &str) -> Value {
    ledger_read(admin).await;
    let reply = post(admin, "/admin/v1/rollouts", body).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()
}

async fn post(admin: SocketAddr, path: &str, body: &str) -> Reply {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    Client::new(admin)
        .send(
            http::Method::POST,
            path,
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            bytes::Bytes::copy_from_slice(body.as_bytes()),
        )
        .await
}

/// The rollout as node `admin` shows it; `Null` until the node has read it (another node's
/// start reaches it within a tick).
async fn rollout(admin: SocketAddr, id: &str) -> Value {
    let reply = Client::new(admin)
        .get(&format!("/admin/v1/rollouts/{id}"))
        .await;
    match reply.status {
        200 => reply.json(),
        404 => Value::Null,
        _ => panic!("GET rollout {id}: {}", reply.text()),
    }
}

/// Waits until the rollout's phase on `admin` is `phase`; returns the rollout then.
async fn reaches(admin: SocketAddr, id: &str, phase: &str, within: Duration) -> Value {
    let mut last = Value::Null;
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        last = rollout(admin, id).await;
        if last["phase"] == phase {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("rollout {id} did not become {phase} within {within:?} on {admin}: {last:#}");
}

/// The weight of `pool` on route `live`, as node `admin` applies it.
async fn weight(admin: SocketAddr, pool: &str) -> u64 {
    let view = Client::new(admin).get("/admin/v1/routes/live").await.json();
    view["pools"]
        .as_array()
        .and_then(|pools| pools.iter().find(|p| p["pool"] == pool))
        .and_then(|p| p["weight"].as_u64())
        .unwrap_or(0)
}

/// Requests sent back to back through a node by a few clients until stopped, each without a
/// session token (so each is assigned afresh by the split's weights): answers per pool, and
/// how many failed.
struct Load {
    stop: Arc<AtomicBool>,
    v1: Arc<AtomicUsize>,
    v2: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (v1, v2, failed) = Default::default();
        let mut load = Load {
            stop,
            v1,
            v2,
            failed,
            tasks: Vec::new(),
        };
        for _ in 0..clients {
            let client = Client::new(addr);
            let (stop, v1, v2, failed) = (
                load.stop.clone(),
                load.v1.clone(),
                load.v2.clone(),
                load.failed.clone(),
            );
            load.tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let reply = client.get("/").await;
                    if reply.status >= 500 {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                    let pool = if reply.backend().starts_with("v2") {
                        &v2
                    } else {
                        &v1
                    };
                    pool.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        load
    }

    fn on(&self, pool: &str) -> usize {
        match pool {
            "v2" => self.v2.load(Ordering::SeqCst),
            _ => self.v1.load(Ordering::SeqCst),
        }
    }

    async fn finish(self) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// The largest canary share a rollout's history ever shows.
fn highest_percent(rollout: &Value) -> f64 {
    rollout["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["percent"].as_f64())
        .fold(0.0, f64::max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_failing_five_percent_is_rolled_back_on_every_node_before_25_percent_saying_why() {
    let redis = RedisServer::start();
    let (v1, v2) = pools().await;
    v2[0].set_fail_every(503, 20);
    let text = config(Some(&redis), &v1, &v2);
    let (a, b) = (node(&text), node(&text));
    let loads = [Load::start(a.addr(), 3), Load::start(b.addr(), 3)];

    let started = start(
        a.admin_addr(),
        r#"{"route": "live", "baseline": "v1", "canary": "v2", "steps": [10, 25, 50, 100], "hold": "1s", "min_requests": 100}"#,
    )
    .await;
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(started["phase"], "running", "{started:#}");
    assert_eq!(started["percent"], 10.0, "{started:#}");

    let done = reaches(b.admin_addr(), &id, "rolled_back", Duration::from_secs(60)).await;
    let last = done["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "rollback", "{done:#}");
    assert_eq!(last["by"], "controller", "{done:#}");
    let reason = last["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("canary error rate ") && reason.contains("> baseline 0.00 %"),
        "the rollback says why with the numbers: {reason}"
    );
    let canary = &last["judgement"]["canary"];
    assert!(
        canary["requests"].as_u64().unwrap() >= 100 && canary["errors"].as_u64().unwrap() >= 4,
        "judged on the step's window of at least 100 canary requests: {last:#}"
    );
    assert!(
        highest_percent(&done) < 25.0,
        "the canary never reached 25 %: {done:#}"
    );

    // Both nodes apply 0 % to the canary, and the route sends to the baseline only.
    for admin in [a.admin_addr(), b.admin_addr()] {
        wait_for(
            &format!("{admin} gives the canary no weight"),
            Duration::from_secs(10),
            async || weight(admin, "v2").await == 0,
        )
        .await;
    }
    let before: Vec<usize> = loads.iter().map(|l| l.on("v2")).collect();
    let more: Vec<usize> = loads.iter().map(|l| l.on("v1") + 200).collect();
    wait_for(
        "200 more answers on each node",
        Duration::from_secs(20),
        async || loads.iter().zip(&more).all(|(l, m)| l.on("v1") >= *m),
    )
    .await;
    let after: Vec<usize> = loads.iter().map(|l| l.on("v2")).collect();
    assert_eq!(
        before, after,
        "no request reaches the canary after the rollback"
    );
    // One decision, taken by one node: once in the history, and counted (the metrics are
    // this test process's, shared by every router in it).
    let rollbacks = done["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == "rollback")
        .count();
    assert_eq!(rollbacks, 1, "{done:#}");
    let series =
        "switchyard_rollout_decisions_total{route=\"live\",action=\"rollback\",by=\"controller\"}";
    assert!(metric(&a, series).await >= 1.0, "the rollback is counted");

    // The canary, fixed, rolled out again: judged on its own requests, not on the errors the
    // route counted during the first rollout — so it goes all the way.
    v2[0].set_fail_status(None);
    let again = start(
        b.admin_addr(),
        r#"{"route": "live", "baseline": "v1", "canary": "v2", "steps": [10, 50, 100], "hold": "1s", "min_requests": 100, "thresholds": {"latency_margin_ms": 50}}"#,
    )
    .await;
    assert_ne!(
        again["id"],
        id.as_str(),
        "a new rollout replaces the finished one"
    );
    let second = again["id"].as_str().unwrap();
    let done = reaches(a.admin_addr(), second, "promoted", Duration::from_secs(60)).await;
    assert!(
        done["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["action"] != "rollback"),
        "{done:#}"
    );
    for load in loads {
        load.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_to_100_percent_on_every_node() {
    let redis = RedisServer::start();
    let (v1, v2) = pools().await;
    let text = config(Some(&redis), &v1, &v2);
    let (a, b) = (node(&text), node(&text));
    let loads = [Load::start(a.addr(), 3), Load::start(b.addr(), 3)];

    let id = start(
        b.admin_addr(),
        r#"{"route": "live", "baseline": "v1", "canary": "v2", "steps": [20, 50, 100], "hold": "1s", "min_requests": 50, "thresholds": {"latency_margin_ms": 50}}"#,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = reaches(a.admin_addr(), &id, "promoted", Duration::from_secs(60)).await;
    let actions: Vec<&str> = done["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["start", "advance", "promote"], "{done:#}");
    assert_eq!(done["percent"], 100.0);
    let advance = &done["history"][1];
    assert!(
        advance["reason"]
            .as_str()
            .unwrap()
            .starts_with("canary error rate 0.00 % ≤ 0.50 % (baseline 0.00 %); p99 "),
        "{advance:#}"
    );

    for admin in [a.admin_addr(), b.admin_addr()] {
        wait_for(
            &format!("{admin} sends everything to the canary"),
            Duration::from_secs(10),
            async || weight(admin, "v1").await == 0 && weight(admin, "v2").await > 0,
        )
        .await;
    }
    for addr in [a.addr(), b.addr()] {
        for _ in 0..20 {
            let reply = Client::new(addr).get("/").await;
            assert_eq!(reply.backend(), "v2-a", "served by the promoted canary");
        }
    }
    for load in loads {
        load.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_twice_as_slow_in_its_tail_is_rolled_back_on_latency() {
    let redis = RedisServer::start();
    let (v1, v2) = pools().await;
    for b in &v1 {
        b.set_delay(Duration::from_millis(10));
    }
    v2[0].set_delay(Duration::from_millis(20));
    let text = config(Some(&redis), &v1, &v2);
    let a = node(&text);
    let load = Load::start(a.addr(), 8);

    let id = start(
        a.admin_addr(),
        r#"{"route": "live", "baseline": "v1", "canary": "v2", "steps": [50, 100], "hold": "30s", "min_requests": 100}"#,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = reaches(a.admin_addr(), &id, "rolled_back", Duration::from_secs(60)).await;
    let last = done["history"].as_array().unwrap().last().unwrap().clone();
    let reason = last["reason"].as_str().unwrap();
    assert!(reason.starts_with("canary p99 "), "{reason}");
    let (c, b) = (
        last["judgement"]["canary"]["p99_ms"].as_f64().unwrap(),
        last["judgement"]["baseline"]["p99_ms"].as_f64().unwrap(),
    );
    assert!(c > b * 1.25, "canary p99 {c} ms against baseline {b} ms");
    load.finish().await;
}

async fn serve(text: &str) -> Served {
    Served::start(
        |listen, admin| {
            format!(
                "[node]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = 1\n{}\n{text}",
                admin_node()
            )
        },
        |cmd| {
            cmd.stdout(Stdio::null());
        },
    )
    .await
}

async fn deciding(admin: SocketAddr) -> bool {
    Client::new(admin).get("/admin/v1/rollouts").await.json()["deciding"] == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deciding_node_killed_mid_rollout_hands_over_and_the_rollout_goes_on() {
    let redis = RedisServer::start();
    let (v1, v2) = pools().await;
    let text = config(Some(&redis), &v1, &v2);
    // The process starts first, so it takes the lease; the in-process node waits for it.
    let mut doomed = Some(serve(&text).await);
    let first = doomed.as_ref().unwrap().admin;
    wait_for(
        "the first node decides",
        Duration::from_secs(10),
        async || deciding(first).await,
    )
    .await;
    let survivor = node(&text);
    let load = Load::start(survivor.addr(), 3);
    let other = Load::start(doomed.as_ref().unwrap().listen, 2);

    let id = start(
        first,
        r#"{"route": "live", "baseline": "v1", "canary": "v2", "steps": [10, 30, 60, 100], "hold": "1s", "min_requests": 40, "thresholds": {"latency_margin_ms": 50}}"#,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(
        "the first node advances the rollout once",
        Duration::from_secs(30),
        async || rollout(survivor.admin_addr(), &id).await["step"] == 1,
    )
    .await;
    assert!(
        !deciding(survivor.admin_addr()).await,
        "one node decides at a time"
    );

    // SIGKILL: the lease is never given back; it expires.
    other.finish().await;
    drop(doomed.take());
    wait_for(
        "the surviving node takes the lease",
        Duration::from_secs(15),
        async || deciding(survivor.admin_addr()).await,
    )
    .await;
    let done = reaches(
        survivor.admin_addr(),
        &id,
        "promoted",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(done["percent"], 100.0, "{done:#}");
    load.finish().await;

    // A node started now (a restart) picks the rollout up from Redis and applies its weights.
    let late = node(&text);
    wait_for(
        "a node started after the rollout sends everything to the canary",
        Duration::from_secs(10),
        async || {
            weight(late.admin_addr(), "v1").await == 0
                && Client::new(late.addr()).get("/").await.backend() == "v2-a"
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_out_a_rollout_holds_its_step_says_why_and_goes_on_when_it_is_back() {
    let redis = RedisServer::start();
    let (v1, v2) = pools().await;
    let text = config(Some(&redis), &v1, &v2);
    let a = node(&text);
    let load = Load::start(a.addr(), 3);
    let id = start(
        a.admin_addr(),
        r#"{"route": "live", "baseline": "v1", "canary": "v2", "steps": [10, 50, 100], "hold": "2s", "min_requests": 30, "thresholds": {"latency_margin_ms": 50}}"#,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for(
        "the canary takes its 10 %",
        Duration::from_secs(10),
        async || weight(a.admin_addr(), "v2").await == 100_000,
    )
    .await;

    redis.pause();
    let held = wait_for_held(a.admin_addr(), &id).await;
    assert!(held.contains("holds its step"), "{held}");
    let step = rollout(a.admin_addr(), &id).await["step"].clone();
    // Hold well past the step's hold, with traffic: no step is taken blind, and the node
    // keeps the weights it applied.
    let more = load.on("v1") + 300;
    wait_for(
        "300 more requests while Redis is out",
        Duration::from_secs(20),
        async || load.on("v1") >= more,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = rollout(a.admin_addr(), &id).await;
    assert_eq!(now["step"], step, "no step while Redis is out: {now:#}");
    assert_eq!(now["phase"], "running", "{now:#}");
    assert_eq!(weight(a.admin_addr(), "v2").await, 100_000);

    redis.resume();
    reaches(a.admin_addr(), &id, "promoted", Duration::from_secs(60)).await;
    load.finish().await;
}

async fn wait_for_held(admin: SocketAddr, id: &str) -> String {
    let mut held = String::new();
    wait_for(
        "the status says why the rollout holds",
        Duration::from_secs(15),
        async || {
            held = rollout(admin, id).await["held"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            !held.is_empty()
        },
    )
    .await;
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_pauses_resumes_promotes_and_rolls_back_and_bad_starts_say_what_was_wrong() {
    let (v1, v2) = pools().await;
    let a = node(&config(None, &v1, &v2));
    let admin = a.admin_addr();

    for (body, status, says) in [
        (
            r#"{"route": "nope", "baseline": "v1", "canary": "v2"}"#,
            400,
            "field `route`: no route \"nope\"",
        ),
        (
            r#"{"route": "live", "baseline": "v2", "canary": "v1"}"#,
            400,
            "field `baseline`: route \"live\" does not send to pool \"v2\"",
        ),
        (
            r#"{"route": "live", "baseline": "v1", "canary": "v9"}"#,
            400,
            "field `canary`: no pool \"v9\"",
        ),
        (
            r#"{"route": "live", "baseline": "v1", "canary": "v1"}"#,
            400,
            "field `canary`",
        ),
        (
            r#"{"route": "live", "baseline": "v1", "canary": "v2", "steps": [10, 5]}"#,
            400,
            "field `steps[1]`: 5 does not increase",
        ),
        (
            r#"{"route": "live", "baseline": "v1", "canary": "v2", "steps": [50, 120]}"#,
            400,
            "field `steps[1]`: 120 is not a percent in (0, 100]",
        ),
        (
            r#"{"route": "live", "baseline": "v1", "canary": "v2", "thresholds": {"latency_ratio": 0.5}}"#,
            400,
            "field `thresholds.latency_ratio`",
        ),
        (
            r#"{"route": "live", "baseline": "v1", "canary": "v2", "min_requests": 0}"#,
            400,
            "field `min_requests`",
        ),
        (
            r#"{"route": "live", "baseline": "v1", "canary": "v2", "hold": "soon"}"#,
            400,
            "hold",
        ),
        (
            r#"{"route": "live", "baseline": "v1", "canary": "v2", "speed": 3}"#,
            400,
            "speed",
        ),
    ] {
        let reply = post(admin, "/admin/v1/rollouts", body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text());
        let message = reply.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.contains(says),
            "{body}: {message:?} does not say {says:?}"
        );
    }
    let unauthorised = Client::new(admin)
        .send(
            http::Method::POST,
            "/admin/v1/rollouts",
            &[("content-type", "application/json")],
            bytes::Bytes::from_static(br#"{"route": "live", "baseline": "v1", "canary": "v2"}"#),
        )
        .await;
    assert_eq!(unauthorised.status, 401);

    // Default plan: 1 % first, a minute's hold, 200 requests.
    let first = start(
        admin,
        r#"{"route": "live", "baseline": "v1", "canary": "v2"}"#,
    )
    .await;
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(
        first["steps"],
        serde_json::json!([1.0, 5.0, 10.0, 25.0, 50.0, 100.0])
    );
    assert_eq!(
        (first["hold_s"].as_f64(), first["min_requests"].as_u64()),
        (Some(60.0), Some(200))
    );
    assert_eq!(first["weights"]["v2"], 10_000, "{first:#}");
    wait_for(
        "the route takes the rollout's weights",
        Duration::from_secs(10),
        async || weight(admin, "v2").await == 10_000,
    )
    .await;
    // A reload keeps the route's canary and the rollout's weights.
    let reloaded = a
        .reload_async(switchyard::Config::from_toml_str(&format!(
            "[node]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = 1\nshutdown_timeout = \"1s\"\n{}\n[log]\naccess = false\n\n{}",
            admin_node(),
            config(None, &v1, &v2)
        ))
        .unwrap())
        .await;
    assert!(reloaded.is_ok(), "{reloaded:?}");
    assert_eq!(
        weight(admin, "v2").await,
        10_000,
        "the reload kept the rollout's weights"
    );
    assert_eq!(
        Client::new(admin).get("/admin/v1/routes/live").await.json()["weights_from"],
        "rollout"
    );

    let again = post(
        admin,
        "/admin/v1/rollouts",
        r#"{"route": "live", "baseline": "v1", "canary": "v2"}"#,
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.text());
    assert_eq!(again.json()["rollout"], id.as_str());
    let weights = Client::new(admin)
        .send(
            http::Method::PUT,
            "/admin/v1/routes/live/weights",
            &[
                ("authorization", &format!("Bearer {ADMIN_TOKEN}")),
                ("content-type", "application/json"),
            ],
            bytes::Bytes::from_static(br#"{"weights": {"v2": 5}}"#),
        )
        .await;
    assert_eq!(
        weights.status,
        409,
        "a route under a rollout is the rollout's to weigh: {}",
        weights.text()
    );
    assert_eq!(weights.json()["rollout"], id.as_str());

    let step = |path: &'static str| {
        let id = id.clone();
        async move { post(admin, &format!("/admin/v1/rollouts/{id}/{path}"), "").await }
    };
    let paused = step("pause").await;
    assert_eq!(
        (paused.status, paused.json()["phase"].clone()),
        (200, "paused".into())
    );
    assert_eq!(step("pause").await.status, 409, "pausing twice");
    assert_eq!(step("resume").await.json()["phase"], "running");
    let promoted = step("promote").await.json();
    assert_eq!(
        (promoted["phase"].clone(), promoted["percent"].clone()),
        ("promoted".into(), 100.0.into())
    );
    wait_for(
        "the route sends everything to the canary",
        Duration::from_secs(10),
        async || Client::new(a.addr()).get("/").await.backend() == "v2-a",
    )
    .await;
    let late = step("rollback").await;
    assert_eq!(
        late.status,
        409,
        "a promoted rollout is done: {}",
        late.text()
    );
    assert!(
        late.json()["message"]
            .as_str()
            .unwrap()
            .contains("is promoted")
    );
    assert_eq!(
        post(admin, "/admin/v1/rollouts/ro-nope/pause", "")
            .await
            .status,
        404
    );

    // A new rollout replaces the finished one — here back to v1, as a canary of its own —
    // and a rollback returns its canary to 0.
    let second = start(
        admin,
        r#"{"route": "live", "baseline": "v2", "canary": "v1", "steps": [50]}"#,
    )
    .await;
    let id2 = second["id"].as_str().unwrap();
    assert_ne!(id2, id);
    let back = post(admin, &format!("/admin/v1/rollouts/{id2}/rollback"), "")
        .await
        .json();
    assert_eq!(
        (back["phase"].clone(), back["percent"].clone()),
        ("rolled_back".into(), 0.0.into())
    );
    let history: Vec<&str> = back["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["by"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["admin", "admin"]);
    wait_for(
        "the route sends to the baseline (v2) only",
        Duration::from_secs(10),
        async || weight(admin, "v1").await == 0 && weight(admin, "v2").await > 0,
    )
    .await;

    // A reset forgets the finished rollout and returns the route to its config: one pool.
    let reset = post(admin, "/admin/v1/routes/live/reset", "").await;
    assert_eq!(reset.status, 200, "{}", reset.text());
    wait_for(
        "the route has its config's one pool again",
        Duration::from_secs(10),
        async || {
            Client::new(admin).get("/admin/v1/routes/live").await.json()["pools"]
                .as_array()
                .map(Vec::len)
                == Some(1)
        },
    )
    .await;
    assert_eq!(
        Client::new(a.addr()).get("/").await.backend().get(..2),
        Some("v1")
    );
    let listed = Client::new(admin).get("/admin/v1/rollouts").await.json();
    assert_eq!(listed["rollouts"], serde_json::json!([]), "{listed:#}");
    assert_eq!(
        listed["shared"], false,
        "without Redis a rollout lives on its node"
    );
}
