//! `switchyard-load scenario drain`: draining a backend under thousands of live WebSocket
//! sessions held by real `switchyard-client` sessions.
//!
//! Three backends, one router node (one worker), `--sessions N` viewers (default 2,000; the
//! benchmark runs 9,000) on `/ws/echo`, sticky, spread by least connections, each sending a
//! numbered message every second and checking every echo (`crate::viewers`). Then b1 is
//! drained through the admin API (`deadline_s` 30, `spread_s` 5): the router hands each
//! session off (backend closed first, then `4001` with `delivered`), and the SDK resumes it on
//! another backend, re-sending what had not arrived. Reports messages lost and duplicated
//! (goal 0 / 0), resumes recovered or not, how long after the drain call the last session
//! resumed, the peak of resumes in one second, and when b1 showed `drained`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use crate::procs::{self, ScratchDir};
use crate::scenario::{Options, Verdict};
use crate::viewers::{self, Plan, Tally};

pub const SESSIONS: usize = 2000;
const OPEN_PER_S: f64 = 1500.0;
const MESSAGE_EVERY: Duration = Duration::from_secs(1);
const DRAIN_DEADLINE_S: u64 = 30;
const DRAIN_SPREAD_S: u64 = 5;
/// The goal: every session resumed within this long after the drain call.
const GOAL: Duration = Duration::from_secs(10);
/// How long the run waits for the moves before it judges.
const WATCH: Duration = Duration::from_secs(15);
const DRAINED: &str = "b1";
const TOKEN: &str = "drain-scenario-admin-token";

