#!/usr/bin/env bash
# The Python binding (bindings/python, docs/BINDINGS.md): a virtual environment kept between runs
# (maturin and pytest installed when missing), the module built into it with `maturin develop`,
# then pytest against live routers started by the tests (tests/conftest.py). Uses the debug
# binaries switchyard and switchyard-backend (honouring CARGO_TARGET_DIR), building them when
# missing. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
started=$(date +%s)
venv="${SWITCHYARD_PY_VENV:-$HOME/.cache/switchyard/python-venv}"
if [ ! -x "$venv/bin/maturin" ] || [ ! -x "$venv/bin/pytest" ]; then
  echo "== creating the Python test environment in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "maturin>=1.5,<2" "pytest>=7"
fi
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
[ -x "$target/debug/switchyard" ] || cargo build -q -p switchyard --bin switchyard
[ -x "$target/debug/switchyard-backend" ] || cargo build -q -p switchyard-load --bin switchyard-backend
echo "== maturin develop (bindings/python)"
(cd bindings/python && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" maturin develop --quiet)
echo "== pytest (bindings/python/tests)"
SWITCHYARD_BIN_DIR="$target/debug" "$venv/bin/python" -m pytest -q bindings/python/tests
echo "python-tests.sh: took $(($(date +%s) - started)) s"
