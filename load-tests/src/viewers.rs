//! Viewers for the session scenarios (`drain`, `shutdown`, `region-loss`): each is a real
//! `switchyard-client` — its own client and session id, as one player — holding a WebSocket
//! session on the echo backend and sending a numbered message every `every`. Every echo is
//! checked against what was sent, so the scenarios measure what apps get from the SDK, not a
//! re-implementation of its rules:
//! - a message echoed twice is **duplicated**;
//! - a message never echoed, and never handed back by the SDK (`Unconfirmed`/`Undelivered`),
//!   is **lost**; one handed back was not lost silently — the app was told and may re-send;
//! - each `Resumed` is counted as recovered or not, with its time, so a scenario can report
//!   when the last session resumed and the peak of reconnects per second.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_client::{Client, Event, Message};
use tokio::sync::watch;

/// What every viewer adds up.
#[derive(Default)]
pub struct Tally {
    pub opened: AtomicU64,
    pub open_failed: AtomicU64,
    pub sent: AtomicU64,
    pub echoed: AtomicU64,
    pub duplicated: AtomicU64,
    pub lost: AtomicU64,
    /// Messages the SDK handed back to the app (delivery unknown or impossible).
    pub handed_back: AtomicU64,
    pub recovered: AtomicU64,
    pub not_recovered: AtomicU64,
    pub resent: AtomicU64,
    /// Sessions that ended for good (`Closed`) before the run stopped.
    pub closed: AtomicU64,
    /// When each resume happened.
    resumes: Mutex<Vec<Instant>>,
    /// Backend changes: (before, after), counted.
    moves: Mutex<BTreeMap<(String, String), u64>>,
}

impl Tally {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Resumes at or after `from`: how many, the last one's time after `from`, and the most in
    /// any one second.
    pub fn resumes_since(&self, from: Instant) -> (usize, Duration, usize) {
        let resumes = self.resumes.lock().unwrap_or_else(|e| e.into_inner());
        let after: Vec<Duration> = resumes
            .iter()
            .filter(|t| **t >= from)
            .map(|t| *t - from)
            .collect();
        let last = after.iter().max().copied().unwrap_or_default();
        let mut per_second: BTreeMap<u64, usize> = BTreeMap::new();
        for t in &after {
            *per_second.entry(t.as_secs()).or_default() += 1;
        }
        let peak = per_second.values().max().copied().unwrap_or(0);
        (after.len(), last, peak)
    }

    /// How many sessions moved from one backend to another, `from → to: n`.
    pub fn moves(&self) -> BTreeMap<(String, String), u64> {
        self.moves.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How a scenario's viewers connect and behave.
#[derive(Clone)]
pub struct Plan {
    /// Builds each viewer's client (its regions, endpoints, directory…).
    pub client: Arc<dyn Fn() -> Result<Client, String> + Send + Sync>,
    pub path: String,
    pub every: Duration,
}

impl Plan {
    /// Viewers on `/ws/echo` through one region (`local`) of `endpoints`, tried in turn,
    /// each sending a message `every` so often.
    pub fn echo_in_one_region(endpoints: Vec<String>, every: Duration) -> Plan {
        Plan {
            client: Arc::new(move || {
                Client::builder()
                    .region_endpoints("local", endpoints.clone())
                    .build()
                    .map_err(|e| e.to_string())
            }),
            path: "/ws/echo".to_string(),
            every,
        }
    }
}

/// Starts `n` viewers, opening `per_second` a second; they run until `stop` turns true, then
/// wait up to 3 s for the echoes still due and add what never came to `lost`.
pub fn start(
    plan: &Plan,
    n: usize,
    per_second: f64,
    tally: Arc<Tally>,
    stop: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let started = Instant::now();
    (0..n)
        .map(|i| {
            let opens_at = started + Duration::from_secs_f64(i as f64 / per_second);
            tokio::spawn(viewer(
                i,
                plan.clone(),
                opens_at,
                tally.clone(),
                stop.clone(),
            ))
        })
        .collect()
}

/// The backend that answered an echo `"<backend>: <viewer>-<n>"`, and `n`.
fn parse_echo(text: &str, me: usize) -> Option<(&str, u64)> {
    let (backend, body) = text.split_once(": ")?;
    let (viewer, n) = body.split_once('-')?;
    (viewer.parse::<usize>().ok()? == me).then_some(())?;
    Some((backend, n.parse().ok()?))
}

fn numbers(messages: &[Message], me: usize) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| m.as_text())
        .filter_map(|t| {
            let (viewer, n) = t.split_once('-')?;
            (viewer.parse::<usize>().ok()? == me).then_some(())?;
            n.parse().ok()
        })
        .collect()
}

