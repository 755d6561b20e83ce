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
#
# LOG_DIR (default: a scratch directory under /tmp) holds the logs; it must be on local disk
# for the file variants to mean what they say. Prints one line per run, then the mean rps of
# each variant and its ratio to the same build with the log off, and how many access lines
# each log file holds.
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

TARGETS=()   # name:port
for entry in $SWITCHYARDS; do
  build=${entry%%=*}; bin=${entry#*=}
  for variant in off file stdout; do
    name="$build/$variant"
    port=$(free_port); admin=$(free_port)
    file="$LOG_DIR/${build}-access.log"; out="$LOG_DIR/${build}-${variant}-stdout.log"
    rm -f "$file" "$out"
    router_config "$port" "$admin" "$B1" "$B2" \
      | SECTION=$(log_section "$variant" "$file") \
        awk '$0 == "access = false" { print ENVIRON["SECTION"]; next } { print }' \
      >"$WORK/$build-$variant.toml"
    "$bin" serve --config "$WORK/$build-$variant.toml" >"$out" 2>&1 & PIDS+=($!)
    TARGETS+=("$name:$port")
    wait_port "$port"
  done
done

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  cores: $(nproc)  logs in: $LOG_DIR ($(df -h --output=source,fstype "$LOG_DIR" | tail -1 | tr -s ' '))"
echo "switchyard-load http -c$CONNS --duration ${SECS}s, one router worker, $ROUNDS interleaved rounds"
declare -A SUM
for round in $(seq 1 "$ROUNDS"); do
  for i in "${!TARGETS[@]}"; do
    t=${TARGETS[$(( (i + round - 1) % ${#TARGETS[@]} ))]}
    name=${t%%:*}; port=${t#*:}
    "$BIN/switchyard-load" http "http://127.0.0.1:$port/api/x" -c $CONNS --duration "${SECS}s" \
      --timeout 10s >"$WORK/load.txt" 2>&1
    rps=$(grep -m1 -oE '[0-9]+ answered/s' "$WORK/load.txt" | cut -d' ' -f1)
    printf "round %s  %-24s %8s rps  %s\n" "$round" "$name" "$rps" \
      "$(grep -m1 -E 'errors' "$WORK/load.txt" | tr -s ' ' || true)"
    SUM[$name]=$(( ${SUM[$name]:-0} + rps ))
  done
done

echo "--- mean rps, and the ratio to the same build with the access log off"
for entry in $SWITCHYARDS; do
  build=${entry%%=*}
  off=$(( SUM[$build/off] / ROUNDS ))
  for variant in off file stdout; do
    mean=$(( SUM[$build/$variant] / ROUNDS ))
    printf "%-24s %8s rps  %s\n" "$build/$variant" "$mean" \
      "$(awk -v m="$mean" -v o="$off" 'BEGIN { printf "%.3f", m / o }')"
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
