//! Admin changes shared by every node on one Redis: a drain, undrain or weight change made on
//! any node applies on all of them.
//!
//! - Live: the node that took the call publishes `{"origin", "action"}` on the channel
//!   `{key_prefix}admin` (pub/sub); every other node applies it to its own pool actor.
//! - Persisted: the hash `{key_prefix}admin:backends` keeps, per backend, the drain under way
//!   (`drain:<id>` → the drain with the time it was made) and the weight set (`weight:<id>`),
//!   and per route the pools' weights set through the API (`route:<id>`, blue-green included),
//!   so a node started later, or reconnecting after a Redis blip, reads it and catches up
//!   (a drain's deadline counts from when it was made, not from when it was read). Its field
//!   `written_ms` (the last change's time) tells a Redis that lost its data — restarted
//!   without persistence — from drains lifted elsewhere: then nodes keep what they applied.
//! - Without Redis a change applies to the node that took it only.
//! - A change made while Redis is unreachable is applied locally at once and kept; the
//!   background task publishes it when Redis answers again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::Addr;
use arc_swap::ArcSwap;
use futures_util::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use super::action::{self, AdminAction};
use crate::control::RouterSupervisor;
use crate::routing::RouteTable;
use crate::routing::split::WeightsFrom;
use crate::session::SharedStore;

/// How often the background task reconnects and publishes kept changes.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for one Redis call made for an admin change.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Field of the persisted hash holding when a change was last shared (Unix ms).
const WRITTEN_FIELD: &str = "written_ms";

/// Most changes kept while Redis is unreachable: one per backend and field at most, so only
/// a node with more backends than this could lose the oldest (said in the log).
const MAX_KEPT: usize = 10_000;

/// What goes on the channel.
#[derive(Debug, Serialize, Deserialize)]
struct Event {
    origin: String,
    action: AdminAction,
}

/// A drain as persisted: when it was made, so late readers keep its deadline.
#[derive(Debug, Serialize, Deserialize)]
struct Persisted {
    at_ms: u64,
    action: AdminAction,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub struct Cluster {
    store: Arc<SharedStore>,
    origin: String,
    channel: String,
    state_key: String,
    table: Arc<ArcSwap<RouteTable>>,
    supervisor: Addr<RouterSupervisor>,
    up: AtomicBool,
    kept: Mutex<Vec<Persisted>>,
}

/// Why sharing an admin change through Redis failed this time (it is kept and tried again).
#[derive(Debug, thiserror::Error)]
enum ClusterError {
    #[error(transparent)]
    Store(#[from] crate::session::StoreError),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer {0} in time")]
    Timeout(&'static str),
    #[error("the subscription ended")]
    Ended,
}

impl Cluster {
    pub fn new(
        store: Arc<SharedStore>,
        key_prefix: &str,
        table: Arc<ArcSwap<RouteTable>>,
        supervisor: Addr<RouterSupervisor>,
    ) -> Cluster {
        Cluster {
            store,
            origin: uuid::Uuid::new_v4().to_string(),
            channel: format!("{key_prefix}admin"),
            state_key: format!("{key_prefix}admin:backends"),
            table,
            supervisor,
            up: AtomicBool::new(false),
            kept: Mutex::new(Vec::new()),
        }
    }

    /// Whether the node currently hears the other nodes' changes.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// Tells the other nodes about a change this node just applied (and persists it).
    pub async fn announce(&self, action: &AdminAction) {
        let change = Persisted {
            at_ms: now_ms(),
            action: action.clone(),
        };
        if let Err(err) = self.publish(&change).await {
            tracing::warn!(error = %err, action = ?action, "cannot share an admin change through Redis now: applied here, kept to share later");
            self.keep(change);
        }
    }

    /// Keeps a change to share later; it replaces a kept one for the same field, as it would
    /// in Redis.
    fn keep(&self, change: Persisted) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|k| k.action.field() != change.action.field());
        if kept.len() >= MAX_KEPT {
            let dropped = kept.remove(0);
            tracing::error!(action = ?dropped.action, "too many admin changes kept during a Redis outage: the oldest is not shared");
        }
        kept.push(change);
    }

