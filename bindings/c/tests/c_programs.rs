//! The C example and the error-path program, compiled with `cc` against the static library and
//! run against a live router (in this process) with real test backends — under valgrind
//! (memcheck) when it is installed: zero errors, nothing definitely or indirectly lost.
//!
//! - `tests/c/errors.c`: every bad input gets its error kind and message, never a crash.
//! - `examples/player.c`: a session through a drain of its backend; every message comes back.
//! - `tests/c/leak.c`: forgets a response and an error, and valgrind says so — a handle a
//!   program forgets is a leak memcheck reports, not hidden by the library's registry.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use switchyard_load::TestBackend;

const TOKEN: &str = "a-test-admin-token-of-16-bytes+";

/// The static library `cargo test` just built: beside this test binary, in the profile's
/// `deps/` (`cargo build` also copies it up to the profile folder; `cargo test` does not, so
/// that copy may be stale).
fn static_lib() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().join("libswitchyard_ffi.a")
}

/// Compiles `source` against the static library into `dir`.
fn compile(source: &str, dir: &Path) -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = static_lib();
    assert!(
        lib.exists(),
        "{} is missing: build the crate first",
        lib.display()
    );
    let out = dir.join(Path::new(source).file_stem().unwrap());
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-o"])
        .arg(&out)
        .arg(crate_dir.join(source))
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm"])
        .status()
        .expect("run cc");
    assert!(status.success(), "cc {source} failed");
    out
}

/// The program under valgrind when it is installed (errors and leaks exit 97), else as it is.
fn command(program: &Path) -> Command {
    let valgrind = Command::new("valgrind").arg("--version").output().is_ok();
    if !valgrind {
        eprintln!("valgrind is not installed: running without it");
        return Command::new(program);
    }
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--quiet",
        "--error-exitcode=97",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
        "--show-leak-kinds=definite,indirect",
    ])
    .arg(program);
    cmd
}

struct Router {
    handle: switchyard::RouterHandle,
    _backends: Vec<TestBackend>,
    _dir: tempfile::TempDir,
}

/// A router with a pool of two echo backends behind `/`, and an admin token.
fn router(rt: &tokio::runtime::Runtime) -> Router {
    let backends: Vec<TestBackend> = ["echo-1", "echo-2"]
        .iter()
        .map(|id| {
            rt.block_on(TestBackend::start(id, "127.0.0.1:0".parse().unwrap()))
                .unwrap()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin.token");
    std::fs::write(&token, TOKEN).unwrap();
    let members: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ id = \"{}\", address = \"{}\" }}", b.id(), b.addr()))
        .collect();
    let text = format!(
        "[node]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = 1\nshutdown_timeout = \"1s\"\nadmin_token_file = \"{}\"\n\
         [log]\naccess = false\n[limits]\nrate_per_ip = 0\n\
         [[routes]]\nid = \"all\"\npath_prefix = \"/\"\npool = \"echo\"\nsticky = true\n\
         [[pools]]\nid = \"echo\"\nhealth = {{ kind = \"none\" }}\nbackends = [{}]\n",
        token.display(),
        members.join(", ")
    );
    let config = switchyard::Config::from_toml_str(&text).expect("test config");
    Router {
        handle: switchyard::start(config).expect("router starts"),
        _backends: backends,
        _dir: dir,
    }
}

/// `POST path` with the admin token and a JSON body; the status.
fn admin_post(admin: SocketAddr, path: &str, body: &str) -> u16 {
    let mut stream = TcpStream::connect(admin).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn every_error_path_gives_its_kind_and_a_message_and_nothing_leaks() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let router = router(&rt);
    let dir = tempfile::tempdir().unwrap();
    let program = compile("tests/c/errors.c", dir.path());
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = command(&program)
        .arg(format!("http://{}", router.handle.addr()))
        .arg(format!("http://{dead}"))
        .output()
        .expect("run errors");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "errors.c failed ({}):\n{text}",
        out.status
    );
    assert!(text.contains("0 check(s) failed"), "{text}");
}

#[test]
fn the_c_player_plays_a_session_through_a_drain_with_every_message_back() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let router = router(&rt);
    let dir = tempfile::tempdir().unwrap();
    let program = compile("examples/player.c", dir.path());
    let mut child = command(&program)
        .arg(format!("http://{}", router.handle.addr()))
        .arg("150")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run player");
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    let mut drained = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(backend) = line.strip_prefix("connected backend=")
            && drained.is_none()
        {
            let status = admin_post(
                router.handle.admin_addr(),
                &format!("/admin/v1/backends/{backend}/drain"),
                r#"{"deadline_s": 20, "spread_s": 0}"#,
            );
            assert_eq!(status, 202, "drain {backend}");
            drained = Some(backend.to_string());
        }
        lines.push(line);
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let text = format!("{}\n{stderr}", lines.join("\n"));
    assert!(
        drained.is_some(),
        "the player never said it was connected:\n{text}"
    );
    assert!(status.success(), "the player failed ({status}):\n{text}");
    assert!(text.contains("played 150 of 150 messages"), "{text}");
    assert!(
        lines.iter().any(|l| l.starts_with("resumed on ")),
        "the session resumed on the other backend:\n{text}"
    );
}

#[test]
fn a_handle_the_program_forgets_is_a_leak_valgrind_reports() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("valgrind is not installed: nothing to check");
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let router = router(&rt);
    let dir = tempfile::tempdir().unwrap();
    let program = compile("tests/c/leak.c", dir.path());
    let out = command(&program)
        .arg(format!("http://{}", router.handle.addr()))
        .output()
        .expect("run leak");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(97),
        "memcheck did not fail on the leaks:\n{stderr}"
    );
    assert!(stderr.contains("definitely lost"), "{stderr}");
}
