//! Logging that cannot keep up never holds a request: with stdout on a full disk (`/dev/full`)
//! every line is dropped and counted in `switchyard_log_lines_dropped_total{reason=
//! "write_error"}`; with stdout a pipe nobody reads (a stalled log collector) requests are
//! served as fast as ever, and the lines arrive once the pipe is read again.

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A `switchyard serve` process, killed on drop.
struct Served {
    child: Child,
    listen: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_addr() -> SocketAddr {
    let port = switchyard_load::procs::free_port().expect("a free port");
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts the router binary with access logs on, its stdout going to `stdout`, in front of
/// `backend`; returns once it answers on its admin port.
async fn serve(backend: &TestBackend, stdout: Stdio) -> Served {
    let (listen, admin) = (free_addr(), free_addr());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = 1\nshutdown_timeout = \"1s\"\n\
             [log]\naccess = true\n[limits]\nrate_per_ip = 0\n\n{}{}",
            route("api", "/api", "api"),
            pool_with("api", "round_robin", std::slice::from_ref(backend), "health = { kind = \"none\" }")
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(stdout)
        .spawn()
        .expect("start switchyard");
    let served = Served {
        child,
        listen,
        admin,
        _dir: dir,
    };
    let started = Instant::now();
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the router did not listen on {listen} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    served
}

async fn dropped(served: &Served, reason: &str) -> f64 {
    let text = Client::new(served.admin).get("/metrics").await.text();
    let series = format!("switchyard_log_lines_dropped_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Sends `n` requests one after another; each must be answered 200 within a second.
async fn requests(served: &Served, n: usize) {
    let client = Client::new(served.listen);
    for i in 0..n {
        let sent = Instant::now();
        let reply = client.get("/api/x").await;
        assert_eq!(reply.status, 200, "request {i}: {}", reply.text());
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "request {i} took {:?}: logging held it",
            sent.elapsed()
        );
    }
}

#[tokio::test]
async fn with_stdout_on_a_full_disk_requests_are_served_and_lost_lines_counted() {
    let bs = backends(&["b1"]).await;
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let served = serve(&bs[0], Stdio::from(full)).await;
    requests(&served, 200).await;
    // Every access line failed to write and was counted (startup lines too).
    wait_for(
        "the lost lines are counted",
        Duration::from_secs(10),
        async || dropped(&served, "write_error").await >= 200.0,
    )
    .await;
}

#[tokio::test]
async fn with_stdout_a_pipe_nobody_reads_requests_are_not_held_and_lines_arrive_later() {
    let bs = backends(&["b1"]).await;
    let mut served = serve(&bs[0], Stdio::piped()).await;
    let mut pipe = served.child.stdout.take().expect("stdout pipe");
    // A pipe holds 64 KiB, a few hundred access lines: the rest wait in the router's queue
    // while the writer is blocked.
    requests(&served, 2_000).await;
    // Now the collector reads again: every access line arrives.
    let reader = std::thread::spawn(move || {
        let mut lines = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        let mut carry = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while lines < 2_000 && Instant::now() < deadline {
            let n = pipe.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            carry.extend_from_slice(&buf[..n]);
            while let Some(end) = carry.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = carry.drain(..=end).collect();
                if String::from_utf8_lossy(&line).contains("switchyard::access") {
                    lines += 1;
                }
            }
        }
        lines
    });
    let lines = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    assert_eq!(
        lines, 2_000,
        "access lines delivered once the pipe was read"
    );
    assert_eq!(dropped(&served, "queue_full").await, 0.0);
}
