//! The node's lifecycle state that the listeners, the request path and the admin API share.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this node takes traffic: set once the listeners are up, cleared when it stops.
#[derive(Debug, Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
