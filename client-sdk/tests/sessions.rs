//! Sessions keep what the app sends across a move: a handoff re-sends exactly what did not
//! arrive, a lost backend hands the unconfirmed messages back, reconnects are paced by the
//! close code (and never loop tightly), a refusal ends the session, a path that stops reading
//! is found by the write timeout, a slow app bounds what the session buffers, and `session()`
//! and `close()` keep to their bounds. Real routers (in-process, loopback), real test
//! backends; a scripted WebSocket backend where a test needs a close code of its choosing.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;
use switchyard_client::{Client, ErrorKind, Event, Message, ReconnectAttempt, Session};

/// What an app saw of its numbered messages.
#[derive(Debug, Default)]
struct Tally {
    /// Echo count by message number.
    echoed: BTreeMap<u64, u32>,
    /// Handed back as unconfirmed or undelivered.
    handed_back: Vec<u64>,
    resumed: Vec<(String, bool, usize)>,
    reconnecting: Vec<(Option<u16>, Duration, String)>,
    other: Vec<Event>,
}

fn number(msg: &Message) -> u64 {
    let text = msg.as_text().expect("a text message");
    let n = text.rsplit(' ').next().unwrap_or(text);
    n.parse()
        .unwrap_or_else(|_| panic!("not a numbered message: {text:?}"))
}

impl Tally {
    fn record(&mut self, event: Event) {
        match event {
            Event::Message(msg) => *self.echoed.entry(number(&msg)).or_default() += 1,
            Event::Unconfirmed { messages, .. } | Event::Undelivered { messages } => {
                self.handed_back.extend(messages.iter().map(number));
            }
            Event::Resumed {
                region,
                recovered,
                resent,
                ..
            } => self.resumed.push((region, recovered, resent)),
            Event::Reconnecting {
                code,
                delay,
                reason,
                ..
            } => self.reconnecting.push((code, delay, reason)),
            other => self.other.push(other),
        }
    }
}

/// Sends `msg <n>` for n in 1..=total, one every `every`, while recording events; calls
/// `at(n)` after message n is sent. Then waits until messages `from..=total` were all echoed
/// (or the deadline passes) and returns the tally.
async fn numbered(
    session: &mut Session,
    total: u64,
    every: Duration,
    mut at: impl FnMut(u64, &Tally),
    wait_for: impl Fn(&Tally) -> bool,
) -> Tally {
    let mut tally = Tally::default();
    let mut tick = tokio::time::interval(every);
    let mut n = 0;
    let deadline = Instant::now() + DEADLINE;
    while n < total || !wait_for(&tally) {
        assert!(Instant::now() < deadline, "stuck after {n} sent: {tally:?}");
        tokio::select! {
            _ = tick.tick(), if n < total => {
                match session.send(Message::text(format!("msg {}", n + 1))) {
                    Ok(()) => {
                        n += 1;
                        at(n, &tally);
                    }
                    Err(err) if matches!(err.kind, ErrorKind::QueueFull(_)) => {}
                    Err(err) => panic!("send {}: {err}", n + 1),
                }
            }
            event = tokio::time::timeout(DEADLINE, session.next()) => {
                tally.record(event.expect("an event in time").expect("the session is alive"));
            }
        }
    }
    tally
}

