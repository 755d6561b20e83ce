//! Where session records live. `memory` is the embedded store of one node: a sharded map, so
//! lookups on the request path take one short read lock on one shard and never wait on an
//! actor or the network. The Redis store (`shared.rs`) keeps one as its cache.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use uuid::Uuid;

use crate::config::raw::DEFAULT_MAX_RECORDS;

/// What is known of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub pool: Arc<str>,
    pub backend: Arc<str>,
    /// Region of the node that placed it.
    pub region: Arc<str>,
    pub created: SystemTime,
    /// Local clock of the last request (the TTL counts from it).
    pub last_seen: Instant,
    /// How many times the session came back after it was created.
    pub resume_count: u32,
    /// Its client came back with the token, or holds a WebSocket session: a real viewer,
    /// not one of many token-less requests. Decides the record's TTL in a shared store.
    pub confirmed: bool,
    /// When this node last wrote the record to a shared store (or read it from there).
    pub synced: Instant,
}

/// A resumed session: its backend, and its record when the shared copy is due for a
/// refresh (its TTL and last-seen time), at most once per `ttl / 4` per session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    pub backend: Arc<str>,
    pub refresh: Option<Record>,
}

/// A session store.
pub trait SessionStore: Send + Sync {
    /// The backend a live session of `pool` is recorded on; refreshes its TTL and counts the
    /// resume.
    fn resume(&self, id: Uuid, pool: &str) -> Option<Resumed>;
    /// Records (or moves) a session to a backend; returns the record to share.
    fn place(&self, id: Uuid, pool: Arc<str>, backend: Arc<str>) -> Record;
    /// Drops records idle past the TTL; returns how many.
    fn sweep(&self) -> usize;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const SHARDS: usize = 16;
/// A full shard drops this share of its records (the oldest seen) at once.
const EVICT_SHARE: usize = 64;

pub struct MemoryStore {
    shards: Vec<RwLock<HashMap<Uuid, Record>>>,
    ttl: Duration,
    region: Arc<str>,
    /// Most records one shard keeps (`[sessions] max_records` over the shards).
    per_shard: usize,
    evicted: metrics::Counter,
}

impl MemoryStore {
    pub fn new(ttl: Duration, region: Arc<str>) -> MemoryStore {
        MemoryStore {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            ttl,
            region,
            per_shard: DEFAULT_MAX_RECORDS.div_ceil(SHARDS),
            evicted: metrics::counter!("switchyard_session_records_evicted_total"),
        }
    }

    /// Keeps at most `max` records (at least one per shard): past it a new session first
    /// drops the expired records of its shard, then the ones seen longest ago — a 64th of the
    /// shard at once, so a full store scans a shard once per many new sessions, not once for
    /// each (as HAProxy's stick tables purge their oldest entries in batches) — counted in
    /// `switchyard_session_records_evicted_total`.
    pub fn with_max_records(mut self, max: usize) -> MemoryStore {
        self.per_shard = max.div_ceil(SHARDS).max(1);
        self
    }

    /// Room for one new record in `shard`.
    fn make_room(&self, shard: &mut HashMap<Uuid, Record>, now: Instant) {
        if shard.len() < self.per_shard {
            return;
        }
        shard.retain(|_, r| now.duration_since(r.last_seen) <= self.ttl);
        if shard.len() < self.per_shard {
            return;
        }
        let batch = (self.per_shard / EVICT_SHARE).max(1) + shard.len() - self.per_shard;
        let mut by_age: Vec<(Instant, Uuid)> =
            shard.iter().map(|(id, r)| (r.last_seen, *id)).collect();
        by_age.select_nth_unstable_by_key(batch - 1, |(seen, _)| *seen);
        for (_, id) in &by_age[..batch] {
            shard.remove(id);
        }
        self.evicted.increment(batch as u64);
    }

    fn shard(&self, id: &Uuid) -> &RwLock<HashMap<Uuid, Record>> {
        &self.shards[id.as_bytes()[15] as usize % SHARDS]
    }

    /// Keeps a record read from a shared store.
    pub fn insert(&self, id: Uuid, record: Record) {
        let mut shard = self.shard(&id).write().unwrap_or_else(|e| e.into_inner());
        if !shard.contains_key(&id) {
            self.make_room(&mut shard, Instant::now());
        }
        shard.insert(id, record);
    }

    /// The TTL records live for.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A live session is still there (a held WebSocket): refreshes its last-seen time, and
    /// returns its record when the shared copy is due for a refresh (as [`Resumed::refresh`]).
    pub fn touch(&self, id: Uuid) -> Option<Record> {
        let now = Instant::now();
        let mut shard = self.shard(&id).write().unwrap_or_else(|e| e.into_inner());
        let record = shard.get_mut(&id)?;
        record.last_seen = now;
        self.confirm(record, now)
    }

    /// Marks `record` confirmed (its client came back, or holds a WebSocket session) and
    /// returns it when its shared copy is due: at once when this confirms it (to be written
    /// with the full TTL), otherwise once per `ttl / 4`.
    fn confirm(&self, record: &mut Record, now: Instant) -> Option<Record> {
        let confirming = !std::mem::replace(&mut record.confirmed, true);
        (confirming || now.duration_since(record.synced) >= self.ttl / 4).then(|| {
            record.synced = now;
            record.clone()
        })
    }
}

impl SessionStore for MemoryStore {
    fn resume(&self, id: Uuid, pool: &str) -> Option<Resumed> {
        let now = Instant::now();
        let mut shard = self.shard(&id).write().unwrap_or_else(|e| e.into_inner());
        let record = shard.get_mut(&id)?;
        if now.duration_since(record.last_seen) > self.ttl || &*record.pool != pool {
            return None;
        }
        record.last_seen = now;
        record.resume_count += 1;
        // The first return confirms the session (its shared copy written again at once, with
        // the full TTL).
        let refresh = self.confirm(record, now);
        Some(Resumed {
            backend: record.backend.clone(),
            refresh,
        })
    }

    fn place(&self, id: Uuid, pool: Arc<str>, backend: Arc<str>) -> Record {
        let now = Instant::now();
        let mut shard = self.shard(&id).write().unwrap_or_else(|e| e.into_inner());
        if !shard.contains_key(&id) {
            self.make_room(&mut shard, now);
        }
        let record = shard
            .entry(id)
            .and_modify(|r| {
                r.pool = pool.clone();
                r.backend = backend.clone();
                r.region = self.region.clone();
                r.last_seen = now;
                r.synced = now;
            })
            .or_insert(Record {
                pool,
                backend,
                region: self.region.clone(),
                created: SystemTime::now(),
                last_seen: now,
                resume_count: 0,
                confirmed: false,
                synced: now,
            });
        record.clone()
    }

    fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut dropped = 0;
        for shard in &self.shards {
            let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
            let before = shard.len();
            shard.retain(|_, r| now.duration_since(r.last_seen) <= self.ttl);
            dropped += before - shard.len();
        }
        dropped
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_store_drops_the_sessions_seen_longest_ago_not_the_live_ones() {
        let store =
            MemoryStore::new(Duration::from_secs(3600), "eu-west".into()).with_max_records(1600);
        let (pool, backend): (Arc<str>, Arc<str>) = ("p".into(), "b1".into());
        // A viewer that keeps coming back, among 30,000 token-less requests' sessions.
        let live = Uuid::new_v4();
        store.place(live, pool.clone(), backend.clone());
        for i in 0..30_000 {
            store.place(Uuid::new_v4(), pool.clone(), backend.clone());
            if i % 50 == 0 {
                assert!(store.resume(live, "p").is_some(), "the live session at {i}");
            }
        }
        assert!(store.len() <= 1600, "{} records kept", store.len());
        assert!(store.resume(live, "p").is_some());
    }

    #[test]
    fn a_placed_session_resumes_on_its_backend_and_expires() {
        let store = MemoryStore::new(Duration::from_millis(50), "eu-west".into());
        let id = Uuid::new_v4();
        let backend = |r: Option<Resumed>| r.map(|r| r.backend.to_string());
        assert_eq!(store.resume(id, "ws"), None);
        let placed = store.place(id, "ws".into(), "ws-2".into());
        assert_eq!((&*placed.region, placed.resume_count), ("eu-west", 0));
        assert_eq!(backend(store.resume(id, "ws")).as_deref(), Some("ws-2"));
        assert_eq!(store.resume(id, "other-pool"), None);
        store.place(id, "ws".into(), "ws-1".into());
        assert_eq!(backend(store.resume(id, "ws")).as_deref(), Some("ws-1"));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(store.resume(id, "ws"), None, "idle past its TTL");
        assert_eq!(store.sweep(), 1);
        assert_eq!(store.len(), 0);
    }
}

#[cfg(test)]
mod refresh_tests {
    use super::*;

    #[test]
    fn resumes_count_and_ask_for_a_shared_refresh_once_a_quarter_ttl() {
        let store = MemoryStore::new(Duration::from_millis(400), "us-east".into());
        let id = Uuid::new_v4();
        let placed = store.place(id, "ws".into(), "ws-1".into());
        assert!(!placed.confirmed, "a new session is unconfirmed");
        let first = store.resume(id, "ws").unwrap();
        let confirmed = first
            .refresh
            .expect("the first return confirms the session: its shared copy is written again");
        assert!(confirmed.confirmed);
        assert_eq!(
            store.resume(id, "ws").unwrap().refresh,
            None,
            "just written: nothing to refresh"
        );
        std::thread::sleep(Duration::from_millis(120));
        let later = store.resume(id, "ws").unwrap();
        let record = later
            .refresh
            .expect("a quarter TTL later the shared copy is refreshed");
        assert_eq!(record.resume_count, 3);
        assert_eq!(
            store.resume(id, "ws").unwrap().refresh,
            None,
            "once per quarter TTL"
        );
    }
}
