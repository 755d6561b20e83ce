//! Sessions shared through Redis: a session made through one router node resumes on the same
//! backend through another; when Redis goes away the nodes keep routing from their caches,
//! and what they recorded meanwhile reaches Redis once it is back.

mod support;

use std::time::Duration;

use support::*;

/// A router node; every node of a test signs tokens with the same key (from a file).
fn node(bs: &[TestBackend], redis: &RedisServer) -> switchyard::RouterHandle {
    node_with(bs, redis, "")
}

/// [`node`] with more `[sessions]` keys.
fn node_with(bs: &[TestBackend], redis: &RedisServer, sessions: &str) -> switchyard::RouterHandle {
    let key = std::env::temp_dir().join(format!("switchyard-test-key-{}", redis.port));
    std::fs::write(&key, "a shared test key").unwrap();
    router(&format!(
        "[sessions]\nstore = \"redis\"\nredis_url = \"{}\"\nstore_timeout = \"200ms\"\ncookie_key_file = \"{}\"\n{sessions}\n\
         [[routes]]\nid = \"stream\"\npath_prefix = \"/stream\"\npool = \"stream\"\nsticky = true\n{}",
        redis.url(),
        key.display(),
        pool_with("stream", "round_robin", bs, "health = { kind = \"none\" }")
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_through_one_node_resumes_through_another() {
    let redis = RedisServer::start();
    let bs = backends(&["s1", "s2", "s3"]).await;
    let a = node(&bs, &redis);
    let b = node(&bs, &redis);
    let first = Client::new(a.addr()).get("/stream/movie").await;
    let token = first.header("x-switchyard-session").unwrap().to_string();
    let home = first.backend().to_string();
    let key = session_key(&token);
    eventually("the record reaches Redis", Duration::from_secs(10), || {
        redis.get(&key).is_some()
    })
    .await;
    let record: serde_json::Value = serde_json::from_str(&redis.get(&key).unwrap()).unwrap();
    assert_eq!(record["id"], token[..36]);
    assert_eq!(record["pool"], "stream");
    assert_eq!(record["backend"], home.as_str());
    assert_eq!(record["region"], "local");
    assert_eq!(record["resume_count"], 0);
    assert!(record["created_ms"].as_u64().unwrap() > 0);
    assert!(record["last_seen_ms"].as_u64() >= record["created_ms"].as_u64());

    let via_b = Client::new(b.addr());
    for _ in 0..6 {
        let reply = via_b
            .get_with("/stream/movie", &[("x-switchyard-session", &token)])
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.backend(),
            home,
            "node B did not resume node A's session"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_goes_on_through_a_redis_outage_and_records_are_written_when_it_returns() {
    let mut redis = RedisServer::start();
    let bs = backends(&["s1", "s2", "s3"]).await;
    let a = node(&bs, &redis);
    let b = node(&bs, &redis);
    let via_a = Client::new(a.addr());
    let before = via_a.get("/stream/x").await;
    let old_token = before.header("x-switchyard-session").unwrap().to_string();
    let old_home = before.backend().to_string();
    eventually("the first record in Redis", Duration::from_secs(10), || {
        redis.get(&session_key(&old_token)).is_some()
    })
    .await;

    redis.kill();
    // New sessions are placed and answered; known ones stick from the local cache.
    let made = sessions_while_redis_is_out(&via_a, &old_token, &old_home, REQUEST_DEADLINE).await;

    // Node A has noticed: its store gauge says down (its writes failed and were kept).
    let admin = Client::new(a.admin_addr());
    let mut down = false;
    for _ in 0..100 {
        let metrics = admin.get("/metrics").await.text();
        if metrics
            .lines()
            .any(|l| l == "switchyard_session_store_up 0")
        {
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(down, "node A never reported its session store down");

    redis.restart(); // empty: every record must be written again by the nodes
    let (token, home) = made.last().unwrap().clone();
    eventually(
        "records kept during the outage reach Redis",
        Duration::from_secs(15),
        || redis.get(&session_key(&token)).is_some(),
    )
    .await;
    let reply = Client::new(b.addr())
        .get_with("/stream/x", &[("x-switchyard-session", &token)])
        .await;
    assert_eq!(
        reply.backend(),
        home,
        "node B did not resume a session made during the outage"
    );
}

fn is_master(port: u16) -> bool {
    redis_query::<String>(port, redis::cmd("INFO").arg("replication"))
        .is_some_and(|info| info.contains("role:master"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_sentinels_sessions_survive_a_failover_under_load() {
    use switchyard_load::procs::{
        ScratchDir, free_port, start_redis, start_redis_with, start_sentinel,
    };
    let scratch = ScratchDir::new("sentinel").unwrap();
    let (master_port, replica_port, sentinel_port) = (
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    );
    let mut master = start_redis(master_port).unwrap();
    let _replica = start_redis_with(
        replica_port,
        &["--replicaof", "127.0.0.1", &master_port.to_string()],
    )
    .unwrap();
    eventually("the replica in sync", Duration::from_secs(20), || {
        redis_query::<String>(master_port, redis::cmd("INFO").arg("replication"))
            .is_some_and(|info| info.contains("connected_slaves:1"))
    })
    .await;
    let _sentinel = start_sentinel(&scratch, sentinel_port, "sy", master_port).unwrap();
    eventually(
        "the sentinel knows the replica",
        Duration::from_secs(30),
        || {
            redis_query::<Vec<redis::Value>>(
                sentinel_port,
                redis::cmd("SENTINEL").arg("REPLICAS").arg("sy"),
            )
            .is_some_and(|replicas| !replicas.is_empty())
        },
    )
    .await;

    let bs = backends(&["s1", "s2"]).await;
    // redis_url's host is not used behind sentinels: only its credentials and database.
    let key_file = scratch.write("cookie-key", "a shared test key").unwrap();
    let node = || {
        router(&format!(
            "[sessions]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:1\"\nstore_timeout = \"1s\"\n\
             sentinels = [\"127.0.0.1:{sentinel_port}\"]\nsentinel_master = \"sy\"\ncookie_key_file = \"{}\"\n\
             [[routes]]\nid = \"stream\"\npath_prefix = \"/stream\"\npool = \"stream\"\nsticky = true\n{}",
            key_file.display(),
            pool_with("stream", "round_robin", &bs, "health = { kind = \"none\" }")
        ))
    };
    let (a, b) = (node(), node());
    let client = Client::new(a.addr());
    let mut made: Vec<(String, String)> = Vec::new();
    for n in 0..20 {
        let reply = client.get(&format!("/stream/before-{n}")).await;
        assert_eq!(reply.status, 200);
        let token = reply.header("x-switchyard-session").unwrap().to_string();
        made.push((token, reply.backend().to_string()));
    }
    for (token, _) in &made {
        let key = session_key(token);
        eventually(
            "the records in the master the sentinel named",
            Duration::from_secs(10),
            || {
                redis_query::<Option<String>>(master_port, redis::cmd("GET").arg(&key))
                    .flatten()
                    .is_some()
            },
        )
        .await;
    }
    // Redis replicates asynchronously: the kill comes once the replica has what the master has.
    eventually(
        "the replica acknowledges the master's writes",
        Duration::from_secs(10),
        || redis_query::<i64>(master_port, redis::cmd("WAIT").arg(1).arg(1000)) == Some(1),
    )
    .await;

    master.kill();
    // Session load through A during the failover: every request is answered.
    let mut n = 0;
    while !is_master(replica_port) {
        let reply = client.get(&format!("/stream/during-{n}")).await;
        assert_eq!(
            reply.status,
            200,
            "a failed request during the failover: {}",
            reply.text()
        );
        let token = reply.header("x-switchyard-session").unwrap().to_string();
        made.push((token, reply.backend().to_string()));
        n += 1;
        assert!(
            n < 600,
            "the sentinel did not promote the replica within ~30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every record — those made before the kill, and those A kept while no master answered —
    // is in the promoted replica, and node B resumes each session on its backend.
    for (token, _) in &made {
        let key = session_key(token);
        eventually(
            "every record in the promoted replica",
            Duration::from_secs(20),
            || {
                redis_query::<Option<String>>(replica_port, redis::cmd("GET").arg(&key))
                    .flatten()
                    .is_some()
            },
        )
        .await;
    }
    println!("{} sessions, {n} made during the failover", made.len());
    resumes_each_on_its_backend(&b, &made).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_keeps_coming_back_keeps_its_record_alive_in_redis() {
    let redis = RedisServer::start();
    let bs = backends(&["s1", "s2"]).await;
    let r = node_with(&bs, &redis, "ttl = \"2s\"");
    let client = Client::new(r.addr());
    let first = client.get("/stream/live").await;
    let token = first.header("x-switchyard-session").unwrap().to_string();
    let key = session_key(&token);
    // Coming back every 250 ms for 3.5 s: well past the 2 s TTL of the first write.
    let until = std::time::Instant::now() + Duration::from_millis(3500);
    while std::time::Instant::now() < until {
        let reply = client
            .get_with("/stream/live", &[("x-switchyard-session", &token)])
            .await;
        assert_eq!(reply.backend(), first.backend());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let stored = redis
        .get(&key)
        .expect("the record outlived its first TTL: it was refreshed");
    let record: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert!(
        record["resume_count"].as_u64().unwrap() >= 5,
        "resumes are counted in the shared record: {record}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_websocket_session_keeps_its_record_alive_in_redis() {
    use futures_util::StreamExt;
    let redis = RedisServer::start();
    let bs = backends(&["w1", "w2"]).await;
    let r = router(&format!(
        "[sessions]\nstore = \"redis\"\nredis_url = \"{}\"\nttl = \"2s\"\n{}{}",
        redis.url(),
        "[[routes]]\nid = \"ws\"\npath_prefix = \"/ws\"\npool = \"ws\"\nsticky = true\n",
        pool_with(
            "ws",
            "least_connections",
            &bs,
            "health = { kind = \"none\" }"
        )
    ));
    let stream = tokio::net::TcpStream::connect(r.addr()).await.unwrap();
    let (mut ws, answer) =
        tokio_tungstenite::client_async(format!("ws://{}/ws/echo", r.addr()), stream)
            .await
            .expect("the session opens");
    let token = answer.headers()["x-switchyard-session"]
        .to_str()
        .unwrap()
        .to_string();
    let key = session_key(&token);
    // Held silently for 3.5 s, well past the 2 s TTL of the first write.
    let idle = tokio::time::timeout(Duration::from_millis(3500), ws.next()).await;
    assert!(idle.is_err(), "the session stays open and quiet: {idle:?}");
    assert!(
        redis.get(&key).is_some(),
        "the record of a held session outlived its TTL: the session refreshes it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_nobody_came_back_for_lives_in_redis_only_briefly() {
    let redis = RedisServer::start();
    let bs = backends(&["u1", "u2"]).await;
    let r = node_with(&bs, &redis, "ttl = \"1h\"\nunconfirmed_ttl = \"30s\"");
    let client = Client::new(r.addr());
    // A token-less request: its record reaches Redis with the short TTL only, so a flood of
    // them costs Redis their rate times 30 s, not times an hour.
    let first = client.get("/stream/x").await;
    let token = first.header("x-switchyard-session").unwrap().to_string();
    let key = session_key(&token);
    eventually("the record in Redis", Duration::from_secs(10), || {
        redis.ttl(&key).is_some()
    })
    .await;
    let ttl = redis.ttl(&key).unwrap();
    assert!(ttl <= 30, "an unconfirmed record kept for {ttl} s");
    // The client comes back with its token: now it is a viewer, kept for the full hour.
    let back = client
        .get_with("/stream/x", &[("x-switchyard-session", &token)])
        .await;
    assert_eq!(back.backend(), first.backend());
    eventually(
        "the record gets the full TTL",
        Duration::from_secs(10),
        || redis.ttl(&key).is_some_and(|ttl| ttl > 3000),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_is_confirmed_when_it_opens() {
    let redis = RedisServer::start();
    let bs = backends(&["v1"]).await;
    let key = std::env::temp_dir().join(format!("switchyard-test-key-{}", redis.port));
    std::fs::write(&key, "a shared test key").unwrap();
    let r = router(&format!(
        "[sessions]\nstore = \"redis\"\nredis_url = \"{}\"\nttl = \"1h\"\nunconfirmed_ttl = \"30s\"\n\
         [[routes]]\nid = \"ws\"\npath_prefix = \"/ws\"\npool = \"ws\"\nsticky = true\n{}",
        redis.url(),
        pool_with("ws", "round_robin", &bs, "health = { kind = \"none\" }")
    ));
    let (_ws, answer) = connect(r.addr(), &[]).await;
    let token = answer.headers()["x-switchyard-session"].to_str().unwrap();
    let key = session_key(token);
    eventually(
        "the record gets the full TTL",
        Duration::from_secs(10),
        || redis.ttl(&key).is_some_and(|ttl| ttl > 3000),
    )
    .await;
}
