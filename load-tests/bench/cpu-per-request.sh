#!/usr/bin/env bash
# CPU time per proxied request, from /proc/PID/stat (user + system ticks) over a fixed request
# count, and the closed-loop rate of that run: the router and HAProxy (one thread each) in front of the same two test backends, in
# alternating rounds. More Switchyard builds can run in the same rounds, named by
# SWITCHYARDS="name=PATH name=PATH" (default: this checkout's release build), e.g. a build of
# the commit before a change beside the one after it.
#
#   load-tests/bench/cpu-per-request.sh [N] [ROUNDS]     # defaults 200000 and 3
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/bench/common.sh
N=${1:-200000}
ROUNDS=${2:-3}
CONNS=50
SWITCHYARDS=${SWITCHYARDS:-"switchyard=$BIN/switchyard"}

B1=$(free_port); B2=$(free_port)
"$BIN/switchyard-backend" --listen 127.0.0.1:$B1 --id b1 >/dev/null 2>&1 & PIDS+=($!)
"$BIN/switchyard-backend" --listen 127.0.0.1:$B2 --id b2 >/dev/null 2>&1 & PIDS+=($!)
wait_port $B1; wait_port $B2

TARGETS=()   # name:port:pid
for entry in $SWITCHYARDS; do
  name=${entry%%=*}; bin=${entry#*=}
  port=$(free_port); admin=$(free_port)
  router_config "$port" "$admin" "$B1" "$B2" >"$WORK/$name.toml"
  "$bin" serve --config "$WORK/$name.toml" >/dev/null 2>&1 & PIDS+=($!)
  TARGETS+=("$name:$port:$!")
  wait_port "$port"
done
if command -v haproxy >/dev/null; then
  HA=$(free_port)
  haproxy_http_config "$HA" "$B1" "$B2" > "$WORK/haproxy.cfg"
  haproxy -f "$WORK/haproxy.cfg" -q & PIDS+=($!)
  TARGETS+=("haproxy:$HA:$!")
  wait_port "$HA"
else
  echo "haproxy is not installed (apt-get install -y haproxy): Switchyard builds only" >&2
fi

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
declare -A TOTAL RPS
for round in $(seq 1 "$ROUNDS"); do
  for i in "${!TARGETS[@]}"; do
    t=${TARGETS[$(( (i + round - 1) % ${#TARGETS[@]} ))]}
    name=${t%%:*}; rest=${t#*:}; port=${rest%%:*}; pid=${rest#*:}
    before=$(ticks "$pid")
    "$BIN/switchyard-load" http "http://127.0.0.1:$port/api/x" -c $CONNS --requests "$N" \
      --duration 120s --timeout 10s >"$WORK/load.txt" 2>&1
    after=$(ticks "$pid")
    us=$(awk -v a="$after" -v b="$before" -v n="$N" -v t="$TCK" 'BEGIN { printf "%.2f", (a - b) / t / n * 1e6 }')
    rps=$(grep -m1 -oE '[0-9]+ answered/s' "$WORK/load.txt" | cut -d' ' -f1)
    echo "round $round $name: $us µs CPU per request, $rps rps closed loop ($N requests;$(grep -m1 -E 'errors' "$WORK/load.txt" | tr -s ' '))"
    RPS[$name]=$(( ${RPS[$name]:-0} + rps ))
    TOTAL[$name]=$(awk -v x="${TOTAL[$name]:-0}" -v y="$us" 'BEGIN { print x + y }')
  done
done
for t in "${TARGETS[@]}"; do
  name=${t%%:*}
  echo "mean $name: $(awk -v x="${TOTAL[$name]}" -v r="$ROUNDS" 'BEGIN { printf "%.2f", x / r }') µs CPU per request, $(( RPS[$name] / ROUNDS )) rps"
done
