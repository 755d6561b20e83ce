#!/usr/bin/env bash
# HTTP/2 over TLS (ALPN h2): Switchyard vs HAProxy, one worker/thread each, the same
# switchyard-backend behind, the same ECDSA certificate (made here with openssl).
#   settings   `nghttp -nv`: the SETTINGS frame each proxy sends (Switchyard's from [limits])
#   burst      `h2load -c1 -m200 -n2000`: one connection asking for 200 streams at once —
#              every request must complete (the client obeys the advertised limit)
#   rate/CPU   per round, `h2load -c10 -m10 -n N` (HTTP/2) and `h2load --h1 -c10 -n N`
#              (HTTPS/1.1 keep-alive): requests/s, and the proxy's CPU time per request from
#              /proc/PID/stat over the run
# Traffic stays on 127.0.0.1; everything started here is stopped on exit.
#
#   load-tests/bench/h2-haproxy.sh [ROUNDS] [REQUESTS]     # defaults 3 and 200000
#
# Needs nghttp2-client, haproxy and openssl (apt-get install -y nghttp2-client haproxy openssl).
set -euo pipefail
ROUNDS=${1:-3}
N=${2:-200000}
cd "$(dirname "$0")/../.."
for tool in h2load nghttp haproxy openssl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y nghttp2-client haproxy openssl" >&2; exit 1; }
done
source load-tests/bench/common.sh

start_tls_peers

# CPU time (user + system) of PID so far, in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

echo "# HTTP/2 over TLS, one worker/thread each; $(date -u +%FT%TZ)"
for proxy in switchyard haproxy; do
  port=$([ "$proxy" = haproxy ] && echo "$HA" || echo "$SYT")
  echo "## $proxy: SETTINGS received (nghttp -nv)"
  nghttp -nv "https://127.0.0.1:$port/x" 2>&1 | awk '/recv SETTINGS frame/ { on = 1; print; next } on && /^ +[[(]/ { print; next } on { exit }'
  echo "## $proxy: h2load -c1 -m200 -n2000"
  h2load -c1 -m200 -n2000 "https://127.0.0.1:$port/x" 2>&1 | grep -E "^requests:|^status codes:"
done
# One measured run: requests/s, and the proxy's CPU per request over it.
measure() { # proxy, mode label, h2load arguments...
  local proxy=$1 mode=$2 port pid before out used rate ok us
  shift 2
  port=$([ "$proxy" = haproxy ] && echo "$HA" || echo "$SYT")
  pid=$([ "$proxy" = haproxy ] && echo "$HAPID" || echo "$SYPID")
  before=$(ticks "$pid")
  out=$(h2load "$@" -n "$N" "https://127.0.0.1:$port/x" 2>&1)
  used=$(( $(ticks "$pid") - before ))
  rate=$(echo "$out" | awk '/^finished in/ { print $4 }')
  ok=$(echo "$out" | awk '/^requests:/ { print $8 }')
  us=$(python3 -c "print(f'{$used / $hz / $N * 1e6:.2f}')")
  printf "round %s  %-9s %-10s  %10s req/s  %s µs CPU/request  %s of %s succeeded\n" "$round" "$mode" "$proxy" "$rate" "$us" "$ok" "$N"
}
for round in $(seq 1 "$ROUNDS"); do
  for proxy in haproxy switchyard; do
    measure "$proxy" h2 -c10 -m10
  done
  # HTTPS/1.1 keep-alive: ten connections, one request at a time on each.
  for proxy in haproxy switchyard; do
    measure "$proxy" https1.1 --h1 -c10
  done
done
