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

start_tls_peers

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
