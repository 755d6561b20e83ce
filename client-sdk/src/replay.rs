//! The replay buffer: the data messages sent on the current connection, numbered 1, 2, … as
//! the router counts them, kept (within a count and a byte bound) until the connection's end
//! says what arrived. It never sends or waits: the session asks it what to re-send.
//!
//! Overflow: the oldest message leaves the buffer and is counted. If the end of the
//! connection then shows one of those might be missing (`delivered` below its number, or
//! nothing said at all), it cannot be re-sent or handed back: [`Settled::not_kept`] says how
//! many, and the resume is not `recovered`.

use std::collections::VecDeque;

use crate::message::Message;

pub(crate) struct Replay {
    max_messages: usize,
    max_bytes: usize,
    /// `(number, message)`, oldest first; numbers are contiguous.
    kept: VecDeque<(u64, Message)>,
    bytes: usize,
    /// Messages sent on this connection (the last number given).
    sent: u64,
    /// Messages that left the buffer: numbers `1..=evicted`.
    evicted: u64,
}

/// What the end of a connection means for the messages sent on it.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Settled {
    /// Sent but not delivered, in order: re-send these first on the next connection.
    pub resend: Vec<Message>,
    /// Sent, and nothing says whether they arrived: handed back to the app.
    pub unconfirmed: Vec<Message>,
    /// Possibly missing messages the buffer no longer held (neither re-sent nor handed back).
    pub not_kept: u64,
    /// Nothing sent on the connection can be missing.
    pub recovered: bool,
}

impl Replay {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Replay {
        Replay {
            max_messages: max_messages.max(1),
            max_bytes,
            kept: VecDeque::new(),
            bytes: 0,
            sent: 0,
            evicted: 0,
        }
    }

    /// Numbers a message about to be sent and keeps it.
    pub(crate) fn sent(&mut self, msg: Message) {
        self.sent += 1;
        self.bytes += msg.len();
        self.kept.push_back((self.sent, msg));
        while self.kept.len() > self.max_messages
            || (self.bytes > self.max_bytes && !self.kept.is_empty())
        {
            if let Some((n, old)) = self.kept.pop_front() {
                self.bytes -= old.len();
                self.evicted = n;
            }
        }
    }

    /// How many messages were numbered on this connection.
    pub(crate) fn count(&self) -> u64 {
        self.sent
    }

    /// Every kept message, oldest first, emptying the buffer (the session ends for good).
    pub(crate) fn take_all(&mut self) -> (Vec<Message>, u64) {
        let not_kept = self.evicted;
        let out = self.kept.drain(..).map(|(_, m)| m).collect();
        *self = Replay::new(self.max_messages, self.max_bytes);
        (out, not_kept)
    }

    /// The connection ended; `delivered` is what the router said arrived (`None`: nothing
    /// said). Resets the buffer for the next connection.
    pub(crate) fn settle(&mut self, delivered: Option<u64>) -> Settled {
        let sent = self.sent;
        let evicted = self.evicted;
        let kept = std::mem::take(&mut self.kept);
        *self = Replay::new(self.max_messages, self.max_bytes);
        match delivered {
            Some(n) => {
                // A count above what was sent can only be a router's mistake: everything
                // arrived, nothing more.
                let n = n.min(sent);
                Settled {
                    resend: kept
                        .into_iter()
                        .filter(|(k, _)| *k > n)
                        .map(|(_, m)| m)
                        .collect(),
                    unconfirmed: Vec::new(),
                    not_kept: evicted.saturating_sub(n),
                    recovered: evicted <= n,
                }
            }
            None => Settled {
                resend: Vec::new(),
                unconfirmed: kept.into_iter().map(|(_, m)| m).collect(),
                not_kept: evicted,
                recovered: sent == 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(range: std::ops::RangeInclusive<u32>) -> Vec<Message> {
        range.map(|i| Message::text(i.to_string())).collect()
    }

    fn replay_of(n: u32, max: usize) -> Replay {
        let mut r = Replay::new(max, 1 << 20);
        for m in texts(1..=n) {
            r.sent(m);
        }
        r
    }

    #[test]
    fn delivered_n_resends_the_rest_in_order() {
        let s = replay_of(10, 256).settle(Some(7));
        assert_eq!(s.resend, texts(8..=10));
        assert!(s.recovered && s.unconfirmed.is_empty() && s.not_kept == 0);
        let s = replay_of(10, 256).settle(Some(10));
        assert!(s.resend.is_empty() && s.recovered);
        let s = replay_of(10, 256).settle(Some(0));
        assert_eq!(s.resend, texts(1..=10));
        // More than sent: a mistake, read as "all of them".
        let s = replay_of(3, 256).settle(Some(99));
        assert!(s.resend.is_empty() && s.recovered);
    }

    #[test]
    fn nothing_said_hands_everything_back_and_is_not_recovered() {
        let s = replay_of(5, 256).settle(None);
        assert_eq!(s.unconfirmed, texts(1..=5));
        assert!(s.resend.is_empty() && !s.recovered);
        // Nothing sent: nothing can be missing.
        let s = replay_of(0, 256).settle(None);
        assert!(s.recovered && s.unconfirmed.is_empty());
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts_what_may_be_missing() {
        // 10 sent, 4 kept (7..=10).
        let s = replay_of(10, 4).settle(Some(8));
        assert_eq!(s.resend, texts(9..=10));
        assert!(s.recovered, "the evicted 1..=6 all arrived");
        let s = replay_of(10, 4).settle(Some(3));
        assert_eq!(s.resend, texts(7..=10));
        assert_eq!(s.not_kept, 3, "4, 5 and 6 may be missing and are gone");
        assert!(!s.recovered);
        let s = replay_of(10, 4).settle(None);
        assert_eq!(s.unconfirmed, texts(7..=10));
        assert_eq!(s.not_kept, 6);
    }

    #[test]
    fn the_byte_bound_holds_and_a_new_connection_starts_at_one() {
        let mut r = Replay::new(256, 10);
        for _ in 0..5 {
            r.sent(Message::binary(vec![0u8; 4]));
        }
        assert_eq!(r.kept.len(), 2);
        assert!(r.bytes <= 10);
        let s = r.settle(Some(5));
        assert!(s.recovered);
        r.sent(Message::text("x"));
        assert_eq!(r.sent, 1, "numbers are per connection");
        // One message over the byte bound alone is not kept at all.
        let mut r = Replay::new(256, 10);
        r.sent(Message::binary(vec![0u8; 11]));
        assert_eq!(r.settle(None).not_kept, 1);
    }
}
