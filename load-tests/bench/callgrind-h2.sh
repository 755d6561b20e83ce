#!/usr/bin/env bash
# User-space instructions per HTTP/2 request over TLS (ALPN h2), Switchyard and HAProxy side by
# side — repeatable where CPU time on this shared machine is not. Both proxies run under
# valgrind's callgrind (one worker/thread, the same ECDSA certificate and test backend, as
# h2-haproxy.sh sets them up); for each, 1,000 warm-up requests, counters zeroed, then N
# requests (`h2load -c1 -m10`: one connection, ten streams at a time), counters dumped.
# Per request = the dump's total / N: TLS, HTTP/2 and the proxying, without start-up.
#
#   load-tests/bench/callgrind-h2.sh [N] [OUT]   # default 5000; OUT: keep the two profiles
#                                                # there (callgrind_annotate --inclusive=yes)
#
# Needs valgrind, nghttp2-client, haproxy and openssl.
set -euo pipefail
N=${1:-5000}
OUT=${2:-}
cd "$(dirname "$0")/../.."
for tool in valgrind callgrind_control h2load haproxy openssl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y valgrind nghttp2-client haproxy openssl" >&2; exit 1; }
done
source load-tests/bench/common.sh
WRAP="valgrind --tool=callgrind --dump-instr=no --callgrind-out-file=$WORK/callgrind.%p"
start_tls_peers

echo "# HTTP/2 over TLS under callgrind, $N requests (h2load -c1 -m10); $(date -u +%FT%TZ)"
for proxy in switchyard haproxy; do
  port=$([ "$proxy" = haproxy ] && echo "$HA" || echo "$SYT")
  pid=$([ "$proxy" = haproxy ] && echo "$HAPID" || echo "$SYPID")
  h2load -c1 -m10 -n 1000 "https://127.0.0.1:$port/x" >/dev/null 2>&1
  callgrind_control -z "$pid" >/dev/null 2>&1
  ok=$(h2load -c1 -m10 -n "$N" "https://127.0.0.1:$port/x" 2>&1 | awk '/^requests:/ { print $8 }')
  callgrind_control -d "$pid" >/dev/null 2>&1
  dump=$(ls -1 "$WORK/callgrind.$pid".* | sort | tail -1)
  total=$(grep -E '^(summary|totals):' "$dump" | head -1 | awk '{print $2}')
  [ -n "$OUT" ] && mkdir -p "$OUT" && cp "$dump" "$OUT/$proxy.callgrind"
  printf "%-10s  %s of %s succeeded  %s instructions  %s per request\n" \
    "$proxy" "$ok" "$N" "$total" "$(( total / N ))"
done
