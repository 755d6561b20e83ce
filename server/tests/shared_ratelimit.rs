//! Rate limits shared across router nodes through Redis (`rate_limit.shared = true`): two
//! nodes on one Redis pass one burst between them, not one each; with Redis gone the nodes
//! fall back to their own limits at once (fail-open, counted); a shared limit without the
//! Redis store is a configuration error. Loopback only, with a private `redis-server`.

mod support;

use std::time::{Duration, Instant};

use support::*;

/// The route's limit: 2 a second with a burst of 10 — slow enough that a few dozen quick
/// requests see the burst and (almost) no refill, whatever the machine's speed.
const BURST: usize = 10;
const STORE_TIMEOUT: Duration = Duration::from_millis(200);

/// A router node with a shared limit on route `limited` (`/`) and one by API key on route
/// `keys` (`/k`), its sessions (and limits) in `redis`. Route `probe-{name}` (`/probe`) is
/// there to see when this node reaches Redis. (Metrics are per process, shared by the
/// tests running at once: each test names its routes apart.)
fn node(
    bs: &[TestBackend],
    redis: &RedisServer,
    name: &str,
    limited: &str,
) -> switchyard::RouterHandle {
    router(&format!(
        "[sessions]\nstore = \"redis\"\nredis_url = \"{}\"\nstore_timeout = \"{}ms\"\n\
         [[routes]]\nid = \"{limited}\"\npath_prefix = \"/\"\npool = \"api\"\n\
         rate_limit = {{ per_ip = 2, burst = {BURST}, shared = true }}\n\
         [[routes]]\nid = \"keys\"\npath_prefix = \"/k\"\npool = \"api\"\n\
         rate_limit = {{ per_ip = 0, key_header = \"x-api-key\", per_key = 2, key_burst = {BURST}, shared = true }}\n\
         [[routes]]\nid = \"probe-{name}\"\npath_prefix = \"/probe\"\npool = \"api\"\n\
         rate_limit = {{ per_ip = 1000, shared = true }}\n{}",
        redis.url(),
        STORE_TIMEOUT.as_millis(),
        pool_with("api", "round_robin", bs, "health = { kind = \"none\" }")
    ))
}

