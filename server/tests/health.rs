//! Failures are routed around: active checks take a backend out after `fall` failures and back
//! after `rise` passes, outliers are ejected from request outcomes, failed attempts are retried
//! on another backend within the budget, and a pool with nothing healthy answers a clear 503
//! and recovers when a backend returns.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::*;
use switchyard::config::builder::inline;
use switchyard::config::raw::{DurationStr, HealthCheck, RawHealth};
use switchyard::routing::BackendState;

/// Fast checks so tests finish quickly; the defaults (1 s) are documented in CONFIG.md.
const FAST_HTTP: &str = "health = { kind = \"http\", path = \"/health\", interval = \"100ms\", timeout = \"100ms\", rise = 2, fall = 2 }";

/// [`FAST_HTTP`]'s checks, typed, for tests that change some of them.
fn fast_http() -> RawHealth {
    RawHealth {
        kind: HealthCheck::Http,
        path: "/health".to_string(),
        interval: DurationStr::millis(100),
        timeout: DurationStr::millis(100),
        rise: 2,
        fall: 2,
        ..RawHealth::default()
    }
}
const FAST_TCP: &str =
    "health = { kind = \"tcp\", interval = \"100ms\", timeout = \"100ms\", rise = 2, fall = 2 }";
const WAIT: Duration = Duration::from_secs(10);

fn state_of(r: &switchyard::RouterHandle, pool: &str, backend: &str) -> BackendState {
    let table = r.table();
    let snap = table.pool(pool).unwrap().load_full();
    snap.backends
        .iter()
        .find(|b| &*b.id == backend)
        .unwrap()
        .state
}

async fn backends_answering(client: &Client, n: usize) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let reply = client.get("/api/x").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        seen.insert(reply.backend().to_string());
    }
    seen
}

#[tokio::test]
async fn a_failing_health_endpoint_takes_a_backend_out_and_passing_brings_it_back() {
    let bs = backends(&["a", "b", "c"]).await;
    let r = api_router(&bs, "round_robin", FAST_HTTP);
    let client = Client::new(r.addr());
    assert_eq!(backends_answering(&client, 9).await.len(), 3);

    bs[1].set_health(503);
    let router = &r;
    eventually("b marked down", WAIT, || {
        state_of(router, "api", "b") == BackendState::Down
    })
    .await;
    let seen = backends_answering(&client, 12).await;
    assert!(!seen.contains("b"), "b still got traffic: {seen:?}");

    bs[1].set_health(200);
    eventually("b back up", WAIT, || {
        state_of(router, "api", "b") == BackendState::Up
    })
    .await;
    assert!(backends_answering(&client, 12).await.contains("b"));
}

#[tokio::test]
async fn a_killed_backend_costs_no_request_and_is_marked_down() {
    let mut bs = backends(&["a", "b", "c"]).await;
    let r = api_router(&bs, "round_robin", FAST_TCP);
    let client = Client::new(r.addr());
    bs.remove(1).stop().await;
    // Every request succeeds: connect failures move on to another backend at once.
    let seen = backends_answering(&client, 30).await;
    assert!(!seen.contains("b"));
    let router = &r;
    eventually("b marked down", WAIT, || {
        state_of(router, "api", "b") == BackendState::Down
    })
    .await;
}

/// A server that accepts connections and never answers (a black hole).
async fn black_hole() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_black_holed_backends_timeouts_are_retried_elsewhere() {
    let live = backends(&["live"]).await;
    let (hole, _task) = black_hole().await;
    // TCP checks pass (the hole accepts) and ejection is off: it stays in rotation.
    let r = router(&format!(
        "[[routes]]\nid = \"api\"\npath_prefix = \"/api\"\npool = \"api\"\nretries = 1\ntimeouts = {{ connect = \"200ms\", response = \"300ms\", idle = \"5s\" }}\n\
         [[pools]]\nid = \"api\"\n{FAST_TCP}\noutlier = {{ consecutive_failures = 0 }}\nbackends = [\n {{ id = \"hole\", address = \"{hole}\" }},\n {{ id = \"live\", address = \"{}\" }},\n]\n",
        live[0].addr()
    ));
    assert_eq!(state_of(&r, "api", "hole"), BackendState::Up);
    let client = Client::new(r.addr());
    let mut slow = 0;
    for _ in 0..6 {
        let started = std::time::Instant::now();
        let reply = client.get("/api/x").await;
        assert_eq!(
            (reply.status, reply.backend()),
            (200, "live"),
            "{}",
            reply.text()
        );
        if started.elapsed() >= Duration::from_millis(280) {
            slow += 1; // waited out the hole's response timeout, then was retried
        }
    }
    assert!(slow >= 2, "only {slow} of 6 requests met the hole first");
}

