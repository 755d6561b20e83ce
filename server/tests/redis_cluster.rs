//! Sessions and shared rate limits on a Redis Cluster: three masters with a replica each. A
//! session made through one node resumes through another; when a master is killed under
//! session load no request fails, the cluster promotes its replica, and every session — made
//! before the kill or during the failover — resumes on its backend through the other node.

mod support;

use std::time::Duration;

use support::*;
use switchyard_load::procs::{RedisCluster, ScratchDir};

/// Fails over a master that stops answering for this long.
const NODE_TIMEOUT: Duration = Duration::from_millis(1000);

fn cluster_ok(port: u16) -> bool {
    redis_query::<String>(port, redis::cmd("CLUSTER").arg("INFO"))
        .is_some_and(|info| info.contains("cluster_state:ok"))
}

/// A key's value read through the cluster (routed to the slot's master).
fn cluster_get(nodes: &[String], key: &str) -> Option<String> {
    let urls: Vec<String> = nodes.iter().map(|n| format!("redis://{n}")).collect();
    let client = redis::cluster::ClusterClient::new(urls).ok()?;
    let mut conn = client.get_connection().ok()?;
    redis::cmd("GET").arg(key).query(&mut conn).ok().flatten()
}

/// The port of the master a node at `port` sees as master `nth` (by its listing).
fn masters(port: u16) -> Vec<u16> {
    let nodes: String = redis_query(port, redis::cmd("CLUSTER").arg("NODES")).unwrap_or_default();
    nodes
        .lines()
        .filter(|line| line.contains("master") && !line.contains("fail"))
        .filter_map(|line| {
            let addr = line.split(' ').nth(1)?; // 127.0.0.1:port@bus
            addr.split('@').next()?.rsplit(':').next()?.parse().ok()
        })
        .collect()
}

/// Three masters and three replicas, every node seeing the cluster ok and every replica in
/// sync with its master.
async fn started_cluster(scratch: &ScratchDir) -> RedisCluster {
    let cluster = RedisCluster::start(scratch, 3, NODE_TIMEOUT).expect("a Redis Cluster");
    for (port, _) in &cluster.nodes {
        let port = *port;
        eventually(
            &format!("node {port}: cluster_state:ok"),
            Duration::from_secs(30),
            || cluster_ok(port),
        )
        .await;
    }
    for (port, _) in &cluster.nodes[3..] {
        let port = *port;
        eventually(
            &format!("replica {port} in sync"),
            Duration::from_secs(30),
            || {
                redis_query::<String>(port, redis::cmd("INFO").arg("replication")).is_some_and(
                    |info| info.contains("role:slave") && info.contains("master_link_status:up"),
                )
            },
        )
        .await;
    }
    cluster
}

