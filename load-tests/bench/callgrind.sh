#!/usr/bin/env bash
# User-space instructions per proxied request, counted by valgrind's callgrind: repeatable on a
# shared, noisy machine where wall-clock figures are not. The router (release build, one
# worker, no access log, no health checks) runs under callgrind twice for the same wall time
# T: once idle, once serving N keep-alive GETs through it to one test backend. Instructions
# per request = (total with requests − total idle) / N; the idle run takes out start-up,
# shutdown and timers.
#
#   load-tests/bench/callgrind.sh [N] [T_SECONDS]     # defaults 3000 and 60
#   SWITCHYARD_BIN=/path/to/switchyard load-tests/bench/callgrind.sh   # another build (before/after)
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/bench/common.sh
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
N=${1:-3000}
T=${2:-60}

backend_port=$(free_port)
"$BIN/switchyard-backend" --listen "127.0.0.1:$backend_port" --id b1 --threads 1 >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$backend_port"

# One run under callgrind for T seconds, with $1 requests sent once it listens; prints the
# total instruction count.
run() {
  local requests=$1 port admin out config
  port=$(free_port); admin=$(free_port)
  config="$WORK/router-$requests.toml"; out="$WORK/callgrind-$requests.out"
  router_config "$port" "$admin" "$backend_port" >"$config"
  sed -i 's/^workers = 1$/workers = 1\nshutdown_timeout = "1s"/' "$config"
  local started=$SECONDS
  valgrind --tool=callgrind --callgrind-out-file="$out" \
    "${SWITCHYARD_BIN:-$BIN/switchyard}" serve --config "$config" >/dev/null 2>"$WORK/valgrind-$requests.log" &
  local pid=$!
  PIDS+=("$pid")
  wait_port "$port"
  if [ "$requests" -gt 0 ]; then
    "$BIN/switchyard-load" http "http://127.0.0.1:$port/api/x" -c 8 --requests "$requests" \
      --duration "${T}s" --timeout 30s >"$WORK/load-$requests.txt" 2>&1
    grep -E "requests|errors" "$WORK/load-$requests.txt" | head -3 >&2
  fi
  local left=$((T - (SECONDS - started)))
  [ "$left" -gt 0 ] && sleep "$left"
  kill -TERM "$pid"
  wait "$pid" || true
  grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}'
}

idle=$(run 0)
busy=$(run "$N")
echo "callgrind: idle ${T}s: $idle instructions; ${N} requests in ${T}s: $busy instructions"
echo "callgrind: $(( (busy - idle) / N )) instructions per request (N=$N, T=${T}s)"
