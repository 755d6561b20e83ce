//! Logging that cannot keep up never holds a request: with stdout on a full disk (`/dev/full`)
//! every line is dropped and counted in `switchyard_log_lines_dropped_total{sink="stdout",
//! reason="write_error"}`; with stdout a pipe nobody reads (a stalled log collector) requests
//! are served as fast as ever, and the lines arrive once the pipe is read again. With
//! `[log] access_path` the access lines go to that file (reopened on SIGHUP, for log
//! rotation), and a full disk under it loses lines, counted, never requests. Access lines keep
//! their shape in both formats, none is lost at a graceful stop, and
//! `RUST_LOG=switchyard::access=off` turns them off.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// Starts the router binary with access logs on, its stdout going to `stdout`, in front of
/// `backend`; returns once it answers on its admin port.
async fn serve(backend: &TestBackend, stdout: Stdio) -> Served {
    serve_with(backend, stdout, "").await
}

/// [`serve`] with more `[log]` keys.
async fn serve_with(backend: &TestBackend, stdout: Stdio, log: &str) -> Served {
    serve_filtered(backend, stdout, log, "info").await
}

/// [`serve_with`] with `RUST_LOG` set to `rust_log`.
async fn serve_filtered(backend: &TestBackend, stdout: Stdio, log: &str, rust_log: &str) -> Served {
    Served::start(
        |listen, admin| {
            format!(
                "[node]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = 1\nshutdown_timeout = \"1s\"\nshutdown_delay = \"0s\"\n\
                 [log]\naccess = true\n{log}\n[limits]\nrate_per_ip = 0\n\n{}{}",
                route("api", "/api", "api"),
                pool_with("api", "round_robin", std::slice::from_ref(backend), "health = { kind = \"none\" }")
            )
        },
        |cmd| {
            cmd.env("RUST_LOG", rust_log).stdout(stdout);
        },
    )
    .await
}

async fn dropped(served: &Served, sink: &str, reason: &str) -> f64 {
    let series =
        format!("switchyard_log_lines_dropped_total{{sink=\"{sink}\",reason=\"{reason}\"}}");
    metric_at(served.admin, &series).await
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
        async || dropped(&served, "stdout", "write_error").await >= 200.0,
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
    assert_eq!(dropped(&served, "stdout", "queue_full").await, 0.0);
}

