//! Regions: the directory orders regions by distance from the client (located by query, a
//! trusted geo header, or the node's own region), a region whose routers stop answering goes
//! last, and a route whose local pool has no capacity is served through the next region —
//! forwarded once at most, or redirected; sessions are told to move with `4003`.

mod support;

use std::time::{Duration, Instant};

use support::*;
use switchyard::config::Config;
use tokio_tungstenite::tungstenite::Message;

/// Real data-centre locations.
const REGIONS: [(&str, f64, f64); 3] = [
    ("us-east", 39.0438, -77.4874),     // Ashburn
    ("eu-west", 53.3498, -6.2603),      // Dublin
    ("ap-southeast", 1.3521, 103.8198), // Singapore
];
const PARIS: &str = "lat=48.8566&lon=2.3522";
const TOKEN: &str = "a-regions-test-admin-token";

/// The admin token file every test router reads (written once: tests run in parallel, and a
/// file rewritten while another router reads it would look empty).
fn token_file() -> std::path::PathBuf {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("switchyard-regions-token-{}", std::process::id()));
        std::fs::write(&path, TOKEN).unwrap();
        path
    })
    .clone()
}

/// One router per region, each knowing all three; region k's pool holds `pools[k]`'s
/// backends (none alive: its checks fail), its route overflows as `overflow`.
struct World {
    addrs: Vec<std::net::SocketAddr>,
    routers: Vec<Option<switchyard::RouterHandle>>,
}

impl World {
    fn start(pools: [&[TestBackend]; 3], overflow: &str, directory_extra: &str) -> World {
        let addrs: Vec<_> = (0..3).map(|_| free_addr()).collect();
        let regions: String = REGIONS
            .iter()
            .zip(&addrs)
            .map(|((name, lat, lon), addr)| {
                format!(
                    "[[regions]]\nname = \"{name}\"\nlocation = {{ lat = {lat}, lon = {lon} }}\nendpoint = \"http://{addr}\"\n"
                )
            })
            .collect();
        let routers = (0..3)
            .map(|k| {
                let backends: Vec<String> = if pools[k].is_empty() {
                    vec![format!("{{ id = \"dead-{k}\", address = \"{}\" }}", dead_address())]
                } else {
                    pools[k]
                        .iter()
                        .map(|b| format!("{{ id = \"{}\", address = \"{}\" }}", b.id(), b.addr()))
                        .collect()
                };
                let text = format!(
                    "[node]\nregion = \"{}\"\nlisten = \"{}\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = 1\nshutdown_timeout = \"1s\"\nadmin_token_file = \"{}\"\n\
                     [log]\naccess = false\n\
                     [directory]\nprobe_interval = \"100ms\"\nprobe_timeout = \"200ms\"\nrise = 1\nfall = 2\n{directory_extra}\n\
                     {regions}\
                     [[routes]]\nid = \"api\"\npath_prefix = \"/\"\npool = \"api\"\nretries = 0\noverflow = \"{overflow}\"\n\
                     [[pools]]\nid = \"api\"\nhealth = {{ kind = \"tcp\", interval = \"100ms\", timeout = \"100ms\", rise = 1, fall = 1 }}\nbackends = [{}]\n",
                    REGIONS[k].0,
                    addrs[k],
                    token_file().display(),
                    backends.join(", ")
                );
                let config = Config::from_toml_str(&text)
                    .unwrap_or_else(|err| panic!("invalid test config:\n{err}\n{text}"));
                Some(switchyard::start(config).expect("router starts"))
            })
            .collect();
        World { addrs, routers }
    }

    /// Waits (bounded) until node `k` has heard from every other region once: before its
    /// first probe answers, a remote region counts as unhealthy and is ordered last.
    async fn probed(&self, k: usize) {
        wait_for(
            &format!("node {k} has probed the other regions"),
            Duration::from_secs(10),
            async || {
                let answer = self.directory(k, "", &[]).await;
                let regions = answer["regions"].as_array().unwrap();
                regions.iter().all(|r| r["healthy"] == true)
            },
        )
        .await;
    }

    fn client(&self, k: usize) -> Client {
        Client::new(self.addrs[k])
    }

    async fn directory(
        &self,
        k: usize,
        query: &str,
        headers: &[(&str, &str)],
    ) -> serde_json::Value {
        let reply = self
            .client(k)
            .get_with(&format!("/v1/regions?{query}"), headers)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }
}

