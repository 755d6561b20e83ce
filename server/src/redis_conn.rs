//! One handle on the shared Redis, whatever its topology: a single server (or the master the
//! Sentinels name) through a reconnecting `ConnectionManager`, or a Redis Cluster through the
//! `redis` crate's cluster connection, which routes each command to the node owning its key's
//! slot and follows `MOVED`/`ASK` and failovers by itself.
//!
//! Users — the session store, shared rate limits, the rollout ledger — send commands and
//! scripts through it without knowing which it is. What they must know: in a cluster every
//! command or script touches keys of one slot only ([`RedisConn::is_cluster`], and
//! [`hash_tagged`] to put related keys in one slot).

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl RedisConn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(conn) => conn.req_packed_command(cmd),
            RedisConn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            RedisConn::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(conn) => conn.get_db(),
            RedisConn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// `prefix` + `{tag}` + `rest`: keys sharing `tag` land in one cluster slot (Redis hashes only
/// the text between the first `{` and the next `}`). A prefix that already holds a `{…}` tag
/// decides the slot itself, so then nothing is added.
pub fn hash_tagged(prefix: &str, tag: &str, rest: &str) -> String {
    let tagged_already = prefix
        .find('{')
        .is_some_and(|open| prefix[open + 1..].find('}').is_some_and(|len| len > 0));
    match tagged_already {
        true => format!("{prefix}{tag}{rest}"),
        false => format!("{prefix}{{{tag}}}{rest}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn related_keys_share_a_tag_unless_the_prefix_has_one() {
        assert_eq!(
            hash_tagged("switchyard:session:", "rollouts", ":lease"),
            "switchyard:session:{rollouts}:lease"
        );
        assert_eq!(
            hash_tagged("{sy}:", "rollouts", ":lease"),
            "{sy}:rollouts:lease"
        );
        // `{}` is no tag: Redis hashes the whole key then.
        assert_eq!(hash_tagged("a{}:", "r", ""), "a{}:{r}");
    }
}