async fn viewer(
    me: usize,
    plan: Plan,
    opens_at: Instant,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::time::sleep_until(opens_at.into()).await;
    let opened = async {
        let client = (plan.client)()?;
        client.session(&plan.path).await.map_err(|e| e.to_string())
    };
    let mut session = match opened.await {
        Ok(session) => session,
        Err(_) => {
            tally.open_failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    tally.opened.fetch_add(1, Ordering::Relaxed);
    let mut backend: Option<String> = None;
    let mut outstanding: BTreeSet<u64> = BTreeSet::new();
    let mut echoed: BTreeSet<u64> = BTreeSet::new();
    let mut handed_back: BTreeSet<u64> = BTreeSet::new();
    let mut next_n = 1u64;
    let mut tick = tokio::time::interval(plan.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Each viewer starts at its own point of the period, so messages do not come in waves.
    tokio::time::sleep(plan.every.mul_f64(fastrand::f64())).await;
    let mut stopping: Option<Instant> = None;
    loop {
        let settle = stopping.map(|t| t + Duration::from_secs(3));
        tokio::select! {
            _ = stop.changed(), if stopping.is_none() => {
                stopping = Some(Instant::now());
            }
            _ = tick.tick(), if stopping.is_none() => {
                let n = next_n;
                next_n += 1;
                // A send refused at once is known to the app: neither lost nor counted.
                if session.send(Message::text(format!("{me}-{n}"))).is_ok() {
                    tally.sent.fetch_add(1, Ordering::Relaxed);
                    outstanding.insert(n);
                }
            }
            _ = async { tokio::time::sleep_until(settle.unwrap_or_else(Instant::now).into()).await }, if settle.is_some() => break,
            event = session.next() => match event {
                Some(Event::Message(msg)) => {
                    let Some((from, n)) = msg.as_text().and_then(|t| parse_echo(t, me)) else {
                        continue;
                    };
                    if backend.as_deref() != Some(from)
                        && let Some(before) = backend.replace(from.to_string())
                    {
                        let mut moves = tally.moves.lock().unwrap_or_else(|e| e.into_inner());
                        *moves.entry((before, from.to_string())).or_default() += 1;
                    }
                    if outstanding.remove(&n) {
                        echoed.insert(n);
                        tally.echoed.fetch_add(1, Ordering::Relaxed);
                    } else if handed_back.remove(&n) {
                        // It had arrived after all; the app was told it might not have.
                        echoed.insert(n);
                    } else if echoed.contains(&n) {
                        tally.duplicated.fetch_add(1, Ordering::Relaxed);
                    }
                    if stopping.is_some() && outstanding.is_empty() {
                        break;
                    }
                }
                Some(Event::Unconfirmed { messages, .. }) | Some(Event::Undelivered { messages }) => {
                    for n in numbers(&messages, me) {
                        if outstanding.remove(&n) {
                            handed_back.insert(n);
                            tally.handed_back.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Some(Event::Resumed { recovered, resent, .. }) => {
                    let counter = if recovered { &tally.recovered } else { &tally.not_recovered };
                    counter.fetch_add(1, Ordering::Relaxed);
                    tally.resent.fetch_add(resent as u64, Ordering::Relaxed);
                    tally.resumes.lock().unwrap_or_else(|e| e.into_inner()).push(Instant::now());
                }
                Some(Event::Closed { .. }) => {
                    tally.closed.fetch_add(1, Ordering::Relaxed);
                    // Whatever was outstanding and not handed back is lost.
                    break;
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    tally
        .lost
        .fetch_add(outstanding.len() as u64, Ordering::Relaxed);
    let _ = session.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_read_back_to_their_viewer_and_number() {
        assert_eq!(parse_echo("b1: 7-42", 7), Some(("b1", 42)));
        assert_eq!(parse_echo("b1: 8-42", 7), None);
        assert_eq!(parse_echo("b1: 7-x", 7), None);
        assert_eq!(parse_echo("no colon", 7), None);
        let back = [
            Message::text("3-5"),
            Message::text("4-6"),
            Message::text("3-9"),
        ];
        assert_eq!(numbers(&back, 3), vec![5, 9]);
    }
}