fn names(directory: &serde_json::Value) -> Vec<String> {
    directory["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_orders_regions_by_distance_and_puts_a_silent_region_last() {
    let (a, b, c) = (
        backends(&["us-1"]).await,
        backends(&["eu-1"]).await,
        backends(&["ap-1"]).await,
    );
    let mut world = World::start([&a, &b, &c], "off", "");
    world.probed(0).await;
    // A client in Paris, asking the us-east node: eu-west, then us-east, then ap-southeast.
    let answer = world.directory(0, PARIS, &[]).await;
    assert_eq!(
        names(&answer),
        ["eu-west", "us-east", "ap-southeast"],
        "{answer}"
    );
    assert_eq!(answer["client"]["source"], "query");
    assert_eq!(answer["ttl_s"], 30);
    let first = &answer["regions"][0];
    assert_eq!(first["endpoint"], format!("http://{}", world.addrs[1]));
    assert_eq!(first["healthy"], true);
    let km = first["distance_km"].as_f64().unwrap();
    assert!((770.0..790.0).contains(&km), "Paris-Dublin {km} km");
    // Without a location the node's own region comes first.
    let answer = world.directory(2, "", &[]).await;
    assert_eq!(answer["client"]["source"], "default");
    assert_eq!(names(&answer)[0], "ap-southeast");

    // eu-west's router stops answering: within its fall threshold it is unhealthy and last.
    world.routers[1].take().unwrap().stop();
    wait_for(
        "eu-west is marked unhealthy",
        Duration::from_secs(10),
        async || {
            let answer = world.directory(0, PARIS, &[]).await;
            names(&answer) == ["us-east", "ap-southeast", "eu-west"]
                && answer["regions"][2]["healthy"] == false
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_geo_header_is_believed_only_from_a_trusted_proxy() {
    let (a, b, c) = (
        backends(&["us-1"]).await,
        backends(&["eu-1"]).await,
        backends(&["ap-1"]).await,
    );
    let singapore = [("x-client-geo", "1.35,103.82")];
    let untrusting = World::start([&a, &b, &c], "off", "");
    untrusting.probed(1).await;
    let answer = untrusting.directory(1, "", &singapore).await;
    assert_eq!(answer["client"]["source"], "default", "{answer}");
    assert_eq!(names(&answer)[0], "eu-west");
    let trusting = World::start([&a, &b, &c], "off", "trusted_proxies = [\"127.0.0.1/32\"]");
    trusting.probed(1).await;
    let answer = trusting.directory(1, "", &singapore).await;
    assert_eq!(answer["client"]["source"], "header", "{answer}");
    assert_eq!(names(&answer)[0], "ap-southeast");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_without_local_backends_is_served_through_the_nearest_region_once() {
    let b = backends(&["eu-1"]).await;
    // us-east has no live backend; eu-west (nearer than ap-southeast) has one.
    let world = World::start([&[], &b, &[]], "forward", "");
    wait_for(
        "us-east's backend is down",
        Duration::from_secs(10),
        async || {
            let reply = world.client(0).get("/titles").await;
            reply.status == 200
        },
    )
    .await;
    let reply = world.client(0).get("/titles").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.backend(),
        "eu-1",
        "served by the next region's backend"
    );
    // A request that already made its hop is never forwarded again.
    let hopped = world
        .client(0)
        .get_with("/titles", &[("x-switchyard-hop", "ap-southeast")])
        .await;
    assert_eq!(hopped.status, 503, "{}", hopped.text());
    // From an address that is no region's router the header means nothing: a viewer cannot
    // keep its request from moving, and the header never reaches a backend.
    let viewer = Client::from_address(world.addrs[0], [127, 0, 0, 2].into());
    let reply = viewer
        .get_with("/titles?echo=1", &[("x-switchyard-hop", "ap-southeast")])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.backend(), "eu-1");
    let seen = reply.text().to_lowercase();
    assert!(
        !seen.contains("x-switchyard-hop"),
        "a hop header reached the backend: {seen}"
    );

    // Loop prevention: no region has a backend. A forwarded request carries the hop header
    // and is never forwarded again, so the answer is a 503, not a request bouncing between
    // regions.
    let world = World::start([&[], &[], &[]], "forward", "");
    let started = Instant::now();
    let reply = world.client(0).get("/titles").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(
        reply.header("x-switchyard-error"),
        Some("no_healthy_backend")
    );
    assert!(started.elapsed() < Duration::from_secs(5), "no ping-pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_mode_sends_requests_and_sessions_to_the_next_region() {
    let b = backends(&["eu-1"]).await;
    let world = World::start([&[], &b, &[]], "redirect", "");
    wait_for("us-east redirects", Duration::from_secs(10), async || {
        world.client(0).get("/titles?x=1").await.status == 307
    })
    .await;
    let reply = world.client(0).get("/titles?x=1").await;
    assert_eq!(
        reply.header("location"),
        Some(format!("http://{}/titles?x=1", world.addrs[1]).as_str())
    );
    assert_eq!(reply.header("x-switchyard-region"), Some("eu-west"));
    // A WebSocket session is told to move with 4003, naming the region.
    let (mut ws, _) = connect(world.addrs[0], &[]).await;
    match next(&mut ws).await {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 4003);
            assert_eq!(
                moved_fields(&frame.reason)["region"],
                "eu-west",
                "{}",
                frame.reason
            );
        }
        other => panic!("expected close 4003, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evacuating_a_region_moves_its_sessions_and_orders_it_last() {
    let (a, b, c) = (
        backends(&["us-1"]).await,
        backends(&["eu-1"]).await,
        backends(&["ap-1"]).await,
    );
    let world = World::start([&a, &b, &c], "off", "");
    world.probed(1).await;
    // eu-west evacuates itself: its live sessions get 4003 naming the next region (us-east
    // is nearer Dublin than Singapore), it goes last in the directory, new sessions move.
    let eu = world.routers[1].as_ref().unwrap();
    let (mut ws, _) = connect(eu.addr(), &[]).await;
    futures_util::SinkExt::send(&mut ws, Message::text("hi"))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await, Message::text("eu-1: hi"));
    let admin = Client::new(eu.admin_addr());
    let call = async |path: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        admin
            .send(
                http::Method::POST,
                path,
                &headers,
                bytes::Bytes::from_static(b"{\"spread_s\": 0}"),
            )
            .await
    };
    assert_eq!(
        call("/admin/v1/regions/eu-west/evacuate", None)
            .await
            .status,
        401
    );
    assert_eq!(
        call("/admin/v1/regions/mars/evacuate", Some(TOKEN))
            .await
            .status,
        404
    );
    let reply = call("/admin/v1/regions/eu-west/evacuate", Some(TOKEN)).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(reply.json()["sessions_moving"], 1);
    match next(&mut ws).await {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 4003);
            assert_eq!(
                moved_fields(&frame.reason)["region"],
                "us-east",
                "{}",
                frame.reason
            );
        }
        other => panic!("expected close 4003, got {other:?}"),
    }
    let answer = world.directory(1, PARIS, &[]).await;
    assert_eq!(
        names(&answer).last().map(String::as_str),
        Some("eu-west"),
        "{answer}"
    );
    assert_eq!(answer["regions"][2]["evacuating"], true);
    let (mut again, _) = connect(eu.addr(), &[]).await;
    match next(&mut again).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4003),
        other => panic!("a new session expected close 4003, got {other:?}"),
    }
    // The undo.
    assert_eq!(
        call("/admin/v1/regions/eu-west/unevacuate", Some(TOKEN))
            .await
            .status,
        200
    );
    let answer = world.directory(1, PARIS, &[]).await;
    assert_eq!(names(&answer)[0], "eu-west", "{answer}");

    // An evacuation lifted half-way: sessions not yet asked to move stay.
    let (mut first, _) = connect(eu.addr(), &[]).await;
    let (mut second, _) = connect(eu.addr(), &[]).await;
    let reply = admin
        .send(
            http::Method::POST,
            "/admin/v1/regions/eu-west/evacuate",
            &[("authorization", &format!("Bearer {TOKEN}"))],
            bytes::Bytes::from_static(b"{\"spread_s\": 4}"),
        )
        .await;
    // (An earlier session may still be finishing its close handshake and be counted.)
    let moving = reply.json()["sessions_moving"].as_u64().unwrap();
    assert!(moving >= 2, "{}", reply.text());
    assert!(matches!(next(&mut first).await, Message::Close(Some(_))));
    assert_eq!(
        call("/admin/v1/regions/eu-west/unevacuate", Some(TOKEN))
            .await
            .status,
        200
    );
    // The spread would have reached the second session within 3 s.
    let quiet = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        futures_util::StreamExt::next(&mut second),
    )
    .await;
    assert!(quiet.is_err(), "the second session was closed: {quiet:?}");
    futures_util::SinkExt::send(&mut second, Message::text("stayed"))
        .await
        .unwrap();
    assert_eq!(next(&mut second).await, Message::text("eu-1: stayed"));
}