fn all_echoed(total: u64) -> impl Fn(&Tally) -> bool {
    move |t| (1..=total).all(|n| t.echoed.contains_key(&n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_resends_exactly_what_did_not_arrive() {
    // The backend closes like a router's handoff, after leaving 150 ms of messages unread:
    // those are not in `delivered`, so the SDK must re-send them, and only them.
    let backend = Scripted::start("h", |_| Plan::Echo {
        hold: Duration::from_millis(150),
        retry_after_ms: 20,
    })
    .await;
    let (_router, addr) = router_for(&[backend.member()]);
    let client = Client::builder()
        .region("r", format!("http://{addr}"))
        .build()
        .unwrap();
    let mut session = client.session("/ws/echo").await.unwrap();
    // Two handoffs more than a second apart (closer ones would count as a streak and back
    // off).
    let total = 450;
    let tally = numbered(
        &mut session,
        total,
        Duration::from_millis(5),
        |n, _| {
            if n == 50 || n == 350 {
                backend.hand_off();
            }
        },
        all_echoed(total),
    )
    .await;
    let twice: Vec<_> = tally.echoed.iter().filter(|(_, c)| **c != 1).collect();
    assert!(twice.is_empty(), "echoed more than once: {twice:?}");
    assert_eq!(tally.echoed.len() as u64, total);
    assert!(tally.handed_back.is_empty(), "{tally:?}");
    assert_eq!(tally.resumed.len(), 2, "{tally:?}");
    assert!(
        tally.resumed.iter().all(|(_, recovered, _)| *recovered),
        "{tally:?}"
    );
    let resent: usize = tally.resumed.iter().map(|(_, _, r)| r).sum();
    assert!(resent > 0, "the held messages were re-sent: {tally:?}");
    for (code, delay, _) in &tally.reconnecting {
        assert_eq!(*code, Some(4001));
        assert_eq!(*delay, Duration::from_millis(20), "retry_after_ms obeyed");
    }
    session.close().await.expect("a clean close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_hands_back_what_is_unconfirmed_and_loses_nothing_after() {
    use switchyard_load::procs;
    let (mut process, process_addr) = procs::start_backend("doomed")
        .expect("a switchyard-backend process (`cargo test --workspace` builds the binary)");
    let survivor = backends(&["survivor"]).await;
    let (_router, addr) = router_for(&[
        ("doomed".to_string(), process_addr),
        ("survivor".to_string(), survivor[0].addr()),
    ]);
    let client = Client::builder()
        .region("r", format!("http://{addr}"))
        .build()
        .unwrap();
    // Least connections: of two sessions, one is on the backend about to die.
    let mut one = client.session("/ws/echo").await.unwrap();
    let mut two = client.session("/ws/echo").await.unwrap();
    let on = |e: Event| match e {
        Event::Connected { backend, .. } => backend,
        other => panic!("{other:?}"),
    };
    let (b1, _) = (
        on(next_event(&mut one).await),
        on(next_event(&mut two).await),
    );
    let session = if b1.as_deref() == Some("doomed") {
        &mut one
    } else {
        &mut two
    };
    // Long enough to resume while still sending, even after a failed first attempt.
    let total = 600;
    let resumed_at = Arc::new(Mutex::new(None::<u64>));
    let r = resumed_at.clone();
    let tally = numbered(
        session,
        total,
        Duration::from_millis(10),
        |n, tally| {
            if n == 50 {
                process.kill();
            }
            if !tally.resumed.is_empty() && r.lock().unwrap().is_none() {
                *r.lock().unwrap() = Some(n);
            }
        },
        // Done when every message was echoed or handed back.
        |t| {
            !t.resumed.is_empty()
                && (1..=total).all(|n| t.echoed.contains_key(&n) || t.handed_back.contains(&n))
        },
    )
    .await;
    assert_eq!(tally.resumed.len(), 1, "{tally:?}");
    let (_, recovered, resent) = &tally.resumed[0];
    assert!(!recovered, "nothing says what the killed backend read");
    assert_eq!(*resent, 0, "nothing is re-sent on a guess");
    assert_eq!(tally.reconnecting[0].0, Some(4002), "{tally:?}");
    assert!(
        !tally.handed_back.is_empty(),
        "the unconfirmed messages came back"
    );
    // Every message was echoed or handed back: none vanished.
    let missing: Vec<u64> = (1..=total)
        .filter(|n| !tally.echoed.contains_key(n) && !tally.handed_back.contains(n))
        .collect();
    assert!(missing.is_empty(), "silently lost: {missing:?}");
    let from = resumed_at.lock().unwrap().expect("resumed while sending");
    assert!(from < total, "resumed before the last message");
    assert!(
        (from..=total).all(|n| tally.echoed.get(&n) == Some(&1)),
        "every message sent after the resume was echoed once: {tally:?}"
    );
    one.close().await.ok();
    two.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evacuation_with_no_other_region_backs_off_instead_of_looping() {
    // Every connection is told to move to a region this client does not know.
    let backend = Scripted::start("e", |_| {
        Plan::Close(4003, "moved; retry_after_ms=0; region=elsewhere".into())
    })
    .await;
    let (_router, addr) = router_for(&[backend.member()]);
    let seen: Arc<Mutex<Vec<ReconnectAttempt>>> = Arc::default();
    let hook = seen.clone();
    let client = Client::builder()
        .region("only", format!("http://{addr}"))
        .reconnect_backoff(switchyard_client::Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        })
        .on_reconnect(Some(Arc::new(move |a: &ReconnectAttempt| {
            hook.lock().unwrap().push(a.clone())
        })))
        .build()
        .unwrap();
    let mut session = client.session("/ws/echo").await.unwrap();
    let window = Duration::from_secs(3);
    let started = Instant::now();
    while started.elapsed() < window {
        if let Ok(event) = tokio::time::timeout(window - started.elapsed(), session.next()).await {
            let event = event.expect("the session goes on");
            if let Event::Reconnecting { code, .. } = &event {
                assert_eq!(*code, Some(4003), "{event:?}");
            }
        }
    }
    let attempts = seen.lock().unwrap().clone();
    let connections = backend
        .connections
        .load(std::sync::atomic::Ordering::Relaxed);
    // A tight loop would make hundreds; backoff from 100 ms to 1 s makes a handful.
    assert!(
        (2..=20).contains(&attempts.len()),
        "{} attempts in {window:?}: {attempts:?}",
        attempts.len()
    );
    assert!(connections <= 21, "{connections} connections in {window:?}");
    let ceilings_grow = attempts
        .iter()
        .skip(4)
        .any(|a| a.delay > Duration::from_millis(400));
    assert!(
        attempts.len() < 5 || ceilings_grow,
        "the waits grow: {attempts:?}"
    );
    drop(session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evacuation_follows_the_region_the_router_names() {
    let evacuating = Scripted::start("a-1", |n| match n {
        0 => Plan::CloseAfter(
            1,
            4003,
            "moved; delivered=1; retry_after_ms=0; region=c".into(),
        ),
        _ => Plan::Echo {
            hold: Duration::ZERO,
            retry_after_ms: 0,
        },
    })
    .await;
    let (bs, cs) = (backends(&["b-1"]).await, backends(&["c-1"]).await);
    let (_ra, a) = router_for(&[evacuating.member()]);
    let (_rb, b) = router(&bs);
    let (_rc, c) = router(&cs);
    let client = Client::builder()
        .region("a", format!("http://{a}"))
        .region("b", format!("http://{b}"))
        .region("c", format!("http://{c}"))
        .build()
        .unwrap();
    let mut session = client.session("/ws/echo").await.unwrap();
    assert_eq!(echo(&mut session, "one").await, "a-1: one");
    match until(&mut session, "a resume", |e| {
        matches!(e, Event::Resumed { .. })
    })
    .await
    {
        Event::Resumed {
            region,
            recovered,
            resent,
            ..
        } => {
            assert_eq!(region, "c", "not the next in order (b): the one named");
            assert!(recovered);
            assert_eq!(resent, 0);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(echo(&mut session, "two").await, "c-1: two");
    session.close().await.expect("a clean close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_later_backs_off_then_resumes() {
    let backend = Scripted::start("t", |n| match n {
        0 => Plan::Close(1013, "try again later".into()),
        _ => Plan::Echo {
            hold: Duration::ZERO,
            retry_after_ms: 0,
        },
    })
    .await;
    let (_router, addr) = router_for(&[backend.member()]);
    let client = Client::builder()
        .region("r", format!("http://{addr}"))
        .reconnect_backoff(switchyard_client::Backoff {
            base: Duration::from_millis(300),
            cap: Duration::from_secs(5),
        })
        .build()
        .unwrap();
    let mut session = client.session("/ws/echo").await.unwrap();
    match until(&mut session, "a reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await
    {
        Event::Reconnecting { code, delay, .. } => {
            assert_eq!(code, Some(1013));
            assert!(delay <= Duration::from_millis(300), "{delay:?}");
        }
        other => panic!("{other:?}"),
    }
    match until(&mut session, "a resume", |e| {
        matches!(e, Event::Resumed { .. })
    })
    .await
    {
        Event::Resumed { recovered, .. } => assert!(recovered, "nothing was sent"),
        other => panic!("{other:?}"),
    }
    assert_eq!(echo(&mut session, "back").await, "t: back");
    session.close().await.expect("a clean close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_ends_the_session_and_hands_back_what_was_sent() {
    let backend = Scripted::start("p", |_| Plan::CloseAfter(1, 1008, "forbidden".into())).await;
    let (_router, addr) = router_for(&[backend.member()]);
    let client = Client::builder()
        .region("r", format!("http://{addr}"))
        .build()
        .unwrap();
    let mut session = client.session("/ws/echo").await.unwrap();
    assert_eq!(echo(&mut session, "one").await, "p: one");
    let mut events = Vec::new();
    loop {
        let event = tokio::time::timeout(DEADLINE, session.next())
            .await
            .expect("the end in time");
        match event {
            Some(e) => events.push(e),
            None => break,
        }
    }
    assert!(
        events.contains(&Event::Unconfirmed {
            messages: vec![Message::text("one")],
            not_kept: 0
        }),
        "{events:?}"
    );
    assert_eq!(
        events.last(),
        Some(&Event::Closed {
            code: 1008,
            reason: "forbidden".into()
        })
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Reconnecting { .. })),
        "{events:?}"
    );
    let err = session.send(Message::text("late")).expect_err("over");
    assert!(matches!(err.kind, ErrorKind::SessionClosed { .. }), "{err}");
    assert_eq!(
        backend
            .connections
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_stops_reading_is_found_by_the_write_timeout() {
    let bs = backends(&["s1"]).await;
    let (_router, addr) = router(&bs);
    let relay = Relay::to(addr).await;
    let replay_bytes = 256 * 1024;
    let client = Client::builder()
        .region("via-relay", format!("http://{}", relay.addr))
        .region("direct", format!("http://{addr}"))
        .send_timeout(Duration::from_millis(500))
        .attempt_timeout(Duration::from_secs(1))
        .ping_interval(Duration::from_secs(60)) // only the write timeout can find it
        .replay_buffer_bytes(replay_bytes)
        // What waits behind the blocked write is echoed after the resume: keep it small.
        .send_queue(16)
        .build()
        .unwrap();
    let mut session = client.session("/ws/echo").await.unwrap();
    let _ = next_event(&mut session).await;
    assert_eq!(echo(&mut session, "hi").await, "s1: hi");
    relay.set(Path::Stall);
    let chunk = bytes::Bytes::from(vec![1u8; 64 * 1024]);
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    let deadline = Instant::now() + DEADLINE;
    let mut handed_back = 0usize;
    let reason = loop {
        assert!(Instant::now() < deadline, "no reconnect");
        tokio::select! {
            _ = tick.tick() => {
                // A full queue is expected once the writes block.
                let _ = session.send(Message::binary(chunk.clone()));
            }
            event = session.next() => match event.expect("alive") {
                Event::Unconfirmed { messages, .. } => {
                    handed_back = messages.iter().map(Message::len).sum();
                }
                Event::Reconnecting { reason, code, .. } => {
                    assert_eq!(code, None, "a dead path");
                    break reason;
                }
                _ => {}
            }
        }
    };
    assert!(reason.contains("send_timeout"), "{reason}");
    assert!(handed_back > 0, "the unconfirmed messages came back");
    assert!(
        handed_back <= replay_bytes,
        "the replay buffer stays within its bound: {handed_back}"
    );
    match until(&mut session, "a resume", |e| {
        matches!(e, Event::Resumed { .. })
    })
    .await
    {
        Event::Resumed { region, .. } => assert_eq!(region, "direct"),
        other => panic!("{other:?}"),
    }
    // What was queued behind the blocked write goes out after the reconnect, then this.
    relay.set(Path::Forward);
    let mut echoes = Vec::new();
    while let Err(err) = session.send(Message::text("after")) {
        // The queue drains as the echoes are read.
        assert!(matches!(err.kind, ErrorKind::QueueFull(_)), "{err}");
        echoes.push(next_event(&mut session).await);
    }
    until(&mut session, "the echo of `after`", |e| {
        *e == Event::Message(Message::text("s1: after"))
    })
    .await;
    drop(session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_app_stops_the_reads_and_the_pings_do_not_misfire() {
    use std::sync::atomic::Ordering;
    let total = 5_000;
    let backend = Scripted::start("f", move |_| Plan::Flood {
        count: total,
        size: 64 * 1024,
    })
    .await;
    let (_router, addr) = router_for(&[backend.member()]);
    let client = Client::builder()
        .region("r", format!("http://{addr}"))
        .event_buffer(16)
        .ping_interval(Duration::from_millis(200))
        .ping_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let mut session = client.session("/ws/echo").await.unwrap();
    // The app reads nothing: the backend's writes must stall (TCP back-pressure all the way),
    // far short of the 320 MB it wants to send.
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut last = u64::MAX;
    let stalled_at = loop {
        assert!(
            Instant::now() < deadline,
            "the backend never stalled: {} sent",
            backend.flooded.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(400)).await; // sampling a counter
        let now = backend.flooded.load(Ordering::Relaxed);
        if now == last {
            break now;
        }
        last = now;
    };
    assert!(stalled_at < total / 4, "stalled at {stalled_at} of {total}");
    println!("the backend stalled after {stalled_at} of {total} messages of 64 KiB");
    // Several ping timeouts passed while the app was slow: none counted against the path.
    let mut read = 0;
    while read < 300 {
        match next_event(&mut session).await {
            Event::Message(Message::Binary(b)) => {
                assert_eq!(b.len(), 64 * 1024);
                read += 1;
            }
            Event::Connected { .. } => {}
            other => panic!("after {read} messages: {other:?}"),
        }
    }
    assert!(
        backend.flooded.load(Ordering::Relaxed) > stalled_at,
        "reading resumed the flow"
    );
    drop(session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_keeps_to_the_deadline_and_close_returns_what_it_could_not_send() {
    // A router that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            open.push(s);
        }
    });
    let client = Client::builder()
        .region("silent", format!("http://{silent_addr}"))
        .deadline(Duration::from_millis(800))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client.session("/ws/echo").await.err().expect("no session");
    assert!(matches!(err.kind, ErrorKind::Deadline(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    held.abort();

    // A clean close: what was sent arrived.
    let bs = backends(&["s1"]).await;
    let (_router, addr) = router(&bs);
    let relay = Relay::to(addr).await;
    let client = Client::builder()
        .region("r", format!("http://{}", relay.addr))
        .ping_interval(Duration::from_millis(200))
        .ping_timeout(Duration::from_millis(300))
        .attempt_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let session = client.session("/ws/echo").await.unwrap();
    session.send(Message::text("a")).unwrap();
    session.send(Message::text("b")).unwrap();
    session.close().await.expect("sent and confirmed");

    // The path dies and every reconnect fails: messages sent meanwhile come back from close().
    let mut session = client.session("/ws/echo").await.unwrap();
    assert_eq!(echo(&mut session, "x").await, "s1: x");
    relay.set(Path::Swallow);
    until(&mut session, "a reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    for text in ["q1", "q2", "q3"] {
        session.send(Message::text(text)).unwrap();
    }
    let started = Instant::now();
    let err = session.close().await.expect_err("nothing could be sent");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    match err.kind {
        ErrorKind::Undelivered { messages, not_kept } => {
            assert_eq!(messages, ["q1", "q2", "q3"].map(Message::text).to_vec());
            assert_eq!(not_kept, 0);
        }
        other => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_give_up_window_the_session_ends_and_hands_back_its_queue() {
    let bs = backends(&["s1"]).await;
    let (_router, addr) = router(&bs);
    let relay = Relay::to(addr).await;
    let give_up = Duration::from_millis(1500);
    let client = Client::builder()
        .region("r", format!("http://{}", relay.addr))
        .ping_interval(Duration::from_millis(200))
        .ping_timeout(Duration::from_millis(300))
        .attempt_timeout(Duration::from_millis(300))
        .reconnect_backoff(switchyard_client::Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(400),
        })
        .reconnect_give_up(give_up)
        .build()
        .unwrap();
    let mut session = client.session("/ws/echo").await.unwrap();
    assert_eq!(echo(&mut session, "x").await, "s1: x");
    relay.set(Path::Swallow);
    until(&mut session, "a reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await;
    let lost_at = Instant::now();
    session.send(Message::text("queued")).unwrap();
    let mut rest = Vec::new();
    while let Some(event) = tokio::time::timeout(DEADLINE, session.next())
        .await
        .expect("the end in time")
    {
        rest.push(event);
    }
    let waited = lost_at.elapsed();
    assert!(waited < give_up + Duration::from_secs(2), "{waited:?}");
    let n = rest.len();
    assert!(n >= 2, "{rest:?}");
    assert_eq!(
        rest[n - 2],
        Event::Undelivered {
            messages: vec![Message::text("queued")]
        }
    );
    match &rest[n - 1] {
        Event::Closed { reason, .. } => assert!(reason.contains("gave up"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let err = session.send(Message::text("late")).expect_err("over");
    assert!(matches!(err.kind, ErrorKind::SessionClosed { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_evacuation_sends_the_session_to_the_region_the_router_names() {
    let (eu, ap, us) = (
        backends(&["eu-1"]).await,
        backends(&["ap-1"]).await,
        backends(&["us-1"]).await,
    );
    // Dublin evacuates; its router names the nearest healthy region, us-east, while this
    // client lists ap-south before us-east.
    let routers = region_routers(&[
        ("eu-west", 53.35, -6.26, &eu),
        ("ap-south", 1.35, 103.82, &ap),
        ("us-east", 38.9, -77.04, &us),
    ]);
    let (eu_router, eu_addr) = &routers[0];
    let deadline = Instant::now() + DEADLINE;
    loop {
        let directory = get_json(*eu_addr, "/v1/regions").await;
        let healthy = directory["regions"]
            .as_array()
            .is_some_and(|all| all.len() == 3 && all.iter().all(|r| r["healthy"] == true));
        if healthy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "regions never healthy: {directory}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // the probes run every 100 ms
    }
    let mut client = Client::builder();
    for (name, addr) in [("eu-west", 0), ("ap-south", 1), ("us-east", 2)] {
        client = client.region(name, format!("http://{}", routers[addr].1));
    }
    let client = client.build().unwrap();
    let mut session = client.session("/ws/echo").await.unwrap();
    assert_eq!(echo(&mut session, "one").await, "eu-1: one");
    let evacuated = admin_post(
        eu_router.admin_addr(),
        "/admin/v1/regions/eu-west/evacuate",
        r#"{"spread_s": 0}"#,
    )
    .await;
    assert_eq!(evacuated, 202);
    match until(&mut session, "a reconnect", |e| {
        matches!(e, Event::Reconnecting { .. })
    })
    .await
    {
        Event::Reconnecting { code, reason, .. } => {
            assert_eq!(code, Some(4003));
            assert!(reason.contains("region=us-east"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    match until(&mut session, "a resume", |e| {
        matches!(e, Event::Resumed { .. })
    })
    .await
    {
        Event::Resumed {
            region, recovered, ..
        } => {
            assert_eq!(region, "us-east");
            assert!(recovered, "the one message was delivered before the move");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(echo(&mut session, "two").await, "us-1: two");
    session.close().await.expect("a clean close");
}

#[test]
fn the_session_settings_read_from_json_by_their_builder_names() {
    let config = switchyard_client::ClientConfig::from_json(
        r#"{
            "regions": [{ "name": "r", "endpoints": ["http://127.0.0.1:8080"] }],
            "replay_buffer": 64,
            "replay_buffer_bytes": 65536,
            "event_buffer": 32,
            "send_timeout": "2s",
            "moved_jitter": "250ms",
            "backend_lost_jitter": "100ms",
            "reconnect_backoff": { "base": "500ms", "cap": "10s" },
            "reconnect_give_up": "1m"
        }"#,
    )
    .expect("the session settings read");
    assert_eq!(config.replay_buffer, 64);
    assert_eq!(config.replay_buffer_bytes, 65536);
    assert_eq!(config.event_buffer, 32);
    assert_eq!(config.send_timeout, Duration::from_secs(2));
    assert_eq!(config.moved_jitter, Duration::from_millis(250));
    assert_eq!(config.backend_lost_jitter, Duration::from_millis(100));
    assert_eq!(config.reconnect_backoff.cap, Duration::from_secs(10));
    assert_eq!(config.reconnect_give_up, Duration::from_secs(60));
    // The hook is code, not data: never written out.
    let text = config.to_json().unwrap();
    let written: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(written.get("on_reconnect").is_none(), "{text}");
    assert_eq!(written["send_timeout"], "2s", "{text}");
    assert_eq!(written["reconnect_give_up"], "1m", "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_refused_with_403_fails_at_once_and_is_not_retryable() {
    let bs = backends(&["s1"]).await;
    let (_router, addr) = router(&bs);
    let client = Client::builder()
        .region("r", format!("http://{addr}"))
        .build()
        .unwrap();
    // The backend answers this upgrade 403 (a test knob); the router passes it on.
    let before = bs[0].requests_served();
    let err = client
        .session("/ws/private?status=403")
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(err.kind, ErrorKind::Status { status: 403, .. }),
        "{err}"
    );
    assert!(!err.retryable, "{err}");
    assert_eq!(err.attempt, 1, "{err}");
    assert_eq!(bs[0].requests_served() - before, 1, "asked once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_on_a_path_that_stopped_reading_is_bounded_and_hands_everything_back() {
    let bs = backends(&["s1"]).await;
    let (_router, addr) = router(&bs);
    let relay = Relay::to(addr).await;
    let send_timeout = Duration::from_millis(300);
    let client = Client::builder()
        .region("r", format!("http://{}", relay.addr))
        .send_timeout(send_timeout)
        .ping_interval(Duration::from_secs(60))
        .send_queue(64)
        .build()
        .unwrap();
    let mut session = client.session("/ws/echo").await.unwrap();
    assert_eq!(echo(&mut session, "x").await, "s1: x");
    relay.set(Path::Stall);
    // 16 MB: more than the socket buffers on the way can take.
    let chunks: Vec<Message> = (0..64u8)
        .map(|i| Message::binary(vec![i; 256 * 1024]))
        .collect();
    for chunk in &chunks {
        session.send(chunk.clone()).unwrap();
    }
    let started = Instant::now();
    let err = session.close().await.expect_err("nothing confirmed");
    let took = started.elapsed();
    assert!(took < send_timeout * 2 + Duration::from_secs(1), "{took:?}");
    match err.kind {
        ErrorKind::Undelivered { messages, not_kept } => {
            let binaries: Vec<&Message> = messages
                .iter()
                .filter(|m| matches!(m, Message::Binary(_)))
                .collect();
            // The oldest written ones may have left the replay buffer (1 MiB holds four of
            // these): they are counted, never silently gone.
            assert!(
                binaries.len() as u64 + not_kept >= chunks.len() as u64,
                "{} handed back, {not_kept} counted, of {}",
                binaries.len(),
                chunks.len()
            );
            let tail = &chunks[chunks.len() - binaries.len()..];
            assert!(
                binaries.iter().zip(tail).all(|(a, b)| *a == b),
                "the newest, in order"
            );
        }
        other => panic!("{other}"),
    }
}
