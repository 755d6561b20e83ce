#!/usr/bin/env bash
# Where a proxy's CPU goes between user space and the kernel, under the same load: the proxy
# (Switchyard, or HAProxy with PROXY=haproxy; one worker / thread) is sampled with
# `perf record -e cpu-clock` (no hardware counters needed) while the load runs, then the
# samples are split by where they landed: the share in the kernel, and the top kernel and
# user-space symbols. MODE `ws`: 3,000 WebSocket sessions echoing 3,000 messages/s through the
# proxy; `http`: closed-loop keep-alive HTTP (50 connections). Samples are taken only once all
# sessions are open (ws) or after a warm-up (http).
#
#   load-tests/bench/kernel-share.sh ws|http [SECONDS]       # default 10 s of samples
#   PROXY=haproxy load-tests/bench/kernel-share.sh ws
#
# Needs perf and haproxy. Traffic stays on 127.0.0.1; everything started is stopped on exit.
set -euo pipefail
MODE=${1:?usage: kernel-share.sh ws|http [SECONDS]}
SECONDS_SAMPLED=${2:-10}
PROXY=${PROXY:-switchyard}
cd "$(dirname "$0")/../.."
command -v perf >/dev/null || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 1; }
source load-tests/bench/common.sh

B=()
for i in 1 2 3; do
  p=$(free_port)
  "$BIN/switchyard-backend" --listen "127.0.0.1:$p" --id "b$i" >/dev/null 2>&1 & PIDS+=($!)
  B+=("$p")
done
for p in "${B[@]}"; do wait_port "$p"; done

port=$(free_port); admin=$(free_port)
case $PROXY in
  haproxy)
    haproxy_ws_config "$port" "${B[@]}" > "$WORK/haproxy.cfg"
    haproxy -db -f "$WORK/haproxy.cfg" >/dev/null 2>&1 & ;;
  *)
    router_ws_config "$port" "$admin" "${B[@]}" > "$WORK/router.toml"
    "${SWITCHYARD_BIN:-$BIN/switchyard}" serve --config "$WORK/router.toml" >/dev/null 2>&1 & ;;
esac
proxy=$!
PIDS+=("$proxy")
wait_port "$port"

case $MODE in
  ws)
    # 3,000 sessions, one message a second each; sampling starts once all are open (2 s ramp).
    "$BIN/switchyard-load" ws "ws://127.0.0.1:$port/ws/echo" -n 3000 --ramp 1500 \
      --interval 1s -d "$((SECONDS_SAMPLED + 4))s" >"$WORK/load.log" 2>&1 &
    load=$!
    sleep 4 ;;
  http)
    "$BIN/switchyard-load" http "http://127.0.0.1:$port/x" -c 50 \
      -d "$((SECONDS_SAMPLED + 4))s" >"$WORK/load.log" 2>&1 &
    load=$!
    sleep 2 ;;
  *) echo "MODE is ws or http" >&2; exit 1 ;;
esac
PIDS+=("$load")
perf record -q -e cpu-clock -F 2000 -p "$proxy" -o "$WORK/perf.data" -- sleep "$SECONDS_SAMPLED" 2>/dev/null
wait "$load" || true
grep -E "requests|messages|sessions" "$WORK/load.log" | head -3

report() { perf report -q -i "$WORK/perf.data" --stdio --no-children "$@" 2>/dev/null; }
total=$(report --sort dso | awk '{s+=$1} END {print s}')
kernel=$(report --sort dso | awk '/\[kernel/ {s+=$1} END {print s+0}')
echo "$PROXY $MODE: ${kernel}% of ${total}% of samples in the kernel"
echo "top kernel symbols:"
report --sort sym | grep '\[k\]' | head -8
echo "top user-space symbols:"
report --sort sym | grep '\[\.\]' | head -8
