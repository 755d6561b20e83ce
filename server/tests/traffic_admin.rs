//! Routes changed through the admin API: a blue-green switch and back under steady load fails
//! no request on any node; a split's weights set on one node reach every node sharing the
//! Redis, survive a reload and reach a node started later, until a reset returns the route to
//! its config; every bad change is refused saying what was wrong. Loopback only, with a
//! private `redis-server`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::*;

/// Blue (backends blue-1, blue-2), green (green-1) and a route `/` between them: `route`.
fn config(
    redis: Option<&RedisServer>,
    bs: &[TestBackend],
    gs: &[TestBackend],
    route: &str,
) -> String {
    let none = "health = { kind = \"none\" }";
    let store = redis.map_or(String::new(), |r| {
        format!(
            "[sessions]\nstore = \"redis\"\nredis_url = \"{}\"\n",
            r.url()
        )
    });
    format!(
        "{store}[[routes]]\nid = \"live\"\npath_prefix = \"/\"\n{route}\nrate_limit = {{ per_ip = 0 }}\n{}{}",
        pool_with("blue", "round_robin", bs, none),
        pool_with("green", "round_robin", gs, none),
    )
}

fn node(text: &str) -> switchyard::RouterHandle {
    router_with(&admin_node(), text)
}

const BLUE_GREEN: &str = "pool = \"blue\"\nstandby = \"green\"";

/// The colour of the backend that answered.
fn colour(reply: &Reply) -> &'static str {
    match reply.backend() {
        "blue-1" | "blue-2" => "blue",
        "green-1" => "green",
        other => panic!("answered by {other:?} ({}): {}", reply.status, reply.text()),
    }
}

/// Waits until the node hears the other nodes' admin changes.
async fn hearing(node: &switchyard::RouterHandle) {
    let admin = Client::new(node.admin_addr());
    wait_for(
        "the node hears the cluster channel",
        Duration::from_secs(10),
        async || admin.get("/admin/v1/status").await.json()["cluster"] == true,
    )
    .await;
}

/// Waits until requests through `node` land on `want`.
async fn serves(node: &switchyard::RouterHandle, want: &str) {
    let client = Client::new(node.addr());
    wait_for(
        &format!("{} serves {want}", node.addr()),
        Duration::from_secs(10),
        async || colour(&client.get("/").await) == want,
    )
    .await;
}

