//! How the router moves a live session: the message that asks a session to move, the close
//! reason the client reads, and the pacing of many moves at once.
//!
//! The session itself carries the move out (`control/session.rs`): it closes its backend
//! side first (1001), relays what the backend still sends until the backend's close (at most
//! `[sessions] handoff_linger`), then closes the client with `4001` (another backend or node)
//! or `4003` (another region). The client's close reason is the word `moved` followed by
//! `;`-separated `key=value` fields — `moved; delivered=12; retry_after_ms=350; region=eu-west`:
//! - `delivered`: the data messages the client sent on this connection that the backend read
//!   before its clean close (absent when the backend did not close cleanly within the linger);
//! - `retry_after_ms`: how long this client should wait before reconnecting;
//! - `region` (4003 only): where to go;
//! - `cause`: what moved it (`drain`, `deadline`, `shutdown`, `evacuation`), when it fits.
//!
//! The reason never exceeds the 123 bytes a close frame can carry: optional keys are left out
//! rather than cut.
//!
//! Every batch of moves — a drain and its deadline, an evacuation, a shutdown — goes through
//! [`move_sessions`], paced by a [`Pace`] (one at a time over a window, or all at once with
//! the reconnects spread).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Message, Recipient};

use super::PoolHandle;

/// Close code: move to another backend or node of this region.
pub const CLOSE_MOVED: u16 = 4001;
/// Close code: move to another region.
pub const CLOSE_MOVE_REGION: u16 = 4003;
/// A close reason is at most 123 bytes on the wire (RFC 6455 §5.5: 125-byte control payload).
pub const MAX_REASON_BYTES: usize = 123;
/// The most a staggered close adds as jitter to `retry_after_ms`: the closes are already
/// spread, so clients reconnect almost at once.
const STAGGER_JITTER: Duration = Duration::from_millis(250);
/// When sessions must close at once and nothing else says over how long (an evacuation or a
/// shutdown with no spread), their reconnects are spread over this window.
pub const DEFAULT_RECONNECT_SPREAD: Duration = Duration::from_secs(5);

/// Where a moved session should go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveTo {
    /// Another backend or router node of this region: `4001`.
    Elsewhere,
    /// Another region: `4003`, naming it when the router knows one.
    Region(Option<String>),
}

impl MoveTo {
    pub fn code(&self) -> u16 {
        match self {
            MoveTo::Elsewhere => CLOSE_MOVED,
            MoveTo::Region(_) => CLOSE_MOVE_REGION,
        }
    }
}

/// Asks a session to move (see the module docs).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct CloseSession {
    pub to: MoveTo,
    /// How long the client should wait before reconnecting.
    pub retry_after: Duration,
    /// What moved it: `drain`, `deadline`, `shutdown`, `evacuation`.
    pub cause: &'static str,
}

impl CloseSession {
    /// The client's close reason, with `delivered` when the backend closed cleanly.
    pub fn reason(&self, delivered: Option<u64>) -> String {
        let mut reason = "moved".to_string();
        if let Some(n) = delivered {
            reason.push_str(&format!("; delivered={n}"));
        }
        reason.push_str(&format!(
            "; retry_after_ms={}",
            self.retry_after.as_millis()
        ));
        let optional = [
            match &self.to {
                MoveTo::Region(Some(region)) => Some(format!("; region={region}")),
                _ => None,
            },
            Some(format!("; cause={}", self.cause)),
        ];
        for field in optional.into_iter().flatten() {
            if reason.len() + field.len() <= MAX_REASON_BYTES {
                reason.push_str(&field);
            }
        }
        reason
    }
}

/// A small random wait for a client whose close was already staggered.
pub fn stagger_jitter() -> Duration {
    STAGGER_JITTER.mul_f64(fastrand::f64())
}

/// The wait of the `i`-th of `n` clients closed at once: evenly over `window`, each at a
/// random point of its own slot, so reconnects arrive at `n / window` per second.
pub fn spread_wait(i: usize, n: usize, window: Duration) -> Duration {
    let n = n.max(1) as f64;
    window.mul_f64((i as f64 + fastrand::f64()) / n)
}