#[tokio::test]
async fn a_hanging_health_endpoint_fails_its_check_without_stalling_the_others() {
    let live = backends(&["live"]).await;
    let (hole, _task) = black_hole().await;
    let r = router(&format!(
        "{}[[pools]]\nid = \"api\"\n{FAST_HTTP}\npanic_threshold = 0\nbackends = [\n {{ id = \"hole\", address = \"{hole}\" }},\n {{ id = \"live\", address = \"{}\" }},\n]\n",
        route("api", "/api", "api"),
        live[0].addr()
    ));
    let router = &r;
    eventually("hole marked down", WAIT, || {
        state_of(router, "api", "hole") == BackendState::Down
    })
    .await;
    // The other backend's checks go on: take it down and back.
    live[0].set_health(503);
    eventually("live down", WAIT, || {
        state_of(router, "api", "live") == BackendState::Down
    })
    .await;
    live[0].set_health(200);
    eventually("live up", WAIT, || {
        state_of(router, "api", "live") == BackendState::Up
    })
    .await;
}

#[tokio::test]
async fn a_backend_that_passes_checks_but_fails_requests_is_ejected() {
    let bs = backends(&["a", "bad", "c"]).await;
    bs[1].set_fail_status(Some(500));
    let r = api_router(
        &bs,
        "round_robin",
        &format!("{FAST_HTTP}\noutlier = {{ consecutive_failures = 3, base_ejection = \"30s\" }}"),
    );
    let client = Client::new(r.addr());
    let router = &r;
    // Round robin sends every third request to it; 500s are passed through (not retried).
    let mut failures = 0;
    for _ in 0..30 {
        if client.get("/api/x").await.status == 500 {
            failures += 1;
        }
        if state_of(router, "api", "bad") == BackendState::Ejected {
            break;
        }
    }
    eventually("bad ejected", WAIT, || {
        state_of(router, "api", "bad") == BackendState::Ejected
    })
    .await;
    assert!(failures >= 3, "ejected after {failures} failures");
    assert!(!backends_answering(&client, 12).await.contains("bad"));
}

#[tokio::test]
async fn a_backends_503_is_retried_on_another_backend_for_idempotent_requests() {
    let bs = backends(&["busy", "ok"]).await;
    bs[0].set_fail_status(Some(503));
    let r = router(&format!(
        "[[routes]]\nid = \"api\"\npath_prefix = \"/api\"\npool = \"api\"\nretries = 1\n{}",
        pool_with(
            "api",
            "round_robin",
            &bs,
            "outlier = { consecutive_failures = 0 }"
        )
    ));
    let client = Client::new(r.addr());
    for _ in 0..6 {
        let reply = client.get("/api/x").await;
        assert_eq!((reply.status, reply.backend()), (200, "ok"));
    }
    // A POST is not retried: when it lands on the busy backend its 503 passes through as is.
    let mut statuses = BTreeSet::new();
    for _ in 0..6 {
        let reply = client
            .send(
                http::Method::POST,
                "/api/x",
                &[("content-length", "0")],
                bytes::Bytes::new(),
            )
            .await;
        assert_eq!(reply.header("x-switchyard-error"), None);
        statuses.insert(reply.status);
    }
    assert_eq!(statuses, BTreeSet::from([200, 503]));
}

#[tokio::test]
async fn an_empty_retry_budget_stops_retries() {
    let bs = backends(&["busy", "ok"]).await;
    bs[0].set_fail_status(Some(503));
    let r = router(&format!(
        "[[routes]]\nid = \"api\"\npath_prefix = \"/api\"\npool = \"api\"\nretries = 1\nretry_budget = {{ percent = 0, min_per_s = 0 }}\n{}",
        pool_with(
            "api",
            "round_robin",
            &bs,
            "outlier = { consecutive_failures = 0 }"
        )
    ));
    let client = Client::new(r.addr());
    let statuses: BTreeSet<u16> = {
        let mut s = BTreeSet::new();
        for _ in 0..6 {
            s.insert(client.get("/api/x").await.status);
        }
        s
    };
    assert_eq!(
        statuses,
        BTreeSet::from([200, 503]),
        "no retry without budget"
    );
}

