//! Changing a running router: a config reload (admin API or SIGHUP) applies new routes, pools
//! and backends without dropping the connections and sessions that stay; an invalid file
//! changes nothing; removed backends and pools are drained, not cut; backends can also be
//! added and removed through the admin API.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use support::*;
use switchyard::config::Config;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "a-reload-test-admin-token";

/// A config file in its own directory (with the admin token beside it).
struct ConfigFile {
    dir: PathBuf,
    path: PathBuf,
}

impl ConfigFile {
    fn new() -> ConfigFile {
        let dir = std::env::temp_dir().join(format!("switchyard-reload-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), TOKEN).unwrap();
        let path = dir.join("router.toml");
        ConfigFile { dir, path }
    }

    /// Writes the file: fixed `[node]` (ports chosen once) and the given routes and pools.
    fn write(&self, listen: &str, admin: &str, body: &str) {
        let text = format!(
            "[node]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = 1\nshutdown_timeout = \"1s\"\n\
             admin_token_file = \"{}\"\n[log]\naccess = false\n{body}",
            self.dir.join("token").display()
        );
        std::fs::write(&self.path, text).unwrap();
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the file, then starts a router from it (as `serve --config` would).
    fn start(&self, listen: &str, admin: &str, body: &str) -> switchyard::RouterHandle {
        self.write(listen, admin, body);
        switchyard::start(Config::load(self.path()).unwrap()).unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_addr() -> String {
    format!("127.0.0.1:{}", switchyard_load::procs::free_port().unwrap())
}

fn no_checks(id: &str, algorithm: &str, bs: &[TestBackend]) -> String {
    pool_with(id, algorithm, bs, "health = { kind = \"none\" }")
}

async fn admin_call(admin: &Client, method: http::Method, path: &str, body: &str) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    admin
        .send(
            method,
            path,
            &[("authorization", auth.as_str())],
            Bytes::from(body.to_string()),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_is_refused_with_its_key_paths_and_changes_nothing() {
    let bs = backends(&["v1"]).await;
    let file = ConfigFile::new();
    let (listen, admin_at) = (free_addr(), free_addr());
    let r = file.start(
        &listen,
        &admin_at,
        &format!(
            "{}{}",
            route("api", "/api", "api"),
            no_checks("api", "round_robin", &bs)
        ),
    );
    let (client, admin) = (Client::new(r.addr()), Client::new(r.admin_addr()));
    assert_eq!(client.get("/api/x").await.backend(), "v1");

    file.write(
        &listen,
        &admin_at,
        &format!(
            "{}{}",
            route("api", "/api", "nope"),
            no_checks("api", "round_robin", &bs)
        ),
    );
    let reply = admin_call(&admin, http::Method::POST, "/admin/v1/reload", "").await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let answer = reply.json();
    assert_eq!(answer["error"], "invalid_config");
    assert_eq!(answer["issues"][0]["key"], "routes[0].pool", "{answer}");
    assert_eq!(
        client.get("/api/x").await.backend(),
        "v1",
        "the running config stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_adds_and_removes_pools_and_backends_without_dropping_kept_sessions() {
    let ws = backends(&["w1", "w2", "w3"]).await;
    let old = backends(&["o1"]).await;
    let new = backends(&["n1"]).await;
    let file = ConfigFile::new();
    let (listen, admin_at) = (free_addr(), free_addr());
    let r = file.start(
        &listen,
        &admin_at,
        &format!(
            "{}{}{}{}",
            route("ws", "/ws", "ws"),
            route("old", "/old", "old"),
            no_checks("ws", "least_connections", &ws[..2]),
            no_checks("old", "round_robin", &old)
        ),
    );
    let (client, admin) = (Client::new(r.addr()), Client::new(r.admin_addr()));
    let mut sessions = Vec::new();
    for _ in 0..20 {
        let (ws, answer) = connect(r.addr(), &[]).await;
        sessions.push((
            answer.headers()["x-backend-id"]
                .to_str()
                .unwrap()
                .to_string(),
            ws,
        ));
    }
    assert_eq!(client.get("/old/x").await.backend(), "o1");

    // w1 leaves the ws pool and w3 joins; the old pool and its route go; a new pool and route come.
    file.write(
        &listen,
        &admin_at,
        &format!(
            "{}{}{}{}",
            route("ws", "/ws", "ws"),
            route("new", "/new", "new"),
            no_checks("ws", "least_connections", &ws[1..]),
            no_checks("new", "round_robin", &new)
        ),
    );
    let reply = admin_call(&admin, http::Method::POST, "/admin/v1/reload", "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let report = reply.json();
    assert_eq!(
        report["pools_added"],
        serde_json::json!(["new"]),
        "{report}"
    );
    assert_eq!(
        report["pools_removed"],
        serde_json::json!(["old"]),
        "{report}"
    );
    assert_eq!(report["pools_kept"], serde_json::json!(["ws"]), "{report}");
    assert_eq!(report["restart_needed"], serde_json::json!([]), "{report}");

    assert_eq!(client.get("/new/x").await.backend(), "n1");
    assert_eq!(
        client.get("/old/x").await.status,
        404,
        "the old route is gone"
    );
    // Sessions on w2 carry on untouched; those on w1 are moved with 4001, not cut.
    for (backend, ws) in &mut sessions {
        if backend == "w2" {
            ws.send(Message::text("still here")).await.unwrap();
            assert_eq!(next(ws).await, Message::text("w2: still here"));
        } else {
            match next(ws).await {
                Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4001),
                other => panic!("a session on w1 expected close 4001, got {other:?}"),
            }
        }
    }
    // New sessions go to w2 and w3 only, and w1 leaves the pool once drained.
    for _ in 0..6 {
        let (_ws, answer) = connect(r.addr(), &[]).await;
        let backend = answer.headers()["x-backend-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(backend == "w2" || backend == "w3", "{backend}");
    }
    wait_for(
        "w1 is gone from the pool",
        Duration::from_secs(10),
        async || admin.get("/admin/v1/backends/w1").await.status == 404,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_are_added_and_removed_through_the_admin_api() {
    let bs = backends(&["a1"]).await;
    let extra = backends(&["a2"]).await;
    let file = ConfigFile::new();
    let (listen, admin_at) = (free_addr(), free_addr());
    let r = file.start(
        &listen,
        &admin_at,
        &format!(
            "{}{}",
            route("api", "/", "api"),
            no_checks("api", "round_robin", &bs)
        ),
    );
    let (client, admin) = (Client::new(r.addr()), Client::new(r.admin_addr()));

    let body = format!(
        "{{\"pool\": \"api\", \"id\": \"a2\", \"address\": \"{}\", \"weight\": 1}}",
        extra[0].addr()
    );
    let reply = admin_call(&admin, http::Method::POST, "/admin/v1/backends", &body).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.json()["pool"], "api");
    let seen: std::collections::BTreeSet<String> = {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..4 {
            seen.insert(client.get("/x").await.backend().to_string());
        }
        seen
    };
    assert_eq!(
        seen.len(),
        2,
        "round robin reaches the added backend: {seen:?}"
    );

    for (body, status, says) in [
        (body.as_str(), 409, "exists"),
        (
            "{\"pool\": \"nope\", \"id\": \"x\", \"address\": \"127.0.0.1:1\"}",
            404,
            "nope",
        ),
        (
            "{\"pool\": \"api\", \"id\": \"x\", \"address\": \"no-port\"}",
            400,
            "field `address`",
        ),
        (
            "{\"pool\": \"api\", \"id\": \"bad id!\", \"address\": \"127.0.0.1:1\"}",
            400,
            "field `id`",
        ),
        ("{\"pool\": \"api\", \"id\": \"x\"}", 400, "address"),
    ] {
        let reply = admin_call(&admin, http::Method::POST, "/admin/v1/backends", body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text());
        assert!(reply.text().contains(says), "{body}: {}", reply.text());
    }

    let reply = admin_call(&admin, http::Method::DELETE, "/admin/v1/backends/a1", "").await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert!(reply.json()["state"].as_str().unwrap().starts_with("drain"));
    // A backend on its way out cannot be undrained back into service.
    let reply = admin_call(
        &admin,
        http::Method::POST,
        "/admin/v1/backends/a1/undrain",
        "",
    )
    .await;
    assert_eq!(reply.status, 409, "{}", reply.text());
    for _ in 0..4 {
        assert_eq!(
            client.get("/x").await.backend(),
            "a2",
            "nothing new on a removed backend"
        );
    }
    wait_for("a1 is gone", Duration::from_secs(10), async || {
        admin.get("/admin/v1/backends/a1").await.status == 404
    })
    .await;
    let reply = admin_call(&admin, http::Method::DELETE, "/admin/v1/backends/a1", "").await;
    assert_eq!(reply.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_file() {
    let bs = backends(&["h1"]).await;
    let file = ConfigFile::new();
    let (listen, admin_at) = (free_addr(), free_addr());
    file.write(
        &listen,
        &admin_at,
        &format!(
            "{}{}",
            route("api", "/api", "api"),
            no_checks("api", "round_robin", &bs)
        ),
    );
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let mut router = switchyard_load::procs::serve("switchyard", file.path(), addr).unwrap();
    let client = Client::new(addr);
    assert_eq!(client.get("/later/x").await.status, 404);

    file.write(
        &listen,
        &admin_at,
        &format!(
            "{}{}{}",
            route("api", "/api", "api"),
            route("later", "/later", "api"),
            no_checks("api", "round_robin", &bs)
        ),
    );
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &router.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for(
        "the new route answers",
        Duration::from_secs(10),
        async || client.get("/later/x").await.status == 200,
    )
    .await;
    router
        .check_running()
        .expect("SIGHUP reloads, it does not stop the router");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_id_added_to_two_pools_at_once_is_taken_by_one() {
    let bs = backends(&["t1"]).await;
    let other = backends(&["o1"]).await;
    let file = ConfigFile::new();
    let (listen, admin_at) = (free_addr(), free_addr());
    let r = file.start(
        &listen,
        &admin_at,
        &format!(
            "{}{}{}{}",
            route("api", "/api", "api"),
            no_checks("api", "round_robin", &bs),
            route("other", "/other", "other"),
            no_checks("other", "round_robin", &other)
        ),
    );
    let admin = Client::new(r.admin_addr());
    for i in 0..10 {
        let add = |pool: &str| {
            let (admin, pool) = (admin.clone(), pool.to_string());
            let body = format!(
                "{{\"pool\": \"{pool}\", \"id\": \"twin-{i}\", \"address\": \"{}\"}}",
                bs[0].addr()
            );
            tokio::spawn(async move {
                admin_call(&admin, http::Method::POST, "/admin/v1/backends", &body)
                    .await
                    .status
            })
        };
        let (a, b) = (add("api"), add("other"));
        let mut statuses = [a.await.unwrap(), b.await.unwrap()];
        statuses.sort();
        assert_eq!(statuses, [201, 409], "twin-{i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_rate_limits_and_names_listener_limits_as_needing_a_restart() {
    let bs = backends(&["l1"]).await;
    let file = ConfigFile::new();
    let (listen, admin_at) = (free_addr(), free_addr());
    let body = |limits: &str| {
        format!(
            "[limits]\n{limits}\n{}{}",
            route("api", "/", "api"),
            no_checks("api", "round_robin", &bs)
        )
    };
    let r = file.start(&listen, &admin_at, &body("rate_per_ip = 1000"));
    let (client, admin) = (Client::new(r.addr()), Client::new(r.admin_addr()));
    assert_eq!(client.get("/a").await.status, 200);

    // A lower default rate comes with the routes: applied at once.
    file.write(
        &listen,
        &admin_at,
        &body("rate_per_ip = 1\nburst_per_ip = 1"),
    );
    let reply = admin_call(&admin, http::Method::POST, "/admin/v1/reload", "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["restart_needed"], serde_json::json!([]));
    // One a second with a burst of one: of three requests in a row, some are refused (all
    // but the first, unless the machine stalls for a second between them).
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(client.get("/a").await.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");

    // A connection limit belongs to the listeners: named, not applied.
    file.write(
        &listen,
        &admin_at,
        &body("rate_per_ip = 1\nburst_per_ip = 1\nmax_connections_per_ip = 5"),
    );
    let reply = admin_call(&admin, http::Method::POST, "/admin/v1/reload", "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["restart_needed"],
        serde_json::json!(["limits"]),
        "{}",
        reply.text()
    );
}
