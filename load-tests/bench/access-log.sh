#!/usr/bin/env bash
# What the access log costs: saturated throughput of one Switchyard worker with the access log
# off, on to a file on local disk (`[log] access_path`), and on to stdout redirected to a file,
# all in the same run, in interleaved rounds so machine drift hits every variant alike. More
# Switchyard builds run in the same rounds, named by SWITCHYARDS="name=PATH name=PATH"
# (default: this checkout's release build), e.g. the commit before a change beside the one
# after it. Two switchyard-backends behind each router, keep-alive both sides; traffic stays
# on 127.0.0.1; everything started here is stopped on exit.
#
#   load-tests/bench/access-log.sh [ROUNDS] [SECONDS]     # defaults 5 and 8
#   CALLGRIND="N T" load-tests/bench/access-log.sh 0      # instructions only (below)
#
# LOG_DIR (default: a scratch directory under /tmp) holds the logs; it must be on local disk
# for the file variants to mean what they say. Prints one line per run (rps, and the router's
# CPU time per request), then each variant's means and their ratios to the same build with the
# log off, and how many access lines each log holds.
#
# With CALLGRIND="N T" it also counts user-space instructions (valgrind's callgrind, repeatable
# where rates are not): each build and variant runs alone under callgrind for T seconds while
# N keep-alive GETs go through it (8 connections); what a variant adds over the same build with
# the log off, divided by N, is what the access log costs per request (its writer thread and
# timer included). ROUNDS=0 skips the rate runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/bench/common.sh
BIN=${CARGO_TARGET_DIR:-target}/release
ROUNDS=${1:-5}
SECS=${2:-8}
CONNS=50
SWITCHYARDS=${SWITCHYARDS:-"switchyard=$BIN/switchyard"}
LOG_DIR=${LOG_DIR:-$WORK}
mkdir -p "$LOG_DIR"

B1=$(free_port); B2=$(free_port)
"$BIN/switchyard-backend" --listen 127.0.0.1:$B1 --id b1 >/dev/null 2>&1 & PIDS+=($!)
"$BIN/switchyard-backend" --listen 127.0.0.1:$B2 --id b2 >/dev/null 2>&1 & PIDS+=($!)
wait_port $B1; wait_port $B2

# The `[log]` section of each variant, after router_head's `access = false`.
log_section() {
  case $1 in
    off) echo "access = false" ;;
    file) printf 'access = true\naccess_path = "%s"\n' "$2" ;;
    stdout) echo "access = true" ;;
  esac
}

