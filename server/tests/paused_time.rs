//! Outlier ejection and slow start on a paused clock: a pool actor ejects a backend whose
//! requests keep failing for `base_ejection × n` (± its 10% jitter), lets it back once that is
//! over, forgets its past ejections after it stayed in for a whole `max_ejection`, never ejects
//! more than `max_ejection_percent` of the pool meanwhile, and eases a returning backend back in
//! over `slow_start` — shown by advancing tokio's paused clock (`switchyard::clock`), never by
//! waiting for real.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use switchyard::clock::Instant;
use switchyard::config::Config;
use switchyard::control::PoolActor;
use switchyard::control::pool::OUTLIER_POLL;
use switchyard::routing::{BackendState, BackendStats, PoolHandle, RouteTable};

/// How often the test looks at the snapshot: well below the pool's own poll.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// Runs `test` in an actix system whose tokio clock starts paused: time moves only when every
/// task waits (to the next timer) or when the test advances it.
fn on_paused_clock<F: Future<Output = ()>>(test: impl FnOnce() -> F) {
    actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime")
    })
    .block_on(test());
}

/// A pool of two backends (`api-1`, `api-2`) with outlier ejection (5 failures in a row;
/// 10 s base, 60 s max) and `extra` settings, its actor running. Health checks are off, so
/// nothing dials the backends: their addresses are two listeners the test holds, bound on
/// port 0. Returns the pool's handle, the first backend's counters and the listeners.
fn pool_with(extra: &str) -> (Arc<PoolHandle>, Arc<BackendStats>, [TcpListener; 2]) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let held = [bind(), bind()];
    let [a1, a2] = held.each_ref().map(|l| l.local_addr().unwrap());
    let text = format!(
        r#"
        [[pools]]
        id = "api"
        algorithm = "round_robin"
        health = {{ kind = "none" }}
        outlier = {{ consecutive_failures = 5, base_ejection = "10s", max_ejection = "60s" }}
        {extra}
        backends = [
            {{ id = "api-1", address = "{a1}" }},
            {{ id = "api-2", address = "{a2}" }},
        ]
        "#
    );
    let config = Config::from_toml_str(&text).expect("the test pool is valid");
    let handle = RouteTable::build(&config).pools[0].clone();
    PoolActor::new(config.pools[0].clone(), handle.clone()).start();
    let stats = handle.load_full().backends[0].stats.clone();
    (handle, stats, held)
}

fn pool() -> (Arc<PoolHandle>, Arc<BackendStats>, [TcpListener; 2]) {
    pool_with("")
}

fn ejected(handle: &PoolHandle) -> bool {
    handle.load_full().backends[0].state == BackendState::Ejected
}

fn ejected_count(handle: &PoolHandle) -> usize {
    let snapshot = handle.load_full();
    let backends = snapshot.backends.iter();
    backends
        .filter(|b| b.state == BackendState::Ejected)
        .count()
}

/// Fails the backend's requests until it is ejected; returns how long it then stayed out.
async fn fail_until_ejected_and_back(handle: &PoolHandle, stats: &BackendStats) -> Duration {
    for _ in 0..5 {
        stats.record_outcome(false);
    }
    let asked = Instant::now();
    while !ejected(handle) {
        assert!(asked.elapsed() <= OUTLIER_POLL * 2, "not ejected in time");
        tokio::time::sleep(LOOK_EVERY).await;
    }
    let out = Instant::now();
    while ejected(handle) {
        assert!(out.elapsed() <= Duration::from_secs(120), "never came back");
        tokio::time::sleep(LOOK_EVERY).await;
    }
    out.elapsed()
}

/// `expected` ± 10% jitter, widened by the pool's poll and the test's look.
fn assert_out_for(out: Duration, expected: Duration, what: &str) {
    let slack = OUTLIER_POLL + LOOK_EVERY;
    let (least, most) = (expected.mul_f64(0.9) - slack, expected.mul_f64(1.1) + slack);
    assert!(
        (least..=most).contains(&out),
        "{what}: out for {out:?}, expected {least:?}..={most:?}"
    );
}

#[test]
fn an_ejected_backend_returns_after_base_ejection_times_n() {
    on_paused_clock(|| async {
        let (handle, stats, _listeners) = pool();
        let first = fail_until_ejected_and_back(&handle, &stats).await;
        assert_out_for(first, Duration::from_secs(10), "first ejection");
        assert_eq!(
            handle.load_full().backends[0].state,
            BackendState::Up,
            "back in rotation"
        );
        let second = fail_until_ejected_and_back(&handle, &stats).await;
        assert_out_for(second, Duration::from_secs(20), "second ejection");
    });
}

#[test]
fn a_backend_that_stays_in_for_max_ejection_starts_again_from_base_ejection() {
    on_paused_clock(|| async {
        let (handle, stats, _listeners) = pool();
        let first = fail_until_ejected_and_back(&handle, &stats).await;
        assert_out_for(first, Duration::from_secs(10), "first ejection");
        tokio::time::sleep(Duration::from_secs(61)).await;
        let again = fail_until_ejected_and_back(&handle, &stats).await;
        assert_out_for(
            again,
            Duration::from_secs(10),
            "an ejection after a forgiven past",
        );
    });
}

#[test]
fn no_more_than_max_ejection_percent_is_out_while_every_backend_fails() {
    on_paused_clock(|| async {
        let (handle, _, _listeners) = pool();
        for b in &handle.load_full().backends {
            for _ in 0..5 {
                b.stats.record_outcome(false);
            }
        }
        let started = Instant::now();
        while ejected_count(&handle) == 0 {
            assert!(started.elapsed() <= OUTLIER_POLL * 2, "not ejected in time");
            tokio::time::sleep(LOOK_EVERY).await;
        }
        // 50% of 2 is 1: the other, still failing, stays in for the first one's whole ejection.
        let out = Instant::now();
        while out.elapsed() < Duration::from_secs(8) {
            assert_eq!(ejected_count(&handle), 1, "after {:?}", out.elapsed());
            tokio::time::sleep(LOOK_EVERY).await;
        }
    });
}

/// The first backend's published weight as a share of the second's (both configured alike).
fn weight_share(handle: &PoolHandle) -> f64 {
    let snapshot = handle.load_full();
    f64::from(snapshot.backends[0].weight) / f64::from(snapshot.backends[1].weight)
}

#[test]
fn a_backend_back_from_an_ejection_ramps_up_over_slow_start() {
    on_paused_clock(|| async {
        let (handle, stats, _listeners) = pool_with("slow_start = \"10s\"");
        assert_eq!(weight_share(&handle), 1.0, "both at full weight to start");
        fail_until_ejected_and_back(&handle, &stats).await;
        let back = weight_share(&handle);
        assert!(back <= 0.15, "back at about 10% of its weight, got {back}");
        tokio::time::sleep(Duration::from_secs(5)).await;
        let halfway = weight_share(&handle);
        assert!(
            (0.4..=0.6).contains(&halfway),
            "about half its weight halfway through slow start, got {halfway}"
        );
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(
            weight_share(&handle),
            1.0,
            "full weight once slow start is over"
        );
    });
}
