//! A Redis that hangs (SIGSTOP: its connections stay open, nothing is answered) rather than
//! dies. Sessions, shared rate limits and the cluster channel each go on without it — every
//! request answered within the store timeout, nothing stuck — say so in their metrics, and
//! catch up once it runs again (SIGCONT).

mod support;

use std::time::{Duration, Instant};

use support::*;
use switchyard::RouterHandle;

const STORE_TIMEOUT: Duration = Duration::from_millis(200);
/// What a request may take while Redis hangs: the store timeout and a margin for a busy
/// machine.
const BOUND: Duration = Duration::from_millis(1200);

/// A node with a sticky route `/stream`, a shared rate limit on `/limited` (named `route`,
/// since metrics are per process and tests run at once), and the admin token.
fn node(bs: &[TestBackend], redis: &RedisServer, route: &str) -> RouterHandle {
    node_with_timeout(bs, redis, route, STORE_TIMEOUT)
}

/// [`node`] with its own store timeout.
fn node_with_timeout(
    bs: &[TestBackend],
    redis: &RedisServer,
    route: &str,
    store_timeout: Duration,
) -> RouterHandle {
    let key = std::env::temp_dir().join(format!("switchyard-hang-key-{}", redis.port));
    std::fs::write(&key, "a shared test key").unwrap();
    router_with(
        &admin_node(),
        &format!(
            "[sessions]\nstore = \"redis\"\nredis_url = \"{}\"\nstore_timeout = \"{}ms\"\ncookie_key_file = \"{}\"\n\
             [[routes]]\nid = \"stream\"\npath_prefix = \"/stream\"\npool = \"p\"\nsticky = true\n\
             [[routes]]\nid = \"{route}\"\npath_prefix = \"/limited\"\npool = \"p\"\n\
             rate_limit = {{ per_ip = 1000, shared = true }}\n{}",
            redis.url(),
            store_timeout.as_millis(),
            key.display(),
            pool_with("p", "round_robin", bs, "health = { kind = \"none\" }")
        ),
    )
}

