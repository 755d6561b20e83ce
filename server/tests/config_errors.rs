//! `switchyard check-config` and `serve` on bad files: every kind of mistake is reported with
//! the key it concerns and a non-zero exit, and nothing is served.

use std::io::Write;
use std::process::{Command, Output};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// A valid pool for files whose mistake is elsewhere (check-config never connects to it).
const POOL: &str = r#"
[[pools]]
id = "stream"
backends = [{ id = "s1", address = "127.0.0.1:1" }]
"#;

fn check(text: &str) -> Output {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    Command::new(BIN)
        .arg("check-config")
        .arg(file.path())
        .output()
        .expect("run switchyard check-config")
}

/// Asserts the file is rejected and that stderr names `key` and says `reason`.
fn rejected(text: &str, key: &str, reason: &str) {
    let out = check(text);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted:\n{text}");
    assert!(
        stderr.contains(key) && stderr.contains(reason),
        "expected `{key}` and `{reason}` in:\n{stderr}"
    );
}

#[test]
fn the_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/switchyard.toml");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("4 routes, 4 pools, 9 backends"), "{stdout}");
}

#[test]
fn a_route_to_a_missing_pool_names_the_route_and_suggests_the_pool() {
    rejected(
        &format!("{POOL}[[routes]]\nid = \"r\"\npath_prefix = \"/s\"\npool = \"strem\"\n"),
        "routes[0].pool",
        "no pool named \"strem\" (did you mean \"stream\"?)",
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_path() {
    rejected(
        &format!("{POOL}[[routes]]\nid = \"r\"\npath_prefx = \"/s\"\npool = \"stream\"\n"),
        "routes[0].path_prefx",
        "unknown field `path_prefx`",
    );
}

#[test]
fn duplicate_ids_name_both_places() {
    rejected(
        r#"
        [[pools]]
        id = "a"
        backends = [{ id = "x", address = "127.0.0.1:1" }]
        [[pools]]
        id = "b"
        backends = [{ id = "x", address = "127.0.0.1:2" }]
        "#,
        "pools[1].backends[0].id",
        "backend id \"x\" is already used by pools[0].backends[0].id",
    );
}

#[test]
fn empty_pools_are_rejected() {
    rejected(
        "[[pools]]\nid = \"a\"\nbackends = []\n",
        "pools[0].backends",
        "no backends",
    );
}

#[test]
fn zero_weights_are_rejected() {
    rejected(
        "[[pools]]\nid = \"a\"\nbackends = [{ id = \"x\", address = \"127.0.0.1:1\", weight = 0 }]\n",
        "pools[0].backends[0].weight",
        "at least 1",
    );
}

#[test]
fn unparsable_addresses_are_rejected() {
    rejected(
        "[[pools]]\nid = \"a\"\nbackends = [{ id = \"x\", address = \"10.0.0.1\" }]\n",
        "pools[0].backends[0].address",
        "has no port",
    );
    rejected(
        "[[pools]]\nid = \"a\"\nbackends = [{ id = \"x\", address = \"no-such-host.invalid:80\" }]\n",
        "pools[0].backends[0].address",
        "cannot resolve",
    );
    rejected(
        "[node]\nlisten = \"localhost\"\n",
        "node.listen",
        "not an ip:port address",
    );
}

#[test]
fn bad_durations_are_rejected() {
    rejected(
        &format!(
            "{POOL}[[routes]]\nid = \"r\"\npool = \"stream\"\ntimeouts = {{ connect = \"fast\" }}\n"
        ),
        "routes[0].timeouts.connect",
        "\"fast\" is not a duration",
    );
}

#[test]
fn unknown_algorithms_list_the_known_ones() {
    rejected(
        "[[pools]]\nid = \"a\"\nalgorithm = \"fastest\"\nbackends = [{ id = \"x\", address = \"127.0.0.1:1\" }]\n",
        "pools[0].algorithm",
        "expected one of round_robin, weighted_round_robin, least_connections, random, p2c_ewma, consistent_hash",
    );
}

#[test]
fn syntax_errors_name_the_line() {
    rejected("[node\nlisten = 1\n", "line 1", "");
}

#[test]
fn every_problem_is_reported_at_once() {
    let out = check(
        "[[pools]]\nid = \"a\"\nbackends = [{ id = \"x\", address = \"bad\", weight = 0 }]\n[[routes]]\nid = \"r\"\npool = \"nope\"\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in [
        "pools[0].backends[0].weight",
        "pools[0].backends[0].address",
        "routes[0].pool",
    ] {
        assert!(stderr.contains(key), "{key} missing from:\n{stderr}");
    }
}

#[test]
fn serve_refuses_an_invalid_file_and_serves_nothing() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(b"[[routes]]\nid = \"r\"\npool = \"missing\"\n")
        .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(file.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running with an invalid config");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(2));
}

#[test]
fn a_missing_file_is_named() {
    let out = Command::new(BIN)
        .args(["check-config", "/no/such/switchyard.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/switchyard.toml: cannot read"));
}

#[test]
fn a_sentinel_that_is_not_host_port_is_named() {
    rejected(
        &format!(
            "{POOL}[sessions]\nstore = \"redis\"\nsentinels = [\"127.0.0.1:26379\", \"sentinel-b\"]\n"
        ),
        "sessions.sentinels[1]",
        "\"sentinel-b\" is not host:port",
    );
}

#[test]
fn sentinels_without_the_redis_store_are_refused() {
    rejected(
        &format!("{POOL}[sessions]\nsentinels = [\"127.0.0.1:26379\"]\n"),
        "sessions.sentinels",
        "only used with store = \"redis\"",
    );
}

#[test]
fn cluster_node_mistakes_are_named() {
    rejected(
        &format!(
            "{POOL}[sessions]\nstore = \"redis\"\ncluster_nodes = [\"127.0.0.1:7000\", \"node-b:70000\"]\n"
        ),
        "sessions.cluster_nodes[1]",
        "\"node-b:70000\" is not host:port",
    );
    rejected(
        &format!("{POOL}[sessions]\ncluster_nodes = [\"127.0.0.1:7000\"]\n"),
        "sessions.cluster_nodes",
        "only used with store = \"redis\"",
    );
    rejected(
        &format!(
            "{POOL}[sessions]\nstore = \"redis\"\ncluster_nodes = [\"127.0.0.1:7000\"]\nsentinels = [\"127.0.0.1:26379\"]\n"
        ),
        "sessions.cluster_nodes",
        "not with sessions.sentinels",
    );
}

#[test]
fn region_and_directory_mistakes_are_named() {
    let regions = "[node]\nregion = \"eu-west\"\n\
        [[regions]]\nname = \"eu-west\"\n\
        [[regions]]\nname = \"us-east\"\n\
        [[regions]]\nname = \"ap-southeast\"\nendpoint = \"ftp://ap.example.net\"\n\
        [directory]\ntrusted_proxies = [\"10.0.0.0/40\"]\n";
    rejected(
        &format!("{regions}{POOL}"),
        "regions[1].endpoint",
        "required for every region but this node's own",
    );
    rejected(
        &format!("{regions}{POOL}"),
        "regions[2].endpoint",
        "must start with http:// or https://",
    );
    rejected(
        &format!("{regions}{POOL}"),
        "directory.trusted_proxies[0]",
        "prefix length must be 0..=32",
    );
    rejected(
        &format!("{POOL}[[routes]]\nid = \"r\"\npool = \"stream\"\noverflow = \"teleport\"\n"),
        "routes[0].overflow",
        "unknown overflow \"teleport\"",
    );
}

#[test]
fn a_pools_backend_tls_needs_a_readable_ca_file_with_a_certificate() {
    let pool = |tls: &str| {
        format!(
            "[[pools]]\nid = \"a\"\ntls = {tls}\nbackends = [{{ id = \"x\", address = \"127.0.0.1:1\" }}]\n"
        )
    };
    rejected(
        &pool("{ ca = \"/no/such/dir/backend-ca.pem\" }"),
        "pools[0].tls.ca",
        "/no/such/dir/backend-ca.pem: cannot read",
    );
    let mut empty = tempfile::NamedTempFile::new().unwrap();
    empty.write_all(b"no PEM in here\n").unwrap();
    rejected(
        &pool(&format!("{{ ca = \"{}\" }}", empty.path().display())),
        "pools[0].tls.ca",
        "no certificate in it",
    );
    rejected(
        &pool("{ server_name = \"a.test\" }"),
        "pools[0].tls",
        "missing field `ca`",
    );
    rejected(
        &pool("{ ca = \"/x.pem\", verify = false }"),
        "pools[0].tls.verify",
        "unknown field `verify`",
    );
}

#[test]
fn durations_too_long_for_any_setting_are_refused_with_their_key_not_a_panic_later() {
    // Each of these passed check-config and then panicked ("overflow when adding duration to
    // instant") or kept SIGTERM from ever stopping the process.
    let route = "[[routes]]\nid = \"r\"\npath_prefix = \"/\"\npool = \"stream\"\n";
    for (text, key) in [
        (
            "[limits]\nheader_timeout = \"400000000000y\"\n".to_string(),
            "header_timeout",
        ),
        (
            "[limits]\nidle_timeout = \"400000000000y\"\n".to_string(),
            "idle_timeout",
        ),
        (
            "[node]\nshutdown_timeout = \"400000000000y\"\n".to_string(),
            "shutdown_timeout",
        ),
        (
            format!("{route}timeouts = {{ idle = \"400000000000y\" }}\n"),
            "idle",
        ),
    ] {
        rejected(&format!("{text}{POOL}"), key, "at most 30 days");
    }
    rejected(
        &format!("[node]\nshutdown_delay = \"10d\"\n{POOL}"),
        "node.shutdown_delay",
        "at most 1 hour",
    );
    rejected(
        &format!("[sessions]\nhandoff_linger = \"5m\"\n{POOL}"),
        "sessions.handoff_linger",
        "at most 60 seconds",
    );
    rejected(
        &format!("[sessions]\nttl = \"10m\"\nunconfirmed_ttl = \"1h\"\n{POOL}"),
        "sessions.unconfirmed_ttl",
        "at most sessions.ttl",
    );
    rejected(
        &format!("[limits]\nwrite_timeout = \"10ms\"\n{POOL}"),
        "limits.write_timeout",
        "at least 100ms",
    );
}

#[test]
fn backend_ids_with_line_breaks_nul_or_slashes_are_refused() {
    for id in ["a\\r\\nb", "a\\u0000b", "../etc", "has space", ""] {
        rejected(
            &format!(
                "[[pools]]\nid = \"p\"\nbackends = [{{ id = \"{id}\", address = \"127.0.0.1:1\" }}]\n"
            ),
            "pools[0].backends[0].id",
            "must be 1-128 letters, digits",
        );
    }
}

#[test]
fn syntax_and_semantic_problems_are_all_reported_in_one_run() {
    let out = check(
        "[node]\nworkers = \"two\"\nshutdown_delay = \"soon\"\n\
         [[pools]]\nid = \"stream\"\nalgoritm = \"random\"\n\
         backends = [{ id = \"s1\", address = \"127.0.0.1:1\", weight = 0 }]\n\
         [[routes]]\nid = \"r\"\npool = \"strem\"\n",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (key, reason) in [
        ("node.workers", "invalid type: string \"two\""),
        ("node.shutdown_delay", "\"soon\" is not a duration"),
        (
            "pools[0].algoritm",
            "unknown field `algoritm` (did you mean `algorithm`?)",
        ),
        ("pools[0].backends[0].weight", "must be at least 1"),
        ("routes[0].pool", "no pool named \"strem\""),
    ] {
        assert!(
            stderr.contains(&format!("{key}: {reason}")),
            "`{key}: {reason}` missing from:\n{stderr}"
        );
    }
}

#[test]
fn http2_settings_outside_the_protocols_bounds_are_named() {
    rejected(
        &format!("{POOL}[limits]\nh2_max_frame_size = 1000\n"),
        "limits.h2_max_frame_size",
        "must be from 16384 to 16777215 bytes",
    );
    rejected(
        &format!("{POOL}[limits]\nh2_initial_stream_window = 100\n"),
        "limits.h2_initial_stream_window",
        "must be from 65535 to 2147483647 bytes",
    );
    rejected(
        &format!("{POOL}[limits]\nh2_initial_connection_window = 4294967295\n"),
        "limits.h2_initial_connection_window",
        "must be from 65535",
    );
}
