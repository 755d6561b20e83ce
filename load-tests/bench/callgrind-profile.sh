#!/usr/bin/env bash
# User-space instructions per proxied request, the tight way: the router (release build, one
# worker, no access log) runs under valgrind's callgrind; after 1,000 warm-up requests the
# counters are zeroed, then N keep-alive requests (8 connections) go through it and the
# counters are dumped. Per request = dump total / N, with no start-up, idle timers or shutdown
# in it. Leaves the profile for `callgrind_annotate --inclusive=yes OUT`.
#
#   load-tests/bench/callgrind-profile.sh [N] [OUT]     # defaults 5000 and callgrind.profile
#   SWITCHYARD_BIN=/path/to/switchyard load-tests/bench/callgrind-profile.sh   # another build
#   PROXY=haproxy load-tests/bench/callgrind-profile.sh  # HAProxy (nbthread 1, the same work
#                                                        # per request: common.sh's config)
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/bench/common.sh
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
N=${1:-5000}
OUT=${2:-callgrind.profile}

backend=$(free_port); port=$(free_port); admin=$(free_port)
"$BIN/switchyard-backend" --listen "127.0.0.1:$backend" --id b1 --threads 1 >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$backend"
case ${PROXY:-switchyard} in
  haproxy)
    haproxy_http_config "$port" "$backend" "$backend" >"$WORK/haproxy.cfg"
    proxy=(haproxy -db -f "$WORK/haproxy.cfg") ;;
  *)
    router_config "$port" "$admin" "$backend" >"$WORK/router.toml"
    proxy=("${SWITCHYARD_BIN:-$BIN/switchyard}" serve --config "$WORK/router.toml") ;;
esac
valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$OUT" \
  "${proxy[@]}" >/dev/null 2>"$WORK/valgrind.log" &
router=$!
PIDS+=("$router")
wait_port "$port"
load() { "$BIN/switchyard-load" http "http://127.0.0.1:$port/api/x" -c 8 --requests "$1" --duration 120s --timeout 30s; }
load 1000 >/dev/null 2>&1
callgrind_control -z "$router" >/dev/null 2>&1
load "$N" 2>&1 | grep -E "requests|errors" | head -3 >&2
callgrind_control -d "$router" >/dev/null 2>&1
kill -TERM "$router"; wait "$router" || true
# The dump after zeroing is the second part of the profile (OUT.1 or OUT.2, by valgrind's
# numbering): its summary line is the N requests' total.
dump=$(ls -1 "$OUT".* 2>/dev/null | sort | tail -1)
total=$(grep -E '^(summary|totals):' "$dump" | head -1 | awk '{print $2}')
echo "callgrind profile: $total instructions for $N requests: $(( total / N )) per request ($dump)"