#[tokio::test]
async fn with_every_backend_down_the_pool_answers_503_and_recovers() {
    let bs = backends(&["a", "b"]).await;
    let addrs: Vec<_> = bs.iter().map(|b| b.addr()).collect();
    let r = api_router(&bs, "round_robin", FAST_TCP);
    let client = Client::new(r.addr());
    for b in bs {
        b.stop().await;
    }
    let router = &r;
    eventually("both down", WAIT, || {
        state_of(router, "api", "a") == BackendState::Down
            && state_of(router, "api", "b") == BackendState::Down
    })
    .await;
    let reply = client.get("/api/x").await;
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.header("x-switchyard-error"),
        Some("no_healthy_backend")
    );
    assert!(reply.json()["message"].as_str().unwrap().contains("api"));

    let back = backend_at("a-again", addrs[0]).await.expect("rebind");
    eventually("a back up", WAIT, || {
        state_of(router, "api", "a") == BackendState::Up
    })
    .await;
    let reply = client.get("/api/x").await;
    assert_eq!((reply.status, reply.backend()), (200, "a-again"));
    drop(back);
}

#[tokio::test]
async fn below_the_panic_threshold_traffic_spreads_over_all_backends() {
    let bs = backends(&["a", "b", "c", "d"]).await;
    let r = api_router(
        &bs,
        "round_robin",
        &format!("{FAST_HTTP}\npanic_threshold = 50"),
    );
    let client = Client::new(r.addr());
    for b in &bs[1..] {
        b.set_health(503);
    }
    let router = &r;
    eventually("three down", WAIT, || {
        ["b", "c", "d"]
            .iter()
            .all(|id| state_of(router, "api", id) == BackendState::Down)
    })
    .await;
    assert!(r.table().pool("api").unwrap().load().panic);
    // One healthy of four is under 50%: all four take traffic rather than crush "a".
    assert_eq!(backends_answering(&client, 8).await.len(), 4);
}

#[tokio::test]
async fn a_backend_back_from_failed_checks_is_eased_in_by_slow_start() {
    let bs = backends(&["steady", "back"]).await;
    let r = api_router(
        &bs,
        "round_robin",
        &format!("{FAST_HTTP}\nslow_start = \"4s\"\npanic_threshold = 0"),
    );
    let client = Client::new(r.addr());
    let router = &r;
    bs[1].set_health(503);
    eventually("back marked down", WAIT, || {
        state_of(router, "api", "back") == BackendState::Down
    })
    .await;
    bs[1].set_health(200);
    eventually("back up again", WAIT, || {
        state_of(router, "api", "back") == BackendState::Up
    })
    .await;
    // Early in its ramp it gets a small share (10% of its weight at first), not half.
    let mut early = 0;
    for _ in 0..40 {
        if client.get("/api/x").await.backend() == "back" {
            early += 1;
        }
    }
    assert!(early <= 12, "back got {early} of 40 right after returning");
    // Once the window has passed, round robin shares evenly again.
    eventually("ramp over", WAIT, || {
        let table = router.table();
        let snap = table.pool("api").unwrap().load_full();
        snap.backends.iter().all(|b| b.weight == 1)
    })
    .await;
    let mut later = 0;
    for _ in 0..40 {
        if client.get("/api/x").await.backend() == "back" {
            later += 1;
        }
    }
    assert_eq!(later, 20);
}

#[tokio::test]
async fn a_flapping_backend_is_held_down_on_its_next_comeback() {
    let bs = backends(&["steady", "flappy"]).await;
    let r = api_router(
        &bs,
        "round_robin",
        &format!(
            "health = {}\npanic_threshold = 0\n",
            inline(&RawHealth {
                flap_threshold: 2,
                flap_penalty: DurationStr::millis(1500),
                ..fast_http()
            })
        ),
    );
    let router = &r;
    let state = || state_of(router, "api", "flappy");
    // Two comebacks are allowed…
    for _ in 0..2 {
        bs[1].set_health(503);
        eventually("flappy down", WAIT, || state() == BackendState::Down).await;
        bs[1].set_health(200);
        eventually("flappy back", WAIT, || state() == BackendState::Up).await;
    }
    // …the third is held for the penalty although its checks pass.
    bs[1].set_health(503);
    eventually("flappy down again", WAIT, || state() == BackendState::Down).await;
    bs[1].set_health(200);
    let held_from = std::time::Instant::now();
    // Meanwhile the snapshot (and so the admin API and the console) says why it stays down.
    let held_down = || {
        let table = router.table();
        let snap = table.pool("api").unwrap().load_full();
        snap.backends
            .iter()
            .any(|b| &*b.id == "flappy" && b.health.held_down)
    };
    eventually("flappy shown as held down", WAIT, held_down).await;
    eventually("flappy back after its hold", WAIT, || {
        state() == BackendState::Up
    })
    .await;
    assert!(!held_down(), "no longer held once back");
    let held = held_from.elapsed();
    // rise (2 checks, ~200 ms) would bring it back at once without damping.
    assert!(
        held >= Duration::from_millis(1200),
        "back after only {held:?}"
    );
}

