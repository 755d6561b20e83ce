//! Weighted traffic splits (`split = [...]` in place of `pool`): viewers land within a percent
//! of the weights and keep their pool through any router node and after a restart; a viewer
//! without a key is given a session token and sticks by it; testers pick a pool with the
//! override header; the response header and the metric name the pool; sticky sessions and
//! WebSocket sessions stay on their pool's backends. Loopback only.

mod support;

use std::collections::HashMap;

use futures_util::StreamExt;
use support::*;

/// Pools `v1` (backends a1, a2) and `v2` (b1), and the key file every node signs tokens with.
struct Fleet {
    v1: Vec<TestBackend>,
    v2: Vec<TestBackend>,
    key_file: std::path::PathBuf,
}

impl Fleet {
    async fn start() -> Fleet {
        let key_file = std::env::temp_dir().join(format!(
            "switchyard-test-split-key-{}",
            uuid::Uuid::new_v4()
        ));
        std::fs::write(&key_file, "a key every node of the test shares").unwrap();
        Fleet {
            v1: backends(&["a1", "a2"]).await,
            v2: backends(&["b1"]).await,
            key_file,
        }
    }

    /// A router node whose route `api` (`/`) has `route` keys: a split and its options.
    fn node(&self, route: &str) -> switchyard::RouterHandle {
        self.node_named("api", route)
    }

    /// [`Fleet::node`] with route id `id` (metrics are per process, shared by the tests
    /// running at once: a test that reads them names its route apart).
    fn node_named(&self, id: &str, route: &str) -> switchyard::RouterHandle {
        let none = "health = { kind = \"none\" }";
        router(&format!(
            "[sessions]\ncookie_key_file = \"{}\"\n\
             [[routes]]\nid = \"{id}\"\npath_prefix = \"/\"\n{route}\n{}{}",
            self.key_file.display(),
            pool_with("v1", "round_robin", &self.v1, none),
            pool_with("v2", "round_robin", &self.v2, none),
        ))
    }

    /// The pool a backend id belongs to.
    fn pool_of(&self, backend: &str) -> &'static str {
        match backend {
            "a1" | "a2" => "v1",
            "b1" => "v2",
            other => panic!("answered by {other:?}, in no pool of the test"),
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.key_file);
    }
}

/// A 95/5 split by user id, naming the pool in the response; no rate limit (the test sends
/// 100,000 requests from one address).
const BY_USER: &str = "split = [{ pool = \"v1\", weight = 95 }, { pool = \"v2\", weight = 5 }]\n\
     split_by = { header = \"x-user-id\" }\nsplit_response_header = \"x-switchyard-pool\"\n\
     rate_limit = { per_ip = 0 }";