pub async fn run(options: &Options, say: impl Fn(&str)) -> Result<Verdict, String> {
    let sessions = options.sessions.unwrap_or(SESSIONS);
    let scratch = ScratchDir::new("drain")?;
    let (_backends, members) = procs::start_backends(&["b1", "b2", "b3"])?;
    let listen = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
    let admin = SocketAddr::from(([127, 0, 0, 1], procs::free_port()?));
    let token_file = scratch.write("admin.token", TOKEN)?;
    let backends: Vec<String> = members
        .iter()
        .map(|(id, addr)| format!("{{ id = \"{id}\", address = \"{addr}\" }}"))
        .collect();
    let config = format!(
        "[node]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\nworkers = 1\nadmin_token_file = \"{}\"\n\
         [log]\naccess = false\n{}\
         [[routes]]\nid = \"ws\"\npath_prefix = \"/\"\npool = \"ws\"\nsticky = true\n\
         timeouts = {{ connect = \"1s\", response = \"5s\", idle = \"1h\" }}\n\
         [[pools]]\nid = \"ws\"\nalgorithm = \"least_connections\"\nbackends = [{}]\n",
        token_file.display(),
        procs::LOAD_GENERATOR_LIMITS,
        backends.join(", ")
    );
    let _router = procs::start_switchyard_config(&scratch, "router", &config, listen)?;
    say(&format!(
        "drain: {sessions} SDK sessions through {listen}, then {DRAINED} drained (deadline {DRAIN_DEADLINE_S} s, spread {DRAIN_SPREAD_S} s)"
    ));

    let plan = Plan::echo_in_one_region(vec![format!("http://{listen}")], MESSAGE_EVERY);
    let tally = Arc::new(Tally::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let viewers = viewers::start(&plan, sessions, OPEN_PER_S, tally.clone(), stop_rx);
    let opening = Duration::from_secs_f64(sessions as f64 / OPEN_PER_S);
    tokio::time::sleep(opening + Duration::from_secs(2)).await;
    let opened = Tally::get(&tally.opened);
    let on_drained = backend_sessions(admin, DRAINED).await?;
    say(&format!(
        "{opened} sessions open, {on_drained} on {DRAINED}; draining it"
    ));

    let drained_at = Instant::now();
    let answer = admin_call(
        admin,
        "POST",
        &format!("/admin/v1/backends/{DRAINED}/drain"),
        &format!("{{\"deadline_s\": {DRAIN_DEADLINE_S}, \"spread_s\": {DRAIN_SPREAD_S}}}"),
    )
    .await?;
    if answer.0 != 202 {
        return Err(format!(
            "the drain call answered {}: {}",
            answer.0, answer.1
        ));
    }
    // Watch b1 until it shows drained and every session on it has resumed elsewhere.
    let mut shown_drained = None;
    while drained_at.elapsed() < WATCH {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if shown_drained.is_none() && backend_state(admin, DRAINED).await? == "drained" {
            shown_drained = Some(drained_at.elapsed());
        }
        let (resumed, _, _) = tally.resumes_since(drained_at);
        if shown_drained.is_some() && resumed as u64 >= on_drained {
            break;
        }
    }
    // A few more messages after the last move, so the new backends are exercised too.
    tokio::time::sleep(MESSAGE_EVERY * 2).await;
    let _ = stop_tx.send(true);
    for v in viewers {
        let _ = v.await;
    }
    let (resumed, last, peak) = tally.resumes_since(drained_at);
    let moved_back = tally
        .moves()
        .iter()
        .filter(|((_, to), _)| to == DRAINED)
        .map(|(_, n)| n)
        .sum::<u64>();
    let get = Tally::get;
    let (lost, duplicated, not_recovered) = (
        get(&tally.lost),
        get(&tally.duplicated),
        get(&tally.not_recovered),
    );
    let not_resumed = on_drained.saturating_sub(resumed as u64);
    let open_failed = get(&tally.open_failed);
    let failed = lost
        + duplicated
        + not_recovered
        + not_resumed
        + moved_back
        + open_failed
        + get(&tally.closed);
    let goal = if failed == 0 && last <= GOAL {
        "goal met"
    } else {
        "goal missed"
    };
    let line = format!(
        "drain: {failed} failed, {opened} sessions, {on_drained} on {DRAINED} at the drain; {} messages sent, {lost} lost, {duplicated} duplicated, {} handed back to the app; {resumed} resumed ({} recovered, {not_recovered} not, {} messages re-sent), the last {:.2} s after the drain call (spread {DRAIN_SPREAD_S} s, goal {} s), peak {peak} resumes/s; {not_resumed} not resumed, {moved_back} back on {DRAINED}, {} sessions ended, {open_failed} failed to open; {DRAINED} showed drained {}; {goal}",
        get(&tally.sent),
        get(&tally.handed_back),
        get(&tally.recovered),
        get(&tally.resent),
        last.as_secs_f64(),
        GOAL.as_secs(),
        get(&tally.closed),
        shown_drained.map_or("never".to_string(), |t| format!(
            "{:.2} s after",
            t.as_secs_f64()
        )),
    );
    Ok(Verdict { line, failed })
}

/// One admin call: status and body.
pub(crate) async fn admin_call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    admin_call_with(admin, TOKEN, method, path, body).await
}

/// One admin call with the router's admin `token`: status and body.
pub(crate) async fn admin_call_with(
    admin: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = ::http::Request::builder()
        .method(method)
        .uri(format!("http://{admin}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|err| err.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .map_err(|_| format!("{path}: no answer"))?
        .map_err(|err| format!("{path}: {err}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|err| err.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

async fn backend_view(admin: SocketAddr, id: &str) -> Result<serde_json::Value, String> {
    let (status, body) = admin_call(admin, "GET", &format!("/admin/v1/backends/{id}"), "").await?;
    if status != 200 {
        return Err(format!("GET backend {id}: {status} {body}"));
    }
    serde_json::from_str(&body).map_err(|err| err.to_string())
}

async fn backend_sessions(admin: SocketAddr, id: &str) -> Result<u64, String> {
    Ok(backend_view(admin, id).await?["sessions"]
        .as_u64()
        .unwrap_or(0))
}

async fn backend_state(admin: SocketAddr, id: &str) -> Result<String, String> {
    Ok(backend_view(admin, id).await?["state"]
        .as_str()
        .unwrap_or("-")
        .to_string())
}
