#!/usr/bin/env bash
# One entry point for developers and CI. Every command first makes sure the
# virtual environment (.venv) holds exactly the pinned set in requirements/dev.lock.
#   bash dev.sh demo      set up, start the sandbox, run the main job against it
#   bash dev.sh test      set up, run the test suite
#   bash dev.sh sandbox   set up, run the sandbox in the foreground
#   bash dev.sh bench     set up, run the benchmarks (they print figures)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

setup() {
  local want have
  if ! command -v python3 >/dev/null 2>&1; then
    echo "python3 is required (3.10 or newer)" >&2; exit 1
  fi
  if [ ! -x "$PY" ]; then
    echo "creating virtual environment in .venv" >&2
    python3 -m venv "$VENV"
  fi
  want=$(sha256sum requirements/dev.lock | cut -d' ' -f1)
  have=$(cat "$VENV/.lock-sha256" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    echo "installing pinned dependencies (requirements/dev.lock)" >&2
    "$PY" -m pip install --disable-pip-version-check -q -r requirements/dev.lock 2> >(grep -v "is ignored: it is neither" >&2)
    echo "$want" > "$VENV/.lock-sha256"
  fi
}

cmd=${1:-help}
shift || true
case "$cmd" in
  setup) setup ;;
  test) setup; exec "$PY" -m pytest "$@" ;;
  demo) setup; exec "$PY" tools/demo.py "$@" ;;
  sandbox) setup; exec "$PY" -m x402_compute_sandbox "$@" ;;
  bench) setup; for b in bench/bench_*.py; do "$PY" "$b" "$@"; done ;;
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac
