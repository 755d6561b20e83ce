//! Per-worker keep-alive pool of backend connections. Thread-local: a worker never shares a
//! connection with another, so there is no lock and no cross-thread wake-up.
//!
//! Connections are pooled by [`PoolKey`]: the backend's address and the identity of the TLS
//! settings they were made with (0 for plain TCP). Two pools sending to one address with
//! different TLS settings, or a reload that turns TLS on or changes the CA, never get each
//! other's connections.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::stream::BackendStream;

/// Idle connections older than this are closed: below the 60–75 s keep-alive timeouts common
/// on backends, so the router rarely reuses a connection the backend is about to close.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most idle connections kept per backend and worker, bounding file descriptors (a process
/// here may hold 20,000).
pub const MAX_IDLE_PER_BACKEND: usize = 256;
/// Read buffer of a backend connection; grows only for unusually large response heads.
pub const READ_BUFFER_BYTES: usize = 8 * 1024;

/// Which idle connections a request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub addr: SocketAddr,
    /// [`crate::upstream::tls::BackendTls::id`] of the settings it was made with; 0: plain.
    pub tls: u64,
}

impl PoolKey {
    pub fn plain(addr: SocketAddr) -> PoolKey {
        PoolKey { addr, tls: 0 }
    }
}

/// A connection to one backend.
pub struct Conn {
    pub stream: BackendStream,
    /// Bytes read from the backend and not yet consumed.
    pub buf: BytesMut,
    pub key: PoolKey,
    /// True when it came from the pool (so it may have been closed by the backend meanwhile).
    pub reused: bool,
}

impl Conn {
    pub fn new(stream: BackendStream, key: PoolKey) -> Conn {
        Conn {
            stream,
            buf: BytesMut::with_capacity(READ_BUFFER_BYTES),
            key,
            reused: false,
        }
    }

    /// A pooled connection is usable if the backend has neither closed it nor sent anything
    /// unasked (either would make the next answer ambiguous).
    fn still_open(&mut self) -> bool {
        self.stream.still_open()
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Hashes [`PoolKey`]s by multiply and rotate (FxHash's step). The pool is per worker and keyed
/// by the router's own backend addresses, so SipHash's resistance to chosen keys buys nothing
/// here, and it cost a good part of every checkout and checkin.
#[derive(Default)]
struct KeyHasher(u64);

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Idles = HashMap<PoolKey, VecDeque<Idle>, BuildHasherDefault<KeyHasher>>;

thread_local! {
    static POOL: RefCell<Idles> = RefCell::new(Idles::default());
    static CHECKINS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Every this many check-ins the whole pool drops its expired connections: keys nobody asks
/// for any more (a removed backend, TLS settings a reload replaced) would otherwise keep theirs.
const SWEEP_EVERY: u32 = 4096;

/// The most recently used live idle connection under `key` idle for less than `max_idle`.
pub fn checkout(key: PoolKey, max_idle: Duration) -> Option<Conn> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.get_mut(&key)?;
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
        let now = Instant::now();
        let checkins = CHECKINS.with(|c| {
            c.set(c.get().wrapping_add(1));
            c.get()
        });
        if checkins.is_multiple_of(SWEEP_EVERY) {
            pool.retain(|_, idle| {
                idle.retain(|i| now.duration_since(i.since) < POOL_IDLE_TIMEOUT);
                !idle.is_empty()
            });
        }
        let idle = pool.entry(conn.key).or_default();
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

/// Idle connections this worker holds under `key` (for tests and status).
pub fn idle_count(key: PoolKey) -> usize {
    POOL.with(|pool| pool.borrow().get(&key).map_or(0, VecDeque::len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn keys_that_differ_anywhere_hash_apart() {
        let hasher = BuildHasherDefault::<KeyHasher>::default();
        let key = |addr: &str, tls| PoolKey {
            addr: addr.parse().unwrap(),
            tls,
        };
        let keys = [
            key("10.0.0.1:80", 0),
            key("10.0.0.1:81", 0),
            key("10.0.0.2:80", 0),
            key("10.0.0.1:80", 7),
            key("[2001:db8::1]:80", 0),
        ];
        let hashes: std::collections::HashSet<u64> =
            keys.iter().map(|k| hasher.hash_one(k)).collect();
        assert_eq!(hashes.len(), keys.len());
        assert_eq!(hasher.hash_one(keys[0]), hasher.hash_one(keys[0]));
    }
}
