//! The session handoff as a viewer's player sees it: when the router moves a session it asks
//! the backend to close first, passes on everything the backend still says, and only then
//! closes the client with `4001` and a `moved; delivered=N; retry_after_ms=M` reason — where
//! `N` is exactly how many of the client's messages the backend read, so a client can re-send
//! the rest and lose nothing. A backend that does not close in time leaves `delivered` out.

mod support;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use support::*;
use switchyard_load::procs;
use tokio_tungstenite::tungstenite::Message;

/// A router with the admin token, `/ws` on a least-connections pool of `bs`, and `sessions`
/// keys.
fn ws_router(bs: &str, sessions: &str) -> switchyard::RouterHandle {
    router_with(
        &admin_node(),
        &format!(
            "[sessions]\n{sessions}\n{}[[pools]]\nid = \"ws\"\nalgorithm = \"least_connections\"\n\
             health = {{ kind = \"none\" }}\nbackends = [{bs}]\n",
            route("ws", "/", "ws")
        ),
    )
}

fn member(id: &str, addr: std::net::SocketAddr) -> String {
    format!("{{ id = \"{id}\", address = \"{addr}\" }}")
}

/// Reads a session until its close: the data messages before it, and the close frame.
async fn read_to_close(ws: &mut Ws) -> (Vec<String>, u16, String) {
    let mut heard = Vec::new();
    loop {
        match next(ws).await {
            Message::Text(text) => heard.push(text.to_string()),
            Message::Close(Some(frame)) => {
                return (heard, u16::from(frame.code), frame.reason.to_string());
            }
            Message::Close(None) => panic!("a close without a code after {heard:?}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_session_hears_all_its_backend_said_and_exactly_how_much_arrived() {
    let bs = backends(&["h1", "h2"]).await;
    let members = bs
        .iter()
        .map(|b| member(b.id(), b.addr()))
        .collect::<Vec<_>>()
        .join(", ");
    let r = ws_router(&members, "");
    let (mut ws, answer) = connect(r.addr(), &[]).await;
    let backend = answer.headers()["x-backend-id"]
        .to_str()
        .unwrap()
        .to_string();
    // Twenty messages answered one by one, then 300 sent without waiting, and the drain
    // starts while they are still on their way: some reach the backend, some do not.
    for i in 1..=20 {
        ws.send(Message::text(format!("m{i}"))).await.unwrap();
        assert_eq!(
            next(&mut ws).await,
            Message::text(format!("{backend}: m{i}"))
        );
    }
    let sender = async {
        for i in 21..=320 {
            if ws.send(Message::text(format!("m{i}"))).await.is_err() {
                break;
            }
        }
    };
    let path = format!("/admin/v1/backends/{backend}/drain");
    let drain = admin_post(&r, &path, "{\"deadline_s\": 30, \"spread_s\": 0}");
    let ((), reply) = tokio::join!(sender, drain);
    assert_eq!(reply.status, 202, "{}", reply.text());

    let (heard, code, reason) = read_to_close(&mut ws).await;
    assert_eq!(code, 4001, "{reason}");
    let fields = moved_fields(&reason);
    let delivered: usize = fields
        .get("delivered")
        .unwrap_or_else(|| panic!("the backend closed cleanly, so `delivered` is known: {reason}"))
        .parse()
        .unwrap();
    assert!(
        (20..=320).contains(&delivered),
        "delivered={delivered}: {reason}"
    );
    // Every message the backend read was answered, and every answer reached the client
    // before its close, in order: the client can trust `delivered` to re-send the rest.
    let expected: Vec<String> = (21..=delivered)
        .map(|i| format!("{backend}: m{i}"))
        .collect();
    assert_eq!(
        heard, expected,
        "echoes before the close (delivered={delivered})"
    );
    let wait: u64 = fields["retry_after_ms"].parse().unwrap();
    assert!(wait <= 5000, "{reason}");
    assert_eq!(fields["cause"], "drain", "{reason}");
    assert!(!reason.contains("region="), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_does_not_close_within_the_linger_leaves_delivered_out() {
    let (backend, addr) = procs::start_backend("frozen").unwrap();
    let r = ws_router(&member("frozen", addr), "handoff_linger = \"300ms\"");
    let (mut ws, _) = connect(r.addr(), &[]).await;
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("frozen: hi"));
    // The backend stops answering (a stalled process): it cannot close.
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill")
            .args([sig, &backend.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig}");
    };
    signal("-STOP");
    // A signal is delivered asynchronously: until every thread of the backend has stopped it
    // could still answer the drain's close (and the router would then know what it read).
    let pid = backend.pid();
    wait_for(
        "the backend's threads are stopped",
        Duration::from_secs(5),
        async || stopped(pid),
    )
    .await;
    let started = Instant::now();
    let reply = admin_post(
        &r,
        "/admin/v1/backends/frozen/drain",
        "{\"deadline_s\": 30, \"spread_s\": 0}",
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let (heard, code, reason) = read_to_close(&mut ws).await;
    signal("-CONT");
    assert!(heard.is_empty(), "{heard:?}");
    assert_eq!(code, 4001, "{reason}");
    let fields = moved_fields(&reason);
    assert!(
        !fields.contains_key("delivered"),
        "nothing says what the backend read: {reason}"
    );
    assert!(fields.contains_key("retry_after_ms"), "{reason}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "the client is closed after the linger, not before nor much after: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_moved_at_once_are_told_to_come_back_at_different_times() {
    let bs = backends(&["late"]).await;
    let r = ws_router(&member("late", bs[0].addr()), "");
    let mut sessions = Vec::new();
    for _ in 0..40 {
        sessions.push(connect(r.addr(), &[]).await.0);
    }
    // No spread: every session is moved at once, so their reconnects are spread through
    // `retry_after_ms` instead (evenly over 5 s).
    let reply = admin_post(
        &r,
        "/admin/v1/backends/late/drain",
        "{\"deadline_s\": 30, \"spread_s\": 0}",
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let mut waits = Vec::new();
    for ws in &mut sessions {
        let (_, code, reason) = read_to_close(ws).await;
        assert_eq!(code, 4001, "{reason}");
        let fields = moved_fields(&reason);
        waits.push(fields["retry_after_ms"].parse::<u64>().unwrap());
    }
    waits.sort();
    let (first, last) = (waits[0], waits[waits.len() - 1]);
    assert!(last <= 5000, "{waits:?}");
    assert!(
        first < 500 && last >= 4000,
        "the reconnects are spread over the window, not all at once: {waits:?}"
    );
}

/// Whether every thread of process `pid` is stopped (state `T` in `/proc/PID/task/*/stat`).
fn stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|stat| {
                let (_, after_name) = stat.rsplit_once(')')?;
                after_name.trim_start().chars().next()
            })
            .is_some_and(|state| state == 'T')
    })
}
