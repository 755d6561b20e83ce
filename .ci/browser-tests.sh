#!/usr/bin/env bash
# The operator console in a real browser (server/tests/browser, docs/OPERATIONS.md): headless
# Chromium from Debian's packages driven by Playwright (its own browser download is not used),
# in the Python test environment of .ci/python-tests.sh (run that first: the tests open their
# sessions with the Python binding). Screenshots land in target/console-artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
started=$(date +%s)
venv="${SWITCHYARD_PY_VENV:-$HOME/.cache/switchyard/python-venv}"
[ -x "$venv/bin/python" ] || { echo "browser-tests.sh: run .ci/python-tests.sh first (it makes $venv)" >&2; exit 1; }
"$venv/bin/python" -c "import playwright" 2>/dev/null \
  || "$venv/bin/pip" install --quiet --disable-pip-version-check "playwright>=1.40,<2"
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
[ -x "$target/debug/switchyard" ] || cargo build -q -p switchyard --bin switchyard
[ -x "$target/debug/switchyard-backend" ] || cargo build -q -p switchyard-load --bin switchyard-backend
echo "== pytest (server/tests/browser)"
SWITCHYARD_BIN_DIR="$target/debug" CONSOLE_ARTIFACTS="$target/console-artifacts" \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider server/tests/browser
echo "browser-tests.sh: took $(($(date +%s) - started)) s; screenshots in $target/console-artifacts"
