//! The Redis session store shared by every router node, with the node's memory store as its
//! cache and fallback.
//!
//! - Reads: the local cache first; on a miss (a session made through another node) one `GET`
//!   with a short timeout. Writes: the local cache at once, Redis in the background — never a
//!   Redis round trip before a request is forwarded.
//! - Keys: `{key_prefix}{session uuid}` → a JSON record `{"id", "pool", "backend", "region",
//!   "created_ms", "last_seen_ms", "resume_count"}` (times in Unix milliseconds), with `EX` =
//!   the session TTL — or `unconfirmed_ttl` until the session is confirmed (its client came
//!   back with the token, or holds a WebSocket session), so token-less requests cannot fill
//!   Redis for a whole TTL. Written when a session is placed or moves, when it is confirmed,
//!   and again (TTL and last seen refreshed) at most once per `ttl / 4` while it keeps coming
//!   back.
//! - Outage: a failed or slow call marks the store down (one log line per change of state,
//!   gauge `switchyard_session_store_up`); the router keeps routing from its cache and places
//!   unknown sessions as new; writes made meanwhile are kept (bounded) and written again once
//!   Redis answers. A background task reconnects every second.
//! - Sentinel: with `sessions.sentinels` set, the master's address comes from the sentinels,
//!   and is asked for again every second while the store is down — so after a failover the
//!   store follows the promoted replica within a second or two of the sentinels' decision.
//! - Cluster: with `sessions.cluster_nodes` set, a Redis Cluster: each record (one key) goes to
//!   the node owning its slot; the cluster connection follows `MOVED` and failovers, and while
//!   the store is down it is rebuilt every second from the seed nodes, so a promoted replica is
//!   found as soon as the cluster has promoted it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use redis::AsyncCommands;
use redis::aio::ConnectionManagerConfig;
use redis::cluster::ClusterClient;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::store::{MemoryStore, Record, SessionStore};
use crate::config::RedisConfig;
use crate::redis_conn::RedisConn;

/// Most writes kept while Redis is unreachable; past it one kept write is dropped for each new
/// one (any one: a `HashMap` has no order).
pub const MAX_PENDING_WRITES: usize = 100_000;
/// How often the background task tries to (re)connect and to flush kept writes.
pub const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// Longest wait for the sentinels to name the master.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(2);

pub struct SharedStore {
    local: MemoryStore,
    client: redis::Client,
    sentinel: Option<tokio::sync::Mutex<SentinelClient>>,
    cluster: Option<ClusterClient>,
    conn: ArcSwapOption<RedisConn>,
    prefix: String,
    ttl: Duration,
    /// Redis TTL of records not yet confirmed (`[sessions] unconfirmed_ttl`).
    unconfirmed_ttl: Duration,
    timeout: Duration,
    up: AtomicBool,
    pending: Mutex<HashMap<Uuid, Record>>,
}

/// A record as stored in Redis.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    id: String,
    pool: String,
    backend: String,
    region: String,
    created_ms: u64,
    last_seen_ms: u64,
    resume_count: u32,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Stored {
    fn of(id: Uuid, r: &Record) -> Stored {
        Stored {
            id: id.to_string(),
            pool: r.pool.to_string(),
            backend: r.backend.to_string(),
            region: r.region.to_string(),
            created_ms: unix_ms(r.created),
            last_seen_ms: unix_ms(SystemTime::now()),
            resume_count: r.resume_count,
        }
    }

    fn into_record(self) -> Record {
        let now = Instant::now();
        Record {
            pool: self.pool.into(),
            backend: self.backend.into(),
            region: self.region.into(),
            created: UNIX_EPOCH + Duration::from_millis(self.created_ms),
            last_seen: now,
            resume_count: self.resume_count,
            // A record never returned to is confirmed by the resume that follows this read,
            // which then writes it with the full TTL.
            confirmed: self.resume_count > 0,
            synced: now,
        }
    }
}

/// Shared rate limits count in this store's Redis, through its connection and its up/down state.
impl crate::policy::ratelimit::shared::RedisLink for SharedStore {
    fn key_prefix(&self) -> &str {
        SharedStore::key_prefix(self)
    }

