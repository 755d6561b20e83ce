//! Where session records live. `memory` is the embedded store of one node: a sharded map, so
//! lookups on the request path take one short read lock on one shard and never wait on an
//! actor or the network. The Redis store shared by every node comes with the rest of the
//! sessions work and implements the same trait.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// What is known of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub pool: Arc<str>,
    pub backend: Arc<str>,
    pub created: Instant,
    pub last_seen: Instant,
    /// How many times the session came back after it was created.
    pub resume_count: u32,
}

/// A session store.
pub trait SessionStore: Send + Sync {
    /// The backend a live session of `pool` is recorded on; refreshes its TTL and counts the
    /// resume.
    fn resume(&self, id: Uuid, pool: &str) -> Option<Arc<str>>;
    /// Records (or moves) a session to a backend.
    fn place(&self, id: Uuid, pool: Arc<str>, backend: Arc<str>);
    /// Drops records idle past the TTL; returns how many.
    fn sweep(&self) -> usize;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

const SHARDS: usize = 16;

pub struct MemoryStore {
    shards: Vec<RwLock<HashMap<Uuid, Record>>>,
    ttl: Duration,
}

impl MemoryStore {
    pub fn new(ttl: Duration) -> MemoryStore {
        MemoryStore {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            ttl,
        }
    }

    fn shard(&self, id: &Uuid) -> &RwLock<HashMap<Uuid, Record>> {
        &self.shards[id.as_bytes()[15] as usize % SHARDS]
    }
}

impl SessionStore for MemoryStore {
    fn resume(&self, id: Uuid, pool: &str) -> Option<Arc<str>> {
        let now = Instant::now();
        let mut shard = self.shard(&id).write().unwrap_or_else(|e| e.into_inner());
        let record = shard.get_mut(&id)?;
        if now.duration_since(record.last_seen) > self.ttl || &*record.pool != pool {
            return None;
        }
        record.last_seen = now;
        record.resume_count += 1;
        Some(record.backend.clone())
    }

    fn place(&self, id: Uuid, pool: Arc<str>, backend: Arc<str>) {
        let now = Instant::now();
        let mut shard = self.shard(&id).write().unwrap_or_else(|e| e.into_inner());
        shard
            .entry(id)
            .and_modify(|r| {
                r.pool = pool.clone();
                r.backend = backend.clone();
                r.last_seen = now;
            })
            .or_insert(Record {
                pool,
                backend,
                created: now,
                last_seen: now,
                resume_count: 0,
            });
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
    fn a_placed_session_resumes_on_its_backend_and_expires() {
        let store = MemoryStore::new(Duration::from_millis(50));
        let id = Uuid::new_v4();
        assert_eq!(store.resume(id, "ws"), None);
        store.place(id, "ws".into(), "ws-2".into());
        assert_eq!(store.resume(id, "ws").as_deref(), Some("ws-2"));
        assert_eq!(store.resume(id, "other-pool"), None);
        store.place(id, "ws".into(), "ws-1".into());
        assert_eq!(store.resume(id, "ws").as_deref(), Some("ws-1"));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(store.resume(id, "ws"), None, "idle past its TTL");
        assert_eq!(store.sweep(), 1);
        assert_eq!(store.len(), 0);
    }
}