#[tokio::test]
async fn small_bodies_are_kept_for_a_retry_and_large_ones_are_not() {
    let bs = backends(&["busy", "ok"]).await;
    bs[0].set_fail_status(Some(503));
    let r = router(&format!(
        "[[routes]]\nid = \"api\"\npath_prefix = \"/api\"\npool = \"api\"\nretries = 1\nretry_buffer_bytes = 1000\n{}",
        pool_with(
            "api",
            "round_robin",
            &bs,
            "outlier = { consecutive_failures = 0 }"
        )
    ));
    let client = Client::new(r.addr());
    let small = bytes::Bytes::from(vec![b's'; 900]);
    for _ in 0..4 {
        let reply = client
            .send(http::Method::PUT, "/api/x?echo=1", &[], small.clone())
            .await;
        assert_eq!((reply.status, reply.backend()), (200, "ok"));
        assert_eq!(
            reply.json()["body_bytes"],
            900,
            "the retried body arrived whole"
        );
    }
    // Over the limit the body is streamed: when it meets the busy backend, its 503 stands.
    let large = bytes::Bytes::from(vec![b'l'; 5000]);
    let mut statuses = BTreeSet::new();
    for _ in 0..4 {
        let reply = client
            .send(http::Method::PUT, "/api/x?echo=1", &[], large.clone())
            .await;
        statuses.insert(reply.status);
    }
    assert_eq!(statuses, BTreeSet::from([200, 503]));
}

/// Checks that read load reports, fast.
const FAST_LOAD: &str = "health = { kind = \"http\", path = \"/health\", interval = \"100ms\", timeout = \"100ms\", rise = 2, fall = 2, load_report = true }";

#[tokio::test]
async fn a_busy_backend_gets_less_and_a_full_one_nothing_without_being_failed() {
    let bs = backends(&["idle", "busy"]).await;
    let r = api_router(&bs, "round_robin", FAST_LOAD);
    let client = Client::new(r.addr());
    let router = &r;
    let weight_of = |id: &str| {
        let table = router.table();
        let snap = table.pool("api").unwrap().load_full();
        snap.backends.iter().find(|b| &*b.id == id).unwrap().weight
    };
    // 90% busy: a fifth of its weight.
    bs[1].set_load_report(Some(r#"{"cpu": 0.9}"#));
    eventually("busy reweighted", WAIT, || {
        weight_of("busy") == 20 && weight_of("idle") == 100
    })
    .await;
    let mut busy = 0;
    for _ in 0..60 {
        if client.get("/api/x").await.backend() == "busy" {
            busy += 1;
        }
    }
    assert_eq!(busy, 10, "weights 100:20 over 60 requests");

    // At capacity: no new work, yet not marked down.
    bs[1].set_load_report(Some(r#"{"sessions": 500, "capacity": 500}"#));
    eventually("busy overloaded", WAIT, || {
        state_of(router, "api", "busy") == BackendState::Overloaded
    })
    .await;
    let seen = backends_answering(&client, 10).await;
    assert_eq!(seen, BTreeSet::from(["idle".to_string()]));

    // Everyone full: a clear 503 that says so, with Retry-After.
    bs[0].set_load_report(Some(r#"{"overloaded": true}"#));
    eventually("idle overloaded", WAIT, || {
        state_of(router, "api", "idle") == BackendState::Overloaded
    })
    .await;
    let reply = client.get("/api/x").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("x-switchyard-error"), Some("overloaded"));
    assert_eq!(reply.header("retry-after"), Some("1"));

    // Load falls: back to full weight.
    bs[0].set_load_report(None);
    bs[1].set_load_report(Some(r#"{"cpu": 0.2}"#));
    eventually("both normal", WAIT, || {
        ["idle", "busy"]
            .iter()
            .all(|id| weight_of(id) == 1 && state_of(router, "api", id) == BackendState::Up)
    })
    .await;
    assert_eq!(backends_answering(&client, 10).await.len(), 2);
}

#[tokio::test]
async fn a_health_answer_slower_than_max_response_time_fails_the_check() {
    let bs = backends(&["quick", "sluggish"]).await;
    let r = api_router(
        &bs,
        "round_robin",
        &format!(
            "health = {}\npanic_threshold = 0\n",
            inline(&RawHealth {
                timeout: DurationStr::millis(90),
                max_response_time: Some(DurationStr::millis(30)),
                ..fast_http()
            })
        ),
    );
    let router = &r;
    assert_eq!(state_of(router, "api", "sluggish"), BackendState::Up);
    // 60 ms answers: within the check timeout, but over max_response_time.
    bs[1].set_health_delay(Duration::from_millis(60));
    eventually("sluggish down", WAIT, || {
        state_of(router, "api", "sluggish") == BackendState::Down
    })
    .await;
    assert_eq!(state_of(router, "api", "quick"), BackendState::Up);
}
