#!/usr/bin/env bash
# A cross-check of `switchyard-load compare` with another generator (wrk): saturated
# throughput of Switchyard vs HAProxy (and NGINX when installed), one worker each, all adding
# X-Forwarded-For/-Proto and a generated X-Request-Id,
# two switchyard-backends behind them, keep-alive both sides, wrk -t1 -c50, interleaved rounds
# so machine drift hits every proxy alike. Traffic stays on 127.0.0.1; everything started here
# is stopped on exit.
#
#   load-tests/bench/compare-haproxy.sh [ROUNDS] [SECONDS]
#
# Needs: wrk and haproxy (apt-get install -y wrk haproxy), optionally nginx (nginx-light).
# Builds the release binaries first. Prints one line per run and a summary with ratios.
set -euo pipefail
ROUNDS=${1:-3}
SECS=${2:-8}
CONNS=50
cd "$(dirname "$0")/../.."
for tool in wrk haproxy; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y wrk haproxy" >&2; exit 1; }
done
source load-tests/bench/common.sh

B1=$(free_port); B2=$(free_port)
"$BIN/switchyard-backend" --listen 127.0.0.1:$B1 --id b1 & PIDS+=($!)
"$BIN/switchyard-backend" --listen 127.0.0.1:$B2 --id b2 & PIDS+=($!)
wait_port $B1; wait_port $B2

SY=$(free_port); SYA=$(free_port)
router_config "$SY" "$SYA" "$B1" "$B2" > "$WORK/switchyard.toml"
"$BIN/switchyard" serve --config "$WORK/switchyard.toml" >/dev/null & PIDS+=($!)

HA=$(free_port)
haproxy_http_config "$HA" "$B1" "$B2" > "$WORK/haproxy.cfg"
haproxy -f "$WORK/haproxy.cfg" -q & PIDS+=($!)

PROXIES=("switchyard:$SY" "haproxy:$HA")
if command -v nginx >/dev/null; then
  NG=$(free_port)
  cat > "$WORK/nginx.conf" <<CFG
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream be { server 127.0.0.1:$B1; server 127.0.0.1:$B2; keepalive 64; }
  server {
    listen 127.0.0.1:$NG;
    location / {
      proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Request-Id \$request_id;
      add_header X-Request-Id \$request_id always;
    }
  }
}
CFG
  nginx -c "$WORK/nginx.conf" -g 'daemon off;' & PIDS+=($!)
  PROXIES+=("nginx:$NG")
else
  echo "nginx not installed: skipping it (apt-get install -y nginx-light)"
fi
for p in "${PROXIES[@]}"; do wait_port "${p#*:}"; done
PROXIES=("direct:$B1" "${PROXIES[@]}")

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  cores: $(nproc)  wrk -t1 -c$CONNS -d${SECS}s, $ROUNDS interleaved rounds"
declare -A SUM
for round in $(seq 1 "$ROUNDS"); do
  for p in "${PROXIES[@]}"; do
    name=${p%%:*}; port=${p#*:}
    out=$(wrk -t1 -c$CONNS -d"${SECS}s" --latency "http://127.0.0.1:$port/api/x")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errs=$(grep -E "Non-2xx|Socket errors" <<<"$out" | tr '\n' ' ' || true)
    printf "round %s  %-10s %10s rps  p50 %-8s p99 %-8s %s\n" "$round" "$name" "$rps" "$p50" "$p99" "$errs"
    SUM[$name]=$(python3 -c "print(${SUM[$name]:-0} + $rps)")
  done
done
echo "--- mean rps and ratio to haproxy"
for p in "${PROXIES[@]}"; do
  name=${p%%:*}
  python3 -c "m=${SUM[$name]}/$ROUNDS; h=${SUM[haproxy]}/$ROUNDS; print(f'{\"$name\":<10} {m:10.0f} rps  {m/h:5.2f}x haproxy')"
done
