//! `switchyard-load` as a user runs it: `http` counts add up in both pacing modes, bad targets
//! and flags fail clearly, Ctrl-C still reports, `ws` holds its sessions, and `compare --quick`
//! and `scenario backend-kill` run end to end when their parts are present.

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use switchyard_load::TestBackend;

const LOAD: &str = env!("CARGO_BIN_EXE_switchyard-load");
const BACKEND: &str = env!("CARGO_BIN_EXE_switchyard-backend");

async fn backend() -> TestBackend {
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    TestBackend::start("b1", local)
        .await
        .expect("start backend")
}

/// Runs `switchyard-load ARGS` on a blocking thread (the backend keeps serving meanwhile).
async fn load(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(LOAD).args(&args).output().unwrap())
        .await
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|err| panic!("not JSON ({err}): {stdout}"))
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_run_counts_every_request_once() {
    let b = backend().await;
    let url = format!("http://{}/", b.addr());
    let out = load(args(&[
        "http",
        &url,
        "--path",
        "3:/ok",
        "--path",
        "/x?status=503",
        "-c",
        "4",
        "--requests",
        "400",
        "-d",
        "20s",
        "--json",
    ]))
    .await;
    let r = json(&out);
    assert_eq!(r["mode"], "closed");
    assert_eq!(r["requests"], 400);
    assert_eq!(
        r["status"]["2xx"], 300,
        "weights 3:1 over 400 requests: {r}"
    );
    assert_eq!(r["status"]["5xx"], 100, "{r}");
    assert_eq!(r["errors"]["io"], 0);
    assert_eq!(
        b.requests_served(),
        400,
        "the backend saw exactly what was counted"
    );
    assert!(r["latency_us"]["p50"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_run_sends_rate_times_duration() {
    let b = backend().await;
    let url = format!("http://{}/x", b.addr());
    let out = load(args(&[
        "http", &url, "--rate", "400", "-d", "1s", "-c", "8", "--json",
    ]))
    .await;
    let r = json(&out);
    assert_eq!(r["mode"], "open");
    assert_eq!(r["rate"], 400.0);
    assert_eq!(r["requests"], 400, "{r}");
    assert_eq!(r["status"]["2xx"], 400, "{r}");
    let elapsed = r["elapsed_s"].as_f64().unwrap();
    assert!((0.95..3.0).contains(&elapsed), "elapsed {elapsed}");
}

#[tokio::test]
async fn an_unreachable_target_is_named_and_fails() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = load(args(&["http", &format!("http://{dead}/"), "-d", "1s"])).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot connect to {dead}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn bad_flags_get_a_usage_error() {
    let out = load(args(&[
        "http",
        "http://127.0.0.1:1/",
        "--connections",
        "many",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'many'"));
    let out = load(args(&["http", "http://127.0.0.1:1/", "--path", "x:/a"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("weight"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_mid_run_still_reports_what_was_measured() {
    let b = backend().await;
    let url = format!("http://{}/x", b.addr());
    let child = Command::new(LOAD)
        .args([
            "http", &url, "--rate", "200", "-d", "60s", "-c", "4", "--json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    // Wait until the backend has seen traffic, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.requests_served() < 50 {
        assert!(Instant::now() < deadline, "no traffic reached the backend");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let r = json(&out);
    assert_eq!(r["interrupted"], true);
    let n = r["requests"].as_u64().unwrap();
    assert!((50..12_000).contains(&n), "requests {n}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ws_soak_holds_its_sessions_and_gets_every_echo() {
    // The backend runs as its own process so its memory per session can be read.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(BACKEND)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--id", "ws1"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "backend did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = format!("ws://127.0.0.1:{port}/ws/echo");
    let pid = server.id().to_string();
    let out = load(args(&[
        "ws",
        &url,
        "-n",
        "40",
        "--ramp",
        "400",
        "--interval",
        "100ms",
        "-d",
        "1s",
        "--pid",
        &pid,
        "--json",
    ]))
    .await;
    let _ = server.kill();
    let _ = server.wait();
    let r = json(&out);
    assert_eq!(r["sessions_opened"], 40, "{r}");
    assert_eq!(r["sessions_held"], 40, "{r}");
    assert_eq!(r["drops"], 0, "{r}");
    assert!(r["messages_sent"].as_u64().unwrap() >= 200, "{r}");
    assert_eq!(r["messages_sent"], r["messages_echoed"], "{r}");
    assert!(r["server_kib_per_session"].as_f64().is_some(), "{r}");
}

/// Asserts a scenario ran and ended with its verdict line (`NAME: N failed, …`).
fn assert_verdict(out: &Output, name: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdict = stdout.lines().last().unwrap_or("");
    assert!(verdict.starts_with(&format!("{name}: ")), "{stdout}");
    assert!(verdict.contains(" failed, "), "{verdict}");
}

/// These tests run the router binary: it must be built (`cargo test --workspace` does).
fn require_router() {
    switchyard_load::procs::required_binary("switchyard", "SWITCHYARD_BIN");
}

#[tokio::test]
async fn compare_quick_prints_the_table_with_every_installed_peer() {
    require_router();
    let out = load(args(&["compare", "--quick"])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in ["direct", "switchyard"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(row)),
            "no {row} row:\n{stdout}"
        );
    }
    for peer in ["haproxy", "nginx"] {
        let installed = switchyard_load::procs::on_path(peer).is_some();
        let row = stdout.lines().any(|l| l.starts_with(peer));
        let skipped = stdout.contains(&format!("skipped: {peer}"));
        assert_eq!((row, skipped), (installed, !installed), "{peer}:\n{stdout}");
        if !installed {
            println!("SKIPPED peer {peer}: not installed");
        }
    }
    // Every row measured something and nothing failed.
    for line in stdout.lines().filter(|l| {
        ["direct", "switchyard", "haproxy", "nginx"]
            .iter()
            .any(|p| l.starts_with(p))
    }) {
        let failures: u64 = line.split_whitespace().last().unwrap().parse().unwrap();
        assert_eq!(failures, 0, "{line}");
    }
}

#[tokio::test]
async fn the_backend_kill_scenario_ends_with_a_verdict() {
    require_router();
    let started = Instant::now();
    let out = load(args(&["scenario", "backend-kill"])).await;
    assert_verdict(&out, "backend-kill");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn an_unknown_scenario_lists_the_known_ones() {
    let out = load(args(&["scenario", "meteor-strike"])).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("known: backend-kill, redis-outage"));
}

#[tokio::test]
async fn the_redis_outage_scenario_ends_with_a_verdict() {
    require_router();
    assert!(
        switchyard_load::procs::on_path("redis-server").is_some(),
        "redis-server is not installed (apt-get install -y redis-server; .ci/run does)"
    );
    let out = load(args(&["scenario", "redis-outage"])).await;
    assert_verdict(&out, "redis-outage");
}

/// The number before ` failed` in a verdict line.
fn failed_count(out: &Output) -> u64 {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verdict = stdout.lines().last().unwrap_or("");
    verdict
        .split_once(": ")
        .and_then(|(_, rest)| rest.split_once(" failed"))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no failure count in {verdict:?}"))
}

#[tokio::test]
async fn the_drain_scenario_moves_every_sdk_session_and_loses_no_message() {
    require_router();
    let out = load(args(&["scenario", "drain", "--sessions", "500"])).await;
    assert_verdict(&out, "drain");
    assert_eq!(
        failed_count(&out),
        0,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn the_shutdown_scenario_moves_every_sdk_session_to_the_other_node() {
    require_router();
    let out = load(args(&["scenario", "shutdown", "--sessions", "500"])).await;
    assert_verdict(&out, "shutdown");
    assert_eq!(
        failed_count(&out),
        0,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn the_drain_through_haproxy_scenario_ends_with_a_verdict() {
    require_router();
    let out = load(args(&["scenario", "drain-haproxy", "--sessions", "300"])).await;
    assert_verdict(&out, "drain-haproxy");
}

#[tokio::test]
async fn the_region_loss_scenario_ends_with_a_verdict() {
    require_router();
    let out = load(args(&["scenario", "region-loss"])).await;
    assert_verdict(&out, "region-loss");
}
