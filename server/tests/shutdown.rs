//! Stopping a router the way an orchestrator does (SIGTERM): `/readyz` fails first while the
//! listener still serves, then live sessions are told to move (`4001`, paced over
//! `shutdown_spread`, each after its backend closed, with how many of its messages arrived),
//! then the process exits by itself, successfully.

mod support;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use support::*;
use switchyard_load::procs::{self, ScratchDir, free_port};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readiness_first_then_moves_sessions_then_exits() {
    let bs = backends(&["t1"]).await;
    let scratch = ScratchDir::new("shutdown").unwrap();
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let config = format!(
        "[node]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = 1\n\
         shutdown_delay = \"1s\"\nshutdown_timeout = \"8s\"\nshutdown_spread = \"2s\"\n[log]\naccess = false\n{}{}",
        route("all", "/", "all"),
        pool_with("all", "round_robin", &bs, "health = { kind = \"none\" }")
    );
    let path = scratch.write("router.toml", &config).unwrap();
    let mut router = procs::serve("switchyard", &path, listen).unwrap();
    let (mut ws, _) = connect(listen, &[]).await;
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("t1: hi"));
    let mut others = Vec::new();
    for _ in 0..30 {
        others.push(connect(listen, &[]).await.0);
    }
    let (public, admin) = (Client::new(listen), Client::new(admin));
    assert_eq!(admin.get("/readyz").await.status, 200);

    let signalled = Instant::now();
    router.terminate().unwrap();
    let deadline = signalled + Duration::from_secs(5);
    while admin.get("/readyz").await.status != 503 {
        assert!(Instant::now() < deadline, "/readyz never failed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "readiness fails before the listener stops"
    );
    // Still serving during the delay.
    assert_eq!(public.get("/during-the-delay").await.status, 200);

    let closes = futures_util::future::join_all(
        std::iter::once(&mut ws)
            .chain(others.iter_mut())
            .map(|ws| async move { (next(ws).await, signalled.elapsed()) }),
    )
    .await;
    let mut times = Vec::new();
    for (i, (msg, at)) in closes.into_iter().enumerate() {
        match msg {
            Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 4001, "never 1001 to a client");
                let fields = moved_fields(&frame.reason);
                // The first session sent one message; the others none.
                let sent = if i == 0 { "1" } else { "0" };
                assert_eq!(fields["delivered"], sent, "{}", frame.reason);
                assert_eq!(fields["cause"], "shutdown", "{}", frame.reason);
            }
            other => panic!("expected close 4001, got {other:?}"),
        }
        times.push(at);
    }
    times.sort();
    assert!(
        times[0] >= Duration::from_secs(1),
        "sessions move only after the delay: {:?}",
        times[0]
    );
    let spread = times[times.len() - 1] - times[0];
    assert!(
        spread >= Duration::from_millis(1500),
        "the moves are paced over shutdown_spread (2 s), not at once: {spread:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = router.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the router did not exit by itself"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exited with {status}");
}

/// A request still running when `shutdown_timeout` ends does not hold the process: it is cut
/// and the router exits within `shutdown_delay` + `shutdown_timeout` (plus a margin for a busy
/// machine) — the window a Kubernetes grace period or `docker stop -t` is sized by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_shutdown_timeout_does_not_hold_the_exit() {
    let bs = backends(&["t1"]).await;
    let scratch = ScratchDir::new("shutdown-late").unwrap();
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let config = format!(
        "[node]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = 1\n\
         shutdown_delay = \"0s\"\nshutdown_timeout = \"3s\"\n[log]\naccess = false\n\
         [[routes]]\nid = \"slow\"\npath_prefix = \"/\"\npool = \"all\"\n\
         timeouts = {{ connect = \"1s\", response = \"60s\" }}\n{}",
        pool_with("all", "round_robin", &bs, "health = { kind = \"none\" }")
    );
    let path = scratch.write("router.toml", &config).unwrap();
    let mut router = procs::serve("switchyard", &path, listen).unwrap();
    // The backend answers after 30 s: far past the window.
    let slow = tokio::spawn(async move { Client::new(listen).get("/slow?delay_ms=30000").await });
    eventually(
        "the slow request reaches the backend",
        Duration::from_secs(5),
        || bs[0].requests_served() >= 1,
    )
    .await;

    let signalled = Instant::now();
    router.terminate().unwrap();
    // Before this was fixed a graceful stop then waited another shutdown_timeout (6 s).
    let limit = Duration::from_secs(3) + Duration::from_secs(2);
    let status = loop {
        if let Some(status) = router.exited() {
            break status;
        }
        assert!(
            signalled.elapsed() < limit,
            "the router still runs {limit:?} after SIGTERM with shutdown_timeout = 3s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exited with {status}");
    println!("exited {:?} after SIGTERM", signalled.elapsed());
    assert!(
        signalled.elapsed() >= Duration::from_millis(2900),
        "the request was given its shutdown_timeout first"
    );
    let _ = slow.await;
}