/// How a batch of moves is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// One at a time, evenly over this long, each told to come back after a small jitter.
    Over(Duration),
    /// All at once, their reconnects spread over this window through `retry_after_ms`.
    AtOnce { reconnects_over: Duration },
}

impl Pace {
    /// One at a time over `spread`, or — with no spread — all at once, their reconnects
    /// spread over [`DEFAULT_RECONNECT_SPREAD`].
    pub fn spread(spread: Duration) -> Pace {
        match spread.is_zero() {
            true => Pace::AtOnce {
                reconnects_over: DEFAULT_RECONNECT_SPREAD,
            },
            false => Pace::Over(spread),
        }
    }
}

/// Every live session of `pools` (an evacuation, a shutdown).
pub fn every_session<'a>(
    pools: impl IntoIterator<Item = &'a Arc<PoolHandle>>,
) -> Vec<(u64, Recipient<CloseSession>)> {
    pools
        .into_iter()
        .flat_map(|pool| {
            pool.load()
                .backends
                .iter()
                .flat_map(|backend| pool.sessions.on(&backend.id))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The one way the router moves many sessions (a drain, its deadline, an evacuation, a
/// shutdown): paced by `pace`, each told to go `to`, naming `cause`. `live` says whether a
/// session is still there when its turn comes (one that ended meanwhile is skipped). At once,
/// the future ends on its first poll.
pub async fn move_sessions<S>(
    sessions: Vec<(u64, Recipient<CloseSession>)>,
    pace: Pace,
    to: MoveTo,
    cause: &'static str,
    live: S,
) where
    S: Fn(u64) -> bool,
{
    let n = sessions.len();
    let start = Instant::now();
    for (i, (number, session)) in sessions.into_iter().enumerate() {
        let retry_after = match pace {
            Pace::AtOnce { reconnects_over } => spread_wait(i, n, reconnects_over),
            Pace::Over(spread) => {
                let at = start + spread.mul_f64(i as f64 / n.max(1) as f64);
                actix_rt::time::sleep_until(at.into()).await;
                stagger_jitter()
            }
        };
        if live(number) {
            session.do_send(CloseSession {
                to: to.clone(),
                retry_after,
                cause,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(to: MoveTo, ms: u64) -> CloseSession {
        CloseSession {
            to,
            retry_after: Duration::from_millis(ms),
            cause: "drain",
        }
    }

    #[test]
    fn the_reason_carries_delivered_the_wait_and_the_region() {
        let drain = close(MoveTo::Elsewhere, 350);
        assert_eq!(
            drain.reason(Some(1234)),
            "moved; delivered=1234; retry_after_ms=350; cause=drain"
        );
        assert_eq!(drain.reason(None), "moved; retry_after_ms=350; cause=drain");
        let evacuate = close(MoveTo::Region(Some("eu-west".into())), 0);
        assert_eq!(
            evacuate.reason(Some(0)),
            "moved; delivered=0; retry_after_ms=0; region=eu-west; cause=drain"
        );
        assert_eq!(evacuate.to.code(), 4003);
        assert_eq!(drain.to.code(), 4001);
    }

    #[test]
    fn a_reason_never_passes_123_bytes_and_drops_optional_keys_whole() {
        let long = close(MoveTo::Region(Some("r".repeat(200))), u64::MAX / 2);
        let reason = long.reason(Some(u64::MAX));
        assert!(reason.len() <= MAX_REASON_BYTES, "{} bytes", reason.len());
        assert!(reason.starts_with("moved; delivered="));
        assert!(!reason.contains("region="), "{reason}");
        assert!(reason.ends_with("; cause=drain"), "{reason}");
    }

    #[test]
    fn closes_at_once_spread_their_reconnects_evenly_over_the_window() {
        let window = Duration::from_secs(10);
        let waits: Vec<Duration> = (0..1000).map(|i| spread_wait(i, 1000, window)).collect();
        assert!(waits.iter().all(|w| *w < window));
        // Every second of the window gets its tenth of the clients.
        for second in 0..10 {
            let in_it = waits.iter().filter(|w| w.as_secs() == second).count();
            assert!((95..=105).contains(&in_it), "{in_it} in second {second}");
        }
        assert!(stagger_jitter() <= STAGGER_JITTER);
    }
}
