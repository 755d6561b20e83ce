#!/usr/bin/env bash
# User-space instructions per echoed WebSocket message, the tight way: the proxy (Switchyard,
# release build, one worker, no access log; or HAProxy, nbthread 1) runs under valgrind's
# callgrind in front of three switchyard-backends on /ws/echo, configured as in
# ws-sessions.sh. `switchyard-load ws` opens SESSIONS sessions and each sends a 128-byte
# message every SESSIONS/RATE s and waits for its echo. Each echo is TWO relayed messages
# (client -> backend and backend -> client); the figure printed is per echo (and half of it
# per relayed message).
#
# The load tool's sessions start messaging as soon as they open, so a window zeroed once all
# sessions are open cannot hold exactly the messages the tool reports as echoed. So two
# measured runs go through the same proxy process after a warm-up run, each opening SESSIONS
# fresh sessions: run A holds them SHORT s, run B SHORT + SECONDS s. For each, the counters are
# zeroed just before the tool starts, dumped once every session is open (RAMP + SETTLE after
# the start; checked with ss: the handshakes and the first messages) and dumped again after the
# tool has exited (the held sessions' messages and the closes). Everything the runs share (the
# handshakes, the closes, the tool's start and exit) cancels in the difference, and every
# message the tool counts is inside the two dumps:
#     per echo = (instructions B - instructions A) / (echoed B - echoed A)
# the counts being the load tool's `messages_echoed`. Both runs must lose nothing (sent =
# echoed, no drops, no connect failures) or the script fails. Leaves OUT.N (the dumps, named
# at the end; the "held" dumps have no handshakes in them) for
# `callgrind_annotate --inclusive=yes`.
#
#   load-tests/bench/callgrind-ws.sh [SESSIONS] [RATE] [SECONDS] [OUT]
#       defaults 200 sessions, 300 messages/s, 20 s, /tmp/callgrind-ws.<proxy>.<pid>
#   PROXY=haproxy load-tests/bench/callgrind-ws.sh ...     # HAProxy 2.6, ws-sessions.sh's config
#   SWITCHYARD_BIN=/path/to/switchyard ...                 # another router build
#   RAMP (sessions opened per s, default 200), SETTLE (s after the ramp before the first dump,
#   default 3), SHORT (run A's hold in s, default 5).
# Valgrind slows the proxy ~50x: keep RATE modest (the held-phase RTT percentiles are printed;
# if they reach seconds or messages go missing, lower RATE). Traffic stays on 127.0.0.1;
# everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/bench/common.sh
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
SESSIONS=${1:-200}
RATE=${2:-300}
SECONDS_B=${3:-20}
PROXY=${PROXY:-switchyard}
OUT=${4:-/tmp/callgrind-ws.$PROXY.$$}
RAMP=${RAMP:-200}
SETTLE=${SETTLE:-3}
SHORT=${SHORT:-5}
INTERVAL_MS=$(( SESSIONS * 1000 / RATE ))
[ "$PROXY" = haproxy ] && { command -v haproxy >/dev/null || { echo "missing haproxy" >&2; exit 1; }; }

start_backends 3

port=$(free_port); admin=$(free_port)
case $PROXY in
  haproxy)
    haproxy_ws_config "$port" "${B[@]}" > "$WORK/haproxy.cfg"
    proxy=(haproxy -db -f "$WORK/haproxy.cfg") ;;
  *)
    router_ws_config "$port" "$admin" "${B[@]}" > "$WORK/router.toml"
    proxy=("${SWITCHYARD_BIN:-$BIN/switchyard}" serve --config "$WORK/router.toml") ;;
esac
rm -f "$OUT" "$OUT".[0-9]*
valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$OUT" \
  "${proxy[@]}" >/dev/null 2>"$WORK/valgrind.log" &
vg=$!
PIDS+=("$vg")
wait_port "$port"

# Client connections the proxy holds open on its listening port.
held() { ss -Htn state established "( sport = :$port )" | wc -l; }