    fn connection(&self) -> Option<RedisConn> {
        SharedStore::connection(self)
    }

    fn timeout(&self) -> Duration {
        SharedStore::timeout(self)
    }

    fn unreachable(&self, why: &str) {
        SharedStore::unreachable(self, why)
    }
}

/// Why the Redis store could not be set up, or could not find its master now.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A setting does not make a client (`key` names it).
    #[error("{key}: {source}")]
    Settings {
        key: &'static str,
        #[source]
        source: redis::RedisError,
    },
    #[error("sentinels: {0}")]
    Sentinel(#[source] redis::RedisError),
    #[error("sentinels did not answer in time")]
    SentinelTimeout,
}

/// The cluster client over `config.cluster_nodes`, with `redis_url`'s user, password and scheme,
/// and the store's timeouts.
fn cluster_client(
    config: &RedisConfig,
    client: &redis::Client,
) -> Result<ClusterClient, StoreError> {
    let info = client.get_connection_info();
    let scheme = match info.addr() {
        redis::ConnectionAddr::TcpTls { .. } => "rediss",
        _ => "redis",
    };
    let nodes: Vec<String> = config
        .cluster_nodes
        .iter()
        .map(|node| format!("{scheme}://{node}"))
        .collect();
    let mut builder = ClusterClient::builder(nodes)
        .connection_timeout(config.timeout.max(Duration::from_millis(200)))
        .response_timeout(config.timeout)
        // One quick retry (a MOVED after a failover); the store's own timeout bounds the rest.
        .retries(1)
        .min_retry_wait(10)
        .max_retry_wait(50);
    if let Some(user) = info.redis_settings().username() {
        builder = builder.username(user);
    }
    if let Some(password) = info.redis_settings().password() {
        builder = builder.password(password);
    }
    builder.build().map_err(|source| StoreError::Settings {
        key: "sessions.cluster_nodes",
        source,
    })
}

impl SharedStore {
    /// Validates the URL; connects later, in the background (Redis may be down at start).
    /// A store sharing through Redis, with `local` as this node's cache.
    pub fn new(config: &RedisConfig, local: MemoryStore) -> Result<SharedStore, StoreError> {
        let ttl = local.ttl();
        let client =
            redis::Client::open(config.url.as_str()).map_err(|source| StoreError::Settings {
                key: "sessions.redis_url",
                source,
            })?;
        let sentinel = match config.sentinels.is_empty() {
            true => None,
            false => {
                let info = client.get_connection_info();
                let mut node = SentinelNodeConnectionInfo::default()
                    .set_redis_connection_info(info.redis_settings().clone());
                if let redis::ConnectionAddr::TcpTls { insecure, .. } = info.addr() {
                    node = node.set_tls_mode(match insecure {
                        true => redis::TlsMode::Insecure,
                        false => redis::TlsMode::Secure,
                    });
                }
                let sentinels: Vec<String> = config
                    .sentinels
                    .iter()
                    .map(|s| format!("redis://{s}"))
                    .collect();
                let sentinel = SentinelClient::build(
                    sentinels,
                    config.sentinel_master.clone(),
                    Some(node),
                    SentinelServerType::Master,
                )
                .map_err(|source| StoreError::Settings {
                    key: "sessions.sentinels",
                    source,
                })?;
                Some(tokio::sync::Mutex::new(sentinel))
            }
        };
        let cluster = match config.cluster_nodes.is_empty() {
            true => None,
            false => Some(cluster_client(config, &client)?),
        };
        Ok(SharedStore {
            local,
            client,
            sentinel,
            cluster,
            conn: ArcSwapOption::empty(),
            prefix: config.key_prefix.clone(),
            ttl,
            unconfirmed_ttl: config.unconfirmed_ttl,
            timeout: config.timeout,
            up: AtomicBool::new(false),
            pending: Mutex::new(HashMap::new()),
        })
    }

    fn key(&self, id: Uuid) -> String {
        format!("{}{}", self.prefix, id.as_hyphenated())
    }

