#!/bin/sh
# A Redis Sentinel watching the Compose file's Redis master as "switchyard"; two of the three
# must agree it is down. Sentinel rewrites its config file, so it is written fresh in /tmp.
set -eu
cat > /tmp/sentinel.conf <<CONF
port ${SENTINEL_PORT}
bind 127.0.0.1
sentinel monitor switchyard 127.0.0.1 ${SY_REDIS_PORT} 2
sentinel down-after-milliseconds switchyard ${SY_SENTINEL_DOWN_AFTER_MS}
sentinel failover-timeout switchyard 10000
sentinel parallel-syncs switchyard 1
CONF
exec redis-sentinel /tmp/sentinel.conf
