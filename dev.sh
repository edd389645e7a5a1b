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

# The skill runs on Python 3.10+, but the development set includes pympp
# (MPP on Tempo), which needs 3.11+: pick the first interpreter that fits.
find_python() {
  local c
  for c in python3 python3.13 python3.12 python3.11; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  return 1
}

setup() {
  local want have base
  if [ ! -x "$PY" ]; then
    if ! base=$(find_python); then
      echo "Python 3.11 or newer is needed for the development setup (the skill itself runs on 3.10+)." >&2
      echo "Install python3.11+ (e.g. apt-get install python3 python3-venv, or pyenv) and run this again." >&2
      exit 1
    fi
    echo "creating virtual environment in .venv with $base" >&2
    if ! "$base" -m venv "$VENV"; then
      echo "Could not create .venv: install the venv module (e.g. apt-get install python3-venv) and run this again." >&2
      rm -rf "$VENV"; exit 1
    fi
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