    fn set_up(&self, up: bool, why: &str) {
        if self.up.swap(up, Ordering::SeqCst) != up {
            if up {
                tracing::info!("session store reachable again");
            } else {
                tracing::warn!(
                    reason = why,
                    "session store unreachable: routing from the local cache"
                );
            }
        }
        metrics::gauge!("switchyard_session_store_up").set(if up { 1.0 } else { 0.0 });
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    /// A handle on the store's Redis connection for other shared state (rate limits), or
    /// `None` while it is not connected or marked down — callers then fall back rather than
    /// wait on a server that is known not to answer.
    pub fn connection(&self) -> Option<RedisConn> {
        match self.is_up() {
            true => self.conn.load_full().map(|conn| (*conn).clone()),
            false => None,
        }
    }

    /// Another user of [`SharedStore::connection`] found Redis unreachable: marks the store
    /// down, so requests stop waiting on it until the background task's probe answers.
    pub fn unreachable(&self, why: &str) {
        self.set_up(false, why);
    }

    /// Prefix of every key this node writes.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// Longest wait for one Redis call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The backend recorded for a session of `pool`: local cache, then Redis.
    pub async fn resume(self: &Arc<Self>, id: Uuid, pool: &str) -> Option<Arc<str>> {
        if let Some(resumed) = self.local.resume(id, pool) {
            if let Some(record) = resumed.refresh {
                self.share(id, record);
            }
            return Some(resumed.backend);
        }
        let key = self.key(id);
        // One more try after an error: the first command on a connection Redis dropped
        // (a restart) fails, and the connection manager reconnects for the next.
        let mut value = None;
        for attempt in 0..2 {
            let mut conn = (*self.conn.load_full()?).clone();
            match tokio::time::timeout(self.timeout, conn.get::<_, Option<String>>(&key)).await {
                Ok(Ok(found)) => {
                    self.set_up(true, "");
                    value = found;
                    break;
                }
                Ok(Err(err)) if attempt == 0 => {
                    tracing::debug!(error = %err, "session store read failed; trying once more");
                }
                Ok(Err(err)) => {
                    self.set_up(false, &err.to_string());
                    return None;
                }
                Err(_) => {
                    self.set_up(false, "timed out");
                    return None;
                }
            }
        }
        let stored: Stored = match serde_json::from_str(&value?) {
            Ok(stored) => stored,
            Err(err) => {
                tracing::warn!(key, error = %err, "unreadable session record in Redis: placing the session anew");
                return None;
            }
        };
        if stored.pool != pool {
            return None;
        }
        self.local.insert(id, stored.into_record());
        Some(self.local.resume(id, pool)?.backend)
    }

    /// A live session is still there: refreshes it here, and in Redis when due.
    pub fn touch(self: &Arc<Self>, id: Uuid) {
        if let Some(record) = self.local.touch(id) {
            self.share(id, record);
        }
    }

    /// How often a live session should be touched to keep its record.
    pub fn ttl(&self) -> Duration {
        self.local.ttl()
    }

    /// Records a session here at once and in Redis in the background.
    pub fn place(self: &Arc<Self>, id: Uuid, pool: Arc<str>, backend: Arc<str>) {
        let record = self.local.place(id, pool, backend);
        self.share(id, record);
    }

    /// Writes a record to Redis in the background; kept for later if Redis is down.
    fn share(self: &Arc<Self>, id: Uuid, record: Record) {
        let store = self.clone();
        actix_rt::spawn(async move {
            if !store.write(id, &record).await {
                store.keep(id, record);
            }
        });
    }

    async fn write(&self, id: Uuid, record: &Record) -> bool {
        let Some(conn) = self.conn.load_full() else {
            return false;
        };
        let mut conn = (*conn).clone();
        let value = match serde_json::to_string(&Stored::of(id, record)) {
            Ok(value) => value,
            Err(_) => return true, // cannot happen: plain strings and numbers
        };
        let ttl = match record.confirmed {
            true => self.ttl,
            false => self.unconfirmed_ttl,
        };
        let ttl = ttl.as_secs().max(1);
        match tokio::time::timeout(
            self.timeout,
            conn.set_ex::<_, _, ()>(self.key(id), value, ttl),
        )
        .await
        {
            Ok(Ok(())) => {
                self.set_up(true, "");
                true
            }
            Ok(Err(err)) => {
                self.set_up(false, &err.to_string());
                false
            }
            Err(_) => {
                self.set_up(false, "timed out");
                false
            }
        }
    }

    fn keep(&self, id: Uuid, record: Record) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= MAX_PENDING_WRITES
            && let Some(old) = pending.keys().next().copied()
        {
            pending.remove(&old);
        }
        pending.insert(id, record);
    }

