#!/usr/bin/env bash
# The deploy/ suite (deploy/tests, pytest): Kubernetes manifests rendered with kubectl kustomize
# and validated with kubernetes-validate; the Prometheus rules checked with promtool and
# against a live router's /metrics; the Compose file parsed; and, where a Docker engine runs,
# the image built from deploy/Dockerfile (target `prebuilt`, on a local Debian base made with
# debootstrap: no registry is needed), drained by `docker stop`, and the Compose stack brought
# up. Installs what it needs when missing; starts a Docker engine when none answers and stops
# it again afterwards. Docker tests skip, with the reason printed, only when no engine starts.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
started=$(date +%s)

need_apt=()
[ -x /usr/sbin/dockerd ] || need_apt+=(docker.io)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need_apt+=(debootstrap)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v kubectl >/dev/null || need_apt+=(kubernetes-client)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

venv="${SWITCHYARD_DEPLOY_VENV:-$HOME/.cache/switchyard/deploy-venv}"
if ! "$venv/bin/python" -c 'import pytest, yaml, kubernetes_validate, websockets, requests' 2>/dev/null; then
  echo "== creating the deploy test environment in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "pytest>=7" "pyyaml>=6" "kubernetes-validate>=1.30" "websockets>=13" "requests>=2.28"
fi

target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
[ -x "$target/debug/switchyard" ] || cargo build -q -p switchyard --bin switchyard
[ -x "$target/debug/switchyard-backend" ] || cargo build -q -p switchyard-load --bin switchyard-backend

# A Docker engine: the one running, or one started here (no bridge network: containers use
# --network host, so all traffic stays on loopback).
docker_cli=/usr/bin/docker
[ -x "$docker_cli" ] || docker_cli=$(command -v docker || echo docker)
ours=""
if ! "$docker_cli" info >/dev/null 2>&1 && [ -x /usr/sbin/dockerd ]; then
  echo "== starting a Docker engine (dockerd --bridge=none --iptables=false)"
  /usr/sbin/dockerd --bridge=none --iptables=false >"${TMPDIR:-/tmp}/switchyard-dockerd.log" 2>&1 &
  ours=$!
  for _ in $(seq 1 30); do "$docker_cli" info >/dev/null 2>&1 && break; sleep 1; done
  "$docker_cli" info >/dev/null 2>&1 \
    || echo "the Docker engine did not start (${TMPDIR:-/tmp}/switchyard-dockerd.log): Docker tests will skip"
fi
stop_ours() {
  if [ -n "$ours" ]; then kill "$ours" 2>/dev/null || true; wait "$ours" 2>/dev/null || true; fi
}
trap stop_ours EXIT

echo "== pytest (deploy/tests)"
DOCKER="$docker_cli" CARGO_TARGET_DIR="$target" "$venv/bin/python" -m pytest -q -rs deploy/tests
echo "deploy-tests.sh: took $(($(date +%s) - started)) s"