# Dumps the counters and prints the new dump's file name.
dump() {
  local before; before=$(ls -1 "$OUT".[0-9]* 2>/dev/null || true)
  callgrind_control -d "$vg" >/dev/null 2>&1
  comm -13 <(echo "$before" | sort) <(ls -1 "$OUT".[0-9]* | sort) | tail -1
}

# One load run holding the sessions $1 s; with "measure", zeroes the counters before it,
# dumps them RAMP + SETTLE after its start (all sessions open) and again after it exits, and
# prints "echoed open-dump held-dump".
run() {
  local hold=$1 mode=$2 json="$WORK/load.$RANDOM.json" t0 zero_at d_open="" d_held
  [ "$mode" = measure ] && callgrind_control -z "$vg" >/dev/null 2>&1
  t0=$(date +%s.%N)
  "$BIN/switchyard-load" ws "ws://127.0.0.1:$port/ws/echo" -n "$SESSIONS" --ramp "$RAMP" \
    --interval "${INTERVAL_MS}ms" -d "${hold}s" --json > "$json" &
  local load=$!
  if [ "$mode" = measure ]; then
    zero_at=$(python3 -c "print($t0 + $SESSIONS / $RAMP + $SETTLE)")
    sleep "$(python3 -c "import time; print(max(0, $zero_at - time.time()))")"
    local h; h=$(held)
    [ "$h" -ge "$SESSIONS" ] || { echo "only $h of $SESSIONS sessions open at the first dump (raise SETTLE or lower RAMP)" >&2; exit 1; }
    d_open=$(dump)
  fi
  wait "$load"
  python3 - "$json" "$SESSIONS" >&2 <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
h = r["held_rtt_us"]
print(f"  load: sessions opened {r['sessions_opened']} held {r['sessions_held']} connect failures "
      f"{r['connect_failures']} drops {r['drops']}; messages sent {r['messages_sent']} echoed "
      f"{r['messages_echoed']}; held rtt p50 {h['p50']/1000:.1f} ms p99 {h['p99']/1000:.1f} ms max {h['max']/1000:.1f} ms")
ok = (r["sessions_opened"] == n and r["sessions_held"] == n and r["connect_failures"] == 0
      and r["drops"] == 0 and r["messages_sent"] == r["messages_echoed"])
sys.exit(0 if ok else 1)
PY
  [ "$mode" = measure ] || return 0
  d_held=$(dump)
  echo "$(python3 -c "import json; print(json.load(open('$json'))['messages_echoed'])") $d_open $d_held"
}

total() { grep -E '^(summary|totals):' "$1" | head -1 | awk '{print $2}'; }

echo "# $PROXY under callgrind: $SESSIONS sessions opened at $RAMP/s, one 128-byte message each per ${INTERVAL_MS} ms (~$RATE/s); run A holds ${SHORT} s, run B $((SHORT + SECONDS_B)) s" >&2
echo "warm-up run (not measured)" >&2
run 2 warmup
echo "run A" >&2
run "$SHORT" measure > "$WORK/a"; read -r nA oA hA < "$WORK/a"
echo "run B" >&2
run "$((SHORT + SECONDS_B))" measure > "$WORK/b"; read -r nB oB hB < "$WORK/b"
kill -TERM "$vg"; wait "$vg" || true
for r in A B; do
  o=o$r h=h$r n=n$r
  echo "run $r: $(total "${!o}") instructions to all open ($(basename "${!o}")) + $(total "${!h}") held ($(basename "${!h}")), ${!n} echoed"
done
python3 - "$(total "$oA")" "$(total "$hA")" "$nA" "$(total "$oB")" "$(total "$hB")" "$nB" "$PROXY" <<'PY'
import sys
oA, hA, nA, oB, hB, nB = map(int, sys.argv[1:7])
d, n = (oB + hB) - (oA + hA), nB - nA
print(f"{sys.argv[7]}: {d} instructions for {n} echoed messages (B - A): {d / n:.0f} per echo "
      f"(one message relayed each way), {d / n / 2:.0f} per relayed message")
PY
