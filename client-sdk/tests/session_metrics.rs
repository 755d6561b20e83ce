//! Sessions report through the `metrics` crate: reconnects by reason, resumes by whether
//! anything can be missing, and re-sent messages. A recorder installed for this test binary
//! (the app's exporter in real life) reads the counters after a handoff and a lost backend.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use support::*;
use switchyard_client::{Client, Event, Message};

#[derive(Default)]
struct Count(AtomicU64);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

/// Counters by `name{label=value,…}`.
#[derive(Default)]
struct Counters(Mutex<HashMap<String, Arc<Count>>>);

fn key_text(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for &'static Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut all = self.0.lock().unwrap();
        Counter::from_arc(all.entry(key_text(key)).or_default().clone())
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn counters() -> &'static Counters {
    static COUNTERS: OnceLock<Counters> = OnceLock::new();
    let counters = COUNTERS.get_or_init(Counters::default);
    let _ = metrics::set_global_recorder(counters);
    counters
}

fn read(name: &str) -> u64 {
    counters()
        .0
        .lock()
        .unwrap()
        .get(name)
        .map_or(0, |c| c.0.load(Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_resumes_and_resends_are_counted() {
    counters();
    // Connection 0 hands off after leaving messages unread; connection 1 reads one message
    // and is lost (4002); then it echoes.
    let backend = Scripted::start("m", |n| match n {
        // Long enough for the client to have written messages 2..=6 before the close, on a
        // busy machine too (at 100 ms a slow run closed before they left the client's queue,
        // and nothing was left to re-send).
        0 => Plan::Echo {
            hold: Duration::from_secs(1),
            retry_after_ms: 0,
        },
        1 => Plan::CloseAfter(1, 4002, "backend lost".into()),
        _ => Plan::Echo {
            hold: Duration::ZERO,
            retry_after_ms: 0,
        },
    })
    .await;
    let (_router, addr) = router_for(&[backend.member()]);
    let client = Client::builder()
        .region("r", format!("http://{addr}"))
        .build()
        .unwrap();
    let mut session = client.session("/ws/echo").await.unwrap();
    assert_eq!(echo(&mut session, "1").await, "m: 1");
    // Queued while the backend holds its reads: none of these is in `delivered`.
    backend.hand_off();
    for n in 2..=6 {
        session.send(Message::text(n.to_string())).unwrap();
    }
    let resent = match until(&mut session, "a resume", |e| {
        matches!(e, Event::Resumed { .. })
    })
    .await
    {
        Event::Resumed {
            recovered, resent, ..
        } => {
            assert!(recovered);
            resent
        }
        other => panic!("{other:?}"),
    };
    assert!(resent > 0, "messages left unread were re-sent");
    // The re-sent messages reach connection 1, which reads one and is lost: 4002.
    match until(&mut session, "a second resume", |e| {
        matches!(e, Event::Resumed { .. })
    })
    .await
    {
        Event::Resumed { recovered, .. } => assert!(!recovered),
        other => panic!("{other:?}"),
    }
    assert_eq!(read("switchyard_client_reconnects_total{reason=moved}"), 1);
    assert_eq!(
        read("switchyard_client_reconnects_total{reason=backend_lost}"),
        1
    );
    assert_eq!(read("switchyard_client_resumes_total{recovered=true}"), 1);
    assert_eq!(read("switchyard_client_resumes_total{recovered=false}"), 1);
    assert_eq!(
        read("switchyard_client_resent_messages_total{}"),
        resent as u64
    );
    session.close().await.ok();
}
