//! When each request is due. Closed loop: as soon as a connection is free. Open loop: request
//! `i` is due at `start + i / rate`, whatever happened before; its latency is measured from
//! that due time, not from when it was actually sent, so a stalled server cannot hide its
//! stall by slowing the generator down (coordinated omission, as wrk2 and HdrHistogram's
//! authors describe it). A request that is early waits on tokio's timer, which fires up to a
//! millisecond late; that slack is the generator's, so such a request is timed from when it
//! actually left (see `http::connection`).

use std::time::{Duration, Instant};

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Each connection sends its next request when the previous answer is read.
    Closed,
    /// A fixed rate in requests per second across all connections.
    Open { rate: f64 },
}

/// The send times of one run.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    end: Instant,
    pace: Pace,
}

impl Schedule {
    pub fn new(start: Instant, duration: Duration, pace: Pace) -> Schedule {
        Schedule {
            start,
            end: start + duration,
            pace,
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn end(&self) -> Instant {
        self.end
    }

    pub fn pace(&self) -> Pace {
        self.pace
    }

    /// When request number `ticket` is due, or `None` when that is past the run's end.
    /// Closed loop: `now` (it is due when a connection takes it).
    pub fn due(&self, ticket: u64, now: Instant) -> Option<Instant> {
        let due = match self.pace {
            Pace::Closed => now,
            Pace::Open { rate } => self.start + Duration::from_secs_f64(ticket as f64 / rate),
        };
        (due < self.end).then_some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_send_times_are_evenly_spaced_from_the_start() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, Duration::from_secs(1), Pace::Open { rate: 1000.0 });
        assert_eq!(s.due(0, t0), Some(t0));
        assert_eq!(s.due(1, t0), Some(t0 + Duration::from_millis(1)));
        assert_eq!(
            s.due(500, t0 + Duration::from_secs(5)),
            Some(t0 + Duration::from_millis(500))
        );
        assert_eq!(s.due(999, t0), Some(t0 + Duration::from_millis(999)));
        assert_eq!(
            s.due(1000, t0),
            None,
            "the run ends after exactly rate × duration requests"
        );
    }

    #[test]
    fn open_loop_due_times_ignore_how_late_the_sender_is() {
        // A generator that fell behind still measures from the planned time.
        let t0 = Instant::now();
        let s = Schedule::new(t0, Duration::from_secs(10), Pace::Open { rate: 10.0 });
        let late = t0 + Duration::from_secs(3);
        assert_eq!(s.due(5, late), Some(t0 + Duration::from_millis(500)));
    }

    #[test]
    fn closed_loop_requests_are_due_when_taken_until_the_end() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, Duration::from_secs(1), Pace::Closed);
        let now = t0 + Duration::from_millis(300);
        assert_eq!(s.due(123, now), Some(now));
        assert_eq!(s.due(124, t0 + Duration::from_secs(2)), None);
    }
}
