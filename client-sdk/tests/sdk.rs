//! The SDK against real routers (started in-process, on loopback sockets) and real test
//! backends: failover between regions, retries only where safe and within the budget,
//! `Retry-After`, and sessions that survive drains, backend deaths, router restarts and
//! silently dead connections.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;
use switchyard_client::{BreakerConfig, BudgetConfig, Client, ErrorKind, Event, Request};
use switchyard_load::TestBackend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_over_to_the_next_region_when_a_region_stops() {
    use switchyard_load::procs;
    procs::required_binary("switchyard", "SWITCHYARD_BIN");
    let scratch = procs::ScratchDir::new("sdk-failover").unwrap();
    let (one, two) = (backends(&["r1-b"]).await, backends(&["r2-b"]).await);
    let (a, b) = (free_addr(), free_addr());
    let process = |name: &str, addr: SocketAddr, backend: &TestBackend| {
        let config = format!(
            "[node]\nlisten = \"{addr}\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = 1\n[log]\naccess = false\n\
             [[routes]]\nid = \"all\"\npath_prefix = \"/\"\npool = \"p\"\n\
             [[pools]]\nid = \"p\"\nhealth = {{ kind = \"none\" }}\nbackends = [{{ id = \"{}\", address = \"{}\" }}]\n",
            backend.id(),
            backend.addr()
        );
        procs::start_switchyard_config(&scratch, name, &config, addr).unwrap()
    };
    let mut region1 = process("region-1", a, &one[0]);
    let _region2 = process("region-2", b, &two[0]);
    let client = Client::builder()
        .region("region-1", format!("http://{a}"))
        .region("region-2", format!("http://{b}"))
        .build()
        .unwrap();
    for i in 0..200 {
        if i == 50 {
            region1.kill(); // the whole region's router gone at once
        }
        let resp = client
            .get("/titles")
            .await
            .unwrap_or_else(|err| panic!("request {i} failed: {err}"));
        assert_eq!(resp.status, 200);
        let expected = if i < 50 { "r1-b" } else { "r2-b" };
        assert_eq!(resp.backend(), Some(expected), "request {i}");
    }
    let stats = client.stats();
    assert!(stats.failovers >= 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_region_down_attempts_stay_within_the_budget_and_errors_say_why() {
    let dead = || format!("http://{}", free_addr());
    let requests = 100;
    // The budget alone (breakers that never open): once it is spent, one attempt a request.
    let client = Client::builder()
        .region("r1", dead())
        .region("r2", dead())
        .budget(BudgetConfig {
            capacity: 50,
            ..BudgetConfig::default()
        })
        .breaker(BreakerConfig {
            failures: u32::MAX,
            ..BreakerConfig::default()
        })
        .build()
        .unwrap();
    for _ in 0..requests {
        let err = client.get("/x").await.expect_err("every region is down");
        assert!(err.retryable, "{err}");
        assert!(
            matches!(err.kind, ErrorKind::Connect(_) | ErrorKind::BudgetExhausted),
            "{err}"
        );
        assert!(err.region.is_some() && err.attempt >= 1, "{err}");
    }
    let stats = client.stats();
    let amplification = stats.attempts as f64 / requests as f64;
    assert!(
        amplification <= 1.2,
        "{stats:?}: {amplification}× the requests"
    );
    assert_eq!(stats.budget_left, 0, "{stats:?}");

    // With the default breakers both regions open after a few failures: the client stops
    // trying them at all until the cool-off, and says so.
    let client = Client::builder()
        .region("r1", dead())
        .region("r2", dead())
        .build()
        .unwrap();
    let mut no_region = 0;
    for _ in 0..requests {
        let err = client.get("/x").await.expect_err("every region is down");
        no_region += usize::from(err.kind == ErrorKind::NoRegion);
    }
    let stats = client.stats();
    assert!(stats.attempts <= 20, "{stats:?}");
    assert!(
        no_region >= 90,
        "{no_region} of {requests} refused without trying"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_a_post_is_retried_only_when_opted_in() {
    let bs = backends(&["b"]).await;
    let (_router, addr) = router_with(&members(&bs), 0);
    let client = Client::builder()
        .region("r", format!("http://{addr}"))
        .max_attempts(2)
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client
        .get("/busy?status=429&retry_after=1")
        .await
        .expect_err("still 429 after the retry");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited as Retry-After said"
    );
    assert_eq!(
        err.kind,
        ErrorKind::Status {
            status: 429,
            router_error: None
        }
    );
    assert_eq!(client.stats().attempts, 2);

    let before = client.stats().attempts;
    let err = client.post("/buy?status=503", "x").await.expect_err("503");
    assert!(!err.retryable, "{err}");
    assert_eq!(client.stats().attempts - before, 1, "a POST is not retried");
    let before = client.stats().attempts;
    let req = Request::new(http::Method::POST, "/buy?status=503").retry_non_idempotent();
    let _ = client.request(req).await.expect_err("503");
    assert_eq!(
        client.stats().attempts - before,
        2,
        "unless the caller opts in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_that_would_end_past_the_deadline_is_not_made_and_costs_no_budget() {
    let bs = backends(&["b"]).await;
    let (_router, addr) = router_with(&members(&bs), 0);
    let client = Client::builder()
        .region("r", format!("http://{addr}"))
        .deadline(Duration::from_millis(500))
        .build()
        .unwrap();
    let budget = client.stats().budget_left;
    let err = client
        .get("/busy?status=503&retry_after=2")
        .await
        .expect_err("a 2 s Retry-After does not fit a 0.5 s deadline");
    assert!(matches!(err.kind, ErrorKind::Deadline(_)), "{err}");
    assert_eq!(client.stats().attempts, 1);
    assert_eq!(client.stats().budget_left, budget, "no retry, no cost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_a_drain_and_a_killed_backend_with_the_same_session_id() {
    let mut bs = backends(&["s1", "s2"]).await;
    let (r, addr) = router_with(&members(&bs), 0);
    let client = Client::builder()
        .region("r", format!("http://{addr}"))
        .build()
        .unwrap();
    let mut session = client.session("/ws/echo").await.unwrap();
    let first = match next_event(&mut session).await {
        Event::Connected {
            backend: Some(b), ..
        } => b,
        other => panic!("{other:?}"),
    };
    assert_eq!(echo(&mut session, "hello").await, format!("{first}: hello"));
    let id = client.session_id();

    // Drained: 4001, reconnected at once elsewhere.
    let admin = r.admin_addr();
    assert_eq!(
        admin_post(admin, &format!("/admin/v1/backends/{first}/drain"), "").await,
        202
    );
    match until(&mut session, "a reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await
    {
        Event::Reconnecting { reason, .. } => assert!(reason.starts_with("4001"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let second = match until(&mut session, "a resume", |e| {
        matches!(e, Event::Resumed { .. })
    })
    .await
    {
        Event::Resumed {
            backend: Some(b), ..
        } => b,
        other => panic!("{other:?}"),
    };
    assert_ne!(second, first);
    assert_eq!(client.session_id(), id, "the same session id");
    assert_eq!(
        echo(&mut session, "still here").await,
        format!("{second}: still here")
    );

    // Its backend killed: 4002, back on the other one (undrained now).
    assert_eq!(
        admin_post(admin, &format!("/admin/v1/backends/{first}/undrain"), "").await,
        200
    );
    let at = bs.iter().position(|b| b.id() == second).unwrap();
    bs.remove(at).stop().await;
    match until(&mut session, "a reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await
    {
        Event::Reconnecting { reason, .. } => assert!(reason.starts_with("4002"), "{reason}"),
        other => panic!("{other:?}"),
    }
    match until(&mut session, "a resume", |e| {
        matches!(e, Event::Resumed { .. })
    })
    .await
    {
        Event::Resumed { backend, .. } => assert_eq!(backend.as_deref(), Some(first.as_str())),
        other => panic!("{other:?}"),
    }
    assert_eq!(echo(&mut session, "again").await, format!("{first}: again"));
    assert_eq!(client.session_id(), id);
    assert!(client.stats().reconnects >= 2);
    session.close().await.expect("a clean close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_its_router_process_crashing_and_coming_back() {
    use switchyard_load::procs;
    procs::required_binary("switchyard", "SWITCHYARD_BIN");
    let bs = backends(&["s1"]).await;
    let addr = free_addr();
    let scratch = procs::ScratchDir::new("sdk-restart").unwrap();
    let config = format!(
        "[node]\nlisten = \"{addr}\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = 1\n[log]\naccess = false\n\
         [[routes]]\nid = \"all\"\npath_prefix = \"/\"\npool = \"p\"\n\
         [[pools]]\nid = \"p\"\nhealth = {{ kind = \"none\" }}\nbackends = [{{ id = \"s1\", address = \"{}\" }}]\n",
        bs[0].addr()
    );
    let mut router = procs::start_switchyard_config(&scratch, "router", &config, addr).unwrap();
    let client = Client::builder()
        .region("r", format!("http://{addr}"))
        .build()
        .unwrap();
    let mut session = client.session("/ws/echo").await.unwrap();
    let _ = next_event(&mut session).await;
    assert_eq!(echo(&mut session, "before").await, "s1: before");
    router.kill(); // SIGKILL: no close frame, the connection just breaks
    let _back = procs::start_switchyard_config(&scratch, "router-again", &config, addr).unwrap();
    until(&mut session, "a resume", |e| {
        matches!(e, Event::Resumed { .. })
    })
    .await;
    assert_eq!(echo(&mut session, "after").await, "s1: after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silently_dead_connection_is_found_by_ping_timeout() {
    let bs = backends(&["s1"]).await;
    let (_r, addr) = router_with(&members(&bs), 0);
    let relay = Relay::to(addr).await;
    let client = Client::builder()
        .region("via-relay", format!("http://{}", relay.addr))
        .region("direct", format!("http://{addr}"))
        .ping_interval(Duration::from_millis(200))
        .ping_timeout(Duration::from_millis(300))
        .attempt_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let mut session = client.session("/ws/echo").await.unwrap();
    let _ = next_event(&mut session).await;
    assert_eq!(echo(&mut session, "hi").await, "s1: hi");
    relay.set(Path::Swallow);
    match until(&mut session, "a reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await
    {
        Event::Reconnecting { reason, .. } => assert!(reason.contains("no pong"), "{reason}"),
        other => panic!("{other:?}"),
    }
    until(&mut session, "a resume", |e| {
        matches!(e, Event::Resumed { .. })
    })
    .await;
    assert_eq!(echo(&mut session, "back").await, "s1: back");
}