    async fn publish(&self, change: &Persisted) -> Result<(), ClusterError> {
        let client = self.store.master().await?;
        let call = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            let field = change.action.field();
            match &change.action {
                AdminAction::Drain { .. } | AdminAction::RouteWeights { .. } => {
                    let value = serde_json::to_string(change).unwrap_or_default();
                    conn.hset::<_, _, _, ()>(&self.state_key, field, value)
                        .await?;
                }
                AdminAction::Undrain { .. } | AdminAction::RouteReset { .. } => {
                    conn.hdel::<_, _, ()>(&self.state_key, field).await?;
                }
                AdminAction::Weight { weight, .. } => {
                    conn.hset::<_, _, _, ()>(&self.state_key, field, weight)
                        .await?;
                }
            }
            // The hash exists once any change was shared: an empty one is a Redis that lost
            // its data (a restart without persistence), not drains lifted elsewhere.
            conn.hset::<_, _, _, ()>(&self.state_key, WRITTEN_FIELD, now_ms())
                .await?;
            let event = Event {
                origin: self.origin.clone(),
                action: change.action.clone(),
            };
            let event = serde_json::to_string(&event).unwrap_or_default();
            conn.publish::<_, _, ()>(&self.channel, event).await
        };
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.into()),
            Err(_) => Err(ClusterError::Timeout("the call")),
        }
    }

    async fn apply(&self, action: &AdminAction) {
        let table = self.table.load_full();
        match action::apply(&table, &self.supervisor, action).await {
            Ok(()) => {
                tracing::info!(action = ?action, "applied an admin change made on another node")
            }
            Err(err) => {
                tracing::warn!(action = ?action, error = %err.message, "cannot apply an admin change made on another node")
            }
        }
    }

    /// Reads the persisted state and applies it: drains under way (with what is left of their
    /// deadline) and weights.
    async fn catch_up(&self, client: &redis::Client) -> Result<(), ClusterError> {
        let read = async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            conn.hgetall::<_, Vec<(String, String)>>(&self.state_key)
                .await
        };
        let entries = match tokio::time::timeout(CALL_TIMEOUT, read).await {
            Ok(Ok(entries)) => entries,
            Ok(Err(err)) => return Err(err.into()),
            Err(_) => return Err(ClusterError::Timeout("the read")),
        };
        if !entries.iter().any(|(field, _)| field == WRITTEN_FIELD) {
            // Nothing was ever shared, or Redis lost it: what this node applied stays as it
            // is (lifting its drains here would undo them).
            if self.any_drained() {
                tracing::warn!(key = %self.state_key, "Redis holds no admin changes (restarted empty?): this node keeps its drains; other nodes and new ones do not learn them until they are made again");
            }
            return Ok(());
        }
        let mut persisted_drains = Vec::new();
        let mut persisted_routes = Vec::new();
        // Changes this node made while Redis was out and has not shared yet are newer than
        // what Redis holds for the same field: they stay, and are published next.
        let kept: Vec<String> = self
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|c| c.action.field())
            .collect();
        for (field, value) in entries {
            if kept.contains(&field) {
                continue;
            }
            let action = if let Some(backend) = field.strip_prefix("weight:") {
                match value.parse() {
                    Ok(weight) => AdminAction::Weight {
                        backend: backend.to_string(),
                        weight,
                    },
                    Err(_) => continue,
                }
            } else {
                match serde_json::from_str::<Persisted>(&value) {
                    Ok(Persisted {
                        at_ms,
                        action:
                            AdminAction::Drain {
                                backend,
                                deadline_ms,
                                spread_ms,
                            },
                    }) => {
                        let elapsed = now_ms().saturating_sub(at_ms);
                        let left = deadline_ms.saturating_sub(elapsed).max(1);
                        AdminAction::Drain {
                            backend,
                            deadline_ms: left,
                            spread_ms: spread_ms.saturating_sub(elapsed).min(left),
                        }
                    }
                    Ok(Persisted {
                        action: action @ AdminAction::RouteWeights { .. },
                        ..
                    }) => action,
                    _ => continue,
                }
            };
            if let AdminAction::RouteWeights { route, .. } = &action {
                persisted_routes.push(route.clone());
            }
            if let AdminAction::Drain { backend, .. } = &action {
                persisted_drains.push(backend.clone());
            }
            self.apply(&action).await;
        }
        // A drain lifted while this node was not listening: lift it here too (unless it is
        // one this node made during an outage and has not shared yet).
        let table = self.table.load_full();
        // Likewise a route's weights reset elsewhere.
        for route in table.routes() {
            let set_here = route
                .split
                .as_ref()
                .is_some_and(|s| s.weights().from == WeightsFrom::Admin);
            let id = route.id.to_string();
            if set_here && !persisted_routes.contains(&id) && !kept.contains(&format!("route:{id}"))
            {
                self.apply(&AdminAction::RouteReset { route: id }).await;
            }
        }
        for pool in &table.pools {
            for b in &pool.load().backends {
                let id = b.id.to_string();
                if b.state.is_drained()
                    && !persisted_drains.contains(&id)
                    && !kept.contains(&format!("drain:{id}"))
                {
                    self.apply(&AdminAction::Undrain { backend: id }).await;
                }
            }
        }
        Ok(())
    }

    fn any_drained(&self) -> bool {
        let table = self.table.load_full();
        table
            .pools
            .iter()
            .any(|pool| pool.load().backends.iter().any(|b| b.state.is_drained()))
    }

    /// The background task: subscribe, catch up, apply what others announce; on any failure
    /// start again after [`RETRY_EVERY`]. Also publishes changes kept during an outage.
    pub async fn run(self: Arc<Self>) {
        loop {
            if let Err(err) = self.listen().await
                && self.up.swap(false, Ordering::SeqCst)
            {
                tracing::warn!(error = %err, "admin changes from other nodes unheard: Redis unreachable");
            }
            metrics::gauge!("switchyard_cluster_up").set(0.0);
            actix_rt::time::sleep(RETRY_EVERY).await;
        }
    }

    async fn listen(&self) -> Result<(), ClusterError> {
        let client = self.store.master().await?;
        let mut pubsub = tokio::time::timeout(CALL_TIMEOUT, client.get_async_pubsub())
            .await
            .map_err(|_| ClusterError::Timeout("the connection"))??;
        tokio::time::timeout(CALL_TIMEOUT, pubsub.subscribe(&self.channel))
            .await
            .map_err(|_| ClusterError::Timeout("the subscription"))??;
        // Subscribed first, then read: a change made in between is heard, not missed.
        self.catch_up(&client).await?;
        if !self.up.swap(true, Ordering::SeqCst) {
            tracing::info!(channel = %self.channel, "hearing admin changes from other nodes");
        }
        metrics::gauge!("switchyard_cluster_up").set(1.0);
        self.flush_kept().await;
        let mut messages = pubsub.on_message();
        loop {
            let next = tokio::time::timeout(RETRY_EVERY, messages.next()).await;
            match next {
                Ok(Some(msg)) => {
                    let Ok(payload) = msg.get_payload::<String>() else {
                        continue;
                    };
                    match serde_json::from_str::<Event>(&payload) {
                        Ok(event) if event.origin != self.origin => self.apply(&event.action).await,
                        Ok(_) => {}
                        Err(err) => {
                            tracing::warn!(error = %err, "unreadable admin event on the channel")
                        }
                    }
                }
                Ok(None) => return Err(ClusterError::Ended),
                Err(_) => self.flush_kept().await,
            }
        }
    }

    async fn flush_kept(&self) {
        let kept: Vec<Persisted> =
            std::mem::take(&mut *self.kept.lock().unwrap_or_else(|e| e.into_inner()));
        for change in kept {
            if let Err(err) = self.publish(&change).await {
                tracing::debug!(error = %err, "kept admin change not shared yet");
                // Kept again, unless something newer for its field was kept meanwhile (fields
                // are independent, so their order does not matter).
                let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
                if !kept
                    .iter()
                    .any(|k| k.action.field() == change.action.field())
                {
                    kept.push(change);
                }
            }
        }
    }
}
