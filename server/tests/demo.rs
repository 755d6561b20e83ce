//! `switchyard demo`, run as a new user would: the banner names where it listens, every route
//! of the design brief answers at once, metrics count the traffic, and Ctrl-C stops it cleanly.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::Client;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const BANNER_DEADLINE: Duration = Duration::from_secs(30);

/// The demo process; killed on drop if a test fails before stopping it.
struct DemoProcess {
    child: Child,
    router: SocketAddr,
    admin: SocketAddr,
    token: String,
    banner: String,
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> DemoProcess {
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start switchyard demo");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + BANNER_DEADLINE;
    let mut banner = String::new();
    let (mut router, mut admin, mut token) = (None, None, None);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no complete banner within {BANNER_DEADLINE:?}:\n{banner}"));
        banner.push_str(&line);
        banner.push('\n');
        let addr = |l: &str| {
            l.split_whitespace()
                .nth(1)
                .and_then(|u| u.strip_prefix("http://"))
                .and_then(|a| a.parse().ok())
        };
        if line.starts_with("  router ") {
            router = addr(&line);
        } else if line.starts_with("  admin ") {
            admin = addr(&line);
        } else if let Some(t) = line.strip_prefix("admin token: ") {
            token = Some(t.to_string());
        } else if line.starts_with("Ctrl-C stops") {
            break;
        }
    }
    // Keep draining stdout (access logs) so the demo never blocks on a full pipe.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    DemoProcess {
        child,
        router: router.unwrap_or_else(|| panic!("no router address in banner:\n{banner}")),
        admin: admin.unwrap_or_else(|| panic!("no admin address in banner:\n{banner}")),
        token: token.unwrap_or_else(|| panic!("no admin token in banner:\n{banner}")),
        banner,
    }
}

#[tokio::test]
async fn the_demo_answers_every_route_of_the_design_brief_and_stops_on_ctrl_c() {
    let mut demo = start_demo();
    for route in ["/api", "/stream", "/browse", "/search", "/ws"] {
        // A routes-table line starts with the prefix.
        assert!(
            demo.banner
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{route} "))),
            "banner does not list {route}:\n{}",
            demo.banner
        );
    }

    let client = Client::new(demo.router);
    for (path, pool) in [
        ("/api/titles", "api-"),
        (
            "/stream/movie?bytes=100000&chunk_bytes=10000&chunk_ms=5",
            "stream-",
        ),
        ("/browse/home", "browse-"),
        ("/search/q?term=heist", "search-"),
    ] {
        let reply = client.get(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert!(
            reply.backend().starts_with(pool),
            "{path} answered by {}",
            reply.backend()
        );
    }
    let api: std::collections::BTreeSet<_> = {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..6 {
            seen.insert(client.get("/api/titles").await.backend().to_string());
        }
        seen
    };
    assert_eq!(
        api.len(),
        3,
        "round robin over the three api backends: {api:?}"
    );
    assert_eq!(
        client.get("/nowhere").await.header("x-switchyard-error"),
        Some("no_route")
    );

    // The /ws route holds WebSocket sessions with the test backends' echo.
    {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let stream = tokio::net::TcpStream::connect(demo.router).await.unwrap();
        let url = format!("ws://{}/ws/echo", demo.router);
        let (mut ws, answer) = tokio_tungstenite::client_async(url.as_str(), stream)
            .await
            .expect("WebSocket handshake through the demo");
        let backend = answer.headers()["x-backend-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(backend.starts_with("ws-"), "{backend}");
        ws.send(Message::text("hello")).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an echo within 10 s")
            .unwrap()
            .unwrap();
        assert_eq!(reply, Message::text(format!("{backend}: hello")));
    }

    let admin = Client::new(demo.admin);
    let metrics = admin.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(
        text.lines()
            .any(|l| l.starts_with("switchyard_requests_total")
                && l.contains("route=\"api\"")
                && l.contains("status_class=\"2xx\"")),
        "no api request counter in /metrics:\n{text}"
    );
    assert!(
        text.contains("switchyard_request_duration_seconds_bucket"),
        "{text}"
    );
    assert_eq!(admin.get("/healthz").await.status, 200);
    assert_eq!(admin.get("/readyz").await.status, 200);

    // The printed token drains a demo backend, as the banner shows.
    let auth = format!("Bearer {}", demo.token);
    let drained = admin
        .send(
            http::Method::POST,
            "/admin/v1/backends/stream-1/drain",
            &[("authorization", auth.as_str())],
            bytes::Bytes::from_static(b"{\"deadline_s\": 30, \"spread_s\": 5}"),
        )
        .await;
    assert_eq!(drained.status, 202, "{}", drained.text());
    for _ in 0..4 {
        let reply = client.get("/stream/movie?bytes=10").await;
        assert_eq!(
            reply.backend(),
            "stream-2",
            "nothing new goes to the drained backend"
        );
    }

    // Ctrl-C: the demo stops by itself, with success.
    let pid = demo.child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = demo.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "demo still running 15 s after Ctrl-C"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "demo exited with {status}");
}

/// The demo starts its own backend runtime, so this test drives its client from another.
#[test]
fn the_demo_with_three_regions_answers_the_directory_and_overflows_on_evacuation() {
    let free = || -> SocketAddr {
        format!("127.0.0.1:{}", switchyard_load::procs::free_port().unwrap())
            .parse()
            .unwrap()
    };
    // The regions must know each other's ports before they start, so the ports are picked
    // first; another process may take one in between, so a bind conflict gets a fresh pick.
    let start = || {
        let (listen, admin): (Vec<_>, Vec<_>) = (0..3).map(|_| (free(), free())).unzip();
        switchyard::demo::start_regions(&listen, &admin)
    };
    let demos = (1..5)
        .fold(start(), |started, _| match started {
            Err(switchyard::StartupError::Bind { .. }) => start(),
            other => other,
        })
        .expect("three regions start");
    let banner = switchyard::demo::regions_banner(&demos);
    assert!(
        banner.contains("us-east") && banner.contains("ap-southeast"),
        "{banner}"
    );
    let token = banner
        .lines()
        .find_map(|l| l.strip_prefix("admin token: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let us_east = Client::new(demos[0].router().addr());
        let directory = us_east.get("/v1/regions?lat=48.86&lon=2.35").await.json();
        let order: Vec<_> = directory["regions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(order, ["eu-west", "us-east", "ap-southeast"], "{directory}");
        assert!(us_east.get("/api/x").await.backend().ends_with("-us-east"));

        // Evacuating us-east sends its /api requests to the nearest region.
        let auth = format!("Bearer {token}");
        let reply = Client::new(demos[0].router().admin_addr())
            .send(
                http::Method::POST,
                "/admin/v1/regions/us-east/evacuate",
                &[("authorization", auth.as_str())],
                bytes::Bytes::new(),
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.text());
        let served = us_east.get("/api/x").await;
        assert_eq!(served.status, 200, "{}", served.text());
        assert!(
            served.backend().ends_with("-eu-west"),
            "{}",
            served.backend()
        );
    });
    for demo in demos {
        demo.stop();
    }
}