/// Requests sent back to back through a node until stopped: which colours answered (live),
/// and at the end how many were sent and which failed.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<[AtomicUsize; 2]>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl Load {
    fn start(node: &switchyard::RouterHandle) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let client = Client::new(node.addr());
        let (flag, counts) = (stop.clone(), seen.clone());
        let task = tokio::spawn(async move {
            let (mut sent, mut failed) = (0, Vec::new());
            while !flag.load(Ordering::SeqCst) {
                let reply = client.get("/").await;
                sent += 1;
                if reply.status != 200 {
                    failed.push(format!("{}: {}", reply.status, reply.text()));
                    continue;
                }
                counts[usize::from(colour(&reply) == "green")].fetch_add(1, Ordering::SeqCst);
            }
            (sent, failed)
        });
        Load { stop, seen, task }
    }

    fn seen(&self, colour: &str) -> usize {
        self.seen[usize::from(colour == "green")].load(Ordering::SeqCst)
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// Waits until every load has seen `more` answers of `colour` beyond what it had seen so far.
async fn every_load_sees(loads: &[Load], colour: &str, more: usize) {
    let from: Vec<usize> = loads.iter().map(|l| l.seen(colour)).collect();
    wait_for(
        &format!("every load gets {more} more answers from {colour}"),
        Duration::from_secs(10),
        async || {
            loads
                .iter()
                .zip(&from)
                .all(|(l, f)| l.seen(colour) >= f + more)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blue_green_switch_and_back_under_steady_load_fails_no_request_on_any_node() {
    let redis = RedisServer::start();
    let (bs, gs) = (
        backends(&["blue-1", "blue-2"]).await,
        backends(&["green-1"]).await,
    );
    let text = config(Some(&redis), &bs, &gs, BLUE_GREEN);
    let (a, b) = (node(&text), node(&text));
    hearing(&a).await;
    hearing(&b).await;
    let loads = [
        Load::start(&a),
        Load::start(&a),
        Load::start(&b),
        Load::start(&b),
    ];
    every_load_sees(&loads, "blue", 5).await;

    // Switch on A (no body: the other colour); A follows at once, B through the channel.
    let switched = admin_post(&a, "/admin/v1/routes/live/switch", "").await;
    assert_eq!(switched.status, 200, "{}", switched.text());
    let view: Value = switched.json();
    assert_eq!(view["active"], "green", "{view}");
    assert_eq!(view["weights_from"], "admin", "{view}");
    assert_eq!(colour(&Client::new(a.addr()).get("/").await), "green");
    every_load_sees(&loads, "green", 5).await;

    // And back, on B, naming the colour.
    let back = admin_post(&b, "/admin/v1/routes/live/switch", "{\"to\": \"blue\"}").await;
    assert_eq!(back.status, 200, "{}", back.text());
    assert_eq!(colour(&Client::new(b.addr()).get("/").await), "blue");
    every_load_sees(&loads, "blue", 5).await;

    // Not one request failed on either node, before, during or after the switches.
    for load in loads {
        let (sent, failed) = load.finish().await;
        assert!(
            failed.is_empty(),
            "{} of {sent} requests failed: {failed:?}",
            failed.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_set_on_one_node_reach_every_node_survive_a_reload_and_a_restart_until_a_reset() {
    let redis = RedisServer::start();
    let (bs, gs) = (
        backends(&["blue-1", "blue-2"]).await,
        backends(&["green-1"]).await,
    );
    let route = "split = [{ pool = \"blue\", weight = 100 }, { pool = \"green\", weight = 0 }]\n\
                 split_by = { header = \"x-user-id\" }";
    let text = config(Some(&redis), &bs, &gs, route);
    let (a, b) = (node(&text), node(&text));
    hearing(&a).await;
    hearing(&b).await;
    serves(&b, "blue").await;

    // Two calls, each naming one pool: green up, then blue down.
    let put = |body: &'static str| {
        let admin = Client::new(a.admin_addr());
        async move {
            let auth = format!("Bearer {ADMIN_TOKEN}");
            let headers = [
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ];
            let reply = admin
                .send(
                    http::Method::PUT,
                    "/admin/v1/routes/live/weights",
                    &headers,
                    bytes::Bytes::from_static(body.as_bytes()),
                )
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            reply.json()
        }
    };
    let view = put("{\"weights\": {\"green\": 100}}").await;
    assert_eq!(
        view["pools"][0]["weight"], 100,
        "blue keeps its weight: {view}"
    );
    let view = put("{\"weights\": {\"blue\": 0}}").await;
    assert_eq!(view["pools"][1]["weight"], 100, "{view}");
    assert_eq!(view["pools"][1]["configured_weight"], 0, "{view}");
    serves(&b, "green").await;

    // A reload of the same file keeps the weights set through the API.
    let config = switchyard::Config::from_toml_str(&format!(
        "[node]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{text}"
    ))
    .unwrap();
    a.reload_async(config).await.expect("the reload applies");
    let client = Client::new(a.addr());
    for user in 0..20 {
        let reply = client
            .get_with("/", &[("x-user-id", &user.to_string())])
            .await;
        assert_eq!(colour(&reply), "green", "the reload undid the weights");
    }

    // A node started now reads them from Redis.
    let c = node(&text);
    serves(&c, "green").await;
    let seen = Client::new(c.admin_addr())
        .get("/admin/v1/routes/live")
        .await
        .json();
    assert_eq!(seen["weights_from"], "admin", "{seen}");
    // The whole weights, not just the last call's pool.
    let weights: Vec<&Value> = seen["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["weight"])
        .collect();
    assert_eq!(weights, [&Value::from(0), &Value::from(100)], "{seen}");

    // A reset on B returns every node to the config.
    let reset = admin_post(&b, "/admin/v1/routes/live/reset", "").await;
    assert_eq!(reset.status, 200, "{}", reset.text());
    assert_eq!(reset.json()["weights_from"], "config");
    serves(&a, "blue").await;
    serves(&c, "blue").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_route_changes_are_refused_saying_what_was_wrong() {
    let (bs, gs) = (
        backends(&["blue-1", "blue-2"]).await,
        backends(&["green-1"]).await,
    );
    let split = "split = [{ pool = \"blue\", weight = 50 }, { pool = \"green\", weight = 50 }]";
    let text = format!(
        "{}[[routes]]\nid = \"one\"\npath_prefix = \"/one\"\npool = \"blue\"\n",
        config(None, &bs, &gs, split)
    );
    let a = node(&text);
    let admin = Client::new(a.admin_addr());
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let put = |path: &'static str, body: &'static str, token: bool| {
        let admin = &admin;
        let auth = auth.clone();
        async move {
            let mut headers = vec![("content-type", "application/json")];
            if token {
                headers.push(("authorization", auth.as_str()));
            }
            admin
                .send(
                    http::Method::PUT,
                    path,
                    &headers,
                    bytes::Bytes::from_static(body.as_bytes()),
                )
                .await
        }
    };
    let weights = "/admin/v1/routes/live/weights";
    for (reply, status, kind, says) in [
        (
            put(weights, "{\"weights\": {\"blue\": 1}}", false).await,
            401,
            "unauthorized",
            "",
        ),
        (
            put(
                "/admin/v1/routes/nope/weights",
                "{\"weights\": {\"blue\": 1}}",
                true,
            )
            .await,
            404,
            "unknown_route",
            "\"nope\"",
        ),
        (
            put(
                "/admin/v1/routes/one/weights",
                "{\"weights\": {\"blue\": 1}}",
                true,
            )
            .await,
            409,
            "single_pool",
            "sends to one pool",
        ),
        (
            put(weights, "{\"weights\": {\"purple\": 1}}", true).await,
            400,
            "bad_request",
            "`weights.purple`",
        ),
        (
            put(weights, "{\"weights\": {\"blue\": 0, \"green\": 0}}", true).await,
            400,
            "bad_request",
            "every weight would be 0",
        ),
        (
            put(weights, "{\"weights\": {\"blue\": -1}}", true).await,
            400,
            "bad_request",
            "`weights.blue`",
        ),
        (
            put(weights, "{\"weights\": {\"blue\": 1000001}}", true).await,
            400,
            "bad_request",
            "more than 1000000",
        ),
        (
            put(weights, "{\"weights\": {}}", true).await,
            400,
            "bad_request",
            "name at least one pool",
        ),
        (
            put(weights, "", true).await,
            400,
            "bad_request",
            "is required",
        ),
        (
            admin_post(&a, "/admin/v1/routes/live/switch", "{\"to\": \"purple\"}").await,
            400,
            "bad_request",
            "`to`",
        ),
        (
            admin_post(&a, "/admin/v1/routes/live/switch", "").await,
            400,
            "bad_request",
            "name the pool to switch to",
        ),
        (
            admin_post(&a, "/admin/v1/routes/one/reset", "").await,
            409,
            "single_pool",
            "sends to one pool",
        ),
        (
            admin_post(&a, "/admin/v1/routes/one/switch", "").await,
            409,
            "single_pool",
            "sends to one pool",
        ),
    ] {
        let body: Value = reply.json();
        assert_eq!(
            (reply.status, body["error"].as_str()),
            (status, Some(kind)),
            "{body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "`{says}` not in {body}"
        );
    }
    // Nothing changed: the split is still the config's, and both pools serve.
    let view = admin.get("/admin/v1/routes/live").await.json();
    assert_eq!(view["weights_from"], "config", "{view}");
    let client = Client::new(a.addr());
    let mut seen = [0; 2];
    for _ in 0..40 {
        seen[usize::from(colour(&client.get("/").await) == "green")] += 1;
    }
    assert!(
        seen[0] > 0 && seen[1] > 0,
        "a refused change moved traffic: {seen:?}"
    );
    // Each pool's outcomes: the requests just sent, none failed, a p99.
    let view = admin.get("/admin/v1/routes/live").await.json();
    let pools = view["pools"].as_array().unwrap();
    for (pool, sent) in pools.iter().zip(seen) {
        assert_eq!(pool["requests"], sent, "{view}");
        assert_eq!(pool["errors"], 0, "{view}");
        assert!(pool["p99_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{view}");
    }
    // Routes are listed with their pools.
    let all = admin.get("/admin/v1/routes").await.json();
    let ids: Vec<&str> = all["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["one", "live"], "routes in match order");
}
