//! Per-worker keep-alive pool of backend connections. Thread-local: a worker never shares a
//! connection with another, so there is no lock and no cross-thread wake-up.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;

/// Idle connections older than this are closed: below the 60–75 s keep-alive timeouts common
/// on backends, so the router rarely reuses a connection the backend is about to close.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most idle connections kept per backend and worker, bounding file descriptors (a process
/// here may hold 20,000).
pub const MAX_IDLE_PER_BACKEND: usize = 256;
/// Read buffer of a backend connection; grows only for unusually large response heads.
pub const READ_BUFFER_BYTES: usize = 8 * 1024;

/// A connection to one backend.
pub struct Conn {
    pub stream: TcpStream,
    /// Bytes read from the backend and not yet consumed.
    pub buf: BytesMut,
    pub addr: SocketAddr,
    /// True when it came from the pool (so it may have been closed by the backend meanwhile).
    pub reused: bool,
}

impl Conn {
    pub fn new(stream: TcpStream, addr: SocketAddr) -> Conn {
        Conn {
            stream,
            buf: BytesMut::with_capacity(READ_BUFFER_BYTES),
            addr,
            reused: false,
        }
    }

    /// A pooled connection is usable if the backend has neither closed it nor sent anything
    /// unasked (either would make the next answer ambiguous).
    fn still_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

thread_local! {
    static POOL: RefCell<HashMap<SocketAddr, VecDeque<Idle>>> = RefCell::new(HashMap::new());
}

/// The most recently used live idle connection to `addr` idle for less than `max_idle`.
pub fn checkout(addr: SocketAddr, max_idle: Duration) -> Option<Conn> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.get_mut(&addr)?;
        // Newest first: the warmest connection, least likely to have been closed.
        while let Some(newest) = idle.back() {
            let idle_for = newest.since.elapsed();
            if idle_for >= POOL_IDLE_TIMEOUT {
                idle.clear(); // every older one has expired too
                return None;
            }
            if idle_for >= max_idle {
                return None; // kept for callers that accept older connections
            }
            let Idle { mut conn, .. } = idle.pop_back().expect("back() was Some");
            if conn.buf.is_empty() && conn.still_open() {
                conn.reused = true;
                return Some(conn);
            }
        }
        None
    })
}

/// Returns a connection whose last answer was read completely and that may be reused.
pub fn checkin(conn: Conn) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.entry(conn.addr).or_default();
        let now = Instant::now();
        // The front is the oldest: drop what has expired there, then make room.
        while idle
            .front()
            .is_some_and(|i| now.duration_since(i.since) >= POOL_IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        if idle.len() >= MAX_IDLE_PER_BACKEND {
            idle.pop_front();
        }
        idle.push_back(Idle { conn, since: now });
    });
}

/// Idle connections this worker holds to `addr` (for tests and status).
pub fn idle_count(addr: SocketAddr) -> usize {
    POOL.with(|pool| pool.borrow().get(&addr).map_or(0, VecDeque::len))
}
