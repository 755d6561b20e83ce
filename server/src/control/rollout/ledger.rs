//! Where rollouts are kept, and how the nodes share them: in Redis (the session store's), so
//! every node applies the same weights, a restarted node picks a rollout up and one node
//! decides at a time; or, without Redis, in this node's memory (a rollout then works on its
//! one node, and is lost at restart).
//!
//! Redis keys (under the session store's key prefix):
//! - `rollouts` — hash: rollout id → the rollout as JSON. A write names the version it was
//!   based on and is refused when another node changed the rollout since (a compare-and-set
//!   script), so an operator's pause and the controller's advance never undo each other.
//! - `rollout:{id}:tallies` — hash: node → that node's outcomes for the rollout (baseline and
//!   canary) as JSON, counted since it first applied the rollout; the deciding node sums them.
//! - `rollouts:lease` — the node that decides, with a short expiry it renews on every tick;
//!   another node takes it when the holder stops renewing (dies, or loses Redis).
//!
//! On a Redis Cluster the three share the hash tag `{rollouts}` (`{prefix}{rollouts}`,
//! `{prefix}{rollouts}:lease`, `{prefix}{rollouts}:{id}:tallies`), so the scripts that touch
//! several of them run on one node.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use redis::AsyncCommands;

use crate::control::rollout::plan::{Pair, Rollout};
use crate::redis_conn::{RedisConn, hash_tagged};
use crate::session::SharedStore;

/// Why the ledger could not be read or written this time.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("Redis is unreachable (the session store is down)")]
    Unreachable,
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis refused the call: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Starts a rollout unless its route has one running or paused (answering that one's id);
/// a finished one on the route gives way.
const CREATE: &str = r"
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local ok, r = pcall(cjson.decode, all[i + 1])
  if ok and r.plan and r.plan.route == ARGV[2] then
    if r.phase == 'running' or r.phase == 'paused' then return all[i] end
    redis.call('HDEL', KEYS[1], all[i])
    redis.call('DEL', ARGV[4] .. all[i] .. ':tallies')
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return ''
";

/// Writes a rollout when the stored one is still at the version the write was based on.
const UPDATE: &str = r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return 0 end
local ok, r = pcall(cjson.decode, current)
if not ok or tostring(r.version) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
";

/// Takes the lease when it is free, or renews it when this node holds it.
const LEASE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

static CREATE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(CREATE));
static UPDATE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(UPDATE));
static LEASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(LEASE));

pub enum Ledger {
    /// This node's memory: rollouts, and this node's tallies.
    Memory(Mutex<Memory>),
    Redis(RedisLedger),
}

#[derive(Default)]
pub struct Memory {
    rollouts: BTreeMap<String, Rollout>,
    tallies: BTreeMap<String, Pair>,
}

pub struct RedisLedger {
    store: Arc<SharedStore>,
    prefix: String,
    rollouts: String,
    lease: String,
}

impl Ledger {
    pub fn memory() -> Ledger {
        Ledger::Memory(Mutex::default())
    }

    pub fn redis(store: Arc<SharedStore>) -> Ledger {
        let prefix = store.key_prefix().to_string();
        let (rollouts, lease, tallies) = match store.is_cluster() {
            false => (
                format!("{prefix}rollouts"),
                format!("{prefix}rollouts:lease"),
                format!("{prefix}rollout:"),
            ),
            true => (
                hash_tagged(&prefix, "rollouts", ""),
                hash_tagged(&prefix, "rollouts", ":lease"),
                hash_tagged(&prefix, "rollouts", ":"),
            ),
        };
        Ledger::Redis(RedisLedger {
            rollouts,
            lease,
            prefix: tallies,
            store,
        })
    }

    /// Whether rollouts are shared by every node on one Redis.
    pub fn is_shared(&self) -> bool {
        matches!(self, Ledger::Redis(_))
    }

    fn memory_lock(memory: &Mutex<Memory>) -> std::sync::MutexGuard<'_, Memory> {
        memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every rollout kept (one that does not decode is logged and left out).
    pub async fn all(&self) -> Result<Vec<Rollout>, LedgerError> {
        match self {
            Ledger::Memory(m) => Ok(Self::memory_lock(m).rollouts.values().cloned().collect()),
            Ledger::Redis(r) => {
                let key = r.rollouts.clone();
                let entries: Vec<(String, String)> = r
                    .call(|mut conn| async move { conn.hgetall(key).await })
                    .await?;
                Ok(entries
                    .into_iter()
                    .filter_map(|(id, json)| match serde_json::from_str(&json) {
                        Ok(rollout) => Some(rollout),
                        Err(err) => {
                            tracing::warn!(rollout = %id, error = %err, "a stored rollout does not decode: left out");
                            None
                        }
                    })
                    .collect())
            }
        }
    }

