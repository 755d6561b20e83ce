//! A router node stopped under live SDK sessions (SIGTERM), as an orchestrator stops one during
//! a deploy. Two `switchyard serve` nodes share sessions through a private `redis-server` and
//! are the two endpoints of the viewers' one region. The stopped node moves its sessions one
//! at a time over `shutdown_spread`; every SDK session resumes on the other node, on the backend
//! it had, with nothing lost or duplicated, and the reconnects arrive spread out, not at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_load::procs::{self, ScratchDir};
use switchyard_load::viewers::{self, Plan, Tally};
use tokio::sync::watch;

const SESSIONS: usize = 300;
const SPREAD: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_moves_every_session_to_the_other_node_spread_out_and_loses_nothing() {
    let scratch = ScratchDir::new("sdk-shutdown").unwrap();
    let redis_port = procs::free_port().unwrap();
    let _redis = procs::start_redis(redis_port)
        .expect("a private redis-server (apt-get install -y redis-server)");
    let (_backends, members) = procs::start_backends(&["s1", "s2"]).unwrap();
    let mut nodes = switchyard_load::shutdown::start_two_nodes(
        &scratch,
        redis_port,
        &members,
        Duration::from_millis(200),
        SPREAD,
    )
    .unwrap();
    let endpoints: Vec<String> = nodes.iter().map(|(_, l)| format!("http://{l}")).collect();
    let plan = Plan {
        client: Arc::new(move || {
            switchyard_client::Client::builder()
                .region_endpoints("local", endpoints.clone())
                .build()
                .map_err(|e| e.to_string())
        }),
        path: "/ws/echo".to_string(),
        every: Duration::from_millis(200),
    };
    let tally = Arc::new(Tally::default());
    let (stop, stopped) = watch::channel(false);
    let viewers = viewers::start(&plan, SESSIONS, 500.0, tally.clone(), stopped);
    let opened = Instant::now();
    while Tally::get(&tally.opened) < SESSIONS as u64 {
        assert!(
            opened.elapsed() < Duration::from_secs(20),
            "only {} of {SESSIONS} sessions opened",
            Tally::get(&tally.opened)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every viewer has messages going both ways before the signal.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let signalled = Instant::now();
    nodes[0].0.terminate().unwrap();
    loop {
        let (resumed, _, _) = tally.resumes_since(signalled);
        if resumed >= SESSIONS {
            break;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(30),
            "{resumed} of {SESSIONS} sessions resumed 30 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, last, peak) = tally.resumes_since(signalled);
    println!("{SESSIONS} sessions resumed, the last {last:?} after SIGTERM, peak {peak}/s");
    // The old node is gone for good once its sessions have moved: every resume was on node-b.
    let exited = Instant::now();
    while nodes[0].0.exited().is_none() {
        assert!(
            exited.elapsed() < Duration::from_secs(20),
            "node-a did not exit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A few more messages on the new node, then the tally.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop.send(true);
    for v in viewers {
        v.await.unwrap();
    }
    let get = Tally::get;
    assert_eq!(get(&tally.lost), 0, "messages lost");
    assert_eq!(get(&tally.duplicated), 0, "messages duplicated");
    assert_eq!(
        get(&tally.handed_back),
        0,
        "a graceful stop leaves nothing unconfirmed"
    );
    assert_eq!(get(&tally.not_recovered), 0, "every resume is recovered");
    assert_eq!(get(&tally.closed), 0, "no session ended");
    assert!(get(&tally.echoed) > SESSIONS as u64 * 5, "messages flowed");
    // Sticky through Redis: node-b put every session back on its backend.
    assert!(tally.moves().is_empty(), "{:?}", tally.moves());
    // Spread: 300 moves over 3 s is 100 a second; all at once would be 300 in one second.
    assert!(
        peak <= 180,
        "at most 180 resumes in any second (spread over {SPREAD:?}), saw {peak}"
    );
    assert!(
        last >= SPREAD.mul_f64(0.8),
        "the last resume came {last:?} after SIGTERM: the moves were not spread"
    );
    // Moved by the stopping node, each session comes back through the other one first
    // instead of waiting on the stopping node's closed door.
    assert!(
        last < SPREAD + Duration::from_secs(4),
        "the last resume came {last:?} after SIGTERM, long after the {SPREAD:?} spread"
    );
}
