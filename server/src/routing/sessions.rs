//! Which live sessions sit on which backend of a pool: what a drain needs to move them.
//!
//! A session registers when its actor starts and leaves when it stops — once per session,
//! never per frame. The control plane reads it to close a backend's sessions; the map is
//! behind a plain mutex because both sides touch it rarely and briefly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use actix::Recipient;

use super::handoff::CloseSession;

/// The live sessions of one pool, by backend id.
#[derive(Debug, Default)]
pub struct SessionRegistry {
    next: AtomicU64,
    by_backend: Mutex<HashMap<String, HashMap<u64, Recipient<CloseSession>>>>,
}

impl SessionRegistry {
    /// Adds a session on `backend`; the number is what [`SessionRegistry::leave`] takes.
    pub fn join(&self, backend: &str, session: Recipient<CloseSession>) -> u64 {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let mut map = self.by_backend.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(backend.to_string())
            .or_default()
            .insert(number, session);
        number
    }

    pub fn leave(&self, backend: &str, number: u64) {
        let mut map = self.by_backend.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sessions) = map.get_mut(backend) {
            sessions.remove(&number);
            if sessions.is_empty() {
                map.remove(backend);
            }
        }
    }

    /// The sessions on `backend` now, oldest first.
    pub fn on(&self, backend: &str) -> Vec<(u64, Recipient<CloseSession>)> {
        let map = self.by_backend.lock().unwrap_or_else(|e| e.into_inner());
        let mut sessions: Vec<_> = map
            .get(backend)
            .map(|s| s.iter().map(|(n, r)| (*n, r.clone())).collect())
            .unwrap_or_default();
        sessions.sort_by_key(|(n, _)| *n);
        sessions
    }

    /// Whether session `number` is still on `backend`.
    pub fn holds(&self, backend: &str, number: u64) -> bool {
        let map = self.by_backend.lock().unwrap_or_else(|e| e.into_inner());
        map.get(backend).is_some_and(|s| s.contains_key(&number))
    }
}
