#!/usr/bin/env bash
# TLS termination: Switchyard vs HAProxy, one worker/thread each, in front of the same
# switchyard-backend, same certificate (ECDSA P-256, made here with openssl), interleaved
# rounds. Two loads with wrk (-t1):
#   handshakes  every request on a new TLS connection (Connection: close): full handshakes/s
#   keep-alive  50 connections reused: HTTPS requests/s
# Traffic stays on 127.0.0.1; everything started here is stopped on exit.
#
#   load-tests/bench/tls-haproxy.sh [ROUNDS] [SECONDS]
#
# Needs wrk, haproxy and openssl (apt-get install -y wrk haproxy openssl).
set -euo pipefail
ROUNDS=${1:-2}
SECS=${2:-8}
cd "$(dirname "$0")/../.."
for tool in wrk haproxy openssl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y wrk haproxy openssl" >&2; exit 1; }
done
source load-tests/bench/common.sh

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
"$BIN/switchyard" serve --config "$WORK/switchyard.toml" >/dev/null & PIDS+=($!)
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
haproxy -f "$WORK/haproxy.cfg" -db >/dev/null 2>&1 & PIDS+=($!)
wait_port "$HA"

rps() { awk '/Requests\/sec/ { print $2 }'; }
echo "# TLS termination, one worker/thread each, wrk -t1, ${SECS}s runs; $(date -u +%F)"
for round in $(seq 1 "$ROUNDS"); do
  for proxy in haproxy switchyard; do
    port=$([ "$proxy" = haproxy ] && echo "$HA" || echo "$SYT")
    hs_out=$(wrk -t1 -c16 -d"${SECS}s" -H "Connection: close" "https://127.0.0.1:$port/x"); hs=$(echo "$hs_out" | rps); hs_bad=$(echo "$hs_out" | awk "/Non-2xx|Socket errors/" | tr -s " " | tr "\n" ";")
    ka_out=$(wrk -t1 -c50 -d"${SECS}s" "https://127.0.0.1:$port/x"); ka=$(echo "$ka_out" | rps); ka_bad=$(echo "$ka_out" | awk "/Non-2xx|Socket errors/" | tr -s " " | tr "\n" ";")
    printf "round %s  %-10s  handshakes/s %10s   keep-alive rps %10s   %s %s\n" "$round" "$proxy" "$hs" "$ka" "$hs_bad" "$ka_bad"
  done
done
