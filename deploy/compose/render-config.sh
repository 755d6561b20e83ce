#!/bin/sh
# Writes this router node's configuration from the environment the Compose file gives it,
# then starts the node (as PID 1, so `docker stop`'s SIGTERM reaches it).
# Switchyard's config file has no variable expansion: the ports live here instead.
set -eu
cat > /tmp/switchyard.toml <<TOML
[node]
region = "local"
listen = "127.0.0.1:${SY_PUBLIC_PORT}"
admin_listen = "127.0.0.1:${SY_ADMIN_PORT}"
shutdown_delay = "${SY_SHUTDOWN_DELAY}"
shutdown_timeout = "${SY_SHUTDOWN_TIMEOUT}"
shutdown_spread = "2s"
# The admin token comes from SWITCHYARD_ADMIN_TOKEN (node.admin_token_env's default).

[sessions]
store = "redis"
# With sentinels, redis_url gives only credentials and database: the master comes from them.
redis_url = "redis://127.0.0.1:${SY_REDIS_PORT}"
sentinels = ["127.0.0.1:${SY_SENTINEL_1_PORT}", "127.0.0.1:${SY_SENTINEL_2_PORT}", "127.0.0.1:${SY_SENTINEL_3_PORT}"]
sentinel_master = "switchyard"
# Every node signs session tokens with the same key: SWITCHYARD_COOKIE_KEY.

[[routes]]
id = "api"
path_prefix = "/api"
pool = "api"
retries = 1

[[routes]]
id = "stream"
path_prefix = "/stream"
pool = "stream"
sticky = true
timeouts = { connect = "500ms", response = "10s", idle = "2h" }

[[routes]]
id = "ws"
path_prefix = "/ws"
pool = "stream"
sticky = true
timeouts = { connect = "500ms", response = "10s", idle = "2h" }

[[pools]]
id = "api"
algorithm = "round_robin"
health = { kind = "http", path = "/health", interval = "1s", timeout = "500ms" }
backends = [
  { id = "api-1", address = "127.0.0.1:${SY_API_1_PORT}" },
  { id = "api-2", address = "127.0.0.1:${SY_API_2_PORT}" },
  { id = "api-3", address = "127.0.0.1:${SY_API_3_PORT}" },
]

[[pools]]
id = "stream"
algorithm = "least_connections"
health = { kind = "http", path = "/health", interval = "1s", timeout = "500ms" }
backends = [
  { id = "stream-1", address = "127.0.0.1:${SY_STREAM_1_PORT}" },
  { id = "stream-2", address = "127.0.0.1:${SY_STREAM_2_PORT}" },
  { id = "stream-3", address = "127.0.0.1:${SY_STREAM_3_PORT}" },
]
TOML
/usr/local/bin/switchyard check-config /tmp/switchyard.toml
exec /usr/local/bin/switchyard serve --config /tmp/switchyard.toml
