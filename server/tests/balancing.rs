//! Each balancer's distribution, observed through a running router and real backends.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::*;

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[tokio::test]
async fn round_robin_takes_turns() {
    let bs = backends(&["a", "b", "c"]).await;
    let r = api_router(&bs, "round_robin", "");
    let client = Client::new(r.addr());
    let mut order = Vec::new();
    for _ in 0..6 {
        order.push(client.get("/api/x").await.backend().to_string());
    }
    assert_eq!(order[..3], order[3..], "turns repeat in the same order");
    let mut first_three = order[..3].to_vec();
    first_three.sort();
    assert_eq!(first_three, ["a", "b", "c"]);
    assert_eq!(
        spread(&client, "/api/x", 30).await,
        counts(&[("a", 10), ("b", 10), ("c", 10)])
    );
}

#[tokio::test]
async fn weighted_round_robin_follows_weights_smoothly() {
    let bs = backends(&["heavy", "light"]).await;
    let r = router(&format!(
        "{}{}",
        route("api", "/api", "api"),
        pool("api", "weighted_round_robin", &bs, &[3, 1])
    ));
    let client = Client::new(r.addr());
    let mut order = Vec::new();
    for _ in 0..40 {
        order.push(client.get("/api/x").await.backend().to_string());
    }
    let heavy = order.iter().filter(|b| *b == "heavy").count();
    assert_eq!(heavy, 30, "3:1 weights over 40 requests: {order:?}");
    let longest_run = order
        .chunk_by(|a, b| a == b)
        .map(|run| run.len())
        .max()
        .unwrap();
    assert!(longest_run <= 3, "bursts to the heavy backend: {order:?}");
}

#[tokio::test]
async fn least_connections_spreads_held_requests() {
    let bs = backends(&["s1", "s2", "s3"]).await;
    let r = router(&format!(
        "{}{}",
        route("stream", "/stream", "stream"),
        pool("stream", "least_connections", &bs, &[])
    ));
    let client = Client::new(r.addr());
    // Six requests held open at once: each pick sees the others in flight.
    let held: Vec<_> = (0..6)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(
                async move { c.get("/stream/x?delay_ms=1500").await.backend().to_string() },
            )
        })
        .collect();
    let mut got = BTreeMap::new();
    for h in held {
        *got.entry(h.await.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(got, counts(&[("s1", 2), ("s2", 2), ("s3", 2)]));
}

#[tokio::test]
async fn least_connections_never_stacks_on_a_busy_backend() {
    let bs = backends(&["busy", "idle"]).await;
    let r = router(&format!(
        "{}{}",
        route("stream", "/stream", "stream"),
        pool("stream", "least_connections", &bs, &[])
    ));
    let client = Client::new(r.addr());
    // Park two long requests; whichever backend holds them, the next short ones avoid it.
    let parked: Vec<_> = (0..2)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(
                async move { c.get("/stream/x?delay_ms=3000").await.backend().to_string() },
            )
        })
        .collect();
    let table = r.table();
    let pool = table.pool("stream").unwrap();
    eventually("two requests in flight", Duration::from_secs(5), || {
        pool.load()
            .backends
            .iter()
            .map(|b| b.stats.inflight())
            .sum::<u32>()
            == 2
    })
    .await;
    let snapshot = pool.load_full();
    let inflight: Vec<u32> = snapshot
        .backends
        .iter()
        .map(|b| b.stats.inflight())
        .collect();
    assert_eq!(
        inflight,
        vec![1, 1],
        "the two parked requests went to different backends"
    );
    drop(parked);
}

#[tokio::test]
async fn random_is_roughly_uniform() {
    let bs = backends(&["r1", "r2", "r3"]).await;
    let r = router(&format!(
        "{}{}",
        route("search", "/search", "search"),
        pool("search", "random", &bs, &[])
    ));
    let client = Client::new(r.addr());
    let got = spread(&client, "/search/q", 300).await;
    assert_eq!(got.len(), 3, "{got:?}");
    for (id, n) in &got {
        // Expected 100 each; 5 standard deviations is about 41.
        assert!((55..=145).contains(n), "{id} got {n} of 300: {got:?}");
    }
}

#[tokio::test]
async fn p2c_ewma_prefers_the_fast_backend() {
    let bs = backends(&["slow", "fast"]).await;
    // Far slower than any stall of a busy machine, so one slow answer from the fast backend
    // (its peak EWMA jumps to it) cannot make it look slower than the slow one.
    bs[0].set_delay(Duration::from_millis(250));
    let r = api_router(&bs, "p2c_ewma", "");
    let client = Client::new(r.addr());
    let got = spread(&client, "/api/x", 60).await;
    let fast = got.get("fast").copied().unwrap_or(0);
    // Once the slow backend has answered once, its estimate keeps it out.
    assert!(fast >= 55, "fast backend got {fast} of 60: {got:?}");
}

#[tokio::test]
async fn consistent_hash_keeps_each_key_on_one_backend() {
    let bs = backends(&["h1", "h2", "h3"]).await;
    let pool_toml = pool_with(
        "users",
        "consistent_hash",
        &bs,
        "hash_key = \"header:x-user\"",
    );
    let r = router(&format!("{}{pool_toml}", route("users", "/api", "users")));
    let client = Client::new(r.addr());
    let mut owners = BTreeMap::new();
    for round in 0..3 {
        for user in 0..40 {
            let key = format!("viewer-{user}");
            let reply = client.get_with("/api/profile", &[("x-user", &key)]).await;
            let owner = owners
                .entry(key.clone())
                .or_insert_with(|| reply.backend().to_string());
            assert_eq!(owner, reply.backend(), "{key} moved in round {round}");
        }
    }
    let used: std::collections::BTreeSet<_> = owners.values().collect();
    assert_eq!(
        used.len(),
        3,
        "40 keys should use all 3 backends: {owners:?}"
    );
}

#[tokio::test]
async fn consistent_hash_by_client_ip_pins_a_client() {
    let bs = backends(&["h1", "h2", "h3"]).await;
    let r = api_router(&bs, "consistent_hash", "");
    let client = Client::new(r.addr());
    let got = spread(&client, "/api/x", 20).await;
    assert_eq!(got.len(), 1, "one client IP, one backend: {got:?}");
}