    /// The client for the server to use: the configured one, or the master the sentinels
    /// name now.
    pub(crate) async fn master(&self) -> Result<redis::Client, StoreError> {
        let Some(sentinel) = &self.sentinel else {
            return Ok(self.client.clone());
        };
        let mut sentinel = sentinel.lock().await;
        match tokio::time::timeout(SENTINEL_TIMEOUT, sentinel.async_get_client()).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(err)) => Err(StoreError::Sentinel(err)),
            Err(_) => Err(StoreError::SentinelTimeout),
        }
    }

    /// A connection to the cluster, or a connection manager to the (current) master.
    async fn connect(&self) {
        if let Some(cluster) = &self.cluster {
            return match tokio::time::timeout(
                Duration::from_secs(2),
                cluster.get_async_connection(),
            )
            .await
            {
                Ok(Ok(conn)) => {
                    self.conn.store(Some(Arc::new(RedisConn::Cluster(conn))));
                    self.set_up(true, "");
                }
                Ok(Err(err)) => self.set_up(false, &err.to_string()),
                Err(_) => self.set_up(false, "connect timed out"),
            };
        }
        let client = match self.master().await {
            Ok(client) => client,
            Err(err) => return self.set_up(false, &err.to_string()),
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(200))))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        match tokio::time::timeout(
            Duration::from_secs(2),
            client.get_connection_manager_with_config(config),
        )
        .await
        {
            Ok(Ok(conn)) => {
                if self.sentinel.is_some() {
                    tracing::info!(master = %client.get_connection_info().addr(), "session store: master from the sentinels");
                }
                self.conn.store(Some(Arc::new(RedisConn::Single(conn))));
                self.set_up(true, "");
            }
            Ok(Err(err)) => self.set_up(false, &err.to_string()),
            Err(_) => self.set_up(false, "connect timed out"),
        }
    }

    /// The background task: connects (again) when needed, then writes what was kept.
    pub async fn maintain(self: Arc<Self>) {
        loop {
            // Behind sentinels a store that is down may be talking to a demoted master: ask
            // the sentinels again rather than waiting for the old address to come back. A
            // cluster connection is rebuilt too: it then reads the slots afresh.
            let follows_failovers = self.sentinel.is_some() || self.cluster.is_some();
            if self.conn.load().is_none() || (follows_failovers && !self.is_up()) {
                self.connect().await;
            } else if !self.is_up() {
                // Probe with a PING so a store marked down comes back without traffic.
                if let Some(conn) = self.conn.load_full() {
                    let mut conn = (*conn).clone();
                    let pong: Result<Result<String, _>, _> = tokio::time::timeout(
                        self.timeout,
                        redis::cmd("PING").query_async(&mut conn),
                    )
                    .await;
                    if matches!(pong, Ok(Ok(_))) {
                        self.set_up(true, "");
                    }
                }
            }
            if self.is_up() {
                let kept: Vec<_> = {
                    let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                    pending.drain().collect()
                };
                for (id, record) in kept {
                    if !self.write(id, &record).await {
                        self.keep(id, record);
                    }
                }
            }
            actix_rt::time::sleep(RECONNECT_EVERY).await;
        }
    }

    /// Whether the store is a Redis Cluster (a script then touches keys of one slot only).
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    pub fn sweep(&self) -> usize {
        self.local.sweep()
    }

    pub fn len(&self) -> usize {
        self.local.len()
    }

    pub fn is_empty(&self) -> bool {
        self.local.is_empty()
    }
}
