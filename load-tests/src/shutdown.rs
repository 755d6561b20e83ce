//! `switchyard-load scenario shutdown`: a router node stopped the way an orchestrator stops it
//! (SIGTERM) under thousands of live WebSocket sessions held by real `switchyard-client`
//! sessions.
//!
//! Two router nodes share sessions through a private `redis-server` (same token key) in front
//! of the same three backends; every viewer's client lists both nodes as the two endpoints of
//! its one region, so its session opens on node A (the first endpoint). After the sessions are
//! open, A gets SIGTERM (`shutdown_delay` 0.5 s, `shutdown_spread` 5 s): it moves its sessions
//! one at a time over 5 s (backend closed first, then `4001` with `delivered`), and each SDK
//! session resumes on node B — on the backend it had, since B reads the session records A wrote.
//! Reports messages lost and duplicated (goal 0 / 0), resumes recovered or not, how long after
//! the signal the last session resumed, the peak of resumes in one second (the reconnect rate
//! node B took), and how many sessions changed backend.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::procs::{self, ScratchDir};
use crate::scenario::{Options, Verdict};
use crate::viewers::{self, Plan, Tally};

pub const SESSIONS: usize = 2000;
const OPEN_PER_S: f64 = 1500.0;
const MESSAGE_EVERY: Duration = Duration::from_secs(1);
const SPREAD: Duration = Duration::from_secs(5);
/// The goal: every session resumed within this long after the signal.
const GOAL: Duration = Duration::from_secs(10);
const WATCH: Duration = Duration::from_secs(20);

/// Two `switchyard serve` nodes sharing sessions through the Redis on `redis_port` (one token
/// key), in front of `backends` on a sticky least-connections route; each stops with
/// `shutdown_delay = delay` and `shutdown_spread = spread`. Their processes and listen
/// addresses, node-a first.
pub fn start_two_nodes(
    scratch: &ScratchDir,
    redis_port: u16,
    backends: &[(String, SocketAddr)],
    delay: Duration,
    spread: Duration,
) -> Result<Vec<(procs::Proc, SocketAddr)>, String> {
    let key = scratch.write("session.key", "two nodes' shared session token key")?;
    let members: Vec<String> = backends
        .iter()
        .map(|(id, addr)| format!("{{ id = \"{id}\", address = \"{addr}\" }}"))
        .collect();
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b"] {
        let listen = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
        let admin = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
        let config = format!(
            "[node]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = 1\n\
             shutdown_delay = \"{}ms\"\nshutdown_spread = \"{}ms\"\nshutdown_timeout = \"30s\"\n\
             [log]\naccess = false\n{}\
             [sessions]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:{redis_port}\"\ncookie_key_file = \"{}\"\n\
             [[routes]]\nid = \"ws\"\npath_prefix = \"/\"\npool = \"ws\"\nsticky = true\n\
             timeouts = {{ connect = \"1s\", response = \"5s\", idle = \"1h\" }}\n\
             [[pools]]\nid = \"ws\"\nalgorithm = \"least_connections\"\nhealth = {{ kind = \"none\" }}\nbackends = [{}]\n",
            delay.as_millis(),
            spread.as_millis(),
            procs::LOAD_GENERATOR_LIMITS,
            key.display(),
            members.join(", ")
        );
        let proc = procs::start_switchyard_config(scratch, name, &config, listen)?;
        nodes.push((proc, listen));
    }
    Ok(nodes)
}

pub async fn run(options: &Options, say: impl Fn(&str)) -> Result<Verdict, String> {
    let sessions = options.sessions.unwrap_or(SESSIONS);
    let scratch = ScratchDir::new("shutdown")?;
    let redis_port = procs::free_port()?;
    let _redis = procs::start_redis(redis_port)?;
    let (_backends, members) = procs::start_backends(&["b1", "b2", "b3"])?;
    let mut nodes = start_two_nodes(
        &scratch,
        redis_port,
        &members,
        Duration::from_millis(500),
        SPREAD,
    )?;
    let endpoints: Vec<String> = nodes.iter().map(|(_, l)| format!("http://{l}")).collect();
    say(&format!(
        "shutdown: {sessions} SDK sessions on {} (region endpoints {}), then SIGTERM to it (spread {SPREAD:?})",
        endpoints[0],
        endpoints.join(", ")
    ));
    let plan = Plan::echo_in_one_region(endpoints, MESSAGE_EVERY);
    let tally = Arc::new(Tally::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let viewers = viewers::start(&plan, sessions, OPEN_PER_S, tally.clone(), stop_rx);
    let opening = Duration::from_secs_f64(sessions as f64 / OPEN_PER_S);
    tokio::time::sleep(opening + Duration::from_secs(2)).await;
    let opened = Tally::get(&tally.opened);
    say(&format!("{opened} sessions open; SIGTERM to node-a"));

    let signalled = Instant::now();
    nodes[0].0.terminate()?;
    let mut exited = None;
    while signalled.elapsed() < WATCH {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if exited.is_none() && nodes[0].0.exited().is_some() {
            exited = Some(signalled.elapsed());
        }
        let (resumed, _, _) = tally.resumes_since(signalled);
        if exited.is_some() && resumed as u64 >= opened {
            break;
        }
    }
    tokio::time::sleep(MESSAGE_EVERY * 2).await;
    let _ = stop_tx.send(true);
    for v in viewers {
        let _ = v.await;
    }
    let (resumed, last, peak) = tally.resumes_since(signalled);
    let changed_backend: u64 = tally.moves().values().sum();
    let get = Tally::get;
    let (lost, duplicated, not_recovered) = (
        get(&tally.lost),
        get(&tally.duplicated),
        get(&tally.not_recovered),
    );
    let not_resumed = opened.saturating_sub(resumed as u64);
    let open_failed = get(&tally.open_failed);
    let failed = lost + duplicated + not_recovered + not_resumed + open_failed + get(&tally.closed);
    let goal = if failed == 0 && last <= GOAL {
        "goal met"
    } else {
        "goal missed"
    };
    let line = format!(
        "shutdown: {failed} failed, {opened} sessions; {} messages sent, {lost} lost, {duplicated} duplicated, {} handed back to the app; {resumed} resumed on node-b ({} recovered, {not_recovered} not, {} messages re-sent), the last {:.2} s after SIGTERM (spread {} s, goal {} s), peak {peak} resumes/s; {changed_backend} changed backend; {not_resumed} not resumed, {} sessions ended, {open_failed} failed to open; node-a exited {}; {goal}",
        get(&tally.sent),
        get(&tally.handed_back),
        get(&tally.recovered),
        get(&tally.resent),
        last.as_secs_f64(),
        SPREAD.as_secs(),
        GOAL.as_secs(),
        get(&tally.closed),
        exited.map_or("not within the watch".to_string(), |t| format!(
            "{:.2} s after",
            t.as_secs_f64()
        )),
    );
    Ok(Verdict { line, failed })
}
