# Shared by the bench scripts (sourced from the repository root): release binaries, a scratch
# directory, processes stopped on exit, free loopback ports.
# BENCH_BIN=DIR measures the release binaries in DIR (switchyard, switchyard-load,
# switchyard-backend built elsewhere, e.g. from another commit) instead of building these.
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN
else
  cargo build --release -q -p switchyard -p switchyard-load
  BIN=target/release
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# The start of a Switchyard config for a benchmark: one worker on 127.0.0.1:$1 (admin on $2),
# no access log, and — since one load generator address sends what thousands of viewers
# would — the per-address caps (on by default) turned off.
router_head() {
  cat <<TOML
[node]
listen = "127.0.0.1:$1"
admin_listen = "127.0.0.1:$2"
workers = 1
[log]
access = false
[limits]
max_connections_per_ip = 0
rate_per_ip = 0
TOML
}

# Starts N test backends (ids b1..bN) on free ports and waits for them: their ports in B.
start_backends() {
  B=()
  local i p
  for i in $(seq 1 "$1"); do
    p=$(free_port)
    "$BIN/switchyard-backend" --listen "127.0.0.1:$p" --id "b$i" >/dev/null 2>&1 & PIDS+=($!)
    B+=("$p")
  done
  for p in "${B[@]}"; do wait_port "$p"; done
}

# A whole benchmark config: router_head on $1 (admin $2), one route "/" without retries to a
# round-robin pool, without health checks, over the test backends on the ports that follow
# (ids b1, b2, ...).
router_config() {
  local port=$1 admin=$2 backends="" n=0
  shift 2
  for b in "$@"; do
    n=$((n + 1))
    backends+="${backends:+, }{ id = \"b$n\", address = \"127.0.0.1:$b\" }"
  done
  router_head "$port" "$admin"
  cat <<TOML
[[routes]]
id = "api"
path_prefix = "/"
pool = "api"
retries = 0
[[pools]]
id = "api"
algorithm = "round_robin"
health = { kind = "none" }
backends = [ $backends ]
TOML
}

# HAProxy as the peer of the HTTP benchmarks: one thread on 127.0.0.1:$1, round robin over
# the test backends on ports $2 and $3, adding the same forwarding and request-id headers as
# Switchyard.
haproxy_http_config() {
  cat <<CFG
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  option forwardfor
frontend fe
  bind 127.0.0.1:$1
  unique-id-format %[uuid()]
  unique-id-header X-Request-Id
  http-request set-header X-Forwarded-Proto http
  http-after-response set-header X-Request-Id %[unique-id]
  default_backend be
backend be
  balance roundrobin
  http-reuse always
  server b1 127.0.0.1:$2
  server b2 127.0.0.1:$3
CFG
}

# WebSocket benchmarks' proxies, one worker / thread each, least connections over the three
# test backends on the ports that follow $1 (HAProxy: port $1; Switchyard: port $1, admin $2).
haproxy_ws_config() {
  local port=$1
  shift
  cat <<CFG
global
  nbthread 1
  maxconn 9900
defaults
  mode http
  maxconn 9900
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout tunnel 1h
frontend fe
  bind 127.0.0.1:$port
  default_backend be
backend be
  balance leastconn
  server b1 127.0.0.1:$1
  server b2 127.0.0.1:$2
  server b3 127.0.0.1:$3
CFG
}

router_ws_config() {
  router_head "$1" "$2"
  cat <<TOML
[[routes]]
id = "ws"
path_prefix = "/"
pool = "ws"
timeouts = { connect = "1s", response = "5s", idle = "1h" }
[[pools]]
id = "ws"
algorithm = "least_connections"
backends = [ { id = "b1", address = "127.0.0.1:$3" }, { id = "b2", address = "127.0.0.1:$4" }, { id = "b3", address = "127.0.0.1:$5" } ]
TOML
}

# TLS benchmarks: an ECDSA P-256 certificate for bench.test in $WORK (cert.pem, key.pem, and
# haproxy.pem with both); a backend b1 on $B; Switchyard (public $SY, TLS $SYT, admin $SYA,
# pid $SYPID) and HAProxy (TLS $HA with ALPN h2 and http/1.1, pid $HAPID), one worker /
# thread each, in front of it.
# WRAP: a command the two proxies are started under (e.g. valgrind), unset for none.
start_tls_peers() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=bench.test" -addext "subjectAltName=DNS:bench.test" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
  cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/haproxy.pem"
  B=$(free_port)
  "$BIN/switchyard-backend" --listen 127.0.0.1:$B --id b1 >/dev/null & PIDS+=($!)
  wait_port "$B"
  SY=$(free_port); SYT=$(free_port); SYA=$(free_port)
  router_head "$SY" "$SYA" > "$WORK/switchyard.toml"
  cat >> "$WORK/switchyard.toml" <<TOML
[[listeners]]
id = "https"
address = "127.0.0.1:$SYT"
tls = { certificates = [{ names = ["bench.test"], cert = "$WORK/cert.pem", key = "$WORK/key.pem" }] }
[[routes]]
id = "all"
path_prefix = "/"
pool = "p"
retries = 0
[[pools]]
id = "p"
backends = [ { id = "b1", address = "127.0.0.1:$B" } ]
TOML
  ${WRAP:-} "$BIN/switchyard" serve --config "$WORK/switchyard.toml" >/dev/null 2>"$WORK/switchyard.err" & SYPID=$!; PIDS+=($SYPID)
  wait_port "$SYT"
  HA=$(free_port)
  cat > "$WORK/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 9000
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:$HA ssl crt $WORK/haproxy.pem alpn h2,http/1.1
  default_backend be
backend be
  http-reuse always
  server b1 127.0.0.1:$B
CFG
  ${WRAP:-} haproxy -f "$WORK/haproxy.cfg" -db >/dev/null 2>"$WORK/haproxy.err" & HAPID=$!; PIDS+=($HAPID)
  wait_port "$HA"
}
