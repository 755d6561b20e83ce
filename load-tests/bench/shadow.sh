#!/usr/bin/env bash
# What shadow traffic costs the primary: one router (one worker) with four routes to the same
# two test backends — without a shadow, and mirroring every request to a healthy shadow (a
# third test backend), to one that hangs (a socket that is listened on and never accepted),
# and to one that answers 500 at once (HAProxy's `http-request return`) — each driven at a
# fixed rate, in interleaved rounds, p50/p99 of the primary's answers as the client sees them.
# Prints one line per route and round, then the router's shadow counters.
#
#   load-tests/bench/shadow.sh [RATE] [SECONDS] [ROUNDS]     # defaults 2000, 8, 3
#
# Traffic stays on 127.0.0.1; everything started here is stopped on exit. Needs haproxy.
set -euo pipefail
RATE=${1:-2000}
SECONDS_EACH=${2:-8}
ROUNDS=${3:-3}
cd "$(dirname "$0")/../.."
command -v haproxy >/dev/null || { echo "missing haproxy: apt-get install -y haproxy" >&2; exit 1; }
source load-tests/bench/common.sh

b1=$(free_port); b2=$(free_port); healthy=$(free_port); hanging=$(free_port); failing=$(free_port)
for pair in "$b1 b1" "$b2 b2" "$healthy s-ok"; do
  set -- $pair
  "$BIN/switchyard-backend" --listen "127.0.0.1:$1" --id "$2" >/dev/null 2>&1 & PIDS+=($!)
done
# Listened on, never accepted: connects complete into the backlog, nothing ever answers.
python3 -c "import socket, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', $hanging)); s.listen(4096); time.sleep(3600)" & PIDS+=($!)
cat >"$WORK/failing.cfg" <<CFG
global
  nbthread 1
defaults
  mode http
  timeout client 30s
  timeout connect 5s
  timeout server 30s
frontend failing
  bind 127.0.0.1:$failing
  http-request return status 500
CFG
haproxy -db -f "$WORK/failing.cfg" >/dev/null 2>&1 & PIDS+=($!)
for port in "$b1" "$b2" "$healthy" "$hanging" "$failing"; do wait_port "$port"; done

port=$(free_port); admin=$(free_port)
{
  router_head "$port" "$admin"
  for shadow in none ok hang fail; do
    echo "[[routes]]"
    echo "id = \"$shadow\""
    echo "path_prefix = \"/$shadow\""
    echo "pool = \"main\""
    echo "retries = 0"
    case $shadow in
      none) ;;
      *) echo "shadow = { pool = \"shadow-$shadow\", timeout = \"1s\", max_concurrent = 100 }" ;;
    esac
  done
  echo "[[pools]]"
  echo "id = \"main\""
  echo "health = { kind = \"none\" }"
  echo "backends = [ { id = \"b1\", address = \"127.0.0.1:$b1\" }, { id = \"b2\", address = \"127.0.0.1:$b2\" } ]"
  for pair in "ok $healthy" "hang $hanging" "fail $failing"; do
    set -- $pair
    echo "[[pools]]"
    echo "id = \"shadow-$1\""
    echo "health = { kind = \"none\" }"
    echo "backends = [ { id = \"s-$1\", address = \"127.0.0.1:$2\" } ]"
  done
} >"$WORK/router.toml"
"$BIN/switchyard" serve --config "$WORK/router.toml" >/dev/null 2>"$WORK/router.log" & PIDS+=($!)
wait_port "$port"

echo "# shadow cost: ${RATE} rps for ${SECONDS_EACH} s per route and round, ${ROUNDS} rounds; $(date +%F)"
for round in $(seq 1 "$ROUNDS"); do
  for shadow in none ok hang fail; do
    "$BIN/switchyard-load" http "http://127.0.0.1:$port/$shadow/x" --rate "$RATE" -c 50 \
      -d "${SECONDS_EACH}s" --json 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin); l = r["latency_us"]
n = r["requests"]; bad = n - r["status"]["2xx"]
p50, p99, p999 = l["p50"] / 1000, l["p99"] / 1000, l["p999"] / 1000
print(f"round {sys.argv[1]}  shadow {sys.argv[2]:<5} requests {n:>6}  not 2xx {bad}  p50 {p50:.3f} ms  p99 {p99:.3f} ms  p99.9 {p999:.3f} ms")
' "$round" "$shadow"
  done
done
echo "# the router's shadow counters"
curl -s "http://127.0.0.1:$admin/metrics" | grep -E '^switchyard_shadow_requests_total' || true
