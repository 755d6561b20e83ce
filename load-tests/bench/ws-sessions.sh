#!/usr/bin/env bash
# WebSocket sessions at scale: Switchyard vs HAProxy holding N concurrent proxied sessions
# (default 9,000, each messaging every N/RATE seconds so the total is RATE messages/s), one
# worker/thread each, in front of the same three switchyard-backends, in interleaved rounds in
# fresh proxy processes (resident memory per session is only honest in a fresh process).
# Traffic stays on 127.0.0.1; everything started here is stopped on exit.
#
#   load-tests/bench/ws-sessions.sh [SESSIONS] [RATE] [ROUNDS] [HOLD]
#
# RAMP (default 1500) is how many sessions open per second. On a busy machine handshakes pile
# up at 1,500/s, and the memory they hold for a moment stays in the proxy's resident size;
# a slower ramp measures what an idle session itself holds.
# A proxied session holds two sockets in the proxy; with the 20,000 open-file limit here one
# proxy process fits ~9,900 sessions. Needs haproxy (apt-get install -y haproxy). Builds the
# release binaries first and prints `switchyard-load ws` reports.
#
# SWITCHYARDS="name=PATH name=PATH" (default: this checkout's release build) runs each of those
# router binaries in every round too, e.g. a build from before a change beside the one after.
set -euo pipefail
SESSIONS=${1:-9000}
RATE=${2:-5000}
ROUNDS=${3:-2}
HOLD=${4:-20s}
RAMP=${RAMP:-1500}
cd "$(dirname "$0")/../.."
command -v haproxy >/dev/null || { echo "missing haproxy: apt-get install -y haproxy" >&2; exit 1; }
source load-tests/bench/common.sh
# Interval between one session's messages for RATE messages/s in total, in ms.
INTERVAL_MS=$(( SESSIONS * 1000 / RATE ))

start_backends 3

SWITCHYARDS=${SWITCHYARDS:-"switchyard=$BIN/switchyard"}

# Starts the router binary $1.
start_switchyard() {
  local bin=$1
  SY=$(free_port); local admin; admin=$(free_port)
  router_ws_config "$SY" "$admin" "${B[@]}" > "$WORK/switchyard.toml"
  "$bin" serve --config "$WORK/switchyard.toml" >/dev/null 2>"$WORK/switchyard.log" &
  PROXY_PID=$!; PIDS+=($PROXY_PID); PROXY_PORT=$SY
  wait_port "$SY"
}

start_haproxy() {
  local port; port=$(free_port)
  haproxy_ws_config "$port" "${B[@]}" > "$WORK/haproxy.cfg"
  haproxy -f "$WORK/haproxy.cfg" -db >/dev/null 2>&1 &
  PROXY_PID=$!; PIDS+=($PROXY_PID); PROXY_PORT=$port
  wait_port "$port"
}

# CPU seconds (user + system) the proxy has used so far.
cpu_seconds() { awk -v tck="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / tck }' "/proc/$1/stat"; }

stop_proxy() { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; }

echo "# $SESSIONS sessions opened at $RAMP/s, one message each per ${INTERVAL_MS} ms (~$RATE messages/s), held $HOLD; $(date -u +%F)"
for round in $(seq 1 "$ROUNDS"); do
  for proxy in haproxy $SWITCHYARDS; do
    case $proxy in
      haproxy) start_haproxy ;;
      *) start_switchyard "${proxy#*=}"; proxy=${proxy%%=*} ;;
    esac
    echo "## round $round: $proxy"
    "$BIN/switchyard-load" ws "ws://127.0.0.1:$PROXY_PORT/ws/echo" -n "$SESSIONS" --ramp "$RAMP" \
      --interval "${INTERVAL_MS}ms" -d "$HOLD" --pid "$PROXY_PID"
    echo "  proxy cpu  $(cpu_seconds "$PROXY_PID") s over the whole run"
    stop_proxy
  done
done
