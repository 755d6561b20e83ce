//! A drain loses nothing: 200 SDK sessions each send a numbered message every 200 ms to the
//! echo backend while the admin API drains the backend half of them are on. The router hands
//! each session off (`4001 moved; delivered=N`), the SDK re-sends what did not arrive, and
//! every message is echoed exactly once, every resume `recovered`.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::*;
use switchyard_client::{Client, Event, Message};
use tokio::sync::watch;

const SESSIONS: usize = 200;
const EVERY: Duration = Duration::from_millis(200);

/// What one session saw.
#[derive(Debug, Default)]
struct Seen {
    first_backend: Option<String>,
    sent: u64,
    echoed: BTreeMap<u64, u32>,
    resumed: Vec<(bool, usize)>,
    handed_back: usize,
    ended: Vec<Event>,
}

/// Sends `msg <n>` every `EVERY` until `stop` turns true, records every event, and returns
/// once every sent message was echoed (or after the deadline, for the asserts to report).
async fn app(client: Client, mut stop: watch::Receiver<bool>) -> Seen {
    let mut seen = Seen::default();
    let mut session = client.session("/ws/echo").await.expect("a session");
    let mut tick = tokio::time::interval(EVERY);
    let deadline = Instant::now() + DEADLINE * 2;
    loop {
        let stopped = *stop.borrow();
        if stopped && (1..=seen.sent).all(|n| seen.echoed.contains_key(&n)) {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::select! {
            _ = tick.tick(), if !stopped => {
                seen.sent += 1;
                session
                    .send(Message::text(format!("msg {}", seen.sent)))
                    .expect("queued");
            }
            _ = stop.changed(), if !stopped => {}
            event = tokio::time::timeout(DEADLINE, session.next()) => match event {
                Ok(Some(Event::Connected { backend, .. })) => seen.first_backend = backend,
                Ok(Some(Event::Message(msg))) => {
                    let text = msg.as_text().unwrap_or_default();
                    let n: u64 = text.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                    *seen.echoed.entry(n).or_default() += 1;
                }
                Ok(Some(Event::Resumed { recovered, resent, .. })) => seen.resumed.push((recovered, resent)),
                Ok(Some(Event::Unconfirmed { messages, not_kept })) => {
                    seen.handed_back += messages.len() + not_kept as usize;
                }
                Ok(Some(Event::Reconnecting { .. })) => {}
                Ok(Some(other)) => seen.ended.push(other),
                Ok(None) | Err(_) => break,
            }
        }
    }
    session.close().await.ok();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_delivers_every_message_exactly_once() {
    let bs = backends(&["d1", "d2"]).await;
    let (router, addr) = router(&bs);
    let client = Client::builder()
        .region("r", format!("http://{addr}"))
        .build()
        .unwrap();
    let (stop, stopped) = watch::channel(false);
    let apps: Vec<_> = (0..SESSIONS)
        .map(|_| tokio::spawn(app(client.clone(), stopped.clone())))
        .collect();
    // Let every session connect and send a few messages.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let drained = admin_post(
        router.admin_addr(),
        "/admin/v1/backends/d1/drain",
        r#"{"deadline_s": 15, "spread_s": 2}"#,
    )
    .await;
    assert_eq!(drained, 202);
    // The spread (2 s), the reconnect jitter (up to 1 s) and some sending after.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.send(true).unwrap();
    let mut moved = 0;
    let mut total_sent = 0;
    let mut resent = 0;
    for (i, app) in apps.into_iter().enumerate() {
        let seen = app.await.unwrap();
        total_sent += seen.sent;
        let lost: Vec<u64> = (1..=seen.sent)
            .filter(|n| !seen.echoed.contains_key(n))
            .collect();
        let duplicated: Vec<(&u64, &u32)> = seen.echoed.iter().filter(|(_, c)| **c > 1).collect();
        assert!(lost.is_empty(), "session {i}: lost {lost:?} ({seen:?})");
        assert!(
            duplicated.is_empty(),
            "session {i}: duplicated {duplicated:?}"
        );
        assert_eq!(seen.handed_back, 0, "session {i}: {seen:?}");
        assert!(seen.ended.is_empty(), "session {i}: {seen:?}");
        assert!(
            seen.resumed.iter().all(|(recovered, _)| *recovered),
            "session {i}: {seen:?}"
        );
        if seen.first_backend.as_deref() == Some("d1") {
            assert_eq!(seen.resumed.len(), 1, "session {i} moved once: {seen:?}");
            moved += 1;
        }
        resent += seen.resumed.iter().map(|(_, r)| r).sum::<usize>();
    }
    assert!(moved >= SESSIONS / 4, "only {moved} sessions were on d1");
    println!(
        "{SESSIONS} sessions, {moved} moved, {total_sent} messages, {resent} re-sent: 0 lost, 0 duplicated"
    );
}
