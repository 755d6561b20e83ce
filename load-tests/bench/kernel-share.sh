#!/usr/bin/env bash
# Where a proxy's CPU goes between user space and the kernel, under the same load: the proxy
# (Switchyard, or HAProxy with PROXY=haproxy; one worker / thread) is sampled with
# `perf record -e cpu-clock` (no hardware counters needed) while the load runs, then the
# samples are split by where they landed: the share in the kernel, and the top kernel and
# user-space symbols. MODE `ws`: 3,000 WebSocket sessions echoing 3,000 messages/s through the
# proxy; `http`: closed-loop keep-alive HTTP (50 connections) with the HTTP benchmarks'
# configs. Samples are taken only once all sessions are open (ws) or after a warm-up (http).
# STAT=1 instead prints the proxy's context switches and CPU time over the window (`perf stat`).
# SYSCALLS=N instead counts the proxy's system calls (`strace -f -c`) over N HTTP requests
# (8 connections) after a warm-up: what a request costs in calls and wake-ups.
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

start_backends 3

# The WebSocket benchmarks' configs for ws; the HTTP benchmarks' (the same forwarding and
# request-id headers on both, round robin over two backends) for http.
port=$(free_port); admin=$(free_port)
case $PROXY-$MODE in
  haproxy-ws) haproxy_ws_config "$port" "${B[@]}" > "$WORK/haproxy.cfg" ;;
  haproxy-*) haproxy_http_config "$port" "${B[0]}" "${B[1]}" > "$WORK/haproxy.cfg" ;;
  *-ws) router_ws_config "$port" "$admin" "${B[@]}" > "$WORK/router.toml" ;;
  *) router_config "$port" "$admin" "${B[0]}" "${B[1]}" > "$WORK/router.toml" ;;
esac
case $PROXY in
  haproxy) haproxy -db -f "$WORK/haproxy.cfg" >/dev/null 2>&1 & ;;
  *) "${SWITCHYARD_BIN:-$BIN/switchyard}" serve --config "$WORK/router.toml" >/dev/null 2>&1 & ;;
esac
proxy=$!
PIDS+=("$proxy")
wait_port "$port"

if [ -n "${SYSCALLS:-}" ]; then
  command -v strace >/dev/null || { echo "strace is missing" >&2; exit 1; }
  "$BIN/switchyard-load" http "http://127.0.0.1:$port/x" -c 8 --requests 2000 >/dev/null 2>&1
  strace -f -c -p "$proxy" -o "$WORK/strace.txt" & tracer=$!
  sleep 1
  "$BIN/switchyard-load" http "http://127.0.0.1:$port/x" -c 8 --requests "$SYSCALLS" \
    --duration 300s 2>&1 | grep -E "requests|errors"
  kill -INT "$tracer"; wait "$tracer" 2>/dev/null || true
  # Context switches of every thread of the proxy over the same number of requests, untraced.
  switches() {
    cat /proc/"$proxy"/task/*/status | awk '/^voluntary_ctxt_switches/ {v+=$2} /^nonvoluntary_ctxt_switches/ {n+=$2} END {print v, n}'
  }
  read -r v0 n0 < <(switches)
  "$BIN/switchyard-load" http "http://127.0.0.1:$port/x" -c 8 --requests "$SYSCALLS" \
    --duration 300s >/dev/null 2>&1
  read -r v1 n1 < <(switches)
  awk -v v=$((v1 - v0)) -v n=$((n1 - n0)) -v r="$SYSCALLS" 'BEGIN {
    printf "context switches per request: %.3f voluntary, %.3f involuntary\n", v / r, n / r }'
  echo "$PROXY: system calls over $SYSCALLS requests (calls per request in the last column)"
  awk -v n="$SYSCALLS" '$1 ~ /^[0-9.]+$/ && NF >= 5 { printf "  %-16s %9d  %6.2f\n", $NF, $4, $4 / n }' \
    "$WORK/strace.txt" | sort -k2 -n -r | head -8
  exit 0
fi

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
if [ -n "${STAT:-}" ]; then
  # Context switches and CPU time of the proxy over the window instead of samples.
  perf stat -e context-switches,task-clock -p "$proxy" -- sleep "$SECONDS_SAMPLED" 2>&1 |
    grep -E "context-switches|task-clock"
  wait "$load" || true
  grep -E "requests|messages" "$WORK/load.log" | head -2
  exit 0
fi
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