async fn timed_get(client: &Client, path: &str, headers: &[(&str, &str)]) -> Reply {
    let started = Instant::now();
    let reply = client.get_with(path, headers).await;
    assert!(
        started.elapsed() < BOUND,
        "{path} took {:?} while Redis hung (store timeout {STORE_TIMEOUT:?})",
        started.elapsed()
    );
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_route_from_memory_while_redis_hangs_and_reach_it_when_it_runs_again() {
    let redis = RedisServer::start();
    let bs = backends(&["s1", "s2", "s3"]).await;
    // Node B only reads the records afterwards: a generous timeout, so a busy machine
    // cannot make its one lookup time out (and place the session anew) — the hang's timing
    // is node A's.
    let (a, b) = (
        node(&bs, &redis, "hang-sessions-a"),
        node_with_timeout(&bs, &redis, "hang-sessions-b", Duration::from_secs(3)),
    );
    let via_a = Client::new(a.addr());
    let first = via_a.get("/stream/x").await;
    let old_token = first.header("x-switchyard-session").unwrap().to_string();
    let old_home = first.backend().to_string();
    eventually("the first record in Redis", Duration::from_secs(10), || {
        redis.get(&session_key(&old_token)).is_some()
    })
    .await;

    redis.pause();
    let made = sessions_while_redis_is_out(&via_a, &old_token, &old_home, BOUND).await;
    wait_for(
        "node A reports its store down",
        Duration::from_secs(10),
        async || metric(&a, "switchyard_session_store_up").await == 0.0,
    )
    .await;

    redis.resume();
    let (token, home) = made.last().unwrap().clone();
    eventually(
        "records made while Redis hung reach it",
        Duration::from_secs(15),
        || redis.get(&session_key(&token)).is_some(),
    )
    .await;
    wait_for(
        "node A reports its store up",
        Duration::from_secs(15),
        async || metric(&a, "switchyard_session_store_up").await == 1.0,
    )
    .await;
    let reply = Client::new(b.addr())
        .get_with("/stream/x", &[("x-switchyard-session", &token)])
        .await;
    assert_eq!(
        reply.backend(),
        home,
        "node B resumes a session made during the hang"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_limits_fall_back_to_local_ones_while_redis_hangs_and_share_again_after() {
    let redis = RedisServer::start();
    let bs = backends(&["r1"]).await;
    let route = "hang-limits";
    let a = node(&bs, &redis, route);
    let client = Client::new(a.addr());
    let bucket = format!("switchyard:session:rl:{route}:127.0.0.1");
    wait_for(
        "the limit is kept in Redis",
        Duration::from_secs(10),
        async || {
            assert_eq!(client.get("/limited").await.status, 200);
            redis.get(&bucket).is_some()
        },
    )
    .await;
    let fallbacks = format!("switchyard_rate_limit_fallbacks_total{{route=\"{route}\"}}");
    let before = metric(&a, &fallbacks).await;

    redis.pause();
    for _ in 0..20 {
        let reply = timed_get(&client, "/limited", &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let during = metric(&a, &fallbacks).await;
    assert!(
        during > before,
        "fallbacks counted while Redis hung ({before} → {during})"
    );

    redis.resume();
    // Shared again: requests stop falling back.
    wait_for(
        "the limit is shared again",
        Duration::from_secs(15),
        async || {
            let was = metric(&a, &fallbacks).await;
            for _ in 0..5 {
                assert_eq!(client.get("/limited").await.status, 200);
            }
            metric(&a, &fallbacks).await == was
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_change_made_while_redis_hangs_applies_at_once_and_reaches_other_nodes_after() {
    let redis = RedisServer::start();
    let bs = backends(&["c1", "c2"]).await;
    let (a, b) = (
        node(&bs, &redis, "hang-cluster-a"),
        node(&bs, &redis, "hang-cluster-b"),
    );
    for n in [&a, &b] {
        let admin = Client::new(n.admin_addr());
        wait_for(
            "the node hears the cluster",
            Duration::from_secs(10),
            async || admin.get("/admin/v1/status").await.json()["cluster"] == true,
        )
        .await;
    }

    redis.pause();
    let started = Instant::now();
    let reply = admin_post(&a, "/admin/v1/backends/c1/drain", "{\"deadline_s\": 30}").await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the drain call took {:?} while Redis hung",
        started.elapsed()
    );
    let state = |n: &RouterHandle| {
        let admin = Client::new(n.admin_addr());
        async move { admin.get("/admin/v1/backends/c1").await.json()["state"].clone() }
    };
    assert!(
        state(&a).await.as_str().unwrap().starts_with("drain"),
        "node A applies its own change at once"
    );
    // Node B keeps serving meanwhile.
    assert_eq!(
        timed_get(&Client::new(b.addr()), "/stream/x", &[])
            .await
            .status,
        200
    );

    redis.resume();
    wait_for(
        "node B hears of the drain",
        Duration::from_secs(15),
        async || state(&b).await.as_str().unwrap_or("").starts_with("drain"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_outlives_a_redis_that_restarts_empty() {
    let mut redis = RedisServer::start();
    let bs = backends(&["e1", "e2"]).await;
    let a = node(&bs, &redis, "restart-empty");
    let admin = Client::new(a.admin_addr());
    wait_for(
        "the node hears the cluster",
        Duration::from_secs(10),
        async || admin.get("/admin/v1/status").await.json()["cluster"] == true,
    )
    .await;
    let reply = admin_post(&a, "/admin/v1/backends/e1/drain", "{\"deadline_s\": 600}").await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let state = async || admin.get("/admin/v1/backends/e1").await.json()["state"].clone();
    wait_for("e1 drained", Duration::from_secs(10), async || {
        state().await == "drained"
    })
    .await;

    // Redis comes back with nothing in it (no persistence): the node reconnects, reads an
    // empty admin state, and must not take that for "the drain was lifted".
    redis.restart();
    wait_for(
        "the node hears the cluster again",
        Duration::from_secs(15),
        async || admin.get("/admin/v1/status").await.json()["cluster"] == false,
    )
    .await;
    wait_for(
        "the node hears the cluster again",
        Duration::from_secs(15),
        async || admin.get("/admin/v1/status").await.json()["cluster"] == true,
    )
    .await;
    assert_eq!(state().await, "drained", "a Redis restart lifted the drain");
    let client = Client::new(a.addr());
    for _ in 0..10 {
        assert_eq!(client.get("/stream/x").await.backend(), "e2");
    }
}