TARGETS=()   # name:port:pid
for entry in $SWITCHYARDS; do
  build=${entry%%=*}; bin=${entry#*=}
  file="$LOG_DIR/${build}-access.log"
  rm -f "$file"
  for variant in off file stdout; do
    name="$build/$variant"
    port=$(free_port); admin=$(free_port)
    out="$LOG_DIR/${build}-${variant}-stdout.log"
    rm -f "$out"
    router_config "$port" "$admin" "$B1" "$B2" \
      | SECTION=$(log_section "$variant" "$file") \
        awk '$0 == "access = false" { print ENVIRON["SECTION"]; next } { print }' \
      >"$WORK/$build-$variant.toml"
    "$bin" serve --config "$WORK/$build-$variant.toml" >"$out" 2>&1 & PIDS+=($!)
    TARGETS+=("$name:$port:$!")
    wait_port "$port"
  done
done

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  cores: $(nproc)  logs in: $LOG_DIR ($(df -h --output=source,fstype "$LOG_DIR" | tail -1 | tr -s ' '))"
echo "switchyard-load http -c$CONNS --duration ${SECS}s, one router worker, $ROUNDS interleaved rounds"
# The router's CPU time (user + system ticks) from /proc: per request, it is less disturbed
# than the rate by whatever else the machine runs.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
declare -A SUM CPU
for round in $(seq 1 "$ROUNDS"); do
  [ "$ROUNDS" -gt 0 ] || break
  for i in "${!TARGETS[@]}"; do
    t=${TARGETS[$(( (i + round - 1) % ${#TARGETS[@]} ))]}
    name=${t%%:*}; rest=${t#*:}; port=${rest%%:*}; pid=${rest#*:}
    before=$(ticks "$pid")
    "$BIN/switchyard-load" http "http://127.0.0.1:$port/api/x" -c $CONNS --duration "${SECS}s" \
      --timeout 10s >"$WORK/load.txt" 2>&1
    after=$(ticks "$pid")
    rps=$(grep -m1 -oE '[0-9]+ answered/s' "$WORK/load.txt" | cut -d' ' -f1)
    n=$(grep -m1 -oE 'requests +[0-9]+' "$WORK/load.txt" | tr -s ' ' | cut -d' ' -f2)
    us=$(awk -v a="$after" -v b="$before" -v n="$n" -v t="$TCK" 'BEGIN { printf "%.2f", (a - b) / t / n * 1e6 }')
    printf "round %s  %-24s %8s rps  %6s µs CPU per request  %s\n" "$round" "$name" "$rps" "$us" \
      "$(grep -m1 -E 'errors' "$WORK/load.txt" | tr -s ' ' || true)"
    SUM[$name]=$(( ${SUM[$name]:-0} + rps ))
    CPU[$name]=$(awk -v x="${CPU[$name]:-0}" -v y="$us" 'BEGIN { print x + y }')
  done
done

[ "$ROUNDS" -gt 0 ] && {
echo "--- means, and ratios to the same build with the access log off (rps: on/off; CPU: on/off)"
for entry in $SWITCHYARDS; do
  build=${entry%%=*}
  off=$(( SUM[$build/off] / ROUNDS ))
  off_cpu=$(awk -v x="${CPU[$build/off]}" -v r="$ROUNDS" 'BEGIN { print x / r }')
  for variant in off file stdout; do
    mean=$(( SUM[$build/$variant] / ROUNDS ))
    cpu=$(awk -v x="${CPU[$build/$variant]}" -v r="$ROUNDS" 'BEGIN { print x / r }')
    printf "%-24s %8s rps  %s   %6.2f µs CPU per request  %s\n" "$build/$variant" "$mean" \
      "$(awk -v m="$mean" -v o="$off" 'BEGIN { printf "%.3f", m / o }')" "$cpu" \
      "$(awk -v m="$cpu" -v o="$off_cpu" 'BEGIN { printf "%.3f", m / o }')"
  done
done
# Let the writers flush (at most 100 ms after the last line), then count what reached the logs.
sleep 1
echo "--- access lines written"
for entry in $SWITCHYARDS; do
  build=${entry%%=*}
  echo "$build: file $(grep -c 'switchyard::access' "$LOG_DIR/${build}-access.log" || true)," \
    "stdout $(grep -c 'switchyard::access' "$LOG_DIR/${build}-stdout-stdout.log" || true)"
done
}

[ -n "${CALLGRIND:-}" ] || exit 0
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
read -r N T <<<"$CALLGRIND"
# One router under callgrind for T seconds with N requests; prints its total instructions.
counted() {
  local bin=$1 variant=$2 tag=$3 port admin
  port=$(free_port); admin=$(free_port)
  router_config "$port" "$admin" "$B1" "$B2" \
    | SECTION=$(log_section "$variant" "$LOG_DIR/$tag-callgrind-access.log") \
      awk '$0 == "access = false" { print ENVIRON["SECTION"]; next } { print }' \
    | sed 's/^workers = 1$/workers = 1\nshutdown_timeout = "1s"\nshutdown_delay = "0s"/' \
    >"$WORK/$tag-callgrind.toml"
  local started=$SECONDS
  valgrind --tool=callgrind --callgrind-out-file="$WORK/$tag.callgrind" \
    "$bin" serve --config "$WORK/$tag-callgrind.toml" >"$LOG_DIR/$tag-callgrind-stdout.log" \
    2>"$WORK/$tag-valgrind.log" &
  local pid=$!
  PIDS+=("$pid")
  wait_port "$port"
  "$BIN/switchyard-load" http "http://127.0.0.1:$port/api/x" -c 8 --requests "$N" \
    --duration "${T}s" --timeout 30s >"$WORK/$tag-load.txt" 2>&1
  local left=$((T - (SECONDS - started)))
  [ "$left" -gt 0 ] && sleep "$left"
  kill -TERM "$pid"
  wait "$pid" || true
  grep -E '^(summary|totals):' "$WORK/$tag.callgrind" | head -1 | awk '{print $2}'
}
echo "--- callgrind: $N requests in ${T}s per run; instructions, and per request over the log off"
for entry in $SWITCHYARDS; do
  build=${entry%%=*}; bin=${entry#*=}
  declare -A TOTAL=()
  for variant in off file stdout; do
    TOTAL[$variant]=$(counted "$bin" "$variant" "$build-$variant")
    extra=$(( (TOTAL[$variant] - TOTAL[off]) / N ))
    printf "%-24s %14s instructions  %+7d per request  (%s)\n" "$build/$variant" \
      "${TOTAL[$variant]}" "$extra" "$(grep -m1 -oE 'requests +[0-9]+' "$WORK/$build-$variant-load.txt" | tr -s ' ')"
  done
done