/// The pool that served each user, asked through `node` with `concurrency` requests at
/// once; the response header and the answering backend must agree.
async fn pools_of(
    fleet: &Fleet,
    node: &switchyard::RouterHandle,
    users: impl Iterator<Item = u32>,
) -> HashMap<u32, &'static str> {
    let client = Client::new(node.addr());
    futures_util::stream::iter(users)
        .map(|user| {
            let client = &client;
            async move {
                let id = format!("viewer-{user}");
                let reply = client.get_with("/", &[("x-user-id", &id)]).await;
                assert_eq!(reply.status, 200, "{id}: {}", reply.text());
                let pool = fleet.pool_of(reply.backend());
                assert_eq!(
                    reply.header("x-switchyard-pool"),
                    Some(pool),
                    "{id}: the header names another pool than the backend's"
                );
                (user, pool)
            }
        })
        .buffer_unordered(32)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_land_within_a_percent_of_the_weights_and_keep_their_pool_on_every_node_and_after_a_restart()
 {
    const USERS: u32 = 100_000;
    let fleet = Fleet::start().await;
    let a = fleet.node_named("ab", BY_USER);
    let b = fleet.node_named("ab", BY_USER);

    let first = pools_of(&fleet, &a, 0..USERS).await;
    let on_v2 = first.values().filter(|p| **p == "v2").count() as f64 / f64::from(USERS);
    assert!(
        (on_v2 - 0.05).abs() <= 0.01,
        "{:.2} % of {USERS} users on v2 for a weight of 5 %",
        on_v2 * 100.0
    );
    let counted = metric(
        &a,
        "switchyard_split_requests_total{route=\"ab\",pool=\"v2\"}",
    )
    .await;
    assert_eq!(
        counted as usize,
        first.values().filter(|p| **p == "v2").count(),
        "switchyard_split_requests_total disagrees with the answers"
    );

    // The same users through the other node, and through a new node after a restart.
    let sample = || (0..USERS).step_by(50);
    let through_b = pools_of(&fleet, &b, sample()).await;
    drop(a);
    let restarted = fleet.node_named("ab", BY_USER);
    let after_restart = pools_of(&fleet, &restarted, sample()).await;
    for user in sample() {
        assert_eq!(
            (through_b[&user], after_restart[&user]),
            (first[&user], first[&user]),
            "viewer-{user} changed pool (node b, then after the restart)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_without_a_key_is_given_a_token_and_stays_in_its_pool_on_every_node() {
    let fleet = Fleet::start().await;
    let route = "split = [{ pool = \"v1\", weight = 50 }, { pool = \"v2\", weight = 50 }]";
    let (a, b) = (fleet.node(route), fleet.node(route));
    let (via_a, via_b) = (Client::new(a.addr()), Client::new(b.addr()));
    let mut seen = HashMap::new();
    for viewer in 0..40 {
        let first = via_a.get("/").await;
        let token = first
            .header("x-switchyard-session")
            .unwrap_or_else(|| panic!("viewer {viewer}: no token on the first answer"))
            .to_string();
        let pool = fleet.pool_of(first.backend());
        *seen.entry(pool).or_insert(0) += 1;
        for via in [&via_a, &via_b, &via_a] {
            let again = via.get_with("/", &[("x-switchyard-session", &token)]).await;
            assert_eq!(
                fleet.pool_of(again.backend()),
                pool,
                "viewer {viewer} left its pool"
            );
            assert!(
                again.header("x-switchyard-session").is_none(),
                "a viewer with a token was given another"
            );
        }
        // The cookie serves as well as the header.
        let cookie = format!("sy_session={token}");
        let by_cookie = via_b.get_with("/", &[("cookie", &cookie)]).await;
        assert_eq!(fleet.pool_of(by_cookie.backend()), pool);
    }
    assert!(
        seen.len() == 2,
        "40 new viewers on a 50/50 split all went to one pool: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_override_header_picks_a_pool_even_at_weight_zero_and_is_off_unless_configured() {
    let fleet = Fleet::start().await;
    let split = "split = [{ pool = \"v1\", weight = 100 }, { pool = \"v2\", weight = 0 }]";
    let node = fleet.node(&format!(
        "{split}\nsplit_override_header = \"x-switchyard-variant\""
    ));
    let client = Client::new(node.addr());
    for _ in 0..5 {
        let tester = client
            .get_with("/", &[("x-switchyard-variant", "v2")])
            .await;
        assert_eq!(tester.backend(), "b1", "the override was not honoured");
        let viewer = client.get("/").await;
        assert_eq!(
            fleet.pool_of(viewer.backend()),
            "v1",
            "weight 0 took a viewer"
        );
        let unknown = client
            .get_with("/", &[("x-switchyard-variant", "v9")])
            .await;
        assert_eq!(fleet.pool_of(unknown.backend()), "v1");
        assert!(
            viewer.header("x-switchyard-pool").is_none(),
            "the pool header is off unless configured"
        );
    }

    let without = fleet.node(split);
    let client = Client::new(without.addr());
    let asked = client
        .get_with("/", &[("x-switchyard-variant", "v2")])
        .await;
    assert_eq!(
        fleet.pool_of(asked.backend()),
        "v1",
        "an override header that is not configured was honoured"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_session_stays_on_its_backend_in_its_pool() {
    let fleet = Fleet::start().await;
    let node = fleet.node(
        "sticky = true\nsplit = [{ pool = \"v1\", weight = 1 }, { pool = \"v2\", weight = 1 }]",
    );
    let client = Client::new(node.addr());
    let mut pools = HashMap::new();
    // New viewers until each pool has had three (1 in 2^20 not to get there in 40).
    for viewer in 0..40 {
        if pools.len() == 2 && pools.values().all(|n| *n >= 3) {
            break;
        }
        let first = client.get("/").await;
        let token = first
            .header("x-switchyard-session")
            .expect("a sticky route issues a token")
            .to_string();
        let cookies = first.headers.get_all("set-cookie").iter().count();
        assert_eq!(
            cookies, 1,
            "the split and the sticky route issued {cookies} cookies"
        );
        *pools.entry(fleet.pool_of(first.backend())).or_insert(0) += 1;
        for _ in 0..5 {
            let again = client
                .get_with("/", &[("x-switchyard-session", &token)])
                .await;
            assert_eq!(
                again.backend(),
                first.backend(),
                "viewer {viewer}'s sticky session moved (round robin would alternate a1/a2)"
            );
        }
    }
    assert!(
        pools.len() == 2 && pools.values().all(|n| *n >= 3),
        "40 viewers did not reach both pools: {pools:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_opens_in_the_pool_the_split_chose() {
    let fleet = Fleet::start().await;
    let node = fleet.node(&format!(
        "{BY_USER}\nsplit_override_header = \"x-switchyard-variant\""
    ));
    let (mut ws, answer) = connect(node.addr(), &[("x-switchyard-variant", "v2")]).await;
    let header = |name: &str| answer.headers().get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("x-switchyard-pool"), Some("v2"));
    assert_eq!(header("x-backend-id"), Some("b1"));
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text("hello")).await.unwrap();
    let echoed = ws.next().await.expect("an echo").unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "b1: hello");
}