/// Waits until node `name` checks limits in Redis (it connects in the background; limits
/// before that fall back to local ones): its probe route's bucket appears there. A node that
/// never gets there fails the test with what it reports of its store and its fallbacks.
async fn wait_connected(node: &switchyard::RouterHandle, redis: &RedisServer, name: &str) {
    const WITHIN: Duration = Duration::from_secs(10);
    let client = Client::new(node.addr());
    let bucket = format!("switchyard:session:rl:probe-{name}:127.0.0.1");
    let deadline = Instant::now() + WITHIN;
    loop {
        assert_eq!(client.get("/probe").await.status, 200);
        if redis.get(&bucket).is_some() {
            return;
        }
        if Instant::now() >= deadline {
            let up = metric(node, "switchyard_session_store_up").await;
            let fallbacks = metric(
                node,
                &format!("switchyard_rate_limit_fallbacks_total{{route=\"probe-{name}\"}}"),
            )
            .await;
            panic!(
                "node {name} still does not check limits in Redis after {WITHIN:?}: \
                 switchyard_session_store_up {up}, {fallbacks} fallbacks on its probe route"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_redis_share_one_burst() {
    let redis = RedisServer::start();
    let bs = backends(&["b1"]).await;
    let a = node(&bs, &redis, "a", "api");
    let b = node(&bs, &redis, "b", "api");
    wait_connected(&a, &redis, "a").await;
    wait_connected(&b, &redis, "b").await;
    let clients = [Client::new(a.addr()), Client::new(b.addr())];

    // Alternating between the nodes: each node's own limit would pass BURST by itself.
    let (mut allowed, mut first_refusal) = (0, None);
    let started = Instant::now();
    for i in 0..3 * BURST {
        let reply = clients[i % 2].get("/x").await;
        match reply.status {
            200 => allowed += 1,
            429 => {
                let retry_after = reply
                    .header("retry-after")
                    .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", reply.headers));
                assert!(retry_after.parse::<u64>().unwrap() >= 1, "{retry_after}");
                assert!(reply.text().contains("rate_limited"), "{}", reply.text());
                first_refusal.get_or_insert(i);
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    // 2 a second of refill while the requests ran, on top of the shared burst.
    let refill = (started.elapsed().as_secs_f64() * 2.0).ceil() as usize;
    assert!(
        allowed >= BURST && allowed <= BURST + refill && allowed < 2 * BURST,
        "{allowed} of {} passed through two nodes with a shared burst of {BURST} \
         (refill {refill}); per node it would be {}",
        3 * BURST,
        2 * BURST
    );
    assert!(
        first_refusal.is_some_and(|i| i < 2 * BURST),
        "the first 429 came at request {first_refusal:?}: the limit is not shared"
    );

    // The refusals that only the shared limit made are counted with scope="shared" (each
    // node's own bucket held about half the requests).
    let shared_refusals = metric(
        &a,
        "switchyard_rate_limited_total{route=\"api\",by=\"client address\",scope=\"shared\"}",
    )
    .await
        + metric(
            &b,
            "switchyard_rate_limited_total{route=\"api\",by=\"client address\",scope=\"shared\"}",
        )
        .await;
    assert!(shared_refusals >= 1.0, "no shared refusal counted");

    // The bucket lives in Redis under the key prefix, as a TAT that expires by itself.
    let tat = redis
        .get("switchyard:session:rl:api:127.0.0.1")
        .expect("the client address's bucket in Redis");
    assert!(tat.parse::<u64>().is_ok(), "{tat:?} is not a time in µs");

    // An API key is shared too, and stored only as a hash.
    let key = "a-secret-api-key";
    let (mut allowed_key, mut statuses) = (0, Vec::new());
    // On a route limited by key only (the address's bucket above is spent).
    for i in 0..3 * BURST {
        let reply = clients[i % 2].get_with("/k", &[("x-api-key", key)]).await;
        statuses.push(reply.status);
        allowed_key += usize::from(reply.status == 200);
    }
    let conn = redis::Client::open(redis.url()).unwrap();
    let mut conn = conn.get_connection().unwrap();
    let keys: Vec<String> = redis::Commands::keys(&mut conn, "*rl:keys:k:*").unwrap();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| !k.contains(key)),
        "{keys:?}"
    );
    assert!(
        (BURST..2 * BURST).contains(&allowed_key),
        "{allowed_key} passed with one key through two nodes: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_gone_the_local_limit_decides_at_once_and_fallbacks_are_counted() {
    let mut redis = RedisServer::start();
    let bs = backends(&["b1"]).await;
    let a = node(&bs, &redis, "solo", "solo");
    wait_connected(&a, &redis, "solo").await;
    let client = Client::new(a.addr());
    let fallbacks = "switchyard_rate_limit_fallbacks_total{route=\"solo\"}";
    assert_eq!(client.get("/x").await.status, 200, "through Redis");
    let before = metric(&a, fallbacks).await;

    redis.kill();
    let (mut allowed, mut limited) = (1, 0);
    for _ in 0..2 * BURST {
        let started = Instant::now();
        let reply = client.get("/x").await;
        let took = started.elapsed();
        assert!(
            took < STORE_TIMEOUT + Duration::from_secs(1),
            "a request took {took:?} with Redis down (store timeout {STORE_TIMEOUT:?})"
        );
        match reply.status {
            200 => allowed += 1,
            429 => limited += 1,
            other => panic!("unexpected {other} with Redis down: {}", reply.text()),
        }
    }
    // Fail-open to the node's own limit: its burst passes (plus a little refill), then 429.
    assert!(
        (BURST..BURST + 3).contains(&allowed),
        "{allowed} passed with Redis down (local burst {BURST})"
    );
    assert!(limited > 0, "the local limit still refuses");
    let after = metric(&a, fallbacks).await;
    assert!(
        after - before >= (BURST - 1) as f64,
        "fallbacks counted: {before} before the outage, {after} after"
    );
}

#[test]
fn a_shared_limit_needs_the_redis_store() {
    let text = "[[routes]]\nid = \"api\"\npath_prefix = \"/\"\npool = \"api\"\n\
                rate_limit = { per_ip = 5, shared = true }\n\
                [[pools]]\nid = \"api\"\nbackends = [{ id = \"b\", address = \"127.0.0.1:9\" }]\n";
    let err = switchyard::Config::from_toml_str(text)
        .expect_err("a shared limit without Redis is refused")
        .to_string();
    assert!(err.contains("routes[0].rate_limit.shared"), "{err}");
    assert!(err.contains("Redis store"), "{err}");
    // The same route is valid with the Redis store.
    let with_redis = format!("[sessions]\nstore = \"redis\"\n{text}");
    switchyard::Config::from_toml_str(&with_redis).unwrap_or_else(|err| panic!("{err}"));
}