/// Access lines in the file at `path` (0 when there is none).
fn access_lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path)
        .map(|text| {
            text.lines()
                .filter(|l| l.contains("switchyard::access"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn access_lines_go_to_their_file_and_a_new_one_after_sighup() {
    let bs = backends(&["b1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let log = format!("access_path = \"{}\"", path.display());
    let served = serve_with(&bs[0], Stdio::null(), &log).await;
    requests(&served, 50).await;
    wait_for(
        "50 access lines in the file",
        Duration::from_secs(10),
        async || access_lines(&path) == 50,
    )
    .await;
    // Log rotation: the file is moved away and the router told with SIGHUP.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    requests(&served, 20).await;
    wait_for(
        "the new lines in a new file",
        Duration::from_secs(10),
        async || access_lines(&path) == 20,
    )
    .await;
    assert_eq!(
        access_lines(&rotated),
        50,
        "the rotated file kept its lines"
    );
}

#[tokio::test]
async fn with_the_access_file_on_a_full_disk_requests_are_served_and_lost_lines_counted() {
    let bs = backends(&["b1"]).await;
    let served = serve_with(&bs[0], Stdio::null(), "access_path = \"/dev/full\"").await;
    requests(&served, 200).await;
    wait_for(
        "the lost lines are counted",
        Duration::from_secs(10),
        async || dropped(&served, "access_file", "write_error").await >= 200.0,
    )
    .await;
}

/// Stops `served` as an operator does (SIGTERM) and waits until the process has exited.
async fn stop(served: &mut Served) {
    let status = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for(
        "the router exits after SIGTERM",
        Duration::from_secs(15),
        async || served.child.try_wait().unwrap().is_some(),
    )
    .await;
}

/// The access lines in the file at `path`.
fn access_lines_of(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("switchyard::access"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn json_access_lines_parse_with_every_field() {
    let bs = backends(&["b1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let log = format!("format = \"json\"\naccess_path = \"{}\"", path.display());
    let served = serve_with(&bs[0], Stdio::null(), &log).await;
    let client = Client::new(served.listen);
    let reply = client
        .get_with("/api/x?q=1", &[("x-request-id", "id\"with\\quotes")])
        .await;
    assert_eq!(reply.status, 200);
    let missing = client.get("/nowhere").await;
    assert_eq!(missing.status, 404);
    // A streamed answer: 3 chunks 200 ms apart.
    let streamed = client
        .get("/api/movie?bytes=30000&chunk_bytes=10000&chunk_ms=200")
        .await;
    assert_eq!(streamed.body.len(), 30_000);
    wait_for(
        "3 access lines in the file",
        Duration::from_secs(10),
        async || access_lines(&path) == 3,
    )
    .await;
    let lines = access_lines_of(&path);
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let first = &parsed[0];
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["target"], "switchyard::access");
    let stamp = first["timestamp"].as_str().unwrap();
    assert!(
        humantime::parse_rfc3339(stamp).is_ok() && stamp.len() == 27,
        "RFC 3339 with microseconds: {stamp}"
    );
    let fields = &first["fields"];
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["path"], "/api/x");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["backend"], "b1");
    assert_eq!(fields["peer"], "127.0.0.1");
    assert!(fields["duration_us"].as_u64().is_some(), "{first}");
    assert!(
        fields["total_us"].as_u64() >= fields["duration_us"].as_u64(),
        "{first}"
    );
    assert_eq!(fields["bytes"], reply.body.len(), "{first}");
    assert_eq!(fields["request_id"], "id\"with\\quotes");
    let second = &parsed[1]["fields"];
    assert_eq!(second["status"], 404);
    assert_eq!(second["backend"], "-");
    assert_eq!(
        second["bytes"],
        missing.body.len(),
        "the router's own answer: {second}"
    );
    assert_eq!(
        second["request_id"].as_str().map(str::len),
        Some(36),
        "a generated id: {second}"
    );
    // The streamed answer's line comes when its last byte is sent: the total covers the
    // chunks' 400 ms of gaps, the time to the head does not.
    let third = &parsed[2]["fields"];
    assert_eq!(third["bytes"], 30_000, "{third}");
    let (head_us, total_us) = (
        third["duration_us"].as_u64().unwrap(),
        third["total_us"].as_u64().unwrap(),
    );
    assert!(
        total_us >= 400_000 && head_us < total_us,
        "duration_us {head_us}, total_us {total_us}"
    );
}

#[tokio::test]
async fn text_access_lines_on_stdout_keep_their_shape() {
    let bs = backends(&["b1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stdout.log");
    let out = std::fs::File::create(&path).unwrap();
    let served = serve(&bs[0], Stdio::from(out)).await;
    let client = Client::new(served.listen);
    let reply = client.get_with("/api/x", &[("x-request-id", "r-1")]).await;
    assert_eq!(reply.status, 200);
    wait_for(
        "the access line on stdout",
        Duration::from_secs(10),
        async || access_lines(&path) == 1,
    )
    .await;
    let line = access_lines_of(&path).remove(0);
    let (stamp, rest) = line.split_once(' ').unwrap();
    assert!(
        humantime::parse_rfc3339(stamp).is_ok() && stamp.len() == 27,
        "{line}"
    );
    let fields = rest
        .strip_prefix(" INFO switchyard::access: method=GET path=/api/x status=200 backend=\"b1\" peer=127.0.0.1 duration_us=")
        .unwrap_or_else(|| panic!("unexpected shape: {line}"));
    let parts: Vec<&str> = fields.split(' ').collect();
    assert_eq!(parts.len(), 4, "{line}");
    assert!(parts[0].parse::<u64>().is_ok(), "{line}");
    assert!(
        parts[1]
            .strip_prefix("total_us=")
            .is_some_and(|t| t.parse::<u64>().is_ok()),
        "{line}"
    );
    assert_eq!(parts[2], format!("bytes={}", reply.body.len()), "{line}");
    assert_eq!(parts[3], "request_id=r-1");
    // The other logs still reach stdout.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("switchyard serving"), "{text}");
}

#[tokio::test]
async fn lines_of_the_last_requests_before_sigterm_are_all_written() {
    let bs = backends(&["b1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let log = format!("access_path = \"{}\"", path.display());
    let mut served = serve_with(&bs[0], Stdio::null(), &log).await;
    // A few lines: far less than a batch, so they are still in the worker's buffer.
    requests(&served, 30).await;
    stop(&mut served).await;
    assert_eq!(access_lines(&path), 30, "every access line written at exit");
    // And a batch's worth and more, right before the stop.
    let path = dir.path().join("access-2.log");
    let log = format!("access_path = \"{}\"", path.display());
    let mut served = serve_with(&bs[0], Stdio::null(), &log).await;
    requests(&served, 500).await;
    stop(&mut served).await;
    assert_eq!(
        access_lines(&path),
        500,
        "every access line written at exit"
    );
}

#[tokio::test]
async fn rust_log_turns_access_lines_off() {
    let bs = backends(&["b1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stdout.log");
    let out = std::fs::File::create(&path).unwrap();
    let mut served =
        serve_filtered(&bs[0], Stdio::from(out), "", "info,switchyard::access=off").await;
    requests(&served, 20).await;
    stop(&mut served).await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("switchyard serving"),
        "other logs stay: {text}"
    );
    assert_eq!(access_lines(&path), 0, "{text}");
}

/// A TLS router binary in front of `backend`, its stdout to a file, `RUST_LOG` as given.
async fn serve_tls(
    backend: &TestBackend,
    rust_log: &str,
) -> (
    Served,
    std::path::PathBuf,
    std::net::SocketAddr,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["a.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.path().join("a.pem"), dir.path().join("a.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let out = dir.path().join("stdout.log");
    let tls = free_addr();
    let file = std::fs::File::create(&out).unwrap();
    let served = Served::start(
        |listen, admin| {
            format!(
                "[node]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = 1\nshutdown_timeout = \"1s\"\nshutdown_delay = \"0s\"\n\
                 [log]\naccess = false\n\
                 [[listeners]]\nid = \"https\"\naddress = \"{tls}\"\ntls = {{ certificates = [{{ names = [\"a.test\"], cert = \"{}\", key = \"{}\" }}] }}\n{}{}",
                cert_path.display(),
                key_path.display(),
                route("api", "/api", "api"),
                pool_with("api", "round_robin", std::slice::from_ref(backend), "health = { kind = \"none\" }")
            )
        },
        |cmd| {
            cmd.env("RUST_LOG", rust_log).stdout(Stdio::from(file));
        },
    )
    .await;
    (served, out, tls, dir)
}

/// `openssl s_client` sends the address itself as SNI (as wrk does), which rustls warns of.
fn handshake_with_an_ip_as_sni(tls: std::net::SocketAddr) {
    let done = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &tls.to_string(),
            "-servername",
            "127.0.0.1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian's openssl package) runs");
    assert!(done.success() || done.code().is_some());
}

/// A client can make rustls log a warning per handshake (an IP address as SNI): by default
/// those library lines are errors only, so the router's log stays quiet however many such
/// handshakes come; naming the target in RUST_LOG brings them back.
#[tokio::test]
async fn a_client_cannot_flood_the_log_with_library_warnings() {
    let bs = backends(&["b1"]).await;
    let (mut quiet, out, tls, _dir) = serve_tls(&bs[0], "info").await;
    for _ in 0..5 {
        handshake_with_an_ip_as_sni(tls);
    }
    stop(&mut quiet).await;
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        !text.lines().any(|l| l.contains("rustls")),
        "library warnings in the log:\n{text}"
    );

    let (mut loud, out, tls, _dir) = serve_tls(&bs[0], "info,rustls=warn").await;
    handshake_with_an_ip_as_sni(tls);
    stop(&mut loud).await;
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("rustls")),
        "with rustls=warn named, the handshake's warning is logged (so the quiet run proves something):\n{text}"
    );
}
