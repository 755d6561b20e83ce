//! The admin API as operators use it: the token guards every change (checked first), bad
//! bodies are refused with the field named, and a drain moves a backend's WebSocket sessions
//! away with `4001`, spread over the window, while in-flight requests finish and nothing new
//! lands on it; undrain brings it back.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "an-admin-token-for-tests";

/// The `[node]` keys giving a router the test token (from a file, as operators would).
fn token_node() -> String {
    let path = std::env::temp_dir().join(format!(
        "switchyard-admin-token-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    format!("admin_token_file = \"{}\"", path.display())
}

fn ws_pool(bs: &[TestBackend]) -> String {
    format!(
        "{}{}{}",
        route("ws", "/ws", "ws"),
        route("api", "/", "ws"),
        pool_with(
            "ws",
            "least_connections",
            bs,
            "health = { kind = \"none\" }"
        )
    )
}

/// The admin API of one router, with or without the token.
struct Admin {
    client: Client,
}

impl Admin {
    fn of(r: &switchyard::RouterHandle) -> Admin {
        Admin {
            client: Client::new(r.admin_addr()),
        }
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> Reply {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("authorization", auth.as_str()));
        }
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        self.client
            .send(method, path, &headers, Bytes::from(body.to_string()))
            .await
    }

    async fn post(&self, path: &str, body: &str) -> Reply {
        self.call("POST", path, Some(TOKEN), body).await
    }

    async fn state(&self, backend: &str) -> String {
        let reply = self
            .client
            .get(&format!("/admin/v1/backends/{backend}"))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()["state"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn changes_need_the_token_and_it_is_checked_before_anything_else() {
    let bs = backends(&["a1", "a2"]).await;
    let r = router_with(&token_node(), &ws_pool(&bs));
    let admin = Admin::of(&r);
    // No token: 401, even for a backend that does not exist.
    for path in [
        "/admin/v1/backends/a1/drain",
        "/admin/v1/backends/nope/drain",
    ] {
        let reply = admin.call("POST", path, None, "{}").await;
        assert_eq!(reply.status, 401, "{path}: {}", reply.text());
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert_eq!(reply.json()["error"], "unauthorized");
    }
    // A wrong token: 403.
    let reply = admin
        .call(
            "POST",
            "/admin/v1/backends/a1/drain",
            Some("not-the-token-at-all"),
            "{}",
        )
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    // Reads need none.
    let reply = admin.client.get("/admin/v1/backends").await;
    assert_eq!(reply.status, 200);
    let ids: Vec<_> = reply.json()["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["a1", "a2"]);
    let status = admin.client.get("/admin/v1/status").await.json();
    assert_eq!(
        (status["backends"].as_u64(), status["ready"].as_bool()),
        (Some(2), Some(true))
    );
    // With the token, an unknown backend is 404 and says which.
    let reply = admin.post("/admin/v1/backends/nope/drain", "{}").await;
    assert_eq!(reply.status, 404);
    assert!(reply.json()["message"].as_str().unwrap().contains("nope"));
}

#[tokio::test]
async fn the_token_check_says_valid_or_not_and_each_backend_shows_its_recent_figures() {
    let bs = backends(&["a1", "a2"]).await;
    let r = router_with(&token_node(), &ws_pool(&bs));
    let admin = Admin::of(&r);
    let check = |token: Option<&'static str>| admin.call("POST", "/admin/v1/auth", token, "");
    let right = check(Some(TOKEN)).await;
    assert_eq!(
        (right.status, right.json()["valid"].clone()),
        (200, true.into())
    );
    let wrong = check(Some("not-the-token-at-all")).await;
    assert_eq!(
        (wrong.status, wrong.json()["valid"].clone()),
        (200, false.into())
    );
    assert_eq!(wrong.json()["error"], "forbidden");
    let none = check(None).await;
    assert_eq!(
        (none.status, none.json()["error"].clone()),
        (401, "unauthorized".into())
    );

    // 20 answers through the pool, a quarter of them 500s: each backend's figures show them.
    let client = Client::new(r.addr());
    for i in 0..20 {
        let path = if i % 4 == 0 {
            "/ws/x?status=500"
        } else {
            "/ws/x"
        };
        client.get(path).await;
    }
    let all = admin.client.get("/admin/v1/backends").await.json();
    let backends = all["backends"].as_array().unwrap();
    let rps: f64 = backends.iter().map(|b| b["rps"].as_f64().unwrap()).sum();
    assert!(rps > 0.0, "{all:#}");
    for b in backends {
        assert!(b["recent_s"].as_f64().unwrap() <= 11.0, "{b:#}");
        let rate = b["error_rate"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&rate), "{b:#}");
    }
    // Whichever backends took them, 5 of the 20 failed.
    let answered: Vec<&serde_json::Value> = backends
        .iter()
        .filter(|b| b["p99_ms"].is_number())
        .collect();
    assert!(!answered.is_empty(), "{all:#}");
    assert!(
        answered
            .iter()
            .any(|b| b["error_rate"].as_f64().unwrap() > 0.0),
        "the 500s show in an error rate: {all:#}"
    );
}

#[tokio::test]
async fn without_a_configured_token_the_admin_api_is_read_only() {
    let bs = backends(&["a1"]).await;
    let r = router(&ws_pool(&bs));
    let admin = Admin::of(&r);
    let reply = admin.post("/admin/v1/backends/a1/drain", "{}").await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("read-only")
    );
    assert_eq!(admin.state("a1").await, "up");
}

#[tokio::test]
async fn bad_bodies_are_refused_with_the_field_named() {
    let bs = backends(&["a1", "a2"]).await;
    let r = router_with(&token_node(), &ws_pool(&bs));
    let admin = Admin::of(&r);
    let drain = "/admin/v1/backends/a1/drain";
    for (body, expect) in [
        ("{\"deadline_s\": ", "malformed JSON"),
        ("{\"deadline_s\": \"soon\"}", "field `deadline_s`"),
        ("{\"deadline_s\": -5}", "field `deadline_s`"),
        ("{\"deadline_s\": 1e9}", "field `deadline_s`"),
        ("{\"deadline_s\": 10, \"spread_s\": 20}", "field `spread_s`"),
        ("{\"deadline\": 10}", "unknown field `deadline`"),
    ] {
        let reply = admin.post(drain, body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        let message = reply.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains(expect), "{body}: {message}");
    }
    let reply = admin
        .call(
            "PUT",
            "/admin/v1/backends/a1/weight",
            Some(TOKEN),
            "{\"weight\": 0}",
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let huge = format!(
        "{{\"deadline_s\": 10, \"pad\": \"{}\"}}",
        "x".repeat(20_000)
    );
    assert_eq!(admin.post(drain, &huge).await.status, 413);
    // The refusal closes that connection (its body was not read): a fresh client goes on.
    let admin = Admin::of(&r);
    assert_eq!(admin.state("a1").await, "up", "nothing applied");

    // Weight changes apply; a drain twice is the same drain.
    let reply = admin
        .call(
            "PUT",
            "/admin/v1/backends/a2/weight",
            Some(TOKEN),
            "{\"weight\": 7}",
        )
        .await;
    assert_eq!(
        (reply.status, reply.json()["weight"].as_u64()),
        (200, Some(7))
    );
    for _ in 0..2 {
        let reply = admin
            .post(drain, "{\"deadline_s\": 5, \"spread_s\": 0}")
            .await;
        assert_eq!(reply.status, 202, "{}", reply.text());
        let state = reply.json()["state"].as_str().unwrap().to_string();
        assert!(state.starts_with("drain"), "{state}");
    }
    // Nothing on it: drained within a review or two.
    let deadline = Instant::now() + Duration::from_secs(5);
    while admin.state("a1").await != "drained" {
        assert!(
            Instant::now() < deadline,
            "an empty backend never showed drained"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_moves_every_session_with_4001_spread_out_and_lets_requests_finish() {
    let bs = backends(&["d1", "d2"]).await;
    // One test client holds all the sessions: the per-address cap is off on purpose.
    let r = router_with(
        &token_node(),
        &format!("[limits]\nmax_connections_per_ip = 0\n{}", ws_pool(&bs)),
    );
    let admin = Admin::of(&r);
    // 1,000 live sessions, spread over both backends by least connections.
    let mut sessions = Vec::new();
    for _ in 0..1000 {
        let (ws, answer) = connect(r.addr(), &[]).await;
        let backend = answer.headers()["x-backend-id"]
            .to_str()
            .unwrap()
            .to_string();
        sessions.push((backend, ws));
    }
    let on_d1 = sessions.iter().filter(|(b, _)| b == "d1").count();
    assert!((450..=550).contains(&on_d1), "{on_d1} of 1000 on d1");
    // Requests in flight when the drain starts: enough of them that least connections puts
    // some on d1 whatever the sessions' split.
    let client = Client::new(r.addr());
    let in_flight: Vec<_> = (0..on_d1.abs_diff(1000 - on_d1) + 20)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.get("/slow?delay_ms=1500").await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let reply = admin
        .post(
            "/admin/v1/backends/d1/drain",
            "{\"deadline_s\": 20, \"spread_s\": 2}",
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(reply.json()["state"], "draining");

    // Every session on d1 gets 4001; sessions on d2 are left alone.
    let (on_drained, others): (Vec<_>, Vec<_>) = sessions.into_iter().partition(|(b, _)| b == "d1");
    let closes =
        futures_util::future::join_all(on_drained.into_iter().map(|(_, mut ws)| async move {
            let msg = next(&mut ws).await;
            (msg, started.elapsed())
        }))
        .await;
    let mut times = Vec::new();
    for (msg, at) in closes {
        match msg {
            Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 4001);
                let fields = moved_fields(&frame.reason);
                assert_eq!(fields["delivered"], "0", "{}", frame.reason);
                assert_eq!(fields["cause"], "drain", "{}", frame.reason);
            }
            other => panic!("expected close 4001, got {other:?}"),
        }
        times.push(at);
    }
    times.sort();
    let (first, last) = (times[0], times[times.len() - 1]);
    assert!(
        last - first >= Duration::from_millis(1500),
        "closes spread over the 2 s window, not at once: first {first:?}, last {last:?}"
    );
    assert!(
        last < Duration::from_secs(10),
        "all moved well within the deadline: {last:?}"
    );
    // New sessions (the reconnects) all land elsewhere.
    for _ in 0..50 {
        let (_ws, answer) = connect(r.addr(), &[]).await;
        assert_eq!(answer.headers()["x-backend-id"], "d2");
    }
    // The requests in flight finished normally, d1's included.
    let mut finished_on_d1 = 0;
    for request in in_flight {
        let reply = request.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        finished_on_d1 += usize::from(reply.backend() == "d1");
    }
    assert!(finished_on_d1 > 0, "no request was in flight on d1");
    // The kept sessions still work.
    let (_, mut kept) = others.into_iter().next().unwrap();
    futures_util::SinkExt::send(&mut kept, Message::text("still here"))
        .await
        .unwrap();
    assert_eq!(next(&mut kept).await, Message::text("d2: still here"));

    let deadline = Instant::now() + Duration::from_secs(10);
    while admin.state("d1").await != "drained" {
        assert!(Instant::now() < deadline, "d1 never showed drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Undrain: it takes sessions again.
    let reply = admin.post("/admin/v1/backends/d1/undrain", "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(admin.state("d1").await, "up");
    let (_ws, answer) = connect(r.addr(), &[]).await;
    assert_eq!(
        answer.headers()["x-backend-id"],
        "d1",
        "the emptiest backend again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_made_on_one_node_is_obeyed_by_every_node_sharing_the_redis() {
    let redis = RedisServer::start();
    let bs = backends(&["c1", "c2"]).await;
    let body = format!(
        "[sessions]\nstore = \"redis\"\nredis_url = \"{}\"\n{}",
        redis.url(),
        ws_pool(&bs)
    );
    let a = router_with(&token_node(), &body);
    let b = router_with(&token_node(), &body);
    let (admin_a, admin_b) = (Admin::of(&a), Admin::of(&b));
    let hearing = |admin: &Admin| {
        let client = admin.client.clone();
        async move { client.get("/admin/v1/status").await.json()["cluster"] == true }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(hearing(&admin_a).await && hearing(&admin_b).await) {
        assert!(Instant::now() < deadline, "the nodes never subscribed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let reply = admin_a
        .post("/admin/v1/backends/c1/drain", "{\"deadline_s\": 30}")
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !admin_b.state("c1").await.starts_with("drain") {
        assert!(Instant::now() < deadline, "node B never heard of the drain");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Node B places nothing on c1 any more.
    let via_b = Client::new(b.addr());
    for _ in 0..10 {
        assert_eq!(via_b.get("/x").await.backend(), "c2");
    }
    // A node started now learns it from Redis.
    let c = router_with(&token_node(), &body);
    let admin_c = Admin::of(&c);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !admin_c.state("c1").await.starts_with("drain") {
        assert!(
            Instant::now() < deadline,
            "a late node never learned of the drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Undrain on B lifts it everywhere.
    assert_eq!(
        admin_b
            .post("/admin/v1/backends/c1/undrain", "")
            .await
            .status,
        200
    );
    for admin in [&admin_a, &admin_c] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while admin.state("c1").await != "up" {
            assert!(
                Instant::now() < deadline,
                "the undrain did not reach every node"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A `switchyard serve` process whose admin token comes from the environment variable
/// `SWITCHYARD_ADMIN_TOKEN` set to `token`; its admin address.
fn router_with_env_token(
    scratch: &switchyard_load::procs::ScratchDir,
    bs: &[TestBackend],
    token: &str,
) -> (switchyard_load::procs::Proc, std::net::SocketAddr) {
    use switchyard_load::procs;
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], procs::free_port().unwrap()));
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], procs::free_port().unwrap()));
    let config = format!(
        "[node]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = 1\n[log]\naccess = false\n{}",
        ws_pool(bs)
    );
    let path = scratch.write("router.toml", &config).unwrap();
    let bin = procs::workspace_binary("switchyard", "SWITCHYARD_BIN").unwrap();
    let mut proc = procs::Proc::spawn(
        "router",
        std::process::Command::new(bin)
            .env("SWITCHYARD_ADMIN_TOKEN", token)
            .arg("serve")
            .arg("--config")
            .arg(path),
    )
    .unwrap();
    procs::wait_for_port(&mut proc, admin).unwrap();
    (proc, admin)
}

#[tokio::test]
async fn a_token_from_the_environment_shorter_than_a_file_may_hold_is_refused() {
    let bs = backends(&["e1"]).await;
    let scratch = switchyard_load::procs::ScratchDir::new("admin-env-token").unwrap();
    // A one-character token: ignored, so the API stays read-only (403), not open to "x".
    let (_short, admin) = router_with_env_token(&scratch, &bs, "x");
    let client = Client::new(admin);
    let drain = |client: Client, token: &'static str| async move {
        client
            .send(
                http::Method::POST,
                "/admin/v1/backends/e1/drain",
                &[("authorization", &format!("Bearer {token}"))],
                Bytes::from_static(b"{}"),
            )
            .await
    };
    let reply = drain(client, "x").await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(reply.text().contains("read-only"), "{}", reply.text());
    // A token of 16 bytes or more from the environment works.
    let (_long, admin) = router_with_env_token(&scratch, &bs, "sixteen-bytes-or-more");
    let reply = drain(Client::new(admin), "sixteen-bytes-or-more").await;
    assert_eq!(reply.status, 202, "{}", reply.text());
}

/// Every admin path with a method it does not take: `405` with `Allow` naming the ones it
/// does (as HTTP asks, and as Envoy's and HAProxy's users expect), not a `404` that reads as a
/// wrong path. The token is still checked first; reads answer `HEAD` too.
#[tokio::test]
async fn a_method_a_path_does_not_take_is_405_with_allow() {
    let bs = backends(&["a1", "a2"]).await;
    let r = router_with(&token_node(), &ws_pool(&bs));
    let admin = Admin::of(&r);
    let read = "GET, HEAD";
    for (method, path, allow) in [
        ("POST", "/healthz", read),
        ("DELETE", "/readyz", read),
        ("PUT", "/metrics", read),
        ("POST", "/admin/v1/status", read),
        ("DELETE", "/admin/v1/regions", read),
        ("GET", "/admin/v1/regions/local/evacuate", "POST"),
        ("PUT", "/admin/v1/regions/local/unevacuate", "POST"),
        ("PATCH", "/admin/v1/pools", read),
        ("GET", "/admin/v1/reload", "POST"),
        ("DELETE", "/admin/v1/backends", "GET, HEAD, POST"),
        ("PATCH", "/admin/v1/backends/a1", "GET, HEAD, DELETE"),
        ("POST", "/admin/v1/backends/a1", "GET, HEAD, DELETE"),
        ("GET", "/admin/v1/backends/a1/drain", "POST"),
        ("PUT", "/admin/v1/backends/a1/undrain", "POST"),
        ("POST", "/admin/v1/backends/a1/weight", "PUT"),
        ("OPTIONS", "/admin/v1/backends/nope/weight", "PUT"),
    ] {
        let reply = admin.call(method, path, Some(TOKEN), "").await;
        assert_eq!(reply.status, 405, "{method} {path}: {}", reply.text());
        assert_eq!(reply.header("allow"), Some(allow), "{method} {path}");
        if path.starts_with("/admin/") {
            assert_eq!(
                reply.json()["error"],
                "method_not_allowed",
                "{method} {path}"
            );
        }
    }
    // Without the token a change is refused first, whatever the method.
    let reply = admin.call("PATCH", "/admin/v1/backends/a1", None, "").await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    // Nothing applied, and reads answer HEAD as they answer GET, without a body.
    for path in ["/admin/v1/backends/a1", "/admin/v1/status", "/healthz"] {
        let reply = admin.call("HEAD", path, None, "").await;
        assert_eq!(reply.status, 200, "HEAD {path}");
        assert!(reply.body.is_empty(), "HEAD {path}: {}", reply.text());
    }
    assert_eq!(admin.state("a1").await, "up");
    // A path that does not exist is still 404.
    let reply = admin.call("GET", "/admin/v1/nope", None, "").await;
    assert_eq!(reply.status, 404, "{}", reply.text());
}

/// Each limit `docs/admin-openapi.yaml` gives a body value is refused with `400` and a message
/// naming the field; nothing is applied.
#[tokio::test]
async fn every_documented_limit_is_refused_with_400_naming_the_field() {
    let bs = backends(&["a1", "a2"]).await;
    let r = router_with(&token_node(), &ws_pool(&bs));
    let admin = Admin::of(&r);
    let drain = "/admin/v1/backends/a1/drain";
    let evacuate = "/admin/v1/regions/local/evacuate";
    let weight = "/admin/v1/backends/a1/weight";
    let add = "/admin/v1/backends";
    let new = |extra: &str| {
        format!(r#"{{"pool": "ws", "id": "new-1", "address": "127.0.0.1:9", {extra}}}"#)
            .replace(", }", "}")
    };
    let cases: Vec<(&str, &str, String, &str)> = vec![
        // Drain: 0 < deadline_s <= 86400; 0 <= spread_s <= 86400, and <= deadline_s.
        ("POST", drain, r#"{"deadline_s": 0}"#.into(), "deadline_s"),
        ("POST", drain, r#"{"deadline_s": -1}"#.into(), "deadline_s"),
        (
            "POST",
            drain,
            r#"{"deadline_s": 86400.5}"#.into(),
            "deadline_s",
        ),
        ("POST", drain, r#"{"spread_s": -0.5}"#.into(), "spread_s"),
        ("POST", drain, r#"{"spread_s": 86401}"#.into(), "spread_s"),
        (
            "POST",
            drain,
            r#"{"deadline_s": 5, "spread_s": 6}"#.into(),
            "spread_s",
        ),
        // Evacuate: 0 <= spread_s <= 86400.
        ("POST", evacuate, r#"{"spread_s": -1}"#.into(), "spread_s"),
        (
            "POST",
            evacuate,
            r#"{"spread_s": 86401}"#.into(),
            "spread_s",
        ),
        // Weight: 1..=10000.
        ("PUT", weight, r#"{"weight": 0}"#.into(), "weight"),
        ("PUT", weight, r#"{"weight": 10001}"#.into(), "weight"),
        ("PUT", weight, r#"{"weight": -3}"#.into(), "weight"),
        // A new backend: id 1-128 of [A-Za-z0-9._:-]; address host:port, port 1-65535;
        // weight 1..=10000; max_sessions 1..=4294967295.
        ("POST", add, new("").replace("new-1", ""), "id"),
        ("POST", add, new("").replace("new-1", "new 1"), "id"),
        (
            "POST",
            add,
            new("").replace("new-1", &"x".repeat(129)),
            "id",
        ),
        (
            "POST",
            add,
            new("").replace("127.0.0.1:9", "127.0.0.1"),
            "address",
        ),
        ("POST", add, new("").replace(":9\"", ":0\""), "address"),
        ("POST", add, new("").replace(":9\"", ":65536\""), "address"),
        ("POST", add, new(r#""weight": 0"#), "weight"),
        ("POST", add, new(r#""weight": 10001"#), "weight"),
        ("POST", add, new(r#""max_sessions": 0"#), "max_sessions"),
        (
            "POST",
            add,
            new(r#""max_sessions": 4294967296"#),
            "max_sessions",
        ),
    ];
    // The limits themselves are accepted.
    let accepted: Vec<(&str, &str, String, u16)> = vec![
        ("PUT", weight, r#"{"weight": 10000}"#.into(), 200),
        (
            "POST",
            add,
            new(r#""weight": 10000, "max_sessions": 4294967295"#),
            201,
        ),
        // A spread longer than the default deadline (60 s) lengthens the deadline with it.
        ("POST", drain, r#"{"spread_s": 86400}"#.into(), 202),
    ];
    for (method, path, body, field) in cases {
        let reply = admin.call(method, path, Some(TOKEN), &body).await;
        assert_eq!(
            reply.status,
            400,
            "{method} {path} {body}: {}",
            reply.text()
        );
        let answer = reply.json();
        assert_eq!(answer["error"], "bad_request", "{body}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("field `{field}`")),
            "{method} {path} {body}: {message}"
        );
    }
    let listed = admin.client.get("/admin/v1/backends").await.json();
    assert_eq!(
        listed["backends"].as_array().unwrap().len(),
        2,
        "nothing added"
    );
    assert_eq!(admin.state("a1").await, "up", "nothing drained");
    let regions = admin.client.get("/admin/v1/regions").await.json();
    assert_eq!(
        regions["regions"][0]["evacuating"], false,
        "nothing evacuated"
    );
    for (method, path, body, status) in accepted {
        let reply = admin.call(method, path, Some(TOKEN), &body).await;
        assert_eq!(
            reply.status,
            status,
            "{method} {path} {body}: {}",
            reply.text()
        );
    }
}