/// A router node on the cluster (given three seed nodes, as an operator would).
fn node(
    bs: &[TestBackend],
    cluster: &RedisCluster,
    key: &std::path::Path,
) -> switchyard::RouterHandle {
    let seeds: Vec<String> = cluster
        .addresses()
        .into_iter()
        .take(3)
        .map(|a| format!("\"{a}\""))
        .collect();
    // A generous store timeout: the test is about the failover, not about a busy machine
    // making one lookup late (a late lookup places the session anew, by design).
    router(&format!(
        "[sessions]\nstore = \"redis\"\nstore_timeout = \"1s\"\ncookie_key_file = \"{}\"\n\
         cluster_nodes = [{}]\n\
         [[routes]]\nid = \"stream\"\npath_prefix = \"/stream\"\npool = \"stream\"\nsticky = true\n{}",
        key.display(),
        seeds.join(", "),
        pool_with("stream", "round_robin", bs, "health = { kind = \"none\" }")
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_a_master_killed_under_load() {
    let scratch = ScratchDir::new("cluster").unwrap();
    let mut cluster = started_cluster(&scratch).await;
    let key = scratch.write("cookie-key", "a shared test key").unwrap();
    let bs = backends(&["s1", "s2", "s3"]).await;
    let a = node(&bs, &cluster, &key);
    let b = node(&bs, &cluster, &key);
    let via_a = Client::new(a.addr());
    let nodes = cluster.addresses();

    // Sessions made through A reach the cluster, spread over its masters.
    let mut made: Vec<(String, String)> = Vec::new();
    for n in 0..30 {
        let reply = via_a.get(&format!("/stream/before-{n}")).await;
        assert_eq!(reply.status, 200);
        let token = reply.header("x-switchyard-session").unwrap().to_string();
        made.push((token, reply.backend().to_string()));
    }
    for (token, _) in &made {
        eventually("a record in the cluster", Duration::from_secs(10), || {
            cluster_get(&nodes, &session_key(token)).is_some()
        })
        .await;
    }

    // Kill a master once its replica holds what it has (Redis replicates asynchronously: a
    // record written in the last milliseconds before a master dies can be lost).
    let victim = masters(cluster.nodes[0].0)[0];
    let replicated: Option<i64> = redis_query(victim, redis::cmd("WAIT").arg(1).arg(2000));
    assert_eq!(
        replicated,
        Some(1),
        "the victim's replica did not acknowledge"
    );
    let (_, proc) = cluster
        .nodes
        .iter_mut()
        .find(|(port, _)| *port == victim)
        .unwrap();
    proc.kill();

    // Session load goes on during the failover: every request is answered.
    let survivor = cluster
        .nodes
        .iter()
        .map(|(p, _)| *p)
        .find(|p| *p != victim)
        .unwrap();
    let until = std::time::Instant::now() + NODE_TIMEOUT * 4;
    let mut n = 0;
    while std::time::Instant::now() < until || !cluster_ok(survivor) {
        let reply = via_a.get(&format!("/stream/during-{n}")).await;
        assert_eq!(
            reply.status,
            200,
            "a failed request during the failover: {}",
            reply.text()
        );
        let token = reply.header("x-switchyard-session").unwrap().to_string();
        made.push((token, reply.backend().to_string()));
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(n < 1000, "the cluster did not recover from the kill");
    }
    println!(
        "{n} sessions made during the failover of master {victim}; {} in all",
        made.len()
    );
    assert!(
        !masters(survivor).contains(&victim),
        "the killed master is still listed"
    );

    // Every session's record is in the cluster — those made during the failover were kept by
    // node A and written once their slot had a master again — and B resumes each on its backend.
    let alive: Vec<String> = nodes
        .iter()
        .filter(|a| !a.ends_with(&format!(":{victim}")))
        .cloned()
        .collect();
    for (token, _) in &made {
        eventually(
            "every record in the recovered cluster",
            Duration::from_secs(20),
            || cluster_get(&alive, &session_key(token)).is_some(),
        )
        .await;
    }
    resumes_each_on_its_backend(&b, &made).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_rate_limits_count_across_nodes_on_a_cluster() {
    let scratch = ScratchDir::new("cluster-rl").unwrap();
    let cluster = started_cluster(&scratch).await;
    let nodes = cluster.addresses();
    let bs = backends(&["s1"]).await;
    let seeds: Vec<String> = nodes.iter().map(|a| format!("\"{a}\"")).collect();
    // Route `cl-ip` limits by address; `cl-key` by API key as well, so a request there checks
    // two buckets in two slots. `cl-probe` shows when a node counts in the cluster.
    let node = |name: &str| {
        router(&format!(
            "[sessions]\nstore = \"redis\"\nstore_timeout = \"1s\"\ncluster_nodes = [{}]\n\
             [[routes]]\nid = \"cl-ip\"\npath_prefix = \"/ip\"\npool = \"api\"\n\
             rate_limit = {{ per_ip = 1, burst = 3, shared = true }}\n\
             [[routes]]\nid = \"cl-key\"\npath_prefix = \"/key\"\npool = \"api\"\n\
             rate_limit = {{ per_ip = 1000, burst = 1000, key_header = \"x-api-key\", per_key = 1, key_burst = 3, shared = true }}\n\
             [[routes]]\nid = \"cl-probe-{name}\"\npath_prefix = \"/probe\"\npool = \"api\"\n\
             rate_limit = {{ per_ip = 1, burst = 1000, shared = true }}\n{}",
            seeds.join(", "),
            pool_with("api", "round_robin", &bs, "health = { kind = \"none\" }")
        ))
    };
    let (a, b) = (node("a"), node("b"));
    let (via_a, via_b) = (Client::new(a.addr()), Client::new(b.addr()));
    for (name, node, client) in [("a", &a, &via_a), ("b", &b, &via_b)] {
        let bucket = format!("switchyard:session:rl:cl-probe-{name}:127.0.0.1");
        let mut counted = false;
        for _ in 0..200 {
            assert_eq!(client.get("/probe").await.status, 200);
            if cluster_get(&nodes, &bucket).is_some() {
                counted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !counted {
            let fallbacks = metric(
                node,
                &format!("switchyard_rate_limit_fallbacks_total{{route=\"cl-probe-{name}\"}}"),
            )
            .await;
            panic!(
                "node {name} never counted its probe route in the cluster ({fallbacks} fallbacks; \
                 store up: {})",
                metric(node, "switchyard_session_store_up").await
            );
        }
    }

    // One burst of 3 for the address, shared: 2 through A and 1 through B pass, then neither
    // node passes a 4th.
    let mut statuses = Vec::new();
    for client in [&via_a, &via_a, &via_b, &via_b, &via_a] {
        statuses.push(client.get("/ip/x").await.status);
    }
    assert_eq!(
        statuses,
        vec![200, 200, 200, 429, 429],
        "the shared address limit"
    );

    // Per key, with the address bucket in another slot: key k1's burst of 3 is shared too,
    // and k2 has its own.
    let mut statuses = Vec::new();
    for client in [&via_a, &via_b, &via_a, &via_b] {
        statuses.push(
            client
                .get_with("/key/x", &[("x-api-key", "k1")])
                .await
                .status,
        );
    }
    assert_eq!(statuses, vec![200, 200, 200, 429], "the shared key limit");
    assert_eq!(
        via_b
            .get_with("/key/x", &[("x-api-key", "k2")])
            .await
            .status,
        200
    );
}