    /// Stores a new rollout. `Ok(Some(id))`: its route already has a running or paused one.
    pub async fn create(&self, rollout: &Rollout) -> Result<Option<String>, LedgerError> {
        match self {
            Ledger::Memory(m) => {
                let mut m = Self::memory_lock(m);
                let route = &rollout.plan.route;
                if let Some(active) = m
                    .rollouts
                    .values()
                    .find(|r| r.plan.route == *route && r.phase.is_active())
                {
                    return Ok(Some(active.id.clone()));
                }
                let finished: Vec<String> = m
                    .rollouts
                    .values()
                    .filter(|r| r.plan.route == *route)
                    .map(|r| r.id.clone())
                    .collect();
                for id in finished {
                    m.rollouts.remove(&id);
                    m.tallies.remove(&id);
                }
                m.rollouts.insert(rollout.id.clone(), rollout.clone());
                Ok(None)
            }
            Ledger::Redis(r) => {
                let mut script = CREATE_SCRIPT.prepare_invoke();
                script
                    .key(&r.rollouts)
                    .arg(&rollout.id)
                    .arg(&rollout.plan.route)
                    .arg(json(rollout))
                    .arg(&r.prefix);
                let existing: String = r
                    .call(|mut conn| async move { script.invoke_async(&mut conn).await })
                    .await?;
                Ok((!existing.is_empty()).then_some(existing))
            }
        }
    }

    /// Stores `rollout` if the kept one is still at version `based_on`; `Ok(false)`: another
    /// change came first (read again and retry), or the rollout is gone.
    pub async fn update(&self, rollout: &Rollout, based_on: u64) -> Result<bool, LedgerError> {
        match self {
            Ledger::Memory(m) => {
                let mut m = Self::memory_lock(m);
                match m.rollouts.get_mut(&rollout.id) {
                    Some(kept) if kept.version == based_on => {
                        *kept = rollout.clone();
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            }
            Ledger::Redis(r) => {
                let mut script = UPDATE_SCRIPT.prepare_invoke();
                script
                    .key(&r.rollouts)
                    .arg(&rollout.id)
                    .arg(based_on.to_string())
                    .arg(json(rollout));
                let done: i64 = r
                    .call(|mut conn| async move { script.invoke_async(&mut conn).await })
                    .await?;
                Ok(done == 1)
            }
        }
    }

    /// Forgets a rollout and its tallies.
    pub async fn remove(&self, id: &str) -> Result<(), LedgerError> {
        match self {
            Ledger::Memory(m) => {
                let mut m = Self::memory_lock(m);
                m.rollouts.remove(id);
                m.tallies.remove(id);
                Ok(())
            }
            Ledger::Redis(r) => {
                let (rollouts, tallies, id) = (r.rollouts.clone(), r.tallies(id), id.to_string());
                r.call(|mut conn| async move {
                    conn.hdel::<_, _, ()>(rollouts, id).await?;
                    conn.del::<_, ()>(tallies).await
                })
                .await
            }
        }
    }

    /// Reports this node's outcomes for a rollout.
    pub async fn report(&self, id: &str, node: &str, pair: &Pair) -> Result<(), LedgerError> {
        match self {
            Ledger::Memory(m) => {
                Self::memory_lock(m)
                    .tallies
                    .insert(id.to_string(), pair.clone());
                Ok(())
            }
            Ledger::Redis(r) => {
                let (key, node, value) = (r.tallies(id), node.to_string(), json(pair));
                r.call(|mut conn| async move { conn.hset::<_, _, _, ()>(key, node, value).await })
                    .await
            }
        }
    }

    /// Every node's outcomes for a rollout, summed.
    pub async fn sums(&self, id: &str) -> Result<Pair, LedgerError> {
        match self {
            Ledger::Memory(m) => Ok(Self::memory_lock(m)
                .tallies
                .get(id)
                .cloned()
                .unwrap_or_default()),
            Ledger::Redis(r) => {
                let key = r.tallies(id);
                let values: Vec<String> = r
                    .call(|mut conn| async move { conn.hvals(key).await })
                    .await?;
                let mut sum = Pair::default();
                for value in values {
                    match serde_json::from_str::<Pair>(&value) {
                        Ok(pair) => sum.add(&pair),
                        Err(err) => {
                            tracing::warn!(rollout = %id, error = %err, "a node's tally does not decode: left out")
                        }
                    }
                }
                Ok(sum)
            }
        }
    }

    /// Takes or renews the lease to decide; `Ok(false)`: another node holds it. Memory: always
    /// this node's.
    pub async fn lease(&self, node: &str, ttl: Duration) -> Result<bool, LedgerError> {
        match self {
            Ledger::Memory(_) => Ok(true),
            Ledger::Redis(r) => {
                let mut script = LEASE_SCRIPT.prepare_invoke();
                script.key(&r.lease).arg(node).arg(ttl.as_millis() as u64);
                let held: i64 = r
                    .call(|mut conn| async move { script.invoke_async(&mut conn).await })
                    .await?;
                Ok(held == 1)
            }
        }
    }
}

impl RedisLedger {
    fn tallies(&self, id: &str) -> String {
        format!("{}{id}:tallies", self.prefix)
    }

    /// One call on the session store's connection, within its timeout; a connection that
    /// fails marks the store down (its probe brings it back).
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, LedgerError>
    where
        F: FnOnce(RedisConn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.store.connection().ok_or(LedgerError::Unreachable)?;
        let timeout = self.store.timeout();
        match tokio::time::timeout(timeout, call(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                if err.is_io_error() || err.is_connection_refusal() || err.is_connection_dropped() {
                    self.store.unreachable(&err.to_string());
                }
                Err(err.into())
            }
            Err(_) => {
                self.store.unreachable("timed out");
                Err(LedgerError::Timeout(timeout))
            }
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
